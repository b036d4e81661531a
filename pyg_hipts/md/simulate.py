"""Langevin simulation of any :class:`~pyg_hipts.potentials.Potential` (all-atom or
coarse-grained, molecular or periodic), many replicas at once, in physical units."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from pyg_hipts.data.periodic import neighbour_pairs, pair_distances
from pyg_hipts.md.langevin import BAOAB, Trajectory
from pyg_hipts.potentials import Potential
from pyg_hipts.units import Units, boltzmann_constant, md_time_unit_fs


def _replica_batch(x: Tensor) -> Tensor:
    """``[R · n]`` replica index of every atom of ``x [R, n, 3]``."""
    replicas, n = x.shape[:2]
    return torch.arange(replicas, device=x.device).repeat_interleave(n)


def _replica_cells(
    replicas: int, cell: Tensor | None, pbc: Tensor | None
) -> tuple[Tensor | None, Tensor | None]:
    """``cell [3, 3]`` and ``pbc [3]`` of one structure as ``[R, 3, 3]`` and ``[R, 3]``."""
    if (cell is None) != (pbc is None):
        raise ValueError("cell and pbc must be given together")
    if cell is None:
        return None, None
    return cell.reshape(3, 3).expand(replicas, 3, 3), pbc.reshape(3).expand(replicas, 3)


def potential_forces(
    potential: Potential, z: Tensor, cell: Tensor | None = None, pbc: Tensor | None = None
) -> Callable[[Tensor], Tensor]:
    """``x [R, n, 3] -> F [R, n, 3]`` (in the dtype of ``x``) of ``potential`` for ``R``
    replicas of the structure ``z [n]`` (``cell [3, 3]`` and ``pbc [3]`` for a periodic one)."""
    if cell is not None and not potential.supports("periodic"):
        raise ValueError(f"{type(potential).__name__} cannot simulate a periodic cell")

    def forces(x: Tensor) -> Tensor:
        replicas, n = x.shape[:2]
        cells, pbcs = _replica_cells(replicas, cell, pbc)
        out = potential.predict(z.repeat(replicas), x.reshape(-1, 3), _replica_batch(x), cell=cells, pbc=pbcs)
        return out.forces.detach().to(x.dtype).view(replicas, n, 3)

    return forces


def closest_pairs(
    within: float, cell: Tensor | None = None, pbc: Tensor | None = None
) -> Callable[[Tensor], tuple[Tensor, Tensor, Tensor]]:
    """``x [R, n, 3] -> (distance [R], i [R], j [R])``: the closest pair of atoms of each
    replica among the pairs closer than ``within`` (periodic images included with ``cell [3, 3]``
    and ``pbc [3]``); ``inf`` and ``-1`` for replicas with no such pair."""

    def closest(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        replicas, n = x.shape[:2]
        pos, batch = x.reshape(-1, 3), _replica_batch(x)
        edge_index, shifts, _ = neighbour_pairs(pos, batch, within, *_replica_cells(replicas, cell, pbc))
        r = pair_distances(pos, edge_index, shifts)
        distance = torch.full((replicas,), float("inf"), dtype=r.dtype, device=r.device)
        atom_i, atom_j = torch.full((2, replicas), -1, dtype=torch.long, device=r.device)
        if r.numel() == 0:
            return distance, atom_i, atom_j
        owner = batch[edge_index[1]]
        distance = distance.scatter_reduce(0, owner, r, reduce="amin")
        pair_ids = torch.arange(len(r), device=r.device)
        closest_ids = torch.full((replicas,), len(r), device=r.device)
        is_closest = r == distance[owner]
        closest_ids = closest_ids.scatter_reduce(0, owner[is_closest], pair_ids[is_closest], reduce="amin")
        found = closest_ids < len(r)
        atom_i[found] = edge_index[1, closest_ids[found]] % n
        atom_j[found] = edge_index[0, closest_ids[found]] % n
        return distance, atom_i, atom_j

    return closest


def langevin_integrator(
    potential: Potential,
    z: Tensor,
    masses: Tensor,
    *,
    temperature: float,
    timestep_fs: float,
    friction_per_ps: float,
    cell: Tensor | None = None,
    pbc: Tensor | None = None,
    seed: int = 0,
    min_distance: float | None = None,
    units: Units | None = None,
) -> BAOAB:
    """A :class:`~pyg_hipts.md.BAOAB` integrator of ``potential`` for replicas of ``z [n]`` at
    ``temperature`` (K).

    Lengths and energies are in ``units``, by default the potential's own (``potential.units``,
    set when it was trained); masses ``[n]`` in amu. The time step is given in fs and the friction
    in 1/ps, converted to the MD time unit ``τ`` of those units
    (:func:`~pyg_hipts.units.md_time_unit_fs`); ``kT`` is
    :func:`~pyg_hipts.units.boltzmann_constant` times ``temperature``. With ``min_distance`` the
    run stops (:class:`~pyg_hipts.md.SimulationError`) when two atoms come closer than it
    (checked every 10 steps).
    """
    units = units or potential.units
    if units is None:
        raise ValueError(
            f"the {type(potential).__name__} has no units (it was not trained on data): "
            "pass units=Units(length, energy)"
        )
    unit_fs = md_time_unit_fs(units.energy, units.length)
    return BAOAB(
        potential_forces(potential, z, cell, pbc),
        masses,
        timestep=timestep_fs / unit_fs,
        friction=friction_per_ps * unit_fs / 1000.0,
        thermal_energy=boltzmann_constant(units.energy) * temperature,
        seed=seed,
        closest_pair=None if min_distance is None else closest_pairs(min_distance, cell, pbc),
        min_distance=min_distance,
    )


def run_langevin(
    potential: Potential,
    z: Tensor,
    start: Tensor,
    masses: Tensor,
    *,
    n_steps: int,
    save_every: int = 10,
    **options: Any,
) -> Trajectory:
    """BAOAB dynamics of ``start [R, n, 3]`` for ``n_steps``, keeping every ``save_every``-th
    frame; ``options`` (temperature, time step, friction, cell, ...) are those of
    :func:`langevin_integrator`."""
    return langevin_integrator(potential, z, masses, **options).run(start, n_steps, save_every)
