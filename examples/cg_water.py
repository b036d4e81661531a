"""One-bead coarse-grained water from an all-atom TIP3P box, tested at a temperature it never saw.

1. OpenMM (``pip install openmm``, the ``openmm`` extra) simulates a TIP3P box (PME, rigid water, NVT)
   at the training temperature and at a second temperature; positions and forces are saved.
2. Each molecule becomes one bead at its centre of mass (made whole across the boundary); the
   bead force is the sum of its atoms' forces (rigid-water constraint forces cancel in it).
3. HIP-NN-TS is fitted to the bead forces of the training temperature on top of a pair
   repulsion fitted to the closest approach of the training frames (``configs/cg_water.yaml``).
4. CG Langevin (BAOAB) runs at both temperatures; the O–O (bead–bead) radial distribution
   function is compared with the mapped all-atom one: first-peak position and height, and a
   PNG per temperature in ``<out>/``; the frames and RDFs are kept in ``<out>/water_<T>K.npz``.
   The closest bead pair of every saved CG frame is compared with the all-atom closest approach;
   a run stops if two beads come closer than 0.7 of it (fusing).

Run from the project root (about 70 min on one CPU core with the defaults)::

    python examples/cg_water.py --molecules 256 --production-ps 100 --train-minutes 10
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib
import numpy as np
import torch

from pyg_hipts.cg import Mapping
from pyg_hipts.cg.analysis import close_pair_counts, first_peak, radial_distribution
from pyg_hipts.cli import run_cli
from pyg_hipts.md import closest_pairs, run_langevin
from pyg_hipts.nn import HipNN
from pyg_hipts.potentials import load_potential
from pyg_hipts.timing import max_time
from pyg_hipts.train.checkpoints import newest_checkpoint

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WATER_MASSES = [15.999, 1.008, 1.008]
RDF_BIN_WIDTH = 0.05  # Å; first_peak places the peak between bin centres
FUSION_FRACTION = 0.7  # a CG run stops when two beads come closer than this × the all-atom minimum


def simulate_tip3p(
    molecules: int, temperature: float, equilibrate_ps: float, production_ps: float, seed: int
):
    """All-atom TIP3P NVT: ``(positions [F, 3M, 3] Å, forces [F, 3M, 3] kcal/mol/Å, cell [3, 3] Å)``."""
    import openmm
    from openmm import app, unit

    forcefield = app.ForceField("amber14/tip3p.xml")
    modeller = app.Modeller(app.Topology(), [])
    edge = (molecules * 29.9 / 1000.0) ** (1.0 / 3.0)  # nm, at ~1 g/cm³ (29.9 Å³ per molecule)
    modeller.addSolvent(forcefield, model="tip3p", boxSize=openmm.Vec3(edge, edge, edge) * unit.nanometer)
    system = forcefield.createSystem(
        modeller.topology, nonbondedMethod=app.PME, nonbondedCutoff=0.9 * unit.nanometer, rigidWater=True
    )
    integrator = openmm.LangevinMiddleIntegrator(
        temperature * unit.kelvin, 1.0 / unit.picosecond, 2.0 * unit.femtosecond
    )
    integrator.setRandomNumberSeed(seed)
    simulation = app.Simulation(
        modeller.topology, system, integrator, openmm.Platform.getPlatformByName("CPU")
    )
    simulation.context.setPositions(modeller.positions)
    simulation.minimizeEnergy()
    simulation.context.setVelocitiesToTemperature(temperature * unit.kelvin, seed)
    simulation.step(int(equilibrate_ps * 500))
    positions, forces = [], []
    n_frames = int(production_ps * 5)  # one frame every 0.2 ps
    for frame in range(n_frames):
        simulation.step(100)
        state = simulation.context.getState(getPositions=True, getForces=True)
        positions.append(state.getPositions(asNumpy=True).value_in_unit(unit.angstrom))
        forces.append(state.getForces(asNumpy=True).value_in_unit(unit.kilocalorie_per_mole / unit.angstrom))
        if (frame + 1) % max(n_frames // 5, 1) == 0:
            print(f"  all-atom {temperature:.0f} K: {frame + 1}/{n_frames} frames", flush=True)
    box = state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.angstrom)
    return np.array(positions), np.array(forces), np.array(box)


def save_beads(path: Path, beads: np.ndarray, forces: np.ndarray, cell: np.ndarray) -> None:
    """Mapped frames ``[F, M, 3]`` as a force-only npz the project's reader takes (one bead type)."""
    np.savez(
        path,
        nuclear_charges=np.ones(beads.shape[1], dtype=np.int64),
        coords=beads,
        forces=forces,
        cell=np.broadcast_to(cell, (len(beads), 3, 3)),
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--molecules", type=int, default=256)
    parser.add_argument(
        "--temperatures", type=float, nargs=2, default=[300.0, 350.0], help="training, unseen"
    )
    parser.add_argument("--equilibrate-ps", type=float, default=20.0)
    parser.add_argument("--production-ps", type=float, default=100.0)
    parser.add_argument("--train-minutes", type=float, default=10.0)
    parser.add_argument("--cg-steps", type=int, default=20000)
    parser.add_argument("--cg-replicas", type=int, default=2)
    parser.add_argument("--out", default="runs/cg_water")
    parser.add_argument(
        "--reuse-reference",
        action="store_true",
        help="read the mapped all-atom frames of an earlier run (<out>/water_cg_<T>K.npz), not simulating",
    )
    parser.add_argument("--checkpoint", help="simulate this trained model instead of training one")
    args = parser.parse_args()
    if args.molecules < 200 and not args.reuse_reference:
        parser.error("--molecules must be at least 200: the 9 Å cutoff needs a box edge above 18 Å")
    print(f"# python {' '.join(sys.argv)}", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    mapped = {}
    for index, temperature in enumerate(args.temperatures):
        path = out / f"water_cg_{temperature:.0f}K.npz"
        if not args.reuse_reference:
            positions, forces, cell = simulate_tip3p(
                args.molecules, temperature, args.equilibrate_ps, args.production_ps, seed=index + 1
            )
            mapping = Mapping.per_molecule(positions.shape[1] // 3, WATER_MASSES)
            save_beads(path, mapping.positions(positions, cell), mapping.forces(forces), cell)
        with np.load(path) as saved:
            mapped[temperature] = (saved["coords"], saved["forces"], saved["cell"][0])
    train_temperature, unseen_temperature = args.temperatures
    beads, _, cell = mapped[train_temperature]

    if args.checkpoint is None:
        data = out / f"water_cg_{train_temperature:.0f}K.npz"
        run_cli(
            [
                *("fit", "--config", str(ROOT / "configs" / "cg_water.yaml"), "--data.train_file", str(data)),
                *("--trainer.max_time", max_time(args.train_minutes)),
                *("--trainer.logger.init_args.save_dir", str(out)),
            ]
        )
    checkpoint = args.checkpoint or newest_checkpoint(out, "best.ckpt")
    print(f"simulating {checkpoint}", flush=True)
    model = load_potential(checkpoint).double()  # the EMA weights, in the data's units
    blind_below = model.term(HipNN).spec()["init_args"]["dist_soft_min"]

    mass = torch.tensor([sum(WATER_MASSES)] * beads.shape[1], dtype=torch.float64)
    z = torch.ones(beads.shape[1], dtype=torch.long)
    cell_tensor = torch.as_tensor(cell, dtype=torch.float64)
    pbc = torch.ones(3, dtype=torch.bool)
    closest = closest_pairs(4.0, cell_tensor, pbc)  # every bead of liquid water has a neighbour within 4 Å
    r_max = 0.5 * float(np.min(np.diag(cell))) - 0.01
    n_bins = round(r_max / RDF_BIN_WIDTH)
    summary = {}
    for temperature in args.temperatures:
        reference_positions = mapped[temperature][0]
        reference_closest = float(closest(torch.as_tensor(reference_positions))[0].min())
        start = torch.as_tensor(reference_positions[-args.cg_replicas :], dtype=torch.float64)
        trajectory = run_langevin(
            model,
            z,
            start,
            mass,
            temperature=temperature,
            timestep_fs=4.0,
            friction_per_ps=5.0,
            n_steps=args.cg_steps,
            save_every=100,
            cell=cell_tensor,
            pbc=pbc,
            min_distance=FUSION_FRACTION * reference_closest,
        )
        frames = trajectory.positions[len(trajectory.steps) // 4 :].reshape(-1, beads.shape[1], 3).numpy()
        cg_closest = closest(torch.as_tensor(frames))[0].numpy()
        close_counts = close_pair_counts(frames, cell, blind_below)
        thirds = [float(part.mean()) for part in np.array_split(close_counts, 3)]
        r, g_cg = radial_distribution(frames, cell, r_max, n_bins)
        _, g_ref = radial_distribution(reference_positions, cell, r_max, n_bins)
        np.savez(
            out / f"water_{temperature:.0f}K.npz",
            cg_positions=frames.astype(np.float32),
            reference_positions=reference_positions.astype(np.float32),
            cell=cell,
            r=r,
            g_cg=g_cg,
            g_reference=g_ref,
        )
        (r_cg, h_cg), (r_ref, h_ref) = first_peak(r, g_cg), first_peak(r, g_ref)
        seen = "training" if temperature == train_temperature else "not trained on"
        summary[f"{temperature:.0f} K"] = {
            "trained_on": temperature == train_temperature,
            "peak_position_cg": r_cg,
            "peak_position_reference": r_ref,
            "peak_height_cg": h_cg,
            "peak_height_reference": h_ref,
            "closest_pair_cg": float(cg_closest.min()),
            "closest_pair_reference": reference_closest,
            "cg_frames_closer_than_reference": int((cg_closest < reference_closest).sum()),
            "cg_frames": len(frames),
            f"cg_pairs_under_{blind_below}_per_frame_by_thirds": thirds,
        }
        print(
            f"{temperature:.0f} K ({seen}): first peak CG {r_cg:.3f} Å / {h_cg:.2f}, "
            f"all-atom {r_ref:.3f} Å / {h_ref:.2f} "
            f"(Δr = {r_cg - r_ref:+.3f} Å, height {100 * (h_cg / h_ref - 1):+.1f} %); "
            f"closest pair CG {cg_closest.min():.3f} Å, all-atom {reference_closest:.3f} Å; "
            f"{int((cg_closest < reference_closest).sum())}/{len(frames)} CG frames "
            "closer than the all-atom minimum; pairs under the network's "
            f"{blind_below} Å floor per frame, by thirds of the run: {', '.join(f'{t:.2f}' for t in thirds)}"
        )
        figure, axis = plt.subplots(figsize=(5, 3.5))
        axis.plot(r, g_ref, color="black", label="all-atom TIP3P, mapped")
        axis.plot(r, g_cg, color="tab:blue", label="CG HIP-NN-TS")
        axis.set_xlabel("r (Å)")
        axis.set_ylabel("g(r), molecule centres")
        axis.set_title(f"{temperature:.0f} K ({seen})")
        axis.legend()
        figure.tight_layout()
        figure.savefig(out / f"water_rdf_{temperature:.0f}K.png", dpi=150)
    (out / "water_summary.json").write_text(json.dumps(summary, indent=2))
    print(f"wrote {out / 'water_summary.json'} and the RDF plots")


if __name__ == "__main__":
    main()
