"""Units, the per-structure ``Data`` convention, and the in-memory dataset the readers return.

One structure ("frame") is a ``torch_geometric.data.Data`` with

- ``z`` long ``[N]``: atomic numbers (or bead types),
- ``pos`` float ``[N, 3]``: positions, in ``units.length``,
- ``energy`` float ``[1]``: total energy, in ``units.energy`` (a ``Batch`` holds ``[B]``),
- ``forces`` float ``[N, 3]``: in ``units.force`` (only when the source has forces),
- ``natoms`` long ``[1]``,
- ``cell`` float ``[1, 3, 3]`` (rows are the lattice vectors) and ``pbc`` bool ``[1, 3]``,
  only for periodic structures.

Floats are ``float32`` unless a reader is asked for ``float64``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Data, InMemoryDataset

from pyg_hipts.data.batching import ContiguousFrames
from pyg_hipts.data.periodic import coincident_pairs, describe_close_pairs
from pyg_hipts.data.system import SystemInfo
from pyg_hipts.units import Units, length_factor

MIN_DISTANCE_ANGSTROM = 0.1
"""Atoms closer than this (in Å, converted to the data's length unit) are an error: no potential
is fitted there, and at distance 0 the geometry is undefined."""
CHECK_CHUNK = 512
"""Structures checked for close atoms at once."""


def make_frame(
    z: np.ndarray,
    pos: np.ndarray,
    energy: float | None,
    forces: np.ndarray | None = None,
    cell: np.ndarray | None = None,
    pbc: np.ndarray | None = None,
    *,
    atom_energies: np.ndarray | None = None,
    dtype: torch.dtype = torch.float32,
) -> Data:
    """One structure as ``Data``: ``z`` ``(N,)``, ``pos`` ``(N, 3)``, ``forces`` ``(N, 3)``,
    ``cell`` ``(3, 3)`` with lattice vectors as rows and ``pbc`` ``(3,)``, given together or not at all,
    and optional per-atom energies ``atom_energies`` ``(N,)`` (e.g. a teacher model's, as targets).

    ``energy`` is always kept in float64: total energies of molecules are large (rMD17 aspirin
    ≈ -4·10⁵ kcal/mol) and float32 would round them by ≈ 0.03 kcal/mol. ``None`` leaves it out
    (coarse-grained data carry forces only).
    """
    if (cell is None) != (pbc is None):
        raise ValueError("cell and pbc must be given together")
    frame = Data(
        z=torch.tensor(z, dtype=torch.long),
        pos=torch.tensor(pos, dtype=dtype),
        natoms=torch.tensor([len(z)], dtype=torch.long),
    )
    if energy is not None:
        frame.energy = torch.tensor([energy], dtype=torch.float64)
    if forces is not None:
        frame.forces = torch.tensor(forces, dtype=dtype)
    if atom_energies is not None:
        frame.atom_energies = torch.tensor(atom_energies, dtype=dtype).reshape(len(z))
    if cell is not None:
        frame.cell = torch.tensor(cell, dtype=dtype).reshape(1, 3, 3)
        frame.pbc = torch.tensor(pbc, dtype=torch.bool).reshape(1, 3)
    return frame


def check_close_atoms(
    pos: Tensor,
    counts: Tensor,
    cell: Tensor | None,
    pbc: Tensor | None,
    min_distance: float,
    *,
    source: str,
    first: int = 0,
) -> None:
    """Raise ``ValueError`` ``"<source>: frame f: atoms i and j are d apart …"`` when two atoms of
    the consecutive frames (``pos`` ``[A, 3]``, ``counts`` ``[k]`` atoms per frame, ``cell``
    ``[k, 3, 3]`` and ``pbc`` ``[k, 3]`` or ``None``), numbered from ``first``, are closer than
    ``min_distance``."""
    batch = torch.repeat_interleave(torch.arange(len(counts)), counts)
    edge_index, distance = coincident_pairs(pos, batch, min_distance, cell, pbc)
    if distance.numel():
        listing = describe_close_pairs(edge_index, distance, batch, min_distance, "frame", first)
        raise ValueError(f"{source}: {listing}")


class AtomsDataset(InMemoryDataset):
    """Structures held in memory, with the units and the file they were read from.

    Indexing with a slice, index tensor or mask (``dataset[idx]``, ``index_select``,
    ``shuffle``) returns a view that keeps ``units`` and ``source``.

    Args:
        data_list: frames following the convention of :func:`make_frame`, all with the same fields.
        units: units of ``pos``, ``energy`` and ``forces``.
        source: the file or folder the frames came from (used in messages).
        transform: applied to each frame on access, as in PyG datasets.
        min_distance: atoms closer than this (length unit) are an error naming the frame and the
            atoms; by default :data:`MIN_DISTANCE_ANGSTROM` in the data's unit, ``0`` for no check.
        system: masses, names, temperature and frame times recorded with the frames
            (:class:`~pyg_hipts.data.system.SystemInfo`); none by default.

    Every frame carries ``frame_number`` ``[1]``, its position in ``source``, so that a batch names
    its structures in messages.
    """

    def __init__(
        self,
        data_list: Sequence[Data],
        units: Units,
        source: str,
        transform: Callable[[Data], Data] | None = None,
        min_distance: float | None = None,
        system: SystemInfo | None = None,
    ) -> None:
        super().__init__(root=None, transform=transform)
        if len(data_list) == 0:
            raise ValueError(f"{source}: no frames")
        fields = set(data_list[0].keys())
        for i, frame in enumerate(data_list):
            if set(frame.keys()) != fields:
                raise ValueError(
                    f"{source}: frame {i} has fields {sorted(frame.keys())}, frame 0 has {sorted(fields)}"
                )
        self.data, self.slices = self.collate(list(data_list))
        self._units = units
        self._source = str(source)
        self._system = system or SystemInfo()
        if min_distance is None:
            min_distance = MIN_DISTANCE_ANGSTROM * length_factor("Å", units.length)
        if min_distance > 0:
            self._check_distances(min_distance)

    @property
    def frame_bounds(self) -> Tensor:
        """``[F + 1]`` offsets of the frames' atoms in the file's storage (all frames, not a view)."""
        if self.slices is None:  # PyG keeps no slices for a single frame
            return torch.tensor([0, self._data.pos.shape[0]])
        return self.slices["pos"]

    def _check_distances(self, min_distance: float) -> None:
        """Raise naming the frame and atoms when two atoms are closer than ``min_distance``."""
        bounds = self.frame_bounds
        periodic = "cell" in self._data
        for first in range(0, len(bounds) - 1, CHECK_CHUNK):
            last = min(first + CHECK_CHUNK, len(bounds) - 1)
            check_close_atoms(
                self._data.pos[bounds[first] : bounds[last]],
                bounds[first + 1 : last + 1] - bounds[first:last],
                self._data.cell[first:last] if periodic else None,
                self._data.pbc[first:last] if periodic else None,
                min_distance,
                source=f"{self._source}: atoms too close ({self._units.length})",
                first=first,
            )

    def contiguous(self) -> ContiguousFrames:
        """The whole file's storage as :class:`~pyg_hipts.data.batching.ContiguousFrames`."""
        storage = self._data
        return ContiguousFrames(
            offsets=self.frame_bounds.numpy(),
            per_atom={
                name: storage[name] for name in ("z", "pos", "forces", "atom_energies") if name in storage
            },
            per_frame={name: storage[name] for name in ("energy", "cell", "pbc") if name in storage},
        )

    def file_frames(self, positions: np.ndarray | None = None) -> np.ndarray:
        """File frame indices of this view's ``positions`` (all of the view when ``None``)."""
        frames = np.asarray(
            list(self.indices()) if self._indices is not None else range(self.len()), dtype=np.int64
        )
        return frames if positions is None else frames[positions]

    def frame_sizes(self) -> np.ndarray:
        """Atoms of each frame of this view ``[len(view)]``."""
        return np.diff(self.frame_bounds.numpy())[self.file_frames()]

    def get(self, idx: int) -> Data:
        """Frame ``idx`` of the file, with its ``frame_number``."""
        frame = super().get(idx)
        frame.frame_number = torch.tensor([idx], dtype=torch.long)
        return frame

    @property
    def units(self) -> Units:
        return self._units

    @property
    def source(self) -> str:
        return self._source

    @property
    def system(self) -> SystemInfo:
        """Masses, names, temperature and frame times of the file (all ``None`` if not recorded)."""
        return self._system

    @property
    def species(self) -> list[int]:
        """Sorted distinct values of ``z`` over the frames of this dataset (or view)."""
        return torch.unique(self._selected_z()).tolist()

    def _selected_z(self) -> Tensor:
        """``z`` of all atoms of the selected frames, ``[N_selected]``."""
        z = self._data.z
        if self._indices is None:
            return z
        frames = torch.as_tensor(list(self.indices()), dtype=torch.long)
        bounds = self.slices["z"]
        starts, counts = bounds[frames], bounds[frames + 1] - bounds[frames]
        first_of_frame = torch.cumsum(counts, 0) - counts
        atom = torch.arange(int(counts.sum())) + torch.repeat_interleave(starts - first_of_frame, counts)
        return z[atom]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({len(self)} frames, species={self.species}, "
            f"units=({self.units.length}, {self.units.energy}), source={self.source!r})"
        )
