"""HIP-NN and HIP-NN-TS interatomic potentials on PyTorch Geometric and PyTorch Lightning.

Every model is a :class:`Potential`; :func:`load_potential` reads a trained one from a file.
"""

from pyg_hipts.potentials import Potential, PotentialOutput, load_potential, save_potential

__version__ = "0.1.0"

__all__ = ["Potential", "PotentialOutput", "__version__", "load_potential", "save_potential"]
