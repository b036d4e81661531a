"""Time and memory per atom of open (non-periodic) structures from 1k to 50k atoms.

Water droplets are carved from the deepmd water box (tiled, then cut to a sphere), so the
density is that of the liquid. For each size, in a fresh process (so the peak memory is its
own), the neighbour search of the package (vesin cell lists above
``CELL_LIST_MIN_ATOMS``) and HIP-NN-TS energy + forces are timed; the dense all-pairs search is
the peer, measured in the same run as far as it fits in memory. Run from the repository root::

    python benchmarks/open_cluster_scaling.py [--sizes 1000 5000 20000 50000] [--threads 1] \
        [--keep_freed_memory]

It prints a table with microseconds and KiB per atom and, for each, the ratio of its largest to its
smallest value over the sizes (flat means linear in ``N``).
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import psutil
import torch

ROOT = Path(__file__).resolve().parents[1]
WATER = ROOT.parent / "shared" / "data" / "deepmd_water"
DENSE_LIMIT = 10_000
"""Sizes above this are not run with the dense search (its ``N²`` distance matrix)."""


def droplet(n_atoms: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(z [n], pos [n, 3])``: the atoms of tiled water boxes closest to the centre."""
    from pyg_hipts.data import read_deepmd

    frame = read_deepmd(WATER, dtype=torch.float64)[0]
    box = frame.cell[0]
    tiles = 1
    while frame.pos.shape[0] * tiles**3 < 1.2 * n_atoms / 0.52:  # a sphere fills 52 % of its cube
        tiles += 1
    shifts = torch.stack(torch.meshgrid(*[torch.arange(tiles)] * 3, indexing="ij"), -1).reshape(-1, 3)
    pos = (frame.pos.unsqueeze(0) + (shifts.double() @ box).unsqueeze(1)).reshape(-1, 3)
    z = frame.z.repeat(len(shifts))
    centre = pos.mean(0)
    keep = (pos - centre).norm(dim=1).argsort()[:n_atoms].sort().values
    return z[keep], pos[keep]


def resident_kib() -> int:
    """The process's resident memory now (KiB), after handing the heap's free memory back to the
    kernel (glibc ``malloc_trim``), so the peak above it is not lowered by reusing memory freed
    during the set-up."""
    name = ctypes.util.find_library("c")
    if name is not None:
        ctypes.CDLL(name).malloc_trim(0)
    return psutil.Process().memory_info().rss // 1024


def measure(n_atoms: int, dense: bool, threads: int, keep_freed: bool) -> dict[str, float]:
    """One size in this process: seconds of the neighbour search and of energy + forces (each
    after a warm-up call)."""
    from pyg_hipts.allocator import keep_freed_memory
    from pyg_hipts.data import periodic
    from pyg_hipts.data.graph import radius_graph
    from pyg_hipts.nn import HipNN

    torch.set_num_threads(threads)
    if keep_freed:
        keep_freed_memory()
    z, pos = droplet(n_atoms)
    batch = torch.zeros(len(z), dtype=torch.long)
    baseline = resident_kib()
    search = (lambda: radius_graph(pos, 4.5, batch, use_torch_cluster=False)) if dense else None
    if search is None:
        search = lambda: periodic.open_cell_list_graph(pos, 4.5, batch)  # noqa: E731
    search()
    start = time.perf_counter()
    pairs = search()
    search_seconds = time.perf_counter() - start
    model = HipNN(
        [1, 8],
        n_features=32,
        n_sensitivities=16,
        dist_soft_max=4.0,
        dist_hard_max=4.5,
        n_interaction_layers=2,
    )
    if dense:
        periodic.CELL_LIST_MIN_ATOMS = 10**9  # the model's own search is the dense one too
    model.predict(z, pos.float())  # warm-up
    start = time.perf_counter()
    model.predict(z, pos.float())
    model_seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline
    return {
        "atoms": len(z),
        "pairs": pairs.shape[1],
        "search_s": search_seconds,
        "model_s": model_seconds,
        "peak_kib": peak_kib,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 20000, 50000])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--keep_freed_memory",
        action="store_true",
        help="glibc keeps freed memory for reuse (pyg_hipts.allocator; see its docstring)",
    )
    parser.add_argument("--one", nargs=2, metavar=("N", "DENSE"), help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.one:
        one = measure(int(options.one[0]), options.one[1] == "1", options.threads, options.keep_freed_memory)
        print(json.dumps(one))
        return
    rows = []
    for n in options.sizes:
        for dense in (False, True):
            if dense and n > DENSE_LIMIT:
                continue
            command = [
                sys.executable,
                __file__,
                "--one",
                str(n),
                str(int(dense)),
                "--threads",
                str(options.threads),
                *(["--keep_freed_memory"] if options.keep_freed_memory else []),
            ]
            result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
            result["search"] = "dense" if dense else "cell lists"
            rows.append(result)
            search_us, model_us = 1e6 * result["search_s"] / n, 1e6 * result["model_s"] / n
            print(
                f"{result['search']:>10} {result['atoms']:>6} atoms: search {search_us:7.2f} µs/atom, "
                f"energy + forces {model_us:7.1f} µs/atom, peak {result['peak_kib'] / n:6.2f} KiB/atom",
                flush=True,
            )
    cells = [r for r in rows if r["search"] == "cell lists"]
    for key in ("search_s", "model_s", "peak_kib"):
        per_atom = [r[key] / r["atoms"] for r in cells]
        print(f"cell lists, {key} per atom: max / min over the sizes = {max(per_atom) / min(per_atom):.2f}")
    for r in rows:
        if r["search"] == "dense":
            twin = next(c for c in cells if c["atoms"] == r["atoms"])
            print(
                f"{r['atoms']} atoms: dense / cell-list search time {r['search_s'] / twin['search_s']:.1f}x, "
                f"peak memory {r['peak_kib'] / max(twin['peak_kib'], 1):.1f}x"
            )


if __name__ == "__main__":
    main()
