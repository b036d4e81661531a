"""Shared by the rMD17 benchmarks: where the split files are and the unit they report in."""

from __future__ import annotations

from pathlib import Path

from ase import units

ROOT = Path(__file__).resolve().parents[1]
RMD17 = ROOT.parent / "shared" / "data" / "rmd17"
KCAL_TO_MEV = 1000.0 * units.kcal / units.mol  # 1 kcal/mol = 43.364 meV


def rmd17_file(molecule: str, part: str) -> Path:
    """The split 01 file of ``molecule``: ``part`` ``"train"`` or ``"test"``, 1000 frames each."""
    return RMD17 / f"rmd17_{molecule}_{part}_01.npz"
