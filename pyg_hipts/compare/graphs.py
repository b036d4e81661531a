"""Neighbour graphs for PyG's atomistic models, built by :func:`pyg_hipts.data.radius_graph`.

PyG 2.8's own ``radius_graph`` needs pyg-lib, and DimeNet's triplets need torch-sparse. The
modules here give the same graphs without either. They are installed on one model instance
(:func:`use_project_graphs`); nothing in PyG is patched globally. Unlike PyG's defaults
(``max_num_neighbors=32``), no neighbour is ever dropped.

Convention (PyG's): ``edge_index[0]`` is the source ``j``, ``edge_index[1]`` the target ``i``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.nn.models import DimeNet, SchNet, ViSNet

from pyg_hipts.data.graph import radius_graph


class RadiusEdges(nn.Module):
    """``(pos [N, 3], batch [N]) -> (edge_index [2, P], distance [P])``, SchNet's
    ``interaction_graph`` contract."""

    def __init__(self, cutoff: float):
        super().__init__()
        self.cutoff = cutoff

    def forward(self, pos: Tensor, batch: Tensor) -> tuple[Tensor, Tensor]:
        edge_index = radius_graph(pos, self.cutoff, batch)
        return edge_index, (pos[edge_index[0]] - pos[edge_index[1]]).norm(dim=-1)


class RadiusEdgesWithLoops(nn.Module):
    """ViSNet's ``Distance`` contract: ``(edge_index, distance, vector)`` with one self-loop per
    atom (distance 0, zero vector) and ``vector = pos_j − pos_i``."""

    def __init__(self, cutoff: float):
        super().__init__()
        self.cutoff = cutoff

    def forward(self, pos: Tensor, batch: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        pairs = radius_graph(pos, self.cutoff, batch)
        atoms = torch.arange(pos.shape[0], device=pos.device)
        edge_index = torch.cat([pairs, atoms.expand(2, -1)], dim=1)
        vector = pos[edge_index[0]] - pos[edge_index[1]]  # ViSNet normalises it in place
        pair_distance = (pos[pairs[0]] - pos[pairs[1]]).norm(dim=-1)
        distance = torch.cat([pair_distance, pair_distance.new_zeros(pos.shape[0])])
        return edge_index, distance, vector


def triplets(edge_index: Tensor, n_atoms: int) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """All paths ``k -> j -> i`` with ``k ≠ i`` over the edges ``j -> i`` (pure torch).

    Returns ``(idx_i, idx_j, idx_k)`` atoms and ``(idx_kj, idx_ji)`` edge indices, each ``[T]``.
    """
    source, target = edge_index
    incoming = torch.argsort(target, stable=True)  # edges grouped by their target
    counts = torch.bincount(target, minlength=n_atoms)
    starts = torch.cumsum(counts, 0) - counts
    # for edge j -> i, every edge k -> j arriving at j
    per_edge = counts[source]
    idx_ji = torch.arange(source.shape[0], device=source.device).repeat_interleave(per_edge)
    offsets = torch.arange(int(per_edge.sum()), device=source.device)
    offsets = offsets - (torch.cumsum(per_edge, 0) - per_edge).repeat_interleave(per_edge)
    idx_kj = incoming[starts[source].repeat_interleave(per_edge) + offsets]
    idx_i, idx_j, idx_k = target[idx_ji], source[idx_ji], source[idx_kj]
    keep = idx_k != idx_i
    return idx_i[keep], idx_j[keep], idx_k[keep], idx_kj[keep], idx_ji[keep]


def dimenet_energy(network: DimeNet, z: Tensor, pos: Tensor, batch: Tensor, n_structures: int) -> Tensor:
    """DimeNet / DimeNet++ energies ``[B, out_channels]`` on the project's radius graph.

    The same computation as the model's ``forward`` (distances, angles of ``k -> j -> i``,
    radial and spherical bases, embedding, interaction and output blocks), with graph and
    triplets from :func:`radius_graph` and :func:`triplets`.
    """
    from torch_geometric.nn.models import DimeNetPlusPlus

    edge_index = radius_graph(pos, network.cutoff, batch)
    idx_i, idx_j, idx_k, idx_kj, idx_ji = triplets(edge_index, pos.shape[0])
    j, i = edge_index
    dist = (pos[i] - pos[j]).norm(dim=-1)
    if isinstance(network, DimeNetPlusPlus):
        first, second = pos[idx_i] - pos[idx_j], pos[idx_j] - pos[idx_k]
    else:
        first, second = pos[idx_j] - pos[idx_i], pos[idx_k] - pos[idx_i]
    angle = torch.atan2(torch.cross(first, second, dim=1).norm(dim=-1), (first * second).sum(dim=-1))
    rbf = network.rbf(dist)
    sbf = network.sbf(dist, angle, idx_kj)
    x = network.emb(z, rbf, i, j)
    per_atom = network.output_blocks[0](x, rbf, i, num_nodes=pos.shape[0])
    for interaction, output in zip(network.interaction_blocks, network.output_blocks[1:], strict=True):
        x = interaction(x, rbf, sbf, idx_kj, idx_ji)
        per_atom = per_atom + output(x, rbf, i, num_nodes=pos.shape[0])
    energy = per_atom.new_zeros(n_structures, per_atom.shape[1])
    return energy.index_add(0, batch, per_atom)


def use_project_graphs(network: nn.Module) -> None:
    """Give a PyG ``SchNet`` or ``ViSNet`` instance the project's radius graph (in place).

    DimeNet needs no change here: :func:`dimenet_energy` evaluates it. Other models are left
    as they are and must build their own graphs.
    """
    if isinstance(network, SchNet):
        network.interaction_graph = RadiusEdges(network.cutoff)
    elif isinstance(network, ViSNet):
        representation = network.representation_model
        representation.distance = RadiusEdgesWithLoops(representation.cutoff)
