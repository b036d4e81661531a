"""OpenMM: the ``pyg_hipts`` OpenMM-ML potential and coarse-grained systems with native priors
give the ASE calculator's energies and forces; NVE conserves energy; ML/MM runs; the export
folder runs from the command line and refuses pickled code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openmm
import pytest
import torch
from ase import Atoms
from openmm import app, unit
from openmmml import MLPotential

from pyg_hipts.calculators import HipCalculator
from pyg_hipts.cg import PairRepulsion, TopologyPrior
from pyg_hipts.cli import main
from pyg_hipts.nn import HipNN
from pyg_hipts.openmm import add_rest, native_system, potential_force
from pyg_hipts.openmm.files import bead_topology, read_system, write_system
from pyg_hipts.potentials import CheckpointError, Potential, SumPotential, load_potential, save_potential
from pyg_hipts.units import Units, energy_factor

from .test_ase_calculator import CONFIG, TINY_RUN, _ethanol_atoms, _fit, _water_box
from .test_cg import BEAD_TYPES, KCAL, QUADS, _ala2, _dataset, _known_prior
from .test_periodic import _model

KJ_PER_EV = energy_factor("eV", "kJ/mol")
BEAD_MASSES = [12.011, 14.007, 12.011, 12.011, 14.007]


def _network(species, units: Units | None = KCAL) -> HipNN:
    """The small l = 2 HIP-NN-TS of the periodic tests, in ``units``."""
    network = _model(species=tuple(species))
    network.set_units(units)
    return network


def _openmm_energy_forces(system: openmm.System, positions_angstrom: np.ndarray, box=None):
    """``(E kJ/mol, F [N, 3] kJ/mol/nm)`` of ``system`` at positions in Å (box rows in Å)."""
    context = openmm.Context(
        system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference")
    )
    if box is not None:
        context.setPeriodicBoxVectors(*(openmm.Vec3(*row) for row in (np.asarray(box) * 0.1).tolist()))
    context.setPositions(positions_angstrom * 0.1)
    state = context.getState(getEnergy=True, getForces=True)
    energy = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    return energy, state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)


def _assert_equal_to_calculator(potential: Potential, atoms: Atoms, system: openmm.System) -> None:
    """OpenMM's energy and forces equal the ASE calculator's to 1e-5 relative (float64)."""
    atoms.calc = HipCalculator(potential)
    box = np.asarray(atoms.cell) if atoms.pbc.any() else None
    energy, forces = _openmm_energy_forces(system, atoms.positions, box)
    assert energy == pytest.approx(atoms.get_potential_energy() * KJ_PER_EV, rel=1e-5)
    expected = atoms.get_forces() * KJ_PER_EV * 10.0  # eV/Å -> kJ/mol/nm
    np.testing.assert_allclose(forces, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


def _topology(numbers, box=None) -> app.Topology:
    topology = bead_topology([int(n) for n in numbers], 1, elements=True)
    if box is not None:
        topology.setPeriodicBoxVectors([openmm.Vec3(*row) for row in (np.asarray(box) * 0.1).tolist()])
    return topology


def test_rmd17_molecule_through_openmm_ml_equals_the_calculator() -> None:
    potential = _network([1, 6, 8])
    atoms = _ethanol_atoms()
    system = MLPotential("pyg_hipts", potential=potential).createSystem(_topology(atoms.numbers))
    assert any(isinstance(force, openmm.PythonForce) for force in system.getForces())
    _assert_equal_to_calculator(potential, atoms, system)


def test_periodic_water_box_through_openmm_ml_equals_the_calculator() -> None:
    potential = _network([1, 8], Units("Å", "eV"))
    atoms = _water_box()
    topology = _topology(atoms.numbers, atoms.cell)
    system = MLPotential("pyg_hipts", potential=potential).createSystem(topology)
    force = next(f for f in system.getForces() if isinstance(f, openmm.PythonForce))
    assert force.usesPeriodicBoundaryConditions()
    _assert_equal_to_calculator(potential, atoms, system)


def _cg_model() -> SumPotential:
    """Priors of every kind (known parameters), a pair repulsion and a network on ala2 beads."""
    repulsion = PairRepulsion([1, 2, 3], cutoff=4.0, power=12)
    repulsion.set_parameters([[3.0, 3.1, 3.2], [3.1, 3.3, 3.4], [3.2, 3.4, 3.5]], 0.6)
    return SumPotential([1, 2, 3], [_known_prior(), repulsion, _network([1, 2, 3])], KCAL)


def test_cg_priors_become_native_forces_and_the_network_a_python_force() -> None:
    potential = _cg_model()
    frames = _ala2(2)
    system, rest = native_system(potential, BEAD_TYPES, BEAD_MASSES)
    names = sorted(type(force).__name__ for force in system.getForces())
    assert names == [
        "CustomBondForce",
        "CustomCompoundBondForce",
        "CustomNonbondedForce",
        "CustomTorsionForce",
        "HarmonicAngleForce",
        "HarmonicBondForce",
    ]
    assert isinstance(rest, HipNN)
    add_rest(system, rest, BEAD_TYPES, periodic=False)
    _assert_equal_to_calculator(potential, Atoms(numbers=BEAD_TYPES, positions=frames[0]), system)
    assert system.getParticleMass(2).value_in_unit(unit.dalton) == pytest.approx(12.011)


def test_cg_replicas_are_a_batch_of_independent_structures() -> None:
    """Two replicas 1 Å apart (their beads within every cutoff) are still independent."""
    potential = _cg_model()
    frames = _ala2(2)
    frames[1] = frames[1] - frames[1].mean(0) + frames[0].mean(0) + 1.0
    system, rest = native_system(potential, BEAD_TYPES, BEAD_MASSES, replicas=2)
    add_rest(system, rest, BEAD_TYPES, periodic=False, replicas=2)
    energy, forces = _openmm_energy_forces(system, frames.reshape(-1, 3))
    pos = torch.as_tensor(frames.reshape(-1, 3))
    expected = potential.predict(torch.tensor(BEAD_TYPES * 2), pos, torch.arange(2).repeat_interleave(5))
    kj = energy_factor("kcal/mol", "kJ/mol")
    assert energy == pytest.approx(float(expected.energy.detach().sum()) * kj, rel=1e-5)
    np.testing.assert_allclose(forces, expected.forces.numpy() * kj * 10.0, rtol=1e-5, atol=1e-6)


def test_periodic_cg_liquid_equals_the_calculator() -> None:
    """One-bead water (oxygen positions of the deepmd box) with a pair repulsion and a network."""
    water = _water_box()
    oxygens = water[[atom.index for atom in water if atom.number == 8]]
    oxygens.numbers[:] = 1
    repulsion = PairRepulsion([1], cutoff=5.0, power=12)
    repulsion.set_parameters([[2.6]], 0.6)
    potential = SumPotential([1], [repulsion, _network([1])], KCAL)
    system, rest = native_system(
        potential, [1] * len(oxygens), [18.0] * len(oxygens), box=np.asarray(oxygens.cell)
    )
    add_rest(system, rest, [1] * len(oxygens), periodic=True)
    _assert_equal_to_calculator(potential, oxygens, system)


def test_unknown_element_is_an_error_naming_the_atom() -> None:
    topology = _topology([6, 1, 17])
    with pytest.raises(ValueError, match=r"atom 2 \(Cl of residue MOL 1\) is Cl \(Z = 17\), which the model"):
        MLPotential("pyg_hipts", potential=_network([1, 6, 8])).createSystem(topology)


def test_a_checkpoint_naming_an_untrusted_class_is_refused(tmp_path: Path) -> None:
    checkpoint = save_potential(_network([1, 6, 8]), tmp_path / "ethanol.pt")
    topology = _topology([6, 1, 8])
    with pytest.raises(CheckpointError, match=r"ethanol\.pt: .*outside the trusted packages \['mace'\]"):
        MLPotential("pyg_hipts", checkpoint=str(checkpoint), trusted=("mace",)).createSystem(topology)
    assert MLPotential("pyg_hipts", checkpoint=str(checkpoint)).createSystem(topology).getNumParticles() == 3


def test_nve_with_a_trained_model_conserves_energy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bound of the ASE NVE test: 1e-4 eV over 100 fs at 0.25 fs."""
    monkeypatch.setattr("sys.argv", ["pyg-hipts"])
    checkpoint = _fit(CONFIG, [*TINY_RUN, "--trainer.max_epochs", "3"], "quickstart")
    atoms = _ethanol_atoms()
    system = MLPotential("pyg_hipts", checkpoint=str(checkpoint)).createSystem(_topology(atoms.numbers))
    integrator = openmm.VerletIntegrator(0.25 * unit.femtosecond)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(atoms.positions * 0.1)
    context.setVelocitiesToTemperature(300 * unit.kelvin, 0)
    total = []
    for _ in range(100):
        integrator.step(4)
        state = context.getState(getEnergy=True)
        total.append(
            (state.getPotentialEnergy() + state.getKineticEnergy()).value_in_unit(unit.kilojoule_per_mole)
        )
    drift = np.abs(np.array(total) - total[0]).max() / KJ_PER_EV
    assert drift < 1e-4, f"total energy drifted by {drift:.2e} eV in 100 fs of NVE"


