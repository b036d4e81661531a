"""The ASE calculator: any saved potential (HIP-NN, sums, ensembles), units, periodic structures
and molecules, stress, checkpoints from the command line, and NVE dynamics."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from ase import Atoms, units
from ase.calculators.calculator import PropertyNotImplementedError
from ase.calculators.fd import calculate_numerical_stress
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary, ZeroRotation
from ase.md.verlet import VelocityVerlet
from ase.units import create_units

from pyg_hipts.calculators import HipCalculator
from pyg_hipts.cli import main
from pyg_hipts.data import embedded_dataset_path, read_deepmd
from pyg_hipts.potentials import Potential, ReferenceEnergies, SumPotential, load_potential, save_potential
from pyg_hipts.potentials.ensemble import Ensemble
from pyg_hipts.units import Units

from .conftest import SHARED_DATA
from .test_periodic import _model

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml"
WATER = SHARED_DATA / "deepmd_water"
TINY_NETWORK = [
    *("--model.model.init_args.n_features", "8", "--model.model.init_args.n_sensitivities", "6"),
    *("--model.model.init_args.n_interaction_layers", "1", "--model.model.init_args.n_atom_layers", "1"),
]
TINY_RUN = [  # configs/quickstart.yaml in seconds
    *TINY_NETWORK,
    *("--model.model.init_args.l_max", "1"),
    *("--data.n_train", "40", "--data.n_val", "20", "--data.n_test", "20"),
    *("--data.batch_size", "10", "--data.eval_batch_size", "20", "--trainer.max_epochs", "2"),
]
TINY_WATER = [  # configs/water.yaml in seconds
    *TINY_NETWORK,
    *("--data.n_train", "8", "--data.n_val", "4", "--data.n_test", "4"),
    *("--data.batch_size", "4", "--data.eval_batch_size", "4", "--trainer.max_epochs", "2"),
]
KCAL_BOHR = Units("Bohr", "kcal/mol")
CODATA_2018 = create_units("2018")  # ASE's constants, independent of pyg_hipts.units
EV_PER_KCAL_MOL = CODATA_2018["kcal"] / CODATA_2018["mol"]
ANGSTROM_PER_BOHR = CODATA_2018["Bohr"]


def _fit(config: Path, options: list[str], run_name: str) -> Path:
    """Train with ``pyg-hipts fit`` in the current folder; return the best checkpoint."""
    main(["fit", "--config", str(config), *options])
    checkpoint = Path("runs") / run_name / "version_0" / "checkpoints" / "best.ckpt"
    assert checkpoint.is_file()
    return checkpoint


@pytest.fixture
def argv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["pyg-hipts"])


def _water_box(frame: int = 5) -> Atoms:
    """A deepmd water frame: 64 H2O in a periodic 12.44 Å box."""
    if not WATER.exists():
        pytest.skip(f"{WATER} is not available")
    data = read_deepmd(WATER / "data_0", dtype=torch.float64)[frame]
    return Atoms(numbers=data.z.numpy(), positions=data.pos.numpy(), cell=data.cell[0].numpy(), pbc=True)


def _water_molecule() -> Atoms:
    return Atoms(numbers=[8, 1, 1], positions=[[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]])


def _ethanol_atoms(frame: int = 0) -> Atoms:
    frames = np.load(embedded_dataset_path("ethanol"))
    return Atoms(numbers=frames["nuclear_charges"], positions=frames["coords"][frame])


def _expected(potential: Potential, atoms: Atoms, stress: bool) -> dict[str, np.ndarray]:
    """The potential's own predictions for ``atoms`` converted from Bohr and kcal/mol to ASE's
    units with ASE's constants."""
    length, energy = ANGSTROM_PER_BOHR, EV_PER_KCAL_MOL
    periodic = {}
    if atoms.pbc.any():
        periodic = {
            "cell": torch.as_tensor(np.asarray(atoms.cell) / length).unsqueeze(0),
            "pbc": torch.as_tensor(atoms.pbc).unsqueeze(0),
        }
    out = potential.predict(
        torch.as_tensor(atoms.numbers), torch.as_tensor(atoms.positions / length), stress=stress, **periodic
    )
    expected = {
        "energy": float(out.energy.detach()) * energy,
        "energies": out.atom_energies.detach().numpy().ravel() * energy,
        "forces": out.forces.numpy() * energy / length,
    }
    if stress:
        expected["stress"] = out.stress[0].numpy() * energy / length**3
    return expected


