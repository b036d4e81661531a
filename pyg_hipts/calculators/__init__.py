"""Calculators that run trained models inside simulation packages."""

from .ase import HipCalculator, energy_unit_in_ev, length_unit_in_angstrom

__all__ = ["HipCalculator", "energy_unit_in_ev", "length_unit_in_angstrom"]
