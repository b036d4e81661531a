"""Stress by the strain derivative.

Sign convention (the same as ASE's): a homogeneous deformation ``x -> x (I + ε)`` with a
symmetric strain ``ε [3, 3]`` acts on every position (row vector) and on every lattice vector
(rows of ``cell``). The stress of a structure with cell volume ``V = |det cell|`` is::

    σ = (1 / V) ∂E/∂ε   at ε = 0,          [3, 3], energy / length³

so a compressed structure (one that wants to expand) has a negative stress and a positive
pressure ``p = -tr(σ) / 3``. The virial is ``W = -V σ = -∂E/∂ε``.
"""

from __future__ import annotations

import torch
from torch import Tensor


def zero_strain(cell: Tensor | None, pbc: Tensor | None, n_structures: int) -> Tensor:
    """A zero strain ``[B, 3, 3]`` that requires grad; the structures must have a cell of non-zero volume."""
    if cell is None or pbc is None:
        raise ValueError("stress needs cell [B, 3, 3] and pbc [B, 3]")
    if cell.shape != (n_structures, 3, 3):
        raise ValueError(f"cell must be [{n_structures}, 3, 3], got {list(cell.shape)}")
    volume = torch.linalg.det(cell.detach()).abs()
    flat = (volume < 1e-9).nonzero().flatten().tolist()
    if flat:
        raise ValueError(f"stress needs a cell of non-zero volume; structures {flat} have none")
    return torch.zeros_like(cell).requires_grad_(True)


def apply_strain(pos: Tensor, cell: Tensor, batch: Tensor, strain: Tensor) -> tuple[Tensor, Tensor]:
    """Deform ``pos [N, 3]`` and ``cell [B, 3, 3]`` by the symmetrised ``I + ε`` of their structure."""
    symmetric = 0.5 * (strain + strain.transpose(1, 2))
    deformation = torch.eye(3, dtype=cell.dtype, device=cell.device) + symmetric
    strained_pos = torch.bmm(pos.unsqueeze(1), deformation[batch]).squeeze(1)
    return strained_pos, torch.bmm(cell, deformation)


def stress_from_strain_gradient(energy_gradient: Tensor, cell: Tensor) -> Tensor:
    """``σ = (1/V) ∂E/∂ε``: ``[B, 3, 3]`` from the strain gradient and the unstrained cell."""
    volume = torch.linalg.det(cell).abs()
    return energy_gradient / volume.view(-1, 1, 1)
