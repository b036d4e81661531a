"""Data at scale: ``prepare`` speed, size on disk, loader throughput against the training step's
consumption, peak resident memory, and the storage choice (memory-mapped arrays vs HDF5).

The dataset is synthetic: the rMD17 ethanol frames shipped with the package, tiled to
``--frames`` structures (1,000,000 by default) with positions perturbed by 0.01 Å (energies and
forces copied). It measures I/O, not accuracy. Steps:

1. write it as one rMD17-style ``.npz`` (the input of ``prepare``);
2. ``pyg-hipts prepare`` on it in a child process (time, frames/s, peak RSS, size on disk);
3. random batches of ``--batch_size`` read from the prepared arrays and from the same arrays in
   HDF5 (h5py, sorted fancy indexing): structures/s of each;
4. the data module's training loader on the prepared folder with 0 and 2 workers, and PyG's
   ``DataLoader`` on an in-memory dataset of ``--in_memory_frames`` of the frames (with the memory
   that reading costs); structures/s and atoms/s;
5. the training step of HIP-NN-TS (l = 2, the quick start's model) on the same batches;
6. ``pyg-hipts fit`` on the whole prepared set (``--fit_batches`` training steps) in a child
   process: its peak RSS.

Run from the project root (about 5 minutes on 2 cores)::

    python benchmarks/data_throughput.py --threads 1
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import torch
import yaml

from pyg_hipts.data import embedded_dataset_path
from pyg_hipts.data.storage import PreparedDataset
from pyg_hipts.nn import HipNN
from pyg_hipts.timing import median_seconds
from pyg_hipts.train import AtomsDataModule

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "configs" / "quickstart.yaml"


def synthesise(frames: int, path: Path) -> None:
    """The embedded ethanol frames tiled to ``frames`` with positions perturbed by 0.01 Å."""
    source = np.load(embedded_dataset_path("ethanol"))
    rng = np.random.default_rng(0)
    pick = np.arange(frames) % len(source["energies"])
    coords = source["coords"][pick].astype(np.float32)
    coords += rng.normal(scale=0.01, size=coords.shape).astype(np.float32)
    np.savez(
        path,
        nuclear_charges=source["nuclear_charges"],
        coords=coords,
        energies=source["energies"][pick],
        forces=source["forces"][pick].astype(np.float32),
    )


PEAK_LAUNCHER = """
import atexit, runpy, sys

def report():
    status = open("/proc/self/status").read().split("VmHWM:")[1].split()[0]
    print("PEAK_RSS_KIB", status, file=sys.stderr, flush=True)

