"""Small training callbacks."""

from __future__ import annotations

import time

from lightning.pytorch import Callback, LightningModule, Trainer


class EpochClock(Callback):
    """Logs ``time/train_seconds``, the wall time spent in training batches so far (validation
    excluded), at the end of every validation epoch: learning curves can use time as x-axis."""

    def __init__(self) -> None:
        self.train_seconds = 0.0
        self._since: float | None = None

    def _stop(self) -> None:
        if self._since is not None:
            self.train_seconds += time.perf_counter() - self._since
            self._since = None

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._since = time.perf_counter()

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._stop()  # validation runs inside the training epoch, after its batches

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._stop()

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking:
            pl_module.log("time/train_seconds", self.train_seconds)
