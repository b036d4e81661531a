"""Coarse-grained alanine dipeptide by force matching, end to end.

1. Write the cgnet 5-bead frames (C N CA C N, 300 K, forces only) as ``<out>/ala2_cg.npz``.
2. ``pyg-hipts fit --config configs/cg_ala2.yaml``: a sum of a :class:`~pyg_hipts.cg.TopologyPrior`
   and HIP-NN-TS; the priors are fitted by Boltzmann inversion when fitting starts, then
   HIP-NN-TS learns the force left after them.
3. Force-matching loss on the test frames: priors alone against priors + network.
4. BAOAB Langevin at 300 K, many replicas started from reference frames.
5. The same simulation with the priors alone (the sum without its network), to see what the
   network adds.
6. The (φ, ψ) free-energy surfaces of both CG runs beside the reference's; α / β / αL
   populations and the Jensen–Shannon divergence of each CG histogram from the reference's;
   ``<out>/ala2_fes.png`` and ``<out>/ala2_summary.json``; the distributions of every bond,
   angle and dihedral in ``<out>/ala2_internal_coordinates.png``, with their divergences.

Run from the project root (about 15 min on 2 CPU cores with the defaults)::

    python examples/cg_ala2.py --train-minutes 8 --replicas 100 --steps 10000
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib
import numpy as np
import torch
from torch_geometric.data import Batch

from pyg_hipts.cg import angles, dihedrals, distances
from pyg_hipts.cg.analysis import (
    free_energy,
    jensen_shannon,
    ramachandran,
    shared_histograms,
    state_populations,
)
from pyg_hipts.cli import run_cli
from pyg_hipts.data import load_split, read_npz
from pyg_hipts.md import run_langevin
from pyg_hipts.nn import HipNN
from pyg_hipts.potentials import Potential, load_potential
from pyg_hipts.timing import max_time
from pyg_hipts.train.checkpoints import newest_checkpoint
from pyg_hipts.units import boltzmann_constant

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ALA2 = ROOT.parent / "shared" / "data" / "cgnet_ala2"
BEAD_TYPES = [1, 2, 3, 1, 2]  # C N CA C N
BEAD_MASSES = [12.011, 14.007, 12.011, 12.011, 14.007]
TEMPERATURE = 300.0
PHI_PSI = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4]])
BONDS = torch.tensor([[0, 1], [1, 2], [2, 3], [3, 4]])
ANGLES = torch.tensor([[0, 1, 2], [1, 2, 3], [2, 3, 4]])


def write_data(out: Path) -> Path:
    path = out / "ala2_cg.npz"
    np.savez(
        path,
        nuclear_charges=np.array(BEAD_TYPES),
        coords=np.load(ALA2 / "ala2_coordinates.npy"),
        forces=np.load(ALA2 / "ala2_forces.npy"),
    )
    return path


def force_loss(model: Potential, frames: list) -> float:
    """Mean squared force error ((kcal/mol/Å)², per component) over ``frames``."""
    batch = Batch.from_data_list(frames)
    predicted = model.predict(batch.z, batch.pos.double(), batch.batch).forces
    return float(((predicted - batch.forces.double()) ** 2).mean())


def simulate(model: Potential, starts: torch.Tensor, args: argparse.Namespace) -> np.ndarray:
    """CG Langevin of ``starts [R, 5, 3]`` in the model's units (Å, kcal/mol); the frames after
    the first fifth, ``[F, R, 5, 3]``."""
    trajectory = run_langevin(
        model,
        torch.tensor(BEAD_TYPES),
        starts,
        torch.tensor(BEAD_MASSES, dtype=torch.float64),
        temperature=TEMPERATURE,
        timestep_fs=args.timestep_fs,
        friction_per_ps=args.friction_per_ps,
        n_steps=args.steps,
        save_every=50,
    )
    return trajectory.positions[len(trajectory.steps) // 5 :].numpy()


def internal_coordinates(positions: np.ndarray) -> dict[str, np.ndarray]:
    """Bond lengths (Å), angles and dihedrals (degrees) of frames ``[..., 5, 3]``, by name."""
    x = torch.as_tensor(positions.reshape(-1, 5, 3), dtype=torch.float64)
    names = [f"bond {i}-{j}" for i, j in BONDS.tolist()] + [
        f"angle {i}-{j}-{k}" for i, j, k in ANGLES.tolist()
    ]
    values = torch.cat(
        [distances(x, BONDS), torch.rad2deg(angles(x, ANGLES)), torch.rad2deg(dihedrals(x, PHI_PSI))], dim=1
    )
    return dict(zip([*names, "φ", "ψ"], values.T.numpy(), strict=True))


def plot_internal_coordinates(coordinates: dict[str, dict[str, np.ndarray]], path: Path) -> dict:
    """One panel per bond, angle and dihedral: the ``"reference"`` entry of ``coordinates`` (by
    :func:`internal_coordinates`) against every other; the Jensen–Shannon divergences."""
    reference, simulated = (
        coordinates["reference"],
        {k: v for k, v in coordinates.items() if k != "reference"},
    )
    figure, axes = plt.subplots(3, 3, figsize=(12, 9))
    divergences: dict[str, dict[str, float]] = {name: {} for name in simulated}
    for axis, coordinate in zip(axes.ravel(), reference, strict=True):
        for name, values in simulated.items():
            centers, p, q = shared_histograms(reference[coordinate], values[coordinate])
            divergences[name][coordinate] = jensen_shannon(p, q)
            axis.plot(centers, q, label=name)
        axis.plot(centers, p, color="black", label="reference")
        axis.set_title(coordinate)
    axes[0, 0].legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return divergences


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--train-minutes", type=float, default=8.0)
    parser.add_argument("--replicas", type=int, default=100)
    parser.add_argument("--steps", type=int, default=10000)
    parser.add_argument("--timestep-fs", type=float, default=2.0)
    parser.add_argument("--friction-per-ps", type=float, default=1.0)
    parser.add_argument("--out", default="runs/cg_ala2")
    parser.add_argument("--checkpoint", help="skip training and use this checkpoint")
    parser.add_argument(
        "--config", action="append", default=[], help="YAML applied after configs/cg_ala2.yaml (repeatable)"
    )
    args = parser.parse_args()
    print(f"# python {' '.join(sys.argv)}", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = write_data(out)

    if args.checkpoint is None:
        run_cli(
            [
                *("fit", "--config", str(ROOT / "configs" / "cg_ala2.yaml")),
                *(item for path in args.config for item in ("--config", path)),
                *("--data.train_file", str(data)),
                *("--trainer.max_time", max_time(args.train_minutes)),
                *("--trainer.logger.init_args.save_dir", str(out)),
            ]
        )
        checkpoint = newest_checkpoint(out, "best.ckpt")
    else:
        checkpoint = Path(args.checkpoint)
    model = load_potential(checkpoint).double()  # the EMA weights, in the data's units

    models = {"priors alone": model.without(HipNN), "priors + network": model}
    frames = read_npz(data, energy_key=None)
    test_frames = list(frames[load_split(checkpoint.parents[1] / "split.npz")["test"]])
    losses = {name: force_loss(candidate, test_frames) for name, candidate in models.items()}
    print(
        f"force-matching loss on {len(test_frames)} test frames (MSE, (kcal/mol/Å)²): "
        + ", ".join(f"{name} {loss:.2f}" for name, loss in losses.items())
    )

    reference = np.load(ALA2 / "ala2_coordinates.npy").astype(np.float64)
    starts = torch.as_tensor(reference[np.linspace(0, len(reference) - 1, args.replicas).astype(int)])
    simulated = {name: simulate(candidate, starts, args) for name, candidate in models.items()}
    np.save(out / "cg_trajectory.npy", simulated["priors + network"].astype(np.float32))

    thermal_energy = boltzmann_constant(model.units.energy) * TEMPERATURE
    coordinates = {"reference": internal_coordinates(reference)} | {
        name: internal_coordinates(x) for name, x in simulated.items()
    }
    angles = {name: (np.radians(c["φ"]), np.radians(c["ψ"])) for name, c in coordinates.items()}
    histograms = {name: ramachandran(*pair) for name, pair in angles.items()}
    populations = {name: state_populations(*pair) for name, pair in angles.items()}
    divergences = {name: jensen_shannon(histograms["reference"], histograms[name]) for name in models}
    internal = plot_internal_coordinates(coordinates, out / "ala2_internal_coordinates.png")
    summary = {
        "force_mse": losses,
        "jensen_shannon_internal_coordinates": internal,
        "populations": populations,
        "jensen_shannon": divergences,
        "simulated_ns_per_model": args.replicas * args.steps * args.timestep_fs * 1e-6,
    }
    (out / "ala2_summary.json").write_text(json.dumps(summary, indent=2))
    for name, values in populations.items():
        shares = ", ".join(f"{state} {100 * p:.1f} %" for state, p in values.items())
        divergence = f"; Jensen–Shannon {divergences[name]:.3f}" if name in divergences else ""
        print(f"{name:>16}: {shares}{divergence}")
    for name, values in internal.items():
        print(f"{name:>16}: JS of bonds, angles, dihedrals " + ", ".join(f"{v:.3f}" for v in values.values()))

    figure, axes = plt.subplots(1, 3, figsize=(13, 4), sharey=True)
    extent = [-180, 180, -180, 180]
    titles = ("reference (all-atom, mapped)", "CG priors alone", "CG priors + HIP-NN-TS")
    for axis, probability, title in zip(axes, histograms.values(), titles, strict=True):
        image = axis.imshow(
            free_energy(probability, thermal_energy).T, origin="lower", extent=extent, vmax=8, cmap="viridis"
        )
        axis.set_title(title)
        axis.set_xlabel("φ (°)")
    axes[0].set_ylabel("ψ (°)")
    figure.colorbar(image, ax=axes, label=f"free energy ({model.units.energy})")
    figure.savefig(out / "ala2_fes.png", dpi=150)
    print(f"wrote {out / 'ala2_fes.png'} and {out / 'ala2_summary.json'}")


if __name__ == "__main__":
    main()
