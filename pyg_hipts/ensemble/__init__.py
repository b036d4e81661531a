"""Ensembles of potentials: training by seed, mean and spread predictions, teacher labels."""

from pyg_hipts.ensemble.labels import ensemble_labels
from pyg_hipts.ensemble.model import Ensemble, EnsembleOutput
from pyg_hipts.ensemble.train import train_ensemble

__all__ = ["Ensemble", "EnsembleOutput", "ensemble_labels", "train_ensemble"]
