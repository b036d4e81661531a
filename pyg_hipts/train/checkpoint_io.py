"""Checkpoints written atomically next to their final path.

A checkpoint is written to ``.<name>.partial`` in its own folder and renamed over the final
path (``os.replace``, atomic on one file system), so a run killed while writing leaves the
previous checkpoint intact; the temporary file is removed when writing fails, and a leftover one
of a killed run is overwritten by the next save of the same checkpoint.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.plugins.io import TorchCheckpointIO


def partial_path(path: str | Path) -> Path:
    """The temporary file a checkpoint at ``path`` is written to first."""
    path = Path(path)
    return path.with_name(f".{path.name}.partial")


class AtomicCheckpointIO(TorchCheckpointIO):
    """:class:`~lightning.pytorch.plugins.io.TorchCheckpointIO` with atomic saves (see the module
    docstring)."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = partial_path(path)
        try:
            with temporary.open("wb") as handle:
                torch.save(checkpoint, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
