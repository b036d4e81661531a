"""Small training callbacks."""

from __future__ import annotations

import math
import time
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import Timer


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


class TimeBudgetAnnealing(Callback):
    """Anneals the learning rate over the last part of the trainer's ``max_time``.

    With ``f`` the fraction of the time budget spent (from Lightning's ``Timer``), every learning
    rate is multiplied by

    ``a(f) = 1`` for ``f < start``, ``a(f) = a_min + (1 - a_min)(1 + cos(π (f - start) / (1 - start))) / 2``
    after,

    on top of whatever the scheduler (``ReduceLROnPlateau``) sets, before every training batch. A
    run stopped by its time budget thus ends at ``a_min`` times its learning rate, however few
    epochs the plateau scheduler has seen; the plateau scheduler's own reductions compose with it,
    so the final rate can be far lower. Under DDP the fraction is taken from rank 0, so that every
    rank steps with the same rate.

    Args:
        start: fraction of ``max_time`` after which the annealing begins, in ``[0, 1)``.
        final_factor: ``a_min``, the factor reached when the budget is spent, in ``(0, 1]``.
    """

    def __init__(self, start: float = 0.6, final_factor: float = 0.05) -> None:
        if not 0.0 <= start < 1.0:
            raise ValueError(f"TimeBudgetAnnealing: start must be in [0, 1), got {start}")
        if not 0.0 < final_factor <= 1.0:
            raise ValueError(f"TimeBudgetAnnealing: final_factor must be in (0, 1], got {final_factor}")
        self.start = start
        self.final_factor = final_factor
        self.applied = 1.0  # the factor the learning rates carry now

    def factor(self, spent: float) -> float:
        """``a(f)`` for the fraction ``spent`` of the budget (clipped to ``[0, 1]``)."""
        spent = min(max(spent, 0.0), 1.0)
        if spent < self.start:
            return 1.0
        phase = (spent - self.start) / (1.0 - self.start)
        return self.final_factor + (1.0 - self.final_factor) * 0.5 * (1.0 + math.cos(math.pi * phase))

    @staticmethod
    def _spent(trainer: Trainer) -> float:
        """The fraction of ``max_time`` spent so far, from the trainer's ``Timer``."""
        timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)
        remaining = None if timer is None else timer.time_remaining()
        if remaining is None:
            raise ValueError("TimeBudgetAnnealing needs a time budget: set trainer.max_time")
        elapsed = timer.time_elapsed()
        return elapsed / (elapsed + remaining)

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._spent(trainer)

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        target = self.factor(trainer.strategy.broadcast(self._spent(trainer)))
        if target == self.applied:
            return
        for optimizer in trainer.optimizers:
            for group in optimizer.param_groups:
                group["lr"] *= target / self.applied
        self.applied = target

    def state_dict(self) -> dict[str, float]:
        return {"applied": self.applied}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.applied = float(state_dict["applied"])
