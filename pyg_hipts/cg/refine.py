"""Iterative Boltzmann inversion of the one-dimensional dihedral priors of a trained model.

Force matching fixes the network's forces where the reference samples densely. The free-energy
difference between two basins is the integral of the force across the barrier between them,
where the reference has few frames and the network extrapolates; a small error there shifts
whole populations. One step of iterative Boltzmann inversion corrects each one-dimensional
dihedral prior ``U_q`` (:class:`~pyg_hipts.cg.priors.FourierDihedrals`) of the model with a
simulation of it::

    U_q(θ) ← U_q(θ) + λ (F_ref(θ) − F_CG(θ)),    F(θ) = −kT ln p(θ)

(``λ``: damping). ``F_ref`` and ``F_CG`` come from histograms with half a count per bin
(:func:`~pyg_hipts.cg.priors.histogram_free_energy`), and the difference is fitted with the
prior's Fourier basis by least squares weighted by ``p_ref + p_CG``, so that bins neither run
visits do not count. The correction uses one-dimensional marginals only: the coupling of the
dihedrals stays the network's.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from pyg_hipts.cg.priors import FourierDihedrals, dihedrals, fourier_basis, histogram_free_energy
from pyg_hipts.cg.topology import TopologyPrior
from pyg_hipts.potentials import Potential, SumPotential

N_BINS = 72


def _terms(model: Potential) -> list[FourierDihedrals]:
    """The one-dimensional dihedral terms of every topology prior in ``model``."""
    parts = model.terms if isinstance(model, SumPotential) else [model]
    return [
        term
        for part in parts
        if isinstance(part, TopologyPrior)
        for term in part.terms
        if isinstance(term, FourierDihedrals)
    ]


def dihedral_correction(
    angles_ref: np.ndarray,
    angles_cg: np.ndarray,
    thermal_energy: float,
    n_terms: int,
    reference_weights: np.ndarray | None = None,
) -> Tensor:
    """``[2M]`` Fourier coefficients ``(a_1, b_1, …, a_M, b_M)`` of ``F_ref − F_CG`` for one
    dihedral sampled as ``angles_ref [S]`` (with frame weights ``reference_weights [S]``, default
    equal) and ``angles_cg [S']`` (radians)."""
    centers, f_ref = histogram_free_energy(angles_ref[:, None], N_BINS, thermal_energy, reference_weights)
    _, f_cg = histogram_free_energy(angles_cg[:, None], N_BINS, thermal_energy)
    edges = np.linspace(-np.pi, np.pi, N_BINS + 1)
    weight = sum(
        histogram / histogram.sum()
        for histogram in (
            np.histogram(angles_ref, bins=edges, weights=reference_weights)[0],
            np.histogram(angles_cg, bins=edges)[0],
        )
    )
    root = torch.as_tensor(np.sqrt(weight)).unsqueeze(-1)
    basis = fourier_basis(centers[:, 0], n_terms)
    solution = torch.linalg.lstsq(root * basis, root * (f_ref - f_cg).unsqueeze(-1)).solution[1:, 0]
    return solution


def refine_dihedral_priors(
    model: Potential,
    reference: Tensor,
    simulated: Tensor,
    thermal_energy: float,
    damping: float = 1.0,
    reference_weights: np.ndarray | None = None,
) -> dict[str, float]:
    """One damped step (see the module docstring) on every dihedral prior of ``model``, in
    place, from frames ``reference [S, n, 3]`` (with frame weights ``reference_weights [S]``,
    default equal) and ``simulated [S', n, 3]`` of the model.

    Returns the (weighted) RMS change of each dihedral's energy over the reference frames, by
    ``"dihedral i-j-k-l"``, in the model's energy unit. A model without dihedral priors is an
    error.
    """
    terms = _terms(model)
    if not terms:
        raise ValueError(f"{type(model).__name__} has no one-dimensional dihedral prior to refine")
    changes = {}
    share = np.full(len(reference), 1.0 / len(reference)) if reference_weights is None else reference_weights
    share = torch.as_tensor(share / np.sum(share))
    for term in terms:
        angles_ref = dihedrals(reference.double(), term.index).numpy()
        angles_cg = dihedrals(simulated.double(), term.index).numpy()
        n_terms = term.a.shape[1]
        for q, quad in enumerate(term.index.tolist()):
            step = damping * dihedral_correction(
                angles_ref[:, q], angles_cg[:, q], thermal_energy, n_terms, reference_weights
            )
            term.a[q] += step[0::2].to(term.a)
            term.b[q] += step[1::2].to(term.b)
            basis = fourier_basis(torch.as_tensor(angles_ref[:, q]), n_terms)[:, 1:]
            change = basis @ step
            mean = (share * change).sum()
            changes[f"dihedral {'-'.join(map(str, quad))}"] = float(
                (share * (change - mean).square()).sum().sqrt()
            )
    return changes
