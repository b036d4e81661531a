"""Iterative Boltzmann inversion of one-dimensional dihedral priors (:mod:`pyg_hipts.cg.refine`)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pyg_hipts.cg import FourierDihedrals, TopologyPrior, dihedrals
from pyg_hipts.cg.refine import refine_dihedral_priors
from pyg_hipts.potentials import SumPotential
from pyg_hipts.units import Units

KT = 0.6


def _chains(angles: np.ndarray) -> torch.Tensor:
    """Four beads ``[S, 4, 3]`` whose dihedral 0-1-2-3 takes the given values (radians)."""
    first = np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.5]])
    last = np.stack([np.cos(angles), np.sin(angles), np.full_like(angles, 1.5)], axis=-1)
    chains = np.concatenate(
        [np.broadcast_to(first, (len(angles), 3, 3)), last[:, None] + [1e-3, 0, 0]], axis=1
    )
    return torch.as_tensor(chains)


def _model() -> SumPotential:
    prior = TopologyPrior([1], dihedrals=[[0, 1, 2, 3]], n_dihedral_terms=3, units=Units("Å", "kcal/mol"))
    return SumPotential([1], [prior])


def test_correction_is_the_free_energy_difference() -> None:
    generator = np.random.default_rng(0)
    reference = _chains(generator.vonmises(0.5, 2.0, 200_000))
    simulated = _chains(generator.vonmises(0.5, 1.0, 200_000))
    measured = dihedrals(reference, torch.tensor([[0, 1, 2, 3]]))[:, 0].numpy()
    offset = float(np.angle(np.mean(np.exp(1j * measured))))  # the chain's dihedral of angle 0.5
    model = _model()
    changes = refine_dihedral_priors(model, reference, simulated, KT)
    term = model.terms[0].terms[0]
    assert isinstance(term, FourierDihedrals)
    # F_ref − F_CG = −kT (2 − 1) cos(θ − μ): first harmonic only, amplitude kT, phase at the mean
    amplitude = math.hypot(float(term.a[0, 0]), float(term.b[0, 0]))
    assert amplitude == pytest.approx(KT, rel=0.03)
    assert math.atan2(-float(term.b[0, 0]), -float(term.a[0, 0])) == pytest.approx(offset, abs=0.03)
    assert float(term.a[0, 1:].abs().max()) < 0.03 and float(term.b[0, 1:].abs().max()) < 0.03
    expected_change = KT * float(np.std(np.cos(measured - offset)))  # RMS over the reference frames
    assert changes["dihedral 0-1-2-3"] == pytest.approx(expected_change, rel=0.05)


def test_a_faithful_run_changes_nothing_and_damping_scales() -> None:
    generator = np.random.default_rng(1)
    frames = _chains(generator.vonmises(-1.0, 3.0, 20_000))
    model = _model()
    assert refine_dihedral_priors(model, frames, frames, KT)["dihedral 0-1-2-3"] < 1e-9
    other = _chains(generator.vonmises(-1.0, 1.0, 20_000))
    full, half = _model(), _model()
    refine_dihedral_priors(full, frames, other, KT)
    refine_dihedral_priors(half, frames, other, KT, damping=0.5)
    torch.testing.assert_close(half.terms[0].terms[0].a, 0.5 * full.terms[0].terms[0].a)
    with pytest.raises(ValueError, match="no one-dimensional dihedral prior"):
        refine_dihedral_priors(SumPotential([1], [TopologyPrior([1], bonds=[[0, 1]])]), frames, frames, KT)
