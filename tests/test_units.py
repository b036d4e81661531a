"""The package's unit constants against ASE's CODATA 2018 set (ASE derives Hartree and Bohr from
the fundamental constants: they agree with the tabulated values to 1e-11)."""

from __future__ import annotations

import math

import pytest
from ase.units import create_units

from pyg_hipts.units import (
    ENERGY_IN_EV,
    LENGTH_IN_ANGSTROM,
    Units,
    boltzmann_constant,
    energy_factor,
    length_factor,
    md_time_unit_fs,
)

ASE = create_units("2018")
ASE_ENERGY = {
    "eV": ASE["eV"],
    "meV": 1e-3 * ASE["eV"],
    "kcal/mol": ASE["kcal"] / ASE["mol"],
    "kJ/mol": ASE["kJ"] / ASE["mol"],
    "Hartree": ASE["Hartree"],
    "Ha": ASE["Hartree"],
    "Ry": ASE["Ry"],
}
ASE_LENGTH = {"Å": ASE["Ang"], "Angstrom": ASE["Ang"], "A": ASE["Ang"], "nm": ASE["nm"], "Bohr": ASE["Bohr"]}


@pytest.mark.parametrize("name", sorted(ENERGY_IN_EV))
def test_energy_units_equal_ase(name: str) -> None:
    assert math.isclose(ENERGY_IN_EV[name], ASE_ENERGY[name], rel_tol=1e-10)


@pytest.mark.parametrize("name", sorted(LENGTH_IN_ANGSTROM))
def test_length_units_equal_ase(name: str) -> None:
    assert math.isclose(LENGTH_IN_ANGSTROM[name], ASE_LENGTH[name], rel_tol=1e-10)


def test_factors_boltzmann_and_md_time_unit_equal_ase() -> None:
    assert math.isclose(energy_factor("kcal/mol", "kJ/mol"), 4.184, rel_tol=1e-10)
    assert math.isclose(length_factor("nm", "Bohr"), ASE["nm"] / ASE["Bohr"], rel_tol=1e-10)
    assert math.isclose(boltzmann_constant("eV"), ASE["kB"], rel_tol=1e-10)
    assert math.isclose(boltzmann_constant("kcal/mol") * 300, 0.596161, rel_tol=1e-5)
    # sqrt(amu Å² / eV) is ASE's own time unit; 1 fs = ASE["fs"] of them
    assert math.isclose(md_time_unit_fs("eV"), 1 / ASE["fs"], rel_tol=1e-9)
    assert math.isclose(md_time_unit_fs("kJ/mol", "nm"), 1000.0, rel_tol=1e-9)  # OpenMM's ps


def test_unknown_unit_names_are_an_error_listing_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown energy unit 'kcal'; known: \["):
        Units("Å", "kcal")
    with pytest.raises(ValueError, match=r"unknown length unit 'pm'"):
        length_factor("pm", "Å")
