"""The validated inputs of one evaluation of a potential, with neighbour lists built on demand.

A batch of ``B`` structures with ``N`` atoms in total is ``z [N]`` (long), ``pos [N, 3]``,
``batch [N]`` (sorted structure index of every atom, ``0 … B−1`` without gaps) and, for periodic
structures, ``cell [B, 3, 3]`` (rows are lattice vectors) and ``pbc [B, 3]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

from pyg_hipts.data.graph import PairList, build_pair_list
from pyg_hipts.data.periodic import describe_close_pairs, neighbour_pairs


@dataclass
class Structures:
    """Inputs of a potential's :meth:`~pyg_hipts.potentials.Potential.atom_energies`.

    ``pos`` and ``cell`` are the (possibly strained) tensors the energy is differentiated
    through. :meth:`pairs` builds the neighbour list for a cutoff once and shares it between all
    potentials of a sum, and refuses atoms closer than ``min_distance`` (``ValueError`` naming the
    structure and the atoms). :meth:`record` keeps extra per-structure outputs of a potential (e.g.
    HIP-NN's hierarchicality); they reach :attr:`PotentialOutput.extras`.
    """

    z: Tensor
    pos: Tensor
    batch: Tensor
    n_structures: int
    cell: Tensor | None = None
    pbc: Tensor | None = None
    min_distance: float = 0.0
    extras: dict[str, Tensor] = field(default_factory=dict)
    _pairs: dict[float, PairList] = field(default_factory=dict, repr=False)

    @property
    def n_atoms(self) -> int:
        return self.pos.shape[0]

    @property
    def periodic(self) -> bool:
        """Whether any structure is periodic in any direction."""
        return self.cell is not None and self.pbc is not None and bool(self.pbc.any())

    def pairs(self, cutoff: float) -> PairList:
        """All pairs within ``cutoff`` (periodic images included), with geometry carrying
        gradients to :attr:`pos` and :attr:`cell`; see :class:`~pyg_hipts.data.graph.PairList`."""
        key = float(cutoff)
        if key not in self._pairs:
            edge_index, shifts, images = neighbour_pairs(self.pos, self.batch, key, self.cell, self.pbc)
            pairs = build_pair_list(self.pos, edge_index, shifts, images)
            self._check_distances(pairs)
            self._pairs[key] = pairs
        return self._pairs[key]

    def _check_distances(self, pairs: PairList) -> None:
        close = (pairs.dist.detach() < self.min_distance) & (pairs.source < pairs.target)
        if bool(close.any()):
            listing = describe_close_pairs(
                pairs.edge_index[:, close], pairs.dist.detach()[close], self.batch, self.min_distance
            )
            raise ValueError(f"atoms too close: {listing}")

    def record(self, name: str, value: Tensor) -> None:
        """Add ``value`` (``[B, …]``) to the extra output ``name`` (summed over the potentials of a
        sum that report it)."""
        self.extras[name] = value if name not in self.extras else self.extras[name] + value
