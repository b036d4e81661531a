"""Coarse-grained force fields: mapping all-atom data to beads, and priors as potentials.

A coarse-grained model is a sum of potentials, e.g.
``SumPotential(species, [TopologyPrior(...), PairRepulsion(...), HipNN(...)])``, trained on the
mapped forces; ``model.without(HipNN)`` is the priors alone. Its dynamics: :mod:`pyg_hipts.md`;
structural analysis of trajectories: :mod:`pyg_hipts.cg.analysis`.
"""

from pyg_hipts.cg.mapping import Bead, Mapping, atom_labels, mapping_from_spec, unwrap_group
from pyg_hipts.cg.pair_priors import PairRepulsion, closest_approach
from pyg_hipts.cg.priors import (
    FourierDihedralMaps,
    FourierDihedrals,
    HarmonicAngles,
    HarmonicBonds,
    PriorTerm,
    Repulsion,
    angles,
    dihedrals,
    displacements,
    distances,
)
from pyg_hipts.cg.topology import TopologyPrior

__all__ = [
    "Bead",
    "FourierDihedralMaps",
    "FourierDihedrals",
    "HarmonicAngles",
    "HarmonicBonds",
    "Mapping",
    "PairRepulsion",
    "PriorTerm",
    "Repulsion",
    "TopologyPrior",
    "angles",
    "atom_labels",
    "closest_approach",
    "dihedrals",
    "displacements",
    "distances",
    "mapping_from_spec",
    "unwrap_group",
]
