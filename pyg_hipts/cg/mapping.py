"""Maps from all-atom frames to coarse-grained beads.

Bead ``b`` owns the atoms ``A_b`` (groups do not overlap). Its position is either the centre of
mass of ``A_b`` or one selected atom of it; its force is the sum of the atomic forces of
``A_b``::

    R_b = Σ_{a ∈ A_b} m_a x_a / Σ_{a ∈ A_b} m_a        (centre of mass)   or   R_b = x_{s_b}
    F_b = Σ_{a ∈ A_b} f_a

The force map is the sum over the bead's atoms (``force_map="sum"``) or the force on the
position atom alone (``force_map="position"``, for beads placed on one atom). Both give the
mean force for positions on one atom. The sum is the default: it is the only choice for centres
of mass, and constraint forces within a bead (bonds to hydrogen held fixed) cancel in it, while
they are missing from the position atom's force.

In a periodic cell each group is made whole first: every atom is moved to the image nearest
to the group's first atom (minimum image along the lattice vectors, triclinic cells too).

Beads are specified by :func:`mapping_from_spec` from plain data (YAML): each bead's ``atoms``
as indices or atom labels ``"<residue name><residue number>:<atom name>"`` (e.g.
``"ALA2:CA"``, see :func:`atom_labels`), its ``position`` and its ``name``.
Arrays are ``[F, n_atoms, 3]`` (frames) or ``[n_atoms, 3]``; cells ``[F, 3, 3]`` or ``[3, 3]``
with lattice vectors as rows.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Mapping as MappingABC
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Bead:
    """Atoms of one bead, how its position is taken, and its type.

    Attributes:
        atoms: atom indices whose forces are summed.
        position: ``"com"`` (centre of mass) or the index of one of ``atoms``.
        type: bead type (the ``z`` of the coarse-grained structure).
        name: bead name (e.g. ``"CA"``), written with the coarse-grained data.
    """

    atoms: tuple[int, ...]
    position: str | int
    type: int
    name: str = ""


FORCE_MAPS = ("sum", "position")


class Mapping:
    """A coarse-graining map (see the module docstring) of atoms with ``masses [n_atoms]``."""

    def __init__(self, beads: Sequence[Bead], masses: Sequence[float] | np.ndarray, force_map: str = "sum"):
        if force_map not in FORCE_MAPS:
            raise ValueError(f"force_map must be one of {list(FORCE_MAPS)}, got {force_map!r}")
        if force_map == "position" and any(b.position == "com" for b in beads):
            raise ValueError("force_map 'position' needs every bead on one atom, not a centre of mass")
        self.force_map = force_map
        self.beads = list(beads)
        self.masses = np.asarray(masses, dtype=np.float64)
        n_atoms = len(self.masses)
        owned = [a for bead in self.beads for a in bead.atoms]
        if not self.beads:
            raise ValueError("a mapping needs at least one bead")
        if len(owned) != len(set(owned)):
            raise ValueError("beads share atoms; every atom belongs to at most one bead")
        if min(owned) < 0 or max(owned) >= n_atoms:
            raise ValueError(f"bead atoms must lie in [0, {n_atoms}), got {min(owned)}..{max(owned)}")
        for index, bead in enumerate(self.beads):
            if bead.position != "com" and bead.position not in bead.atoms:
                raise ValueError(
                    f"bead {index}: position {bead.position!r} is neither 'com' nor one of its atoms"
                )
        if (self.masses <= 0).any():
            raise ValueError("masses must be positive")

    @classmethod
    def centers_of_mass(
        cls, groups: Sequence[Sequence[int]], masses, types: Sequence[int] | None = None
    ) -> Mapping:
        """One centre-of-mass bead per group (types ``0, 1, ...`` unless given)."""
        types = list(range(len(groups))) if types is None else list(types)
        return cls([Bead(tuple(g), "com", t) for g, t in zip(groups, types, strict=True)], masses)

    @classmethod
    def selection(cls, atoms: Sequence[int], masses, types: Sequence[int] | None = None) -> Mapping:
        """One bead on each selected atom; each bead's force is that atom's force."""
        types = list(range(len(atoms))) if types is None else list(types)
        return cls([Bead((a,), a, t) for a, t in zip(atoms, types, strict=True)], masses)

    @classmethod
    def per_molecule(cls, n_molecules: int, molecule_masses: Sequence[float], bead_type: int = 1) -> Mapping:
        """One centre-of-mass bead per molecule of a box of identical molecules stored one after
        another (e.g. water as O, H, H, O, H, H, ...)."""
        size = len(molecule_masses)
        groups = [tuple(range(m * size, (m + 1) * size)) for m in range(n_molecules)]
        return cls.centers_of_mass(groups, np.tile(molecule_masses, n_molecules), [bead_type] * n_molecules)

    @property
    def types(self) -> np.ndarray:
        """``[n_beads]`` bead types."""
        return np.array([b.type for b in self.beads], dtype=np.int64)

    @property
    def bead_masses(self) -> np.ndarray:
        """``[n_beads]`` total mass of each bead's atoms."""
        return np.array([self.masses[list(b.atoms)].sum() for b in self.beads])

    def _check(self, array: np.ndarray, name: str) -> np.ndarray:
        array = np.asarray(array, dtype=np.float64)
        if array.shape[-2:] != (len(self.masses), 3):
            raise ValueError(f"{name} must be [..., {len(self.masses)}, 3], got {list(array.shape)}")
        if not np.isfinite(array).all():
            raise ValueError(f"{name} holds NaN or infinite values")
        return array

    def positions(self, pos: np.ndarray, cell: np.ndarray | None = None) -> np.ndarray:
        """Bead positions ``[..., n_beads, 3]``; groups are made whole in ``cell`` first."""
        pos = self._check(pos, "positions")
        out = []
        for bead in self.beads:
            atoms = pos[..., list(bead.atoms), :]
            if cell is not None:
                atoms = unwrap_group(atoms, np.asarray(cell, dtype=np.float64))
            if bead.position == "com":
                weights = self.masses[list(bead.atoms)]
                out.append((atoms * weights[:, None]).sum(-2) / weights.sum())
            else:
                out.append(atoms[..., bead.atoms.index(bead.position), :])
        return np.stack(out, axis=-2)

    @property
    def names(self) -> list[str]:
        """``[n_beads]`` bead names."""
        return [b.name for b in self.beads]

    def forces(self, forces: np.ndarray) -> np.ndarray:
        """Bead forces ``[..., n_beads, 3]``: the sums of their atoms' forces, or the force on
        each position atom (``force_map``)."""
        forces = self._check(forces, "forces")
        if self.force_map == "position":
            return forces[..., [b.position for b in self.beads], :]
        return np.stack([forces[..., list(b.atoms), :].sum(-2) for b in self.beads], axis=-2)


