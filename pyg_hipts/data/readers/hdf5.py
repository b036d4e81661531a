"""ANI-style HDF5 files (ANI-1x, COMP6): one group per molecule, frames stacked inside it.

Each molecule group holds ``coordinates`` ``(n_frames, n_atoms, 3)``, ``species``
``(n_atoms,)`` (element symbols or atomic numbers; ``(n_frames, n_atoms)`` also accepted),
``energies`` ``(n_frames,)`` and optionally ``forces`` ``(n_frames, n_atoms, 3)``. Groups may be
nested; every group that holds the coordinates dataset is read, in name order.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import torch

from pyg_hipts.data.dataset import AtomsDataset, Units
from pyg_hipts.data.readers._checks import problem, require_path
from pyg_hipts.data.readers._stacked import stacked_frames

DEFAULT_UNITS = Units("Å", "Hartree")


def molecule_groups(handle: h5py.File, coordinates_key: str) -> list[h5py.Group]:
    """Every group (at any depth) that holds ``coordinates_key``, in name order."""
    groups: list[h5py.Group] = []

    def visit(_name: str, item: h5py.Group | h5py.Dataset) -> None:
        if isinstance(item, h5py.Group) and coordinates_key in item:
            groups.append(item)

    handle.visititems(visit)
    return groups


def read_ani_hdf5(
    path: str | Path,
    *,
    energy_key: str = "energies",
    forces_key: str | None = "forces",
    coordinates_key: str = "coordinates",
    species_key: str = "species",
    units: Units = DEFAULT_UNITS,
    dtype: torch.dtype = torch.float32,
) -> AtomsDataset:
    """Read every frame of every molecule group of an ANI-style HDF5 file.

    ``forces_key=None`` skips forces. Units default to Å and Hartree (ANI-1x, COMP6). Raises
    ``FileNotFoundError`` or ``ValueError`` naming the file and group for a missing file or
    dataset, mismatched shapes, and NaN or infinite values.
    """
    path = require_path(path)
    frames = []
    with h5py.File(path, "r") as handle:
        groups = molecule_groups(handle, coordinates_key)
        if not groups:
            raise problem(path, f"no group holds a {coordinates_key!r} dataset")
        for group in groups:
            frames += stacked_frames(
                f"{path}:{group.name}",
                group,
                z_key=species_key,
                pos_key=coordinates_key,
                energy_key=energy_key,
                forces_key=forces_key,
                dtype=dtype,
            )
    return AtomsDataset(frames, units=units, source=str(path))
