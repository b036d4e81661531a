"""Calculators that run trained potentials inside simulation packages."""

from pyg_hipts.calculators.ase import HipCalculator

__all__ = ["HipCalculator"]
