"""A fit stopped after epoch k resumes from last.ckpt with its epoch counter and optimizer state."""

from __future__ import annotations

from pathlib import Path

import pytest
from lightning.pytorch import Callback, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint

import pyg_hipts.train.base
from tests.test_train_module import QUIET, ethanol_datamodule, single_thread, tiny_module  # noqa: F401

BATCHES_PER_EPOCH = 4  # 40 training frames in batches of 10


class StopAfterEpoch(Callback):
    """Stops the fit at the end of epoch ``last`` (0-based), as an interrupted run would."""

    def __init__(self, last: int) -> None:
        self.last = last

    def on_train_epoch_end(self, trainer: Trainer, module) -> None:
        if trainer.current_epoch == self.last:
            trainer.should_stop = True


class TrainingState(Callback):
    """Epochs started and the Adam step count seen at the start of training."""

    def __init__(self) -> None:
        self.epochs: list[int] = []
        self.adam_steps_at_start: list[int] = []

    def on_train_start(self, trainer: Trainer, module) -> None:
        state = trainer.optimizers[0].state
        self.adam_steps_at_start = sorted({int(s["step"]) for s in state.values()})

    def on_train_epoch_start(self, trainer: Trainer, module) -> None:
        self.epochs.append(trainer.current_epoch)


def _trainer(directory: Path, *callbacks: Callback) -> Trainer:
    checkpoint = ModelCheckpoint(dirpath=directory, save_last=True, monitor="val/loss", filename="best")
    options = {**QUIET, "enable_checkpointing": True}
    return Trainer(max_epochs=4, callbacks=[checkpoint, *callbacks], **options)


def test_resume_continues_epochs_and_optimizer_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = TrainingState()
    trainer = _trainer(tmp_path, StopAfterEpoch(last=1), first)
    trainer.fit(tiny_module(), ethanol_datamodule())
    assert first.epochs == [0, 1] and first.adam_steps_at_start == []
    assert trainer.global_step == 2 * BATCHES_PER_EPOCH

    def no_refit(*args, **kwargs):
        raise AssertionError("reference energies must not be refitted when resuming")

    monkeypatch.setattr(pyg_hipts.train.base, "fit_reference_energies", no_refit)
    resumed = TrainingState()
    trainer = _trainer(tmp_path, resumed)
    trainer.fit(tiny_module(), ethanol_datamodule(), ckpt_path=tmp_path / "last.ckpt")
    assert resumed.epochs == [2, 3]
    assert resumed.adam_steps_at_start == [2 * BATCHES_PER_EPOCH]
    assert trainer.global_step == 4 * BATCHES_PER_EPOCH
    steps = {int(s["step"]) for s in trainer.optimizers[0].state.values()}
    assert steps == {4 * BATCHES_PER_EPOCH}
