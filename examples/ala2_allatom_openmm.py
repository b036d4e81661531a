"""All-atom reference trajectory of alanine dipeptide with OpenMM, for coarse-graining.

Amber14 (ff14SB) in OBC2 implicit solvent, Langevin (middle scheme) at the chosen temperature,
bonds to hydrogen constrained, 4 fs steps, started from
``../shared/data/pdb/alanine-dipeptide-nowater.pdb`` after an energy minimisation and an
equilibration of ``--equilibrate_ps``. Every ``--save_every_ps`` the positions (Å), the
forces (kcal/mol/Å, the potential's forces; constraint forces are not included) and the
potential energy (kcal/mol) are kept. Written in the rMD17 npz layout that ``pyg-hipts`` reads
(``nuclear_charges``, ``coords``, ``forces``, ``energies``) plus what ``pyg-hipts cg map``
reads (:mod:`pyg_hipts.data.system`): ``time_ps``, ``temperature``, ``masses`` (the elements'
masses) and ``names`` (atom labels such as ``ALA2:CA``). The hydrogen constraints act between
a hydrogen and its heavy atom, so they cancel in any bead force that sums over both. Hydrogen masses are
repartitioned to ``--hydrogen_mass`` (4 amu) for the 4 fs step: masses do not change the
Boltzmann distribution of configurations, which is all that force matching uses.

With ``--bias_ns``, the backbone dihedral φ (ACE C, ALA N, CA, C), and with ``--bias_on phi psi``
also ψ (ALA N, CA, C, NME N), are first flattened by that long a well-tempered metadynamics
(OpenMM's ``Metadynamics``, ``--bias_factor`` γ): its bias ``V`` tends to ``−(1 − 1/γ) F``, so
the frames, sampled afterwards with ``V`` frozen, cross the barriers between φ < 0 and φ > 0
(the αL basin), and between α and β, instead of staying on one side. ``V`` depends on the bead
positions of a backbone mapping only, so the conditional distribution of the other atoms, and
with it the mean force that force matching learns, is that of the unbiased ensemble. The forces
written are those of the force field alone (without ``V``), and ``weights`` (each frame's
``exp(V/kT)``, largest 1) restores the unbiased ensemble in ``pyg-hipts cg analyze``.

    python examples/ala2_allatom_openmm.py --nanoseconds 10 --out runs/ala2_aa/ala2_300K.npz
    python examples/ala2_allatom_openmm.py --nanoseconds 6 --bias_ns 1 --out runs/ala2_aa/ala2_300K_phi.npz
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import openmm
from openmm import app, unit

from pyg_hipts.units import boltzmann_constant

DEFAULT_PDB = Path(__file__).resolve().parents[2] / "shared/data/pdb/alanine-dipeptide-nowater.pdb"
KJ_PER_KCAL = 4.184


BACKBONE_DIHEDRALS = {
    "phi": [("ACE", "C"), ("ALA", "N"), ("ALA", "CA"), ("ALA", "C")],
    "psi": [("ALA", "N"), ("ALA", "CA"), ("ALA", "C"), ("NME", "N")],
}


def dihedral_atoms(topology: app.Topology, name: str) -> list[int]:
    """Indices of the four atoms of the backbone dihedral ``name`` (``phi`` or ``psi``)."""
    wanted = BACKBONE_DIHEDRALS[name]
    found = {(atom.residue.name, atom.name): atom.index for atom in topology.atoms()}
    missing = [f"{residue}:{atom}" for residue, atom in wanted if (residue, atom) not in found]
    if missing:
        raise ValueError(f"the structure has no atom {', '.join(missing)}: {name} is not defined")
    return [found[key] for key in wanted]


def backbone_metadynamics(
    system: openmm.System, topology: app.Topology, args: argparse.Namespace
) -> tuple[app.Metadynamics, int]:
    """Well-tempered metadynamics on the dihedrals ``args.bias_on``, depositing 1 kJ/mol
    Gaussians of width 0.35 rad every ps, and the force group of the bias force it adds to
    ``system``."""
    variables = []
    for name in args.bias_on:
        angle = openmm.CustomTorsionForce("theta")
        angle.addTorsion(*dihedral_atoms(topology, name))
        grid = 180 if len(args.bias_on) == 1 else 72
        variables.append(app.BiasVariable(angle, -math.pi, math.pi, 0.35, periodic=True, gridWidth=grid))
    steps_per_ps = int(round(1000 / args.timestep_fs))
    n_forces = system.getNumForces()
    metadynamics = app.Metadynamics(
        system, variables, args.temperature * unit.kelvin, args.bias_factor, 1.0, steps_per_ps
    )
    return metadynamics, system.getForce(n_forces).getForceGroup()


def build_simulation(
    pdb: app.PDBFile, args: argparse.Namespace
) -> tuple[app.Simulation, tuple[app.Metadynamics, int] | None]:
    """Amber14 + OBC2 system with a Langevin middle integrator on the CPU platform, and the
    metadynamics with its force group (``None`` without ``--bias_ns``)."""
    forcefield = app.ForceField("amber14-all.xml", "implicit/obc2.xml")
    system = forcefield.createSystem(
        pdb.topology,
        nonbondedMethod=app.NoCutoff,
        constraints=app.HBonds,
        hydrogenMass=args.hydrogen_mass * unit.amu,
    )
    metadynamics = backbone_metadynamics(system, pdb.topology, args) if args.bias_ns > 0 else None
    temperature, seed = args.temperature, args.seed
    integrator = openmm.LangevinMiddleIntegrator(
        temperature * unit.kelvin, 1.0 / unit.picosecond, args.timestep_fs * unit.femtoseconds
    )
    integrator.setRandomNumberSeed(seed)
    platform = openmm.Platform.getPlatformByName("CPU")
    simulation = app.Simulation(pdb.topology, system, integrator, platform, {"Threads": str(args.threads)})
    simulation.context.setPositions(pdb.positions)
    simulation.minimizeEnergy()
    simulation.context.setVelocitiesToTemperature(temperature * unit.kelvin, seed)
    return simulation, metadynamics


def report_progress(done: int, total: int, start: float, what: str) -> None:
    """Print ``done/total`` with the time taken and left, 20 times over a loop."""
    if done % max(1, total // 20) == 0:
        elapsed = time.perf_counter() - start
        print(
            f"{what} {done}/{total}, {elapsed:.0f} s, {elapsed / done * (total - done):.0f} s left",
            flush=True,
        )


def build_bias(
    simulation: app.Simulation, metadynamics: app.Metadynamics, picoseconds: float, timestep_fs: float
) -> None:
    """Build the metadynamics bias for ``picoseconds``, in blocks of about 100 ps."""
    steps_per_ps = int(round(1000 / timestep_fs))
    chunks = max(1, int(round(picoseconds / 100)))
    start = time.perf_counter()
    for chunk in range(1, chunks + 1):
        metadynamics.step(simulation, int(round(picoseconds / chunks * steps_per_ps)))
        report_progress(chunk, chunks, start, f"metadynamics, {picoseconds / chunks:g} ps block")


def sample(
    simulation: app.Simulation, n_frames: int, steps_per_frame: int, bias_group: int | None
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Run ``n_frames * steps_per_frame`` steps, keeping one frame every ``steps_per_frame``:
    positions, the force field's forces and energy (the bias force group ``bias_group`` left
    out) and the bias energy (kcal/mol)."""
    n_atoms = simulation.topology.getNumAtoms()
    coords = np.empty((n_frames, n_atoms, 3))
    forces = np.empty((n_frames, n_atoms, 3))
    energies = np.empty(n_frames)
    bias = np.zeros(n_frames)
    physical = set(range(32)) - {bias_group}
    start = time.perf_counter()
    for frame in range(n_frames):
        simulation.step(steps_per_frame)
        state = simulation.context.getState(
            getPositions=True, getForces=True, getEnergy=True, groups=physical
        )
        coords[frame] = state.getPositions(asNumpy=True).value_in_unit(unit.angstrom)
        forces[frame] = state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.angstrom)
        energies[frame] = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
        if bias_group is not None:
            biased = simulation.context.getState(getEnergy=True, groups={bias_group})
            bias[frame] = biased.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
        report_progress(frame + 1, n_frames, start, "frame")
    return {
        "coords": coords,
        "forces": forces / KJ_PER_KCAL,
        "energies": energies / KJ_PER_KCAL,
    }, bias / KJ_PER_KCAL


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pdb", type=Path, default=DEFAULT_PDB)
    parser.add_argument("--temperature", type=float, default=300.0, help="K")
    parser.add_argument("--nanoseconds", type=float, default=10.0)
    parser.add_argument("--save_every_ps", type=float, default=0.5)
    parser.add_argument("--equilibrate_ps", type=float, default=100.0)
    parser.add_argument("--timestep_fs", type=float, default=4.0)
    parser.add_argument("--hydrogen_mass", type=float, default=4.0, help="amu")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--bias_ns", type=float, default=0.0, help="metadynamics before sampling")
    parser.add_argument("--bias_on", nargs="+", choices=["phi", "psi"], default=["phi"])
    parser.add_argument("--bias_factor", type=float, default=6.0, help="well-tempered γ")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    pdb = app.PDBFile(str(args.pdb))
    simulation, metadynamics = build_simulation(pdb, args)
    steps_per_ps = 1000 / args.timestep_fs
    simulation.step(int(args.equilibrate_ps * steps_per_ps))
    bias_group = None
    if metadynamics is not None:
        metadynamics, bias_group = metadynamics
        build_bias(simulation, metadynamics, 1000 * args.bias_ns, args.timestep_fs)
    steps_per_frame = int(round(args.save_every_ps * steps_per_ps))
    n_frames = int(round(args.nanoseconds * 1000 / args.save_every_ps))
    arrays, bias = sample(simulation, n_frames, steps_per_frame, bias_group)
    if metadynamics is not None:
        thermal_energy = boltzmann_constant("kcal/mol") * args.temperature
        arrays["weights"] = np.exp((bias - bias.max()) / thermal_energy)
    atoms = list(pdb.topology.atoms())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        args.out,
        nuclear_charges=np.array([atom.element.atomic_number for atom in atoms]),
        names=np.array([f"{atom.residue.name}{atom.residue.id}:{atom.name}" for atom in atoms]),
        masses=np.array([atom.element.mass.value_in_unit(unit.amu) for atom in atoms]),
        time_ps=(np.arange(n_frames) + 1) * args.save_every_ps,
        temperature=np.array(args.temperature),
        **arrays,
    )
    print(f"wrote {n_frames} frames ({args.nanoseconds} ns at {args.temperature} K) to {args.out}")


if __name__ == "__main__":
    main()
