"""Training: the Lightning data module, the potential module, metrics, prediction writer and CLI."""

from pyg_hipts.train.base import EnergyForceModule
from pyg_hipts.train.datamodule import AtomsDataModule
from pyg_hipts.train.module import PotentialModule
from pyg_hipts.train.writer import PredictionWriter

__all__ = ["AtomsDataModule", "EnergyForceModule", "PotentialModule", "PredictionWriter"]
