"""One-bead coarse-grained water trained at one temperature, simulated at temperatures it never saw.

The all-atom TIP3P boxes come from ``examples/water_allatom_openmm.py`` (one file per
temperature in ``--all_atom``). Each step prints the ``pyg-hipts`` command it runs:

1. ``cg map --molecules``: one bead per molecule at its centre of mass, forces summed;
2. ``fit --config configs/cg_water.yaml`` on the ``--train`` temperature only;
3. ``cg simulate`` at every temperature (the checkpoint's masses, ``--temperature`` set);
4. ``cg analyze --rdf_max`` at every temperature against the mapped all-atom frames of that
   temperature: g(r) first peak position and height, close contacts per frame.

The table of all temperatures is printed and written to ``<out>/water_summary.json``, the g(r)
curves to ``<out>/water_rdf.png``. From the project root::

    python examples/water_allatom_openmm.py --temperatures 260 280 300 330 360 --out runs/water_aa
    python examples/cg_water.py --all_atom runs/water_aa --train 300 --out runs/cg_water
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import matplotlib
import numpy as np

from pyg_hipts.cli import run_cli
from pyg_hipts.timing import max_time
from pyg_hipts.train.checkpoints import newest_checkpoint

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def command(arguments: list[str]) -> object:
    """Print and run one ``pyg-hipts`` command."""
    print(f"\n$ pyg-hipts {shlex.join(arguments)}", flush=True)
    return run_cli(arguments)


def temperature_of(path: Path) -> float:
    """``water_300K.npz`` -> 300."""
    return float(path.stem.removeprefix("water_").removesuffix("K"))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--all_atom", type=Path, default=Path("runs/water_aa"))
    parser.add_argument("--train", type=float, default=300.0, help="training temperature (K)")
    parser.add_argument("--out", type=Path, default=Path("runs/cg_water"))
    parser.add_argument("--train_minutes", type=float, default=10.0)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10000, help="4 fs steps per replica")
    parser.add_argument("--discard_ps", type=float, default=8.0)
    parser.add_argument("--checkpoint", help="skip training and use this checkpoint")
    args = parser.parse_args()
    print(f"# python {shlex.join(sys.argv)}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    sources = sorted(args.all_atom.glob("water_*K.npz"), key=temperature_of)
    if args.train not in [temperature_of(p) for p in sources]:
        raise SystemExit(f"{args.all_atom} has no water_{args.train:g}K.npz")
    mapped = {}
    for source in sources:
        temperature = temperature_of(source)
        mapped[temperature] = args.out / f"water_cg_{temperature:g}K.npz"
        command(
            [
                *("cg", "map", "--input", str(source), "--reader_options", "{cell_key: cell}"),
                *("--molecules", "{size: 3, name: W}", "--output", str(mapped[temperature])),
            ]
        )
    if args.checkpoint is None:
        command(
            [
                *("fit", "--config", str(ROOT / "configs" / "cg_water.yaml")),
                *(
                    "--data.train_file",
                    str(mapped[args.train]),
                    "--trainer.max_time",
                    max_time(args.train_minutes),
                ),
                *("--trainer.logger.init_args.save_dir", str(args.out)),
            ]
        )
    checkpoint = Path(args.checkpoint) if args.checkpoint else newest_checkpoint(args.out, "best.ckpt")
    with np.load(mapped[args.train]) as frames:
        rdf_max = 0.5 * float(np.min(np.diag(frames["cell"][0]))) - 0.01
    summary = {}
    for temperature, data in mapped.items():
        folder = args.out / f"md_{temperature:g}K"
        command(
            [
                *("cg", "simulate", "--checkpoint", str(checkpoint), "--start", str(data)),
                *(
                    "--reader_options",
                    "{cell_key: cell}",
                    "--output",
                    str(folder),
                    "--temperature",
                    str(temperature),
                ),
                *("--replicas", str(args.replicas), "--steps", str(args.steps), "--timestep_fs", "4"),
                *("--friction_per_ps", "5", "--save_every", "100", "--segment_steps", "2000", "--overwrite"),
            ]
        )
        report = command(
            [
                *("cg", "analyze", "--reference", str(data), "--trajectory", str(folder / "trajectory.npz")),
                *("--labels", "CG", "--rdf_max", f"{rdf_max:.3f}", "--discard_ps", str(args.discard_ps)),
                *("--output", str(args.out / f"analysis_{temperature:g}K")),
            ]
        )
        reference, cg = report["reference"], report["runs"]["CG"]
        summary[f"{temperature:g} K"] = {
            "trained_on": temperature == args.train,
            "peak_position": {
                "cg": cg["rdf_first_peak"]["position"],
                "reference": reference["rdf_first_peak"]["position"],
            },
            "peak_height": {
                "cg": cg["rdf_first_peak"]["height"],
                "reference": reference["rdf_first_peak"]["height"],
            },
            "close_contacts_per_frame": {
                "cg": cg["close_contacts_per_frame"],
                "reference": reference["close_contacts_per_frame"],
            },
            "contact_distance": report["contact_distance"],
            "analysed_ps_per_replica": cg["analysed_ps_per_replica"],
        }
    (args.out / "water_summary.json").write_text(json.dumps(summary, indent=2))
    print("\nT (K) | trained | peak CG / ref (Å) | Δr (Å) | height CG / ref | Δh | contacts CG / ref")
    for name, row in summary.items():
        (r_cg, r_ref), (h_cg, h_ref) = row["peak_position"].values(), row["peak_height"].values()
        contacts = row["close_contacts_per_frame"]
        print(
            f"{name} | {'yes' if row['trained_on'] else 'no'} | {r_cg:.3f} / {r_ref:.3f} | "
            f"{r_cg - r_ref:+.3f} | "
            f"{h_cg:.3f} / {h_ref:.3f} | {100 * (h_cg / h_ref - 1):+.1f} % | "
            f"{contacts['cg']:.2f} / {contacts['reference']:.2f}"
        )
    plot_rdfs(args.out, summary)


def plot_rdfs(out: Path, summary: dict) -> None:
    """The g(r) of CG and mapped all-atom at every temperature (the curves ``cg analyze`` saved)."""
    figure, axes = plt.subplots(
        1, len(summary), figsize=(3.4 * len(summary), 3.2), sharey=True, squeeze=False
    )
    for axis, (name, row) in zip(axes[0], summary.items(), strict=True):
        with np.load(out / f"analysis_{name.replace(' ', '')}" / "rdf.npz") as curves:
            axis.plot(curves["r"], curves["g_reference"], color="black", label="all-atom, mapped")
            axis.plot(curves["r"], curves["g_CG"], color="tab:blue", label="CG HIP-NN-TS")
        axis.set_title(f"{name} ({'trained' if row['trained_on'] else 'not trained on'})", fontsize=9)
        axis.set_xlim(2.0, 8.0)
        axis.set_xlabel("r (Å)")
    axes[0, 0].set_ylabel("g(r), molecule centres")
    axes[0, 0].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(out / "water_rdf.png", dpi=150)


if __name__ == "__main__":
    main()
