"""The Lightning module that fits any :class:`~pyg_hipts.potentials.Potential`.

``PotentialModule(model, losses)`` takes the potential (or a factory ``species -> potential``,
which a YAML ``class_path`` without ``species`` gives) and the loss terms
(:mod:`pyg_hipts.train.losses`). The species come from the data module unless given. When
fitting starts (not when resuming) the potential's units are set from the data and its
:meth:`~pyg_hipts.potentials.Potential.pre_fit` runs on the training set.

Metrics are in the data's units, over whole epochs and all processes:
``{stage}/energy_{mae,rmse}`` per structure, ``{stage}/energy_per_atom_{mae,rmse}`` and
``{stage}/force_{mae,rmse}`` per component; ``{stage}/loss`` is the data part of the loss (see
:mod:`pyg_hipts.train.losses`), ``train/batch_loss`` the whole loss per step. Checkpoints hold the
potential's spec (``potential``) beside the weights, for
:func:`~pyg_hipts.potentials.load_potential`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor
from torch_geometric.data import Batch

from pyg_hipts.potentials import Potential, PotentialFactory, PotentialOutput
from pyg_hipts.train.losses import DataLoss, EnergyLoss, ForceLoss, LossTerm
from pyg_hipts.train.metrics import PotentialMetrics
from pyg_hipts.units import Units

STAGES = ("train", "val", "test")


@contextmanager
def autograd_enabled() -> Iterator[None]:
    """Autograd on, even inside Lightning's ``inference_mode`` evaluation loops (forces need it)."""
    with torch.inference_mode(False), torch.enable_grad():
        yield


