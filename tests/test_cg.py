"""Coarse-graining: mapping (centres of mass, summed forces, unwrapping), priors (forces and
Boltzmann inversion), and the Langevin integrator's temperature."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pyg_hipts.cg import (
    BAOAB,
    FourierDihedralMaps,
    FourierDihedrals,
    HarmonicAngles,
    HarmonicBonds,
    Mapping,
    PriorEnergy,
    Repulsion,
    SimulationError,
    angles,
    dihedrals,
)
from pyg_hipts.cg.model import fit_prior_terms, prior_terms
from pyg_hipts.cg.priors import fourier_basis

from .conftest import SHARED_DATA

WATER_MASSES = [15.999, 1.008, 1.008]


def test_centre_of_mass_and_summed_forces_of_a_known_system() -> None:
    rng = np.random.default_rng(0)
    pos = rng.normal(size=(4, 6, 3))
    forces = rng.normal(size=(4, 6, 3))
    masses = np.array([12.0, 1.0, 1.0, 16.0, 1.0, 14.0])
    mapping = Mapping.centers_of_mass([[0, 1, 2], [3, 4], [5]], masses, types=[6, 8, 7])
    beads = mapping.positions(pos)
    expected = (12 * pos[:, 0] + pos[:, 1] + pos[:, 2]) / 14
    np.testing.assert_allclose(beads[:, 0], expected, rtol=1e-12)
    np.testing.assert_allclose(beads[:, 2], pos[:, 5])
    np.testing.assert_allclose(mapping.forces(forces)[:, 1], forces[:, 3] + forces[:, 4], rtol=1e-12)
    assert mapping.types.tolist() == [6, 8, 7] and mapping.bead_masses.tolist() == [14.0, 17.0, 14.0]
    # total force and the mass-weighted centre are conserved by the map
    np.testing.assert_allclose(mapping.forces(forces).sum(1), forces.sum(1), rtol=1e-12)
    selection = Mapping.selection([0, 3], masses)
    np.testing.assert_allclose(selection.positions(pos), pos[:, [0, 3]])


def test_molecules_are_unwrapped_across_the_boundary() -> None:
    cell = np.array([[10.0, 0.0, 0.0], [2.0, 9.0, 0.0], [0.0, 1.0, 8.0]])  # triclinic
    water = np.array([[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]]) + np.array([9.8, 4.0, 3.0])
    mapping = Mapping.per_molecule(1, WATER_MASSES)
    whole = mapping.positions(water, cell)
    wrapped = water.copy()
    wrapped[1] -= cell[0]  # the first hydrogen crosses the boundary
    wrapped[2] += cell[1] - cell[2]
    np.testing.assert_allclose(mapping.positions(wrapped, cell), whole, atol=1e-12)
    assert not np.allclose(mapping.positions(wrapped), whole)  # without the cell it would be wrong


def test_mapping_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="share atoms"):
        Mapping.centers_of_mass([[0, 1], [1, 2]], [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="must be"):
        Mapping.centers_of_mass([[0, 1]], [1.0, 1.0]).positions(np.zeros((5, 3, 3)))
    with pytest.raises(ValueError, match="NaN"):
        Mapping.centers_of_mass([[0, 1]], [1.0, 1.0]).forces(np.full((2, 3), np.nan))


def _ala2(n: int = 2000) -> np.ndarray:
    path = SHARED_DATA / "cgnet_ala2" / "ala2_coordinates.npy"
    if not path.exists():
        pytest.skip(f"{path} is not available")
    return np.load(path)[:n].astype(np.float64)


def test_prior_forces_are_minus_the_energy_gradient() -> None:
    pos = torch.as_tensor(_ala2(3))
    terms = [
        HarmonicBonds([[0, 1], [1, 2], [2, 3], [3, 4]], [200.0, 150.0, 180.0, 170.0], [1.3, 1.45, 1.5, 1.3]),
        HarmonicAngles([[0, 1, 2], [1, 2, 3], [2, 3, 4]], [50.0, 40.0, 60.0], [2.1, 1.9, 2.0]),
        FourierDihedrals([[0, 1, 2, 3], [1, 2, 3, 4]], [[0.5, -0.2], [0.3, 0.1]], [[0.1, 0.4], [-0.3, 0.2]]),
        Repulsion([[0, 3], [0, 4], [1, 4]], [3.0, 3.5, 3.2], 0.6),
        FourierDihedralMaps(
            [[[0, 1, 2, 3], [1, 2, 3, 4]]], torch.randn(1, 5, 5, generator=torch.Generator().manual_seed(0))
        ),
    ]
    prior = PriorEnergy(terms, n_beads=5)
    flat = pos.reshape(-1, 3).clone().requires_grad_(True)
    energy = prior(flat, 3)
    (gradient,) = torch.autograd.grad(energy.sum(), flat)
    step = 1e-6
    for atom, axis in [(0, 0), (7, 1), (14, 2)]:
        plus, minus = flat.detach().clone(), flat.detach().clone()
        plus[atom, axis] += step
        minus[atom, axis] -= step
        difference = (prior(plus, 3).sum() - prior(minus, 3).sum()) / (2 * step)
        assert float(gradient[atom, axis]) == pytest.approx(float(difference), rel=1e-6, abs=1e-8)
    with pytest.raises(ValueError, match="5 beads"):
        prior(flat[:14], 3)


def test_geometry_of_a_known_structure() -> None:
    pos = torch.tensor(
        [[[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, 1.0]]], dtype=torch.float64
    )
    assert float(angles(pos, torch.tensor([[0, 1, 2]]))) == pytest.approx(math.pi / 2)
    assert float(dihedrals(pos, torch.tensor([[0, 1, 2, 3]]))) == pytest.approx(-math.pi / 2)


def test_boltzmann_inversion_recovers_known_constants() -> None:
    """Bond lengths and angles drawn from exp(−U/kT) of known harmonic terms give back k and x₀."""
    thermal_energy, rng = 0.596, np.random.default_rng(1)
    k_bond, r0, k_angle, theta0 = 120.0, 1.5, 30.0, 1.9
    n = 200_000
    r = rng.normal(r0, math.sqrt(thermal_energy / k_bond), n)
    theta = rng.normal(theta0, math.sqrt(thermal_energy / k_angle), n)
    # three beads: 1 at the origin, 0 along x at distance r, 2 at angle theta from bead 0
    pos = np.zeros((n, 3, 3))
    pos[:, 0, 0] = r
    pos[:, 2, 0], pos[:, 2, 1] = 1.4 * np.cos(theta), 1.4 * np.sin(theta)
    bonds = HarmonicBonds.fit(pos, [[0, 1]], thermal_energy)
    assert float(bonds.k[0]) == pytest.approx(k_bond, rel=0.01)
    assert float(bonds.center[0]) == pytest.approx(r0, abs=1e-3)
    bend = HarmonicAngles.fit(pos, [[0, 1, 2]], thermal_energy)
    assert float(bend.k[0]) == pytest.approx(k_angle, rel=0.01)
    assert float(bend.center[0]) == pytest.approx(theta0, abs=1e-3)


def test_dihedral_and_repulsion_fits_on_alanine_dipeptide() -> None:
    pos = _ala2()
    thermal_energy = 0.596
    fitted = FourierDihedrals.fit(pos, [[0, 1, 2, 3], [1, 2, 3, 4]], thermal_energy, n_terms=4)
    # the fitted free energy is lowest where the samples are densest, and high where none are
    phi = dihedrals(torch.as_tensor(pos), fitted.index).numpy()
    grid = torch.linspace(-math.pi, math.pi, 73, dtype=torch.float64)[:-1] + math.pi / 72
    for q, column in enumerate(phi.T):
        counts, _ = np.histogram(column, bins=72, range=(-math.pi, math.pi))
        energies = _dihedral_energy_on_grid(fitted, q, grid)
        assert abs(float(grid[int(np.argmin(energies))]) - float(grid[int(np.argmax(counts))])) < 0.6
        assert energies[counts == 0].min() - energies.min() > 2 * thermal_energy
    repulsion = Repulsion.fit(pos, [[0, 4]], thermal_energy)
    closest = float(np.linalg.norm(pos[:, 4] - pos[:, 0], axis=-1).min())
    assert float(repulsion.sigma[0]) == pytest.approx(closest) and repulsion.epsilon == thermal_energy


def test_priors_fitted_in_place_equal_direct_fits() -> None:
    """A model's placeholder priors, fitted in place, hold exactly the parameters of direct fits
    (every coefficient its own, none aliased to another)."""
    pos = torch.as_tensor(_ala2())
    quads = [[0, 1, 2, 3], [1, 2, 3, 4]]
    terms = prior_terms([[0, 1], [1, 2]], [[0, 1, 2]], quads, [quads], [[0, 4]], 3, 6)
    fit_prior_terms(terms, pos, 0.596)
    direct = [
        HarmonicBonds.fit(pos, [[0, 1], [1, 2]], 0.596),
        HarmonicAngles.fit(pos, [[0, 1, 2]], 0.596),
        FourierDihedrals.fit(pos, quads, 0.596, n_terms=3),
        FourierDihedralMaps.fit(pos, [quads], 0.596, n_terms=3),
        Repulsion.fit(pos, [[0, 4]], 0.596),
    ]
    for term, reference in zip(terms, direct, strict=True):
        for (name, value), (_, expected) in zip(term.named_buffers(), reference.named_buffers(), strict=True):
            assert torch.allclose(value, expected, rtol=1e-9, atol=1e-12), (type(term).__name__, name)


def test_dihedral_map_fit_on_alanine_dipeptide() -> None:
    """The (φ, ψ) map is lowest in the densest histogram bin and high where nothing was sampled;
    a map whose only coefficients are those of one angle is that angle's Fourier series."""
    pos = _ala2()
    thermal_energy = 0.596
    quads = [[0, 1, 2, 3], [1, 2, 3, 4]]
    fitted = FourierDihedralMaps.fit(pos, [quads], thermal_energy, n_terms=4, n_bins=36)
    phi_psi = dihedrals(torch.as_tensor(pos), torch.tensor(quads)).numpy()
    counts, edges, _ = np.histogram2d(*phi_psi.T, bins=36, range=[(-math.pi, math.pi)] * 2)
    centers = torch.as_tensor(0.5 * (edges[1:] + edges[:-1]))
    grid = torch.stack(torch.meshgrid(centers, centers, indexing="ij"), -1).reshape(-1, 2)
    energies = _map_energy_on_grid(fitted, grid)
    assert np.abs(grid[int(np.argmin(energies))] - grid[int(np.argmax(counts))]).max() < 0.6
    assert np.median(energies[counts.ravel() == 0]) - energies.min() > 4 * thermal_energy

    one_angle = FourierDihedrals(quads[:1], [[0.5, -0.2, 0.1]], [[0.3, 0.2, -0.4]])
    coefficients = torch.zeros(1, 7, 7)
    coefficients[0, 1::2, 0], coefficients[0, 2::2, 0] = one_angle.a[0], one_angle.b[0]
    as_map = FourierDihedralMaps([quads], coefficients)
    x = torch.as_tensor(_ala2(20))
    assert torch.allclose(as_map(x), one_angle(x))


