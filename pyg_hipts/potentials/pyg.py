"""PyG's atomistic models (``SchNet``, ``DimeNet``, ``DimeNetPlusPlus``, ``ViSNet``) as potentials.

:class:`PygPotential` builds the PyG model from its class path and arguments and evaluates it
per atom: the model's own forward up to, not including, the sum over the atoms of a structure,
with the model's own submodules, on the project's pair list (``structures.pairs(cutoff)``)
instead of the model's radius graph. So the energy of structure ``b`` is the model's
``E_b = Σ_{i ∈ b} e_i``, periodic cells and stress work as for every potential (the models only
see pair vectors and distances), and no neighbour is dropped (PyG's ``max_num_neighbors`` has no
effect). Per-species reference energies are a separate term of a
:class:`~pyg_hipts.potentials.SumPotential` (:class:`~pyg_hipts.potentials.ReferenceEnergies`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn
from torch_geometric.nn.aggr import SumAggregation
from torch_geometric.nn.models import DimeNet, DimeNetPlusPlus, SchNet, ViSNet

from pyg_hipts.data.graph import PairList
from pyg_hipts.potentials.base import Potential, class_path
from pyg_hipts.potentials.io import resolve_class
from pyg_hipts.potentials.pyg_graphs import triplets, with_self_loops
from pyg_hipts.potentials.structures import Structures
from pyg_hipts.units import Units


def schnet_atom_energies(network: SchNet, structures: Structures, pairs: PairList) -> Tensor:
    """SchNet's ``h_i`` before its readout ``[N, 1]``::

        h⁰ = emb(z),   hᵗ⁺¹ = hᵗ + interactionₜ(hᵗ, pairs, d, gauss(d)),
        e_i = lin2(ssp(lin1(h_i))) · std + mean + atomref(z_i)   (then · scale)

    ``std``/``mean`` only when both are set, ``atomref`` and ``scale`` when set, as in SchNet.
    """
    h = network.embedding(structures.z)
    edge_attr = network.distance_expansion(pairs.dist)
    for interaction in network.interactions:
        h = h + interaction(h, pairs.edge_index, pairs.dist, edge_attr)
    h = network.lin2(network.act(network.lin1(h)))
    if network.mean is not None and network.std is not None:
        h = h * network.std + network.mean
    if network.atomref is not None:
        h = h + network.atomref(structures.z)
    if network.scale is not None:
        h = network.scale * h
    return h


def dimenet_atom_energies(network: DimeNet, structures: Structures, pairs: PairList) -> Tensor:
    """DimeNet's / DimeNet++'s per-atom outputs ``P_i`` ``[N, 1]`` (the sum of the output blocks).

    For the path ``k -> j -> i`` (pairs ``kj``, ``ji``) the angle is ``θ = atan2(|a × b|, a · b)``
    with PyG's vectors written as pair vectors ``r_ji = r_j − r_i`` (``vec[ji]``):
    DimeNet ``a = r_j − r_i = r_ji``, ``b = r_k − r_i = r_ji + r_kj``; DimeNet++
    ``a = r_i − r_j = −r_ji``, ``b = r_j − r_k = −r_kj`` (the signs cancel in ``θ``).
    """
    idx_kj, idx_ji = triplets(pairs)
    j, i = pairs.edge_index
    vec_ji, vec_kj = pairs.vec[idx_ji], pairs.vec[idx_kj]
    second = vec_kj if isinstance(network, DimeNetPlusPlus) else vec_ji + vec_kj
    angle = torch.atan2(torch.linalg.cross(vec_ji, second).norm(dim=-1), (vec_ji * second).sum(-1))
    rbf = network.rbf(pairs.dist)
    sbf = network.sbf(pairs.dist, angle, idx_kj)
    n_atoms = structures.n_atoms
    x = network.emb(structures.z, rbf, i, j)
    out = network.output_blocks[0](x, rbf, i, num_nodes=n_atoms)
    for interaction, output in zip(network.interaction_blocks, network.output_blocks[1:], strict=True):
        x = interaction(x, rbf, sbf, idx_kj, idx_ji)
        out = out + output(x, rbf, i, num_nodes=n_atoms)
    return out


def visnet_atom_energies(network: ViSNet, structures: Structures, pairs: PairList) -> Tensor:
    """ViSNet's per-atom energies ``[N, 1]``: its representation on the pairs plus one self-loop
    per atom (:func:`~.pyg_graphs.with_self_loops`), then ``e_i = prior(pre_reduce(x, v)_i · std,
    z_i) + mean / n_b`` (the structure's ``mean`` spread over its ``n_b`` atoms).

    The neighbour embedding sees the pairs without the self-loops, as in ViSNet; a periodic image
    of an atom itself is a pair like any other.
    """
    representation = network.representation_model
    z = structures.z
    edge_index, distance, direction = with_self_loops(pairs)
    x = representation.embedding(z)
    edge_attr = representation.distance_expansion(distance)
    sphere = representation.sphere(direction)
    neighbours = representation.neighbor_embedding
    weights = neighbours.distance_proj(edge_attr[: pairs.n_pairs]) * neighbours.cutoff(pairs.dist).unsqueeze(
        -1
    )
    x_neighbours = neighbours.propagate(pairs.edge_index, x=neighbours.embedding(z), W=weights)
    x = neighbours.combine(torch.cat([x, x_neighbours], dim=1))
    vec = x.new_zeros(x.shape[0], (representation.lmax + 1) ** 2 - 1, x.shape[1])
    edge_attr = representation.edge_embedding(edge_index, edge_attr, x)
    for layer in representation.vis_mp_layers:
        dx, dvec, dedge_attr = layer(x, vec, edge_index, distance, edge_attr, sphere)
        x, vec = x + dx, vec + dvec
        if dedge_attr is not None:
            edge_attr = edge_attr + dedge_attr
    x, vec = representation.out_norm(x), representation.vec_out_norm(vec)
    energies = network.output_model.pre_reduce(x, vec) * network.std
    if network.prior_model is not None:
        energies = network.prior_model(energies, z)
    atoms_per_structure = torch.bincount(structures.batch, minlength=structures.n_structures)
    return energies + (network.mean / atoms_per_structure[structures.batch]).unsqueeze(-1)


def check_schnet(network: SchNet) -> None:
    """SchNet predicts a sum of per-atom energies unless it predicts a dipole or averages."""
    if network.dipole:
        raise ValueError("SchNet(dipole=True) predicts a dipole moment, not an energy per atom")
    if not isinstance(network.readout, SumAggregation):
        raise ValueError("SchNet's energy is a sum over atoms: readout must be 'add'")


def check_dimenet(network: DimeNet) -> None:
    """One output per atom: ``out_channels=1``."""
    width = network.output_blocks[0].lin.out_features
    if width != 1:
        raise ValueError(f"{type(network).__name__} needs out_channels=1 (one energy per atom), got {width}")


def check_visnet(network: ViSNet) -> None:
    """A sum over atoms, without ViSNet's own force head."""
    if network.derivative:
        raise ValueError("ViSNet(derivative=True) is not needed: forces come from the potential")
    if network.reduce_op != "sum":
        raise ValueError(
            f"ViSNet's energy is a sum over atoms: reduce_op must be 'sum', got {network.reduce_op!r}"
        )


class Network(NamedTuple):
    """How one PyG model class is evaluated per atom."""

    check: Callable[[Any], None]
    cutoff: Callable[[Any], float]
    atom_energies: Callable[[Any, Structures, PairList], Tensor]


NETWORKS: dict[type[nn.Module], Network] = {
    SchNet: Network(check_schnet, lambda network: network.cutoff, schnet_atom_energies),
    DimeNet: Network(check_dimenet, lambda network: network.cutoff, dimenet_atom_energies),
    DimeNetPlusPlus: Network(check_dimenet, lambda network: network.cutoff, dimenet_atom_energies),
    ViSNet: Network(check_visnet, lambda network: network.representation_model.cutoff, visnet_atom_energies),
}
"""The supported classes (exactly these: a subclass may change the forward replicated here)."""

TENSOR_ARGUMENTS = ("atomref",)
"""Init arguments the models take as tensors, given as (nested) lists in a spec."""


def build_network(spec: Mapping[str, Any]) -> nn.Module:
    """``{"class_path": "torch_geometric.nn.models.SchNet", "init_args": {...}}`` -> the model.

    The class must be an ``nn.Module`` in a trusted package and one of :data:`NETWORKS`; it is
    checked before anything is built. ``atomref`` given as a list becomes a column ``[Z, 1]``.
    """
    if not isinstance(spec, Mapping) or "class_path" not in spec or set(spec) - {"class_path", "init_args"}:
        keys = sorted(spec) if isinstance(spec, Mapping) else type(spec).__name__
        raise ValueError(
            f"a network is {{class_path: ..., init_args: {{...}}}}, got {keys}; from the command line "
            "give the whole mapping, e.g. '{class_path: torch_geometric.nn.models.SchNet, "
            "init_args: {cutoff: 5.0}}'"
        )
    cls = resolve_class(spec["class_path"], nn.Module)
    if cls not in NETWORKS:
        supported = ", ".join(class_path(known) for known in NETWORKS)
        raise ValueError(f"{spec['class_path']} is not supported as a potential; supported: {supported}")
    arguments = dict(spec.get("init_args") or {})
    for name in TENSOR_ARGUMENTS:
        if isinstance(arguments.get(name), Sequence):
            arguments[name] = torch.as_tensor(arguments[name], dtype=torch.get_default_dtype()).reshape(-1, 1)
    try:
        network = cls(**arguments)
    except TypeError as error:
        raise ValueError(f"cannot build {spec['class_path']} from {sorted(arguments)}: {error}") from error
    NETWORKS[cls].check(network)
    return network


class PygPotential(Potential):
    """A PyG atomistic model as a potential: ``e_i`` = the model's output for atom ``i`` before
    its sum over the structure (see the module docstring), forces and stress by the base class.

    Args:
        species: atomic numbers the potential accepts (the models embed ``z`` directly).
        network: ``{"class_path": ..., "init_args": {...}}`` of one of :data:`NETWORKS`, with
            one output per atom (DimeNet's ``out_channels=1``); built here. Its cutoff is the
            potential's.
        units: of positions and energies.

    Raises ``ValueError`` for another class and for options without per-atom energies
    (SchNet's ``dipole`` or ``readout='mean'``, ViSNet's ``reduce_op='mean'`` or ``derivative``).
    """

    def __init__(self, species: Sequence[int], network: dict[str, Any], units: Units | None = None) -> None:
        module = build_network(network)
        super().__init__(species, NETWORKS[type(module)].cutoff(module), units)
        self.network = module

    def atom_energies(self, structures: Structures) -> Tensor:
        pairs = structures.pairs(self.cutoff)
        return NETWORKS[type(self.network)].atom_energies(self.network, structures, pairs).reshape(-1)
