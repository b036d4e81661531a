"""Ensemble workflows: members trained by seed (``pyg-hipts ensemble``) and their mean forces and
per-atom energies as teacher labels (``pyg-hipts label``). The ensemble itself is the potential
:class:`pyg_hipts.potentials.ensemble.Ensemble`."""

from pyg_hipts.ensemble.labels import ensemble_labels, load_ensemble
from pyg_hipts.ensemble.train import train_ensemble

__all__ = ["ensemble_labels", "load_ensemble", "train_ensemble"]
