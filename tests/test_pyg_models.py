"""PyG's SchNet, DimeNet, DimeNet++ and ViSNet as potentials: per-atom energies that sum to PyG's
own forward, batches, periodic cells, stress, saving, rejected options, and one training step
each through the CLI."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import torch
import yaml
from torch import Tensor, nn
from torch_geometric.nn.models import DimeNetPlusPlus
from torch_geometric.utils import scatter

from pyg_hipts.data import embedded_dataset_path, read_npz
from pyg_hipts.potentials import ReferenceEnergies, SumPotential, load_potential, save_potential
from pyg_hipts.potentials.pyg import PygPotential
from tests.conftest import (
    assert_invariant_and_conservative,
    assert_stress_is_the_strain_derivative,
    fit_one_epoch_on_aspirin,
    small_crystal,
)

ROOT = Path(__file__).resolve().parents[1]
ETHANOL_SPECIES = [1, 6, 8]
CUTOFF = 4.0
TINY_NETWORKS = {
    "schnet": {
        "class_path": "torch_geometric.nn.models.SchNet",
        "init_args": {"hidden_channels": 16, "num_filters": 16, "num_interactions": 2, "cutoff": CUTOFF},
    },
    "dimenet": {
        "class_path": "torch_geometric.nn.models.DimeNet",
        "init_args": {
            "hidden_channels": 16,
            "out_channels": 1,
            "num_blocks": 2,
            "num_bilinear": 4,
            "num_spherical": 3,
            "num_radial": 4,
            "cutoff": CUTOFF,
        },
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
            "cutoff": CUTOFF,
        },
    },
    "visnet": {
        "class_path": "torch_geometric.nn.models.ViSNet",
        "init_args": {"hidden_channels": 16, "num_layers": 2, "num_heads": 2, "num_rbf": 8, "cutoff": CUTOFF},
    },
}


def tiny_potential(name: str, species: list[int] = ETHANOL_SPECIES, **options) -> PygPotential:
    """A float64 tiny model; all-zero weight matrices (DimeNet's output layers) made random."""
    spec = copy.deepcopy(TINY_NETWORKS[name])
    spec["init_args"].update(options)
    torch.manual_seed(0)
    potential = PygPotential(species, spec).double()
    with torch.no_grad():
        for parameter in potential.parameters():
            if parameter.dim() > 1 and not parameter.any():
                parameter.copy_(0.1 * torch.randn_like(parameter))
    return potential


def ethanol(frames: list[int]) -> tuple[Tensor, Tensor, Tensor]:
    """``z``, ``pos`` (float64, Å) and ``batch`` of rMD17 ethanol frames."""
    dataset = read_npz(embedded_dataset_path("ethanol"), dtype=torch.float64)
    z = torch.cat([dataset[f].z for f in frames])
    pos = torch.cat([dataset[f].pos for f in frames])
    return z, pos, torch.arange(len(frames)).repeat_interleave(dataset[0].num_nodes)


class AllPairs(nn.Module):
    """Every pair of atoms of a structure within ``cutoff`` (no cap). ``loops=False``: SchNet's
    ``interaction_graph`` contract ``(edge_index, distance)``; ``loops=True``: ViSNet's
    ``Distance`` contract ``(edge_index, distance, vector)`` with a self-loop per atom."""

    def __init__(self, cutoff: float, loops: bool = False) -> None:
        super().__init__()
        self.cutoff, self.loops = cutoff, loops

    def forward(self, pos: Tensor, batch: Tensor) -> tuple[Tensor, ...]:
        close = (torch.cdist(pos, pos) <= self.cutoff) & (batch[:, None] == batch[None, :])
        close.fill_diagonal_(self.loops)
        target, source = close.nonzero().T
        vector = pos[source] - pos[target]
        distance = vector.new_zeros(len(source))
        distinct = source != target
        distance[distinct] = vector[distinct].norm(dim=-1)
        edge_index = torch.stack([source, target])
        return (edge_index, distance, vector) if self.loops else (edge_index, distance)


def dimenet_reference(network: nn.Module, z: Tensor, pos: Tensor, batch: Tensor) -> Tensor:
    """PyG's ``DimeNet.forward`` with its radius graph and triplets from explicit loops (its own
    need pyg-lib and torch-sparse). ``[B, 1]``."""
    within = torch.cdist(pos, pos) <= network.cutoff
    n = len(z)
    edges = [(j, i) for i in range(n) for j in range(n) if i != j and batch[i] == batch[j] and within[i, j]]
    edge_of = {edge: e for e, edge in enumerate(edges)}
    paths = [
        (i, j, k, edge_of[(k, to)], edge_of[(j, i)])
        for j, i in edges
        for k, to in edges
        if to == j and k != i
    ]
    j, i = torch.tensor(edges).T
    idx_i, idx_j, idx_k, idx_kj, idx_ji = torch.tensor(paths).T
    # PyG's forward from here on
    dist = (pos[i] - pos[j]).pow(2).sum(dim=-1).sqrt()
    if isinstance(network, DimeNetPlusPlus):
        pos_jk, pos_ij = pos[idx_j] - pos[idx_k], pos[idx_i] - pos[idx_j]
        a = (pos_ij * pos_jk).sum(dim=-1)
        b = torch.cross(pos_ij, pos_jk, dim=1).norm(dim=-1)
    else:
        pos_ji, pos_ki = pos[idx_j] - pos[idx_i], pos[idx_k] - pos[idx_i]
        a = (pos_ji * pos_ki).sum(dim=-1)
        b = torch.cross(pos_ji, pos_ki, dim=1).norm(dim=-1)
    angle = torch.atan2(b, a)
    rbf = network.rbf(dist)
    sbf = network.sbf(dist, angle, idx_kj)
    x = network.emb(z, rbf, i, j)
    out = network.output_blocks[0](x, rbf, i, num_nodes=n)
    for interaction_block, output_block in zip(
        network.interaction_blocks, network.output_blocks[1:], strict=True
    ):
        x = interaction_block(x, rbf, sbf, idx_kj, idx_ji)
        out = out + output_block(x, rbf, i, num_nodes=n)
    return scatter(out, batch, dim=0, reduce="sum")


def pyg_energy(potential: PygPotential, z: Tensor, pos: Tensor, batch: Tensor) -> Tensor:
    """The energies ``[B, 1]`` of the PyG model's own forward (a copy given an exact graph)."""
    network = copy.deepcopy(potential.network)
    if hasattr(network, "interaction_graph"):  # SchNet
        network.interaction_graph = AllPairs(potential.cutoff)
    elif hasattr(network, "representation_model"):  # ViSNet
        network.representation_model.distance = AllPairs(potential.cutoff, loops=True)
    else:
        return dimenet_reference(network, z, pos, batch).detach()
    out = network(z, pos, batch)
    return (out[0] if isinstance(out, tuple) else out).detach()


@pytest.mark.parametrize("name", sorted(TINY_NETWORKS))
def test_atom_energies_sum_to_the_pyg_forward(name: str) -> None:
    z, pos, batch = ethanol([0, 500])
    potential = tiny_potential(name)
    out = potential.predict(z, pos, batch, forces=False)
    expected = pyg_energy(potential, z, pos, batch)
    torch.testing.assert_close(out.energy, expected.double(), rtol=1e-12, atol=1e-12)
    per_structure = out.atom_energies.reshape(2, -1).sum(1, keepdim=True)
    torch.testing.assert_close(per_structure, expected, rtol=1e-12, atol=1e-12)
    assert float(expected.abs().min()) > 1e-3  # a real signal, not zeros
    assert float((expected[0] - expected[1]).abs()) > 1e-6  # it depends on the geometry


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("schnet", {"mean": 0.7, "std": 2.5, "atomref": [[0.01 * z] for z in range(100)]}),
        ("schnet", {"mean": 0.7}),  # SchNet uses mean only together with std
        ("visnet", {"mean": 0.7, "std": 2.5, "atomref": [0.01 * z for z in range(100)]}),
    ],
)
def test_output_scaling_options_match_the_pyg_forward(name: str, options: dict) -> None:
    z, pos, batch = ethanol([0, 500])
    plain = tiny_potential(name)
    potential = tiny_potential(name, **options)
    expected = pyg_energy(potential, z, pos, batch)
    torch.testing.assert_close(potential(z, pos, batch), expected.double(), rtol=1e-12, atol=1e-12)
    shift = (expected - pyg_energy(plain, z, pos, batch)).abs().max()
    assert float(shift) > 0.1 if len(options) > 1 else float(shift) == 0.0


