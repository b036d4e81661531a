"""ML/MM in OpenMM: a few water molecules modelled by a trained potential inside a TIP3P box.

The box comes from OpenMM's ``Modeller`` (amber14 TIP3P, flexible so that the ML waters can
move freely), the first ``--ml-waters`` molecules are handed to the potential with
``MLPotential("pyg_hipts", checkpoint=...).createMixedSystem`` (mechanical embedding: the ML
waters' internal energy from the potential, their interactions with the MM waters from TIP3P),
and Langevin dynamics run at 300 K. The ML waters' O–H distances and H–O–H angle are printed as
the run goes. Train a water model first (``pyg-hipts fit --config configs/water.yaml``), then::

    python examples/openmm_mlmm.py --checkpoint runs/water/version_0/checkpoints/best.ckpt --steps 2000
"""

from __future__ import annotations

import argparse

import numpy as np
import openmm
from openmm import app, unit
from openmmml import MLPotential


def water_geometry(positions: np.ndarray) -> tuple[float, float]:
    """Mean O–H distance (Å) and H–O–H angle (degrees) of waters ``[W, 3 (O, H, H), 3]``."""
    first, second = positions[:, 1] - positions[:, 0], positions[:, 2] - positions[:, 0]
    lengths = np.concatenate([np.linalg.norm(first, axis=1), np.linalg.norm(second, axis=1)])
    cosine = (first * second).sum(1) / (np.linalg.norm(first, axis=1) * np.linalg.norm(second, axis=1))
    return float(lengths.mean()), float(np.degrees(np.arccos(cosine)).mean())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", required=True, help="a trained water potential (H, O)")
    parser.add_argument("--box-nm", type=float, default=2.0)
    parser.add_argument("--ml-waters", type=int, default=4)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--timestep-fs", type=float, default=0.5)
    parser.add_argument("--report-every", type=int, default=200)
    options = parser.parse_args()
    field = app.ForceField("amber14/tip3pfb.xml")
    modeller = app.Modeller(app.Topology(), [])
    modeller.addSolvent(field, boxSize=openmm.Vec3(*[options.box_nm] * 3) * unit.nanometer)
    mm_system = field.createSystem(
        modeller.topology, nonbondedMethod=app.PME, nonbondedCutoff=0.8 * unit.nanometer, rigidWater=False
    )
    waters = list(modeller.topology.residues())[: options.ml_waters]
    ml_atoms = [atom.index for residue in waters for atom in residue.atoms()]
    potential = MLPotential("pyg_hipts", checkpoint=options.checkpoint)
    system = potential.createMixedSystem(modeller.topology, mm_system, ml_atoms)
    integrator = openmm.LangevinMiddleIntegrator(
        300 * unit.kelvin, 1 / unit.picosecond, options.timestep_fs * unit.femtosecond
    )
    simulation = app.Simulation(
        modeller.topology, system, integrator, openmm.Platform.getPlatformByName("CPU")
    )
    simulation.context.setPositions(modeller.positions)
    simulation.minimizeEnergy(maxIterations=200)
    simulation.context.setVelocitiesToTemperature(300 * unit.kelvin, 0)
    print(f"{modeller.topology.getNumAtoms()} atoms, {len(ml_atoms)} of them ML ({options.ml_waters} waters)")
    for done in range(0, options.steps, options.report_every):
        simulation.step(options.report_every)
        state = simulation.context.getState(getPositions=True, getEnergy=True)
        positions = state.getPositions(asNumpy=True).value_in_unit(unit.angstrom)[ml_atoms].reshape(-1, 3, 3)
        oh, angle = water_geometry(np.asarray(positions))
        energy = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
        step = done + options.report_every
        print(f"step {step}: E = {energy:.1f} kJ/mol, ML waters O–H {oh:.3f} Å, H–O–H {angle:.1f}°")


if __name__ == "__main__":
    main()
