"""The learning-rate annealing over the last part of ``trainer.max_time``."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch.callbacks import Timer

from pyg_hipts.train.callbacks import TimeBudgetAnnealing


class ClockTimer(Timer):
    """A ``Timer`` whose elapsed time is set by the test instead of read from the clock."""

    def __init__(self, duration: float) -> None:
        super().__init__(duration={"seconds": duration})
        self.now = 0.0

    def time_elapsed(self, stage: str = "train") -> float:
        return self.now


def make_trainer(duration: float | None, lr: float = 1e-3) -> SimpleNamespace:
    weight = torch.nn.Parameter(torch.zeros(3))
    callbacks = [] if duration is None else [ClockTimer(duration)]
    optimizers = [torch.optim.Adam([weight], lr=lr)]
    single_process = SimpleNamespace(broadcast=lambda value: value)
    return SimpleNamespace(callbacks=callbacks, optimizers=optimizers, strategy=single_process)


def current_lr(trainer: SimpleNamespace) -> float:
    return trainer.optimizers[0].param_groups[0]["lr"]


def step_to(annealing: TimeBudgetAnnealing, trainer: SimpleNamespace, seconds: float) -> float:
    trainer.callbacks[0].now = seconds
    annealing.on_train_batch_start(trainer, None, None, 0)
    return current_lr(trainer)


def test_factor_is_one_then_a_half_cosine_down_to_the_final_factor():
    annealing = TimeBudgetAnnealing(start=0.6, final_factor=0.05)
    assert annealing.factor(0.0) == 1.0
    assert annealing.factor(0.6) == pytest.approx(1.0)
    assert annealing.factor(0.8) == pytest.approx(0.05 + 0.95 * 0.5)  # half way: cos(π/2) = 0
    assert annealing.factor(0.7) == pytest.approx(0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi / 4)))
    assert annealing.factor(1.0) == pytest.approx(0.05)
    assert annealing.factor(1.3) == pytest.approx(0.05)  # past the budget: stays at the end
    spent = torch.linspace(0, 1, 101).tolist()
    factors = [annealing.factor(f) for f in spent]
    assert all(a >= b for a, b in zip(factors, factors[1:], strict=False))


def test_learning_rate_follows_the_budget_and_composes_with_the_plateau_scheduler():
    trainer = make_trainer(duration=100.0, lr=1e-3)
    annealing = TimeBudgetAnnealing(start=0.5, final_factor=0.1)
    annealing.on_fit_start(trainer, None)
    assert step_to(annealing, trainer, 30.0) == pytest.approx(1e-3)
    assert step_to(annealing, trainer, 75.0) == pytest.approx(1e-3 * annealing.factor(0.75))
    trainer.optimizers[0].param_groups[0]["lr"] *= 0.5  # ReduceLROnPlateau halves it
    assert step_to(annealing, trainer, 90.0) == pytest.approx(0.5e-3 * annealing.factor(0.9))
    assert step_to(annealing, trainer, 100.0) == pytest.approx(0.5e-3 * 0.1)


def test_resumed_run_continues_from_the_saved_factor():
    trainer = make_trainer(duration=100.0)
    annealing = TimeBudgetAnnealing(start=0.0, final_factor=0.2)
    lr_before_stop = step_to(annealing, trainer, 50.0)
    resumed = TimeBudgetAnnealing(start=0.0, final_factor=0.2)
    resumed.load_state_dict(annealing.state_dict())
    # the optimizer state (with the annealed rate) is restored from the checkpoint as well
    assert step_to(resumed, trainer, 50.0) == pytest.approx(lr_before_stop)
    assert step_to(resumed, trainer, 100.0) == pytest.approx(1e-3 * 0.2)


def test_needs_a_time_budget_and_valid_arguments():
    with pytest.raises(ValueError, match="max_time"):
        TimeBudgetAnnealing().on_fit_start(make_trainer(duration=None), None)
    with pytest.raises(ValueError, match="start"):
        TimeBudgetAnnealing(start=1.0)
    with pytest.raises(ValueError, match="final_factor"):
        TimeBudgetAnnealing(final_factor=0.0)
