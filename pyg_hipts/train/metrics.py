"""Losses and epoch-level error statistics for energies and forces.

Errors are ``δ = prediction − reference`` in the data's units. A loss kind maps a set of errors to a
number: ``mse = mean δ²``, ``mae = mean |δ|``, ``rmse = sqrt(mean δ²)``. Energy errors are per
structure; force errors are per Cartesian component.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor
from torchmetrics import Metric

LossKind = Literal["mse", "mae", "rmse"]
LOSS_KINDS: tuple[str, ...] = ("mse", "mae", "rmse")


def check_loss_kind(kind: str) -> None:
    """Raise ``ValueError`` unless ``kind`` is one of :data:`LOSS_KINDS`."""
    if kind not in LOSS_KINDS:
        raise ValueError(f"loss must be one of {LOSS_KINDS}, got {kind!r}")


def error_loss(error: Tensor, kind: str) -> Tensor:
    """Loss of a tensor of errors (any shape, all entries weigh the same), differentiable."""
    if kind == "mae":
        return error.abs().mean()
    mse = error.square().mean()
    return mse.sqrt() if kind == "rmse" else mse


class ErrorStats(Metric):
    """Running sums of ``|δ|`` and ``δ²`` over all errors of an epoch, reduced over processes.

    ``compute()`` returns ``{"mae": Σ|δ| / n, "rmse": sqrt(Σδ² / n)}`` over every error seen since
    the last reset (not a mean of batch means). Sums are kept in float64.
    """

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        for name in ("abs_sum", "sq_sum", "count"):
            self.add_state(name, default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, error: Tensor) -> None:
        error = error.detach().to(torch.float64).reshape(-1)
        self.abs_sum += error.abs().sum()
        self.sq_sum += error.square().sum()
        self.count += error.numel()

    def compute(self) -> dict[str, Tensor]:
        return {"mae": self.abs_sum / self.count, "rmse": (self.sq_sum / self.count).sqrt()}


def loss_from_stats(stats: dict[str, Tensor], kind: str) -> Tensor:
    """The loss ``kind`` of a whole epoch from its :class:`ErrorStats` result."""
    return stats["mae"] if kind == "mae" else stats["rmse"].square() if kind == "mse" else stats["rmse"]


class PotentialMetrics(torch.nn.Module):
    """Epoch errors of energies per structure, per atom (``δE / n_atoms``) and force components.

    ``update(energy_error [B] or None, natoms [B], force_error [N, 3] or None)``; ``compute()``
    gives, for what was seen, ``energy_mae``, ``energy_rmse``, ``energy_per_atom_mae``,
    ``energy_per_atom_rmse`` and ``force_mae``, ``force_rmse`` (energy and energy / length units).
    """

    def __init__(self) -> None:
        super().__init__()
        self.stats = torch.nn.ModuleDict(
            {name: ErrorStats() for name in ("energy", "energy_per_atom", "force")}
        )

    def update(self, energy_error: Tensor | None, natoms: Tensor, force_error: Tensor | None) -> None:
        if energy_error is not None:
            self.stats["energy"].update(energy_error)
            self.stats["energy_per_atom"].update(energy_error / natoms)
        if force_error is not None:
            self.stats["force"].update(force_error)

    def compute(self) -> dict[str, dict[str, Tensor]]:
        """``{"energy": {"mae", "rmse"}, "energy_per_atom": ..., "force": ...}`` (those seen)."""
        return {name: stat.compute() for name, stat in self.stats.items() if stat.update_called}

    def reset(self) -> None:
        for stat in self.stats.values():
            stat.reset()
