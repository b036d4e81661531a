"""Lightning module training a :class:`~pyg_hipts.nn.HipNN` potential on energies and forces
(losses, metrics and training options: :class:`~pyg_hipts.train.base.EnergyForceModule`)."""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from pyg_hipts.nn import HipNN
from pyg_hipts.train.base import EnergyForceModule

MODEL_OPTIONS: tuple[str, ...] = tuple(p for p in inspect.signature(HipNN).parameters if p != "species")
"""Arguments of :class:`HipNN` that :class:`PotentialModule` takes and passes on."""


class PotentialModule(EnergyForceModule):
    """Fits a HIP-NN / HIP-NN-TS potential; every :class:`HipNN` argument is an argument here.

    From the command line, e.g. ``--model.init_args.l_max 1`` or ``--model.l_max 1``.

    Args:
        species: atomic numbers the model knows; by default those of the data module.
        n_features, n_sensitivities, dist_soft_min, dist_soft_max, dist_hard_max,
        n_interaction_layers, n_atom_layers, l_max, resnet, cusp_reg, tensor_invariants,
        sensitivity_type, trainable_sensitivities, fused, trainable_reference_energies:
            the :class:`HipNN` hyper-parameters (lengths in the data's length unit).
        training_options: those of :class:`EnergyForceModule` (``energy_weight``,
            ``force_weight``, ``loss``, ``lr``, ``ema_decay``, ...).
    """

    def __init__(
        self,
        species: list[int] | None = None,
        n_features: int = 64,
        n_sensitivities: int = 20,
        dist_soft_min: float = 0.75,
        dist_soft_max: float = 5.5,
        dist_hard_max: float = 6.5,
        n_interaction_layers: int = 2,
        n_atom_layers: int = 3,
        l_max: int = 2,
        resnet: bool = True,
        cusp_reg: float = 1e-6,
        tensor_invariants: str = "norms",
        sensitivity_type: str = "inverse",
        trainable_sensitivities: bool = True,
        fused: bool = True,
        trainable_reference_energies: bool = False,
        **training_options: Any,
    ) -> None:
        super().__init__(species=species, **training_options)
        if species is not None:
            self.build_model(species)

    def make_model(self, species: list[int]) -> nn.Module:
        return HipNN(species, **{name: self.hparams[name] for name in MODEL_OPTIONS})
