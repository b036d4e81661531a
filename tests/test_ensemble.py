"""Ensembles: mean and spread against explicit loops, training by seed from the command line,
teacher labels written and read back, the per-atom energy loss, and the ASE calculator."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from ase import Atoms
from torch_geometric.data import Batch

from pyg_hipts.calculators import HipCalculator
from pyg_hipts.data import embedded_dataset_path, read_npz
from pyg_hipts.ensemble import Ensemble, ensemble_labels
from pyg_hipts.nn import HipNN
from pyg_hipts.train import PotentialModule
from pyg_hipts.train.checkpoints import load_trained_model
from pyg_hipts.train.cli import main
from tests.test_cli import CONFIG, TINY_RUN
from tests.test_train_module import single_thread  # noqa: F401


def _members(n: int = 3) -> list[HipNN]:
    members = []
    for seed in range(n):
        torch.manual_seed(seed)
        model = HipNN(
            [1, 6, 7, 8], n_features=8, n_sensitivities=6, dist_soft_max=4.0, dist_hard_max=4.5, l_max=2
        )
        members.append(model.double())
    return members


def test_mean_and_std_match_explicit_loops(mixed_batch) -> None:
    z, pos, batch = mixed_batch
    members = _members()
    out = Ensemble(members).predict(z, pos, batch)
    energies = np.stack([m.predict(z, pos, batch).energy.detach().numpy() for m in members])
    forces = np.stack([m.predict(z, pos, batch).forces.numpy() for m in members])
    atoms = np.stack([m.predict(z, pos, batch).atom_energies.detach().numpy() for m in members])
    np.testing.assert_allclose(out.energy.numpy(), energies.mean(0), rtol=1e-12)
    np.testing.assert_allclose(out.energy_std.numpy(), energies.std(0), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(out.member_energies.numpy(), energies[..., 0], rtol=1e-12)
    np.testing.assert_allclose(out.forces.numpy(), forces.mean(0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out.forces_std.numpy(), forces.std(0), rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(out.atom_energies.numpy(), atoms.mean(0), rtol=1e-12)
    np.testing.assert_allclose(out.atom_energies_std.numpy(), atoms.std(0), rtol=1e-8, atol=1e-12)
    assert float(out.energy_std.min()) > 0


def test_ensemble_needs_compatible_members() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        Ensemble(_members(1))
    other = HipNN([1, 8], n_features=4, n_sensitivities=4, dist_soft_max=4.0, dist_hard_max=4.5)
    with pytest.raises(ValueError, match="different species"):
        Ensemble([_members(1)[0], other])


def _tiny_input(path: Path, n_frames: int = 12) -> Path:
    frames = np.load(embedded_dataset_path("ethanol"))
    np.savez(
        path,
        **{key: frames[key][:n_frames] for key in ("coords", "energies", "forces")},
        nuclear_charges=frames["nuclear_charges"],
    )
    return path


def test_ensemble_command_labels_and_calculator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["pyg-hipts"])
    main(["ensemble", "--config", str(CONFIG), "--members", "2", "--output_dir", "teachers", "--", *TINY_RUN])
    listing = yaml.safe_load((tmp_path / "teachers" / "ensemble.yaml").read_text())
    assert listing["seeds"] == [0, 1] and len(listing["checkpoints"]) == 2
    ensemble = Ensemble.from_file(tmp_path / "teachers" / "ensemble.yaml").double()
    singles = [load_trained_model(tmp_path / "teachers" / p)[0].double() for p in listing["checkpoints"]]
    assert ensemble.units.energy == "kcal/mol"

    source = read_npz(_tiny_input(tmp_path / "input.npz"), dtype=torch.float64)
    batch = Batch.from_data_list(list(source))
    energies = torch.stack([m.predict_data(batch).energy.detach() for m in singles])
    assert not torch.allclose(energies[0], energies[1])  # the seeds gave different members
    torch.testing.assert_close(ensemble.predict_data(batch).energy, energies.mean(0))

    main(
        ["label", "--ensemble", "teachers/ensemble.yaml", "--input", "input.npz", "--output", "labelled.npz"]
    )
    labelled = read_npz(tmp_path / "labelled.npz", atom_energies_key="atom_energies", dtype=torch.float64)
    expected = ensemble_labels(ensemble, source, batch_size=5)
    assert len(labelled) == 12
    for i, frame in enumerate(labelled):
        assert float(frame.energy) == pytest.approx(
            float(source[i].energy), rel=1e-12
        )  # reference energies kept
        np.testing.assert_allclose(frame.forces.numpy(), expected["forces"][i], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(frame.atom_energies.numpy(), expected["atom_energies"][i], rtol=1e-6)
        assert not np.allclose(
            frame.forces.numpy(), source[i].forces.numpy()
        )  # teacher, not reference forces
    with np.load(tmp_path / "labelled.npz") as arrays:
        assert arrays["forces_std"].shape == (12, 9, 3) and (arrays["forces_std"] > 0).any()

    molecule = Atoms(numbers=source[0].z.numpy(), positions=source[0].pos.numpy())
    molecule.calc = HipCalculator.from_ensemble(tmp_path / "teachers" / "ensemble.yaml")
    kcal_per_mol_in_ev = 0.0433641
    mean = float(ensemble.predict_data(Batch.from_data_list([source[0]])).energy)
    assert molecule.get_potential_energy() == pytest.approx(mean * kcal_per_mol_in_ev, rel=1e-5)
    assert molecule.calc.results["energy_std"] > 0 and molecule.calc.results["forces_std"].shape == (9, 3)


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
def test_atom_energy_loss_vanishes_when_the_student_is_the_teacher(tmp_path: Path) -> None:
    teacher = _members(1)[0]
    twins = Ensemble([teacher, copy.deepcopy(teacher)])
    source = read_npz(_tiny_input(tmp_path / "input.npz", 6), dtype=torch.float64)
    labels = ensemble_labels(twins, source, batch_size=4)
    assert float(np.abs(labels["atom_energies_std"]).max()) == 0.0
    np.savez(tmp_path / "labelled.npz", **labels)
    labelled = read_npz(tmp_path / "labelled.npz", atom_energies_key="atom_energies", dtype=torch.float64)
    batch = Batch.from_data_list(list(labelled))

    options = dict(n_features=8, n_sensitivities=6, dist_soft_max=4.0, dist_hard_max=4.5, l_max=2)
    student = PotentialModule(
        species=[1, 6, 7, 8], energy_weight=0.0, force_weight=0.0, atom_energy_weight=1.0, **options
    )
    student.model = copy.deepcopy(teacher)
    assert student.training_step(batch, 0).item() == pytest.approx(0.0, abs=1e-20)
    with torch.no_grad():
        student.model.energy_head.heads[1].weight.add_(0.01)
    assert student.training_step(batch, 0).item() > 1e-8
    without_labels = Batch.from_data_list(list(read_npz(tmp_path / "input.npz", dtype=torch.float64)))
    with pytest.raises(ValueError, match="atom_energies"):
        student.training_step(without_labels, 0)


def test_labelled_training_file_with_a_plain_test_file(tmp_path: Path) -> None:
    from pyg_hipts.train import AtomsDataModule

    source = read_npz(_tiny_input(tmp_path / "input.npz", 8), dtype=torch.float64)
    np.savez(tmp_path / "labelled.npz", **ensemble_labels(Ensemble(_members(2)), source, batch_size=4))
    options = {"atom_energies_key": "atom_energies"}
    datamodule = AtomsDataModule(
        train_file=str(tmp_path / "labelled.npz"),
        test_file=str(tmp_path / "input.npz"),
        reader_options=options,
        test_reader_options={},
        n_train=6,
        n_val=2,
    )
    datamodule.setup("test")
    assert "atom_energies" in datamodule.datasets["train"][0]
    assert "atom_energies" not in datamodule.datasets["test"][0]
    with pytest.raises(ValueError, match="atom_energies"):
        AtomsDataModule(
            train_file=str(tmp_path / "labelled.npz"),
            test_file=str(tmp_path / "input.npz"),
            reader_options=options,
            n_train=6,
            n_val=2,
        ).setup("test")
