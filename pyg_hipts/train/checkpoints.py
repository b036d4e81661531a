"""Finding the checkpoints a run wrote, and what they record of their training data."""

from __future__ import annotations

from pathlib import Path

from pyg_hipts.data.system import SystemInfo
from pyg_hipts.potentials.io import CheckpointError, read_checkpoint


def newest_checkpoint(folder: str | Path, pattern: str = "best*.ckpt") -> Path:
    """The most recently written checkpoint matching ``pattern`` anywhere below ``folder``."""
    found = list(Path(folder).rglob(pattern))
    if not found:
        raise FileNotFoundError(f"no checkpoint matching {pattern!r} below {folder}")
    return max(found, key=lambda path: path.stat().st_mtime)


def checkpoint_system(path: str | Path) -> SystemInfo:
    """The masses, names and temperature of the training file that a checkpoint of
    :class:`~pyg_hipts.train.PotentialModule` records (all ``None`` when the file recorded none,
    or the checkpoint predates them). Read without executing pickled code."""
    stored = read_checkpoint(path).get("system") or {}
    try:
        return SystemInfo.from_dict(stored)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: unreadable system record: {error}") from error