def _assert_round_trip(potential: Potential, path: Path, atoms: Atoms) -> HipCalculator:
    """Saved, loaded into a calculator: the same energies, forces and stress as the potential's
    own predictions in ASE's units."""
    potential.set_units(KCAL_BOHR)
    calculator = HipCalculator.from_checkpoint(save_potential(potential, path))
    assert calculator.potential.units == KCAL_BOHR
    atoms.calc = calculator
    periodic = bool(atoms.pbc.all())
    expected = _expected(potential, atoms, stress=periodic)
    assert atoms.get_potential_energy() == pytest.approx(expected["energy"], rel=1e-7)
    np.testing.assert_allclose(atoms.get_potential_energies(), expected["energies"], rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(atoms.get_forces(), expected["forces"], rtol=1e-7, atol=1e-12)
    assert atoms.get_potential_energies().sum() == pytest.approx(atoms.get_potential_energy(), rel=1e-12)
    if periodic:
        stress = atoms.get_stress(voigt=False)
        np.testing.assert_allclose(stress, expected["stress"], rtol=1e-7, atol=1e-14)
        np.testing.assert_allclose(atoms.get_stress(), calculate_numerical_stress(atoms, eps=1e-5), atol=1e-8)
    return calculator


def test_calculator_round_trip_on_a_periodic_box_and_a_molecule(tmp_path: Path) -> None:
    for atoms in (_water_box(), _water_molecule()):
        _assert_round_trip(_model(), tmp_path / "hipnn.pt", atoms)
    molecule = _water_molecule()
    molecule.calc = HipCalculator(_model())
    with pytest.raises(PropertyNotImplementedError, match="stress needs atoms periodic"):
        molecule.get_stress()
    slab = _water_box()
    slab.pbc = [True, True, False]
    slab.calc = HipCalculator(_model())
    assert np.isfinite(slab.get_potential_energy())
    with pytest.raises(PropertyNotImplementedError, match="stress needs atoms periodic"):
        slab.get_stress()


def test_calculator_on_a_periodic_sum_of_reference_energies_and_a_network(tmp_path: Path) -> None:
    box = _water_box()
    references = ReferenceEnergies([1, 8], [-7.5, -110.0])
    potential = SumPotential([1, 8], [references, _model()])
    calculator = _assert_round_trip(potential, tmp_path / "sum.pt", box)
    n_oxygen = int((box.numbers == 8).sum())
    network = _expected(potential.terms[1], box, stress=False)["energy"]
    offset = (n_oxygen * -110.0 + 2 * n_oxygen * -7.5) * EV_PER_KCAL_MOL
    assert box.get_potential_energy() == pytest.approx(network + offset, rel=1e-10)
    assert isinstance(calculator.potential, SumPotential)


def test_calculator_gives_the_spread_of_a_saved_ensemble_and_of_an_ensemble_file(tmp_path: Path) -> None:
    box = _water_box()
    ensemble = Ensemble([1, 8], [_model(), _model(l_max=1)])
    calculator = _assert_round_trip(ensemble, tmp_path / "ensemble.pt", box)
    out = ensemble.predict(
        torch.as_tensor(box.numbers),
        torch.as_tensor(box.positions / ANGSTROM_PER_BOHR),
        cell=torch.as_tensor(np.asarray(box.cell) / ANGSTROM_PER_BOHR).unsqueeze(0),
        pbc=torch.ones(1, 3, dtype=torch.bool),
    )
    box.get_forces()  # the last evaluation was of a strained box (the numerical stress)
    energy_std = float(out.extras["energy_std"]) * EV_PER_KCAL_MOL
    forces_std = out.extras["forces_std"].numpy() * EV_PER_KCAL_MOL / ANGSTROM_PER_BOHR
    assert calculator.results["energy_std"] == pytest.approx(energy_std, rel=1e-7) and energy_std > 0
    np.testing.assert_allclose(calculator.results["forces_std"], forces_std, rtol=1e-7, atol=1e-12)

    paths = [save_potential(member, tmp_path / f"member_{k}.pt") for k, member in enumerate(ensemble.members)]
    (tmp_path / "ensemble.yaml").write_text(yaml.safe_dump({"checkpoints": [p.name for p in paths]}))
    box.calc = HipCalculator.from_ensemble(tmp_path / "ensemble.yaml")
    assert box.get_potential_energy() == pytest.approx(float(out.energy.detach()) * EV_PER_KCAL_MOL, rel=1e-7)
    assert box.calc.results["energy_std"] == pytest.approx(energy_std, rel=1e-7)


class _Molecular(ReferenceEnergies):
    """Reference energies that take no periodic cell and give no stress."""

    periodic = False


def test_calculator_asks_the_potential_what_it_supports() -> None:
    potential = _Molecular([1, 8], [-0.5, -3.0])
    box = _water_box()
    box.calc = HipCalculator(potential)
    with pytest.raises(PropertyNotImplementedError, match="_Molecular takes no periodic cell"):
        box.get_potential_energy()
    with pytest.raises(PropertyNotImplementedError, match="_Molecular gives no stress"):
        box.get_stress()
    molecule = _water_molecule()
    molecule.calc = HipCalculator(potential)  # eV and Å: no conversion
    assert molecule.get_potential_energy() == pytest.approx(-4.0, rel=1e-12)
    np.testing.assert_array_equal(molecule.get_forces(), np.zeros((3, 3)))


def test_water_model_from_the_command_line_gives_energy_forces_stress(argv) -> None:
    box = _water_box()
    checkpoint = _fit(CONFIG.with_name("water.yaml"), [*TINY_WATER, "--data.train_file", str(WATER)], "water")
    calculator = HipCalculator.from_checkpoint(checkpoint)
    box.calc = calculator

    potential = load_potential(checkpoint).double()
    assert potential.units == Units("Å", "eV")
    frame = read_deepmd(WATER / "data_0", dtype=torch.float64)[5]
    expected = potential.predict_data(frame)  # eV and Å: no conversion
    assert box.get_potential_energy() == pytest.approx(float(expected.energy.detach()), rel=1e-12)
    np.testing.assert_allclose(box.get_forces(), expected.forces.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(box.get_potential_energies().sum(), box.get_potential_energy(), rtol=1e-12)
    np.testing.assert_allclose(box.get_stress(), calculate_numerical_stress(box, eps=1e-5), atol=1e-7)
    # a free molecule has no stress
    molecule = Atoms(numbers=box.numbers[:3], positions=box.positions[:3])
    molecule.calc = calculator
    with pytest.raises(PropertyNotImplementedError, match="stress needs atoms periodic"):
        molecule.get_stress()


def test_units_and_energy_conserving_dynamics(argv) -> None:
    """A kcal/mol model answers in eV; NVE dynamics with it conserve the total energy."""
    checkpoint = _fit(CONFIG, [*TINY_RUN, "--trainer.max_epochs", "3"], "quickstart")
    calculator = HipCalculator.from_checkpoint(checkpoint)
    atoms = _ethanol_atoms()
    atoms.calc = calculator

    potential = load_potential(checkpoint).double()
    assert potential.units == Units("Å", "kcal/mol")
    expected = potential.predict(torch.as_tensor(atoms.numbers), torch.as_tensor(atoms.positions))
    assert atoms.get_potential_energy() == pytest.approx(
        float(expected.energy.detach()) * EV_PER_KCAL_MOL, rel=1e-7
    )
    np.testing.assert_allclose(atoms.get_forces(), expected.forces.numpy() * EV_PER_KCAL_MOL, rtol=1e-7)

    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(0))
    Stationary(atoms)
    ZeroRotation(atoms)
    dynamics = VelocityVerlet(atoms, timestep=0.25 * units.fs)
    total = []
    dynamics.attach(lambda: total.append(atoms.get_total_energy()), interval=1)
    dynamics.run(400)  # 100 fs
    total = np.array(total)
    drift = np.abs(total - total[0]).max()
    # observed ≈ 2e-6 eV; the bound, 1e-4 eV, is 0.03 % of the thermal energy 3/2 N kT = 0.35 eV
    assert drift < 1e-4, f"total energy drifted by {drift:.2e} eV in 100 fs of NVE"
    assert np.isfinite(atoms.positions).all()
