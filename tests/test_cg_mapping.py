"""Coarse-grained mapping: centres of mass, summed forces, molecules unwrapped across the boundary."""

from __future__ import annotations

import numpy as np
import pytest

from pyg_hipts.cg import Mapping

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
