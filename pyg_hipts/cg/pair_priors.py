"""A repulsion between every pair of close beads, for liquids and other systems without a fixed
topology (periodic or not).

For beads of types ``a, b`` at distance ``r`` below the cutoff ``r_c``::

    u_ab(r) = ε [(σ_ab/r)^p − (σ_ab/r_c)^p + p (σ_ab/r_c)^p (r/r_c − 1)]

the shifted-force form of ``ε (σ/r)^p``: both ``u`` and ``du/dr`` vanish at ``r_c``, so the
prior adds no jump to energies or forces when a pair crosses the cutoff. The energy of a
structure is ``U = Σ_{i<j} u(r_ij)`` over its pairs, periodic images included.

Boltzmann-style fit from mapped frames: ``σ_ab`` is the smallest distance between beads of types
``a`` and ``b`` that the frames sample, ``ε = kT``. A pair of types that never comes within
``r_c`` gets the smallest ``σ`` of all. The prior is then weak where the reference samples
(``u(1.15 σ) ≈ 0.05 kT`` for ``p = 12``, ``r_c = 1.25 σ``) and steep closer than it ever came,
where a network trained on the reference has seen no data.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from pyg_hipts.data.periodic import neighbour_pairs, pair_distances


class PairRepulsion(nn.Module):
    """The shifted-force repulsion of the module docstring over all bead pairs within ``cutoff``.

    Args:
        sigma: ``[T, T]`` symmetric ``σ_ab`` per pair of bead types (length unit).
        epsilon: ``ε`` (energy unit). cutoff: ``r_c``, larger than every ``σ``. power: ``p``.
    """

    def __init__(self, sigma, epsilon: float, cutoff: float, power: int = 12):
        super().__init__()
        sigma = torch.tensor(sigma, dtype=torch.float64)
        if sigma.dim() != 2 or sigma.shape[0] != sigma.shape[1] or not torch.equal(sigma, sigma.T):
            raise ValueError(f"sigma must be a symmetric [T, T] matrix, got {list(sigma.shape)}")
        if bool((sigma <= 0).any()) or bool((sigma >= cutoff).any()):
            raise ValueError(f"every sigma must lie in (0, cutoff = {cutoff}); got {sigma.tolist()}")
        self.register_buffer("sigma", sigma)
        self.register_buffer("epsilon", torch.tensor(float(epsilon), dtype=torch.float64))
        self.cutoff, self.power = float(cutoff), int(power)

    def pair_energy(self, r: Tensor, sigma: Tensor) -> Tensor:
        """``u(r)`` ``[P]`` for distances ``r [P]`` below the cutoff and their ``σ [P]``."""
        p, r_c = self.power, self.cutoff
        at_cutoff = (sigma / r_c) ** p
        return self.epsilon.to(r.dtype) * ((sigma / r) ** p - at_cutoff + p * at_cutoff * (r / r_c - 1.0))

    def forward(
        self,
        types: Tensor,
        pos: Tensor,
        batch: Tensor,
        n_structures: int,
        cell: Tensor | None = None,
        pbc: Tensor | None = None,
    ) -> Tensor:
        """Energies ``[B, 1]`` of the structures of a flat batch: ``types [N]`` (indices into
        ``sigma``), ``pos [N, 3]``, ``batch [N]``, with ``cell [B, 3, 3]`` and ``pbc [B, 3]``
        for periodic ones."""
        edge_index, shifts, _ = neighbour_pairs(pos, batch, self.cutoff, cell, pbc)
        r = pair_distances(pos, edge_index, shifts)
        sigma = self.sigma.to(r.dtype)[types[edge_index[0]], types[edge_index[1]]]
        per_pair = 0.5 * self.pair_energy(r, sigma)  # every pair is listed in both directions
        energy = torch.zeros(n_structures, dtype=r.dtype, device=r.device)
        return energy.index_add(0, batch[edge_index[1]], per_pair).unsqueeze(-1)

    @classmethod
    def fit(
        cls,
        frames: Iterable[tuple[Tensor, Tensor, Tensor | None, Tensor | None]],
        n_types: int,
        thermal_energy: float,
        cutoff: float,
        power: int = 12,
    ) -> PairRepulsion:
        """``σ_ab`` = the smallest sampled distance of types ``a, b``, ``ε = kT``, from
        ``frames`` of ``(types [n], pos [n, 3], cell [1, 3, 3] or None, pbc [1, 3] or None)``."""
        closest = torch.full((n_types, n_types), float("inf"), dtype=torch.float64)
        for types, pos, cell, pbc in frames:
            pos = pos.detach().double()
            batch = torch.zeros(len(pos), dtype=torch.long)
            cell = None if cell is None else cell.detach().double().view(1, 3, 3)
            pbc = None if pbc is None else pbc.view(1, 3)
            edge_index, shifts, _ = neighbour_pairs(pos, batch, cutoff, cell, pbc)
            r = pair_distances(pos, edge_index, shifts)
            flat = types[edge_index[0]] * n_types + types[edge_index[1]]
            frame_min = torch.full((n_types * n_types,), float("inf"), dtype=torch.float64)
            frame_min = frame_min.scatter_reduce(0, flat, r, reduce="amin")
            closest = torch.minimum(closest, frame_min.view(n_types, n_types))
        closest = torch.minimum(closest, closest.T)
        if bool(torch.isinf(closest).all()):
            raise ValueError(f"no two beads of the frames come within the cutoff {cutoff}; raise it")
        sigma = torch.where(torch.isinf(closest), closest.min(), closest)
        return cls(sigma.tolist(), thermal_energy, cutoff, power)
