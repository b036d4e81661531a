"""Priors and checks over all close bead pairs (liquids): the pair repulsion against a
minimum-image sum, its gradient and cutoff, its fit, and the integrator's stop on fusing beads."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pyg_hipts.cg import BAOAB, CGPotentialModule, PairRepulsion, PriorNetwork, SimulationError
from pyg_hipts.cg.simulate import closest_pairs
from pyg_hipts.train.checkpoints import load_module
from pyg_hipts.train.cli import run_cli
from tests.test_train_module import single_thread  # noqa: F401

from .conftest import SHARED_DATA

BOX = 8.0
SIGMA = [[2.0, 2.2], [2.2, 2.4]]
CUTOFF = 3.0


def _random_liquid(seed: int, n: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    """Bead types ``[n]`` and positions ``[n, 3]`` in the periodic box, no pair closer than 1.6."""
    generator = np.random.default_rng(seed)
    pos: list[np.ndarray] = []
    while len(pos) < n:
        trial = generator.uniform(0.0, BOX, 3)
        if all(np.linalg.norm(_minimum_image(trial - other)) > 1.6 for other in pos):
            pos.append(trial)
    types = torch.as_tensor(generator.integers(0, 2, n))
    return types, torch.tensor(np.array(pos))


def _minimum_image(vector: np.ndarray) -> np.ndarray:
    return vector - BOX * np.round(vector / BOX)


def _minimum_image_energy(prior: PairRepulsion, types: torch.Tensor, pos: torch.Tensor) -> float:
    """``Σ_{i<j} u(r_ij)`` by brute force over minimum-image pairs (the box exceeds 2 r_c)."""
    total = 0.0
    for i in range(len(pos)):
        for j in range(i + 1, len(pos)):
            r = float(np.linalg.norm(_minimum_image((pos[j] - pos[i]).numpy())))
            if r < CUTOFF:
                sigma = SIGMA[int(types[i])][int(types[j])]
                at_cutoff = (sigma / CUTOFF) ** 12
                total += (sigma / r) ** 12 - at_cutoff + 12 * at_cutoff * (r / CUTOFF - 1.0)
    return float(prior.epsilon) * total


def _periodic(n_structures: int) -> tuple[torch.Tensor, torch.Tensor]:
    cell = torch.eye(3, dtype=torch.float64).mul(BOX).expand(n_structures, 3, 3)
    return cell, torch.ones(n_structures, 3, dtype=torch.bool)


def test_pair_repulsion_is_a_minimum_image_sum_with_minus_gradient_forces() -> None:
    prior = PairRepulsion(SIGMA, epsilon=0.6, cutoff=CUTOFF)
    liquids = [_random_liquid(seed) for seed in (1, 2)]
    types = torch.cat([t for t, _ in liquids])
    pos = torch.cat([p for _, p in liquids]).requires_grad_(True)
    batch = torch.arange(2).repeat_interleave(24)
    energy = prior(types, pos, batch, 2, *_periodic(2))
    assert energy.shape == (2, 1)
    for b, (t, p) in enumerate(liquids):
        assert float(energy[b].detach()) == pytest.approx(_minimum_image_energy(prior, t, p), rel=1e-10)
        assert float(energy[b].detach()) > 0.0
    (gradient,) = torch.autograd.grad(energy.sum(), pos)
    step = 1e-6
    for atom, axis in [(0, 0), (5, 1), (30, 2), (47, 0)]:
        plus, minus = pos.detach().clone(), pos.detach().clone()
        plus[atom, axis] += step
        minus[atom, axis] -= step
        energies = [prior(types, moved, batch, 2, *_periodic(2)).sum() for moved in (plus, minus)]
        numeric = float(energies[0] - energies[1]) / (2 * step)
        assert numeric == pytest.approx(float(gradient[atom, axis]), rel=1e-5, abs=1e-8)


def test_pair_energy_and_force_vanish_at_the_cutoff() -> None:
    prior = PairRepulsion(SIGMA, epsilon=1.0, cutoff=CUTOFF)
    r = torch.tensor([CUTOFF - 1e-7, 2.0], dtype=torch.float64, requires_grad=True)
    u = prior.pair_energy(r, torch.tensor([2.4, 2.4], dtype=torch.float64))
    (du,) = torch.autograd.grad(u.sum(), r)
    assert abs(float(u[0])) < 1e-12 and abs(float(du[0])) < 1e-6
    assert float(u[1]) > 5.0 and float(du[1]) < -30.0  # steep inside σ


def test_pair_repulsion_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError, match="symmetric"):
        PairRepulsion([[2.0, 2.1], [2.2, 2.4]], 1.0, CUTOFF)
    with pytest.raises(ValueError, match="cutoff"):
        PairRepulsion([[3.5]], 1.0, CUTOFF)


def test_fit_takes_the_closest_sampled_distance_per_type_pair_across_the_boundary() -> None:
    cell, pbc = torch.eye(3, dtype=torch.float64).mul(BOX).view(1, 3, 3), torch.ones(1, 3, dtype=torch.bool)
    # beads 0 and 1 (type 0) are 2.1 apart through the x boundary; bead 2 (type 1) is 2.5 from bead 1
    first = torch.tensor([[0.3, 4.0, 4.0], [BOX - 1.8, 4.0, 4.0], [BOX - 1.8, 6.5, 4.0]], dtype=torch.float64)
    # a second frame: the type 0–1 pair at 2.35, the type 0 pair farther apart
    second = torch.tensor([[1.0, 1.0, 1.0], [4.0, 1.0, 1.0], [1.0, 3.35, 1.0]], dtype=torch.float64)
    types = torch.tensor([0, 0, 1])
    fitted = PairRepulsion.fit(
        [(types, first, cell, pbc), (types, second, cell, pbc)], n_types=2, thermal_energy=0.6, cutoff=CUTOFF
    )
    expected = [[2.1, 2.35], [2.35, 2.1]]  # type 1–1 never within the cutoff: the smallest σ
    assert torch.allclose(fitted.sigma, torch.tensor(expected, dtype=torch.float64), atol=1e-12)
    assert float(fitted.epsilon) == 0.6
    with pytest.raises(ValueError, match="no two beads"):
        PairRepulsion.fit([(types, second * 3.0, None, None)], 2, 0.6, CUTOFF)


def test_closest_pairs_match_a_minimum_image_search() -> None:
    replicas = torch.stack([_random_liquid(seed)[1] for seed in (3, 4, 5)])
    cell, pbc = torch.eye(3, dtype=torch.float64) * BOX, torch.ones(3, dtype=torch.bool)
    distance, first, second = closest_pairs(CUTOFF, cell, pbc)(replicas)
    for r, x in enumerate(replicas.numpy()):
        separation = np.linalg.norm(_minimum_image(x[:, None] - x[None]), axis=-1) + np.eye(len(x)) * 1e3
        i, j = np.unravel_index(np.argmin(separation), separation.shape)
        assert float(distance[r]) == pytest.approx(separation.min(), rel=1e-12)
        assert {int(first[r]), int(second[r])} == {int(i), int(j)}
    far_apart = torch.tensor([[[0.0, 0.0, 0.0], [4.0, 0.0, 0.0]]], dtype=torch.float64)
    distance, first, _ = closest_pairs(CUTOFF)(far_apart)
    assert torch.isinf(distance).all() and int(first[0]) == -1


def test_integrator_stops_when_beads_fuse() -> None:
    masses = torch.ones(3, dtype=torch.float64)
    start = torch.tensor([[[0.0, 0.0, 0.0], [2.5, 0.0, 0.0], [0.0, 6.0, 0.0]]], dtype=torch.float64)

    def pull_first_two(x: torch.Tensor) -> torch.Tensor:
        force = torch.zeros_like(x)
        force[:, 0], force[:, 1] = 2.0 * (x[:, 1] - x[:, 0]), 2.0 * (x[:, 0] - x[:, 1])
        return force

    integrator = BAOAB(
        pull_first_two,
        masses,
        timestep=0.05,
        friction=1.0,
        thermal_energy=0.01,
        closest_pair=closest_pairs(CUTOFF),
        min_distance=1.5,
        check_every=1,
    )
    with pytest.raises(SimulationError, match=r"replica 0: beads [01] and [01] are 1\.\d+ apart"):
        integrator.run(start, 500)
    with pytest.raises(ValueError, match="together"):
        BAOAB(pull_first_two, masses, 0.05, 1.0, 0.01, min_distance=1.5)


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
    forces = forces * 23.0605  # eV -> kcal/mol
    np.savez(path, nuclear_charges=np.full(int(oxygen.sum()), 8), coords=coords, forces=forces, cell=cell)
    return path


def test_liquid_force_matching_fits_the_pair_prior(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["pyg-hipts"])
    data = _oxygen_beads(tmp_path / "oxygen.npz", 40)
    run_cli(
        [
            *("fit", "--config", str(Path(__file__).resolve().parents[1] / "configs" / "cg_water.yaml")),
            *("--data.train_file", str(data)),
            *("--model.init_args.n_features", "8", "--model.init_args.n_sensitivities", "6"),
            *("--model.init_args.n_interaction_layers", "1", "--trainer.max_epochs", "1"),
            *("--trainer.logger.init_args.save_dir", str(tmp_path / "runs")),
        ]
    )
    module = load_module(next((tmp_path / "runs").rglob("best.ckpt")))
    assert isinstance(module, CGPotentialModule) and isinstance(module.model, PriorNetwork)
    model = module.eval_model.double()
    assert model.prior is None and model.pair_prior is not None

    # σ is the closest approach of the 36 training frames: one frame's minimum, with at most
    # the 4 validation frames closer
    saved = np.load(data)
    separation = np.sort(_closest_oxygens(saved["coords"], saved["cell"]))
    sigma = float(model.pair_prior.sigma[0, 0])
    assert np.isclose(separation, sigma, rtol=1e-5).any() and sigma <= separation[4] + 1e-5
    assert float(model.pair_prior.epsilon) == pytest.approx(0.0019872 * 300, rel=1e-3)

    z = torch.full((64,), 8)
    pos = torch.as_tensor(saved["coords"][:2].reshape(-1, 3), dtype=torch.float64).requires_grad_(True)
    batch = torch.arange(2).repeat_interleave(64)
    cell, pbc = torch.as_tensor(saved["cell"][:2], dtype=torch.float64), torch.ones(2, 3, dtype=torch.bool)
    total = model.predict(z.repeat(2), pos, batch, cell=cell, pbc=pbc)
    network = model.network.predict(z.repeat(2), pos, batch, cell=cell, pbc=pbc, forces=False).energy
    pair = model.pair_prior(model.network.species_index(z.repeat(2)), pos, batch, 2, cell, pbc)
    assert torch.allclose(total.energy, network + pair)


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
