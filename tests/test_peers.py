"""MACE, ANI and hippynn as potentials: equal to each package's own forward (float64), invariant,
forces = −∇E, saved and loaded, and one training step each through the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import Tensor

from pyg_hipts.data import read_npz
from pyg_hipts.potentials import Potential, ReferenceEnergies, load_potential, save_potential
from tests.conftest import (
    SHARED_DATA,
    assert_invariant_and_conservative,
    assert_stress_is_the_strain_derivative,
    fit_one_epoch_on_aspirin,
    small_crystal,
)

# through the adapters, so that mace is first imported the way the package imports it
AniPotential = pytest.importorskip("pyg_hipts.peers.ani").AniPotential
HippynnPotential = pytest.importorskip("pyg_hipts.peers.hippynn").HippynnPotential
MacePotential = pytest.importorskip("pyg_hipts.peers.mace").MacePotential

ROOT = Path(__file__).resolve().parents[1]
SPECIES = [1, 6, 7, 8]
TINY_MACE = dict(hidden_irreps="8x0e + 8x1o", max_ell=2, correlation=2, radial_MLP=[8], MLP_irreps="4x0e")
TINY_HIPPYNN = dict(n_features=8, n_sensitivities=6, n_interaction_layers=2, n_atom_layers=2)


def tiny(name: str, species: list[int] = SPECIES) -> Potential:
    """A small float64 potential of each peer with non-trivial weights (seeded)."""
    torch.manual_seed(0)
    if name == "mace":
        return MacePotential(species, avg_num_neighbors=6.0, scale=1.7, **TINY_MACE).double()
    if name == "ani":
        return AniPotential(species).double()
    return HippynnPotential(species, network=name, **TINY_HIPPYNN).double()


def mace_reference(potential: MacePotential, z: Tensor, pos: Tensor, cell=None) -> tuple[Tensor, Tensor]:
    """Energy and forces of MACE's own data pipeline and neighbour list (matscipy)."""
    import ase
    from mace import data, tools
    from mace.tools.torch_geometric.dataloader import DataLoader

    periodic = cell is not None
    atoms = ase.Atoms(numbers=z.numpy(), positions=pos.numpy(), cell=cell, pbc=periodic)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # MACE's data pipeline casts to the default dtype
    try:
        config = data.config_from_atoms(atoms)
        table = tools.AtomicNumberTable(potential.species)
        graph = data.AtomicData.from_config(config, z_table=table, cutoff=potential.cutoff)
    finally:
        torch.set_default_dtype(default)
    batch = next(iter(DataLoader([graph], batch_size=1)))
    output = potential.network(batch.to_dict(), compute_force=True)
    return output["energy"].detach(), output["forces"]


