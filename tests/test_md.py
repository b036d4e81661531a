"""Langevin dynamics of any potential: the BAOAB integrator's temperature and its stops (blow-up,
fusing atoms), closest pairs, the unit conversions of ``run_langevin``, and runs of all-atom
HIP-NN-TS potentials, molecular and periodic."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pyg_hipts.md import BAOAB, SimulationError, closest_pairs, potential_forces, run_langevin
from pyg_hipts.nn import HipNN
from pyg_hipts.potentials import Potential, ReferenceEnergies, Structures
from pyg_hipts.units import Units

from .conftest import SHARED_DATA, _rmd17
from .test_cg_pairs import BOX, CUTOFF, minimum_image, random_liquid

KCAL = Units("Å", "kcal/mol")


def test_baoab_samples_the_temperature_of_harmonic_oscillators() -> None:
    spring, thermal_energy = 4.0, 0.6
    masses = torch.tensor([1.0, 12.0, 16.0], dtype=torch.float64)
    integrator = BAOAB(
        lambda x: -spring * x, masses, timestep=0.05, friction=2.0, thermal_energy=thermal_energy, seed=3
    )
    start = torch.zeros(512, 3, 3, dtype=torch.float64)
    trajectory = integrator.run(start, 3000, save_every=10)
    equilibrated = slice(len(trajectory.steps) // 3, None)
    x, v = trajectory.positions[equilibrated], trajectory.velocities[equilibrated]
    potential = (0.5 * spring * x**2).mean()  # per degree of freedom: kT / 2
    kinetic = (0.5 * masses.view(1, 1, -1, 1) * v**2).mean()
    assert float(potential) == pytest.approx(0.5 * thermal_energy, rel=0.03)
    assert float(kinetic) == pytest.approx(0.5 * thermal_energy, rel=0.03)
    assert trajectory.positions.shape == (301, 512, 3, 3) and int(trajectory.steps[-1]) == 3000


def test_baoab_stops_loudly_when_the_system_blows_up() -> None:
    masses = torch.ones(2, dtype=torch.float64)
    exploding = BAOAB(lambda x: 50.0 * x**3, masses, timestep=0.1, friction=1.0, thermal_energy=1.0, seed=0)
    with pytest.raises(SimulationError, match=r"step \d+, replica \d+, atom \d+"):
        exploding.run(torch.full((2, 2, 3), 1.0, dtype=torch.float64), 500)
    with pytest.raises(ValueError, match="positive"):
        BAOAB(lambda x: x, torch.tensor([1.0, 0.0]), timestep=0.1, friction=1.0, thermal_energy=1.0)


def test_closest_pairs_match_a_minimum_image_search() -> None:
    replicas = torch.stack([random_liquid(seed)[1] for seed in (3, 4, 5)])
    cell, pbc = torch.eye(3, dtype=torch.float64) * BOX, torch.ones(3, dtype=torch.bool)
    distance, first, second = closest_pairs(CUTOFF, cell, pbc)(replicas)
    for r, x in enumerate(replicas.numpy()):
        separation = np.linalg.norm(minimum_image(x[:, None] - x[None]), axis=-1) + np.eye(len(x)) * 1e3
        i, j = np.unravel_index(np.argmin(separation), separation.shape)
        assert float(distance[r]) == pytest.approx(separation.min(), rel=1e-12)
        assert {int(first[r]), int(second[r])} == {int(i), int(j)}
    far_apart = torch.tensor([[[0.0, 0.0, 0.0], [4.0, 0.0, 0.0]]], dtype=torch.float64)
    distance, first, _ = closest_pairs(CUTOFF)(far_apart)
    assert torch.isinf(distance).all() and int(first[0]) == -1


def test_integrator_stops_when_atoms_fuse() -> None:
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
    with pytest.raises(SimulationError, match=r"replica 0: atoms [01] and [01] are 1\.\d+ apart"):
        integrator.run(start, 500)
    with pytest.raises(ValueError, match="together"):
        BAOAB(pull_first_two, masses, 0.05, 1.0, 0.01, min_distance=1.5)


@pytest.mark.parametrize(
    ("units", "tau_fs", "k_boltzmann"),
    [(KCAL, 48.8882, 1.987204259e-3), (Units("Å", "eV"), 10.1805, 8.617333262e-5)],
)
def test_run_langevin_converts_time_friction_and_temperature(units: Units, tau_fs: float, k_boltzmann: float):
    """Free particles (a potential without forces): without friction they fly straight, ``Δx =
    n Δt v₀`` with ``Δt`` in the time unit ``τ``; initial velocities have ``⟨m v²⟩ = kT``; with
    friction ``γ`` the velocities forget their start as ``exp(−γ t)``."""
    free = ReferenceEnergies([1], units=units)
    z, masses = (
        torch.ones(5, dtype=torch.long),
        torch.tensor([1.0, 2.0, 12.0, 16.0, 40.0], dtype=torch.float64),
    )
    start = torch.arange(5, dtype=torch.float64).mul(3.0).view(1, 5, 1).expand(2000, 5, 3)  # 3√3 Å apart
    options = dict(temperature=350.0, timestep_fs=2.0, n_steps=50, save_every=50)
    flight = run_langevin(free, z, start, masses, friction_per_ps=0.0, **options)
    v0 = flight.velocities[0]
    torch.testing.assert_close(flight.positions[-1] - start, v0 * 50 * 2.0 / tau_fs, rtol=1e-4, atol=1e-12)
    kinetic = float((masses.view(1, -1, 1) * v0**2).mean())
    assert kinetic == pytest.approx(k_boltzmann * 350.0, rel=0.03)

    damped = run_langevin(free, z, start, masses, friction_per_ps=10.0, **options)
    v0, v = damped.velocities[0].flatten(), damped.velocities[-1].flatten()
    slope = float((v0 * v).sum() / (v0 * v0).sum())
    assert slope == pytest.approx(math.exp(-10.0 * 50 * 2.0 / 1000.0), abs=0.02)  # γ t = 1

    with pytest.raises(ValueError, match="no units"):
        run_langevin(ReferenceEnergies([1]), z, start[:1], masses, friction_per_ps=1.0, **options)
    given = run_langevin(
        ReferenceEnergies([1]), z, start[:1], masses, friction_per_ps=0.0, units=units, **options
    )
    flown = given.positions[-1] - start[:1]
    torch.testing.assert_close(flown, given.velocities[0] * 50 * 2.0 / tau_fs, rtol=1e-4, atol=1e-12)


class _OpenHarmonic(Potential):
    """``e_i = |x_i|² / 2``, for molecules only."""

    periodic = False

    def __init__(self, species, units: Units | None = None) -> None:
        super().__init__(species, 0.0, units)

    def atom_energies(self, structures: Structures) -> torch.Tensor:
        return 0.5 * structures.pos.square().sum(-1)


def test_forces_of_replicas_and_cells_a_potential_cannot_take() -> None:
    spring = _OpenHarmonic([1], units=KCAL)
    x = torch.randn(4, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(potential_forces(spring, torch.ones(3, dtype=torch.long))(x), -x)
    with pytest.raises(ValueError, match="cannot simulate a periodic cell"):
        potential_forces(
            spring, torch.ones(3, dtype=torch.long), torch.eye(3) * 10, torch.ones(3, dtype=torch.bool)
        )


def test_langevin_runs_an_all_atom_hipnn_molecule() -> None:
    torch.manual_seed(0)
    z, pos, _ = _rmd17("ethanol", [0])
    model = HipNN(
        [1, 6, 8], n_features=8, n_sensitivities=6, n_interaction_layers=1, dist_soft_min=0.5, units=KCAL
    )
    model = model.double()
    masses = torch.tensor([{1: 1.008, 6: 12.011, 8: 15.999}[int(a)] for a in z], dtype=torch.float64)
    start = pos.unsqueeze(0).repeat(3, 1, 1)
    trajectory = run_langevin(
        model,
        z,
        start,
        masses,
        temperature=300.0,
        timestep_fs=0.5,
        friction_per_ps=1.0,
        n_steps=20,
        save_every=5,
    )
    assert trajectory.positions.shape == (5, 3, 9, 3) and trajectory.steps.tolist() == [0, 5, 10, 15, 20]
    moved = (trajectory.positions[-1] - start).norm(dim=-1)
    assert (
        torch.isfinite(trajectory.positions).all() and 0.01 < float(moved.mean()) < float(moved.max()) < 1.0
    )
    assert not torch.equal(trajectory.positions[-1, 0], trajectory.positions[-1, 1])  # independent replicas


def test_langevin_runs_an_all_atom_hipnn_in_a_periodic_box() -> None:
    folder = SHARED_DATA / "deepmd_water" / "data_0"
    if not folder.exists():
        pytest.skip(f"{folder} is not available")
    torch.manual_seed(0)
    z = torch.as_tensor(np.where(np.loadtxt(folder / "type.raw", dtype=int) == 0, 8, 1))
    pos = torch.as_tensor(np.load(folder / "set.000" / "coord.npy")[0].reshape(-1, 3), dtype=torch.float64)
    cell = torch.as_tensor(np.load(folder / "set.000" / "box.npy")[0].reshape(3, 3), dtype=torch.float64)
    model = HipNN(
        [1, 8], n_features=8, n_sensitivities=6, n_interaction_layers=1, dist_soft_max=3.0, dist_hard_max=3.5
    ).double()
    masses = torch.where(z == 8, 15.999, 1.008).double()
    pbc = torch.ones(3, dtype=torch.bool)
    start = pos.unsqueeze(0).repeat(2, 1, 1)
    trajectory = run_langevin(
        model,
        z,
        start,
        masses,
        temperature=300.0,
        timestep_fs=0.5,
        friction_per_ps=1.0,
        n_steps=5,
        save_every=5,
        cell=cell,
        pbc=pbc,
        min_distance=0.5,
        units=Units("Å", "eV"),
    )
    assert trajectory.positions.shape == (2, 2, 192, 3) and torch.isfinite(trajectory.positions).all()
    forces = potential_forces(model, z, cell, pbc)(start[:1])
    expected = model.predict(z, pos, cell=cell.unsqueeze(0), pbc=pbc.unsqueeze(0)).forces
    torch.testing.assert_close(forces[0], expected)
