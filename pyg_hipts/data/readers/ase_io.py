"""Files ASE reads: extended XYZ (through ``ase.io.read``) and ASE databases (``.db``).

Energies and forces come from the attached calculator (extended XYZ ``energy=`` / ``forces``
columns, database rows written with a calculator), or from named keys: ``atoms.info`` and
``atoms.arrays`` of extended XYZ (e.g. BOTNet's ``REF_energy`` / ``REF_forces``), and the
``key_value_pairs`` and ``data`` of database rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ase.db
import ase.io
import numpy as np
import torch
from ase import Atoms
from ase.io.formats import string2index
from torch_geometric.data import Data

from pyg_hipts.data.dataset import AtomsDataset, Units, make_frame
from pyg_hipts.data.readers._checks import check_finite, check_shape, problem, require_path

DEFAULT_UNITS = Units("Å", "eV")


def _read_images(path: Path, index: str | int | slice) -> list[Atoms]:
    """Selected structures; database rows keep their ``key_value_pairs`` and ``data`` in ``info``."""
    if isinstance(index, str):
        index = string2index(index)
    try:
        if path.suffix == ".db":
            with ase.db.connect(path) as db:
                selected = [row.toatoms(add_additional_information=True) for row in db.select()][index]
        else:
            selected = ase.io.read(path, index=index)
    except Exception as err:
        raise problem(path, f"ASE cannot read index {index!r} ({type(err).__name__}: {err})") from err
    return [selected] if isinstance(selected, Atoms) else list(selected)


def _stores(atoms: Atoms, per_atom: bool) -> list[dict[str, Any]]:
    """Where a named property of one structure may be stored, in search order; the calculator is last."""
    own = atoms.arrays if per_atom else atoms.info
    calculator = {} if atoms.calc is None else atoms.calc.results
    return [own, atoms.info.get("key_value_pairs", {}), atoms.info.get("data", {}), calculator]


def _property(
    source: str, atoms: Atoms, key: str | None, per_atom: bool, required: bool
) -> np.ndarray | None:
    """``key`` of one structure, or the calculator's ``energy``/``forces`` when ``key`` is ``None``.

    Returns ``None`` when the property is absent and not ``required``.
    """
    stores = _stores(atoms, per_atom)
    if key is None:
        key, stores, where = ("forces" if per_atom else "energy"), stores[-1:], " from a calculator"
    else:
        where = ""
    for store in stores:
        if key in store:
            try:
                return np.asarray(store[key], dtype=float)
            except (TypeError, ValueError) as err:
                raise problem(source, f"{key!r} is not numeric: {store[key]!r}") from err
    if not required:
        return None
    containers = {"key_value_pairs", "data"}
    available = sorted({k for store in _stores(atoms, per_atom) for k in store} - containers)
    argument = "forces_key" if per_atom else "energy_key"
    raise problem(
        source, f"no {key!r}{where} (available: {', '.join(available) or 'none'}; choose with {argument}=)"
    )


def _frame(
    source: str, atoms: Atoms, energy_key: str | None, forces_key: str | None, dtype: torch.dtype
) -> Data:
    energy = _property(source, atoms, energy_key, per_atom=False, required=True)
    if energy.size != 1:
        raise problem(source, f"energy {energy_key!r} has {energy.size} values, expected 1")
    check_finite(source, "energy", energy)
    forces = _property(source, atoms, forces_key, per_atom=True, required=forces_key is not None)
    if forces is not None:
        check_shape(source, "forces", forces, (len(atoms), 3))
        check_finite(source, "forces", forces)
    pos = atoms.get_positions()
    check_finite(source, "positions", pos)
    periodic = bool(atoms.pbc.any())
    if periodic:
        check_finite(source, "cell", atoms.cell.array)
    return make_frame(
        atoms.numbers,
        pos,
        float(energy.reshape(())),
        forces=forces,
        cell=atoms.cell.array if periodic else None,
        pbc=atoms.pbc if periodic else None,
        dtype=dtype,
    )


def read_ase(
    path: str | Path,
    *,
    index: str | int | slice = ":",
    energy_key: str | None = None,
    forces_key: str | None = None,
    units: Units = DEFAULT_UNITS,
    dtype: torch.dtype = torch.float32,
) -> AtomsDataset:
    """Read structures from an extended XYZ file or an ASE database.

    Args:
        index: ASE index string (``":"``, ``"10:20"``, ``"-1"``), integer or slice.
        energy_key: ``None`` takes the calculator's energy; a name is looked up in ``atoms.info``
            (extended XYZ), the row's ``key_value_pairs`` / ``data`` (database), then the
            calculator's results.
        forces_key: ``None`` takes the calculator's forces where there are any (all structures
            must agree); a name is looked up in ``atoms.arrays`` or the row's ``data`` and must exist.
        units: the file's units (ASE's convention, Å and eV, by default).

    Cell and pbc are kept when any direction is periodic. Raises ``FileNotFoundError`` or
    ``ValueError`` naming the file and structure for a missing energy or forces, a wrong forces
    shape, non-finite values, and structures that disagree on having forces or being periodic.
    """
    path = require_path(path)
    images = _read_images(path, index)
    if not images:
        raise problem(path, f"index {index!r} selects no structures")
    where = "" if index == ":" else f" of index {index!r}"
    frames = [
        _frame(f"{path} structure {i}{where}", atoms, energy_key, forces_key, dtype)
        for i, atoms in enumerate(images)
    ]
    return AtomsDataset(frames, units=units, source=str(path))
