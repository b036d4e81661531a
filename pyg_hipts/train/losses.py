"""Loss terms of :class:`~pyg_hipts.train.PotentialModule`, each a small object with a weight.

The training loss of a batch is ``L = Σ_t w_t · L_t``. Data terms compare predictions with the
batch's targets through a loss kind ``ℓ`` (:mod:`pyg_hipts.train.metrics`: ``mse``, ``mae``,
``rmse``):

- :class:`EnergyLoss`: ``ℓ(E − E_ref)`` over the structures' energies ``[B]``;
- :class:`ForceLoss`: ``ℓ(F − F_ref)`` over the force components ``[N, 3]``;
- :class:`AtomEnergyLoss`: ``ℓ(e − e_ref)`` over per-atom energies ``[N]`` (targets
  ``atom_energies`` in the data, e.g. a teacher model's);

and regularisers act on the potential:

- :class:`HierarchicalityLoss`: ``mean_b H_b`` of potentials that report a ``hierarchicality``;
- :class:`L2Loss`: ``Σ_w ‖w‖²`` over the potential's ``regularization_parameters()``.

The epoch loss ``{stage}/loss`` (the learning-rate and checkpoint monitor) is the data part
``Σ_t w_t ℓ_t`` of the energy and force terms over all errors of an epoch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from torch import Tensor
from torch_geometric.data import Batch

from pyg_hipts.potentials import Potential, PotentialOutput
from pyg_hipts.train.metrics import LossKind, check_loss_kind, error_loss, loss_from_stats


class LossTerm(ABC):
    """One weighted term of the training loss.

    Args:
        weight: ``w_t`` (a term of weight 0 is left out).
    """

    needs_forces: ClassVar[bool] = False
    """Whether the term needs the forces predicted (and so differentiable)."""

    def __init__(self, weight: float = 1.0) -> None:
        if weight < 0:
            raise ValueError(f"{type(self).__name__}: weight must be >= 0, got {weight}")
        self.weight = float(weight)

    def check(self, potential: Potential) -> None:  # noqa: B027 (optional hook; most terms need nothing)
        """Raise a clear error when ``potential`` cannot give what the term needs."""

    @abstractmethod
    def __call__(self, output: PotentialOutput, batch: Batch, potential: Potential) -> Tensor | None:
        """``L_t`` of the batch, or ``None`` when the batch lacks the term's targets."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(weight={self.weight})"


class DataLoss(LossTerm):
    """A term on errors ``prediction − target`` of one quantity.

    Args:
        weight: ``w_t``. kind: ``"mse"``, ``"mae"`` or ``"rmse"``.
    """

    quantity: ClassVar[str]
    """The key of the epoch statistics in :class:`~pyg_hipts.train.metrics.PotentialMetrics`."""

    def __init__(self, weight: float = 1.0, kind: LossKind = "mse") -> None:
        super().__init__(weight)
        check_loss_kind(kind)
        self.kind = kind

    @abstractmethod
    def error(self, output: PotentialOutput, batch: Batch) -> Tensor | None:
        """The errors of the batch (``None`` without targets)."""

    def __call__(self, output: PotentialOutput, batch: Batch, potential: Potential) -> Tensor | None:
        error = self.error(output, batch)
        return None if error is None else error_loss(error, self.kind)

    def epoch_loss(self, stats: dict[str, dict[str, Tensor]]) -> Tensor | None:
        """``ℓ`` over an epoch's statistics (``None`` when the quantity was not seen)."""
        return loss_from_stats(stats[self.quantity], self.kind) if self.quantity in stats else None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(weight={self.weight}, kind={self.kind!r})"


class EnergyLoss(DataLoss):
    """``ℓ(E − E_ref)`` per structure."""

    quantity = "energy"

    def error(self, output: PotentialOutput, batch: Batch) -> Tensor | None:
        return output.energy.squeeze(-1) - batch.energy if "energy" in batch else None


class ForceLoss(DataLoss):
    """``ℓ(F − F_ref)`` per force component."""

    quantity = "force"
    needs_forces = True

    def error(self, output: PotentialOutput, batch: Batch) -> Tensor | None:
        if "forces" not in batch or output.forces is None:
            return None
        return output.forces - batch.forces


class AtomEnergyLoss(DataLoss):
    """``ℓ(e − e_ref)`` per atom, against ``atom_energies`` in the data."""

    quantity = "atom_energy"

    def error(self, output: PotentialOutput, batch: Batch) -> Tensor | None:
        if "atom_energies" not in batch:
            raise ValueError("AtomEnergyLoss needs atom_energies in the data (e.g. a labelled file)")
        return output.atom_energies.squeeze(-1) - batch.atom_energies


class HierarchicalityLoss(LossTerm):
    """``mean_b H_b``: keeps higher HIP-NN levels small against lower ones."""

    def check(self, potential: Potential) -> None:  # noqa: B027 (optional hook; most terms need nothing)
        if not potential.supports("hierarchicality"):
            raise ValueError(f"HierarchicalityLoss: {type(potential).__name__} reports no hierarchicality")

    def __call__(self, output: PotentialOutput, batch: Batch, potential: Potential) -> Tensor:
        return output.extras["hierarchicality"].mean()


class L2Loss(LossTerm):
    """``Σ_w ‖w‖²`` over the potential's regularised weights."""

    def __call__(self, output: PotentialOutput, batch: Batch, potential: Potential) -> Tensor:
        return sum(w.square().sum() for w in potential.regularization_parameters())
