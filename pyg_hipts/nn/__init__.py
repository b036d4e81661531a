"""Neural-network modules: sensitivities, the interaction layer, and the HIP-NN potential."""

from .energy import HierarchicalEnergies, HierarchicalEnergy
from .hippynn_weights import hippynn_state_dict, load_hippynn_weights
from .interaction import HipInteraction
from .model import HipNN
from .sensitivity import GaussianSensitivity, InverseSensitivity

__all__ = [
    "GaussianSensitivity",
    "HierarchicalEnergies",
    "HierarchicalEnergy",
    "HipInteraction",
    "HipNN",
    "InverseSensitivity",
    "hippynn_state_dict",
    "load_hippynn_weights",
]
