"""Inference and training-step time and peak memory: pyg_hipts vs hippynn, same batch, same threads.

Rows marked ``compiled`` use ``compile_for_inference`` / ``compile_for_training``; their
one-time compilation is in the warm-up, not in the medians.

Batch: 64 rMD17 aspirin frames (21 atoms each) from ``../shared/data/rmd17``; model: 64 features,
20 sensitivities, 2 interaction layers, 3 atom layers, float32. Times are medians of ``--repeat``
runs after warm-up. Our times include the radius-graph search; hippynn receives its pair list
ready-made (its bare modules have no neighbour search), which favours hippynn.

Run from the project root::

    python benchmarks/model_speed.py --threads 1 [--keep-freed-memory]

``--keep-freed-memory`` applies :func:`pyg_hipts.allocator.keep_freed_memory` to the whole process
(every row): the HIP-HOP-NN steps otherwise page-fault tens of thousands of freed pages back in
on every step.
"""

from __future__ import annotations

import argparse
import copy
import gc
import resource
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psutil
import torch

from pyg_hipts.allocator import keep_freed_memory
from pyg_hipts.nn import HipNN
from pyg_hipts.timing import median_seconds

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "rmd17" / "rmd17_aspirin_train_01.npz"
SIZES = dict(
    n_features=64,
    n_sensitivities=20,
    dist_soft_min=0.85,
    dist_soft_max=5.0,
    dist_hard_max=6.5,
    n_interaction_layers=2,
    n_atom_layers=3,
)


