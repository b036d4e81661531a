"""Frames from arrays stacked along a leading frame axis (npz files, HDF5 groups, deepmd sets)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import Data

from pyg_hipts.data.chunks import stacked_chunks
from pyg_hipts.data.dataset import make_frame


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
    ``ValueError`` starting with ``source`` (the checks of :func:`~pyg_hipts.data.chunks.stacked_chunks`,
    run on all frames as one chunk).
    """
    frames: list[Data] = []
    keys = dict(z_key=z_key, pos_key=pos_key, energy_key=energy_key, forces_key=forces_key)
    keys.update(cell_key=cell_key, atom_energies_key=atom_energies_key)
    for chunk in stacked_chunks(source, arrays, chunk_frames=sys.maxsize, **keys):
        bounds = np.concatenate([[0], np.cumsum(chunk.natoms)])
        for i, (first, last) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
            atoms = slice(int(first), int(last))
            frames.append(
                make_frame(
                    chunk.z[atoms],
                    chunk.pos[atoms],
                    None if chunk.energy is None else chunk.energy[i],
                    forces=None if chunk.forces is None else chunk.forces[atoms],
                    cell=None if chunk.cell is None else chunk.cell[i],
                    pbc=None if chunk.pbc is None else chunk.pbc[i],
                    atom_energies=None if chunk.atom_energies is None else chunk.atom_energies[atoms],
                    dtype=dtype,
                )
            )
    return frames