@pytest.mark.parametrize("name", sorted(TINY_NETWORKS))
def test_a_batch_equals_its_structures_one_at_a_time(name: str, mixed_batch) -> None:
    z, pos, batch = mixed_batch
    potential = tiny_potential(name, species=[1, 6, 7, 8])
    together = potential.predict(z, pos, batch)
    for b in range(int(batch.max()) + 1):
        atoms = batch == b
        alone = potential.predict(z[atoms], pos[atoms])
        torch.testing.assert_close(together.energy[b], alone.energy[0], rtol=1e-12, atol=1e-11)
        torch.testing.assert_close(together.forces[atoms], alone.forces, rtol=1e-10, atol=1e-11)


@pytest.mark.parametrize("name", sorted(TINY_NETWORKS))
def test_contract_forces_are_minus_the_energy_gradient_and_invariant(name: str) -> None:
    z, pos, batch = ethanol([0, 500])
    assert_invariant_and_conservative(tiny_potential(name), z, pos, batch, [(0, 0), (4, 2), (13, 1)])


@pytest.mark.parametrize("name", sorted(TINY_NETWORKS))
def test_contract_periodic_cell_equals_its_supercell_and_images(name: str) -> None:
    z, pos, cell, pbc = small_crystal()
    potential = tiny_potential(name)
    assert potential.supports("periodic") and potential.supports("stress")
    out = potential.predict(z, pos, cell=cell, pbc=pbc)
    lattice = cell[0]
    supercell = torch.stack([2 * lattice[0], lattice[1], lattice[2]]).unsqueeze(0)
    big = potential.predict(z.repeat(2), torch.cat([pos, pos + lattice[0]]), cell=supercell, pbc=pbc)
    torch.testing.assert_close(big.energy, 2 * out.energy, rtol=1e-11, atol=1e-11)
    torch.testing.assert_close(big.forces, out.forces.repeat(2, 1), rtol=1e-9, atol=1e-10)
    images = torch.tensor([[1, 0, 0], [0, -1, 2], [-1, 1, 0], [0, 0, -1]], dtype=torch.float64) @ lattice
    moved = potential.predict(z, pos + images, cell=cell, pbc=pbc)
    torch.testing.assert_close(moved.energy, out.energy, rtol=1e-11, atol=1e-11)
    torch.testing.assert_close(moved.forces, out.forces, rtol=1e-9, atol=1e-10)
    # the images matter: the same atoms as a molecule have another energy
    assert float((potential(z, pos) - out.energy).detach().abs()) > 1e-3
    torch.testing.assert_close(out.forces.sum(0), torch.zeros(3, dtype=torch.float64), rtol=0, atol=1e-10)


