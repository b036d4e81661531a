"""Populations of the two halves of the Ramachandran plane by free-energy perturbation along the
mirror map (:mod:`pyg_hipts.cg.mirror`): exact for a potential odd in φ, one half for a model of
reflection-invariant features."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pyg_hipts.cg import TopologyPrior, dihedrals
from pyg_hipts.cg.mirror import mirror_energy_differences, mirror_populations
from pyg_hipts.nn import HipNN

THERMAL_ENERGY = 0.6
A, B = 0.4, 1.2  # U(φ) = A cos φ + B sin φ


def _chain(angle: np.ndarray) -> torch.Tensor:
    """``[F, 5, 3]`` five beads whose dihedral 0-1-2-3 is ``±angle`` (a rotation of bead 3 about z)."""
    pos = np.zeros((len(angle), 5, 3))
    pos[:, 0] = [1.0, 0.0, 0.0]
    pos[:, 2, 2] = 1.5
    pos[:, 3] = np.stack([np.cos(angle), np.sin(angle), np.full_like(angle, 1.5)], axis=-1)
    pos[:, 4] = pos[:, 3] + [0.0, 0.0, 1.5]
    pos[:, 4, 0] += 1.0
    return torch.as_tensor(pos)


def _boltzmann_quantiles(low: float, high: float, n: int) -> np.ndarray:
    """``n`` evenly spaced quantiles of ``exp(−U(φ)/kT)`` on ``(low, high)``."""
    grid = np.linspace(low, high, 200_001)
    density = np.exp(-(A * np.cos(grid) + B * np.sin(grid)) / THERMAL_ENERGY)
    cumulative = np.cumsum(density) / density.sum()
    return np.interp((np.arange(n) + 0.5) / n, cumulative, grid)


def test_mirror_populations_of_a_potential_odd_in_phi_are_exact() -> None:
    prior = TopologyPrior([1, 2, 3], dihedrals=[[0, 1, 2, 3]], n_dihedral_terms=1).double()
    term = prior.terms[0]
    term.a.fill_(A)
    term.b.fill_(B)
    sign = float(torch.sign(dihedrals(_chain(np.array([1.0])), torch.tensor([[0, 1, 2, 3]])))[0, 0])
    z = torch.tensor([1, 2, 3, 1, 2])
    grid = np.linspace(-math.pi, math.pi, 200_001)
    density = np.exp(-(A * np.cos(grid) + B * np.sin(grid)) / THERMAL_ENERGY)
    exact = density[grid > 0].sum() / density[grid < 0].sum()
    below = _chain(sign * _boltzmann_quantiles(-math.pi, 0.0, 4000))
    above = _chain(sign * _boltzmann_quantiles(0.0, math.pi, 4000))
    from_below = mirror_populations(prior, z, below, [0, 1, 2, 3, 4], THERMAL_ENERGY)
    assert from_below["ratio_from_below"] == pytest.approx(exact, rel=2e-3)
    assert from_below["alpha_L"] == pytest.approx(exact / (1 + exact), rel=2e-3)
    assert from_below["frames_above"] == 0 and math.isnan(from_below["ratio_from_above"])
    both = mirror_populations(prior, z, torch.cat([below, above]), [0, 1, 2, 3, 4], THERMAL_ENERGY)
    assert both["ratio_from_above"] == pytest.approx(exact, rel=2e-3)
    assert both["alpha"] + both["beta"] + both["alpha_L"] == pytest.approx(1.0)
    assert abs(math.log(exact)) > 1.0  # far from symmetric: the test can fail
    with pytest.raises(ValueError, match="no frame with φ < 0"):
        mirror_populations(prior, z, above, [0, 1, 2, 3, 4], THERMAL_ENERGY)


def test_a_reflection_invariant_network_puts_half_at_positive_phi() -> None:
    torch.manual_seed(0)
    model = HipNN(
        [1, 2, 3], n_features=8, n_sensitivities=4, dist_soft_max=3.5, dist_hard_max=4.0, l_max=2
    ).double()
    frames = _chain(np.random.default_rng(0).uniform(-math.pi, math.pi, 64)) + 0.05 * torch.randn(64, 5, 3)
    differences = mirror_energy_differences(model, torch.tensor([1, 2, 3, 1, 2]), frames, chunk=20)
    assert differences.shape == (64,) and float(differences.abs().max()) < 1e-10
    result = mirror_populations(model, torch.tensor([1, 2, 3, 1, 2]), frames, [0, 1, 2, 3, 4], THERMAL_ENERGY)
    assert result["alpha_L"] == pytest.approx(0.5, abs=1e-10)