def aspirin_batch(
    n_molecules: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``z [N]``, ``pos [N, 3]``, ``batch [N]``, ``energy [B]``, ``forces [N, 3]`` (float32)."""
    data = np.load(DATA)
    n_atoms = len(data["nuclear_charges"])
    z = torch.as_tensor(data["nuclear_charges"], dtype=torch.long).repeat(n_molecules)
    pos = torch.as_tensor(data["coords"][:n_molecules], dtype=torch.float32).reshape(-1, 3)
    energy = torch.as_tensor(data["energies"][:n_molecules], dtype=torch.float32)
    forces = torch.as_tensor(data["forces"][:n_molecules], dtype=torch.float32).reshape(-1, 3)
    return z, pos, torch.arange(n_molecules).repeat_interleave(n_atoms), energy - energy.mean(), forces


def peak_rss_growth_mib(train: Callable[[], object], warmup: Callable[[], object]) -> float:
    """Peak resident-memory growth of one training step, in a process that ran only ``warmup``.

    ``warmup`` (a step on a 2-molecule batch) triggers one-time costs such as compilation; the
    baseline is the resident set after it. The peak is the process's high-water mark, reset
    after the warm-up where Linux allows (``/proc/self/clear_refs``), so that a compiler's own
    peak is not counted; elsewhere it is the maximum resident set of the whole process.
    """
    warmup()
    gc.collect()
    baseline = psutil.Process().memory_info().rss
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        train()
        return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - baseline) / 2**20
    train()
    status = Path("/proc/self/status").read_text()
    peak_kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    return (peak_kib * 1024 - baseline) / 2**20


def measure_memory_in_child(name: str, threads: int, molecules: int, kernels: str) -> float:
    """Run :func:`peak_rss_growth_mib` for one model in a fresh interpreter."""
    command = [
        sys.executable,
        __file__,
        "--memory-of",
        name,
        "--threads",
        str(threads),
        "--molecules",
        str(molecules),
        "--hippynn-kernels",
        kernels,
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return float(result.stdout.strip().splitlines()[-1])


def training_step(model: HipNN, batch: tuple) -> Callable[[], None]:
    """One step of ``model`` on ``batch``: energy and force MSE, forces through ``create_graph``."""
    z, pos, mol, energy, forces = batch

    def train():
        model.zero_grad()
        out = model.predict(z, pos, mol, create_graph=True)
        loss = (out.energy.flatten() - energy).square().mean() + (out.forces - forces).square().mean()
        loss.backward()

    return train


def ours(
    l_max: int, batch: tuple, n_max: int | None = None, compiled: bool = False
) -> tuple[Callable, Callable]:
    """Eager, or ``compiled``: inference by ``compile_for_inference`` and the training step by
    ``compile_for_training`` (two models of the same weights: the two modes exclude each other)."""
    z, pos, mol, _, _ = batch
    model = HipNN([1, 6, 8], l_max=l_max, n_max=n_max, **SIZES)
    trained = model
    if compiled:
        trained = copy.deepcopy(model).compile_for_training()
        model.compile_for_inference()

    def infer():
        model.predict(z, pos, mol)

    return infer, training_step(trained, batch)


def theirs(l_max: int, batch: tuple, n_max: int | None = None) -> tuple[Callable, Callable]:
    from hippynn.layers.targets import HEnergy
    from hippynn.networks.hiphop import HipHopNNModule
    from hippynn.networks.hipnn import Hipnn, HipnnQuad, HipnnVec

    z, pos, mol, energy, forces = batch
    kwargs = {k: v for k, v in SIZES.items()}
    if n_max is None:
        network = [Hipnn, HipnnVec, HipnnQuad][l_max](possible_species=[0, 1, 6, 8], **kwargs)
    else:
        with warnings.catch_warnings():  # "HIP-HOP-NN is still in a beta state"
            warnings.simplefilter("ignore")
            network = HipHopNNModule(possible_species=[0, 1, 6, 8], l_max=l_max, n_max=n_max, **kwargs)
    head = HEnergy([3] + [SIZES["n_features"]] * SIZES["n_interaction_layers"])
    onehot = (z[:, None] == torch.tensor([1, 6, 8])).float()
    same = (mol[:, None] == mol[None, :]) & ~torch.eye(len(z), dtype=torch.bool)
    first, second = torch.nonzero(same & (torch.cdist(pos, pos) <= SIZES["dist_hard_max"]), as_tuple=True)
    n_mol = int(mol.max()) + 1
    params = list(network.parameters()) + list(head.parameters())

    def evaluate(create_graph: bool):
        r = pos.detach().requires_grad_(True)
        coord = r[second] - r[first]
        dist = coord.norm(dim=1)
        args = (onehot, first, second, dist) + ((coord,) if l_max else ())
        total = head(network(*args), mol, n_mol)[0]
        (grad,) = torch.autograd.grad(total.sum(), r, create_graph=create_graph)
        return total, -grad

    def infer():
        evaluate(False)

    def train():
        for p in params:
            p.grad = None
        total, f = evaluate(True)
        loss = (total.flatten() - energy).square().mean() + (f - forces).square().mean()
        loss.backward()

    return infer, train


def limit_numba_threads(threads: int) -> None:
    """hippynn's numba kernels run ``prange`` loops on numba's own thread pool, every core by
    default: hold them to the same number of threads as torch."""
    try:
        import numba
    except ImportError:
        return
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))


def builders(kernels: str) -> dict[str, Callable[[int, tuple], tuple[Callable, Callable]]]:
    """Name -> ``build(l_max, batch) -> (infer, train)`` for every available implementation."""
    found = {f"pyg_hipts l={order}": (lambda batch, order=order: ours(order, batch)) for order in (0, 1, 2)}
    found["pyg_hipts HIP-HOP l=3 n=4"] = lambda batch: ours(3, batch, n_max=4)
    found["pyg_hipts l=2 compiled"] = lambda batch: ours(2, batch, compiled=True)
    found["pyg_hipts HIP-HOP l=3 n=4 compiled"] = lambda batch: ours(3, batch, n_max=4, compiled=True)
    try:
        import hippynn
        from hippynn import custom_kernels
    except ImportError:
        print("# hippynn is not installed: only pyg_hipts is timed")
        return found
    active = custom_kernels.set_custom_kernels(kernels)
    found.update(
        {
            f"hippynn {hippynn.__version__} ({active}) l={order}": (
                lambda batch, order=order: theirs(order, batch)
            )
            for order in (0, 1, 2)
        }
    )
    found[f"hippynn {hippynn.__version__} ({active}) HipHopNN l=3 n=4"] = lambda batch: theirs(
        3, batch, n_max=4
    )
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--molecules", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument(
        "--hippynn-kernels",
        default="auto",
        help="hippynn custom kernel implementation (numba, triton, cupy, pytorch; auto: the best installed)",
    )
    parser.add_argument(
        "--keep-freed-memory",
        action="store_true",
        help="call pyg_hipts.allocator.keep_freed_memory() first (every row, ours and hippynn's)",
    )
    parser.add_argument("--memory-of", help=argparse.SUPPRESS)
    args = parser.parse_args()
    allocator = "glibc default"
    if args.keep_freed_memory:
        accepted = keep_freed_memory()
        allocator = "keep_freed_memory" if accepted else "glibc default (keep_freed_memory refused)"
    torch.set_num_threads(args.threads)
    limit_numba_threads(args.threads)
    torch.manual_seed(0)
    batch = aspirin_batch(args.molecules)
    available = builders(args.hippynn_kernels)
    if args.memory_of:  # child process: one memory measurement
        _, warm_train = available[args.memory_of](aspirin_batch(2))
        _, train = available[args.memory_of](batch)
        print(peak_rss_growth_mib(train, warm_train))
        return
    print(f"# python {' '.join(sys.argv)}")
    print(
        f"# torch {torch.__version__}, {args.threads} thread(s) (torch and numba), {args.molecules} aspirin "
        f"molecules, {SIZES}"
    )
    print(f"# allocator: {allocator} (peak memory: child processes with the default)")
    results = {}
    print(f"{'model':<34} {'infer ms':>9} {'train ms':>9} {'train peak MiB':>15}")
    for name, build in available.items():
        infer, train = build(batch)
        memory = measure_memory_in_child(name, args.threads, args.molecules, args.hippynn_kernels)
        results[name] = (
            1e3 * median_seconds(infer, args.repeat, 2),
            1e3 * median_seconds(train, args.repeat, 2),
            memory,
        )
        print(
            f"{name:<34} {results[name][0]:9.1f} {results[name][1]:9.1f} {results[name][2]:15.1f}", flush=True
        )

    def result(prefix: str, l_max: int) -> tuple[float, float, float] | None:
        return next(
            (v for k, v in results.items() if k.startswith(prefix) and k.endswith(f"l={l_max}")), None
        )

    print("\nratios")
    for prefix in ("pyg_hipts", "hippynn"):
        if result(prefix, 0):
            print(f"  {prefix} training step l=2 / l=0: {result(prefix, 2)[1] / result(prefix, 0)[1]:.2f}x")
    for order in (0, 1, 2):
        mine, other = result("pyg_hipts", order), result("hippynn", order)
        if other:
            print(
                f"  hippynn / pyg_hipts, l={order}: training step {other[1] / mine[1]:.2f}x, "
                f"inference {other[0] / mine[0]:.2f}x, training peak memory {other[2] / mine[2]:.2f}x"
            )
    for eager_name in ("pyg_hipts l=2", "pyg_hipts HIP-HOP l=3 n=4"):
        if f"{eager_name} compiled" in results:
            eager, compiled = results[eager_name], results[f"{eager_name} compiled"]
            print(
                f"  {eager_name} eager / compiled: training step {eager[1] / compiled[1]:.2f}x, "
                f"inference {eager[0] / compiled[0]:.2f}x, training peak memory {eager[2] / compiled[2]:.2f}x"
            )
    hop = {k.split()[0]: v for k, v in results.items() if k.endswith("l=3 n=4")}
    if "pyg_hipts" in hop:
        norms = result("pyg_hipts", 2)
        print(f"  pyg_hipts HIP-HOP (3,4) / l=2 norms: training step {hop['pyg_hipts'][1] / norms[1]:.2f}x")
    if "hippynn" in hop:
        mine, other = hop["pyg_hipts"], hop["hippynn"]
        print(
            f"  hippynn / pyg_hipts, HIP-HOP (3,4): training step {other[1] / mine[1]:.2f}x, "
            f"inference {other[0] / mine[0]:.2f}x, training peak memory {other[2] / mine[2]:.2f}x"
        )


if __name__ == "__main__":
    main()
