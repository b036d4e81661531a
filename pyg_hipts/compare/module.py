"""Train PyG's atomistic models with the same losses, metrics, data and CLI as HIP-NN."""

from __future__ import annotations

from typing import Any

from torch import nn

from pyg_hipts.compare.potential import PygPotential, build_network
from pyg_hipts.train.base import EnergyForceModule


class PygPotentialModule(EnergyForceModule):
    """Fits a PyG model given by ``class_path`` and ``init_args``, e.g. in YAML::

        model:
          class_path: pyg_hipts.compare.PygPotentialModule
          init_args:
            network:
              class_path: torch_geometric.nn.models.SchNet
              init_args: {hidden_channels: 128, cutoff: 5.0}

    Args:
        network: ``{"class_path": ..., "init_args": {...}}`` of a model with one output per
            structure; built when the species are known. Graphs come from
            :mod:`pyg_hipts.compare.graphs`.
        species, training_options: those of :class:`EnergyForceModule`
            (``hierarchicality_weight`` must stay 0: no energy hierarchy).
    """

    def __init__(
        self, network: dict[str, Any], species: list[int] | None = None, **training_options: Any
    ) -> None:
        if training_options.get("hierarchicality_weight"):
            raise ValueError("PyG models have no energy hierarchy: hierarchicality_weight must be 0")
        super().__init__(species=species, **training_options)
        build_network(network)  # fail early on a bad specification
        if species is not None:
            self.build_model(species)

    def make_model(self, species: list[int]) -> nn.Module:
        return PygPotential(build_network(self.hparams.network), species)
