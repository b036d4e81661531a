"""Coarse-graining: the fixed-topology priors (math, per-bead energies, periodic images, Boltzmann
inversion) and a prior + network sum (forces, saving and loading)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch

from pyg_hipts.cg import (
    FourierDihedralMaps,
    FourierDihedrals,
    HarmonicAngles,
    HarmonicBonds,
    PriorTerm,
    Repulsion,
    TopologyPrior,
    angles,
    dihedrals,
    distances,
)
from pyg_hipts.cg.priors import fourier_basis
from pyg_hipts.data import AtomsDataset, make_frame
from pyg_hipts.nn import HipNN
from pyg_hipts.potentials import Potential, SumPotential, load_potential, save_potential
from pyg_hipts.units import Units, boltzmann_constant

from .conftest import SHARED_DATA

BEAD_TYPES = [1, 2, 3, 1, 2]  # C N CA C N
KCAL = Units("Å", "kcal/mol")
QUADS = [[0, 1, 2, 3], [1, 2, 3, 4]]


def _ala2(n: int = 2000) -> np.ndarray:
    path = SHARED_DATA / "cgnet_ala2" / "ala2_coordinates.npy"
    if not path.exists():
        pytest.skip(f"{path} is not available")
    return np.load(path)[:n].astype(np.float64)


def _flat(pos: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``z [F·5]``, ``pos [F·5, 3]`` (float64) and ``batch`` of alanine dipeptide frames ``[F, 5, 3]``."""
    pos = torch.as_tensor(pos, dtype=torch.float64)
    return (
        torch.tensor(BEAD_TYPES).repeat(len(pos)),
        pos.reshape(-1, 3),
        torch.arange(len(pos)).repeat_interleave(5),
    )


def _dataset(
    pos: np.ndarray, units: Units = KCAL, cell: np.ndarray | None = None, z=BEAD_TYPES
) -> AtomsDataset:
    """Force-free float64 frames ``pos [F, n, 3]`` (with one ``cell [3, 3]`` for all, periodic) as a
    dataset."""
    periodic = {} if cell is None else {"cell": cell, "pbc": np.ones(3, dtype=bool)}
    frames = [make_frame(np.asarray(z), p, None, **periodic, dtype=torch.float64) for p in pos]
    return AtomsDataset(frames, units, "test frames")


def assert_forces_are_minus_gradient(
    potential: Potential,
    z: torch.Tensor,
    pos: torch.Tensor,
    batch: torch.Tensor,
    coordinates: Sequence[tuple[int, int]],
    cell: torch.Tensor | None = None,
    pbc: torch.Tensor | None = None,
    step: float = 1e-6,
) -> None:
    """The potential's forces (float64) equal central differences ``−ΔE / Δx`` of its total energy
    along the given ``(atom, axis)`` coordinates."""
    forces = potential.predict(z, pos, batch, cell=cell, pbc=pbc).forces
    for atom, axis in coordinates:
        energies = []
        for sign in (1.0, -1.0):
            moved = pos.detach().clone()
            moved[atom, axis] += sign * step
            energy = potential.predict(z, moved, batch, cell=cell, pbc=pbc, forces=False).energy
            energies.append(float(energy.detach().sum()))
        numeric = -(energies[0] - energies[1]) / (2 * step)
        assert float(forces[atom, axis]) == pytest.approx(numeric, rel=1e-6, abs=1e-8), (atom, axis)


def _known_terms() -> list[PriorTerm]:
    """One term of each kind on the alanine dipeptide backbone, with chosen parameters."""
    return [
        HarmonicBonds([[0, 1], [1, 2], [2, 3], [3, 4]], [200.0, 150.0, 180.0, 170.0], [1.3, 1.45, 1.5, 1.3]),
        HarmonicAngles([[0, 1, 2], [1, 2, 3], [2, 3, 4]], [50.0, 40.0, 60.0], [2.1, 1.9, 2.0]),
        FourierDihedrals(QUADS, [[0.5, -0.2], [0.3, 0.1]], [[0.1, 0.4], [-0.3, 0.2]]),
        FourierDihedralMaps([QUADS], torch.randn(1, 5, 5, generator=torch.Generator().manual_seed(0))),
        Repulsion([[0, 3], [0, 4], [1, 4]], [3.0, 3.5, 3.2], 0.6),
    ]


def _known_prior() -> TopologyPrior:
    """A :class:`TopologyPrior` holding the parameters of :func:`_known_terms`."""
    terms = _known_terms()
    prior = TopologyPrior(
        [1, 2, 3],
        bonds=terms[0].index.tolist(),
        angles=terms[1].index.tolist(),
        dihedrals=QUADS,
        dihedral_maps=[QUADS],
        repulsion_pairs=terms[4].index.tolist(),
        n_dihedral_terms=2,
    )
    for term, known in zip(prior.terms, terms, strict=True):
        term.load_state_dict(known.state_dict())
    return prior


