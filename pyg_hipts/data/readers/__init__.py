"""Readers: one function per file format, each returning an :class:`AtomsDataset` with its units."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyg_hipts.data.dataset import AtomsDataset
from pyg_hipts.data.readers._checks import require_path
from pyg_hipts.data.readers.ase_io import read_ase
from pyg_hipts.data.readers.deepmd import read_deepmd
from pyg_hipts.data.readers.hdf5 import read_ani_hdf5
from pyg_hipts.data.readers.npz import read_npz
from pyg_hipts.data.storage import PREPARED_META, open_prepared

__all__ = [
    "FORMATS",
    "read_ani_hdf5",
    "resolve_format",
    "read_ase",
    "read_dataset",
    "read_deepmd",
    "read_npz",
]

FORMATS: dict[str, Callable[..., AtomsDataset]] = {
    "prepared": open_prepared,
    "npz": read_npz,
    "ase": read_ase,
    "hdf5": read_ani_hdf5,
    "deepmd": read_deepmd,
}
"""Format name -> reader."""

_ALIASES = {"extxyz": "ase", "xyz": "ase", "db": "ase", "h5": "hdf5"}
_SUFFIXES = {".npz": "npz", ".xyz": "ase", ".extxyz": "ase", ".db": "ase", ".h5": "hdf5", ".hdf5": "hdf5"}


def _supported() -> str:
    names = sorted(FORMATS) + sorted(_ALIASES)
    return f"formats {', '.join(names)}; suffixes {', '.join(sorted(_SUFFIXES))}; or a deepmd folder"


def resolve_format(path: str | Path, format: str | None = None) -> str:
    """The reader name for ``path``: ``format`` (or an alias of it), else from the suffix; a folder
    is a prepared dataset when it holds a ``meta.json``, a deepmd system otherwise. An unknown
    format or suffix raises ``ValueError`` listing the supported ones."""
    path = Path(path)
    if format is None:
        require_path(path, directory=path.is_dir())
        if path.is_dir():
            return "prepared" if (path / PREPARED_META).is_file() else "deepmd"
        format = _SUFFIXES.get(path.suffix.lower())
        if format is None:
            raise ValueError(f"{path}: unknown suffix {path.suffix!r}; supported: {_supported()}")
    name = _ALIASES.get(format.lower(), format.lower())
    if name not in FORMATS:
        raise ValueError(f"unknown format {format!r}; supported: {_supported()}")
    return name


def read_dataset(path: str | Path, format: str | None = None, **options: Any) -> AtomsDataset:
    """Read ``path`` with the reader of ``format``, or of the path's suffix (a folder is deepmd,
    or a prepared dataset, :class:`~pyg_hipts.data.prepared.PreparedDataset`, opened memory-mapped).

    ``options`` go to the reader (keys, ``units``, ``dtype``, ...). An unknown format or suffix
    raises ``ValueError`` listing the supported ones.
    """
    path = Path(path)
    name = resolve_format(path, format)
    try:
        return FORMATS[name](path, **options)
    except (zipfile.BadZipFile, EOFError, OSError, KeyError) as error:
        if isinstance(error, FileNotFoundError):
            raise
        raise ValueError(
            f"{path}: cannot be read as {name} (truncated, empty, corrupt or another format): "
            f"{type(error).__name__}: {error}"
        ) from error
