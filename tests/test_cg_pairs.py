"""Priors over all close bead pairs (liquids): the pair repulsion against a minimum-image sum, its
per-bead energies, gradient and cutoff, its fit, a periodic prior + network sum, and force
matching of a liquid through the CLI."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pyg_hipts.cg import HarmonicAngles, HarmonicBonds, PairRepulsion, TopologyPrior
from pyg_hipts.cli import run_cli
from pyg_hipts.data import AtomsDataset, make_frame
from pyg_hipts.nn import HipNN
from pyg_hipts.potentials import SumPotential, load_potential
from pyg_hipts.units import Units, energy_factor

from .conftest import SHARED_DATA
from .test_cg import assert_forces_are_minus_gradient
from .test_cg_training import small_network_config

BOX = 8.0
SIGMA = [[2.0, 2.2], [2.2, 2.4]]
CUTOFF = 3.0
SPECIES = [1, 2]
CONFIG = Path(__file__).resolve().parents[1] / "configs" / "cg_water.yaml"


def random_liquid(seed: int, n: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    """Bead types ``[n]`` (1 or 2) and positions ``[n, 3]`` in the periodic box, no pair closer
    than 1.6."""
    generator = np.random.default_rng(seed)
    pos: list[np.ndarray] = []
    while len(pos) < n:
        trial = generator.uniform(0.0, BOX, 3)
        if all(np.linalg.norm(minimum_image(trial - other)) > 1.6 for other in pos):
            pos.append(trial)
    types = torch.as_tensor(generator.integers(1, 3, n))
    return types, torch.tensor(np.array(pos))


def minimum_image(vector: np.ndarray) -> np.ndarray:
    return vector - BOX * np.round(vector / BOX)


def _minimum_image_energy(prior: PairRepulsion, types: torch.Tensor, pos: torch.Tensor) -> float:
    """``Σ_{i<j} u(r_ij)`` by brute force over minimum-image pairs (the box exceeds 2 r_c)."""
    total = 0.0
    for i in range(len(pos)):
        for j in range(i + 1, len(pos)):
            r = float(np.linalg.norm(minimum_image((pos[j] - pos[i]).numpy())))
            if r < CUTOFF:
                sigma = SIGMA[int(types[i]) - 1][int(types[j]) - 1]
                at_cutoff = (sigma / CUTOFF) ** 12
                total += (sigma / r) ** 12 - at_cutoff + 12 * at_cutoff * (r / CUTOFF - 1.0)
    return float(prior.epsilon) * total


def _periodic(n_structures: int) -> tuple[torch.Tensor, torch.Tensor]:
    cell = torch.eye(3, dtype=torch.float64).mul(BOX).expand(n_structures, 3, 3)
    return cell, torch.ones(n_structures, 3, dtype=torch.bool)


def _pair_repulsion(epsilon: float = 0.6) -> PairRepulsion:
    prior = PairRepulsion(SPECIES, CUTOFF)
    prior.set_parameters(SIGMA, epsilon)
    return prior


def _two_liquids() -> tuple[list, torch.Tensor, torch.Tensor, torch.Tensor]:
    liquids = [random_liquid(seed) for seed in (1, 2)]
    types = torch.cat([t for t, _ in liquids])
    pos = torch.cat([p for _, p in liquids])
    return liquids, types, pos, torch.arange(2).repeat_interleave(24)


def test_pair_repulsion_is_a_minimum_image_sum_with_minus_gradient_forces() -> None:
    prior = _pair_repulsion()
    liquids, types, pos, batch = _two_liquids()
    out = prior.predict(types, pos, batch, cell=_periodic(2)[0], pbc=_periodic(2)[1], forces=False)
    assert out.energy.shape == (2, 1)
    for b, (t, p) in enumerate(liquids):
        assert float(out.energy[b]) == pytest.approx(_minimum_image_energy(prior, t, p), rel=1e-10)
        assert float(out.energy[b]) > 0.0
    # each bead holds half of each of its pairs: the bead energies add up to the energy
    torch.testing.assert_close(out.atom_energies.view(2, 24).sum(1, dtype=torch.float64), out.energy[:, 0])
    assert float(out.atom_energies.min()) >= 0.0 and float(out.atom_energies.max()) > 0.0
    assert_forces_are_minus_gradient(
        prior, types, pos, batch, [(0, 0), (5, 1), (30, 2), (47, 0)], *_periodic(2)
    )


def test_pair_energy_and_force_vanish_at_the_cutoff() -> None:
    prior = _pair_repulsion(epsilon=1.0)
    r = torch.tensor([CUTOFF - 1e-7, 2.0], dtype=torch.float64, requires_grad=True)
    u = prior.pair_energy(r, torch.tensor([2.4, 2.4], dtype=torch.float64))
    (du,) = torch.autograd.grad(u.sum(), r)
    u = u.detach()
    assert abs(float(u[0])) < 1e-12 and abs(float(du[0])) < 1e-6
    assert float(u[1]) > 5.0 and float(du[1]) < -30.0  # steep inside σ


def test_pair_repulsion_rejects_bad_parameters() -> None:
    prior = PairRepulsion(SPECIES, CUTOFF)
    with pytest.raises(ValueError, match="symmetric"):
        prior.set_parameters([[2.0, 2.1], [2.2, 2.4]], 1.0)
    with pytest.raises(ValueError, match="symmetric"):
        prior.set_parameters([[2.0]], 1.0)
    with pytest.raises(ValueError, match="cutoff"):
        prior.set_parameters([[3.5, 2.0], [2.0, 2.0]], 1.0)
    with pytest.raises(ValueError, match="cutoff > 0"):
        PairRepulsion(SPECIES, 0.0)
    # unfitted, the placeholder repulsion adds nothing
    _, types, pos, batch = _two_liquids()
    assert float(prior.predict(types, pos, batch, forces=False).energy.abs().max()) == 0.0


def test_fit_takes_the_closest_sampled_distance_per_type_pair_across_the_boundary() -> None:
    cell, pbc = np.eye(3) * BOX, np.ones(3, dtype=bool)
    # beads 0 and 1 (type 1) are 2.1 apart through the x boundary; bead 2 (type 2) is 2.5 from bead 1
    first = np.array([[0.3, 4.0, 4.0], [BOX - 1.8, 4.0, 4.0], [BOX - 1.8, 6.5, 4.0]])
    # a second frame: the type 1–2 pair at 2.35, the type 1 pair farther apart
    second = np.array([[1.0, 1.0, 1.0], [4.0, 1.0, 1.0], [1.0, 3.35, 1.0]])
    types = np.array([1, 1, 2])
    frames = [make_frame(types, x, None, cell=cell, pbc=pbc, dtype=torch.float64) for x in (first, second)]
    prior = PairRepulsion(SPECIES, CUTOFF, temperature=320.0)
    prior.pre_fit(AtomsDataset(frames, Units("Å", "eV"), "two frames"))
    expected = [[2.1, 2.35], [2.35, 2.1]]  # type 2–2 never within the cutoff: the smallest σ
    assert torch.allclose(prior.sigma, torch.tensor(expected, dtype=torch.float64), atol=1e-12)
    assert float(prior.epsilon) == pytest.approx(8.617333262e-5 * 320.0, rel=1e-8)  # kT in eV
    far = [make_frame(types, x * 3.0, None, dtype=torch.float64) for x in (first, second)]
    with pytest.raises(ValueError, match="no two beads"):
        prior.pre_fit(AtomsDataset(far, Units("Å", "eV"), "far apart"))


def test_periodic_priors_plus_network_forces_are_minus_the_energy_gradient() -> None:
    """Topology terms (minimum image), the pair repulsion and HIP-NN-TS summed over a periodic box."""
    torch.manual_seed(0)
    topology = TopologyPrior(SPECIES, bonds=[[0, 1], [1, 2], [2, 3]], angles=[[0, 1, 2], [1, 2, 3]])
    topology.terms[0].load_state_dict(
        HarmonicBonds([[0, 1], [1, 2], [2, 3]], [5.0, 8.0, 3.0], [2.5, 3.0, 2.8]).state_dict()
    )
    topology.terms[1].load_state_dict(
        HarmonicAngles([[0, 1, 2], [1, 2, 3]], [2.0, 1.5], [1.9, 2.2]).state_dict()
    )
    network = HipNN(
        SPECIES,
        n_features=8,
        n_sensitivities=6,
        n_interaction_layers=1,
        dist_soft_min=1.0,
        dist_soft_max=3.0,
        dist_hard_max=3.5,
    )
    model = SumPotential(SPECIES, [topology, _pair_repulsion(), network]).double()
    assert model.supports("periodic") and model.cutoff == 3.5
    _, types, pos, batch = _two_liquids()
    cell, pbc = _periodic(2)
    out = model.predict(types, pos, batch, cell=cell, pbc=pbc, forces=False)
    parts = sum(
        term.predict(types, pos, batch, cell=cell, pbc=pbc, forces=False).energy for term in model.terms
    )
    torch.testing.assert_close(out.energy, parts, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out.atom_energies.view(2, 24).sum(1, dtype=torch.float64), out.energy[:, 0])
    assert_forces_are_minus_gradient(
        model, types, pos, batch, [(0, 0), (1, 1), (2, 2), (30, 0), (47, 1)], cell, pbc
    )


def _oxygen_beads(path: Path, n_frames: int) -> Path:
    """Oxygen positions and forces (converted to kcal/mol/Å, the CG config's unit) of the deepmd
    water frames as a periodic force-only npz."""
    folder = SHARED_DATA / "deepmd_water" / "data_0"
    if not folder.exists():
        pytest.skip(f"{folder} is not available")
    types = np.loadtxt(folder / "type.raw", dtype=int)
    oxygen = types == 0
    coords = np.load(folder / "set.000" / "coord.npy")[:n_frames].reshape(n_frames, -1, 3)[:, oxygen]
    forces = np.load(folder / "set.000" / "force.npy")[:n_frames].reshape(n_frames, -1, 3)[:, oxygen]
    cell = np.load(folder / "set.000" / "box.npy")[:n_frames].reshape(n_frames, 3, 3)
    forces = forces * energy_factor("eV", "kcal/mol")
    np.savez(
        path,
        nuclear_charges=np.full(int(oxygen.sum()), 8),
        coords=coords,
        forces=forces,
        cell=cell,
        temperature=300.0,
    )
    return path


def test_liquid_force_matching_fits_the_pair_prior(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["pyg-hipts"])
    data = _oxygen_beads(tmp_path / "oxygen.npz", 40)
    run_cli(
        [
            *("fit", "--config", str(small_network_config(CONFIG, tmp_path / "cg_water.yaml"))),
            *("--data.train_file", str(data), "--trainer.max_epochs", "1"),
            *("--trainer.logger.init_args.save_dir", str(tmp_path / "runs")),
        ]
    )
    model = load_potential(next((tmp_path / "runs").rglob("best.ckpt"))).double()
    assert isinstance(model, SumPotential) and [type(t) for t in model.terms] == [PairRepulsion, HipNN]
    assert model.units == Units("Å", "kcal/mol")
    pair = model.term(PairRepulsion)

    # σ is the closest approach of the 36 training frames: one frame's minimum, with at most
    # the 4 validation frames closer
    saved = np.load(data)
    separation = np.sort(_closest_oxygens(saved["coords"], saved["cell"]))
    sigma = float(pair.sigma[0, 0])
    assert np.isclose(separation, sigma, rtol=1e-5).any() and sigma <= separation[4] + 1e-5
    assert float(pair.epsilon) == pytest.approx(0.0019872 * 300, rel=1e-3)

    z = torch.full((128,), 8)
    pos = torch.as_tensor(saved["coords"][:2].reshape(-1, 3), dtype=torch.float64)
    batch = torch.arange(2).repeat_interleave(64)
    cell, pbc = torch.as_tensor(saved["cell"][:2], dtype=torch.float64), torch.ones(2, 3, dtype=torch.bool)
    total = model.predict(z, pos, batch, cell=cell, pbc=pbc, forces=False).energy
    network = model.term(HipNN).predict(z, pos, batch, cell=cell, pbc=pbc, forces=False).energy
    priors = model.without(HipNN).predict(z, pos, batch, cell=cell, pbc=pbc, forces=False).energy
    torch.testing.assert_close(total, network + priors, rtol=1e-12, atol=1e-10)


def _closest_oxygens(coords: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """The closest minimum-image oxygen distance of each frame ``[F]`` (cubic cells)."""
    edge = cells[:, 0, 0][:, None, None, None]
    vectors = coords[:, :, None] - coords[:, None]
    vectors = vectors - edge * np.round(vectors / edge)
    distances = np.linalg.norm(vectors, axis=-1) + np.eye(coords.shape[1]) * 1e3
    return distances.min(axis=(1, 2))


def test_close_pair_counts_use_the_minimum_image() -> None:
    from pyg_hipts.cg.analysis import close_pair_counts

    cell = np.eye(3) * 10.0
    frames = np.array(
        [
            [[0.5, 5.0, 5.0], [9.7, 5.0, 5.0], [3.0, 5.0, 5.0], [4.5, 5.0, 5.0]],  # 0.8 across x, 1.5
            [[0.5, 5.0, 5.0], [5.0, 5.0, 5.0], [5.0, 0.2, 5.0], [5.0, 8.4, 5.0]],  # 1.8 across y
        ]
    )
    assert close_pair_counts(frames, cell, 1.0).tolist() == [1, 0]
    assert close_pair_counts(frames, cell, 2.0).tolist() == [2, 1]
