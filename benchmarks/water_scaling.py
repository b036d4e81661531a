"""Energy + forces cost per atom on periodic water boxes from ~200 to ~24,000 atoms.

The 192-atom deepmd water frame (64 H2O, 12.44 Å cubic cell, ``../shared/data/deepmd_water``) is
replicated ``n x n x n`` times. For each size the script times one energy + forces evaluation
(median of ``--repeat`` after a warm-up) and, separately on the same inputs, the neighbour list
alone (vesin cell list + pair bookkeeping: ordering, reverse pairs, distances). It prints the
time per atom, its ratio to the ~1.5k-atom box (linear scaling gives 1.0) and the neighbour
list's share of a step. Model: ``configs/water.yaml`` sizes (HIP-NN-TS, l_max 2, 32 features,
16 sensitivities, 5 Å cutoff, 2 interaction layers), random weights, float32.

Each allocator setting runs in its own process: glibc's default, and
:func:`pyg_hipts.allocator.keep_freed_memory` (large tensors reuse heap memory instead of being
page-faulted in from a fresh ``mmap`` on every evaluation).

Run from the project root::

    python benchmarks/water_scaling.py --threads 2
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from ase import Atoms

from pyg_hipts.allocator import keep_freed_memory
from pyg_hipts.data import read_deepmd
from pyg_hipts.data.graph import PairList
from pyg_hipts.nn import HipNN
from pyg_hipts.timing import median_seconds

WATER = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "deepmd_water" / "data_0"
SIZES = dict(
    n_features=32,
    n_sensitivities=16,
    dist_soft_min=0.75,
    dist_soft_max=4.5,
    dist_hard_max=5.0,
    n_interaction_layers=2,
    n_atom_layers=2,
    l_max=2,
)
REFERENCE_REPEATS = 2  # the 2x2x2 box (1536 atoms) is the reference for the per-atom ratio


def water_box(repeats: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``z [N]``, ``pos [N, 3]``, ``cell [1, 3, 3]``, ``pbc [1, 3]`` of the replicated frame."""
    frame = read_deepmd(WATER)[0]
    atoms = Atoms(numbers=frame.z.numpy(), positions=frame.pos.numpy(), cell=frame.cell[0].numpy(), pbc=True)
    atoms = atoms.repeat((repeats,) * 3)
    return (
        torch.as_tensor(atoms.numbers),
        torch.as_tensor(atoms.positions, dtype=torch.float32),
        torch.as_tensor(np.asarray(atoms.cell), dtype=torch.float32).unsqueeze(0),
        torch.ones(1, 3, dtype=torch.bool),
    )


def pair_list(
    model: HipNN, z: torch.Tensor, pos: torch.Tensor, cell: torch.Tensor, pbc: torch.Tensor
) -> PairList:
    """The neighbour list of one evaluation of ``model`` on one box, as :meth:`HipNN.predict` builds it."""
    return model.structures(z, pos, cell=cell, pbc=pbc).pairs(model.cutoff)


def measure(repeats: list[int], threads: int, repeat: int) -> None:
    """Time every box size in this process; print one JSON row per size."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = HipNN([1, 8], **SIZES).eval()
    for n in repeats:
        z, pos, cell, pbc = water_box(n)
        step = median_seconds(lambda: model.predict(z, pos, cell=cell, pbc=pbc), repeat)  # noqa: B023
        neighbours = median_seconds(lambda: pair_list(model, z, pos, cell, pbc), repeat)  # noqa: B023
        n_pairs = pair_list(model, z, pos, cell, pbc).edge_index.shape[1]
        row = {"n": n, "atoms": len(z), "pairs": n_pairs, "step": step, "neighbours": neighbours}
        print(json.dumps(row), flush=True)


def run_child(allocator: str, args: argparse.Namespace) -> list[dict]:
    """Run :func:`measure` in a fresh process with ``allocator`` settings; show its progress."""
    command = [sys.executable, __file__, "--child", allocator, "--threads", str(args.threads)]
    command += ["--repeat", str(args.repeat), "--repeats", *map(str, args.repeats)]
    rows = []
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as child:
        for line in child.stdout:
            row = json.loads(line)
            rows.append(row)
            print(
                f"  {allocator}: {row['atoms']} atoms, {1e3 * row['step']:.0f} ms, "
                f"neighbour list {100 * row['neighbours'] / row['step']:.1f} %",
                flush=True,
            )
    if child.returncode:
        raise SystemExit(f"the {allocator} run failed with exit code {child.returncode}")
    return rows


def print_table(allocator: str, rows: list[dict]) -> None:
    reference = next((r["step"] / r["atoms"] for r in rows if r["n"] == REFERENCE_REPEATS), None)
    print(f"\n{allocator} allocator")
    print("| box | atoms | pairs | energy+forces ms | µs/atom | µs/atom ÷ 1536-atom box | neighbour list |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        per_atom = r["step"] / r["atoms"]
        ratio = f"{per_atom / reference:.2f}" if reference else "–"
        print(
            f"| {r['n']}×{r['n']}×{r['n']} | {r['atoms']} | {r['pairs']} | {1e3 * r['step']:.0f} "
            f"| {1e6 * per_atom:.1f} | {ratio} | {100 * r['neighbours'] / r['step']:.1f} % |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, nargs="+", default=[1, 2, 3, 4, 5], help="box replications n")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5, help="timed evaluations per size")
    parser.add_argument("--allocators", nargs="+", default=["default", "keep_freed_memory"])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        if args.child == "keep_freed_memory" and not keep_freed_memory():
            raise SystemExit("keep_freed_memory() needs glibc")
        measure(args.repeats, args.threads, args.repeat)
        return
    print(f"# python {' '.join(sys.argv)}")
    print(f"# torch {torch.__version__}, {args.threads} threads, float32, energy + forces")
    results = {allocator: run_child(allocator, args) for allocator in args.allocators}
    for allocator, rows in results.items():
        print_table(allocator, rows)


if __name__ == "__main__":
    main()
