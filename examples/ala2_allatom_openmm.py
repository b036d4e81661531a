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

    python examples/ala2_allatom_openmm.py --nanoseconds 10 --out runs/ala2_aa/ala2_300K.npz
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import openmm
from openmm import app, unit

DEFAULT_PDB = Path(__file__).resolve().parents[2] / "shared/data/pdb/alanine-dipeptide-nowater.pdb"
KJ_PER_KCAL = 4.184


def build_simulation(pdb: app.PDBFile, args: argparse.Namespace) -> app.Simulation:
    """Amber14 + OBC2 system with a Langevin middle integrator on the CPU platform."""
    forcefield = app.ForceField("amber14-all.xml", "implicit/obc2.xml")
    system = forcefield.createSystem(
        pdb.topology,
        nonbondedMethod=app.NoCutoff,
        constraints=app.HBonds,
        hydrogenMass=args.hydrogen_mass * unit.amu,
    )
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
    return simulation


def sample(simulation: app.Simulation, n_frames: int, steps_per_frame: int) -> dict:
    """Run ``n_frames * steps_per_frame`` steps, keeping one frame every ``steps_per_frame``."""
    n_atoms = simulation.topology.getNumAtoms()
    coords = np.empty((n_frames, n_atoms, 3))
    forces = np.empty((n_frames, n_atoms, 3))
    energies = np.empty(n_frames)
    start = time.perf_counter()
    for frame in range(n_frames):
        simulation.step(steps_per_frame)
        state = simulation.context.getState(getPositions=True, getForces=True, getEnergy=True)
        coords[frame] = state.getPositions(asNumpy=True).value_in_unit(unit.angstrom)
        forces[frame] = (
            state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.angstrom) / KJ_PER_KCAL
        )
        energies[frame] = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
        if (frame + 1) % max(1, n_frames // 20) == 0:
            elapsed = time.perf_counter() - start
            print(
                f"frame {frame + 1}/{n_frames}, {elapsed:.0f} s, "
                f"{elapsed / (frame + 1) * (n_frames - frame - 1):.0f} s left",
                flush=True,
            )
    return {"coords": coords, "forces": forces, "energies": energies / KJ_PER_KCAL}


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
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    pdb = app.PDBFile(str(args.pdb))
    simulation = build_simulation(pdb, args)
    steps_per_ps = 1000 / args.timestep_fs
    simulation.step(int(args.equilibrate_ps * steps_per_ps))
    steps_per_frame = int(round(args.save_every_ps * steps_per_ps))
    n_frames = int(round(args.nanoseconds * 1000 / args.save_every_ps))
    arrays = sample(simulation, n_frames, steps_per_frame)
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
