"""PyG's atomistic models (SchNet, DimeNet++, ViSNet, ...) through the same training, and
side-by-side comparison reports."""

from pyg_hipts.compare.module import PygPotentialModule
from pyg_hipts.compare.potential import PygPotential, build_network

__all__ = ["PygPotential", "PygPotentialModule", "build_network"]
