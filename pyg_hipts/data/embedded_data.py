"""Small datasets shipped inside the package (see ``embedded/README.md`` for provenance)."""

from __future__ import annotations

from pathlib import Path

EMBEDDED_DIR = Path(__file__).with_name("embedded")

_FILES = {"ethanol": "rmd17_ethanol_01_1000.npz"}


def embedded_dataset_path(name: str = "ethanol") -> Path:
    """Path of an embedded dataset file.

    ``"ethanol"``: 1000 rMD17 ethanol frames (npz, Å, kcal/mol; readable with ``read_npz``).
    Raises ``ValueError`` for an unknown name.
    """
    if name not in _FILES:
        raise ValueError(f"unknown embedded dataset {name!r}; available: {sorted(_FILES)}")
    return EMBEDDED_DIR / _FILES[name]
