"""Coarse-grained force fields: mapping all-atom data to beads, priors, Langevin dynamics."""

from pyg_hipts.cg.langevin import BAOAB, SimulationError, Trajectory, boltzmann_constant, time_unit_in_fs
from pyg_hipts.cg.mapping import Bead, Mapping, unwrap_group
from pyg_hipts.cg.model import CGPotentialModule, PriorNetwork, fit_prior_terms
from pyg_hipts.cg.pair_priors import PairRepulsion
from pyg_hipts.cg.priors import (
    FourierDihedralMaps,
    FourierDihedrals,
    HarmonicAngles,
    HarmonicBonds,
    PriorEnergy,
    Repulsion,
    angles,
    dihedrals,
    distances,
)
from pyg_hipts.cg.simulate import closest_pairs, model_forces, run_langevin

__all__ = [
    "BAOAB",
    "Bead",
    "CGPotentialModule",
    "FourierDihedralMaps",
    "FourierDihedrals",
    "HarmonicAngles",
    "HarmonicBonds",
    "Mapping",
    "PairRepulsion",
    "PriorEnergy",
    "PriorNetwork",
    "Repulsion",
    "SimulationError",
    "Trajectory",
    "angles",
    "boltzmann_constant",
    "closest_pairs",
    "dihedrals",
    "distances",
    "fit_prior_terms",
    "model_forces",
    "run_langevin",
    "time_unit_in_fs",
    "unwrap_group",
]
