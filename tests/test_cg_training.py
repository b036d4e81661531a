"""Force matching end to end on a few coarse-grained alanine dipeptide frames: priors fitted,
network trained through the CLI on forces only, the potential reloaded, Langevin run completed."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from pyg_hipts.cg import TopologyPrior
from pyg_hipts.cli import run_cli
from pyg_hipts.md import run_langevin
from pyg_hipts.nn import HipNN
from pyg_hipts.potentials import SumPotential, load_potential
from pyg_hipts.units import Units

from .conftest import SHARED_DATA

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "cg_ala2.yaml"
ALA2 = SHARED_DATA / "cgnet_ala2"
BEAD_TYPES = [1, 2, 3, 1, 2]  # C N CA C N
BEAD_MASSES = torch.tensor([12.011, 14.007, 12.011, 12.011, 14.007], dtype=torch.float64)


def small_network_config(config: Path, out: Path) -> Path:
    """``config`` with a small HIP-NN-TS term (8 features, 6 sensitivities, one interaction
    block), written to ``out``."""
    settings = yaml.safe_load(config.read_text())
    networks = [
        term
        for term in settings["model"]["model"]["init_args"]["terms"]
        if term["class_path"] == "pyg_hipts.nn.HipNN"
    ]
    assert len(networks) == 1, f"{config} has no single HipNN term"
    networks[0]["init_args"].update(n_features=8, n_sensitivities=6, n_interaction_layers=1)
    out.write_text(yaml.safe_dump(settings))
    return out


def write_ala2(path: Path, n_frames: int) -> Path:
    """The first ``n_frames`` cgnet frames as a force-only npz (types, coordinates, forces)."""
    if not ALA2.exists():
        pytest.skip(f"{ALA2} is not available")
    coords = np.load(ALA2 / "ala2_coordinates.npy")[:n_frames]
    forces = np.load(ALA2 / "ala2_forces.npy")[:n_frames]
    np.savez(
        path, nuclear_charges=np.array(BEAD_TYPES), coords=coords, forces=forces, temperature=np.array(300.0)
    )
    return path


def test_force_matching_then_langevin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["pyg-hipts"])
    data = write_ala2(tmp_path / "ala2.npz", 300)
    cli = run_cli(
        [
            *("fit", "--config", str(small_network_config(CONFIG, tmp_path / "cg_ala2.yaml"))),
            *("--data.train_file", str(data), "--trainer.max_epochs", "2"),
            *(
                "--data.n_train",
                "200",
                "--data.n_val",
                "50",
                "--data.n_test",
                "50",
                "--data.batch_size",
                "50",
            ),
        ]
    )
    metrics = {k: float(v) for k, v in cli.trainer.callback_metrics.items()}
    assert "test/force_mae" in metrics and "test/energy_mae" not in metrics
    assert 0 < metrics["test/force_mae"] < 100

    model = load_potential(next((tmp_path / "runs" / "cg_ala2").rglob("best.ckpt"))).double()
    assert isinstance(model, SumPotential) and [type(t) for t in model.terms] == [TopologyPrior, HipNN]
    assert model.units == Units("Å", "kcal/mol")
    prior = model.term(TopologyPrior)
    bonds = prior.terms[0]
    assert bool((bonds.k > 10).all()) and 1.2 < float(bonds.center.min()) < float(bonds.center.max()) < 1.7
    repulsion = prior.terms[-1]
    assert float(repulsion.epsilon) == pytest.approx(0.0019872 * 300, rel=1e-3)

    z = torch.tensor(BEAD_TYPES)
    start = torch.as_tensor(np.load(ALA2 / "ala2_coordinates.npy")[:3], dtype=torch.float64)

    # total = network + priors, and the priors alone give the prior's energy and minus its gradient
    flat, batch = start.reshape(-1, 3).requires_grad_(True), torch.arange(3).repeat_interleave(5)
    total, alone = (
        model.predict(z.repeat(3), flat, batch),
        model.without(HipNN).predict(z.repeat(3), flat, batch),
    )
    network = model.term(HipNN).predict(z.repeat(3), flat, batch, forces=False).energy
    prior_energy = prior(z.repeat(3), flat, batch)
    torch.testing.assert_close(total.energy, network + prior_energy, rtol=1e-12, atol=1e-10)
    assert torch.equal(alone.energy, prior_energy)
    assert torch.allclose(alone.forces, -torch.autograd.grad(prior_energy.sum(), flat)[0])
    trajectory = run_langevin(
        model,
        z,
        start,
        BEAD_MASSES,
        temperature=300.0,
        timestep_fs=2.0,
        friction_per_ps=1.0,
        n_steps=50,
        save_every=10,
    )
    assert trajectory.positions.shape == (6, 3, 5, 3) and torch.isfinite(trajectory.positions).all()
    bond_lengths = (trajectory.positions[-1, :, 1:] - trajectory.positions[-1, :, :-1]).norm(dim=-1)
    assert float(bond_lengths.min()) > 1.0 and float(bond_lengths.max()) < 2.0  # the chain holds together


@pytest.mark.parametrize("name, chiral", [("ala2_no_dihedrals", False), ("ala2_no_dihedrals_chiral", True)])
def test_the_no_dihedral_configs_leave_no_dihedral_prior(name: str, chiral: bool, capsys) -> None:
    """Applied after ``cg_ala2.yaml``, whose prior has dihedrals: lists of terms merge by class,
    so the override must clear them itself."""
    override = CONFIG.parent / "cg" / f"{name}.yaml"
    with pytest.raises(SystemExit):
        run_cli(["fit", "--config", str(CONFIG), "--config", str(override), "--print_config"])
    terms = yaml.safe_load(capsys.readouterr().out)["model"]["model"]["init_args"]["terms"]
    prior, network = (term["init_args"] for term in terms)
    assert prior["dihedrals"] is None and prior["dihedral_maps"] is None
    assert prior["bonds"] and prior["angles"] and prior["repulsion_pairs"] == [[0, 4]]
    assert network["pseudoscalars"] is chiral
