"""Shared fixtures: real molecules from the rMD17 files beside the project."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

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
