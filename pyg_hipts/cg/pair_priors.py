"""A repulsion between every pair of close beads, for liquids and other systems without a fixed
topology (periodic or not), as a :class:`~pyg_hipts.potentials.Potential`.

For beads of types ``a, b`` at distance ``r`` below the cutoff ``r_c``::

    u_ab(r) = ε [(σ_ab/r)^p − (σ_ab/r_c)^p + p (σ_ab/r_c)^p (r/r_c − 1)]

the shifted-force form of ``ε (σ/r)^p``: both ``u`` and ``du/dr`` vanish at ``r_c``, so the
prior adds no jump to energies or forces when a pair crosses the cutoff. The energy of a
structure is ``U = Σ_{i<j} u(r_ij)`` over its pairs, periodic images included; each bead takes
half of each of its pairs, ``e_i = ½ Σ_j u(r_ij)``.

Boltzmann-style fit from mapped frames: ``σ_ab`` is the smallest distance between beads of types
``a`` and ``b`` that the frames sample, ``ε = kT``. A pair of types that never comes within
``r_c`` gets the smallest ``σ`` of all. The prior is then weak where the reference samples
(``u(1.15 σ) ≈ 0.05 kT`` for ``p = 12``, ``r_c = 1.25 σ``) and steep closer than it ever came,
where a network trained on the reference has seen no data.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor
from torch_geometric.data import Batch

from pyg_hipts.cg.priors import fitting_temperature
from pyg_hipts.data.periodic import neighbour_pairs, pair_distances
from pyg_hipts.potentials import Potential, Structures
from pyg_hipts.units import Units, boltzmann_constant


def closest_approach(
    types: Tensor,
    pos: Tensor,
    batch: Tensor,
    n_types: int,
    cutoff: float,
    cell: Tensor | None = None,
    pbc: Tensor | None = None,
) -> Tensor:
    """``[T, T]`` smallest distance between beads of each pair of types over the structures of a
    flat batch (``types [N]`` in ``0 … T−1``, ``pos [N, 3]``, ``batch [N]``, with ``cell
    [B, 3, 3]`` and ``pbc [B, 3]`` for periodic ones), among pairs within ``cutoff``; ``inf`` for
    type pairs never that close."""
    pos = pos.detach().double()
    cell = None if cell is None else cell.detach().double()
    edge_index, shifts, _ = neighbour_pairs(pos, batch, cutoff, cell, pbc)
    r = pair_distances(pos, edge_index, shifts)
    flat = types[edge_index[0]] * n_types + types[edge_index[1]]
    closest = torch.full((n_types * n_types,), float("inf"), dtype=torch.float64, device=pos.device)
    closest = closest.scatter_reduce(0, flat, r, reduce="amin").view(n_types, n_types)
    return torch.minimum(closest, closest.T)


class PairRepulsion(Potential):
    """The shifted-force repulsion of the module docstring over all bead pairs within ``cutoff``.

    ``σ [S, S]`` (per pair of species, in the order of ``species``) and ``ε`` are float64
    buffers: placeholders (``σ = r_c / 2``, ``ε = 0``) until :meth:`pre_fit` or
    :meth:`set_parameters`.

    Args:
        species: bead types. cutoff: ``r_c`` (length unit). power: ``p``.
        temperature: of the reference simulation, in kelvin (``ε = kT`` in the data's energy unit);
            by default the one the training data record
            (:func:`~pyg_hipts.cg.priors.fitting_temperature`).
        units: of positions and energies (set from the training data).
    """

    def __init__(
        self,
        species: Sequence[int],
        cutoff: float,
        power: int = 12,
        temperature: float | None = None,
        units: Units | None = None,
    ) -> None:
        if cutoff <= 0:
            raise ValueError(f"the pair repulsion needs a cutoff > 0, got {cutoff}")
        if temperature is not None and temperature <= 0:
            raise ValueError(f"temperature must be > 0 K, got {temperature}")
        super().__init__(species, cutoff, units)
        size = len(self.species)
        self.register_buffer("sigma", torch.full((size, size), 0.5 * self.cutoff, dtype=torch.float64))
        self.register_buffer("epsilon", torch.zeros((), dtype=torch.float64))
        self.power = int(power)
        self.temperature = None if temperature is None else float(temperature)

    def set_parameters(self, sigma: Sequence[Sequence[float]] | Tensor, epsilon: float) -> None:
        """Set ``σ`` (symmetric ``[S, S]``, every entry in ``(0, r_c)``) and ``ε``."""
        sigma = torch.as_tensor(sigma, dtype=torch.float64)
        size = len(self.species)
        if sigma.shape != (size, size) or not torch.equal(sigma, sigma.T):
            raise ValueError(f"sigma must be a symmetric [{size}, {size}] matrix, got {sigma.tolist()}")
        if bool((sigma <= 0).any()) or bool((sigma >= self.cutoff).any()):
            raise ValueError(f"every sigma must lie in (0, cutoff = {self.cutoff}); got {sigma.tolist()}")
        self.sigma.copy_(sigma)
        self.epsilon.fill_(float(epsilon))

    def pair_energy(self, r: Tensor, sigma: Tensor) -> Tensor:
        """``u(r)`` ``[P]`` for distances ``r [P]`` below the cutoff and their ``σ [P]``."""
        p, r_c = self.power, self.cutoff
        at_cutoff = (sigma / r_c) ** p
        return self.epsilon.to(r.dtype) * ((sigma / r) ** p - at_cutoff + p * at_cutoff * (r / r_c - 1.0))

    def atom_energies(self, structures: Structures) -> Tensor:
        pairs = structures.pairs(self.cutoff)
        types = self.species_index.lookup[structures.z]  # unknown species were refused before
        sigma = self.sigma.to(pairs.dist.dtype)[types[pairs.source], types[pairs.target]]
        per_pair = 0.5 * self.pair_energy(pairs.dist, sigma)  # every pair is listed in both directions
        energies = torch.zeros(structures.n_atoms, dtype=per_pair.dtype, device=per_pair.device)
        return energies.index_add(0, pairs.target, per_pair)

    def pre_fit(self, dataset: Any) -> None:
        """``σ_ab`` = the closest approach of types ``a, b`` in the frames of ``dataset`` (the
        smallest ``σ`` for type pairs never within the cutoff), ``ε = k_B · temperature``."""
        self.temperature = fitting_temperature(self.temperature, dataset, type(self).__name__)
        thermal_energy = boltzmann_constant(dataset.units.energy) * self.temperature
        frames = Batch.from_data_list(list(dataset))
        cell, pbc = getattr(frames, "cell", None), getattr(frames, "pbc", None)
        types = self.species_index(frames.z)
        closest = closest_approach(types, frames.pos, frames.batch, len(self.species), self.cutoff, cell, pbc)
        if bool(torch.isinf(closest).all()):
            raise ValueError(f"no two beads of the frames come within the cutoff {self.cutoff}; raise it")
        self.set_parameters(torch.where(torch.isinf(closest), closest.min(), closest), thermal_energy)
        rank_zero_info(
            f"Pair repulsion fitted on {frames.num_graphs} frames: closest approach "
            f"{float(closest.min()):.4g} {dataset.units.length}, "
            f"ε = kT = {thermal_energy:.4g} {dataset.units.energy}"
        )
