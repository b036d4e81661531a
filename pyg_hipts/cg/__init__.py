"""Coarse-grained force fields: mapping all-atom data to beads, priors, Langevin dynamics."""

from pyg_hipts.cg.langevin import BAOAB, SimulationError, Trajectory, boltzmann_constant, time_unit_in_fs
from pyg_hipts.cg.mapping import Bead, Mapping, unwrap_group
from pyg_hipts.cg.priors import (
    FourierDihedrals,
    HarmonicAngles,
    HarmonicBonds,
    PriorEnergy,
    Repulsion,
    angles,
    dihedrals,
    distances,
)

__all__ = [
    "BAOAB",
    "Bead",
    "FourierDihedrals",
    "HarmonicAngles",
    "HarmonicBonds",
    "Mapping",
    "PriorEnergy",
    "Repulsion",
    "SimulationError",
    "Trajectory",
    "angles",
    "boltzmann_constant",
    "dihedrals",
    "distances",
    "time_unit_in_fs",
    "unwrap_group",
]