def atom_labels(
    atom_names: Sequence[str], residue_names: Sequence[str], residue_numbers: Sequence[int]
) -> list[str]:
    """``"<residue name><residue number>:<atom name>"`` of every atom, e.g. ``"ALA2:CA"``."""
    return [
        f"{residue}{number}:{atom}"
        for atom, residue, number in zip(atom_names, residue_names, residue_numbers, strict=True)
    ]


def _atom_indices(reference: Any, labels: Sequence[str] | None, n_atoms: int, where: str) -> list[int]:
    """The atoms given by an index, a label, or a label pattern with ``*``, ``?`` or ``[...]``
    (``"NME3:*"``: every atom of residue NME3), in index order."""
    if isinstance(reference, int | np.integer) and not isinstance(reference, bool):
        if not 0 <= reference < n_atoms:
            raise ValueError(f"{where}: atom index {reference} is outside [0, {n_atoms})")
        return [int(reference)]
    if not isinstance(reference, str):
        raise ValueError(f"{where}: an atom is an index or a label, got {reference!r}")
    if labels is None:
        raise ValueError(f"{where}: atom {reference!r} is a label, but the input has no atom names")
    found = [i for i, label in enumerate(labels) if fnmatch.fnmatchcase(label, reference)]
    if not found:
        close = difflib.get_close_matches(reference, labels, n=3)
        hint = f"; close: {close}" if close else ""
        raise ValueError(f"{where}: no atom is labelled {reference!r}{hint}")
    return found


def molecule_beads(
    n_atoms: int, size: int, name: str = "W", position: str | int = "com"
) -> list[dict[str, Any]]:
    """Bead specs of one bead per molecule for a box of identical molecules of ``size`` atoms
    stored one after another; ``position`` is ``"com"`` or an atom index within the molecule
    (``0``: the oxygen of water stored as O, H, H)."""
    if size < 1 or n_atoms % size:
        raise ValueError(f"{n_atoms} atoms are not a whole number of molecules of {size} atoms")
    if position != "com" and not 0 <= int(position) < size:
        raise ValueError(f"position {position!r} is not 'com' or an atom index below {size}")
    beads = []
    for first in range(0, n_atoms, size):
        spec = {"name": name, "atoms": list(range(first, first + size))}
        beads.append(
            spec | ({"position": "com"} if position == "com" else {"position": first + int(position)})
        )
    return beads


def mapping_from_spec(
    beads: Sequence[MappingABC[str, Any]],
    masses: Sequence[float] | np.ndarray,
    labels: Sequence[str] | None = None,
    force_map: str = "sum",
) -> Mapping:
    """A :class:`Mapping` from plain data: one mapping per bead with ``atoms`` (indices,
    ``labels`` or label patterns such as ``"ALA2:HB*"``), ``position`` (``"com"``, the default,
    or one of its atoms), ``name`` and optionally ``type``. Beads without a type get one per
    distinct name, ``1, 2, ...`` in order of first appearance (``C N CA C N`` gives
    ``1 2 3 1 2``). Errors name the bead."""
    n_atoms = len(masses)
    by_name: dict[str, int] = {}
    built = []
    for index, spec in enumerate(beads):
        where = f"bead {index}"
        unknown = set(spec) - {"atoms", "position", "name", "type"}
        if unknown or "atoms" not in spec:
            raise ValueError(f"{where}: needs 'atoms' (may have position, name, type); got {sorted(spec)}")
        name = str(spec.get("name", f"B{index}"))
        where = f"bead {index} ({name})"
        chosen = [i for atom in spec["atoms"] for i in _atom_indices(atom, labels, n_atoms, where)]
        atoms = tuple(dict.fromkeys(chosen))
        position = spec.get("position", "com")
        if position != "com":
            chosen = _atom_indices(position, labels, n_atoms, where)
            if len(chosen) != 1:
                raise ValueError(f"{where}: position {position!r} matches {len(chosen)} atoms, not one")
            position = chosen[0]
        bead_type = spec["type"] if "type" in spec else by_name.setdefault(name, len(by_name) + 1)
        built.append(Bead(atoms, position, int(bead_type), name))
    return Mapping(built, masses, force_map)


def unwrap_group(atoms: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """Move every atom of ``atoms [..., k, 3]`` to its image nearest to the first atom
    (``cell [..., 3, 3]``, rows are lattice vectors)."""
    shift = np.round((atoms - atoms[..., :1, :]) @ np.linalg.inv(cell))
    return atoms - shift @ cell