@pytest.mark.parametrize("name", sorted(TINY_NETWORKS))
def test_contract_stress_is_the_strain_derivative(name: str) -> None:
    assert_stress_is_the_strain_derivative(tiny_potential(name))


def test_contract_sum_with_reference_energies_saves_and_loads(tmp_path: Path) -> None:
    z, pos, batch = ethanol([0, 500])
    network = tiny_potential("visnet")
    references = ReferenceEnergies(ETHANOL_SPECIES, [-1.0, -10.0, -20.0])
    potential = SumPotential(ETHANOL_SPECIES, [references, network])
    out = potential.predict(z, pos, batch)
    alone = network.predict(z, pos, batch)
    counts = torch.stack([torch.bincount(z[batch == b], minlength=9)[ETHANOL_SPECIES] for b in range(2)])
    shift = (counts.double() * torch.tensor([-1.0, -10.0, -20.0], dtype=torch.float64)).sum(1, keepdim=True)
    torch.testing.assert_close(out.energy, alone.energy + shift, rtol=1e-12, atol=1e-10)
    torch.testing.assert_close(out.forces, alone.forces, rtol=1e-12, atol=1e-12)
    spec = potential.spec()
    assert yaml.safe_load(yaml.safe_dump(spec)) == spec  # plain data
    assert spec["init_args"]["terms"][1]["init_args"]["network"] == TINY_NETWORKS["visnet"]
    loaded = load_potential(save_potential(potential, tmp_path / "potential.pt"))
    assert isinstance(loaded.terms[1], PygPotential) and loaded.terms[1].cutoff == CUTOFF
    again = loaded.predict(z, pos, batch)
    torch.testing.assert_close(again.energy, out.energy, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(again.forces, out.forces, rtol=1e-12, atol=1e-12)


def test_atomref_survives_saving(tmp_path: Path) -> None:
    z, pos, batch = ethanol([3])
    potential = tiny_potential(
        "schnet", mean=0.0, std=1.0, atomref=torch.arange(100.0).reshape(-1, 1).tolist()
    )
    loaded = load_potential(save_potential(potential, tmp_path / "schnet.pt"))
    torch.testing.assert_close(loaded(z, pos, batch), potential(z, pos, batch), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"class_path": "torch_geometric.nn.models.GCN", "init_args": {}}, "supported: .*SchNet.*ViSNet"),
        ({"class_path": "torch_geometric.data.Data"}, "not a subclass of torch.nn"),
        ({"class_path": "os.system"}, "outside the trusted packages"),
        ({"class_path": "torch_geometric.nn.models.SchNet", "cutoff": 4.0}, "class_path: ..., init_args"),
        ({"class_path": "torch_geometric.nn.models.SchNet", "init_args": {"size": 4}}, "cannot build"),
        ({"class_path": "torch_geometric.nn.models.SchNet", "init_args": {"dipole": True}}, "dipole"),
        ({"class_path": "torch_geometric.nn.models.SchNet", "init_args": {"readout": "mean"}}, "readout"),
        ({"class_path": "torch_geometric.nn.models.ViSNet", "init_args": {"derivative": True}}, "derivative"),
        ({"class_path": "torch_geometric.nn.models.ViSNet", "init_args": {"reduce_op": "mean"}}, "reduce_op"),
        (
            {
                **TINY_NETWORKS["dimenet_pp"],
                "init_args": {**TINY_NETWORKS["dimenet_pp"]["init_args"], "out_channels": 2},
            },
            "out_channels=1",
        ),
    ],
)
def test_networks_without_per_atom_energies_are_rejected(spec: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PygPotential(ETHANOL_SPECIES, spec)


def test_contract_unknown_species_are_rejected() -> None:
    z, pos, batch = ethanol([0])
    with pytest.raises(ValueError, match="not known"):
        tiny_potential("schnet")(torch.full_like(z, 7), pos, batch)


def test_pyg_potential_in_the_ase_calculator() -> None:
    from ase import Atoms

    from pyg_hipts.calculators import HipCalculator

    z, pos, cell, pbc = small_crystal()
    potential = tiny_potential("dimenet_pp")
    expected = potential.predict(z, pos, cell=cell, pbc=pbc, stress=True)
    crystal = Atoms(numbers=z.numpy(), positions=pos.numpy(), cell=cell[0].numpy(), pbc=True)
    crystal.calc = HipCalculator(potential)  # eV and Å: no conversion
    assert crystal.get_potential_energy() == pytest.approx(float(expected.energy.detach()), rel=1e-10)
    assert crystal.get_forces() == pytest.approx(expected.forces.numpy(), rel=1e-8, abs=1e-10)
    voigt = expected.stress[0][[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
    assert crystal.get_stress() == pytest.approx(voigt.numpy(), rel=1e-8, abs=1e-12)


@pytest.mark.parametrize("name", ["schnet", "dimenet_pp", "visnet"])
def test_one_training_step_of_each_shipped_model_through_the_cli(
    name: str, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr(sys, "argv", ["pyg-hipts"])
    model = yaml.safe_load((ROOT / "configs" / "models" / f"{name}.yaml").read_text())
    network = model["model"]["init_args"]["terms"][1]["init_args"]["network"]
    assert network["class_path"] == TINY_NETWORKS[name]["class_path"]
    if name == "dimenet_pp":  # its spherical basis takes a minute to build (sympy) at the shipped size
        network["init_args"] = TINY_NETWORKS[name]["init_args"]
    version, test_force_mae = fit_one_epoch_on_aspirin(model, tmp_path)
    potential = load_potential(version / "checkpoints" / "last.ckpt")
    references, trained = potential.terms
    assert isinstance(references, ReferenceEnergies) and isinstance(trained, PygPotential)
    assert trained.init_arguments()["network"] == network
    assert potential.species == [1, 6, 8] and potential.units is not None
    assert float(references.energies.abs().min()) > 1.0  # fitted on the training energies
    assert 0 < test_force_mae < 1e3
