"""PyG's SchNet, DimeNet++ and ViSNet as potentials: same numbers as PyG's own forward, symmetric,
forces = −∇E, and one training run each through the CLI."""

from __future__ import annotations

import copy
import csv
import sys
from pathlib import Path

import pytest
import torch
import torch_geometric.nn.models.dimenet as pyg_dimenet
import torch_geometric.nn.models.schnet as pyg_schnet
import torch_geometric.nn.models.visnet as pyg_visnet
import yaml

from pyg_hipts.compare import PygPotential, PygPotentialModule, build_network
from pyg_hipts.compare.graphs import triplets
from pyg_hipts.train.cli import main
from tests.test_cli import CONFIG
from tests.test_train_module import single_thread  # noqa: F401

TINY_NETWORKS = {
    "schnet": {
        "class_path": "torch_geometric.nn.models.SchNet",
        "init_args": {"hidden_channels": 16, "num_filters": 16, "num_interactions": 2, "cutoff": 4.0},
    },
    "dimenet_pp": {
        "class_path": "torch_geometric.nn.models.DimeNetPlusPlus",
        "init_args": {
            "hidden_channels": 16,
            "out_channels": 1,
            "num_blocks": 2,
            "int_emb_size": 8,
            "basis_emb_size": 4,
            "out_emb_channels": 16,
            "num_spherical": 3,
            "num_radial": 4,
            "cutoff": 4.0,
        },
    },
    "visnet": {
        "class_path": "torch_geometric.nn.models.ViSNet",
        "init_args": {"hidden_channels": 16, "num_layers": 2, "num_heads": 2, "num_rbf": 8, "cutoff": 4.0},
    },
}


def brute_force_radius_graph(pos, r, batch=None, loop=False, max_num_neighbors=32, **_):
    """Every pair within ``r`` in the same structure, no cap: a stand-in for pyg-lib's search."""
    batch = torch.zeros(len(pos), dtype=torch.long) if batch is None else batch
    close = (torch.cdist(pos, pos) <= r) & (batch[:, None] == batch[None, :])
    if not loop:
        close.fill_diagonal_(False)
    target, source = close.nonzero().T
    return torch.stack([source, target])


def pyg_triplets(edge_index, num_nodes):
    """PyG's ``triplets`` return order, computed without torch-sparse."""
    idx_i, idx_j, idx_k, idx_kj, idx_ji = triplets(edge_index, num_nodes)
    return edge_index[1], edge_index[0], idx_i, idx_j, idx_k, idx_kj, idx_ji