def test_topology_prior_energy_forces_and_bead_energies() -> None:
    """The energy is the sum of the terms, forces are minus its gradient, and bead energies share
    every tuple's energy equally among its beads."""
    pos = torch.as_tensor(_ala2(3))
    prior = _known_prior()
    z, flat, batch = _flat(pos)
    out = prior.predict(z, flat, batch)
    expected = sum(term(pos) for term in _known_terms())
    torch.testing.assert_close(out.energy.squeeze(-1), expected, rtol=1e-12, atol=0)
    torch.testing.assert_close(out.atom_energies.view(3, 5).sum(1).double(), expected, rtol=1e-12, atol=0)
    assert_forces_are_minus_gradient(prior, z, flat, batch, [(0, 0), (7, 1), (14, 2)])

    bonds = HarmonicBonds([[0, 1], [1, 2]], [200.0, 150.0], [1.3, 1.45])
    chain = TopologyPrior([1, 2, 3], bonds=[[0, 1], [1, 2]])
    chain.terms[0].load_state_dict(bonds.state_dict())
    per_bond = bonds.energies(pos)  # [3, 2]
    beads = chain.predict(z, flat, batch, forces=False).atom_energies.view(3, 5)
    shares = torch.stack(
        [per_bond[:, 0], per_bond.sum(1), per_bond[:, 1], 0 * per_bond[:, 0], 0 * per_bond[:, 0]], 1
    )
    torch.testing.assert_close(beads, 0.5 * shares, rtol=1e-12, atol=0)
    dihedral_map = TopologyPrior([1, 2, 3], dihedral_maps=[QUADS], n_dihedral_terms=2)
    dihedral_map.terms[0].load_state_dict(_known_terms()[3].state_dict())
    beads = dihedral_map.predict(z, flat, batch, forces=False).atom_energies.view(3, 5)
    torch.testing.assert_close(beads, beads[:, :1].expand(3, 5))  # five distinct beads, a fifth each

    with pytest.raises(ValueError, match="at least 5 beads"):
        prior.predict(z[:14], flat[:14], batch[:14])
    with pytest.raises(ValueError, match="at least one term"):
        TopologyPrior([1, 2, 3])


def test_geometry_of_a_known_structure_and_its_periodic_images() -> None:
    pos = torch.tensor(
        [[[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, 1.0]]], dtype=torch.float64
    )
    assert float(angles(pos, torch.tensor([[0, 1, 2]]))) == pytest.approx(math.pi / 2)
    assert float(dihedrals(pos, torch.tensor([[0, 1, 2, 3]]))) == pytest.approx(-math.pi / 2)
    # wrapped into a triclinic cell: the minimum images give back the same geometry
    cell = torch.tensor([[[4.0, 0.0, 0.0], [1.0, 4.5, 0.0], [0.5, -0.5, 5.0]]], dtype=torch.float64)
    wrapped = pos.clone()
    wrapped[0, 0] += cell[0, 0]
    wrapped[0, 3] -= cell[0, 1] - cell[0, 2]
    pbc = torch.ones(1, 3, dtype=torch.bool)
    assert float(angles(wrapped, torch.tensor([[0, 1, 2]]), cell, pbc)) == pytest.approx(math.pi / 2)
    assert float(dihedrals(wrapped, torch.tensor([[0, 1, 2, 3]]), cell, pbc)) == pytest.approx(-math.pi / 2)
    assert float(distances(wrapped, torch.tensor([[1, 0]]), cell, pbc)) == pytest.approx(1.0)
    assert float(distances(wrapped, torch.tensor([[1, 0]]))) == pytest.approx(5.0)
    # bead 3 was moved by −b + c: with b not periodic it keeps no image
    assert float(distances(wrapped, torch.tensor([[2, 3]]), cell, pbc)) == pytest.approx(1.0)
    open_b = torch.tensor([[True, False, True]])
    assert float(distances(wrapped, torch.tensor([[2, 3]]), cell, open_b)) > 4.0