@pytest.mark.parametrize("periodic", [False, True])
def test_mace_equals_maces_own_forward(periodic: bool, mixed_batch) -> None:
    if periodic:
        z, pos, cell, pbc = small_crystal()
        potential = tiny("mace", [1, 6, 8])
        out = potential.predict(z, pos, cell=cell, pbc=pbc)
    else:
        z, pos, batch = mixed_batch
        z, pos, cell = z[batch == 2], pos[batch == 2], None  # uracil: H, C, N, O
        potential = tiny("mace")
        out = potential.predict(z, pos)
    energy, forces = mace_reference(potential, z, pos, None if cell is None else cell[0])
    torch.testing.assert_close(out.energy.flatten(), energy.flatten(), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(out.forces, forces, rtol=1e-9, atol=1e-10)
    assert float(forces.abs().max()) > 1e-3


def torchani_reference(
    potential: AniPotential, z: Tensor, pos: Tensor, cell=None, pbc=None
) -> tuple[Tensor, Tensor]:
    """Energies ``[M]`` and forces ``[M, A, 3]`` of torchani's own AEVs and neighbour list for
    molecules padded to ``z [M, A]`` (``0`` for padding), ``pos [M, A, 3]``."""
    elements = torch.where(z > 0, potential.species_index(z.clamp(min=1)), -1)
    coordinates = pos.clone().requires_grad_(True)
    energy = potential.networks(elements, potential.aev_computer(elements, coordinates, cell, pbc))
    (gradient,) = torch.autograd.grad(energy.sum(), coordinates)
    return energy.detach(), -gradient


def test_ani_equals_torchanis_own_forward_for_molecules(mixed_batch) -> None:
    z, pos, batch = mixed_batch
    potential = tiny("ani")
    out = potential.predict(z, pos, batch)
    counts = torch.bincount(batch)
    padded_z = torch.zeros(len(counts), int(counts.max()), dtype=torch.long)
    padded_pos = torch.zeros(len(counts), int(counts.max()), 3, dtype=torch.float64)
    for m, n in enumerate(counts.tolist()):
        padded_z[m, :n], padded_pos[m, :n] = z[batch == m], pos[batch == m]
    energy, forces = torchani_reference(potential, padded_z, padded_pos)
    torch.testing.assert_close(out.energy.flatten(), energy, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(out.forces, forces[padded_z > 0], rtol=1e-9, atol=1e-10)


def test_ani_equals_torchanis_own_forward_in_a_cell() -> None:
    z, pos, cell, pbc = small_crystal()
    potential = tiny("ani", [1, 6, 8])
    out = potential.predict(z, pos, cell=cell, pbc=pbc)
    energy, forces = torchani_reference(potential, z.unsqueeze(0), pos.unsqueeze(0), cell[0], pbc[0])
    torch.testing.assert_close(out.energy.flatten(), energy, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(out.forces, forces[0], rtol=1e-9, atol=1e-10)
    assert float(forces.abs().max()) > 1e-3


@pytest.mark.parametrize("network", ["Hipnn", "HipnnVec", "HipnnQuad", "HipHopNNModule"])
def test_hippynn_equals_its_bare_modules(network: str, mixed_batch) -> None:
    z, pos, batch = mixed_batch
    potential = tiny(network)
    out = potential.predict(z, pos, batch)
    r = pos.clone().requires_grad_(True)
    near = torch.cdist(pos, pos) <= potential.cutoff
    first, second = torch.nonzero(
        (batch[:, None] == batch[None, :]) & near & ~torch.eye(len(z), dtype=torch.bool), as_tuple=True
    )
    coord = r[second] - r[first]
    one_hot = (z[:, None] == torch.tensor(SPECIES)).double()
    arguments = (one_hot, first, second, coord.norm(dim=1)) + ((coord,) if network != "Hipnn" else ())
    energy, atom_energies, *_ = potential.head(potential.network(*arguments), batch, int(batch.max()) + 1)
    (gradient,) = torch.autograd.grad(energy.sum(), r)
    torch.testing.assert_close(out.energy, energy.detach(), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(out.atom_energies, atom_energies.detach(), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(out.forces, -gradient, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("name", ["mace", "ani", "HipnnQuad"])
def test_peer_is_rotation_invariant_with_forces_minus_the_gradient(name: str, mixed_batch) -> None:
    z, pos, batch = mixed_batch
    assert_invariant_and_conservative(tiny(name), z, pos, batch, [(0, 0), (25, 2), (50, 1)])


@pytest.mark.parametrize("name", ["mace", "ani"])
def test_peer_stress_is_the_strain_derivative(name: str) -> None:
    assert_stress_is_the_strain_derivative(tiny(name, [1, 6, 8]))


def test_hippynn_stress_is_the_strain_derivative_with_its_pytorch_kernels() -> None:
    """hippynn's numba kernels give this cell's stress only to ~2e-5 relative (docs/comparisons.md)."""
    from hippynn import custom_kernels

    active = custom_kernels.CUSTOM_KERNELS_ACTIVE
    custom_kernels.set_custom_kernels("pytorch")
    try:
        assert_stress_is_the_strain_derivative(tiny("HipnnQuad", [1, 6, 8]))
    finally:
        custom_kernels.set_custom_kernels(active)


def test_mace_fits_its_statistics_and_keeps_them_when_saved(tmp_path: Path) -> None:
    path = SHARED_DATA / "rmd17" / "rmd17_ethanol_train_01.npz"
    if not path.exists():
        pytest.skip(f"{path} is not available")
    frames = read_npz(path)[:20]
    potential = MacePotential([1, 6, 8], **TINY_MACE).double()
    potential.pre_fit(frames)
    arguments = potential.init_arguments()
    pairs = [int((torch.cdist(f.pos, f.pos) <= 5.0).sum() - len(f.z)) for f in frames]
    assert arguments["avg_num_neighbors"] == pytest.approx(sum(pairs) / sum(len(f.z) for f in frames))
    rms = float(torch.cat([f.forces.flatten() for f in frames]).double().square().mean().sqrt())
    assert arguments["scale"] == pytest.approx(rms)
    assert all(
        block.avg_num_neighbors == arguments["avg_num_neighbors"] for block in potential.network.interactions
    )
    fresh = MacePotential([1, 6, 8], **TINY_MACE).double()  # what a copy with the state gets
    fresh.load_state_dict(potential.state_dict())
    assert all(
        block.avg_num_neighbors == arguments["avg_num_neighbors"] for block in fresh.network.interactions
    )
    loaded = load_potential(save_potential(potential, tmp_path / "mace.pt"))
    z, pos = frames[3].z, frames[3].pos.double()
    torch.testing.assert_close(
        loaded.predict(z, pos).forces, potential.predict(z, pos).forces, rtol=1e-12, atol=1e-12
    )


@pytest.mark.parametrize(
    "message, build",
    [
        ("interaction 'Nope' is not one of", lambda: MacePotential([1], interaction="Nope")),
        ("networks must be one of ['ani1x', 'ani2x']", lambda: AniPotential([1], networks="ani3x")),
        ("species must be >= 1", lambda: HippynnPotential([0, 1])),
    ],
)
def test_bad_peer_options_are_named(message: str, build) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        build()


@pytest.mark.parametrize(
    "name, tiny_arguments", [("mace", TINY_MACE), ("ani", {}), ("hippynn_ts2", TINY_HIPPYNN)]
)
def test_one_training_step_of_each_peer_through_the_cli(
    name: str, tiny_arguments: dict, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr(sys, "argv", ["pyg-hipts"])
    model = yaml.safe_load((ROOT / "configs" / "models" / f"{name}.yaml").read_text())
    terms = model["model"]["init_args"].get("terms")
    (terms[1] if terms else model["model"])["init_args"].update(tiny_arguments)
    version, test_force_mae = fit_one_epoch_on_aspirin(model, tmp_path, batches=2)
    potential = load_potential(version / "checkpoints" / "last.ckpt")
    if terms:
        references, trained = potential.terms
        assert isinstance(references, ReferenceEnergies) and float(references.energies.abs().min()) > 1.0
    else:  # hippynn: the reference energies are its level-0 read-out, fitted in pre_fit
        trained = potential
        assert float(trained.head.layers[0].weight.abs().min()) > 1.0
    assert type(trained).__module__ == f"pyg_hipts.peers.{name.split('_')[0]}"
    if name == "mace":  # the EMA weights in the checkpoint carry the fitted statistics
        assert trained.init_arguments()["avg_num_neighbors"] > 1.0
        assert (
            trained.network.interactions[0].avg_num_neighbors == trained.init_arguments()["avg_num_neighbors"]
        )
    assert np.isfinite(test_force_mae) and 0 < test_force_mae < 1e3


def test_importing_the_mace_adapter_leaves_weights_only_loading_on() -> None:
    script = "import os, pyg_hipts.peers.mace; print(os.environ.get('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD'))"
    environment = {k: v for k, v in os.environ.items() if k != "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=environment, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "None"  # mace prints notices before it


def test_mace_leaves_the_callers_positions_alone(mixed_batch) -> None:
    z, pos, batch = mixed_batch
    tiny("mace")(z, pos, batch)
    assert not pos.requires_grad
    with torch.inference_mode():
        frozen = pos.clone()
    tiny("mace").predict(z, frozen, batch, forces=False)


def test_ani_refuses_positions_that_are_not_in_angstrom() -> None:
    from pyg_hipts.units import Units

    z, pos, cell, pbc = small_crystal()
    potential = AniPotential([1, 6, 8], units=Units("Angstrom", "eV")).double()
    potential.predict(z, pos, cell=cell, pbc=pbc)  # another name for Å is fine
    potential.set_units(Units("nm", "kJ/mol"))
    with pytest.raises(ValueError, match="AniPotential's AEVs are in Å; this potential's length unit is nm"):
        potential.predict(z, pos, cell=cell, pbc=pbc)