class PotentialModule(LightningModule):
    """Fits a potential on energies and forces (see the module docstring).

    Args:
        model: the potential, or a factory ``species -> potential`` built in :meth:`setup`.
        losses: the loss terms; by default ``EnergyLoss(1) + ForceLoss(1)``.
        species: the species of a factory-built potential; by default the data module's.
        lr: Adam learning rate. lr_patience, lr_factor, min_lr: ``ReduceLROnPlateau`` on ``val/loss``.
        ema_decay: when set, an exponential moving average ``θ̄ ← d θ̄ + (1 − d) θ`` of the weights,
            updated after every optimizer step, is used for validation, test and predict and is
            saved in checkpoints (``ema_model``).
        compile: train through a compiled graph of the energies and forces
            (:meth:`~pyg_hipts.potentials.Potential.compile_for_training`); validation, test
            and predict stay eager.
    """

    def __init__(
        self,
        model: Potential | PotentialFactory,
        losses: Sequence[LossTerm] | None = None,
        species: list[int] | None = None,
        lr: float = 1e-3,
        lr_patience: int = 10,
        lr_factor: float = 0.5,
        min_lr: float = 1e-5,
        ema_decay: float | None = None,
        compile: bool = False,
    ) -> None:
        super().__init__()
        if ema_decay is not None and not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay}")
        self.save_hyperparameters(ignore=["model", "losses"])
        self.losses = [term for term in (losses or [EnergyLoss(1.0), ForceLoss(1.0)]) if term.weight > 0]
        if not self.losses:
            raise ValueError("every loss term has weight 0: there is nothing to train on")
        self.factory = None if isinstance(model, Potential) else model
        self.model: Potential | None = None
        self.ema_model: Potential | None = None
        self._test_errors: dict[str, Tensor] = {}
        self._batch_frames = ""
        # keys carry a suffix: a ModuleDict key "train" would shadow ``nn.Module.train``
        self.metrics = torch.nn.ModuleDict({f"{stage}_errors": PotentialMetrics() for stage in STAGES})
        if isinstance(model, Potential):
            self.attach(model)
        elif species is not None:
            self.attach(model(species))

    def attach(self, potential: Potential) -> None:
        """Make ``potential`` the trained model (and copy it for the EMA)."""
        if not isinstance(potential, Potential):
            raise TypeError(f"the model must be a pyg_hipts Potential, got {type(potential).__name__}")
        for term in self.losses:
            term.check(potential)
        self.hparams["species"] = list(potential.species)
        self.model = potential
        if self.hparams.ema_decay is not None:
            self.ema_model = copy.deepcopy(potential).requires_grad_(False)
        if self.hparams.compile:
            potential.compile_for_training()

    @property
    def eval_model(self) -> Potential:
        """The weights used for validation, test and predict: the EMA when enabled."""
        return self.ema_model if self.ema_model is not None else self.model

    @property
    def units(self) -> Units | None:
        return None if self.model is None else self.model.units

    def setup(self, stage: str) -> None:
        """Build the potential from the data module's species when needed; check or take the units."""
        datamodule = self.trainer.datamodule
        if self.model is None:
            if datamodule is None:
                raise ValueError("species must be given when no data module provides them")
            self.attach(self.factory(datamodule.species))
        if datamodule is None:
            return
        data_units = datamodule.units
        if self.model.units is None:
            for potential in (self.model, self.ema_model):
                if potential is not None:
                    potential.set_units(data_units)
        elif self.model.units != data_units:
            raise ValueError(f"the potential works in {self.model.units}, the data are in {data_units}")

    def on_fit_start(self) -> None:
        """Data-dependent set-up of the potential on the training set, unless resuming."""
        if self.trainer.ckpt_path is not None:
            return
        datamodule = self.trainer.datamodule
        if datamodule is None or not hasattr(datamodule, "train_dataset"):
            rank_zero_info("No training dataset in a data module: the potential's pre_fit is skipped.")
            return
        self.model.pre_fit(datamodule.train_dataset)
        if self.ema_model is not None:
            self.ema_model.load_state_dict(self.model.state_dict())

    def forward(self, batch: Batch, forces: bool = True) -> PotentialOutput:
        """Predictions of :attr:`eval_model` on a batch (autograd enabled for the forces)."""
        with autograd_enabled():
            return self.eval_model.predict_data(_trackable(batch), forces=forces)

    def _evaluate(self, batch: Batch, stage: str) -> PotentialOutput:
        """Predict and update the ``stage`` metrics."""
        training = stage == "train"
        wants_forces = any(term.needs_forces for term in self.losses) if training else True
        with_forces = "forces" in batch and wants_forces
        if training:
            output = self.model.predict_data(batch, forces=with_forces, create_graph=with_forces)
        else:
            output = self(batch, forces=with_forces)
        energy_error = output.energy.squeeze(-1) - batch.energy if "energy" in batch else None
        force_error = output.forces - batch.forces if with_forces else None
        self.metrics[f"{stage}_errors"].update(energy_error, batch.natoms, force_error)
        return output

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        output = self._evaluate(batch, "train")
        parts = [(term, term(output, batch, self.model)) for term in self.losses]
        if all(value is None for term, value in parts if isinstance(term, DataLoss)):
            raise ValueError(
                f"the batch has no targets for any data loss term {[repr(t) for t in self.losses]}"
            )
        loss = sum(term.weight * value for term, value in parts if value is not None)
        self._batch_frames = _frames_of(batch)
        if not bool(torch.isfinite(loss)):
            raise FloatingPointError(
                f"non-finite training loss {float(loss)} in batch {batch_idx} ({self._batch_frames}); "
                "training stopped before the weights were changed: the last checkpoints are intact"
            )
        self.log(
            "train/batch_loss", loss, batch_size=batch.num_graphs, on_step=True, on_epoch=False, prog_bar=True
        )
        return loss

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Stop before a step with non-finite gradients, naming the batch's structures."""
        grads = [(name, p.grad) for name, p in self.model.named_parameters() if p.grad is not None]
        if not grads or bool(torch.nn.utils.get_total_norm([grad for _, grad in grads]).isfinite()):
            return  # one fused norm and one synchronisation when everything is finite
        bad = [name for name, grad in grads if not bool(grad.isfinite().all())]
        raise FloatingPointError(
            f"non-finite gradients of {len(bad)} weights (e.g. {bad[0]}) for {self._batch_frames}; "
            "training stopped before the weights were changed: the last checkpoints are intact"
        )

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def predict_step(self, batch: Batch, batch_idx: int) -> dict[str, Tensor]:
        """``energy [B]``, ``forces [N, 3]``, ``natoms [B]`` and ``z [N]`` of a batch."""
        output = self(batch)
        return {
            "energy": output.energy.detach().squeeze(-1),
            "forces": output.forces.detach(),
            "natoms": batch.natoms,
            "z": batch.z,
        }

    def on_train_batch_end(self, outputs: Any, batch: Batch, batch_idx: int) -> None:
        """Move the EMA weights towards the current ones: ``θ̄ ← θ̄ + (1 − d)(θ − θ̄)``."""
        if self.ema_model is None:
            return
        with torch.no_grad():
            for averaged, current in zip(self.ema_model.parameters(), self.model.parameters(), strict=True):
                averaged.lerp_(current, 1.0 - self.hparams.ema_decay)

    def epoch_metrics(self, stage: str) -> dict[str, Tensor]:
        """Errors of the epoch so far, over all processes, and the ``loss`` they give, by name."""
        stats = self.metrics[f"{stage}_errors"].compute()
        values = {
            f"{quantity}_{kind}": value for quantity, pair in stats.items() for kind, value in pair.items()
        }
        loss = torch.zeros((), dtype=torch.float64, device=self.device)
        for term in self.losses:
            if isinstance(term, DataLoss) and (part := term.epoch_loss(stats)) is not None:
                loss = loss + term.weight * part
        values["loss"] = loss
        return values

    def _log_epoch(self, stage: str) -> dict[str, Tensor]:
        values = self.epoch_metrics(stage)
        self.metrics[f"{stage}_errors"].reset()
        shown = {"energy_mae", "force_mae"} if stage == "val" else set()
        for name, value in values.items():
            self.log(f"{stage}/{name}", value.float(), sync_dist=True, prog_bar=name in shown)
        return values

    def on_train_epoch_end(self) -> None:
        if any(stat.update_called for stat in self.metrics["train_errors"].stats.values()):
            self._log_epoch("train")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def on_test_epoch_end(self) -> None:
        self._test_errors = self._log_epoch("test")

    def on_test_end(self) -> None:
        """Report the test errors with their units (after the progress bar has closed)."""
        rank_zero_info(format_errors("Test", self._test_errors, self.units))

    def configure_optimizers(self) -> dict[str, Any]:
        """Adam on the model weights; ``ReduceLROnPlateau`` on ``val/loss`` after every epoch.

        Adam runs fused (one kernel over all weights) where every weight is a floating-point tensor
        on the CPU or a CUDA device, instead of a Python loop of a dozen operations per weight.
        """
        hp = self.hparams
        weights = list(self.model.parameters())
        fused = all(w.is_floating_point() and w.device.type in ("cpu", "cuda") for w in weights)
        optimizer = torch.optim.Adam(weights, lr=hp.lr, fused=fused or None)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=hp.lr_factor, patience=hp.lr_patience, min_lr=hp.min_lr
        )
        return {
            "optimizer": optimizer,
            # strict=False: without validation data the learning rate stays as it is
            "lr_scheduler": {
                "scheduler": scheduler,
                "monitor": "val/loss",
                "interval": "epoch",
                "strict": False,
            },
        }

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store the potential's spec (class path, arguments, units, dtype) beside the weights,
        and the masses, names and temperature the training file records (``system``, plain data,
        :class:`~pyg_hipts.data.SystemInfo`), which simulations of the potential read back."""
        checkpoint["potential"] = self.model.spec()
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        system = getattr(datamodule, "system", None)
        if system is not None:
            checkpoint["system"] = system.as_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Take the units the checkpointed potential was trained in."""
        units = checkpoint.get("potential", {}).get("units")
        if units is not None and self.model is not None:
            for potential in (self.model, self.ema_model):
                if potential is not None:
                    potential.set_units(Units(**units))


def _frames_of(batch: Batch) -> str:
    """``"frames [i, j, …] of <file>"``: where the structures of a batch come from."""
    frames = batch.frame_number.tolist() if "frame_number" in batch else "unknown"
    return f"frames {frames} of the training file"


def _trackable(batch: Batch) -> Batch:
    """The batch itself, or a copy when its tensors were made in inference mode (not usable by autograd)."""
    return batch.clone() if batch.pos.is_inference() else batch


def format_errors(title: str, values: dict[str, Tensor], units: Units | None) -> str:
    """One line: energy MAE / RMSE (per structure and per atom) and force MAE / RMSE, with units."""
    energy = f" {units.energy}" if units is not None else ""
    force = f" {units.force}" if units is not None else ""
    parts = []
    if "energy_mae" in values:
        parts += [
            f"energy MAE {values['energy_mae']:.4g}{energy} (RMSE {values['energy_rmse']:.4g}{energy})",
            f"energy per atom MAE {values['energy_per_atom_mae']:.4g}{energy}",
        ]
    if "force_mae" in values:
        parts.append(f"force MAE {values['force_mae']:.4g}{force} (RMSE {values['force_rmse']:.4g}{force})")
    return f"{title}: " + ", ".join(parts)