def test_topology_prior_on_a_molecule_wrapped_across_the_boundary() -> None:
    """Energies, forces and fits of wrapped periodic frames equal those of the whole molecules."""
    pos = _ala2(400)
    cell = np.array([[9.0, 0.0, 0.0], [1.5, 8.5, 0.0], [-1.0, 0.5, 9.5]])
    fractional = np.linalg.solve(cell.T, pos.reshape(-1, 3).T).T
    wrapped = (fractional - np.floor(fractional)) @ cell  # every bead inside the cell
    wrapped = wrapped.reshape(pos.shape)
    assert not np.allclose(wrapped, pos)
    prior = _known_prior()
    z, whole, batch = _flat(pos[:4])
    _, inside, _ = _flat(wrapped[:4])
    cells, pbc = torch.as_tensor(cell).expand(4, 3, 3), torch.ones(4, 3, dtype=torch.bool)
    molecular, periodic = prior.predict(z, whole, batch), prior.predict(z, inside, batch, cell=cells, pbc=pbc)
    torch.testing.assert_close(periodic.energy, molecular.energy, rtol=1e-10, atol=0)
    torch.testing.assert_close(periodic.forces, molecular.forces, rtol=1e-8, atol=1e-10)
    assert prior.supports("periodic") and prior.supports("stress")
    # the stress is the strain derivative of the energy of the wrapped frames
    stress = prior.predict(z, inside, batch, cell=cells, pbc=pbc, stress=True).stress
    step, volume = 1e-6, abs(np.linalg.det(cell))
    for a, b in [(0, 0), (1, 2)]:
        strain = torch.zeros(3, 3, dtype=torch.float64)
        strain[a, b] = strain[b, a] = step if a == b else step / 2
        energies = []
        for sign in (1.0, -1.0):
            deformation = torch.eye(3, dtype=torch.float64) + sign * strain
            moved = prior.predict(
                z, inside @ deformation, batch, cell=cells @ deformation, pbc=pbc, forces=False
            )
            energies.append(moved.energy.detach().squeeze(-1))
        derivative = (energies[0] - energies[1]) / (2 * step * volume)
        torch.testing.assert_close(stress[:, a, b], derivative, rtol=1e-5, atol=1e-9)

    topology = dict(
        bonds=[[0, 1], [1, 2]],
        angles=[[0, 1, 2]],
        dihedral_maps=[QUADS],
        repulsion_pairs=[[0, 4]],
        temperature=300.0,
    )
    from_whole, from_wrapped = TopologyPrior([1, 2, 3], **topology), TopologyPrior([1, 2, 3], **topology)
    from_whole.pre_fit(_dataset(pos))
    from_wrapped.pre_fit(_dataset(wrapped, cell=cell))
    for (name, fitted), (_, expected) in zip(
        from_wrapped.state_dict().items(), from_whole.state_dict().items(), strict=True
    ):
        torch.testing.assert_close(fitted, expected, rtol=1e-5, atol=1e-6, msg=name)


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
    with pytest.raises(ValueError, match="does not fluctuate"):
        HarmonicBonds.fit(np.repeat(pos[:1], 5, axis=0), [[0, 1]], thermal_energy)


def test_dihedral_and_repulsion_fits_on_alanine_dipeptide() -> None:
    pos = _ala2()
    thermal_energy = 0.596
    fitted = FourierDihedrals.fit(pos, QUADS, thermal_energy, n_terms=4)
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


@pytest.mark.parametrize(
    ("units", "k_boltzmann"), [(KCAL, 1.987204259e-3), (Units("Å", "eV"), 8.617333262e-5)]
)
def test_topology_prior_fits_equal_direct_fits_at_the_data_temperature(
    units: Units, k_boltzmann: float
) -> None:
    """``pre_fit`` holds exactly the parameters of direct fits at ``kT`` of the data's energy unit
    (every coefficient its own, none aliased to another)."""
    pos = _ala2()
    prior = TopologyPrior(
        [1, 2, 3],
        bonds=[[0, 1], [1, 2]],
        angles=[[0, 1, 2]],
        dihedrals=QUADS,
        dihedral_maps=[QUADS],
        repulsion_pairs=[[0, 4]],
        temperature=350.0,
    )
    prior.pre_fit(_dataset(pos, units))
    thermal_energy = boltzmann_constant(units.energy) * 350.0
    assert thermal_energy == pytest.approx(k_boltzmann * 350.0, rel=1e-8)
    frames = torch.as_tensor(pos)
    direct = [
        HarmonicBonds.fit(frames, [[0, 1], [1, 2]], thermal_energy),
        HarmonicAngles.fit(frames, [[0, 1, 2]], thermal_energy),
        FourierDihedrals.fit(frames, QUADS, thermal_energy, n_terms=3),
        FourierDihedralMaps.fit(frames, [QUADS], thermal_energy, n_terms=3),
        Repulsion.fit(frames, [[0, 4]], thermal_energy),
    ]
    for term, reference in zip(prior.terms, direct, strict=True):
        for (name, value), (_, expected) in zip(term.named_buffers(), reference.named_buffers(), strict=True):
            assert torch.allclose(value, expected, rtol=1e-9, atol=1e-12), (type(term).__name__, name)
    buffers = [b.data_ptr() for term in prior.terms for b in term.buffers()]
    assert len(set(buffers)) == len(buffers)
    assert float(prior.terms[-1].epsilon) == pytest.approx(k_boltzmann * 350.0, rel=1e-8)


