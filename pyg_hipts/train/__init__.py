"""Training: the Lightning data module, the potential module and its loss terms, metrics and the
prediction writer."""

from pyg_hipts.train.datamodule import AtomsDataModule
from pyg_hipts.train.losses import (
    AtomEnergyLoss,
    EnergyLoss,
    ForceLoss,
    HierarchicalityLoss,
    L2Loss,
    LossTerm,
)
from pyg_hipts.train.module import PotentialModule
from pyg_hipts.train.writer import PredictionWriter

__all__ = [
    "AtomEnergyLoss",
    "AtomsDataModule",
    "EnergyLoss",
    "ForceLoss",
    "HierarchicalityLoss",
    "L2Loss",
    "LossTerm",
    "PotentialModule",
    "PredictionWriter",
]
