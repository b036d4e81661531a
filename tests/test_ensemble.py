"""Ensembles: mean and spread against explicit loops, forces as the gradient of the mean energy,
saving and loading, ensemble files, training by seed from the command line, teacher labels
written and read back, the per-atom energy loss, and the ASE calculator."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from ase import Atoms, units
from torch_geometric.data import Batch

from pyg_hipts.calculators import HipCalculator
from pyg_hipts.cli import main
from pyg_hipts.data import embedded_dataset_path, read_npz
from pyg_hipts.ensemble import ensemble_labels
from pyg_hipts.nn import HipNN
from pyg_hipts.potentials import ReferenceEnergies, SumPotential, load_potential, save_potential
from pyg_hipts.potentials.ensemble import Ensemble
from pyg_hipts.train import AtomsDataModule, PotentialModule
from pyg_hipts.train.losses import AtomEnergyLoss
from pyg_hipts.units import Units

from .test_ase_calculator import CONFIG, TINY_RUN
from .test_periodic import _model, _water

SPECIES = [1, 6, 7, 8]
KCAL = Units("Å", "kcal/mol")


def _member(seed: int, species: list[int] = SPECIES) -> HipNN:
    torch.manual_seed(seed)
    options = dict(n_features=8, n_sensitivities=6, dist_soft_max=4.0, dist_hard_max=4.5, l_max=2)
    return HipNN(species, **options).double()


def _members(n: int = 3) -> list[HipNN]:
    return [_member(seed) for seed in range(n)]


def test_mean_and_std_match_explicit_loops(mixed_batch) -> None:
    z, pos, batch = mixed_batch
    members = _members()
    out = Ensemble(SPECIES, members).predict(z, pos, batch)
    singles = [m.predict(z, pos, batch) for m in members]
    energies = np.stack([o.energy.detach().numpy() for o in singles])
    forces = np.stack([o.forces.numpy() for o in singles])
    atoms = np.stack([o.atom_energies.detach().numpy() for o in singles])
    hierarchicality = np.stack([o.extras["hierarchicality"].detach().numpy() for o in singles])
    extras = {name: value.detach().numpy() for name, value in out.extras.items()}
    np.testing.assert_allclose(out.energy.detach().numpy(), energies.mean(0), rtol=1e-12)
    np.testing.assert_allclose(extras["energy_std"], energies.std(0), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(extras["member_energies"], energies[..., 0], rtol=1e-12)
    np.testing.assert_allclose(out.forces.numpy(), forces.mean(0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(extras["forces_std"], forces.std(0), rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(out.atom_energies.detach().numpy(), atoms.mean(0), rtol=1e-12)
    np.testing.assert_allclose(extras["atom_energies_std"], atoms.std(0), rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(extras["hierarchicality"], hierarchicality.mean(0), rtol=1e-12)
    assert out.energy.shape == (4, 1) and extras["member_energies"].shape == (3, 4)
    assert extras["forces_std"].shape == (len(z), 3) and extras["atom_energies_std"].shape == (len(z), 1)
    assert float(out.extras["energy_std"].min()) > 0


def test_contract_ensemble_forces_are_minus_the_gradient_of_its_mean_energy(mixed_batch) -> None:
    z, pos, batch = mixed_batch
    ensemble = Ensemble(SPECIES, _members())
    forces = ensemble.predict(z, pos, batch).forces
    step = 1e-5
    for atom, axis in [(0, 0), (25, 1), (60, 2)]:
        shifted = []
        for sign in (1, -1):
            moved = pos.clone()
            moved[atom, axis] += sign * step
            shifted.append(float(ensemble.predict(z, moved, batch, forces=False).energy.detach().sum()))
        derivative = (shifted[0] - shifted[1]) / (2 * step)
        assert float(forces[atom, axis]) == pytest.approx(-derivative, rel=1e-6, abs=1e-8)


def test_contract_ensemble_atom_energies_are_the_members_mean_inside_a_sum(mixed_batch) -> None:
    """As a term of a sum, the ensemble gives the mean energy, forces and extra outputs."""
    z, pos, batch = mixed_batch
    ensemble = Ensemble(SPECIES, _members(2))
    alone = ensemble.predict(z, pos, batch)
    summed = SumPotential(SPECIES, [ensemble]).predict(z, pos, batch)
    torch.testing.assert_close(summed.energy, alone.energy, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(summed.forces, alone.forces, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(summed.extras["hierarchicality"], alone.extras["hierarchicality"])
    assert "energy_std" not in summed.extras  # spreads need the ensemble's own predict


def test_extra_outputs_are_averaged_when_the_members_give_the_same_shape(mixed_batch) -> None:
    z, pos, batch = mixed_batch
    shallow = HipNN(SPECIES, n_features=8, n_sensitivities=6, n_interaction_layers=1).double()
    members = [_member(0), shallow]
    out = Ensemble(SPECIES, members).predict(z, pos, batch, forces=False)
    singles = [m.predict(z, pos, batch, forces=False).extras for m in members]
    assert [s["level_energies"].shape[1] for s in singles] == [3, 2]
    assert "level_energies" not in out.extras and "forces_std" not in out.extras
    mean = (singles[0]["hierarchicality"] + singles[1]["hierarchicality"]) / 2
    torch.testing.assert_close(out.extras["hierarchicality"], mean, rtol=1e-12, atol=0)


def test_ensemble_needs_compatible_members() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        Ensemble(SPECIES, _members(1))
    with pytest.raises(ValueError, match="different species"):
        Ensemble(SPECIES, [_members(1)[0], _member(0, [1, 8])])
    first, second = _members(2)
    first.set_units(KCAL)
    second.set_units(Units("Å", "eV"))
    with pytest.raises(ValueError, match="different units"):
        Ensemble(SPECIES, [first, second])
    with pytest.raises(ValueError, match="different units"):
        Ensemble(SPECIES, [first, _member(1)], units=Units("Å", "eV"))
    assert Ensemble(SPECIES, [first, _member(1)]).units == KCAL  # the members' units when not given


def test_contract_ensemble_save_and_load_give_the_same_predictions(mixed_batch, tmp_path: Path) -> None:
    z, pos, batch = mixed_batch
    ensemble = Ensemble(SPECIES, [*_members(2), lambda species: _member(5, species)], KCAL)
    before = ensemble.predict(z, pos, batch)
    loaded = load_potential(save_potential(ensemble, tmp_path / "ensemble.pt"))
    after = loaded.predict(z, pos, batch)
    assert type(loaded) is Ensemble and loaded.units == KCAL and loaded.spec() == ensemble.spec()
    assert [m.units for m in loaded.members] == [KCAL] * 3
    torch.testing.assert_close(after.energy, before.energy, rtol=0, atol=0)
    torch.testing.assert_close(after.forces, before.forces, rtol=0, atol=0)
    for name in ("energy_std", "forces_std", "atom_energies_std", "member_energies"):
        torch.testing.assert_close(after.extras[name], before.extras[name], rtol=0, atol=0)


def test_ensemble_stress_and_virial_are_the_members_means() -> None:
    z, pos, batch, cell, pbc = _water(1)
    members = [_model(), _model(l_max=1)]
    ensemble = Ensemble([1, 8], members)
    out = ensemble.predict(z, pos, batch, cell=cell, pbc=pbc, stress=True, virial=True)
    singles = [m.predict(z, pos, batch, cell=cell, pbc=pbc, stress=True, virial=True) for m in members]
    torch.testing.assert_close(out.stress, (singles[0].stress + singles[1].stress) / 2, rtol=1e-12, atol=0)
    volume = torch.linalg.det(cell).abs().view(-1, 1, 1)
    torch.testing.assert_close(out.virial, -volume * out.stress, rtol=1e-10, atol=1e-12)
    assert ensemble.supports("stress") and ensemble.supports("periodic") and ensemble.supports("forces_std")


class _Molecular(ReferenceEnergies):
    """Reference energies that take no periodic cell."""

    periodic = False


def test_ensemble_supports_what_every_member_supports() -> None:
    z, pos, batch, cell, pbc = _water(1)
    mixed = Ensemble([1, 8], [_model(), _Molecular([1, 8], [-0.5, -3.0])])
    assert not mixed.supports("stress") and not mixed.supports("periodic")
    assert mixed.supports("energy_std") and not mixed.supports("hierarchicality")
    with pytest.raises(ValueError, match=r"\['_Molecular'\] cannot give periodic"):
        mixed.predict(z, pos, batch, cell=cell, pbc=pbc)
    with pytest.raises(ValueError, match="cannot give stress"):
        mixed.predict(z, pos, batch, stress=True)
    free = mixed.predict(z[:3], pos[:3])  # a free molecule works
    assert float(free.extras["energy_std"]) > 0


def _saved_members(folder: Path, n: int = 2) -> list[Path]:
    paths = []
    for seed in range(n):
        member = _member(seed)
        member.set_units(KCAL)
        paths.append(save_potential(member, folder / "members" / f"member_{seed}.pt"))
    return paths


def test_ensemble_file_lists_checkpoints_relative_to_it(mixed_batch, tmp_path: Path) -> None:
    z, pos, batch = mixed_batch
    paths = _saved_members(tmp_path)
    listing = tmp_path / "teachers" / "ensemble.yaml"
    listing.parent.mkdir()
    listing.write_text(yaml.safe_dump({"checkpoints": [f"../members/{p.name}" for p in paths]}))
    ensemble = Ensemble.from_file(listing)
    expected = Ensemble(SPECIES, [load_potential(p) for p in paths])
    assert ensemble.units == KCAL and len(ensemble.members) == 2
    torch.testing.assert_close(ensemble.predict(z, pos, batch).forces, expected.predict(z, pos, batch).forces)


def test_ensemble_files_and_checkpoints_give_clear_errors(tmp_path: Path) -> None:
    paths = _saved_members(tmp_path)
    with pytest.raises(FileNotFoundError, match="absent.yaml: no such ensemble file"):
        Ensemble.from_file(tmp_path / "absent.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("checkpoints: [a.pt\n")
    with pytest.raises(ValueError, match="broken.yaml: not a readable YAML file"):
        Ensemble.from_file(broken)
    for text in ("- members/member_0.pt\n", "checkpoints: members/member_0.pt\n", "seeds: [0, 1]\n"):
        malformed = tmp_path / "malformed.yaml"
        malformed.write_text(text)
        with pytest.raises(ValueError, match="malformed.yaml: expected a mapping with a 'checkpoints' list"):
            Ensemble.from_file(malformed)
    missing = tmp_path / "missing.yaml"
    missing.write_text(yaml.safe_dump({"checkpoints": ["members/member_0.pt", "members/gone.pt"]}))
    with pytest.raises(FileNotFoundError, match=r"missing.yaml: the checkpoints .*gone.pt.* do not exist"):
        Ensemble.from_file(missing)
    electronvolts = _member(2)
    electronvolts.set_units(Units("Å", "eV"))
    other = save_potential(electronvolts, tmp_path / "ev.pt")
    with pytest.raises(
        ValueError, match=r"must share their units, got .*member_0.pt: .*kcal/mol.*ev.pt: .*'eV'"
    ):
        Ensemble.from_checkpoints([paths[0], other])
    fewer = save_potential(_member(3, [1, 6, 8]), tmp_path / "fewer.pt")
    with pytest.raises(ValueError, match=r"must share their species, got .*fewer.pt: \[1, 6, 8\]"):
        Ensemble.from_checkpoints([paths[0], fewer])
    with pytest.raises(ValueError, match="at least 2 checkpoints"):
        Ensemble.from_checkpoints(paths[:1])


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
    singles = [load_potential(tmp_path / "teachers" / p).double() for p in listing["checkpoints"]]
    assert ensemble.units == KCAL

    source = read_npz(_tiny_input(tmp_path / "input.npz"), dtype=torch.float64)
    batch = Batch.from_data_list(list(source))
    energies = torch.stack([m.predict_data(batch).energy.detach() for m in singles])
    assert not torch.allclose(energies[0], energies[1])  # the seeds gave different members
    torch.testing.assert_close(ensemble.predict_data(batch).energy.detach(), energies.mean(0))

    main(
        ["label", "--ensemble", "teachers/ensemble.yaml", "--input", "input.npz", "--output", "labelled.npz"]
    )
    labelled = read_npz(tmp_path / "labelled.npz", atom_energies_key="atom_energies", dtype=torch.float64)
    expected = ensemble_labels(ensemble, source, batch_size=5)
    assert len(labelled) == 12
    for i, frame in enumerate(labelled):
        assert float(frame.energy) == pytest.approx(float(source[i].energy), rel=1e-12)  # reference kept
        np.testing.assert_allclose(frame.forces.numpy(), expected["forces"][i], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(frame.atom_energies.numpy(), expected["atom_energies"][i], rtol=1e-6)
        assert not np.allclose(frame.forces.numpy(), source[i].forces.numpy())  # teacher, not reference
    with np.load(tmp_path / "labelled.npz") as arrays:
        assert arrays["forces_std"].shape == (12, 9, 3) and (arrays["forces_std"] > 0).any()

    molecule = Atoms(numbers=source[0].z.numpy(), positions=source[0].pos.numpy())
    molecule.calc = HipCalculator.from_ensemble(tmp_path / "teachers" / "ensemble.yaml")
    mean = ensemble.predict_data(Batch.from_data_list([source[0]]))
    kcal_per_mol = units.kcal / units.mol
    assert molecule.get_potential_energy() == pytest.approx(
        float(mean.energy.detach()) * kcal_per_mol, rel=1e-6
    )
    assert molecule.calc.results["energy_std"] == pytest.approx(
        float(mean.extras["energy_std"]) * kcal_per_mol, rel=1e-6
    )
    assert molecule.calc.results["energy_std"] > 0 and molecule.calc.results["forces_std"].shape == (9, 3)


def test_labels_need_an_ensemble(tmp_path: Path) -> None:
    source = read_npz(_tiny_input(tmp_path / "input.npz", 2), dtype=torch.float64)
    with pytest.raises(ValueError, match="HipNN reports no ensemble spreads"):
        ensemble_labels(_member(0), source)


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
def test_atom_energy_loss_vanishes_when_the_student_is_the_teacher(tmp_path: Path) -> None:
    teacher = _members(1)[0]
    twins = Ensemble(SPECIES, [teacher, copy.deepcopy(teacher)])
    source = read_npz(_tiny_input(tmp_path / "input.npz", 6), dtype=torch.float64)
    labels = ensemble_labels(twins, source, batch_size=4)
    assert float(np.abs(labels["atom_energies_std"]).max()) == 0.0
    np.savez(tmp_path / "labelled.npz", **labels)
    labelled = read_npz(tmp_path / "labelled.npz", atom_energies_key="atom_energies", dtype=torch.float64)
    batch = Batch.from_data_list(list(labelled))

    student = PotentialModule(copy.deepcopy(teacher), losses=[AtomEnergyLoss(1.0)])
    assert student.training_step(batch, 0).item() == pytest.approx(0.0, abs=1e-20)
    with torch.no_grad():
        student.model.energy_head.heads[1].weight.add_(0.01)
    assert student.training_step(batch, 0).item() > 1e-8
    without_labels = Batch.from_data_list(list(read_npz(tmp_path / "input.npz", dtype=torch.float64)))
    with pytest.raises(ValueError, match="atom_energies"):
        student.training_step(without_labels, 0)


def test_labelled_training_file_with_a_plain_test_file(tmp_path: Path) -> None:
    source = read_npz(_tiny_input(tmp_path / "input.npz", 8), dtype=torch.float64)
    np.savez(
        tmp_path / "labelled.npz", **ensemble_labels(Ensemble(SPECIES, _members(2)), source, batch_size=4)
    )
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