def _map_energy_on_grid(term: FourierDihedralMaps, grid: torch.Tensor) -> np.ndarray:
    """Energy of the first map of ``term`` at the angle pairs ``grid [G, 2]``."""
    first, second = fourier_basis(grid[:, 0], term.n_terms), fourier_basis(grid[:, 1], term.n_terms)
    return torch.einsum("gj,jk,gk->g", first, term.c[0], second).numpy()


def _dihedral_energy_on_grid(term: FourierDihedrals, q: int, grid: torch.Tensor) -> np.ndarray:
    """Energy of dihedral ``q`` of ``term`` at the angles ``grid``."""
    m = torch.arange(1, term.a.shape[1] + 1, dtype=grid.dtype)
    phi = grid[:, None]
    return (term.a[q] * torch.cos(m * phi) + term.b[q] * torch.sin(m * phi)).sum(-1).numpy()


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
    with pytest.raises(SimulationError, match=r"step \d+, replica \d+, bead \d+"):
        exploding.run(torch.full((2, 2, 3), 1.0, dtype=torch.float64), 500)


def test_radial_distribution_of_an_ideal_gas_is_one_and_divergences() -> None:
    from pyg_hipts.cg.analysis import jensen_shannon, radial_distribution, state_populations

    rng = np.random.default_rng(2)
    cell = np.array([[12.0, 0.0, 0.0], [3.0, 11.0, 0.0], [1.0, 2.0, 13.0]])
    positions = rng.random((40, 300, 3)) @ cell
    r, g = radial_distribution(positions, cell, r_max=5.0, n_bins=10)
    np.testing.assert_allclose(g[2:], 1.0, atol=0.05)  # uniform points: g = 1
    with pytest.raises(ValueError, match="half the cell"):
        radial_distribution(positions, cell, r_max=7.0)
    p = np.array([0.5, 0.5, 0.0])
    assert jensen_shannon(p, p) == 0.0
    assert jensen_shannon(p, np.array([0.0, 0.0, 1.0])) == pytest.approx(math.log(2))
    populations = state_populations(np.radians([-60, -60, -150, 60]), np.radians([-45, 140, -150, 30]))
    assert populations == {"alpha": 0.25, "beta": 0.5, "alpha_L": 0.25}


