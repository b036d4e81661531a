"""Structural analysis of CG samples: radial distributions, peaks, histograms and divergences."""

from __future__ import annotations

import math

import numpy as np
import pytest


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