def test_ml_water_in_an_mm_water_box_runs() -> None:
    """ML/MM (mechanical embedding): one water of a TIP3P box modelled by the potential."""
    modeller = app.Modeller(app.Topology(), [])
    field = app.ForceField("amber14/tip3p.xml")
    modeller.addSolvent(field, boxSize=openmm.Vec3(1.6, 1.6, 1.6) * unit.nanometer)
    mm_system = field.createSystem(
        modeller.topology, nonbondedMethod=app.PME, nonbondedCutoff=0.7, constraints=None, rigidWater=False
    )
    ml_atoms = [atom.index for atom in next(modeller.topology.residues()).atoms()]
    potential = _network([1, 8], Units("Å", "eV"))
    mixed = MLPotential("pyg_hipts", potential=potential).createMixedSystem(
        modeller.topology, mm_system, ml_atoms
    )
    python_force = next(f for f in mixed.getForces() if isinstance(f, openmm.PythonForce))
    assert list(python_force.getParticles()) == ml_atoms
    python_force.setForceGroup(1)
    integrator = openmm.LangevinMiddleIntegrator(
        300 * unit.kelvin, 1 / unit.picosecond, 0.5 * unit.femtosecond
    )
    context = openmm.Context(mixed, integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(modeller.positions)
    integrator.step(10)
    state = context.getState(getPositions=True, getEnergy=True, groups={1})
    water = state.getPositions(asNumpy=True).value_in_unit(unit.angstrom)[ml_atoms]
    z = torch.tensor([a.element.atomic_number for a in modeller.topology.atoms()])[ml_atoms]
    expected = float(potential.predict(z, torch.as_tensor(water), forces=False).energy.detach()) * KJ_PER_EV
    # the ML water is whole: minimum images of a molecule smaller than half the box
    assert state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) == pytest.approx(
        expected, rel=1e-5
    )


