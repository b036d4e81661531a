"""Prior energies of coarse-grained models and their Boltzmann-inversion fits.

All priors act on structures of one topology, ``pos [B, n, 3]``, and give the energy of every
bead tuple ``[B, T]`` (:meth:`PriorTerm.energies`) or their sum ``[B]`` (calling the term):

- bonds ``(i, j)``:           ``U = Σ k/2 (r_ij − r₀)²``
- angles ``(i, j, k)`` at j:  ``U = Σ k/2 (θ_ijk − θ₀)²``
- dihedrals ``(i, j, k, l)``: ``U = Σ_m a_m cos(mφ) + b_m sin(mφ)``, ``m = 1..M``
- dihedral maps (two dihedrals ``φ, ψ``): ``U = Σ_jk c_jk g_j(φ) g_k(ψ)`` with
  ``g = (1, cos φ, sin φ, …, cos Mφ, sin Mφ)``, a two-dimensional Fourier series (like CHARMM's
  CMAP) that carries the coupling of the two angles
- repulsion ``(i, j)``:       ``U = Σ ε (σ/r_ij)^p``

In periodic structures (``cell [B, 3, 3]``, rows are lattice vectors, and ``pbc [B, 3]``) every
bead-to-bead vector is taken at its minimum image along the periodic directions,
``d − round(d cell⁻¹) cell``, so a molecule may be wrapped across the boundary. This is exact for
vectors shorter than half the cell's smallest width (bonded neighbours in any sensible box).

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

Samples drawn with a bias carry weights ``w [F]`` (``∝ exp(V/kT)``, see
:mod:`pyg_hipts.data.system`): means, variances and histograms are then weighted,
``Σ w x / Σ w``, each histogram rescaled to the effective number of samples ``(Σ w)² / Σ w²``
(equal weights: ``F``), so that the half count per bin stays small against the counts the data
can support. A repulsion's closest approach is taken over the frames of positive weight.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

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


def displacements(
    pos: Tensor, first: Tensor, second: Tensor, cell: Tensor | None = None, pbc: Tensor | None = None
) -> Tensor:
    """``[B, T, 3]`` vectors ``x_second − x_first`` of beads ``first, second [T]`` in ``pos [B, n, 3]``.

    With ``cell [B, 3, 3]`` (or ``[3, 3]`` for all) the minimum image along the directions
    ``pbc [B, 3]`` marks periodic (all when ``None``). The rounded image shifts carry no gradient,
    so the vectors stay differentiable in ``pos`` and ``cell`` (forces and stress).
    """
    vec = pos[:, second] - pos[:, first]
    if cell is None:
        return vec
    cell = cell.to(vec.dtype).reshape(-1, 3, 3).expand(vec.shape[0], 3, 3)
    fractional = torch.einsum("btc,bcd->btd", vec.detach(), torch.linalg.inv(cell.detach()))
    images = torch.round(fractional)
    if pbc is not None:
        images = images * torch.as_tensor(pbc, device=vec.device).reshape(-1, 3).to(vec.dtype).unsqueeze(1)
    return vec - torch.einsum("btk,bkc->btc", images, cell)


def distances(pos: Tensor, pairs: Tensor, cell: Tensor | None = None, pbc: Tensor | None = None) -> Tensor:
    """``[B, P]`` distances of bead pairs ``[P, 2]`` in ``pos [B, n, 3]`` (minimum image in ``cell``)."""
    return displacements(pos, pairs[:, 0], pairs[:, 1], cell, pbc).norm(dim=-1)


def angles(pos: Tensor, triples: Tensor, cell: Tensor | None = None, pbc: Tensor | None = None) -> Tensor:
    """``[B, T]`` angles (radians) at the middle bead of ``triples [T, 3]`` (minimum image in ``cell``)."""
    first = displacements(pos, triples[:, 1], triples[:, 0], cell, pbc)
    second = displacements(pos, triples[:, 1], triples[:, 2], cell, pbc)
    cosine = (first * second).sum(-1) / (first.norm(dim=-1) * second.norm(dim=-1))
    return torch.acos(cosine.clamp(-1.0 + 1e-7, 1.0 - 1e-7))


def dihedrals(pos: Tensor, quads: Tensor, cell: Tensor | None = None, pbc: Tensor | None = None) -> Tensor:
    """``[B, Q]`` dihedral angles in ``(−π, π]`` of ``quads [Q, 4]`` (IUPAC sign convention;
    minimum image in ``cell``)."""
    b0 = displacements(pos, quads[:, 0], quads[:, 1], cell, pbc)
    b1 = displacements(pos, quads[:, 1], quads[:, 2], cell, pbc)
    b2 = displacements(pos, quads[:, 2], quads[:, 3], cell, pbc)
    n1, n2 = torch.cross(b0, b1, dim=-1), torch.cross(b1, b2, dim=-1)
    sine = (torch.cross(n1, n2, dim=-1) * b1).sum(-1) / b1.norm(dim=-1)
    return torch.atan2(sine, (n1 * n2).sum(-1))


def fitting_temperature(own: float | None, dataset: Any, name: str) -> float:
    """The temperature (K) a prior is fitted at: its own, else the one its training data record
    (``dataset.system.temperature``, written by ``pyg-hipts cg map``). Neither, or two that
    differ, is an error naming the prior."""
    recorded = getattr(getattr(dataset, "system", None), "temperature", None)
    if own is None and recorded is None:
        raise ValueError(f"{name}: give a temperature, or train on a file that records one")
    if own is not None and recorded is not None and abs(own - recorded) > 1e-6:
        raise ValueError(f"{name}: the temperature is {own:g} K, but the training data record {recorded:g} K")
    return float(own if own is not None else recorded)


def fourier_basis(angle: Tensor, n_terms: int) -> Tensor:
    """``[..., 2M+1]`` values of ``(1, cos θ, sin θ, cos 2θ, sin 2θ, …, cos Mθ, sin Mθ)``."""
    m = torch.arange(1, n_terms + 1, dtype=angle.dtype, device=angle.device)
    multiples = m * angle.unsqueeze(-1)
    waves = torch.stack((torch.cos(multiples), torch.sin(multiples)), dim=-1).flatten(-2)
    return torch.cat((torch.ones_like(angle).unsqueeze(-1), waves), dim=-1)


def histogram_free_energy(
    samples: np.ndarray, n_bins: int, thermal_energy: float, weights: np.ndarray | None = None
) -> tuple[Tensor, Tensor]:
    """``−kT ln p`` on the bin centres of a histogram of angles ``samples [S, D]`` (``D = 1`` or
    2) over ``(−π, π]^D`` with :data:`PSEUDO_COUNT` added to every bin; with ``weights [S]`` the
    histogram is weighted and rescaled to the effective number of samples ``(Σ w)² / Σ w²``.

    Returns the bin centres ``[n_bins^D, D]`` and the free energies ``[n_bins^D]``.
    """
    edges = np.linspace(-np.pi, np.pi, n_bins + 1)
    if weights is not None:
        weights = np.asarray(weights, dtype=np.float64).reshape(-1)
        weights = weights * (weights.sum() / np.sum(weights**2))
    counts = np.histogramdd(samples, bins=[edges] * samples.shape[1], weights=weights)[0] + PSEUDO_COUNT
    free_energy = -thermal_energy * np.log(counts / counts.sum())
    centers = 0.5 * (edges[1:] + edges[:-1])
    grid = np.stack(np.meshgrid(*[centers] * samples.shape[1], indexing="ij"), axis=-1)
    return torch.as_tensor(grid.reshape(-1, samples.shape[1])), torch.as_tensor(free_energy.ravel())


def _constants(values) -> Tensor:
    """A float64 copy of ``values``: no two buffers share memory, nor a buffer and its argument
    (fitting copies into buffers in place)."""
    return torch.tensor(np.asarray(values, dtype=np.float64))


def _samples(values) -> Tensor | None:
    return None if values is None else torch.as_tensor(values, dtype=torch.float64)


class PriorTerm(nn.Module, ABC):
    """A prior over bead tuples ``index`` (``[T, w]``, or ``[T, 2, 4]`` for dihedral maps) with
    its parameters as float64 buffers.

    Subclasses implement :meth:`energies` and a classmethod ``fit(pos, tuples, thermal_energy,
    cell=None, pbc=None, weights=None, **options)`` returning a fitted term; :meth:`fit_options` names the
    options that :meth:`fit_in_place` passes on.
    """

    index: Tensor

    @abstractmethod
    def energies(self, pos: Tensor, cell: Tensor | None = None, pbc: Tensor | None = None) -> Tensor:
        """``[B, T]`` energy of every tuple in ``pos [B, n, 3]``."""

    def forward(self, pos: Tensor, cell: Tensor | None = None, pbc: Tensor | None = None) -> Tensor:
        """``U [B]``: the sum of :meth:`energies` over the tuples."""
        return self.energies(pos, cell, pbc).sum(-1)

    @property
    def beads(self) -> Tensor:
        """``[T, k]`` the beads of every tuple (a bead may appear twice in a dihedral map)."""
        return self.index.reshape(self.index.shape[0], -1)

    def fit_options(self) -> dict[str, Any]:
        """Options of ``fit`` that this term was built with (e.g. its number of Fourier terms)."""
        return {}

    def fit_in_place(
        self,
        pos: Tensor,
        thermal_energy: float,
        cell: Tensor | None = None,
        pbc: Tensor | None = None,
        weights: Tensor | None = None,
    ) -> None:
        """Boltzmann-invert this term on samples ``pos [F, n, 3]`` (cells ``[F, 3, 3]``, ``pbc
        [F, 3]`` for periodic ones; ``weights [F]`` for biased samples) and copy the fitted
        parameters into its buffers."""
        fitted = type(self).fit(
            pos,
            self.index.tolist(),
            thermal_energy,
            cell=cell,
            pbc=pbc,
            weights=weights,
            **self.fit_options(),
        )
        for name, buffer in fitted.named_buffers():
            getattr(self, name).copy_(buffer)


class Harmonic(PriorTerm):
    """``U = Σ k/2 (x − x₀)²`` of a coordinate ``x`` of bead ``width``-tuples."""

    width: ClassVar[int]

    def __init__(self, tuples: Sequence[Sequence[int]], k: Sequence[float], center: Sequence[float]):
        super().__init__()
        self.register_buffer("index", _index(tuples, self.width))
        self.register_buffer("k", _constants(k))
        self.register_buffer("center", _constants(center))

    @staticmethod
    @abstractmethod
    def coordinate(pos: Tensor, index: Tensor, cell: Tensor | None, pbc: Tensor | None) -> Tensor:
        """``[B, T]`` the coordinate of every tuple."""

    def energies(self, pos: Tensor, cell: Tensor | None = None, pbc: Tensor | None = None) -> Tensor:
        x = self.coordinate(pos, self.index, cell, pbc)
        return 0.5 * self.k.to(x.dtype) * (x - self.center.to(x.dtype)) ** 2

    @classmethod
    def fit(
        cls, pos, tuples: Sequence[Sequence[int]], thermal_energy: float, cell=None, pbc=None, weights=None
    ):
        """Boltzmann inversion from samples ``pos [F, n, 3]`` (``weights [F]``, default equal):
        ``x₀ = mean``, ``k = kT / var``."""
        index = _index(tuples, cls.width)
        x = cls.coordinate(_samples(pos), index, _samples(cell), pbc)
        w = torch.ones(len(x), dtype=x.dtype) if weights is None else _samples(weights).reshape(-1)
        w = (w / w.sum()).unsqueeze(-1)
        mean = (w * x).sum(0)
        variance = (w * (x - mean) ** 2).sum(0)
        if bool((variance <= 0).any()):
            raise ValueError("a coordinate does not fluctuate in the samples; its constant is undefined")
        return cls(index.tolist(), (thermal_energy / variance).tolist(), mean.tolist())


class HarmonicBonds(Harmonic):
    """``U = Σ k/2 (r − r₀)²`` over bead pairs (``center`` is ``r₀``)."""

    width = 2
    coordinate = staticmethod(distances)


class HarmonicAngles(Harmonic):
    """``U = Σ k/2 (θ − θ₀)²`` over bead triples (angle at the middle bead, radians; ``center``
    is ``θ₀``)."""

    width = 3
    coordinate = staticmethod(angles)


class FourierDihedrals(PriorTerm):
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

    def energies(self, pos: Tensor, cell: Tensor | None = None, pbc: Tensor | None = None) -> Tensor:
        basis = fourier_basis(dihedrals(pos, self.index, cell, pbc), self.a.shape[1])[..., 1:]
        coefficients = torch.stack((self.a, self.b), dim=-1).flatten(-2).to(basis.dtype)
        return (basis * coefficients).sum(-1)

    def fit_options(self) -> dict[str, Any]:
        return {"n_terms": self.a.shape[1]}

    @classmethod
    def fit(
        cls,
        pos,
        quads: Sequence[Sequence[int]],
        thermal_energy: float,
        n_terms: int = 3,
        n_bins: int = 72,
        cell=None,
        pbc=None,
        weights=None,
    ):
        """Least-squares Fourier fit to ``−kT ln p(φ)`` of each dihedral's (weighted) histogram
        (plus half a count per bin; the constant term is fitted and dropped)."""
        index = _index(quads, 4)
        phi = dihedrals(_samples(pos), index, _samples(cell), pbc).numpy()
        a, b = [], []
        for column in phi.T:
            centers, free_energy = histogram_free_energy(column[:, None], n_bins, thermal_energy, weights)
            basis = fourier_basis(centers[:, 0], n_terms)
            solution = torch.linalg.lstsq(basis, free_energy.unsqueeze(-1)).solution[1:, 0]
            a.append(solution[0::2].tolist())
            b.append(solution[1::2].tolist())
        return cls(index.tolist(), a, b)


class FourierDihedralMaps(PriorTerm):
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

    def energies(self, pos: Tensor, cell: Tensor | None = None, pbc: Tensor | None = None) -> Tensor:
        basis = fourier_basis(dihedrals(pos, self.index.view(-1, 4), cell, pbc), self.n_terms)
        basis = basis.view(*pos.shape[:-2], self.index.shape[0], 2, -1)
        first, second = basis.unbind(-2)
        return torch.einsum("...pj,pjk,...pk->...p", first, self.c.to(basis.dtype), second)

    def fit_options(self) -> dict[str, Any]:
        return {"n_terms": self.n_terms}

    @classmethod
    def fit(
        cls,
        pos,
        quad_pairs: Sequence[Sequence[Sequence[int]]],
        thermal_energy: float,
        n_terms: int = 3,
        n_bins: int = 36,
        cell=None,
        pbc=None,
        weights=None,
    ):
        """Least-squares fit to ``−kT ln p(φ, ψ)`` of each pair's (weighted) joint histogram (plus
        half a count per bin; the constant term is fitted and dropped)."""
        index = _index(quad_pairs, 8).view(-1, 2, 4)
        angles_ = dihedrals(_samples(pos), index.view(-1, 4), _samples(cell), pbc)
        coefficients = []
        for pair in angles_.view(angles_.shape[0], -1, 2).unbind(1):
            centers, free_energy = histogram_free_energy(pair.numpy(), n_bins, thermal_energy, weights)
            g_phi, g_psi = fourier_basis(centers[:, 0], n_terms), fourier_basis(centers[:, 1], n_terms)
            basis = (g_phi.unsqueeze(-1) * g_psi.unsqueeze(-2)).flatten(-2)
            solution = torch.linalg.lstsq(basis, free_energy.unsqueeze(-1)).solution[:, 0]
            solution[0] = 0.0
            coefficients.append(solution.view(2 * n_terms + 1, 2 * n_terms + 1).tolist())
        return cls(index.tolist(), coefficients)


class Repulsion(PriorTerm):
    """``U = Σ ε (σ/r)^p`` over bead pairs (``σ [P]``)."""

    def __init__(
        self, pairs: Sequence[Sequence[int]], sigma: Sequence[float], epsilon: float, power: int = 6
    ):
        super().__init__()
        self.register_buffer("index", _index(pairs, 2))
        self.register_buffer("sigma", _constants(sigma))
        self.register_buffer("epsilon", torch.tensor(float(epsilon), dtype=torch.float64))
        self.power = int(power)

    def energies(self, pos: Tensor, cell: Tensor | None = None, pbc: Tensor | None = None) -> Tensor:
        r = distances(pos, self.index, cell, pbc)
        return self.epsilon.to(r.dtype) * (self.sigma.to(r.dtype) / r) ** self.power

    def fit_options(self) -> dict[str, Any]:
        return {"power": self.power}

    @classmethod
    def fit(
        cls,
        pos,
        pairs: Sequence[Sequence[int]],
        thermal_energy: float,
        power: int = 6,
        cell=None,
        pbc=None,
        weights=None,
    ):
        """``σ`` = each pair's smallest distance over the frames (of positive weight), ``ε = kT``."""
        index = _index(pairs, 2)
        r = distances(_samples(pos), index, _samples(cell), pbc)
        if weights is not None:
            r = r[_samples(weights).reshape(-1) > 0]
        return cls(index.tolist(), r.min(0).values.tolist(), thermal_energy, power)
