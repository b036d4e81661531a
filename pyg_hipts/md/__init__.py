"""Molecular dynamics of any potential: BAOAB Langevin dynamics of many replicas at once."""

from pyg_hipts.md.langevin import BAOAB, SimulationError, Trajectory
from pyg_hipts.md.simulate import closest_pairs, langevin_integrator, potential_forces, run_langevin

__all__ = [
    "BAOAB",
    "SimulationError",
    "Trajectory",
    "closest_pairs",
    "langevin_integrator",
    "potential_forces",
    "run_langevin",
]
