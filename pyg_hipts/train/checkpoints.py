"""Load a trained model from a Lightning checkpoint of any of the project's modules."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from pyg_hipts.data import Units


def load_module(path: str | Path, map_location: str | torch.device = "cpu"):
    """The :class:`~pyg_hipts.train.base.EnergyForceModule` saved in ``path``: a PyG model's
    (:class:`~pyg_hipts.compare.PygPotentialModule`) when its hyper-parameters name a
    ``network``, a coarse-grained one (:class:`~pyg_hipts.cg.CGPotentialModule`) when they name
    priors, HIP-NN's (:class:`~pyg_hipts.train.PotentialModule`) otherwise."""
    from pyg_hipts.cg.model import CGPotentialModule
    from pyg_hipts.compare.module import PygPotentialModule
    from pyg_hipts.train.module import PotentialModule

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    checkpoint = torch.load(path, map_location=map_location, weights_only=False)
    hyper_parameters = checkpoint.get("hyper_parameters", {})
    cls = PotentialModule
    if "network" in hyper_parameters:
        cls = PygPotentialModule
    elif "temperature" in hyper_parameters and "bonds" in hyper_parameters:
        cls = CGPotentialModule
    module = cls.load_from_checkpoint(path, map_location=map_location, weights_only=False)
    if module.model is None:
        raise ValueError(f"{path}: the checkpoint holds no model (species unknown)")
    return module


def load_trained_model(
    path: str | Path, map_location: str | torch.device = "cpu"
) -> tuple[nn.Module, Units | None]:
    """The evaluation weights (the EMA when the run kept one) and the units of a checkpoint."""
    module = load_module(path, map_location)
    return module.eval_model.eval(), module.units


def newest_checkpoint(folder: str | Path, pattern: str = "best*.ckpt") -> Path:
    """The most recently written checkpoint matching ``pattern`` anywhere below ``folder``."""
    found = list(Path(folder).rglob(pattern))
    if not found:
        raise FileNotFoundError(f"no checkpoint matching {pattern!r} below {folder}")
    return max(found, key=lambda path: path.stat().st_mtime)
