"""Langevin simulation of a trained model (many replicas at once) in physical units."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from pyg_hipts.cg.langevin import BAOAB, Trajectory, boltzmann_constant, time_unit_in_fs
from pyg_hipts.data.periodic import neighbour_pairs, pair_distances


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


def closest_pairs(
    within: float, cell: Tensor | None = None, pbc: Tensor | None = None
) -> Callable[[Tensor], tuple[Tensor, Tensor, Tensor]]:
    """``x [R, n, 3] -> (distance [R], i [R], j [R])``: the closest pair of beads of each
    replica among the pairs closer than ``within`` (periodic images included with ``cell [3, 3]``
    and ``pbc [3]``); ``inf`` and ``-1`` for replicas with no such pair."""

    def closest(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        replicas, n = x.shape[:2]
        pos = x.reshape(-1, 3)
        batch = torch.arange(replicas, device=x.device).repeat_interleave(n)
        periodic = (None, None) if cell is None else (cell.expand(replicas, 3, 3), pbc.expand(replicas, 3))
        edge_index, shifts, _ = neighbour_pairs(pos, batch, within, *periodic)
        r = pair_distances(pos, edge_index, shifts)
        distance = torch.full((replicas,), float("inf"), dtype=r.dtype, device=r.device)
        bead_i, bead_j = torch.full((2, replicas), -1, dtype=torch.long, device=r.device)
        if r.numel() == 0:
            return distance, bead_i, bead_j
        owner = batch[edge_index[1]]
        distance = distance.scatter_reduce(0, owner, r, reduce="amin")
        pair_ids = torch.arange(len(r), device=r.device)
        closest_ids = torch.full((replicas,), len(r), device=r.device)
        is_closest = r == distance[owner]
        closest_ids = closest_ids.scatter_reduce(0, owner[is_closest], pair_ids[is_closest], reduce="amin")
        found = closest_ids < len(r)
        bead_i[found] = edge_index[1, closest_ids[found]] % n
        bead_j[found] = edge_index[0, closest_ids[found]] % n
        return distance, bead_i, bead_j

    return closest


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
    min_distance: float | None = None,
) -> Trajectory:
    """BAOAB dynamics of ``start [R, n, 3]`` at ``temperature`` (K) with the model's forces.

    The time step is given in fs and the friction in 1/ps, converted to the model's time unit
    (:func:`time_unit_in_fs`); lengths and energies are the model's, masses in amu. With
    ``min_distance`` the run stops (:class:`SimulationError`) when two beads come closer than it
    (checked every 10 steps).
    """
    unit_fs = time_unit_in_fs(energy_unit)
    integrator = BAOAB(
        model_forces(model, z, cell, pbc),
        masses,
        timestep=timestep_fs / unit_fs,
        friction=friction_per_ps * unit_fs / 1000.0,
        thermal_energy=boltzmann_constant(energy_unit) * temperature,
        seed=seed,
        closest_pair=None if min_distance is None else closest_pairs(min_distance, cell, pbc),
        min_distance=min_distance,
    )
    return integrator.run(start, n_steps, save_every)
