"""Writes the energies and forces of ``predict`` to an ``.npz`` file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities import rank_zero_info

DEFAULT_FILE_NAME = "predictions.npz"


class PredictionWriter(BasePredictionWriter):
    """Saves predictions of all structures at the end of ``predict``.

    The file holds, for ``n`` structures with ``N`` atoms in total (in the order of the input file):

    - ``energy`` ``(n,)`` and ``forces`` ``(N, 3)`` in ``energy_unit`` and ``force_unit``,
    - ``natoms`` ``(n,)`` and ``z`` ``(N,)`` (split ``forces`` per structure with
      ``np.split(forces, np.cumsum(natoms)[:-1])``),
    - ``index`` ``(n,)``: position of each structure in the input file,
    - ``energy_unit``, ``force_unit``, ``length_unit``: strings.

    Args:
        output_path: the ``.npz`` to write; by default ``predictions.npz`` in the trainer's log
            directory. With several processes each writes its share to ``<stem>.rank<k>.npz``.
    """

    def __init__(self, output_path: str | None = None) -> None:
        super().__init__(write_interval="batch")
        self.output_path = output_path
        self._batches: list[tuple[dict[str, torch.Tensor], Sequence[int]]] = []

    def _path(self, trainer: Trainer) -> Path:
        path = (
            Path(trainer.log_dir) / DEFAULT_FILE_NAME if self.output_path is None else Path(self.output_path)
        )
        if trainer.world_size > 1:
            path = path.with_name(f"{path.stem}.rank{trainer.global_rank}{path.suffix}")
        return path

    def on_predict_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._batches = []

    def write_on_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        prediction: dict[str, torch.Tensor],
        batch_indices: Sequence[int] | None,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        """Keep the batch's predictions and the dataset indices of its structures."""
        self._batches.append(({key: value.cpu() for key, value in prediction.items()}, batch_indices))

    def on_predict_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Write everything predicted by this process."""
        path = self._path(trainer)
        units = getattr(pl_module, "units", None) or trainer.datamodule.units
        arrays = {
            key: torch.cat([prediction[key] for prediction, _ in self._batches]).numpy()
            for key in ("energy", "forces", "natoms", "z")
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(
            path,
            **arrays,
            index=np.concatenate([np.asarray(indices, dtype=np.int64) for _, indices in self._batches]),
            energy_unit=units.energy,
            force_unit=units.force,
            length_unit=units.length,
        )
        self._batches = []
        rank_zero_info(f"Predictions of {len(arrays['energy'])} structures written to {path}")
