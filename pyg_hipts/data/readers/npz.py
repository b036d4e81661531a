"""NumPy ``.npz`` files of molecular frames (rMD17 layout by default)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pyg_hipts.data.dataset import AtomsDataset, Units
from pyg_hipts.data.readers._checks import require_path
from pyg_hipts.data.readers._stacked import stacked_frames
from pyg_hipts.data.system import read_frame_weights, read_system_info, stored_units

DEFAULT_UNITS = Units("Å", "kcal/mol")


def read_npz(
    path: str | Path,
    *,
    z_key: str = "nuclear_charges",
    pos_key: str = "coords",
    energy_key: str | None = "energies",
    forces_key: str | None = "forces",
    atom_energies_key: str | None = None,
    cell_key: str | None = None,
    units: Units | None = None,
    dtype: torch.dtype = torch.float32,
) -> AtomsDataset:
    """Read all frames of an ``.npz`` file.

    Expected arrays: ``z_key`` ``(n_atoms,)`` shared by all frames or ``(n_frames, n_atoms)``;
    ``pos_key`` ``(n_frames, n_atoms, 3)``; ``energy_key`` ``(n_frames,)`` or ``(n_frames, 1)``
    (``None``: no energies, as in coarse-grained force data);
    ``forces_key`` ``(n_frames, n_atoms, 3)`` (``None`` skips forces); ``atom_energies_key``
    ``(n_frames, n_atoms)`` per-atom energy targets (``None``: none); ``cell_key``
    ``(n_frames, 3, 3)`` lattice vectors as rows, making the frames periodic. The defaults read rMD17
    (Å, kcal/mol). ``units`` default to those the file records (``length_unit``,
    ``energy_unit``), else Å and kcal/mol; the optional ``masses``, ``names``, ``temperature``
    and ``time_ps`` arrays become the dataset's ``system``, and ``weights`` ``(n_frames,)`` each
    frame's ``frame_weight`` ``[1]`` (float64; :mod:`pyg_hipts.data.system`).
    Raises ``FileNotFoundError`` or ``ValueError`` naming the file for a missing file or key,
    mismatched shapes, and NaN or infinite values.
    """
    path = require_path(path)
    with np.load(path) as arrays:
        frames = stacked_frames(
            path,
            arrays,
            z_key=z_key,
            pos_key=pos_key,
            energy_key=energy_key,
            forces_key=forces_key,
            atom_energies_key=atom_energies_key,
            cell_key=cell_key,
            dtype=dtype,
        )
        if not frames:
            raise ValueError(f"{path}: no frames")
        system = read_system_info(path, arrays, frames[0].num_nodes)
        weights = read_frame_weights(path, arrays, len(frames))
        if weights is not None:
            for frame, weight in zip(frames, weights, strict=True):
                frame.frame_weight = torch.tensor([weight], dtype=torch.float64)
        units = units or stored_units(path, arrays) or DEFAULT_UNITS
    return AtomsDataset(frames, units=units, source=str(path), system=system)
