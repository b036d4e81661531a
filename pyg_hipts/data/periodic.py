"""Periodic neighbour lists through vesin's cell lists.

A pair ``(j -> i, S)`` has vector ``r_ij = pos_j - pos_i + S · cell`` with integer image shifts
``S`` (rows of ``cell`` are lattice vectors). Both directions of every pair are listed.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from vesin import NeighborList

from .graph import radius_graph, target_order


def periodic_radius_graph(
    pos: Tensor, cell: Tensor, pbc: Tensor, cutoff: float, batch: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Pairs within ``cutoff`` for every structure of a batch, with periodic images.

    Args:
        pos: ``[N, 3]`` positions. cell: ``[B, 3, 3]`` lattice vectors as rows.
        pbc: ``[B, 3]`` periodic directions. batch: ``[N]`` structure of each atom (sorted).

    Returns:
        ``edge_index [2, P]`` (source, target; sorted by target), Cartesian shifts ``[P, 3]``
        (carrying gradients to ``cell``) and integer image shifts ``[P, 3]``.
    """
    n_structures = cell.shape[0]
    if cell.shape != (n_structures, 3, 3) or pbc.shape != (n_structures, 3):
        raise ValueError(
            f"cell must be [B, 3, 3] and pbc [B, 3], got {list(cell.shape)} and {list(pbc.shape)}"
        )
    counts = torch.bincount(batch, minlength=n_structures).tolist()
    calculator = NeighborList(cutoff=cutoff, full_list=True)
    edges, images, owners = [], [], []
    start = 0
    positions = pos.detach().cpu().double().numpy()
    boxes = cell.detach().cpu().double().numpy()
    periodic = pbc.cpu().numpy().astype(bool)
    for b, count in enumerate(counts):
        _check_cell(boxes[b], periodic[b], b)
        i, j, shift = calculator.compute(
            positions[start : start + count], boxes[b], periodic[b], quantities="ijS"
        )
        edges.append(np.stack([j, i]) + start)
        images.append(shift)
        owners.append(np.full(len(i), b))
        start += count
    edge_index = torch.as_tensor(np.concatenate(edges, axis=1), dtype=torch.long, device=pos.device)
    image_index = torch.as_tensor(np.concatenate(images), dtype=torch.long, device=pos.device)
    owner = torch.as_tensor(np.concatenate(owners), dtype=torch.long, device=pos.device)
    order = target_order(edge_index, pos.shape[0])
    edge_index, image_index, owner = edge_index[:, order], image_index[order], owner[order]
    shifts = torch.einsum("pk,pkc->pc", image_index.to(cell.dtype), cell[owner])
    return edge_index, shifts, image_index


CELL_LIST_MIN_ATOMS = 256
"""Open structures larger than this use vesin's cell lists (memory and time linear in ``N``)
instead of the dense all-pairs search (``O(n²)`` per structure, faster for small molecules)."""


def open_cell_list_graph(pos: Tensor, cutoff: float, batch: Tensor) -> Tensor:
    """Pairs within ``cutoff`` of open (non-periodic) structures by vesin's cell lists:
    ``edge_index [2, P]`` (source, target; sorted by target), the same pairs as
    :func:`~pyg_hipts.data.graph.radius_graph`."""
    calculator = NeighborList(cutoff=cutoff, full_list=True)
    positions = pos.detach().cpu().double().numpy()
    edges, start = [], 0
    for count in torch.bincount(batch).tolist():
        i, j = calculator.compute(positions[start : start + count], np.zeros((3, 3)), False, quantities="ij")
        edges.append(np.stack([j, i]) + start)
        start += count
    edge_index = torch.as_tensor(np.concatenate(edges, axis=1), dtype=torch.long, device=pos.device)
    return edge_index[:, target_order(edge_index, pos.shape[0])]


