"""Units: names, conversion factors, Boltzmann's constant and the MD time unit.

The one place of the package where quantities change units. Constants are CODATA 2018 (exact SI
definitions of the electronvolt, the Avogadro constant and the Boltzmann constant; measured
Hartree, Bohr radius and atomic mass unit):

- energies relative to the electronvolt: ``kcal/mol = 4184 J / (e · N_A)``, ``kJ/mol = 1000 J /
  (e · N_A)``, ``Hartree = 27.211386245988 eV``, ``Ry = Hartree / 2``;
- lengths relative to the ångström: ``nm = 10 Å``, ``Bohr = 0.529177210903 Å``;
- ``k_B = 8.617333262 · 10⁻⁵ eV/K``;
- the MD time unit of a model in ``(length, energy)`` with masses in amu,
  ``τ = sqrt(amu · length² / energy)`` (48.9 fs for Å and kcal/mol, 10.2 fs for Å and eV).

Forces are in ``energy/length``, stresses in ``energy/length³``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

ELEMENTARY_CHARGE = 1.602176634e-19  # C, exact
AVOGADRO = 6.02214076e23  # 1/mol, exact
BOLTZMANN_EV = 1.380649e-23 / ELEMENTARY_CHARGE  # eV/K, exact
ATOMIC_MASS_KG = 1.66053906660e-27  # kg
HARTREE_EV = 27.211386245988
BOHR_ANGSTROM = 0.529177210903

ENERGY_IN_EV: dict[str, float] = {
    "eV": 1.0,
    "meV": 1e-3,
    "kcal/mol": 4184.0 / (ELEMENTARY_CHARGE * AVOGADRO),
    "kJ/mol": 1000.0 / (ELEMENTARY_CHARGE * AVOGADRO),
    "Hartree": HARTREE_EV,
    "Ha": HARTREE_EV,
    "Ry": HARTREE_EV / 2.0,
}
"""Electronvolts per unit of energy, by name."""

LENGTH_IN_ANGSTROM: dict[str, float] = {
    "Å": 1.0,
    "Angstrom": 1.0,
    "A": 1.0,
    "nm": 10.0,
    "Bohr": BOHR_ANGSTROM,
}
"""Ångströms per unit of length, by name."""


def energy_in_ev(name: str) -> float:
    """eV per energy unit ``name`` (``"kcal/mol"`` -> 0.0434); a clear error for unknown names."""
    if name not in ENERGY_IN_EV:
        raise ValueError(f"unknown energy unit {name!r}; known: {sorted(ENERGY_IN_EV)}")
    return ENERGY_IN_EV[name]


def length_in_angstrom(name: str) -> float:
    """Å per length unit ``name`` (``"Bohr"`` -> 0.529); a clear error for unknown names."""
    if name not in LENGTH_IN_ANGSTROM:
        raise ValueError(f"unknown length unit {name!r}; known: {sorted(LENGTH_IN_ANGSTROM)}")
    return LENGTH_IN_ANGSTROM[name]


def energy_factor(source: str, target: str) -> float:
    """Multiply an energy in ``source`` by this to get it in ``target``."""
    return energy_in_ev(source) / energy_in_ev(target)


def length_factor(source: str, target: str) -> float:
    """Multiply a length in ``source`` by this to get it in ``target``."""
    return length_in_angstrom(source) / length_in_angstrom(target)


def boltzmann_constant(energy_unit: str) -> float:
    """``k_B`` in ``energy_unit`` per kelvin."""
    return BOLTZMANN_EV / energy_in_ev(energy_unit)


def md_time_unit_fs(energy_unit: str, length_unit: str = "Å") -> float:
    """Femtoseconds per MD time unit ``τ = sqrt(amu · length² / energy)``."""
    joules = energy_in_ev(energy_unit) * ELEMENTARY_CHARGE
    metres = length_in_angstrom(length_unit) * 1e-10
    return math.sqrt(ATOMIC_MASS_KG * metres**2 / joules) * 1e15


@dataclass(frozen=True)
class Units:
    """Units of a dataset or a model, e.g. ``Units("Å", "kcal/mol")``; forces in ``energy/length``.

    Unknown unit names are an error (see :data:`ENERGY_IN_EV`, :data:`LENGTH_IN_ANGSTROM`).
    """

    length: str
    energy: str

    def __post_init__(self) -> None:
        length_in_angstrom(self.length)
        energy_in_ev(self.energy)

    @property
    def force(self) -> str:
        return f"{self.energy}/{self.length}"

    def as_dict(self) -> dict[str, str]:
        return {"length": self.length, "energy": self.energy}


EV_ANGSTROM = Units("Å", "eV")
"""ASE's units."""
