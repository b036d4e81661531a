"""Coarse-grained alanine dipeptide by force matching, end to end through the ``pyg-hipts`` commands.

Data (``--data``): ``cgnet`` (the pre-mapped cgnet frames of ``../shared/data/cgnet_ala2``,
written here with masses, bead names, temperature and frame times), or an all-atom file with
forces (e.g. from ``examples/ala2_allatom_openmm.py``), mapped by
``configs/cg_map/ala2_backbone.yaml``. Each step prints the command it runs:

1. ``pyg-hipts cg map`` (or the cgnet conversion) -> ``<out>/ala2_cg.npz``;
2. ``pyg-hipts fit --config configs/cg_ala2.yaml`` (split by time blocks);
3. the force-matching loss on the test block: priors alone against priors + network;
4. ``pyg-hipts cg simulate``: the trained model, and the priors alone (``--without``);
5. ``pyg-hipts cg refine``: one step of iterative Boltzmann inversion of the one-dimensional
   dihedral priors from the trained model's run, then ``cg simulate`` of the refined model;
6. ``pyg-hipts cg analyze``: all three against the mapped reference -> ``<out>/analysis``;
7. the α / β / αL populations of each model by free-energy perturbation along the mirror map
   (:mod:`pyg_hipts.cg.mirror`), which needs no crossing of φ = 0 in the runs ->
   ``<out>/analysis/mirror_populations.json``.

``--compile`` trains and simulates through compiled graphs. From the project root::

    python examples/cg_ala2.py --data cgnet --out runs/cg_ala2_cgnet --train_minutes 15 \\
        --replicas 100 --steps 50000
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import Batch

from pyg_hipts.cg import FourierDihedrals, TopologyPrior, dihedrals
from pyg_hipts.cg.mirror import format_mirror_populations, mirror_populations
from pyg_hipts.cg_workflow.analyze import read_simulation
from pyg_hipts.cli import run_cli
from pyg_hipts.data import load_split, read_npz
from pyg_hipts.nn import HipNN
from pyg_hipts.potentials import Potential, load_potential
from pyg_hipts.timing import max_time
from pyg_hipts.train.checkpoints import newest_checkpoint
from pyg_hipts.units import boltzmann_constant

ROOT = Path(__file__).resolve().parents[1]
CGNET = ROOT.parent / "shared" / "data" / "cgnet_ala2"
BEADS = ["C", "N", "CA", "C", "N"]
PHI_PSI = [0, 1, 2, 3, 4]  # φ = dihedral of beads 0-1-2-3, ψ = 1-2-3-4
BEAD_MASSES = [43.045, 15.015, 28.053, 28.010, 30.049]  # each backbone atom with its group
CGNET_SPACING_PS = 10.0


def command(arguments: list[str]) -> object:
    """Print and run one ``pyg-hipts`` command."""
    print(f"\n$ pyg-hipts {shlex.join(arguments)}", flush=True)
    return run_cli(arguments)


def write_cgnet(path: Path) -> Path:
    """The cgnet frames as a coarse-grained training file, like ``cg map`` writes."""
    coords = np.load(CGNET / "ala2_coordinates.npy")
    np.savez(
        path,
        nuclear_charges=np.array([1, 2, 3, 1, 2]),
        coords=coords,
        forces=np.load(CGNET / "ala2_forces.npy"),
        masses=np.array(BEAD_MASSES),
        names=np.array(BEADS),
        temperature=np.array(300.0),
        time_ps=(np.arange(len(coords)) + 1) * CGNET_SPACING_PS,
        length_unit=np.array("Å"),
        energy_unit=np.array("kcal/mol"),
    )
    return path


def force_loss(model: Potential, frames: list) -> float:
    """Mean squared force error ((kcal/mol/Å)², per component) over ``frames``."""
    batch = Batch.from_data_list(frames)
    predicted = model.predict(batch.z, batch.pos.double(), batch.batch).forces
    return float(((predicted - batch.forces.double()) ** 2).mean())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default="cgnet", help="'cgnet' or an all-atom file with forces")
    parser.add_argument("--out", default="runs/cg_ala2")
    parser.add_argument("--train_minutes", type=float, default=15.0)
    parser.add_argument("--replicas", type=int, default=100)
    parser.add_argument("--steps", type=int, default=50000, help="2 fs steps per replica")
    parser.add_argument("--discard_ps", type=float, default=20.0)
    parser.add_argument("--checkpoint", help="skip training and use this checkpoint")
    parser.add_argument("--config", action="append", default=[], help="YAML after configs/cg_ala2.yaml")
    parser.add_argument("--keep_runs", action="store_true", help="reuse simulations already in --out")
    parser.add_argument("--compile", action="store_true", help="train and simulate through compiled graphs")
    args = parser.parse_args()
    print(f"# python {shlex.join(sys.argv)}", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = out / "ala2_cg.npz"
    if args.data == "cgnet":
        write_cgnet(data)
    else:
        map_config = str(ROOT / "configs" / "cg_map" / "ala2_backbone.yaml")
        command(["cg", "map", "--config", map_config, "--input", args.data, "--output", str(data)])

    if args.checkpoint is None:
        command(
            [
                *("fit", "--config", str(ROOT / "configs" / "cg_ala2.yaml")),
                *(item for path in args.config for item in ("--config", path)),
                *("--data.train_file", str(data), "--trainer.max_time", max_time(args.train_minutes)),
                *("--trainer.logger.init_args.save_dir", str(out)),
                *(("--model.compile", "true") if args.compile else ()),
            ]
        )
        checkpoint = newest_checkpoint(out, "best.ckpt")
    else:
        checkpoint = Path(args.checkpoint)

    model = load_potential(checkpoint).double()
    frames = read_npz(data, energy_key=None)
    test_frames = list(frames[load_split(checkpoint.parents[1] / "split.npz")["test"]])
    losses = {
        "priors alone": force_loss(model.without(HipNN), test_frames),
        "priors + network": force_loss(model, test_frames),
    }
    print(
        f"force-matching loss on the {len(test_frames)} frames of the test block (MSE, (kcal/mol/Å)²): "
        + ", ".join(f"{name} {loss:.2f}" for name, loss in losses.items())
    )

    runs = {"priors alone": out / "md_priors", "priors + HIP-NN-TS": out / "md_network"}
    simulate(checkpoint, data, runs["priors alone"], args, "--without", "pyg_hipts.nn.HipNN")
    simulate(checkpoint, data, runs["priors + HIP-NN-TS"], args)
    if any(isinstance(term, FourierDihedrals) for term in model.term(TopologyPrior).terms):
        refined = out / "refined.pt"
        network_run = str(runs["priors + HIP-NN-TS"] / "trajectory.npz")
        command(
            [
                *("cg", "refine", "--checkpoint", str(checkpoint), "--reference", str(data)),
                *(
                    "--trajectory",
                    network_run,
                    "--discard_ps",
                    str(args.discard_ps),
                    "--output",
                    str(refined),
                ),
            ]
        )
        runs["refined priors + HIP-NN-TS"] = out / "md_refined"
        simulate(refined, data, runs["refined priors + HIP-NN-TS"], args)
    else:
        print("\nthe model has no one-dimensional dihedral priors: nothing to refine")
    command(
        [
            *("cg", "analyze", "--reference", str(data), "--output", str(out / "analysis")),
            *("--trajectory", *(str(folder / "trajectory.npz") for folder in runs.values())),
            *("--labels", *runs),
            *("--phi_psi", *map(str, PHI_PSI)),
            *("--discard_ps", str(args.discard_ps)),
        ]
    )
    mirror_estimates(runs, checkpoint, out / "refined.pt", frames[0].z, args.discard_ps, out / "analysis")


def mirror_estimates(
    runs: dict[str, Path], checkpoint: Path, refined: Path, z: torch.Tensor, discard_ps: float, output: Path
) -> None:
    """α / β / αL populations of every run's model from its own frames (step 7)."""
    print("\npopulations by free-energy perturbation along the mirror map (pyg_hipts.cg.mirror):")
    estimates = {}
    for label, folder in runs.items():
        model = load_potential(refined if label.startswith("refined") else checkpoint).double()
        if label == "priors alone":
            model = model.without(HipNN)
        run = read_simulation(folder / "trajectory.npz", discard_ps)
        thermal_energy = boltzmann_constant(model.units.energy) * run.temperature
        positions = run.positions
        frames = torch.as_tensor(positions.reshape(-1, *positions.shape[2:]))
        estimates[label] = mirror_populations(model, z, frames, PHI_PSI, thermal_energy)
        phi = dihedrals(frames, torch.tensor([PHI_PSI[:4]]))[:, 0].reshape(positions.shape[:2])
        crossing = int(((phi > 0).any(0) & (phi < 0).any(0)).sum())
        estimates[label]["replicas_on_both_sides"] = crossing
        print(
            f"{label}: {format_mirror_populations(estimates[label])}; "
            f"{crossing} of {phi.shape[1]} replicas visit both φ < 0 and φ > 0"
        )
    (output / "mirror_populations.json").write_text(json.dumps(estimates, indent=2))


def simulate(checkpoint: Path, data: Path, folder: Path, args: argparse.Namespace, *extra: str) -> None:
    """``cg simulate`` of ``checkpoint`` into ``folder`` (kept with ``--keep_runs`` when it is there)."""
    if args.keep_runs and (folder / "state.npz").exists():
        print(f"\nreusing the run in {folder}")
        return
    command(
        [
            *(
                "cg",
                "simulate",
                "--checkpoint",
                str(checkpoint),
                "--start",
                str(data),
                "--output",
                str(folder),
            ),
            *("--replicas", str(args.replicas), "--steps", str(args.steps), *extra, "--overwrite"),
            *(("--compile",) if args.compile else ()),
        ]
    )


if __name__ == "__main__":
    main()
