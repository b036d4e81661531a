"""Energy + forces of one structure: the eager potential against its AOTInductor package.

Systems and models as in ``benchmarks/md_speed.py`` (rMD17 ethanol with ``configs/quickstart.yaml``,
the 192-atom deepmd water box with ``configs/water.yaml``; random weights). Columns (ms, medians):

- ``eager predict``: :meth:`~pyg_hipts.potentials.Potential.predict` (its neighbour search, the
  padded fused interactions, autograd);
- ``package``: the ``.pt2`` of ``pyg-hipts export`` on a ready pair list;
- ``package + pairs``: the same plus the package's neighbour search, i.e. what MD pays per step.

Run from the repository root::

    python benchmarks/export_speed.py --threads 1 [--dtype float32]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

from pyg_hipts.potentials.export import example_inputs, export_potential, load_package
from pyg_hipts.timing import median_seconds

sys.path.insert(0, str(Path(__file__).resolve().parent))
from md_speed import systems  # noqa: E402  (the benchmark systems of the MD benchmark)


def timings(system: dict, dtype: torch.dtype, repeat: int) -> tuple[float, float, float, float]:
    """``(eager, package, package + pairs, export s)`` of one system (seconds)."""
    model = system["model"].to(dtype).eval()
    z = torch.tensor(system["z"])
    pos = torch.as_tensor(system["start"][0], dtype=dtype)
    cell = pbc = None
    if system["cell"] is not None:
        cell = torch.as_tensor(system["cell"], dtype=dtype).unsqueeze(0)
        pbc = torch.ones(1, 3, dtype=torch.bool)
    inputs = example_inputs(model, z, pos, cell, pbc)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        package = load_package(export_potential(model, Path(folder) / "model.pt2", inputs))
        export_seconds = time.perf_counter() - start
    return (
        median_seconds(lambda: model.predict(z, pos, cell=cell, pbc=pbc), repeat, 2),
        median_seconds(lambda: package(*inputs), repeat, 2),
        median_seconds(lambda: package(*example_inputs(model, z, pos, cell, pbc)), repeat, 2),
        export_seconds,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"# python {' '.join(sys.argv)}")
    print(f"# torch {torch.__version__}, {args.threads} thread(s), {args.dtype}")
    header = ("system", "atoms", "eager predict ms", "package ms", "package + pairs ms", "ratio")
    print(f"{header[0]:<10} {header[1]:>6} {header[2]:>17} {header[3]:>11} {header[4]:>19} {header[5]:>6}")
    for name, system in systems(["ethanol", "water"]).items():
        eager, packaged, with_pairs, export_seconds = timings(system, getattr(torch, args.dtype), args.repeat)
        print(
            f"{name:<10} {len(system['z']):>6} {eager * 1e3:>17.2f} {packaged * 1e3:>11.2f} "
            f"{with_pairs * 1e3:>19.2f} {eager / with_pairs:>6.2f}   (export {export_seconds:.0f} s)",
            flush=True,
        )
    print("ratio = eager predict / (package + pairs)")


if __name__ == "__main__":
    main()
