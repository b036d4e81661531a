"""All-atom TIP3P water boxes with OpenMM at several temperatures, for one-bead coarse-graining.

One box of ``--molecules`` rigid TIP3P waters at about 1 g/cm³ (amber14's ``tip3p.xml``, PME
with a 9 Å cutoff), NVT with a Langevin middle integrator (1/ps, 2 fs), equilibrated for
``--equilibrate_ps`` at each temperature from the same start, then sampled every 0.2 ps for
``--production_ps``. Each temperature is written to ``<out>/water_<T>K.npz`` in the layout
``pyg-hipts cg map`` reads: ``nuclear_charges``, ``coords`` (Å), ``forces`` (kcal/mol/Å; the
rigid-water constraint forces are not included and cancel in a molecule's sum), ``energies``,
``cell [F, 3, 3]`` (Å), ``time_ps``, ``temperature``, ``masses`` and ``names`` (``HOH1:O``, ...).

    python examples/water_allatom_openmm.py --temperatures 260 280 300 330 360 --out runs/water_aa
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import openmm
from openmm import app, unit

KCAL = unit.kilocalorie_per_mole
SAMPLE_EVERY_STEPS = 100  # 0.2 ps


def water_box(molecules: int) -> tuple[app.ForceField, app.Modeller]:
    """A cubic box of ``molecules`` TIP3P waters at about 1 g/cm³ (29.9 Å³ per molecule)."""
    forcefield = app.ForceField("amber14/tip3p.xml")
    modeller = app.Modeller(app.Topology(), [])
    edge = (molecules * 29.9 / 1000.0) ** (1.0 / 3.0)
    modeller.addSolvent(forcefield, model="tip3p", boxSize=openmm.Vec3(edge, edge, edge) * unit.nanometer)
    return forcefield, modeller


def sample(
    modeller: app.Modeller, forcefield: app.ForceField, temperature: float, args: argparse.Namespace
) -> dict:
    """NVT frames at ``temperature`` as the arrays of the output file."""
    system = forcefield.createSystem(
        modeller.topology, nonbondedMethod=app.PME, nonbondedCutoff=0.9 * unit.nanometer, rigidWater=True
    )
    integrator = openmm.LangevinMiddleIntegrator(
        temperature * unit.kelvin, 1.0 / unit.picosecond, 2.0 * unit.femtosecond
    )
    integrator.setRandomNumberSeed(args.seed)
    simulation = app.Simulation(
        modeller.topology,
        system,
        integrator,
        openmm.Platform.getPlatformByName("CPU"),
        {"Threads": str(args.threads)},
    )
    simulation.context.setPositions(modeller.positions)
    simulation.minimizeEnergy()
    simulation.context.setVelocitiesToTemperature(temperature * unit.kelvin, args.seed)
    simulation.step(int(args.equilibrate_ps * 500))
    n_frames = int(args.production_ps * 1000 / (2 * SAMPLE_EVERY_STEPS))
    coords, forces, energies = [], [], []
    started = time.perf_counter()
    for frame in range(n_frames):
        simulation.step(SAMPLE_EVERY_STEPS)
        state = simulation.context.getState(getPositions=True, getForces=True, getEnergy=True)
        coords.append(state.getPositions(asNumpy=True).value_in_unit(unit.angstrom))
        forces.append(state.getForces(asNumpy=True).value_in_unit(KCAL / unit.angstrom))
        energies.append(state.getPotentialEnergy().value_in_unit(KCAL))
        if (frame + 1) % max(n_frames // 10, 1) == 0:
            elapsed = time.perf_counter() - started
            print(f"  {temperature:g} K: {frame + 1}/{n_frames} frames, {elapsed:.0f} s", flush=True)
    box = state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.angstrom)
    atoms = list(modeller.topology.atoms())
    return {
        "nuclear_charges": np.array([atom.element.atomic_number for atom in atoms]),
        "coords": np.array(coords),
        "forces": np.array(forces),
        "energies": np.array(energies),
        "cell": np.broadcast_to(np.asarray(box), (n_frames, 3, 3)),
        "time_ps": (np.arange(n_frames) + 1) * SAMPLE_EVERY_STEPS * 0.002,
        "temperature": np.array(temperature),
        "masses": np.array([atom.element.mass.value_in_unit(unit.amu) for atom in atoms]),
        "names": np.array([f"{atom.residue.name}{atom.residue.index + 1}:{atom.name}" for atom in atoms]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--molecules", type=int, default=256)
    parser.add_argument("--temperatures", type=float, nargs="+", default=[260.0, 280.0, 300.0, 330.0, 360.0])
    parser.add_argument("--equilibrate_ps", type=float, default=20.0)
    parser.add_argument("--production_ps", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("runs/water_aa"))
    args = parser.parse_args()
    if args.molecules < 200:
        parser.error("--molecules must be at least 200: the 9 Å cutoff needs a box edge above 18 Å")
    args.out.mkdir(parents=True, exist_ok=True)
    forcefield, modeller = water_box(args.molecules)
    for temperature in args.temperatures:
        path = args.out / f"water_{temperature:g}K.npz"
        np.savez(path, **sample(modeller, forcefield, temperature, args))
        print(f"wrote {path}", flush=True)


if __name__ == "__main__":
    main()
