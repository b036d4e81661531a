"""Langevin simulation of a trained model (many replicas at once) in physical units."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from pyg_hipts.cg.langevin import BAOAB, Trajectory, boltzmann_constant, time_unit_in_fs


def model_forces(
    model: nn.Module, z: Tensor, cell: Tensor | None = None, pbc: Tensor | None = None
) -> Callable[[Tensor], Tensor]:
    """``x [R, n, 3] -> F [R, n, 3]`` of ``model`` for ``R`` replicas of the structure ``z [n]``
    (``cell [3, 3]`` and ``pbc [3]`` for a periodic one)."""

    def forces(x: Tensor) -> Tensor:
        replicas, n = x.shape[:2]
        batch = torch.arange(replicas, device=x.device).repeat_interleave(n)
        periodic = {}
        if cell is not None:
            periodic = {"cell": cell.expand(replicas, 3, 3), "pbc": pbc.expand(replicas, 3)}
        out = model.predict(z.repeat(replicas), x.reshape(-1, 3), batch, forces=True, **periodic)
        return out.forces.detach().view(replicas, n, 3)

    return forces


def run_langevin(
    model: nn.Module,
    z: Tensor,
    start: Tensor,
    masses: Tensor,
    *,
    temperature: float,
    energy_unit: str,
    timestep_fs: float,
    friction_per_ps: float,
    n_steps: int,
    save_every: int = 10,
    cell: Tensor | None = None,
    pbc: Tensor | None = None,
    seed: int = 0,
) -> Trajectory:
    """BAOAB dynamics of ``start [R, n, 3]`` at ``temperature`` (K) with the model's forces.

    The time step is given in fs and the friction in 1/ps, converted to the model's time unit
    (:func:`time_unit_in_fs`); lengths and energies are the model's, masses in amu.
    """
    unit_fs = time_unit_in_fs(energy_unit)
    integrator = BAOAB(
        model_forces(model, z, cell, pbc),
        masses,
        timestep=timestep_fs / unit_fs,
        friction=friction_per_ps * unit_fs / 1000.0,
        thermal_energy=boltzmann_constant(energy_unit) * temperature,
        seed=seed,
    )
    return integrator.run(start, n_steps, save_every)
