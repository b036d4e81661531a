"""Lightning module that fits any potential on energies and forces.

Training loss of a batch of ``B`` structures with ``N`` atoms, for a loss kind ``ℓ`` (see
:mod:`pyg_hipts.train.metrics`)::

    L = w_E · ℓ(E − E_ref) + w_F · ℓ(F − F_ref) + w_A · ℓ(e − e_ref) + w_H · mean_b H_b + w_2 · Σ_w ‖w‖²

with energies per structure ``[B]``, force components ``[N, 3]``, per-atom energies ``[N]``
(targets ``atom_energies`` in the data, e.g. a teacher model's; needs a model that predicts
them), the hierarchicality ``H`` of each
structure (HIP-NN only) and the L2 norm over the model's ``regularization_parameters()``; it is
logged per step as ``train/batch_loss``. ``{stage}/loss`` (``val/loss`` is the learning-rate and
checkpoint monitor) is the data part ``w_E · ℓ_E + w_F · ℓ_F`` over all errors of an epoch.
Metrics are in the data's units, over whole epochs and all processes:
``{stage}/energy_{mae,rmse}`` per structure, ``{stage}/energy_per_atom_{mae,rmse}`` and
``{stage}/force_{mae,rmse}`` per component.

A model (see :class:`Potential`) is built by a subclass in :meth:`EnergyForceModule.make_model`:
:class:`~pyg_hipts.train.PotentialModule` builds HIP-NN, and
:class:`~pyg_hipts.compare.PygPotentialModule` wraps PyG's models.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor, nn
from torch_geometric.data import Batch

from pyg_hipts.data import Units, fit_reference_energies
from pyg_hipts.nn import HipOutput
from pyg_hipts.train.metrics import LossKind, PotentialMetrics, check_loss_kind, error_loss, loss_from_stats

STAGES = ("train", "val", "test")
HIGHER_LEVEL_DECAY = 1e-2
"""Scale of the level-1 energy read-out when training starts (level k: this to the ``2^(k-1)``)."""


class Potential(Protocol):
    """What :class:`EnergyForceModule` needs of a model (an ``nn.Module``)."""

    species: list[int]

    def predict_data(self, data: Batch, *, forces: bool = True, create_graph: bool = False) -> HipOutput: ...

    def set_reference_energies(self, per_species: Tensor, decay_factor: float = 1.0) -> None: ...

    def regularization_parameters(self) -> list[Tensor]: ...


@contextmanager
def autograd_enabled() -> Iterator[None]:
    """Autograd on, even inside Lightning's ``inference_mode`` evaluation loops (forces need it)."""
    with torch.inference_mode(False), torch.enable_grad():
        yield


