"""Structural analysis of coarse-grained trajectories, compared with a reference.

- radial distribution function ``g(r)`` of a periodic box (minimum image, cubic or triclinic),
  and the number of close pairs per frame;
- histograms of bonds, angles and dihedrals;
- the Ramachandran free-energy surface ``F(φ, ψ) = −kT ln p(φ, ψ)`` with the populations of the
  α (``φ < 0``, ``−120° ≤ ψ < 50°``), β (``φ < 0``, ``ψ ≥ 50°`` or ``ψ < −120°``) and αL
  (``φ ≥ 0``) regions;
- the Jensen–Shannon divergence (natural log, in ``[0, ln 2]``) between two histograms.

Reference frames sampled with a bias carry weights ``w`` (:mod:`pyg_hipts.data.system`); the
histograms and populations then count each frame with its weight, and
:func:`effective_sample_size` says how many unweighted frames they are worth.
"""

from __future__ import annotations

import math

import numpy as np


def _pair_distances(positions: np.ndarray, cell: np.ndarray):
    """Minimum-image distances ``[n(n−1)/2]`` of every frame of ``positions [F, n, 3]``, one frame
    at a time."""
    cell = np.asarray(cell, dtype=np.float64)
    first, second = np.triu_indices(positions.shape[1], k=1)
    inverse = np.linalg.inv(cell)
    for frame in np.asarray(positions, dtype=np.float64):
        delta = frame[second] - frame[first]
        delta -= np.round(delta @ inverse) @ cell
        yield np.linalg.norm(delta, axis=1)


