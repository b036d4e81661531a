"""Training budgets in Lightning's format, and finding the newest checkpoint."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pyg_hipts.timing import max_time
from pyg_hipts.train.checkpoints import newest_checkpoint


def test_max_time_format() -> None:
    assert max_time(5) == "00:00:05:00"
    assert max_time(115) == "00:01:55:00"
    assert max_time(0.3) == "00:00:00:18"
    with pytest.raises(ValueError, match="between"):
        max_time(24 * 60)


def test_newest_checkpoint(tmp_path: Path) -> None:
    older, newer = tmp_path / "a" / "best.ckpt", tmp_path / "b" / "c" / "best-v1.ckpt"
    for path, stamp in ((older, 1_000), (newer, 2_000)):
        path.parent.mkdir(parents=True)
        path.write_bytes(b"")
        os.utime(path, (stamp, stamp))
    assert newest_checkpoint(tmp_path) == newer
    assert newest_checkpoint(tmp_path, "best.ckpt") == older
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        newest_checkpoint(tmp_path / "a", "last.ckpt")
