"""The :class:`Potential` contract and the potentials built on it alone: sums, ensembles,
reference energies, PyG's models, saving and loading."""

from pyg_hipts.potentials.base import PROPERTIES, Potential, PotentialOutput
from pyg_hipts.potentials.ensemble import SPREADS, Ensemble
from pyg_hipts.potentials.io import (
    TRUSTED_PACKAGES,
    CheckpointError,
    build_potential,
    load_potential,
    save_potential,
)
from pyg_hipts.potentials.pyg import PygPotential, build_network
from pyg_hipts.potentials.reference import ReferenceEnergies
from pyg_hipts.potentials.structures import Structures
from pyg_hipts.potentials.sum import PotentialFactory, SumPotential

__all__ = [
    "PROPERTIES",
    "SPREADS",
    "TRUSTED_PACKAGES",
    "CheckpointError",
    "Ensemble",
    "Potential",
    "PotentialFactory",
    "PotentialOutput",
    "PygPotential",
    "ReferenceEnergies",
    "Structures",
    "SumPotential",
    "build_network",
    "build_potential",
    "load_potential",
    "save_potential",
]
