"""Finding the checkpoints a run wrote."""

from __future__ import annotations

from pathlib import Path


def newest_checkpoint(folder: str | Path, pattern: str = "best*.ckpt") -> Path:
    """The most recently written checkpoint matching ``pattern`` anywhere below ``folder``."""
    found = list(Path(folder).rglob(pattern))
    if not found:
        raise FileNotFoundError(f"no checkpoint matching {pattern!r} below {folder}")
    return max(found, key=lambda path: path.stat().st_mtime)
