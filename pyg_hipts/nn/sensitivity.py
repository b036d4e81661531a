"""Distance sensitivities ``s_ν(d)`` with a smooth cosine-squared cutoff.

Every sensitivity is multiplied by ``cos²(π d / (2 r_c))`` for ``d <= r_c`` and is zero beyond,
so energies and forces are continuous when a pair crosses the cutoff.
"""

from __future__ import annotations

import abc
import math
import warnings

import torch
from torch import Tensor, nn


def cosine_cutoff(dist: Tensor, cutoff: float) -> Tensor:
    """``cos²(π d / (2 r_c)) · [d <= r_c]``, shape of ``dist``."""
    taper = torch.cos(0.5 * math.pi * dist / cutoff).square()
    return taper * (dist <= cutoff).to(dist.dtype)


class Sensitivity(nn.Module, abc.ABC):
    """Base class: ``n_sens`` trainable Gaussians with centres ``mu`` and widths ``sigma``.

    Args:
        n_sens: number of sensitivity functions ``ν``.
        dist_soft_min: distance of the innermost centre (Å or the data's length unit).
        dist_soft_max: distance of the outermost centre.
        dist_hard_max: cutoff radius ``r_c``.
    """

    def __init__(self, n_sens: int, dist_soft_min: float, dist_soft_max: float, dist_hard_max: float):
        super().__init__()
        if not 0 < dist_soft_min < dist_soft_max <= dist_hard_max:
            raise ValueError(
                "need 0 < dist_soft_min < dist_soft_max <= dist_hard_max, got "
                f"{dist_soft_min}, {dist_soft_max}, {dist_hard_max}"
            )
        self.n_sens = n_sens
        self.dist_hard_max = dist_hard_max

    def forward(self, dist: Tensor) -> Tensor:
        """``[P] -> [P, ν]``."""
        return self.gaussians(dist.unsqueeze(-1)) * cosine_cutoff(dist, self.dist_hard_max).unsqueeze(-1)

    @abc.abstractmethod
    def gaussians(self, dist: Tensor) -> Tensor:
        """Unscreened Gaussians, ``[P, 1] -> [P, ν]``."""

    @abc.abstractmethod
    def inner_edge_tensor(self) -> Tensor:
        """Distance (0-d tensor) under which every sensitivity is already past its innermost flank."""

    def innermost(self) -> tuple[Tensor, Tensor]:
        """Centre and width (0-d tensors) of the sensitivity with the smallest centre, selected on
        the device (no host synchronisation)."""
        index = torch.argmin(self.mu).reshape(1)
        return self.mu.index_select(0, index).squeeze(0), self.sigma.index_select(0, index).squeeze(0)

    def inner_edge(self) -> float:
        """:meth:`inner_edge_tensor` as a float."""
        return float(self.inner_edge_tensor())

    @torch.no_grad()
    def warn_if_too_close(self, dist: Tensor) -> None:
        """Warn, once per layer, when a pair is closer than the innermost sensitivity reaches."""
        if dist.numel() == 0 or getattr(self, "_warned_too_close", False):
            return
        closest, edge = dist.min(), self.inner_edge_tensor()
        if bool(closest < edge):  # the one host synchronisation of the check
            closest, edge = float(closest), float(edge)
            n_close = int((dist < edge).sum()) // 2
            warnings.warn(
                f"{n_close} atom pairs are closer than the sensitivity range ({closest:.3f} < {edge:.3f}); "
                "the model has no resolution there (shown once per model)",
                stacklevel=3,
            )
            self._warned_too_close = True


class InverseSensitivity(Sensitivity):
    """Gaussians in inverse distance (HIP-NN's default).

    ``s_ν(d) = exp(-½ σ_ν² (1/d - 1/μ_ν)²) · cutoff(d)``; ``1/μ`` starts evenly spaced between
    ``1/dist_soft_max`` and ``1/dist_soft_min``, ``σ = 2 · n_sens · dist_soft_min``.
    """

    def __init__(self, n_sens: int, dist_soft_min: float, dist_soft_max: float, dist_hard_max: float):
        super().__init__(n_sens, dist_soft_min, dist_soft_max, dist_hard_max)
        inverse_mu = torch.linspace(1.0 / dist_soft_max, 1.0 / dist_soft_min, n_sens)
        self.mu = nn.Parameter(1.0 / inverse_mu)
        self.sigma = nn.Parameter(torch.full((n_sens,), 2.0 * n_sens * dist_soft_min))

    def gaussians(self, dist: Tensor) -> Tensor:
        return torch.exp(-0.5 * (self.sigma * (dist.reciprocal() - self.mu.reciprocal())).square())

    def inner_edge_tensor(self) -> Tensor:
        mu, sigma = self.innermost()
        return 1.0 / (1.0 / mu - 1.0 / sigma.abs()).clamp(min=1e-12)


class GaussianSensitivity(Sensitivity):
    """Gaussians in distance: ``s_ν(d) = exp(-½ ((d - μ_ν) / w_ν)²) · cutoff(d)``.

    Centres start evenly spaced on ``[dist_soft_min, dist_soft_max]`` with widths equal to the
    spacing.
    """

    def __init__(self, n_sens: int, dist_soft_min: float, dist_soft_max: float, dist_hard_max: float):
        super().__init__(n_sens, dist_soft_min, dist_soft_max, dist_hard_max)
        self.mu = nn.Parameter(torch.linspace(dist_soft_min, dist_soft_max, n_sens))
        spacing = (dist_soft_max - dist_soft_min) / max(n_sens - 1, 1)
        self.sigma = nn.Parameter(torch.full((n_sens,), spacing))

    def gaussians(self, dist: Tensor) -> Tensor:
        return torch.exp(-0.5 * ((dist - self.mu) / self.sigma).square())

    def inner_edge_tensor(self) -> Tensor:
        mu, sigma = self.innermost()
        return mu - sigma.abs()


SENSITIVITIES: dict[str, type[Sensitivity]] = {"inverse": InverseSensitivity, "gaussian": GaussianSensitivity}


def make_sensitivity(kind: str, *args: float) -> Sensitivity:
    """Build a sensitivity by name (``"inverse"`` or ``"gaussian"``)."""
    if kind not in SENSITIVITIES:
        raise ValueError(f"unknown sensitivity_type {kind!r}; choose one of {sorted(SENSITIVITIES)}")
    return SENSITIVITIES[kind](*args)
