"""Prior energies of coarse-grained models and their Boltzmann-inversion fits.

All priors act on structures of one topology, ``pos [B, n, 3]``, and return ``[B]``:

- bonds ``(i, j)``:           ``U = Σ k/2 (r_ij − r₀)²``
- angles ``(i, j, k)`` at j:  ``U = Σ k/2 (θ_ijk − θ₀)²``
- dihedrals ``(i, j, k, l)``: ``U = Σ_m a_m cos(mφ) + b_m sin(mφ)``, ``m = 1..M``
- repulsion ``(i, j)``:       ``U = Σ ε (σ/r_ij)^p``

Boltzmann inversion at the thermal energy ``kT`` (argument ``thermal_energy``) from mapped
samples:

- a harmonic term takes the mean ``x₀`` and variance ``s²`` of its coordinate and sets
  ``k = kT / s²`` (the Boltzmann distribution of ``k/2 (x − x₀)²`` is a Gaussian of variance
  ``kT/k``);
- a dihedral term fits its Fourier series by least squares to the free energy ``−kT ln p(φ)``
  of a histogram with half a count added to every bin, so that angles never sampled get a high
  energy instead of whatever the series extrapolates to;
- a repulsion takes ``σ`` as the smallest sampled distance of each pair and ``ε = kT``, so
  closer approaches cost more than the thermal energy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

PSEUDO_COUNT = 0.5
"""Added to every histogram bin of a dihedral fit."""


def _index(tuples: Sequence[Sequence[int]], width: int) -> Tensor:
    index = torch.as_tensor(np.asarray(tuples, dtype=np.int64).reshape(-1, width))
    if index.numel() == 0:
        raise ValueError(f"no {width}-tuples of beads given")
    return index


def distances(pos: Tensor, pairs: Tensor) -> Tensor:
    """``[B, P]`` distances of bead pairs ``[P, 2]`` in ``pos [B, n, 3]``."""
    return (pos[:, pairs[:, 1]] - pos[:, pairs[:, 0]]).norm(dim=-1)


def angles(pos: Tensor, triples: Tensor) -> Tensor:
    """``[B, T]`` angles (radians) at the middle bead of ``triples [T, 3]``."""
    first = pos[:, triples[:, 0]] - pos[:, triples[:, 1]]
    second = pos[:, triples[:, 2]] - pos[:, triples[:, 1]]
    cosine = (first * second).sum(-1) / (first.norm(dim=-1) * second.norm(dim=-1))
    return torch.acos(cosine.clamp(-1.0 + 1e-7, 1.0 - 1e-7))


def dihedrals(pos: Tensor, quads: Tensor) -> Tensor:
    """``[B, Q]`` dihedral angles in ``(−π, π]`` of ``quads [Q, 4]`` (IUPAC sign convention)."""
    b0 = pos[:, quads[:, 1]] - pos[:, quads[:, 0]]
    b1 = pos[:, quads[:, 2]] - pos[:, quads[:, 1]]
    b2 = pos[:, quads[:, 3]] - pos[:, quads[:, 2]]
    n1, n2 = torch.cross(b0, b1, dim=-1), torch.cross(b1, b2, dim=-1)
    sine = (torch.cross(n1, n2, dim=-1) * b1).sum(-1) / b1.norm(dim=-1)
    return torch.atan2(sine, (n1 * n2).sum(-1))


class HarmonicBonds(nn.Module):
    """``U = Σ k/2 (r − r₀)²`` over bead pairs."""

    def __init__(self, pairs: Sequence[Sequence[int]], k: Sequence[float], r0: Sequence[float]):
        super().__init__()
        self.register_buffer("index", _index(pairs, 2))
        self.register_buffer("k", torch.as_tensor(np.asarray(k, dtype=np.float64)))
        self.register_buffer("center", torch.as_tensor(np.asarray(r0, dtype=np.float64)))

    coordinate = staticmethod(distances)

    def forward(self, pos: Tensor) -> Tensor:
        x = self.coordinate(pos, self.index)
        return (0.5 * self.k.to(x.dtype) * (x - self.center.to(x.dtype)) ** 2).sum(-1)

    @classmethod
    def fit(cls, pos: Tensor, tuples: Sequence[Sequence[int]], thermal_energy: float):
        """Boltzmann inversion from samples ``pos [F, n, 3]``: ``x₀ = mean``, ``k = kT / var``."""
        index = _index(tuples, 2 if cls is HarmonicBonds else 3)
        x = cls.coordinate(torch.as_tensor(pos, dtype=torch.float64), index)
        variance = x.var(0, correction=0)
        if bool((variance <= 0).any()):
            raise ValueError("a coordinate does not fluctuate in the samples; its constant is undefined")
        return cls(index.tolist(), (thermal_energy / variance).tolist(), x.mean(0).tolist())


class HarmonicAngles(HarmonicBonds):
    """``U = Σ k/2 (θ − θ₀)²`` over bead triples (angle at the middle bead, radians)."""

    def __init__(self, triples: Sequence[Sequence[int]], k: Sequence[float], theta0: Sequence[float]):
        nn.Module.__init__(self)
        self.register_buffer("index", _index(triples, 3))
        self.register_buffer("k", torch.as_tensor(np.asarray(k, dtype=np.float64)))
        self.register_buffer("center", torch.as_tensor(np.asarray(theta0, dtype=np.float64)))

    coordinate = staticmethod(angles)


class FourierDihedrals(nn.Module):
    """``U = Σ_q Σ_m a_qm cos(m φ_q) + b_qm sin(m φ_q)`` over bead quadruples.

    Args:
        quads: ``[Q, 4]`` bead indices. cos_coefficients, sin_coefficients: ``[Q, M]``.
    """

    def __init__(self, quads: Sequence[Sequence[int]], cos_coefficients, sin_coefficients):
        super().__init__()
        self.register_buffer("index", _index(quads, 4))
        self.register_buffer("a", torch.as_tensor(np.asarray(cos_coefficients, dtype=np.float64)))
        self.register_buffer("b", torch.as_tensor(np.asarray(sin_coefficients, dtype=np.float64)))
        if self.a.shape != self.b.shape or self.a.shape[0] != self.index.shape[0]:
            raise ValueError("coefficients must be [n_dihedrals, n_terms], the same for cos and sin")

    def forward(self, pos: Tensor) -> Tensor:
        phi = dihedrals(pos, self.index).unsqueeze(-1)
        m = torch.arange(1, self.a.shape[1] + 1, dtype=phi.dtype, device=phi.device)
        terms = self.a.to(phi.dtype) * torch.cos(m * phi) + self.b.to(phi.dtype) * torch.sin(m * phi)
        return terms.sum((-1, -2))

    @classmethod
    def fit(
        cls, pos, quads: Sequence[Sequence[int]], thermal_energy: float, n_terms: int = 3, n_bins: int = 72
    ):
        """Least-squares Fourier fit to ``−kT ln p(φ)`` of each dihedral's histogram (plus half a
        count per bin; the constant term is fitted and dropped)."""
        index = _index(quads, 4)
        phi = dihedrals(torch.as_tensor(pos, dtype=torch.float64), index).numpy()
        edges = np.linspace(-np.pi, np.pi, n_bins + 1)
        centers = 0.5 * (edges[1:] + edges[:-1])
        m = np.arange(1, n_terms + 1)
        a, b = [], []
        for column in phi.T:
            counts = np.histogram(column, bins=edges)[0] + PSEUDO_COUNT
            free_energy = -thermal_energy * np.log(counts / counts.sum())
            basis = np.column_stack(
                [np.ones(n_bins), np.cos(np.outer(centers, m)), np.sin(np.outer(centers, m))]
            )
            solution, *_ = np.linalg.lstsq(basis, free_energy, rcond=None)
            a.append(solution[1 : n_terms + 1])
            b.append(solution[n_terms + 1 :])
        return cls(index.tolist(), a, b)


class Repulsion(nn.Module):
    """``U = Σ ε (σ/r)^p`` over bead pairs (``σ [P]``)."""

    def __init__(
        self, pairs: Sequence[Sequence[int]], sigma: Sequence[float], epsilon: float, power: int = 6
    ):
        super().__init__()
        self.register_buffer("index", _index(pairs, 2))
        self.register_buffer("sigma", torch.as_tensor(np.asarray(sigma, dtype=np.float64)))
        self.register_buffer("epsilon", torch.tensor(float(epsilon), dtype=torch.float64))
        self.power = int(power)

    def forward(self, pos: Tensor) -> Tensor:
        r = distances(pos, self.index)
        return (self.epsilon.to(r.dtype) * (self.sigma.to(r.dtype) / r) ** self.power).sum(-1)

    @classmethod
    def fit(cls, pos, pairs: Sequence[Sequence[int]], thermal_energy: float, power: int = 6):
        """``σ`` = each pair's smallest sampled distance, ``ε = kT``."""
        index = _index(pairs, 2)
        r = distances(torch.as_tensor(pos, dtype=torch.float64), index)
        return cls(index.tolist(), r.min(0).values.tolist(), thermal_energy, power)


class PriorEnergy(nn.Module):
    """The sum of prior terms for structures of ``n_beads`` beads each, on flat batches.

    ``forward(pos [N, 3], n_structures) -> [B, 1]`` with ``N = B · n_beads``.
    """

    def __init__(self, terms: Sequence[nn.Module], n_beads: int):
        super().__init__()
        self.terms = nn.ModuleList(terms)
        self.n_beads = n_beads

    def forward(self, pos: Tensor, n_structures: int) -> Tensor:
        if pos.shape[0] != n_structures * self.n_beads:
            raise ValueError(
                f"priors are for structures of {self.n_beads} beads; "
                f"got {pos.shape[0]} beads in {n_structures}"
            )
        stacked = pos.view(n_structures, self.n_beads, 3)
        energy = sum(term(stacked) for term in self.terms)
        return energy.unsqueeze(-1)