def radial_distribution(
    positions: np.ndarray,
    cell: np.ndarray,
    r_max: float,
    n_bins: int = 100,
    weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(r, g(r))`` averaged over frames ``positions [F, n, 3]`` in a fixed ``cell [3, 3]``,
    each frame with its weight (``weights [F]``) when given.

    Pairs use the minimum image, so ``r_max`` must not exceed half the cell's smallest width.
    """
    cell = np.asarray(cell, dtype=np.float64)
    volume = abs(np.linalg.det(cell))
    widths = volume / np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)
    if r_max > 0.5 * widths.min():
        raise ValueError(f"r_max {r_max} exceeds half the cell's smallest width {0.5 * widths.min():.3f}")
    n = positions.shape[1]
    edges = np.linspace(0.0, r_max, n_bins + 1)
    weights = np.ones(len(positions)) if weights is None else np.ravel(weights)
    counts = np.zeros(n_bins)
    for distances, weight in zip(_pair_distances(positions, cell), weights, strict=True):
        counts += weight * np.histogram(distances, bins=edges)[0]
    shell = 4.0 / 3.0 * math.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    ideal = weights.sum() * 0.5 * n * (n - 1) / volume * shell
    return 0.5 * (edges[1:] + edges[:-1]), counts / ideal


def close_pair_counts(positions: np.ndarray, cell: np.ndarray, distance: float) -> np.ndarray:
    """``[F]`` number of bead pairs closer than ``distance`` (minimum image) in each frame of
    ``positions [F, n, 3]``: beads fusing show as counts that grow along a run."""
    return np.array([int((d < distance).sum()) for d in _pair_distances(positions, cell)])


def first_peak(r: np.ndarray, g: np.ndarray) -> tuple[float, float]:
    """Position and height of the highest point of ``g(r)`` on an evenly spaced ``r``.

    The parabola through the highest bin and its two neighbours places the peak between bin
    centres: with spacing ``Δ`` and values ``g₋, g₀, g₊``, the vertex lies at
    ``r₀ + Δ (g₋ − g₊) / (2 (g₋ − 2g₀ + g₊))`` with height ``g₀ − (g₋ − g₊)² / (8 (g₋ − 2g₀ + g₊))``.
    At either end of ``r`` the bin itself is returned.
    """
    index = int(np.argmax(g))
    if index == 0 or index == len(g) - 1:
        return float(r[index]), float(g[index])
    before, peak, after = (float(v) for v in g[index - 1 : index + 2])
    curvature = before - 2.0 * peak + after
    if curvature >= 0.0:  # a flat top: no vertex to refine
        return float(r[index]), peak
    spacing = float(r[index + 1] - r[index])
    shift = 0.5 * (before - after) / curvature
    return float(r[index]) + spacing * shift, peak - 0.25 * (before - after) * shift


def effective_sample_size(weights: np.ndarray) -> float:
    """Kish's effective number of frames of weighted samples, ``(Σ w)² / Σ w²``."""
    weights = np.ravel(weights)
    return float(weights.sum() ** 2 / np.sum(weights**2))


def shared_histograms(
    reference: np.ndarray,
    simulated: np.ndarray,
    n_bins: int = 60,
    reference_weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normalised histograms of one coordinate (a bond, angle or dihedral) in reference and
    simulated samples on the same bins, spanning both sets of values; the reference frames
    weighted by ``reference_weights`` (same shape as ``reference``) when given.

    Returns the bin centres ``[n_bins]`` and the two histograms ``[n_bins]`` each; compare them
    with :func:`jensen_shannon`.
    """
    reference, simulated = np.ravel(reference), np.ravel(simulated)
    both = np.concatenate((reference, simulated))
    edges = np.linspace(both.min(), both.max(), n_bins + 1)
    weights = None if reference_weights is None else np.ravel(reference_weights)
    histograms = [
        np.histogram(values, bins=edges, weights=w)[0]
        for values, w in ((reference, weights), (simulated, None))
    ]
    return (
        0.5 * (edges[1:] + edges[:-1]),
        histograms[0] / histograms[0].sum(),
        histograms[1] / histograms[1].sum(),
    )


def ramachandran(
    phi: np.ndarray, psi: np.ndarray, n_bins: int = 36, weights: np.ndarray | None = None
) -> np.ndarray:
    """Normalised 2D histogram ``[n_bins, n_bins]`` of (φ, ψ) in radians over ``[−π, π)²``,
    each frame counted with its weight (``weights`` shaped like ``phi``) when given."""
    edges = np.linspace(-math.pi, math.pi, n_bins + 1)
    weights = None if weights is None else np.ravel(weights)
    counts = np.histogram2d(np.ravel(phi), np.ravel(psi), bins=[edges, edges], weights=weights)[0]
    return counts / counts.sum()


def free_energy(probability: np.ndarray, thermal_energy: float) -> np.ndarray:
    """``−kT ln p`` shifted to a zero minimum; empty bins are ``inf``."""
    with np.errstate(divide="ignore"):
        energy = -thermal_energy * np.log(probability)
    return energy - energy[np.isfinite(energy)].min()


def state_populations(
    phi: np.ndarray, psi: np.ndarray, weights: np.ndarray | None = None
) -> dict[str, float]:
    """Fractions of frames (of their total weight, with ``weights`` shaped like ``phi``) in the
    α, β and αL regions (see the module docstring)."""
    phi, psi = np.degrees(np.ravel(phi)), np.degrees(np.ravel(psi))
    weights = np.ones_like(phi) if weights is None else np.ravel(weights)
    left = phi < 0
    alpha = left & (psi >= -120) & (psi < 50)
    beta = left & ~((psi >= -120) & (psi < 50))
    total = weights.sum()
    return {
        "alpha": float(weights[alpha].sum() / total),
        "beta": float(weights[beta].sum() / total),
        "alpha_L": float(weights[~left].sum() / total),
    }


def jensen_shannon(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen–Shannon divergence of two histograms of the same bins (normalised here)."""
    p, q = np.ravel(p) / np.sum(p), np.ravel(q) / np.sum(q)
    mixture = 0.5 * (p + q)

    def kl(a: np.ndarray) -> float:
        seen = a > 0
        return float(np.sum(a[seen] * np.log(a[seen] / mixture[seen])))

    return 0.5 * kl(p) + 0.5 * kl(q)
