"""The graphs PyG's atomistic models consume, built from the project's pair list.

PyG's models build their own neighbour graphs (``radius_graph``, which needs pyg-lib, with at
most ``max_num_neighbors`` neighbours per atom) and DimeNet's triplets (with torch-sparse). The
functions here derive the same graphs from a :class:`~pyg_hipts.data.graph.PairList`, in pure
torch: no neighbour is ever dropped, and periodic images come with the pair list.

Convention (PyG's): pair ``e`` goes from its source ``j = edge_index[0, e]`` to its target
``i = edge_index[1, e]`` and ``vec[e] = r_j − r_i`` (plus the periodic shift).
"""

from __future__ import annotations

import torch
from torch import Tensor

from pyg_hipts.data.graph import PairList


def triplets(pairs: PairList) -> tuple[Tensor, Tensor]:
    """DimeNet's paths ``k -> j -> i``: every pair ``kj`` arriving at the source ``j`` of a
    pair ``ji``, except the reverse of ``ji`` itself.

    Returns ``(idx_kj, idx_ji)``, pair indices ``[T]``. Without periodic images, excluding the
    reverse pair is PyG's ``k ≠ i``; with them, ``k`` may be another image of ``i``, which is a
    distinct neighbour and is kept. Relies on the pair list being sorted by target.
    """
    source, target = pairs.edge_index
    counts = torch.bincount(target, minlength=pairs.n_atoms)
    starts = torch.cumsum(counts, 0) - counts
    per_pair = counts[source]  # pairs arriving at j, for every pair j -> i
    idx_ji = torch.arange(pairs.n_pairs, device=source.device).repeat_interleave(per_pair)
    first = (torch.cumsum(per_pair, 0) - per_pair).repeat_interleave(per_pair)
    offsets = torch.arange(idx_ji.shape[0], device=source.device) - first
    idx_kj = starts[source].repeat_interleave(per_pair) + offsets
    keep = idx_kj != pairs.reverse[idx_ji]
    return idx_kj[keep], idx_ji[keep]


def with_self_loops(pairs: PairList) -> tuple[Tensor, Tensor, Tensor]:
    """ViSNet's edges: the pairs and one self-loop ``i -> i`` per atom after them.

    Returns ``edge_index [2, P + N]``, ``distance [P + N]`` (``0`` on the loops) and the unit
    vectors ``direction [P + N, 3]`` (``vec / dist``; zero on the loops), which is what ViSNet's
    ``Distance`` module and the normalisation in its representation give.
    """
    atoms = torch.arange(pairs.n_atoms, device=pairs.vec.device)
    edge_index = torch.cat([pairs.edge_index, atoms.expand(2, -1)], dim=1)
    distance = torch.cat([pairs.dist, pairs.dist.new_zeros(pairs.n_atoms)])
    direction = torch.cat([pairs.vec / pairs.dist.unsqueeze(-1), pairs.vec.new_zeros(pairs.n_atoms, 3)])
    return edge_index, distance, direction
