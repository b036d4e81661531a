"""Prior energies of coarse-grained models and their Boltzmann-inversion fits.

All priors act on structures of one topology, ``pos [B, n, 3]``, and return ``[B]``:

- bonds ``(i, j)``:           ``U = Σ k/2 (r_ij − r₀)²``
- angles ``(i, j, k)`` at j:  ``U = Σ k/2 (θ_ijk − θ₀)²``
- dihedrals ``(i, j, k, l)``: ``U = Σ_m a_m cos(mφ) + b_m sin(mφ)``, ``m = 1..M``
- dihedral maps (two dihedrals ``φ, ψ``): ``U = Σ_jk c_jk g_j(φ) g_k(ψ)`` with
  ``g = (1, cos φ, sin φ, …, cos Mφ, sin Mφ)``, a two-dimensional Fourier series (like CHARMM's
  CMAP) that carries the coupling of the two angles
- repulsion ``(i, j)``:       ``U = Σ ε (σ/r_ij)^p``

Boltzmann inversion at the thermal energy ``kT`` (argument ``thermal_energy``) from mapped
samples:

- a harmonic term takes the mean ``x₀`` and variance ``s²`` of its coordinate and sets
  ``k = kT / s²`` (the Boltzmann distribution of ``k/2 (x − x₀)²`` is a Gaussian of variance
  ``kT/k``);
- a dihedral term fits its Fourier series by least squares to the free energy ``−kT ln p(φ)``
  of a histogram with half a count added to every bin, so that angles never sampled get a high
  energy instead of whatever the series extrapolates to; a dihedral map does the same on the
  joint histogram of its two angles;
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


def fourier_basis(angle: Tensor, n_terms: int) -> Tensor:
    """``[..., 2M+1]`` values of ``(1, cos θ, sin θ, cos 2θ, sin 2θ, …, cos Mθ, sin Mθ)``."""
    m = torch.arange(1, n_terms + 1, dtype=angle.dtype, device=angle.device)
    multiples = m * angle.unsqueeze(-1)
    waves = torch.stack((torch.cos(multiples), torch.sin(multiples)), dim=-1).flatten(-2)
    return torch.cat((torch.ones_like(angle).unsqueeze(-1), waves), dim=-1)


def histogram_free_energy(samples: np.ndarray, n_bins: int, thermal_energy: float) -> tuple[Tensor, Tensor]:
    """``−kT ln p`` on the bin centres of a histogram of angles ``samples [S, D]`` (``D = 1`` or
    2) over ``(−π, π]^D`` with :data:`PSEUDO_COUNT` added to every bin.

    Returns the bin centres ``[n_bins^D, D]`` and the free energies ``[n_bins^D]``.
    """
    edges = np.linspace(-np.pi, np.pi, n_bins + 1)
    counts = np.histogramdd(samples, bins=[edges] * samples.shape[1])[0] + PSEUDO_COUNT
    free_energy = -thermal_energy * np.log(counts / counts.sum())
    centers = 0.5 * (edges[1:] + edges[:-1])
    grid = np.stack(np.meshgrid(*[centers] * samples.shape[1], indexing="ij"), axis=-1)
    return torch.as_tensor(grid.reshape(-1, samples.shape[1])), torch.as_tensor(free_energy.ravel())


def _constants(values) -> Tensor:
    """A float64 copy of ``values``: no two buffers share memory, nor a buffer and its argument
    (fitting copies into buffers in place)."""
    return torch.tensor(np.asarray(values, dtype=np.float64))


class HarmonicBonds(nn.Module):
    """``U = Σ k/2 (r − r₀)²`` over bead pairs."""

    def __init__(self, pairs: Sequence[Sequence[int]], k: Sequence[float], r0: Sequence[float]):
        super().__init__()
        self.register_buffer("index", _index(pairs, 2))
        self.register_buffer("k", _constants(k))
        self.register_buffer("center", _constants(r0))

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
        self.register_buffer("k", _constants(k))
        self.register_buffer("center", _constants(theta0))

    coordinate = staticmethod(angles)


class FourierDihedrals(nn.Module):
    """``U = Σ_q Σ_m a_qm cos(m φ_q) + b_qm sin(m φ_q)`` over bead quadruples.

    Args:
        quads: ``[Q, 4]`` bead indices. cos_coefficients, sin_coefficients: ``[Q, M]``.
    """

    def __init__(self, quads: Sequence[Sequence[int]], cos_coefficients, sin_coefficients):
        super().__init__()
        self.register_buffer("index", _index(quads, 4))
        self.register_buffer("a", _constants(cos_coefficients))
        self.register_buffer("b", _constants(sin_coefficients))
        if self.a.shape != self.b.shape or self.a.shape[0] != self.index.shape[0]:
            raise ValueError("coefficients must be [n_dihedrals, n_terms], the same for cos and sin")

    def forward(self, pos: Tensor) -> Tensor:
        basis = fourier_basis(dihedrals(pos, self.index), self.a.shape[1])[..., 1:]
        coefficients = torch.stack((self.a, self.b), dim=-1).flatten(-2).to(basis.dtype)
        return (basis * coefficients).sum((-1, -2))

    @classmethod
    def fit(
        cls, pos, quads: Sequence[Sequence[int]], thermal_energy: float, n_terms: int = 3, n_bins: int = 72
    ):
        """Least-squares Fourier fit to ``−kT ln p(φ)`` of each dihedral's histogram (plus half a
        count per bin; the constant term is fitted and dropped)."""
        index = _index(quads, 4)
        phi = dihedrals(torch.as_tensor(pos, dtype=torch.float64), index).numpy()
        a, b = [], []
        for column in phi.T:
            centers, free_energy = histogram_free_energy(column[:, None], n_bins, thermal_energy)
            basis = fourier_basis(centers[:, 0], n_terms)
            solution = torch.linalg.lstsq(basis, free_energy.unsqueeze(-1)).solution[1:, 0]
            a.append(solution[0::2].tolist())
            b.append(solution[1::2].tolist())
        return cls(index.tolist(), a, b)


class FourierDihedralMaps(nn.Module):
    """``U = Σ_p Σ_jk c_pjk g_j(φ_p) g_k(ψ_p)`` over pairs of dihedrals ``(φ_p, ψ_p)``, with
    ``g = (1, cos θ, sin θ, …, cos Mθ, sin Mθ)``; ``c_p00`` is zero (energies are relative).

    Args:
        quad_pairs: ``[P, 2, 4]`` bead indices of the two dihedrals of each map.
        coefficients: ``[P, 2M+1, 2M+1]``.
    """

    def __init__(self, quad_pairs: Sequence[Sequence[Sequence[int]]], coefficients):
        super().__init__()
        self.register_buffer("index", _index(quad_pairs, 8).view(-1, 2, 4))
        self.register_buffer("c", _constants(coefficients))
        size = self.c.shape[-1]
        if self.c.shape != (self.index.shape[0], size, size) or size % 2 == 0:
            raise ValueError("coefficients must be [n_maps, 2M+1, 2M+1]")
        self.n_terms = (size - 1) // 2

    def forward(self, pos: Tensor) -> Tensor:
        basis = fourier_basis(dihedrals(pos, self.index.view(-1, 4)), self.n_terms)
        basis = basis.view(*pos.shape[:-2], self.index.shape[0], 2, -1)
        first, second = basis.unbind(-2)
        return torch.einsum("...pj,pjk,...pk->...", first, self.c.to(basis.dtype), second)

    @classmethod
    def fit(
        cls,
        pos,
        quad_pairs: Sequence[Sequence[Sequence[int]]],
        thermal_energy: float,
        n_terms: int = 3,
        n_bins: int = 36,
    ):
        """Least-squares fit to ``−kT ln p(φ, ψ)`` of each pair's joint histogram (plus half a
        count per bin; the constant term is fitted and dropped)."""
        index = _index(quad_pairs, 8).view(-1, 2, 4)
        angles_ = dihedrals(torch.as_tensor(pos, dtype=torch.float64), index.view(-1, 4))
        coefficients = []
        for pair in angles_.view(angles_.shape[0], -1, 2).unbind(1):
            centers, free_energy = histogram_free_energy(pair.numpy(), n_bins, thermal_energy)
            g_phi, g_psi = fourier_basis(centers[:, 0], n_terms), fourier_basis(centers[:, 1], n_terms)
            basis = (g_phi.unsqueeze(-1) * g_psi.unsqueeze(-2)).flatten(-2)
            solution = torch.linalg.lstsq(basis, free_energy.unsqueeze(-1)).solution[:, 0]
            solution[0] = 0.0
            coefficients.append(solution.view(2 * n_terms + 1, 2 * n_terms + 1).tolist())
        return cls(index.tolist(), coefficients)


class Repulsion(nn.Module):
    """``U = Σ ε (σ/r)^p`` over bead pairs (``σ [P]``)."""

    def __init__(
        self, pairs: Sequence[Sequence[int]], sigma: Sequence[float], epsilon: float, power: int = 6
    ):
        super().__init__()
        self.register_buffer("index", _index(pairs, 2))
        self.register_buffer("sigma", _constants(sigma))
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