atexit.register(report)
sys.argv = sys.argv[1:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""
"""Runs a module and prints its peak resident set (``VmHWM``, which starts afresh at ``exec``,
unlike ``ru_maxrss``, which would include the parent's memory copied by ``fork``)."""


def run_child(module: str, *args: str) -> tuple[float, float, str]:
    """``(seconds, peak RSS MiB, output)`` of ``python -m module args`` in a child process."""
    started = time.perf_counter()
    command = [sys.executable, "-c", PEAK_LAUNCHER, module, *args]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{module} {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    peak = int(result.stderr.rsplit("PEAK_RSS_KIB", 1)[1].split()[0]) / 1024
    return seconds, peak, result.stdout


def folder_mib(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.iterdir()) / 2**20


def write_hdf5(prepared: PreparedDataset, path: Path) -> None:
    """The prepared arrays as HDF5 datasets of the same layout (per-atom arrays and offsets)."""
    with h5py.File(path, "w") as handle:
        for name, array in prepared.arrays().items():
            handle.create_dataset(name, data=np.asarray(array))


def random_batches(n_frames: int, batch_size: int, count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [np.sort(rng.choice(n_frames, batch_size, replace=False)) for _ in range(count)]


def read_rate(read, batches: list[np.ndarray]) -> float:
    """Structures/s of ``read(frames)`` over ``batches``."""
    started = time.perf_counter()
    for frames in batches:
        read(frames)
    return sum(len(b) for b in batches) / (time.perf_counter() - started)


def storage_rates(prepared: PreparedDataset, hdf5_path: Path, batches: list[np.ndarray]) -> dict[str, float]:
    """Random-batch reads of positions, forces, species and energies: memory map vs HDF5."""
    arrays = prepared.arrays()
    offsets = np.asarray(arrays["offsets"])

    def atoms_of(frames: np.ndarray) -> np.ndarray:
        return np.concatenate([np.arange(offsets[f], offsets[f + 1]) for f in frames])

    def from_maps(frames: np.ndarray) -> None:
        atoms = atoms_of(frames)
        for name in ("pos", "forces", "z"):
            np.asarray(arrays[name][atoms])
        np.asarray(arrays["energy"][frames])

    with h5py.File(hdf5_path, "r") as handle:

        def from_hdf5(frames: np.ndarray) -> None:
            atoms = atoms_of(frames)
            for name in ("pos", "forces", "z"):
                handle[name][atoms]
            handle["energy"][frames]

        return {"memmap": read_rate(from_maps, batches), "hdf5": read_rate(from_hdf5, batches)}


def loader_rate(loader, max_batches: int) -> tuple[float, float]:
    """``(structures/s, atoms/s)`` over the first ``max_batches`` batches (after one warm-up)."""
    iterator = iter(loader)
    next(iterator)
    structures = atoms = 0
    started = time.perf_counter()
    for _, batch in zip(range(max_batches), iterator, strict=False):
        structures += batch.num_graphs
        atoms += batch.num_nodes
    seconds = time.perf_counter() - started
    return structures / seconds, atoms / seconds


def training_rate(batch, repeat: int, device: str) -> float:
    """Structures/s of the quick start's HIP-NN-TS training step (energy + force loss, Adam) on
    ``device``."""
    config = yaml.safe_load(QUICKSTART.read_text())["model"]["model"]["init_args"]
    model = HipNN(species=[1, 6, 8], **config).to(device)
    batch = batch.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    energy = batch.energy.float() - batch.energy.float().mean()

    def step() -> None:
        optimizer.zero_grad()
        out = model.predict(batch.z, batch.pos, batch.batch, create_graph=True)
        loss = (out.energy.flatten() - energy).square().mean() + (out.forces - batch.forces).square().mean()
        loss.backward()
        optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()

    return batch.num_graphs / median_seconds(step, repeat, warmup=3)


def fit_arguments(prepared: Path, batches: int, run_dir: Path, device: str) -> list[str]:
    """Arguments of ``pyg-hipts fit``: the quick start on every prepared structure (2000 for validation),
    ``batches`` steps, its outputs under ``run_dir``."""
    config = yaml.safe_load(QUICKSTART.read_text())
    config["data"].update(train_file=str(prepared), n_train=None, n_val=2000, n_test=None)
    config["trainer"].update(max_epochs=1, max_time=None, limit_train_batches=batches, limit_val_batches=10)
    config["trainer"]["accelerator"] = "gpu" if device == "cuda" else "cpu"
    config["test_after_fit"] = False
    for logger in config["trainer"]["logger"]:
        logger["init_args"]["save_dir"] = str(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "fit.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))
    refresh = ["--trainer.callbacks.refresh_rate", "0"]
    return ["fit", "--config", str(run_dir / "fit.yaml"), *refresh]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--in_memory_frames", type=int, help="frames read in memory (default: all)")
    parser.add_argument("--fit_batches", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="where the training step runs (cpu or cuda)")
    parser.add_argument("--workdir", default="runs/data_throughput")
    options = parser.parse_args()
    torch.set_num_threads(options.threads)
    work = ROOT / options.workdir
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    npz_path, prepared_path = work / "synthetic.npz", work / "synthetic.prepared"

    started = time.perf_counter()
    synthesise(options.frames, npz_path)
    print(
        f"synthesised {options.frames} ethanol structures in {time.perf_counter() - started:.1f} s "
        f"({npz_path.stat().st_size / 2**20:.0f} MiB npz)"
    )

    prepare_arguments = ["prepare", "--input", str(npz_path), "--output", str(prepared_path), "--quiet"]
    seconds, rss, _ = run_child("pyg_hipts.cli", *prepare_arguments)
    prepared = PreparedDataset(prepared_path)
    print(
        f"prepare: {seconds:.1f} s, {options.frames / seconds:,.0f} structures/s (whole command), "
        f"peak RSS {rss:.0f} MiB, {folder_mib(prepared_path):.0f} MiB on disk"
    )

    write_hdf5(prepared, work / "synthetic.h5")
    rates = storage_rates(
        prepared, work / "synthetic.h5", random_batches(options.frames, options.batch_size, 300)
    )
    print(
        f"random batches of {options.batch_size}: memmap {rates['memmap']:,.0f} structures/s, "
        f"HDF5 {rates['hdf5']:,.0f} structures/s (memmap / HDF5 = {rates['memmap'] / rates['hdf5']:.1f}x)"
    )

    rows = []
    for workers in (0, 2):
        datamodule = AtomsDataModule(
            train_file=str(prepared_path), batch_size=options.batch_size, num_workers=workers
        )
        datamodule.setup("fit")
        rows.append((f"prepared, {workers} workers", *loader_rate(datamodule.train_dataloader(), 2000)))
    in_memory_frames = options.in_memory_frames or options.frames
    small = npz_path if in_memory_frames == options.frames else work / "in_memory.npz"
    if small != npz_path:
        synthesise(in_memory_frames, small)
    before = _rss_mib()
    started = time.perf_counter()
    datamodule = AtomsDataModule(train_file=str(small), batch_size=options.batch_size)
    datamodule.setup("fit")
    read_seconds, growth = time.perf_counter() - started, _rss_mib() - before
    rows.append(
        (
            f"in memory ({in_memory_frames:,} frames), PyG DataLoader",
            *loader_rate(datamodule.train_dataloader(), 2000),
        )
    )
    batch = next(iter(datamodule.train_dataloader()))
    consumed = training_rate(batch, repeat=30, device=options.device)
    print(
        f"in-memory read of {in_memory_frames} frames: {read_seconds:.1f} s, "
        f"+{growth:.0f} MiB resident ({growth / in_memory_frames * 1e6 / 1024:.2f} GiB per million)"
    )
    print(
        f"\ntraining step (HIP-NN-TS l=2, quick-start sizes, batch {options.batch_size}, "
        f"{options.threads} thread(s), {options.device}): {consumed:,.0f} structures/s"
    )
    print("| loader | structures/s | atoms/s | / training step |")
    print("|---|---|---|---|")
    for name, structures, atoms in rows:
        print(f"| {name} | {structures:,.0f} | {atoms:,.0f} | {structures / consumed:.1f}x |")
    prepared_rate, in_memory_rate = rows[0][1], rows[-1][1]
    print(f"prepared (0 workers) / in-memory PyG loader: {prepared_rate / in_memory_rate:.1f}x")

    fit = fit_arguments(prepared_path, options.fit_batches, work / "fit", options.device)
    seconds, rss, _ = run_child("pyg_hipts.cli", *fit)
    print(
        f"\nfit on all {options.frames} prepared structures ({options.fit_batches} steps + 10 validation "
        f"batches): {seconds:.0f} s, peak RSS {rss:.0f} MiB"
    )


def _rss_mib() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


if __name__ == "__main__":
    main()
