"""Radius graph, pair list layout, and input validation."""

from __future__ import annotations

import warnings

import pytest
import torch

from pyg_hipts.data import graph
from pyg_hipts.nn import HipNN


def _brute_force_pairs(pos, batch, cutoff):
    d = torch.cdist(pos, pos)
    keep = (d <= cutoff) & (batch[:, None] == batch[None, :]) & ~torch.eye(len(pos), dtype=torch.bool)
    target, source = keep.nonzero(as_tuple=True)
    return {(int(s), int(t)) for s, t in zip(source, target, strict=True)}


def test_pure_torch_radius_graph_is_exact(mixed_batch):
    _, pos, batch = mixed_batch
    for cutoff in (1.2, 3.0, 6.5):
        edges = graph.radius_graph(pos, cutoff, batch, use_torch_cluster=False)
        assert {tuple(e) for e in edges.T.tolist()} == _brute_force_pairs(pos, batch, cutoff)
        key = edges[1] * len(pos) + edges[0]
        assert bool((key[1:] > key[:-1]).all()), "pairs are sorted by target, then source"


def test_no_neighbour_cap_on_dense_structures():
    pos = torch.randn(300, 3, generator=torch.Generator().manual_seed(0)) * 2.0
    batch = torch.zeros(300, dtype=torch.long)
    edges = graph.radius_graph(pos, 100.0, batch, use_torch_cluster=False)
    assert edges.shape[1] == 300 * 299


@pytest.mark.skipif(not graph.HAS_TORCH_CLUSTER, reason="torch-cluster is not installed")
def test_torch_cluster_and_pure_torch_agree(mixed_batch):
    _, pos, batch = mixed_batch
    a = graph.radius_graph(pos, 5.0, batch, use_torch_cluster=True)
    b = graph.radius_graph(pos, 5.0, batch, use_torch_cluster=False)
    assert torch.equal(a, b)


def test_pair_list_layout(mixed_batch):
    _, pos, batch = mixed_batch
    edges = graph.radius_graph(pos, 4.0, batch, use_torch_cluster=False)
    pairs = graph.build_pair_list(pos, edges)
    assert torch.equal(pairs.source[pairs.reverse], pairs.target)
    assert torch.equal(pairs.target[pairs.reverse], pairs.source)
    torch.testing.assert_close(pairs.vec[pairs.reverse], -pairs.vec)
    assert int(pairs.slot.max()) + 1 == pairs.max_neighbours
    assert len(set(zip(pairs.target.tolist(), pairs.slot.tolist(), strict=True))) == pairs.n_pairs
    assert 2 * len(pairs.canonical) == pairs.n_pairs
    assert torch.equal(pairs.from_canonical, pairs.from_canonical[pairs.reverse])
    torch.testing.assert_close(pairs.dist[pairs.canonical][pairs.from_canonical], pairs.dist)


def test_reverse_of_periodic_images():
    # two atoms in a chain along x, period 3: each sees the other at shifts 0 and -1 / +1
    edges = torch.tensor([[1, 1, 0, 0], [0, 0, 1, 1]])
    images = torch.tensor([[0, 0, 0], [-1, 0, 0], [0, 0, 0], [1, 0, 0]])
    cell = torch.diag(torch.tensor([3.0, 10.0, 10.0]))
    pos = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    pairs = graph.build_pair_list(pos, edges, images.double().float() @ cell, images)
    assert pairs.reverse.tolist() == [2, 3, 0, 1]
    torch.testing.assert_close(pairs.dist, torch.tensor([1.0, 2.0, 1.0, 2.0]))


def test_asymmetric_pair_list_is_an_error():
    with pytest.raises(ValueError, match="not symmetric"):
        graph.build_pair_list(torch.zeros(2, 3), torch.tensor([[1], [0]]))


@pytest.fixture
def model():
    return HipNN([1, 6, 8], n_features=8, n_sensitivities=4, n_interaction_layers=1, n_atom_layers=1)


def test_bad_inputs_are_named(model):
    z, pos = torch.tensor([1, 6, 8]), torch.tensor([[0.0, 0, 0], [1.2, 0, 0], [0, 1.3, 0]])
    with pytest.raises(ValueError, match="NaN or infinite"):
        model(z, pos.clone().index_fill_(0, torch.tensor([1]), float("nan")))
    with pytest.raises(ValueError, match=r"species \[7\] are not known"):
        model(torch.tensor([1, 7, 8]), pos)
    with pytest.raises(ValueError, match="pos must have shape"):
        model(z, pos[:, :2])
    with pytest.raises(ValueError, match="z must have shape"):
        model(z[:2], pos)
    with pytest.raises(ValueError, match="batch must have shape"):
        model(z, pos, torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="empty batch"):
        model(z[:0], pos[:0])
    with pytest.raises(ValueError, match="batch must be sorted"):
        model(z, pos, torch.tensor([1, 0, 1]))


def test_close_atoms_warn_and_isolated_atoms_are_valid(model):
    z = torch.tensor([1, 6, 8])
    with pytest.warns(UserWarning, match="closer than the sensitivity range"):
        model(z, torch.tensor([[0.0, 0, 0], [0.3, 0, 0], [0, 1.3, 0]]))
    far = torch.tensor([[0.0, 0, 0], [1.2, 0, 0], [50.0, 0, 0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = model.predict(z, far)
    assert torch.isfinite(out.energy).all() and torch.isfinite(out.forces).all()
    assert out.forces[2].abs().max() == 0  # the isolated atom feels nothing
    lonely = model.predict(torch.tensor([8]), torch.zeros(1, 3))
    torch.testing.assert_close(lonely.forces, torch.zeros(1, 3))