class EnergyForceModule(LightningModule, ABC):
    """Fits a :class:`Potential` on energies and forces; subclasses say how the model is built.

    Args:
        species: atomic numbers the model knows; by default those of the data module, set when
            fitting starts (and then saved with the hyper-parameters of checkpoints).
        energy_weight: ``w_E``. force_weight: ``w_F`` (0 trains on energies only).
        loss: ``"mse"``, ``"mae"`` or ``"rmse"``.
        atom_energy_weight: ``w_A``, for data with ``atom_energies`` targets.
        hierarchicality_weight: ``w_H`` (models that report a hierarchicality). l2_weight: ``w_2``.
        lr: Adam learning rate. lr_patience, lr_factor, min_lr: ``ReduceLROnPlateau`` on ``val/loss``.
        ema_decay: when set, an exponential moving average ``θ̄ ← d θ̄ + (1 − d) θ`` of the weights,
            updated after every optimizer step, is used for validation, test and predict and is
            saved in checkpoints (``ema_model``).
    """

    def __init__(
        self,
        species: list[int] | None = None,
        energy_weight: float = 1.0,
        force_weight: float = 1.0,
        loss: LossKind = "mse",
        atom_energy_weight: float = 0.0,
        hierarchicality_weight: float = 0.0,
        l2_weight: float = 0.0,
        lr: float = 1e-3,
        lr_patience: int = 10,
        lr_factor: float = 0.5,
        min_lr: float = 1e-5,
        ema_decay: float | None = None,
    ) -> None:
        super().__init__()
        check_loss_kind(loss)
        if ema_decay is not None and not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay}")
        self.save_hyperparameters()
        self.model: nn.Module | None = None
        self.ema_model: nn.Module | None = None
        self.units: Units | None = None
        self._test_errors: dict[str, Tensor] = {}
        # keys carry a suffix: a ModuleDict key "train" would shadow ``nn.Module.train``
        self.metrics = torch.nn.ModuleDict({f"{stage}_errors": PotentialMetrics() for stage in STAGES})

    @abstractmethod
    def make_model(self, species: list[int]) -> nn.Module:
        """The model for ``species`` from the hyper-parameters (a :class:`Potential`)."""

    def build_model(self, species: list[int]) -> None:
        """Create the model (and its EMA copy) for ``species``."""
        self.hparams["species"] = [int(s) for s in species]
        self.model = self.make_model(self.hparams["species"])
        if self.hparams.ema_decay is not None:
            self.ema_model = copy.deepcopy(self.model).requires_grad_(False)

    @property
    def eval_model(self) -> nn.Module:
        """The weights used for validation, test and predict: the EMA when enabled."""
        return self.ema_model if self.ema_model is not None else self.model

    def setup(self, stage: str) -> None:
        """Build the model from the data module's species when none were given; take its units."""
        datamodule = self.trainer.datamodule
        if self.model is None:
            if datamodule is None:
                raise ValueError("species must be given when no data module provides them")
            self.build_model(datamodule.species)
        if datamodule is not None and self.units is None:
            self.units = datamodule.units

    def on_fit_start(self) -> None:
        """Fit the per-species reference energies on the training set, unless resuming."""
        if self.trainer.ckpt_path is not None:
            return
        datamodule = self.trainer.datamodule
        if datamodule is None or not hasattr(datamodule, "train_dataset"):
            rank_zero_info("No training dataset in a data module: reference energies are not fitted.")
            return
        if "energy" not in datamodule.train_dataset[0]:
            rank_zero_info("The training data has no energies: reference energies are not fitted.")
            return
        e0 = fit_reference_energies(datamodule.train_dataset, self.model.species)
        self.model.set_reference_energies(e0, decay_factor=HIGHER_LEVEL_DECAY)
        if self.ema_model is not None:
            self.ema_model.load_state_dict(self.model.state_dict())
        unit = f" {self.units.energy}" if self.units is not None else ""
        listing = ", ".join(f"{z}: {e:.6g}" for z, e in zip(self.model.species, e0.tolist(), strict=True))
        rank_zero_info(f"Reference energies per species{unit}: {listing}")

    def forward(self, batch: Batch, forces: bool = True) -> HipOutput:
        """Predictions of :attr:`eval_model` on a batch (autograd enabled for the forces)."""
        with autograd_enabled():
            return self.eval_model.predict_data(_trackable(batch), forces=forces)

    def _evaluate(self, batch: Batch, stage: str) -> tuple[HipOutput, Tensor | None, Tensor | None]:
        """Predict, update the ``stage`` metrics; return the output and the energy / force errors
        (``None`` for a quantity the data lacks, e.g. energies of coarse-grained data)."""
        training = stage == "train"
        with_forces = "forces" in batch and (not training or self.hparams.force_weight > 0)
        if training:
            output = self.model.predict_data(batch, forces=with_forces, create_graph=True)
        else:
            output = self(batch, forces=with_forces)
        energy_error = output.energy.squeeze(-1) - batch.energy if "energy" in batch else None
        force_error = output.forces - batch.forces if with_forces else None
        self.metrics[f"{stage}_errors"].update(energy_error, batch.natoms, force_error)
        return output, energy_error, force_error

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        hp = self.hparams
        output, energy_error, force_error = self._evaluate(batch, "train")
        if energy_error is None and force_error is None:
            raise ValueError("the batch has neither energies nor forces (or force_weight is 0) to train on")
        loss = output.energy.new_zeros(())
        if energy_error is not None:
            loss = loss + hp.energy_weight * error_loss(energy_error, hp.loss)
        if force_error is not None:
            loss = loss + hp.force_weight * error_loss(force_error, hp.loss)
        if hp.atom_energy_weight:
            if "atom_energies" not in batch or output.atom_energies is None:
                raise ValueError(
                    "atom_energy_weight needs atom_energies in the data and a model that predicts them"
                )
            atom_error = output.atom_energies.squeeze(-1) - batch.atom_energies
            loss = loss + hp.atom_energy_weight * error_loss(atom_error, hp.loss)
        if hp.hierarchicality_weight:
            loss = loss + hp.hierarchicality_weight * output.hierarchicality.mean()
        if hp.l2_weight:
            loss = loss + hp.l2_weight * sum(w.square().sum() for w in self.model.regularization_parameters())
        self.log(
            "train/batch_loss", loss, batch_size=batch.num_graphs, on_step=True, on_epoch=False, prog_bar=True
        )
        return loss

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
        if "energy" in stats:
            loss = loss + self.hparams.energy_weight * loss_from_stats(stats["energy"], self.hparams.loss)
        if "force" in stats:
            loss = loss + self.hparams.force_weight * loss_from_stats(stats["force"], self.hparams.loss)
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
        """Adam on the model weights; ``ReduceLROnPlateau`` on ``val/loss`` after every epoch."""
        hp = self.hparams
        optimizer = torch.optim.Adam(self.model.parameters(), lr=hp.lr)
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
        if self.units is not None:
            checkpoint["units"] = {"length": self.units.length, "energy": self.units.energy}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "units" in checkpoint:
            self.units = Units(**checkpoint["units"])


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