def _randomised(network: torch.nn.Module) -> torch.nn.Module:
    """DimeNet's output layers start at zero; give every all-zero weight random values."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in network.parameters():
            if parameter.dim() > 1 and not parameter.any():
                parameter.copy_(0.1 * torch.randn(parameter.shape, generator=generator))
    return network.double()


@pytest.mark.parametrize("name", sorted(TINY_NETWORKS))
def test_energies_match_pyg_forward(name, mixed_batch, monkeypatch):
    z, pos, batch = mixed_batch
    torch.manual_seed(0)
    network = _randomised(build_network(TINY_NETWORKS[name]))
    reference_network = copy.deepcopy(network)
    potential = PygPotential(network, species=[1, 6, 7, 8]).double()
    for module in (pyg_schnet, pyg_visnet, pyg_dimenet):
        monkeypatch.setattr(module, "radius_graph", brute_force_radius_graph)
    monkeypatch.setattr(pyg_dimenet, "triplets", pyg_triplets)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # PyG's ViSNet makes its distances in the default dtype
    try:
        expected = reference_network(z, pos, batch)
    finally:
        torch.set_default_dtype(default)
    expected = (expected[0] if isinstance(expected, tuple) else expected).detach()
    out = potential.predict(z, pos, batch)
    torch.testing.assert_close(out.energy, expected.double(), rtol=1e-10, atol=1e-10)
    assert float(expected.abs().max()) > 1e-3  # a real signal, not zeros


@pytest.mark.parametrize("name", sorted(TINY_NETWORKS))
def test_invariance_and_forces(name, mixed_batch):
    z, pos, batch = mixed_batch
    torch.manual_seed(0)
    potential = PygPotential(_randomised(build_network(TINY_NETWORKS[name])), species=[1, 6, 7, 8]).double()
    out = potential.predict(z, pos, batch)
    rotation = torch.linalg.qr(
        torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    )[0]
    moved = potential.predict(
        z, pos @ rotation.T + torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64), batch
    )
    torch.testing.assert_close(moved.energy, out.energy, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(moved.forces, out.forces @ rotation.T, rtol=1e-8, atol=1e-10)
    step = 1e-5
    for atom, axis in [(0, 0), (30, 2), (50, 1)]:
        plus, minus = pos.clone(), pos.clone()
        plus[atom, axis] += step
        minus[atom, axis] -= step
        difference = potential(z, plus, batch).sum() - potential(z, minus, batch).sum()
        torch.testing.assert_close(out.forces[atom, axis], -difference / (2 * step), rtol=1e-5, atol=1e-8)


def test_reference_energies_and_errors(mixed_batch):
    z, pos, batch = mixed_batch
    potential = PygPotential(build_network(TINY_NETWORKS["schnet"]), species=[1, 6, 7, 8]).double()
    before = potential(z, pos, batch)
    potential.set_reference_energies(torch.tensor([-1.0, -10.0, -20.0, -30.0], dtype=torch.float64))
    counts = torch.stack([torch.bincount(z[batch == b], minlength=9)[[1, 6, 7, 8]] for b in range(4)])
    shift = (counts.double() * torch.tensor([-1.0, -10.0, -20.0, -30.0], dtype=torch.float64)).sum(
        1, keepdim=True
    )
    torch.testing.assert_close(potential(z, pos, batch), before + shift)
    with pytest.raises(ValueError, match="not known"):
        potential(torch.full_like(z, 9), pos, batch)
    with pytest.raises(ValueError, match="class_path"):
        build_network({"class_path": "torch_geometric.nn.models.SchNet", "hidden_channels": 8})
    with pytest.raises(ValueError, match="cannot import"):
        build_network({"class_path": "torch_geometric.nn.models.NoSuchModel"})
    with pytest.raises(ValueError, match="hierarchicality"):
        PygPotentialModule(TINY_NETWORKS["schnet"], hierarchicality_weight=1.0)


@pytest.mark.parametrize("name", sorted(TINY_NETWORKS))
def test_one_training_run_through_the_cli(name, tmp_path: Path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["pyg-hipts"])
    model = {
        "class_path": "pyg_hipts.compare.PygPotentialModule",
        "init_args": {"network": TINY_NETWORKS[name]},
    }
    (tmp_path / "model.yaml").write_text(yaml.safe_dump(model))
    main(
        [
            *("fit", "--config", str(CONFIG), "--model", "model.yaml"),
            *("--data.n_train", "20", "--data.n_val", "10", "--data.n_test", "10", "--data.batch_size", "10"),
            *("--trainer.max_epochs", "2"),
        ]
    )
    version = tmp_path / "runs" / "quickstart" / "version_0"
    module = PygPotentialModule.load_from_checkpoint(
        version / "checkpoints" / "last.ckpt", weights_only=False
    )
    assert module.hparams.network == TINY_NETWORKS[name]
    assert module.model.species == [1, 6, 8]
    with (version / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert sorted({int(r["epoch"]) for r in rows if r.get("val/force_mae")}) == [0, 1]
    test = [float(r["test/force_mae"]) for r in rows if r.get("test/force_mae")]
    assert len(test) == 1 and 0 < test[0] < 1e3


@pytest.mark.parametrize("name", ["schnet", "dimenet_pp", "visnet"])
def test_shipped_model_configs_parse_and_build(name, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["pyg-hipts"])
    path = CONFIG.parent / "models" / f"{name}.yaml"
    with pytest.raises(SystemExit) as stop:
        main(
            [
                "fit",
                "--config",
                str(CONFIG.with_name("rmd17_ts2.yaml")),
                "--model",
                str(path),
                "--print_config",
            ]
        )
    assert stop.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    network = printed["model"]["init_args"]["network"]
    assert network == yaml.safe_load(path.read_text())["init_args"]["network"]
    model = PygPotential(build_network(network), species=[1, 6, 8])
    assert sum(p.numel() for p in model.parameters()) > 10_000


def test_pyg_model_in_the_ase_calculator(mixed_batch):
    from ase import Atoms

    from pyg_hipts.calculators import HipCalculator

    z, pos, batch = mixed_batch
    torch.manual_seed(0)
    potential = PygPotential(_randomised(build_network(TINY_NETWORKS["schnet"])), species=[1, 6, 7, 8])
    molecule = Atoms(numbers=z[batch == 3].numpy(), positions=pos[batch == 3].numpy())
    molecule.calc = HipCalculator(potential)  # eV and Å: no conversion
    expected = potential.double().predict(z[batch == 3], pos[batch == 3])
    assert molecule.get_potential_energy() == pytest.approx(float(expected.energy.detach()), rel=1e-10)
    assert molecule.get_forces() == pytest.approx(expected.forces.numpy(), rel=1e-8, abs=1e-10)
    box = molecule.copy()
    box.cell, box.pbc = [20.0, 20.0, 20.0], True
    box.calc = HipCalculator(potential)
    with pytest.raises(Exception, match="periodic"):
        box.get_potential_energy()
