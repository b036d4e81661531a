"""The optimizer of :class:`~pyg_hipts.train.PotentialModule` (fused Adam) and its exponential
moving average of the weights: the update rule, its storage, its course during a fit, and its use
in validation."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch import Callback, Trainer
from torch_geometric.data import Batch

from pyg_hipts.train import PotentialModule

from .test_datamodule import ethanol_datamodule
from .test_train_module import ETHANOL_SPECIES, QUIET, tiny_module


def test_ema_update_rule_and_storage() -> None:
    module = tiny_module(species=ETHANOL_SPECIES, ema_decay=0.75)
    assert module.eval_model is module.ema_model
    assert not any(p.requires_grad for p in module.ema_model.parameters())
    assert any(key.startswith("ema_model.") for key in module.state_dict())
    with torch.no_grad():
        for current, averaged in zip(module.model.parameters(), module.ema_model.parameters(), strict=True):
            current.fill_(1.0)
            averaged.fill_(0.0)
    module.on_train_batch_end(None, None, 0)
    for averaged in module.ema_model.parameters():
        torch.testing.assert_close(averaged, torch.full_like(averaged, 0.25))
    plain = tiny_module(species=ETHANOL_SPECIES)
    assert plain.ema_model is None and plain.eval_model is plain.model  # the model itself without EMA


def test_adam_is_fused_on_the_cpu_and_steps_as_plain_adam() -> None:
    module = tiny_module(species=ETHANOL_SPECIES)
    fused = module.configure_optimizers()["optimizer"]
    assert isinstance(fused, torch.optim.Adam) and fused.defaults["fused"]
    weights = list(module.model.parameters())
    initial = [w.detach().clone() for w in weights]
    copies = [w.clone().requires_grad_(True) for w in initial]
    plain = torch.optim.Adam(copies, lr=module.hparams.lr, foreach=False)
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        for weight, copy_ in zip(weights, copies, strict=True):
            weight.grad = torch.randn(weight.shape, generator=generator, dtype=weight.dtype)
            copy_.grad = weight.grad.clone()
        fused.step()
        plain.step()
    for weight, copy_ in zip(weights, copies, strict=True):
        torch.testing.assert_close(weight, copy_)
    assert all(not torch.equal(w, w0) for w, w0 in zip(weights, initial, strict=True))


class ParameterLog(Callback):
    """Copies of the model and EMA parameters at the start of every training batch and at the end."""

    def __init__(self) -> None:
        self.snapshots: list[tuple[list[torch.Tensor], list[torch.Tensor]]] = []

    def _snapshot(self, module: PotentialModule) -> None:
        weights = [p.detach().clone() for p in module.model.parameters()]
        self.snapshots.append((weights, [p.detach().clone() for p in module.ema_model.parameters()]))

    def on_train_batch_start(self, trainer: Trainer, module: PotentialModule, *args) -> None:
        self._snapshot(module)

    def on_train_end(self, trainer: Trainer, module: PotentialModule) -> None:
        self._snapshot(module)


def test_ema_follows_the_weights_during_fit() -> None:
    decay = 0.6
    module, log = tiny_module(ema_decay=decay), ParameterLog()
    Trainer(max_epochs=1, limit_train_batches=3, limit_val_batches=0, callbacks=[log], **QUIET).fit(
        module, ethanol_datamodule()
    )
    first_model, first_ema = log.snapshots[0]
    for a, b in zip(first_model, first_ema, strict=True):
        torch.testing.assert_close(a, b)  # starts as a copy of the weights (with E0)
    for (_, ema_before), (model_after, ema_after) in zip(log.snapshots[:-1], log.snapshots[1:], strict=True):
        for old, new, current in zip(ema_before, ema_after, model_after, strict=True):
            torch.testing.assert_close(new, old + (1 - decay) * (current - old))
    final_model, final_ema = log.snapshots[-1]
    assert any(not torch.equal(a, b) for a, b in zip(final_model, final_ema, strict=True))


def test_validation_uses_the_ema_weights() -> None:
    module, datamodule = tiny_module(ema_decay=0.5), ethanol_datamodule()
    trainer = Trainer(max_epochs=1, limit_train_batches=2, **QUIET)
    trainer.fit(module, datamodule)
    logged = trainer.validate(module, datamodule, verbose=False)[0]
    batch = Batch.from_data_list(list(datamodule.datasets["val"]))
    output = module.ema_model.predict_data(batch)
    raw = module.model.predict_data(batch)
    assert logged["val/energy_mae"] == pytest.approx(
        (output.energy.squeeze(1) - batch.energy).abs().mean().item()
    )
    assert logged["val/force_mae"] == pytest.approx(
        (output.forces - batch.forces).abs().mean().item(), rel=1e-5
    )
    assert logged["val/force_mae"] != pytest.approx((raw.forces - batch.forces).abs().mean().item(), rel=1e-5)