def _fitted_cg_model() -> SumPotential:
    """Priors and a pair repulsion fitted on alanine dipeptide at 300 K, and a network."""
    prior = TopologyPrior(
        [1, 2, 3],
        bonds=[[0, 1], [1, 2], [2, 3], [3, 4]],
        angles=[[0, 1, 2], [1, 2, 3], [2, 3, 4]],
        dihedral_maps=[QUADS],
        temperature=300.0,
    )
    repulsion = PairRepulsion([1, 2, 3], cutoff=4.0, temperature=300.0)
    potential = SumPotential([1, 2, 3], [prior, repulsion, _network([1, 2, 3])], KCAL)
    potential.pre_fit(_dataset(_ala2(500)))
    return potential


def test_export_and_run_a_cg_model_from_the_command_line(tmp_path: Path) -> None:
    potential = _fitted_cg_model()
    save_potential(potential, tmp_path / "cg.pt")
    np.savez(tmp_path / "frames.npz", nuclear_charges=np.array(BEAD_TYPES), coords=_ala2(5))
    common = [
        "--structure",
        str(tmp_path / "frames.npz"),
        "--reader_options",
        "{energy_key: null, forces_key: null}",
    ]
    export = ["openmm", "export", "--checkpoint", str(tmp_path / "cg.pt"), *common, "--frames", "0", "3"]
    with pytest.raises(ValueError, match="coarse-grained priors: give --masses, one per bead"):
        main([*export, "--output", str(tmp_path / "sim")])
    main([*export, "--replicas", "3", "--masses", *map(str, BEAD_MASSES), "--output", str(tmp_path / "sim")])
    folder = tmp_path / "sim"
    assert sorted(p.name for p in folder.iterdir()) == ["model.json", "start.pdb", "start.xml", "system.xml"]
    assert read_system(folder / "system.xml").getNumParticles() == 15
    run = ["openmm", "run", str(folder), "--steps", "20", "--report_every", "10"]  # at the priors' 300 K
    main([*run, "--platform", "Reference"])
    main([*run, "--platform", "Reference", "--continue"])
    log = np.loadtxt(folder / "log.csv", delimiter=",")
    np.testing.assert_array_equal(log[:, 0], [10, 20, 30, 40])  # the continued run goes on counting
    state = openmm.XmlSerializer.deserialize((folder / "state.xml").read_text())
    assert state.getStepCount() == 40
    assert np.abs(state.getVelocities(asNumpy=True).value_in_unit(unit.nanometer / unit.picosecond)).max() > 0
    frames = app.PDBFile(str(folder / "start.pdb")).getPositions(asNumpy=True).value_in_unit(unit.angstrom)
    np.testing.assert_allclose(frames[10:15], _ala2(5)[0], atol=1e-3)  # replica 3 starts on frame 0 again
    assert load_potential(tmp_path / "cg.pt").species == [1, 2, 3]


def test_pickled_python_force_is_never_written_or_read(tmp_path: Path) -> None:
    system = openmm.System()
    for _ in range(3):
        system.addParticle(1.0)
    system.addForce(potential_force(_network([1, 6, 8]), [6, 1, 8], periodic=False))
    with pytest.raises(ValueError, match="would be stored as pickled code"):
        write_system(system, tmp_path / "system.xml")
    (tmp_path / "system.xml").write_text(openmm.XmlSerializer.serialize(system))
    with pytest.raises(
        ValueError, match=r"system.xml: holds a PythonForce, i.e. pickled code, which is never read"
    ):
        read_system(tmp_path / "system.xml")
