"""HIP-NN and HIP-NN-TS interatomic potentials on PyTorch Geometric and PyTorch Lightning."""

__version__ = "0.1.0"
