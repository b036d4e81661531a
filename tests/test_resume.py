"""A fit stopped after epoch k resumes from last.ckpt exactly: epoch counter, optimizer and EMA
state, no second pre-fit, and the same weights as a fit that was never stopped."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from lightning.pytorch import Callback, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from pyg_hipts.nn import HipNN
from pyg_hipts.train import PotentialModule
from tests.test_train_module import ETHANOL_SPECIES, QUIET, ethanol_datamodule, tiny_module

BATCHES_PER_EPOCH = 4  # 40 training frames in batches of 10
EPOCHS = 4


def seed_batch_order(epoch: int) -> None:
    """Seed the shuffle of epoch ``epoch``, so that a resumed fit sees the batches an uninterrupted
    one does. The order is drawn when the epoch's loader iterator is made: after the previous
    epoch's end, and for the first epoch of a fit before any callback hook (seeded before ``fit``)."""
    torch.manual_seed(1000 + epoch)


class StopAfterEpoch(Callback):
    """Stops the fit at the end of epoch ``last`` (0-based), as an interrupted run would."""

    def __init__(self, last: int) -> None:
        self.last = last

    def on_train_epoch_end(self, trainer: Trainer, module) -> None:
        if trainer.current_epoch == self.last:
            trainer.should_stop = True


class TrainingState(Callback):
    """Epochs started, the Adam step count and the weights (model and EMA) when training starts and
    ends; seeds the batch order of the next epoch (:func:`seed_batch_order`)."""

    def __init__(self) -> None:
        self.epochs: list[int] = []
        self.adam_steps_at_start: list[int] = []
        self.weights: dict[str, dict[str, torch.Tensor]] = {}

    def on_train_start(self, trainer: Trainer, module: PotentialModule) -> None:
        state = trainer.optimizers[0].state
        self.adam_steps_at_start = sorted({int(s["step"]) for s in state.values()})
        self.weights["start"] = {k: v.clone() for k, v in module.state_dict().items()}

    def on_train_epoch_start(self, trainer: Trainer, module) -> None:
        self.epochs.append(trainer.current_epoch)

    def on_train_epoch_end(self, trainer: Trainer, module) -> None:
        seed_batch_order(trainer.current_epoch + 1)

    def on_train_end(self, trainer: Trainer, module: PotentialModule) -> None:
        self.weights["end"] = {k: v.clone() for k, v in module.state_dict().items()}


def _trainer(directory: Path, *callbacks: Callback) -> Trainer:
    checkpoint = ModelCheckpoint(dirpath=directory, save_last=True, monitor="val/loss", filename="best")
    options = {**QUIET, "enable_checkpointing": True}
    return Trainer(max_epochs=EPOCHS, callbacks=[checkpoint, *callbacks], **options)


def _module() -> PotentialModule:
    """Built here (species given), so that nothing draws random numbers between seeding and fitting."""
    torch.manual_seed(0)
    return tiny_module(species=ETHANOL_SPECIES, ema_decay=0.5)


def test_resume_continues_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    whole, module = TrainingState(), _module()
    seed_batch_order(0)
    _trainer(tmp_path / "whole", whole).fit(module, ethanol_datamodule())
    assert whole.epochs == list(range(EPOCHS))

    first, module = TrainingState(), _module()
    trainer = _trainer(tmp_path / "stopped", StopAfterEpoch(last=1), first)
    seed_batch_order(0)
    trainer.fit(module, ethanol_datamodule())
    assert first.epochs == [0, 1] and first.adam_steps_at_start == []
    assert trainer.global_step == 2 * BATCHES_PER_EPOCH

    def no_refit(*args, **kwargs):
        raise AssertionError("the potential must not be pre-fitted again when resuming")

    monkeypatch.setattr(HipNN, "pre_fit", no_refit)
    resumed, module = TrainingState(), _module()
    trainer = _trainer(tmp_path / "stopped", resumed)
    seed_batch_order(2)
    trainer.fit(module, ethanol_datamodule(), ckpt_path=tmp_path / "stopped" / "last.ckpt")
    assert resumed.epochs == [2, 3]
    assert resumed.adam_steps_at_start == [2 * BATCHES_PER_EPOCH]
    assert trainer.global_step == EPOCHS * BATCHES_PER_EPOCH
    steps = {int(s["step"]) for s in trainer.optimizers[0].state.values()}
    assert steps == {EPOCHS * BATCHES_PER_EPOCH}

    # the weights and the EMA carry on from where they stopped, and end where the whole fit ended
    assert any(key.startswith("ema_model.") for key in resumed.weights["start"])
    for key, value in first.weights["end"].items():
        torch.testing.assert_close(resumed.weights["start"][key], value, rtol=0, atol=0, msg=key)
    for key, value in whole.weights["end"].items():
        torch.testing.assert_close(resumed.weights["end"][key], value, msg=key)
    end, stopped = whole.weights["end"], first.weights["end"]
    moved = {key.split(".")[0] for key, value in end.items() if not torch.equal(value, stopped[key])}
    assert {"model", "ema_model"} <= moved
