"""Training-step cost of the complete tensor invariants against HIP-NN-TS's norms, same batch.

One training step (energy and forces, forces through ``create_graph``, then the loss gradient)
of the ``configs/rmd17_ts2_gauss10.yaml`` model (96 features, 10 Gaussian sensitivities, 4
interaction layers, 5 Å cutoff, ``l_max = 2``) on rMD17 aspirin batches, with
``tensor_invariants="norms"`` and ``"complete"``; medians of ``--repeat`` steps. Prints
milliseconds per step and the ratio. Run from the project root::

    python benchmarks/invariant_cost.py --threads 1 --molecules 4 16
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import yaml
from model_speed import aspirin_batch, training_step

from pyg_hipts.nn import HipNN
from pyg_hipts.timing import median_seconds

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "rmd17_ts2_gauss10.yaml"


def model_options() -> dict:
    """The :class:`HipNN` arguments of ``CONFIG`` (``tensor_invariants`` left to the caller)."""
    model = yaml.safe_load(CONFIG.read_text())["model"]["model"]
    if model["class_path"] != "pyg_hipts.nn.HipNN":
        raise ValueError(f"{CONFIG}: expected a pyg_hipts.nn.HipNN model, got {model['class_path']}")
    return {name: value for name, value in model["init_args"].items() if name != "tensor_invariants"}


def step_seconds(invariants: str, n_molecules: int, repeat: int) -> float:
    """Median seconds of one training step with ``tensor_invariants=invariants``."""
    model = HipNN([1, 6, 8], tensor_invariants=invariants, **model_options())
    if invariants == "complete":  # away from their zero start, so every term is exercised
        for interaction in model.interactions:
            torch.nn.init.normal_(interaction.higher_scale, std=0.1)
    return median_seconds(training_step(model, aspirin_batch(n_molecules)), repeat, warmup=3)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--molecules", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"# python {' '.join(sys.argv)}")
    print("| molecules | norms ms/step | complete ms/step | complete / norms |")
    print("|---|---|---|---|")
    for n_molecules in args.molecules:
        norms = step_seconds("norms", n_molecules, args.repeat)
        complete = step_seconds("complete", n_molecules, args.repeat)
        print(f"| {n_molecules} | {1e3 * norms:.1f} | {1e3 * complete:.1f} | {complete / norms:.2f} |")


if __name__ == "__main__":
    main()