def neighbour_pairs(
    pos: Tensor, batch: Tensor, cutoff: float, cell: Tensor | None = None, pbc: Tensor | None = None
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """Pairs within ``cutoff`` of a batch, periodic when ``cell [B, 3, 3]`` and ``pbc [B, 3]``
    make any direction periodic (:func:`periodic_radius_graph`), open otherwise
    (:func:`~pyg_hipts.data.graph.radius_graph`, or :func:`open_cell_list_graph` when a structure
    has more than :data:`CELL_LIST_MIN_ATOMS` atoms).

    Returns ``edge_index [2, P]``, Cartesian shifts ``[P, 3]`` and integer image shifts
    ``[P, 3]``; both shifts are ``None`` for open structures.
    """
    if cell is not None and pbc is not None and bool(pbc.any()):
        return periodic_radius_graph(pos, cell, pbc, cutoff, batch)
    if int(torch.bincount(batch).max()) > CELL_LIST_MIN_ATOMS:
        return open_cell_list_graph(pos, cutoff, batch), None, None
    return radius_graph(pos, cutoff, batch), None, None


def pair_distances(pos: Tensor, edge_index: Tensor, shifts: Tensor | None = None) -> Tensor:
    """``[P]`` distances ``|pos_j − pos_i (+ shift)|`` of pairs ``(j, i)`` in ``edge_index``."""
    vec = pos[edge_index[0]] - pos[edge_index[1]]
    return torch.linalg.vector_norm(vec if shifts is None else vec + shifts, dim=-1)


def _check_cell(box: np.ndarray, periodic: np.ndarray, index: int) -> None:
    """The lattice vectors of the periodic directions must be linearly independent (a slab with
    ``pbc = (T, T, F)`` may have a zero third vector; a periodic direction may not)."""
    if not np.isfinite(box).all():
        raise ValueError(f"structure {index}: the cell holds NaN or infinite values")
    vectors = box[periodic]
    if len(vectors) and abs(np.linalg.det(vectors @ vectors.T)) < 1e-12:
        raise ValueError(
            f"structure {index}: the lattice vectors of the periodic directions pbc={periodic.tolist()} "
            f"are degenerate (zero length or linearly dependent): cell {box.tolist()}"
        )


def coincident_pairs(
    pos: Tensor, batch: Tensor, min_distance: float, cell: Tensor | None = None, pbc: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Pairs of atoms closer than ``min_distance`` (periodic images included): ``edge_index
    [2, P]`` (each pair once, ``j < i``) and their distances ``[P]``.

    The cell lists search 20 times farther than ``min_distance`` (then filter): cells as small
    as ``min_distance`` would be far too many.
    """
    edge_index, shifts, _ = neighbour_pairs(pos, batch, 20.0 * min_distance, cell, pbc)
    distance = pair_distances(pos.detach(), edge_index, shifts)
    keep = (edge_index[0] < edge_index[1]) & (distance < min_distance)
    return edge_index[:, keep], distance[keep]


def describe_close_pairs(
    edge_index: Tensor,
    distance: Tensor,
    batch: Tensor,
    min_distance: float,
    label: str = "structure",
    first: int = 0,
) -> str:
    """``"<label> b: atoms i and j are d apart"`` for the first few pairs (atom indices within
    their structure, structures numbered from ``first``), with the minimum."""
    starts = torch.cumsum(torch.bincount(batch), 0) - torch.bincount(batch)
    lines = []
    for k in range(min(int(distance.numel()), 5)):
        j, i = (int(a) for a in edge_index[:, k])
        b = int(batch[i])
        lines.append(
            f"{label} {first + b}: atoms {j - int(starts[b])} and {i - int(starts[b])} "
            f"are {float(distance[k]):.3g} apart"
        )
    more = f" (and {distance.numel() - 5} more pairs)" if distance.numel() > 5 else ""
    return "; ".join(lines) + more + f"; the minimum distance allowed is {min_distance:.3g}"
