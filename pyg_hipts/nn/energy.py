"""Hierarchical energy head: one linear read-out per feature level, summed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch_geometric.utils import scatter


@dataclass
class HierarchicalEnergies:
    """Energies of a batch of ``B`` structures with ``N`` atoms and ``L + 1`` levels.

    Attributes:
        energy: ``[B, 1]`` total energy ``E = Σ_k Σ_i e_i^(k)``.
        atom_energies: ``[N, 1]`` ``Σ_k e_i^(k)``.
        level_energies: ``[B, L + 1]`` ``E_k = Σ_i e_i^(k)`` per level.
        hierarchicality: ``[B, 1]`` ``Σ_i Σ_k (e_i^(k+1))² / ((e_i^(k+1))² + (e_i^(k))²)``.
    """

    energy: Tensor
    atom_energies: Tensor
    level_energies: Tensor
    hierarchicality: Tensor


class HierarchicalEnergy(nn.Module):
    """``e_i^(k) = h_i^(k) · w_k + b_k`` for each level ``k`` (level 0 = one-hot species, no bias,
    so ``w_0`` is a per-species reference energy).

    ``forward(levels: list of [N, f_k], batch [N], n_structures) -> HierarchicalEnergies``.

    Per-atom terms are computed in the features' dtype and summed in float64 (all outputs are
    float64): a molecule's total energy is dominated by the reference energies, and a float32
    sum of them would round away the chemistry (≈ 0.03 kcal/mol at -4·10⁵ kcal/mol).
    """

    def __init__(self, feature_sizes: list[int]):
        super().__init__()
        self.heads = nn.ModuleList(
            nn.Linear(width, 1, bias=level > 0) for level, width in enumerate(feature_sizes)
        )

    def forward(self, levels: list[Tensor], batch: Tensor, n_structures: int) -> HierarchicalEnergies:
        per_level = torch.cat([head(h) for head, h in zip(self.heads, levels, strict=True)], dim=1).double()
        atom_energies = per_level.sum(1, keepdim=True)
        level_energies = scatter(per_level, batch, dim=0, dim_size=n_structures, reduce="sum")
        squares = per_level.square()
        ratios = squares[:, 1:] / (squares[:, 1:] + squares[:, :-1])
        hierarchicality = scatter(ratios.sum(1, keepdim=True), batch, dim=0, dim_size=n_structures)
        return HierarchicalEnergies(
            level_energies.sum(1, keepdim=True), atom_energies, level_energies, hierarchicality
        )

    def set_reference_energies(self, per_species: Tensor, decay_factor: float = 1.0) -> None:
        """Per-species energies into level 0, higher levels scaled down: :func:`start_readouts`."""
        start_readouts(list(self.heads), per_species, decay_factor)


@torch.no_grad()
def start_readouts(readouts: Sequence[nn.Linear], per_species: Tensor, decay_factor: float = 1.0) -> None:
    """Write per-species energies ``[n_species]`` into the level-0 read-out (a weight ``[1, S]``)
    and scale the read-outs of levels ``k = 1, 2, 3, ...`` by ``decay_factor^(2^(k-1))``
    (``d, d², d⁴, ...``), so that a fresh model starts from the reference energies with small
    corrections (as hippynn starts a model).
    """
    first, *higher = readouts
    first.weight.copy_(per_species.reshape(1, -1).to(first.weight))
    factor = decay_factor
    for readout in higher:
        readout.weight.mul_(factor)
        readout.bias.mul_(factor)
        factor *= factor
