"""Positions of atomic numbers (or bead types) in a model's species list."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


class SpeciesIndex(nn.Module):
    """``z [N] -> index [N]``, the position of each ``z`` in ``species``; raises on unknown ones."""

    def __init__(self, species: Sequence[int]):
        super().__init__()
        self.species = [int(s) for s in species]
        lookup = torch.full((max(self.species) + 1,), -1, dtype=torch.long)
        lookup[torch.tensor(self.species)] = torch.arange(len(self.species))
        self.register_buffer("lookup", lookup, persistent=False)

    def forward(self, z: Tensor) -> Tensor:
        size = self.lookup.shape[0]
        known = (z >= 0) & (z < size)
        index = torch.where(known, self.lookup[z.clamp(0, size - 1)], -1)
        if bool((index < 0).any()):
            unknown = sorted(set(z[index < 0].tolist()))
            raise ValueError(f"species {unknown} are not known to the model (species={self.species})")
        return index