@pytest.mark.parametrize("center", [2.83, 2.87, 2.9])
def test_first_peak_is_placed_between_bin_centres(center: float) -> None:
    """On 0.1 Å bins, a Gaussian peak's position comes back to far better than the bin width."""
    from pyg_hipts.cg.analysis import first_peak

    r = np.arange(0.0, 8.0, 0.1) + 0.05
    g = 1.0 + 2.0 * np.exp(-((r - center) ** 2) / (2 * 0.25**2))
    position, height = first_peak(r, g)
    assert position == pytest.approx(center, abs=0.005) and height == pytest.approx(3.0, rel=0.01)
    assert first_peak(r[::-1][:30][::-1], np.linspace(0.0, 1.0, 30)) == (pytest.approx(r[-1]), 1.0)


def test_shared_histograms_of_two_samples() -> None:
    from pyg_hipts.cg.analysis import jensen_shannon, shared_histograms

    rng = np.random.default_rng(3)
    reference = rng.normal(1.5, 0.05, 20000)
    centers, p, q = shared_histograms(reference, rng.normal(1.5, 0.05, 20000), n_bins=40)
    assert centers.shape == p.shape == q.shape == (40,) and p.sum() == pytest.approx(1.0)
    assert jensen_shannon(p, q) < 0.01  # the same distribution
    _, p, q = shared_histograms(reference, rng.normal(1.7, 0.05, 20000), n_bins=40)
    assert jensen_shannon(p, q) > 0.6  # barely overlapping: close to ln 2