def test_dihedral_map_fit_on_alanine_dipeptide() -> None:
    """The (φ, ψ) map is lowest in the densest histogram bin and high where nothing was sampled;
    a map whose only coefficients are those of one angle is that angle's Fourier series."""
    pos = _ala2()
    thermal_energy = 0.596
    fitted = FourierDihedralMaps.fit(pos, [QUADS], thermal_energy, n_terms=4, n_bins=36)
    phi_psi = dihedrals(torch.as_tensor(pos), torch.tensor(QUADS)).numpy()
    counts, edges, _ = np.histogram2d(*phi_psi.T, bins=36, range=[(-math.pi, math.pi)] * 2)
    centers = torch.as_tensor(0.5 * (edges[1:] + edges[:-1]))
    grid = torch.stack(torch.meshgrid(centers, centers, indexing="ij"), -1).reshape(-1, 2)
    energies = _map_energy_on_grid(fitted, grid)
    assert np.abs(grid[int(np.argmin(energies))] - grid[int(np.argmax(counts))]).max() < 0.6
    assert np.median(energies[counts.ravel() == 0]) - energies.min() > 4 * thermal_energy

    one_angle = FourierDihedrals(QUADS[:1], [[0.5, -0.2, 0.1]], [[0.3, 0.2, -0.4]])
    coefficients = torch.zeros(1, 7, 7)
    coefficients[0, 1::2, 0], coefficients[0, 2::2, 0] = one_angle.a[0], one_angle.b[0]
    as_map = FourierDihedralMaps([QUADS], coefficients)
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


def fitted_cg_model(n_frames: int = 500) -> SumPotential:
    """Alanine dipeptide priors fitted on ``n_frames`` frames plus a small HIP-NN-TS, in kcal/mol."""
    model = SumPotential(
        [1, 2, 3],
        [
            TopologyPrior(
                [1, 2, 3],
                bonds=[[0, 1], [1, 2], [2, 3], [3, 4]],
                angles=[[0, 1, 2], [1, 2, 3], [2, 3, 4]],
                dihedral_maps=[QUADS],
                repulsion_pairs=[[0, 4]],
                n_dihedral_terms=2,
                temperature=300.0,
            ),
            lambda species: HipNN(
                species,
                n_features=8,
                n_sensitivities=6,
                n_interaction_layers=1,
                dist_soft_max=4.5,
                dist_hard_max=5.0,
            ),
        ],
        units=KCAL,
    )
    model.pre_fit(_dataset(_ala2(n_frames)))
    return model


def test_prior_plus_network_forces_are_minus_the_energy_gradient() -> None:
    torch.manual_seed(0)
    model = fitted_cg_model().double()
    z, pos, batch = _flat(_ala2(3))
    network, priors = model.term(HipNN), model.without(HipNN)
    total = model.predict(z, pos, batch)
    parts = network.predict(z, pos, batch).energy + priors.predict(z, pos, batch).energy
    torch.testing.assert_close(total.energy, parts, rtol=1e-12, atol=1e-12)
    assert (
        float(priors.predict(z, pos, batch, forces=False).energy.abs().min()) > 0.1
    )  # the fitted priors act
    assert_forces_are_minus_gradient(model, z, pos, batch, [(0, 0), (3, 2), (7, 1), (14, 2)])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_saved_cg_model_loads_with_identical_predictions(tmp_path: Path, dtype: torch.dtype) -> None:
    torch.manual_seed(1)
    model = fitted_cg_model().to(dtype)
    loaded = load_potential(save_potential(model, tmp_path / "cg.pt"))
    assert isinstance(loaded, SumPotential) and loaded.units == KCAL
    assert [type(t) for t in loaded.terms] == [TopologyPrior, HipNN]
    z, pos, batch = _flat(_ala2(4))
    for original, copy in ((model, loaded), (model.without(HipNN), loaded.without(HipNN))):
        expected, got = original.predict(z, pos, batch), copy.predict(z, pos, batch)
        assert torch.equal(got.energy, expected.energy) and torch.equal(got.forces, expected.forces)
    fitted = model.term(TopologyPrior).terms[0].k
    assert float(fitted.min()) > 10.0  # fitted constants, not the placeholders
    torch.testing.assert_close(loaded.term(TopologyPrior).terms[0].k, fitted.to(loaded.dtype), rtol=0, atol=0)
