"""Maps from all-atom frames to coarse-grained beads.

Bead ``b`` owns the atoms ``A_b`` (groups do not overlap). Its position is either the centre of
mass of ``A_b`` or one selected atom of it; its force is the sum of the atomic forces of
``A_b``::

    R_b = Σ_{a ∈ A_b} m_a x_a / Σ_{a ∈ A_b} m_a        (centre of mass)   or   R_b = x_{s_b}
    F_b = Σ_{a ∈ A_b} f_a

In a periodic cell each group is made whole first: every atom is moved to the image nearest
to the group's first atom (minimum image along the lattice vectors, triclinic cells too).
Arrays are ``[F, n_atoms, 3]`` (frames) or ``[n_atoms, 3]``; cells ``[F, 3, 3]`` or ``[3, 3]``
with lattice vectors as rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Bead:
    """Atoms of one bead, how its position is taken, and its type.

    Attributes:
        atoms: atom indices whose forces are summed.
        position: ``"com"`` (centre of mass) or the index of one of ``atoms``.
        type: bead type (the ``z`` of the coarse-grained structure).
    """

    atoms: tuple[int, ...]
    position: str | int
    type: int


class Mapping:
    """A coarse-graining map (see the module docstring)."""

    def __init__(self, beads: Sequence[Bead], masses: Sequence[float] | np.ndarray):
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

    def forces(self, forces: np.ndarray) -> np.ndarray:
        """Bead forces ``[..., n_beads, 3]``: the sums of their atoms' forces."""
        forces = self._check(forces, "forces")
        return np.stack([forces[..., list(b.atoms), :].sum(-2) for b in self.beads], axis=-2)


def unwrap_group(atoms: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """Move every atom of ``atoms [..., k, 3]`` to its image nearest to the first atom
    (``cell [..., 3, 3]``, rows are lattice vectors)."""
    shift = np.round((atoms - atoms[..., :1, :]) @ np.linalg.inv(cell))
    return atoms - shift @ cell
