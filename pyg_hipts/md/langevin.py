"""Langevin dynamics with the BAOAB splitting, for many replicas at once.

One step of length ``Δt`` with friction ``γ``, thermal energy ``kT`` and masses ``m``::

    B: v ← v + Δt/2 · F(x)/m        A: x ← x + Δt/2 · v
    O: v ← c₁ v + sqrt((1 − c₁²) kT/m) · ξ,  c₁ = exp(−γ Δt),  ξ ~ N(0, 1)
    A: x ← x + Δt/2 · v             B: v ← v + Δt/2 · F(x)/m

Units are the potential's: lengths, energies, masses in amu, and time in
``τ = sqrt(amu · length² / energy)`` (:func:`pyg_hipts.units.md_time_unit_fs`: 48.9 fs for
kcal/mol and Å, 10.2 fs for eV and Å). Positions are ``[R, n, 3]`` for ``R`` replicas of ``n``
atoms (or beads).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor


class SimulationError(RuntimeError):
    """The dynamics blew up or atoms fused; the message says at which step, replica and atom."""


@dataclass
class Trajectory:
    """Saved frames: ``positions`` and ``velocities`` ``[S, R, n, 3]``, ``steps [S]``."""

    positions: Tensor
    velocities: Tensor
    steps: Tensor


class BAOAB:
    """BAOAB Langevin integrator (see the module docstring).

    Args:
        forces: ``x [R, n, 3] -> F [R, n, 3]``.
        masses: ``[n]`` masses (amu).
        timestep, friction: ``Δt`` and ``γ`` in the potential's time unit (``τ`` and ``1/τ``).
        thermal_energy: ``kT`` in the potential's energy unit.
        max_displacement: the largest move of an atom in one step before the run is stopped as
            blown up (length unit).
        seed: of the random forces.
        closest_pair: ``x [R, n, 3] -> (distance [R], atom i [R], atom j [R])``, the closest pair
            of atoms of each replica; with ``min_distance``, the run stops when a pair comes
            closer than it (atoms or beads fusing: e.g. the smallest distance of the reference data).
        min_distance: the smallest distance allowed between two atoms (length unit).
        check_every: steps between two ``closest_pair`` checks.
    """

    def __init__(
        self,
        forces: Callable[[Tensor], Tensor],
        masses: Tensor,
        timestep: float,
        friction: float,
        thermal_energy: float,
        max_displacement: float = 1.0,
        seed: int = 0,
        closest_pair: Callable[[Tensor], tuple[Tensor, Tensor, Tensor]] | None = None,
        min_distance: float | None = None,
        check_every: int = 10,
    ):
        if timestep <= 0 or friction < 0 or thermal_energy <= 0:
            raise ValueError("need timestep > 0, friction >= 0 and thermal_energy > 0")
        self.forces, self.timestep, self.thermal_energy = forces, timestep, thermal_energy
        self.masses = torch.as_tensor(masses).reshape(1, -1, 1)
        if bool((self.masses <= 0).any()):
            raise ValueError("masses must be positive")
        self.max_displacement = max_displacement
        self.c1 = math.exp(-friction * timestep)
        self.generator = torch.Generator().manual_seed(seed)
        if (closest_pair is None) != (min_distance is None):
            raise ValueError("closest_pair and min_distance are given together or not at all")
        self.closest_pair, self.min_distance, self.check_every = closest_pair, min_distance, check_every

    def initial_velocities(self, like: Tensor) -> Tensor:
        """Maxwell–Boltzmann velocities ``[R, n, 3]`` at ``kT``."""
        masses = self.masses.to(like)
        noise = torch.randn(like.shape, generator=self.generator, dtype=like.dtype).to(like.device)
        return noise * torch.sqrt(self.thermal_energy / masses)

    def _check(self, step: int, x: Tensor, moved: Tensor, force: Tensor) -> None:
        bad = ~torch.isfinite(x).all(-1) | ~torch.isfinite(force).all(-1) | (moved > self.max_displacement)
        if bool(bad.any()):
            replica, atom = (int(i) for i in bad.nonzero()[0])
            raise SimulationError(
                f"step {step}, replica {replica}, atom {atom}: position {x[replica, atom].tolist()}, "
                f"force {force[replica, atom].tolist()}, moved {float(moved[replica, atom]):.3g} in one step "
                f"(limit {self.max_displacement}); {int(bad.sum())} atoms affected"
            )

    def _check_fusion(self, step: int, x: Tensor) -> None:
        distance, first, second = self.closest_pair(x)
        fused = distance < self.min_distance
        if bool(fused.any()):
            replica = int(fused.nonzero()[0])
            raise SimulationError(
                f"step {step}, replica {replica}: atoms {int(first[replica])} and {int(second[replica])} "
                f"are {float(distance[replica]):.3g} apart, closer than the limit {self.min_distance:.3g}; "
                f"{int(fused.sum())} replicas affected"
            )

    def kinetic_temperature_ratio(self, velocities: Tensor) -> float:
        """``<m v²> / kT`` over all replicas, beads and directions of ``velocities [R, n, 3]``: 1 at
        equipartition."""
        return float((self.masses.to(velocities) * velocities**2).mean() / self.thermal_energy)

    def run(
        self,
        pos: Tensor,
        n_steps: int,
        save_every: int = 1,
        velocities: Tensor | None = None,
        report_every: int | None = None,
    ) -> Trajectory:
        """Integrate ``n_steps`` from ``pos [R, n, 3]``; keep every ``save_every``-th frame.

        Every ``report_every`` steps (default a tenth of the run; 0: never) the kinetic
        temperature over the target is printed.
        """
        x = pos.detach().clone()
        masses = self.masses.to(x)
        v = self.initial_velocities(x) if velocities is None else velocities.detach().clone()
        dt, c1 = self.timestep, self.c1
        c2 = math.sqrt(1.0 - c1 * c1)
        force = self.forces(x).detach()
        saved_x, saved_v, saved_steps = [x.clone()], [v.clone()], [0]
        report = max(n_steps // 10, 1) if report_every is None else report_every
        for step in range(1, n_steps + 1):
            start = x.clone()
            v = v + 0.5 * dt * force / masses
            x = x + 0.5 * dt * v
            noise = torch.randn(v.shape, generator=self.generator, dtype=v.dtype).to(v.device)
            v = c1 * v + c2 * torch.sqrt(self.thermal_energy / masses) * noise
            x = x + 0.5 * dt * v
            force = self.forces(x).detach()
            v = v + 0.5 * dt * force / masses
            self._check(step, x, (x - start).norm(dim=-1), force)
            if self.closest_pair is not None and step % self.check_every == 0:
                self._check_fusion(step, x)
            if step % save_every == 0:
                saved_x.append(x.clone())
                saved_v.append(v.clone())
                saved_steps.append(step)
            if report and step % report == 0:
                ratio = self.kinetic_temperature_ratio(v)
                print(f"  step {step}/{n_steps}: kinetic temperature / target {ratio:.3f}", flush=True)
        return Trajectory(torch.stack(saved_x), torch.stack(saved_v), torch.tensor(saved_steps))
