"""Shared fixtures and checks: real molecules from the rMD17 files beside the project, a small
crystal, the invariance and finite-difference check, one CLI training epoch."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "hippynn_parity"


def _rmd17(molecule: str, frames: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    path = SHARED_DATA / "rmd17" / f"rmd17_{molecule}_train_01.npz"
    if not path.exists():
        pytest.skip(f"{path} is not available")
    data = np.load(path)
    z = torch.as_tensor(data["nuclear_charges"], dtype=torch.long)
    pos = torch.as_tensor(data["coords"][frames], dtype=torch.float64)
    return z.repeat(len(frames)), pos.reshape(-1, 3), torch.arange(len(frames)).repeat_interleave(len(z))


@pytest.fixture(autouse=True, scope="session")
def single_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread, and far faster than on two when the cores are busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _run_in_tmp_path(tmp_path, monkeypatch):
    """Every test runs in its own folder, so files a trainer writes beside it do not leak."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def mixed_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two aspirin, one uracil (H, C, N, O) and one ethanol frame in one float64 batch."""
    parts = [_rmd17("aspirin", [0, 500]), _rmd17("uracil", [3]), _rmd17("ethanol", [7])]
    z = torch.cat([p[0] for p in parts])
    pos = torch.cat([p[1] for p in parts])
    offsets = np.cumsum([0] + [int(p[2].max()) + 1 for p in parts[:-1]])
    batch = torch.cat([p[2] + int(o) for p, o in zip(parts, offsets, strict=True)])
    return z, pos, batch


def assert_invariant_and_conservative(potential, z, pos, batch, displaced: list[tuple[int, int]]) -> None:
    """A potential's energies are invariant under a rotation and a translation, its forces turn
    with the rotation and equal central finite differences of the energy at ``displaced``
    ``(atom, axis)`` (float64)."""
    out = potential.predict(z, pos, batch)
    rotation = torch.linalg.qr(
        torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    )[0]
    shift = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    moved = potential.predict(z, pos @ rotation.T + shift, batch)
    torch.testing.assert_close(moved.energy, out.energy, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(moved.forces, out.forces @ rotation.T, rtol=1e-8, atol=1e-9)
    step = 1e-5
    for atom, axis in displaced:
        plus, minus = pos.clone(), pos.clone()
        plus[atom, axis] += step
        minus[atom, axis] -= step
        difference = potential(z, plus, batch).sum() - potential(z, minus, batch).sum()
        torch.testing.assert_close(out.forces[atom, axis], -difference / (2 * step), rtol=1e-6, atol=1e-8)
    assert float(out.forces.abs().max()) > 1e-3


def small_crystal() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Four atoms (H, C, O, C) in a skewed cell with lattice vectors shorter than the cutoff, so
    atoms see their own periodic images. ``z [4]``, ``pos [4, 3]``, ``cell [1, 3, 3]``, ``pbc [1, 3]``."""
    cell = torch.tensor([[3.3, 0.0, 0.0], [0.3, 3.5, 0.0], [0.2, -0.4, 3.7]], dtype=torch.float64)
    fractions = torch.tensor(
        [[0.05, 0.10, 0.00], [0.40, 0.45, 0.30], [0.70, 0.15, 0.65], [0.20, 0.80, 0.55]], dtype=torch.float64
    )
    z = torch.tensor([1, 6, 8, 6])
    return z, fractions @ cell, cell.unsqueeze(0), torch.ones(1, 3, dtype=torch.bool)


def fit_one_epoch_on_aspirin(model: dict, folder: Path, batches: int = 1) -> tuple[Path, float]:
    """``pyg-hipts fit --config configs/rmd17_ts2.yaml --model <model>`` for ``batches`` batches
    of 4 aspirin frames (8 training, 4 validation, 4 test) in ``folder``.

    Returns the run folder and the test force MAE it logged (skips when rMD17 is absent).
    """
    from pyg_hipts.cli import main

    aspirin = SHARED_DATA / "rmd17" / "rmd17_aspirin_train_01.npz"
    if not aspirin.exists():
        pytest.skip(f"{aspirin} is not available")
    (folder / "model.yaml").write_text(yaml.safe_dump(model))
    data = {"train_file": aspirin, "test_file": "null", "n_train": 8, "n_val": 4, "n_test": 4}
    data |= {"batch_size": 4, "eval_batch_size": 4}
    options = [f"--data.{key}={value}" for key, value in data.items()]
    options += ["--trainer.max_epochs=1", f"--trainer.limit_train_batches={batches}"]
    config = Path(__file__).resolve().parents[1] / "configs" / "rmd17_ts2.yaml"
    main(["fit", "--config", str(config), "--model", str(folder / "model.yaml"), *options])
    version = folder / "runs" / "rmd17_ts2" / "version_0"
    with (version / "metrics.csv").open() as handle:
        test = [float(r["test/force_mae"]) for r in csv.DictReader(handle) if r.get("test/force_mae")]
    assert len(test) == 1
    return version, test[0]


def assert_stress_is_the_strain_derivative(potential) -> None:
    """The stress of :func:`small_crystal` equals central differences of the energy under the
    six symmetric strains, ``σ_ab = (1/V) ∂E/∂ε_ab`` (float64)."""
    z, pos, cell, pbc = small_crystal()
    stress = potential.predict(z, pos, cell=cell, pbc=pbc, stress=True).stress[0]
    assert bool(torch.isfinite(stress).all()) and float(stress.abs().max()) > 1e-4
    volume = torch.linalg.det(cell[0]).abs()
    step = 1e-5
    for a, b in [(0, 0), (1, 1), (2, 2), (0, 1), (1, 2), (0, 2)]:
        strain = torch.zeros(3, 3, dtype=torch.float64)
        strain[a, b] += 0.5 * step  # the symmetric (e_a e_bᵀ + e_b e_aᵀ) / 2, times the step
        strain[b, a] += 0.5 * step
        plus, minus = (
            potential.predict(
                z, pos @ deformation, cell=cell @ deformation, pbc=pbc, forces=False
            ).energy.sum()
            for deformation in (
                torch.eye(3, dtype=torch.float64) + strain,
                torch.eye(3, dtype=torch.float64) - strain,
            )
        )
        expected = (plus - minus) / (2 * step * volume)
        torch.testing.assert_close(stress[a, b], expected, rtol=1e-6, atol=1e-9)
        torch.testing.assert_close(stress[b, a], expected, rtol=1e-6, atol=1e-9)
