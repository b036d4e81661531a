"""DeePMD-kit ``npy`` systems: ``type.raw``, ``type_map.raw`` and ``set.*/{coord,energy,force,box}.npy``.

In a set with ``n_frames`` frames of ``n_atoms`` atoms: ``coord.npy`` and ``force.npy`` are
``(n_frames, 3 n_atoms)``, ``energy.npy`` ``(n_frames,)`` and ``box.npy`` ``(n_frames, 9)``
(lattice vectors as rows). A system with a ``nopbc`` file is not periodic and needs no box.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import Data

from pyg_hipts.data.dataset import AtomsDataset, Units
from pyg_hipts.data.readers._checks import atomic_numbers_of, check_shape, problem, require_path
from pyg_hipts.data.readers._stacked import stacked_frames

DEFAULT_UNITS = Units("Å", "eV")


def _systems(root: Path) -> list[Path]:
    """``root`` itself if it is a system, else every system folder below it, in name order."""
    if (root / "type.raw").is_file():
        return [root]
    systems = sorted(p.parent for p in root.rglob("type.raw"))
    if not systems:
        raise problem(root, "no deepmd system (a folder with type.raw) found")
    return systems


def _atomic_numbers(system: Path) -> np.ndarray:
    """Atomic numbers ``(n_atoms,)`` from ``type.raw`` indices into ``type_map.raw`` symbols."""
    type_map_file = require_path(system / "type_map.raw")
    type_file = require_path(system / "type.raw")
    try:
        types = np.loadtxt(type_file, dtype=np.int64, ndmin=1)
    except ValueError as err:
        raise problem(type_file, "must hold one integer type index per atom") from err
    symbols = np.array(type_map_file.read_text().split())
    if types.size == 0:
        raise problem(type_file, "no atoms")
    if types.min() < 0 or types.max() >= len(symbols):
        raise problem(type_file, f"type indices must lie in [0, {len(symbols)}) (type_map.raw)")
    return atomic_numbers_of(type_map_file, "type_map.raw", symbols)[types]


def _read_set(folder: Path, z: np.ndarray, periodic: bool, dtype: torch.dtype) -> list[Data]:
    """Frames of one ``set.*`` folder; ``(n_frames, 3 n_atoms)`` arrays are checked, then reshaped."""
    names = ["coord.npy", "energy.npy"]
    names += ["box.npy"] if periodic else []
    names += ["force.npy"] if (folder / "force.npy").is_file() else []
    arrays = {name: np.load(require_path(folder / name)) for name in names}
    n_frames, n_atoms = len(arrays["coord.npy"]), len(z)
    for name in ("coord.npy", "force.npy"):
        if name in arrays:
            check_shape(folder, name, arrays[name], (n_frames, 3 * n_atoms))
            arrays[name] = arrays[name].reshape(n_frames, n_atoms, 3)
    if periodic:
        check_shape(folder, "box.npy", arrays["box.npy"], (n_frames, 9))
        arrays["box.npy"] = arrays["box.npy"].reshape(n_frames, 3, 3)
    arrays["type.raw"] = z
    return stacked_frames(
        folder,
        arrays,
        z_key="type.raw",
        pos_key="coord.npy",
        energy_key="energy.npy",
        forces_key="force.npy" if "force.npy" in arrays else None,
        cell_key="box.npy" if periodic else None,
        dtype=dtype,
    )


def read_deepmd(
    path: str | Path,
    *,
    units: Units = DEFAULT_UNITS,
    dtype: torch.dtype = torch.float32,
) -> AtomsDataset:
    """Read a deepmd system folder, or every system below a parent folder (their union).

    The ``set.*`` folders of a system are concatenated in name order. Periodic systems get
    ``cell`` from ``box.npy`` and ``pbc`` all true. Forces are read when ``force.npy`` is present;
    they must then be present in every set. Raises ``FileNotFoundError`` or ``ValueError`` naming
    the file for missing files, mismatched shapes and non-finite values.
    """
    root = require_path(path, directory=True)
    frames: list[Data] = []
    for system in _systems(root):
        z = _atomic_numbers(system)
        sets = sorted(p for p in system.glob("set.*") if p.is_dir())
        if not sets:
            raise problem(system, "no set.* folder")
        with_forces = {(folder / "force.npy").is_file() for folder in sets}
        if len(with_forces) > 1:
            raise problem(system, "force.npy is present in some set.* folders and missing in others")
        periodic = not (system / "nopbc").exists()
        for folder in sets:
            frames += _read_set(folder, z, periodic, dtype)
    return AtomsDataset(frames, units=units, source=str(root))
