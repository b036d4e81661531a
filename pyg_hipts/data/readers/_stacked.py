"""Frames from arrays stacked along a leading frame axis (npz files, HDF5 groups, deepmd sets)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import Data

from pyg_hipts.data.dataset import make_frame
from pyg_hipts.data.readers._checks import (
    atomic_numbers_of,
    check_finite,
    check_shape,
    energies_1d,
    require_key,
    species_per_frame,
)


def stacked_frames(
    source: str | Path,
    arrays: Mapping[str, np.ndarray],
    *,
    z_key: str,
    pos_key: str,
    energy_key: str | None,
    forces_key: str | None = None,
    cell_key: str | None = None,
    atom_energies_key: str | None = None,
    dtype: torch.dtype = torch.float32,
) -> list[Data]:
    """Validate stacked arrays and split them into frames.

    ``arrays[pos_key]`` is ``(n_frames, n_atoms, 3)``; ``arrays[z_key]`` is ``(n_atoms,)`` or
    ``(n_frames, n_atoms)`` (atomic numbers or element symbols); ``arrays[energy_key]`` is
    ``(n_frames,)`` or ``(n_frames, 1)``; ``arrays[forces_key]`` matches positions; ``arrays[cell_key]``
    is ``(n_frames, 3, 3)`` with lattice vectors as rows and makes the frames periodic in all three
    directions; ``arrays[atom_energies_key]`` is ``(n_frames, n_atoms)``. ``None`` keys are
    skipped. Any missing key, shape mismatch or non-finite value raises
    ``ValueError`` starting with ``source``.
    """
    for key in (z_key, pos_key, energy_key, forces_key, cell_key, atom_energies_key):
        if key is not None:
            require_key(source, key, arrays.keys())
    pos = np.asarray(arrays[pos_key])
    check_shape(source, pos_key, pos, (None, None, 3))
    check_finite(source, pos_key, pos)
    n_frames, n_atoms = pos.shape[:2]
    z = atomic_numbers_of(source, z_key, np.asarray(arrays[z_key]))
    z = species_per_frame(source, z_key, z, n_frames, n_atoms)
    energy = None
    if energy_key is not None:
        energy = energies_1d(source, energy_key, np.asarray(arrays[energy_key]), n_frames)
    forces = cells = None
    if forces_key is not None:
        forces = np.asarray(arrays[forces_key])
        check_shape(source, forces_key, forces, pos.shape)
        check_finite(source, forces_key, forces)
    if cell_key is not None:
        cells = np.asarray(arrays[cell_key])
        check_shape(source, cell_key, cells, (n_frames, 3, 3))
        check_finite(source, cell_key, cells)
    atom_energies = None
    if atom_energies_key is not None:
        atom_energies = np.asarray(arrays[atom_energies_key])
        check_shape(source, atom_energies_key, atom_energies, (n_frames, n_atoms))
        check_finite(source, atom_energies_key, atom_energies)
    pbc = np.ones(3, dtype=bool)
    return [
        make_frame(
            z[i],
            pos[i],
            None if energy is None else energy[i],
            forces=None if forces is None else forces[i],
            cell=None if cells is None else cells[i],
            pbc=None if cells is None else pbc,
            atom_energies=None if atom_energies is None else atom_energies[i],
            dtype=dtype,
        )
        for i in range(n_frames)
    ]
