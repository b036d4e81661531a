"""HIP-NN / HIP-NN-TS as a :class:`~pyg_hipts.potentials.Potential`: ``forward(z, pos, batch)
-> energy [B, 1]``, like PyG's ``SchNet``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor, nn

from pyg_hipts.data.graph import PairList
from pyg_hipts.data.statistics import fit_reference_energies
from pyg_hipts.potentials import Potential, Structures
from pyg_hipts.units import Units

from .energy import HierarchicalEnergy, start_readouts
from .hop import HopInteraction
from .interaction import HipInteraction
from .layers import Residual, atom_layer

HIGHER_LEVEL_DECAY = 1e-2
"""Scale of the level-1 energy read-out after :meth:`HipNN.pre_fit` (level k: this to the ``2^(k-1)``)."""


class HipNN(Potential):
    """Hierarchically Interacting Particle Neural Network with tensor sensitivity.

    Hyper-parameter names follow hippynn's ``Hipnn``; the cutoff of the potential is
    ``dist_hard_max``. Extra outputs: ``level_energies``, ``hierarchicality``.

    Args:
        species: atomic numbers (or bead types) the model knows; input ``z`` outside this list
            is an error. Features start as the one-hot encoding of the position in this list.
        n_features: width of every interaction block.
        n_sensitivities: number of distance sensitivities ``ν``.
        dist_soft_min, dist_soft_max: innermost and outermost sensitivity centres.
        dist_hard_max: cutoff radius of the radius graph and of the sensitivities.
        n_interaction_layers: number of blocks (interaction + atom layers).
        n_atom_layers: dense layers after each interaction.
        l_max: tensor sensitivity order: 0 = HIP-NN, 1 = vectors, 2 = vectors and quadrupoles,
            3 = octupoles too (only with ``n_max``).
        resnet: residual form of every layer (hippynn's default).
        cusp_reg: ``ε`` inside the tensor norms.
        tensor_invariants: ``"norms"`` (HIP-NN-TS: ``‖b‖`` and ``‖c‖`` per channel) or
            ``"complete"`` (adds ``bᵀcb``, ``tr c³``, ``‖cb‖²``, divided by the norms; ``l_max = 2``), see
            :mod:`.interaction`.
        n_max: HIP-HOP-NN (:mod:`.hop`): the polynomial invariants of at most ``n_max`` tensor
            factors (2 … 4) of the sums up to ``l_max`` (2 or 3; ``l_max=3, n_max=4`` is
            HIP-HOP-NN's default, 13 invariants), group-normalised and mixed as in hippynn's
            ``HipHopNNModule``. ``None`` (default): HIP-NN-TS with ``tensor_invariants``.
        group_norm: with ``n_max``, normalise each invariant's channels per atom (hippynn's default).
        pseudoscalars: add a chirality feature per channel, ``b · (cb × c²b)`` divided by norms
            (``l_max >= 2``, its scale starting at 0): the other invariants are the same for a
            structure and its mirror image, this one changes sign (:mod:`.interaction`).
        sensitivity_type: ``"inverse"`` (Gaussians in ``1/d``) or ``"gaussian"`` (in ``d``).
        trainable_sensitivities: let the optimiser move the sensitivity centres and widths
            (hippynn's default). Freezing them keeps the radial functions as wide as they start
            (trained on 1000 rMD17 frames, the widths of 10 Gaussians in ``d`` shrink from 0.4 Å
            to 0.13–0.3 Å).
        fused: evaluate interactions with padded batched products (fast) instead of PyG's
            gather / scatter path (same numbers).
        trainable_reference_energies: let the optimiser move the per-species reference energies
            (level 0). Off by default, as in hippynn: they are large (≈ 10⁴ kcal/mol per atom), a
            float32 step rounds to their last bit, and an average of the weights cannot follow them.
        units: of positions and energies (set from the training data).
    """

    fits_energies = True
    reports = frozenset({"level_energies", "hierarchicality"})

    def __init__(
        self,
        species: Sequence[int],
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
        n_max: int | None = None,
        group_norm: bool = True,
        pseudoscalars: bool = False,
        sensitivity_type: str = "inverse",
        trainable_sensitivities: bool = True,
        fused: bool = True,
        trainable_reference_energies: bool = False,
        units: Units | None = None,
    ):
        super().__init__(species, dist_hard_max, units)
        if n_max is not None and tensor_invariants != "norms":
            raise ValueError(
                "n_max selects HIP-HOP-NN's invariants; tensor_invariants applies only without it"
            )
        species = self.species
        self.dist_hard_max, self.l_max, self.fused = dist_hard_max, l_max, fused
        self.activation = nn.Softplus()
        widths = [len(species)] + [n_features] * n_interaction_layers
        self.blocks = nn.ModuleList()
        for width_in, width_out in zip(widths[:-1], widths[1:], strict=True):
            common = (
                width_in,
                width_out,
                n_sensitivities,
                dist_soft_min,
                dist_soft_max,
                dist_hard_max,
                l_max,
            )
            if n_max is None:
                interaction = HipInteraction(
                    *common, sensitivity_type, cusp_reg, tensor_invariants, pseudoscalars=pseudoscalars
                )
            else:
                interaction = HopInteraction(
                    *common, sensitivity_type, n_max, group_norm, pseudoscalars=pseudoscalars
                )
            interaction.sensitivity.requires_grad_(trainable_sensitivities)
            layers = [Residual(interaction, width_in, width_out, width_out, self.activation, resnet)]
            layers += [
                atom_layer(width_out, width_out, self.activation, resnet) for _ in range(n_atom_layers)
            ]
            self.blocks.append(nn.ModuleList(layers))
        self.energy_head = HierarchicalEnergy(widths)
        self.energy_head.heads[0].weight.requires_grad_(trainable_reference_energies)

    @property
    def interactions(self) -> list[HipInteraction | HopInteraction]:
        return [block[0].layer for block in self.blocks]

    def one_hot(self, z: Tensor, dtype: torch.dtype) -> Tensor:
        """``z [N] -> [N, n_species]`` by rows of the identity, with no host synchronisation
        (``Potential.structures`` has already refused species the model does not know)."""
        identity = torch.eye(len(self.species), dtype=dtype, device=z.device)
        return identity[self.species_index.lookup[z]]

    def features(self, z: Tensor, pos: Tensor, pairs: PairList) -> list[Tensor]:
        """Features of every level ``[x⁰ = one-hot, x¹, ..., x^L]``, each ``[N, f_k]``."""
        x = self.one_hot(z, pos.dtype)
        levels = [x]
        for block in self.blocks:
            x = block[0](x, pairs, self.fused and pairs.has_layout)
            for layer in block[1:]:
                x = layer(x)
            levels.append(x)
        return levels

    def atom_energies(self, structures: Structures) -> Tensor:
        """``Σ_k e_i^(k)`` ``[N]``; records ``level_energies [B, L + 1]`` and
        ``hierarchicality [B, 1]`` (see :class:`~.energy.HierarchicalEnergy`)."""
        pairs = structures.pairs(self.dist_hard_max)
        if not pairs.traced:  # the check synchronises with the host
            self.interactions[0].sensitivity.warn_if_too_close(pairs.dist)
        levels = self.features(structures.z, structures.pos, pairs)
        energies = self.energy_head(levels, structures.batch, structures.n_structures)
        structures.record("level_energies", energies.level_energies)
        structures.record("hierarchicality", energies.hierarchicality)
        return energies.atom_energies

    def pre_fit(self, dataset: Any) -> None:
        """Per-species reference energies (level 0) by least squares on the training energies,
        and the higher levels scaled down by :data:`HIGHER_LEVEL_DECAY` (as hippynn starts):
        :func:`start_from_reference_energies`."""
        start_from_reference_energies(list(self.energy_head.heads), dataset, self.species)

    def set_reference_energies(self, per_species: Tensor, decay_factor: float = 1.0) -> None:
        """Per-species reference energies ``[n_species]`` (order of ``species``) into level 0.

        ``decay_factor < 1`` also shrinks the higher-level read-outs (hippynn uses ``1e-2`` when a
        model starts training), see :meth:`HierarchicalEnergy.set_reference_energies`.
        """
        if per_species.numel() != len(self.species):
            raise ValueError(f"expected {len(self.species)} reference energies, got {per_species.numel()}")
        self.energy_head.set_reference_energies(per_species, decay_factor)

    def regularization_parameters(self) -> list[Tensor]:
        """Weights penalised by an L2 term (interaction, self-interaction, dense, residual)."""
        params = []
        for block in self.blocks:
            for layer in block:
                params += layer.regularization_parameters()
        return params


def start_from_reference_energies(readouts: list[nn.Linear], dataset: Any, species: Sequence[int]) -> None:
    """Start hierarchical read-outs (level 0 first, a weight ``[1, S]`` over the one-hot
    species) from per-species reference energies fitted by least squares on the training
    energies, the higher levels scaled by :data:`HIGHER_LEVEL_DECAY` (:func:`.energy.start_readouts`).
    Nothing is fitted when the data have no energies."""
    if len(dataset) == 0 or "energy" not in dataset[0]:
        rank_zero_info("The training data has no energies: reference energies are not fitted.")
        return
    e0 = fit_reference_energies(dataset, species)
    start_readouts(readouts, e0, HIGHER_LEVEL_DECAY)
    listing = ", ".join(f"{z}: {e:.6g}" for z, e in zip(species, e0.tolist(), strict=True))
    rank_zero_info(f"Reference energies per species: {listing}")
