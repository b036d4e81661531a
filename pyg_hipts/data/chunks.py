"""Blocks of consecutive frames as flat NumPy arrays: the unit the streaming ``prepare`` works in.

A :class:`FrameChunk` of ``k`` frames holding ``A`` atoms in all has

- ``z`` int64 ``[A]``, ``pos`` ``[A, 3]``, ``natoms`` int64 ``[k]``,
- optionally ``energy`` float64 ``[k]``, ``forces`` ``[A, 3]``, ``atom_energies`` ``[A]``,
  ``cell`` ``[k, 3, 3]`` (lattice vectors as rows) and ``pbc`` bool ``[k, 3]``.

Arrays stacked along a leading frame axis (npz members, HDF5 datasets) are read ``k`` rows at a
time and validated as the in-memory readers validate them, with frame numbers counted in the file.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from pyg_hipts.data.readers._checks import (
    atomic_numbers_of,
    check_finite,
    check_shape,
    energies_1d,
    require_key,
    species_per_frame,
)

OPTIONAL_FIELDS = ("energy", "forces", "atom_energies", "cell", "pbc")
"""Fields a chunk may lack; all chunks of one dataset hold the same ones."""


@dataclass
class FrameChunk:
    """``k`` consecutive frames, flattened over atoms (shapes in the module docstring)."""

    z: np.ndarray
    pos: np.ndarray
    natoms: np.ndarray
    energy: np.ndarray | None = None
    forces: np.ndarray | None = None
    atom_energies: np.ndarray | None = None
    cell: np.ndarray | None = None
    pbc: np.ndarray | None = None

    @property
    def n_frames(self) -> int:
        return len(self.natoms)

    def present(self) -> tuple[str, ...]:
        """Names of the optional fields this chunk holds."""
        return tuple(name for name in OPTIONAL_FIELDS if getattr(self, name) is not None)

    def arrays(self) -> dict[str, np.ndarray]:
        """Every field that is present, by name."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


class StackedRows:
    """Row blocks ``[start:stop]`` of an array stacked along axis 0, read only when asked for.

    ``array`` is anything sliceable with ``shape`` (a NumPy array, a memory map, an HDF5 dataset,
    an :class:`~pyg_hipts.data.readers.streaming.NpyMember`).
    """

    def __init__(self, array: Any) -> None:
        self.array = array
        self.shape = tuple(array.shape)
        self.ndim = len(self.shape)

    def rows(self, start: int, stop: int) -> np.ndarray:
        return np.asarray(self.array[start:stop])


def stacked_chunks(
    source: str | Path,
    arrays: Mapping[str, Any],
    *,
    z_key: str,
    pos_key: str,
    energy_key: str | None,
    forces_key: str | None = None,
    cell_key: str | None = None,
    atom_energies_key: str | None = None,
    chunk_frames: int = 10_000,
) -> Iterator[FrameChunk]:
    """Chunks of at most ``chunk_frames`` frames from stacked arrays (layout of
    :func:`~pyg_hipts.data.readers._stacked.stacked_frames`), validated block by block.

    Shapes are checked before anything is read; NaN or infinite values raise ``ValueError``
    naming ``source``, the key and the index in the file.
    """
    for key in (z_key, pos_key, energy_key, forces_key, cell_key, atom_energies_key):
        if key is not None:
            require_key(source, key, arrays.keys())
    pos = StackedRows(arrays[pos_key])
    check_shape(source, pos_key, pos, (None, None, 3))
    n_frames, n_atoms = pos.shape[:2]
    z_all = np.asarray(arrays[z_key]) if np.ndim(arrays[z_key]) == 1 else None
    if z_all is not None:
        z_all = atomic_numbers_of(source, z_key, z_all)
    z_rows = StackedRows(arrays[z_key])
    if z_all is None:
        check_shape(source, z_key, z_rows, (n_frames, n_atoms))
    per_frame: dict[str, StackedRows] = {}
    for name, key, shape in (
        ("forces", forces_key, pos.shape),
        ("cell", cell_key, (n_frames, 3, 3)),
        ("atom_energies", atom_energies_key, (n_frames, n_atoms)),
    ):
        if key is not None:
            per_frame[name] = StackedRows(arrays[key])
            check_shape(source, key, per_frame[name], shape)
    energies = None
    if energy_key is not None:
        energies = energies_1d(source, energy_key, np.asarray(arrays[energy_key]), n_frames)
    keys = {"forces": forces_key, "cell": cell_key, "atom_energies": atom_energies_key}
    for start in range(0, n_frames, chunk_frames):
        stop = min(start + chunk_frames, n_frames)
        block = pos.rows(start, stop)
        check_finite(source, pos_key, block, first_index=start)
        z = atomic_numbers_of(source, z_key, z_rows.rows(start, stop)) if z_all is None else z_all
        z = species_per_frame(source, z_key, z, stop - start, n_atoms)
        chunk = FrameChunk(
            z=np.ascontiguousarray(z).reshape(-1),
            pos=block.reshape(-1, 3),
            natoms=np.full(stop - start, n_atoms, dtype=np.int64),
            energy=None if energies is None else energies[start:stop].astype(np.float64),
        )
        for name, rows in per_frame.items():
            values = rows.rows(start, stop)
            check_finite(source, keys[name], values, first_index=start)
            setattr(chunk, name, values.reshape(-1, 3) if name == "forces" else values)
        if chunk.atom_energies is not None:
            chunk.atom_energies = chunk.atom_energies.reshape(-1)
        if chunk.cell is not None:
            chunk.pbc = np.ones((stop - start, 3), dtype=bool)
        yield chunk


def dataset_chunks(dataset: Any, chunk_frames: int = 10_000) -> Iterator[FrameChunk]:
    """Chunks of an in-memory :class:`~pyg_hipts.data.AtomsDataset` (whole file, in file order),
    taken from its contiguous storage."""
    storage = dataset._data
    bounds = dataset.frame_bounds.numpy()
    n_frames = len(bounds) - 1
    for start in range(0, n_frames, chunk_frames):
        stop = min(start + chunk_frames, n_frames)
        atoms = slice(int(bounds[start]), int(bounds[stop]))
        chunk = FrameChunk(
            z=storage.z[atoms].numpy(),
            pos=storage.pos[atoms].numpy(),
            natoms=np.diff(bounds[start : stop + 1]),
        )
        for name in ("forces", "atom_energies"):
            if name in storage:
                setattr(chunk, name, storage[name][atoms].numpy())
        for name in ("energy", "cell", "pbc"):
            if name in storage:
                setattr(chunk, name, storage[name][start:stop].numpy())
        yield chunk
