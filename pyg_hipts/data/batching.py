"""Batches cut straight out of contiguous frame storage, and the plans that choose their frames.

A dataset stored contiguously (the in-memory :class:`~pyg_hipts.data.AtomsDataset` or a
memory-mapped :class:`~pyg_hipts.data.storage.PreparedDataset`) is a :class:`ContiguousFrames`:
per-atom arrays ``[A_total, ...]``, per-frame arrays ``[F, ...]`` and the offsets ``[F + 1]`` of
each frame's atoms. A batch of frames ``f_1 … f_B`` is then a handful of gathers,

    atoms = concat(offsets[f_b] … offsets[f_b + 1] - 1),   batch = repeat(b, natoms[f_b]),

with no Python object per structure. :class:`FrameBatchSampler` decides which frames go together:
a fixed number of structures, or as many as fit under a number of atoms, shuffled per epoch and
split into disjoint shards for distributed ranks.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset
from torch.utils.data.distributed import DistributedSampler
from torch_geometric.data import Batch


@dataclass
class ContiguousFrames:
    """Frame storage: ``offsets`` int64 ``[F + 1]``, ``per_atom`` arrays ``[A_total, ...]`` (at
    least ``z`` and ``pos``) and ``per_frame`` arrays ``[F, ...]`` (``energy``, ``cell``, ``pbc``).
    Arrays are NumPy arrays, memory maps or tensors."""

    offsets: np.ndarray
    per_atom: dict[str, Any]
    per_frame: dict[str, Any] = field(default_factory=dict)


def _take(array: Any, index: np.ndarray) -> Tensor:
    """``array[index]`` as a tensor (a copy), for a tensor, an array or a memory map."""
    if isinstance(array, Tensor):
        return array[torch.from_numpy(index)]
    return torch.from_numpy(np.ascontiguousarray(array[index]))


def atom_indices(offsets: np.ndarray, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The storage indices ``[A]`` of the atoms of ``frames`` ``[B]``, frame after frame, and the
    frames' atom counts ``[B]``."""
    starts = offsets[frames]
    counts = offsets[frames + 1] - starts
    first = np.cumsum(counts) - counts
    return np.arange(int(counts.sum()), dtype=np.int64) + np.repeat(starts - first, counts), counts


def gather_frames(store: ContiguousFrames, frames: np.ndarray) -> dict[str, Tensor]:
    """The fields of ``frames`` (file indices ``[B]``) concatenated as in a PyG ``Batch``: per-atom
    fields ``[A, ...]``, ``energy`` ``[B]``, ``cell`` ``[B, 3, 3]``, ``pbc`` ``[B, 3]``, ``natoms``
    and ``frame_number`` ``[B]``, ``batch`` ``[A]`` and ``ptr`` ``[B + 1]``."""
    frames = np.asarray(frames, dtype=np.int64)
    atoms, counts = atom_indices(store.offsets, frames)
    fields = {name: _take(array, atoms) for name, array in store.per_atom.items()}
    fields["z"] = fields["z"].long()  # stored narrower on disk
    fields.update({name: _take(array, frames) for name, array in store.per_frame.items()})
    natoms = torch.from_numpy(counts)
    fields["natoms"] = natoms
    fields["frame_number"] = torch.from_numpy(frames)
    fields["batch"] = torch.repeat_interleave(torch.arange(len(frames)), natoms)
    fields["ptr"] = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(natoms, 0)])
    return fields


def assemble_batch(store: ContiguousFrames, frames: np.ndarray) -> Batch:
    """A PyG ``Batch`` of ``frames`` (file indices), equal field by field to
    ``Batch.from_data_list([dataset[f] for f in frames])``."""
    return Batch(**gather_frames(store, frames))


class BatchAssembler(Dataset):
    """A map-style dataset whose items are whole batches: ``assembler[positions]`` with
    ``positions`` ``[B]`` indices into ``dataset`` (a view or a whole dataset) gives their
    ``Batch``. Used with ``DataLoader(assembler, sampler=FrameBatchSampler(...), batch_size=None)``,
    so loader workers assemble batches in parallel."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, positions: np.ndarray) -> Batch:
        frames = self.dataset.file_frames(np.sort(np.asarray(positions, dtype=np.int64)))
        return assemble_batch(self.dataset.contiguous(), frames)


def pass_through(batch: Batch) -> Batch:
    """The loader's ``collate_fn``: items are already batches."""
    return batch


def batches_by_atoms(order: np.ndarray, natoms: np.ndarray, max_atoms: int) -> list[np.ndarray]:
    """Cut ``order`` (positions) into consecutive batches of at most ``max_atoms`` atoms each
    (greedily: a batch closes when the next frame would not fit). A frame larger than
    ``max_atoms`` raises ``ValueError`` naming it."""
    sizes = natoms[order]
    too_large = np.flatnonzero(sizes > max_atoms)
    if too_large.size:
        position = int(order[too_large[0]])
        raise ValueError(
            f"frame {position} has {int(sizes[too_large[0]])} atoms, more than max_atoms={max_atoms}"
        )
    bounds, filled = [0], 0
    for index, size in enumerate(sizes.tolist()):
        if filled + size > max_atoms:
            bounds.append(index)
            filled = 0
        filled += size
    bounds.append(len(order))
    return [order[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]


class FrameBatchSampler(DistributedSampler):
    """Batches of positions ``[B]`` into a dataset of ``len(natoms)`` frames.

    Each epoch the positions are shuffled (seed + epoch, the same on every rank) or kept in
    order, cut into batches of ``batch_size`` structures or of at most ``max_atoms`` atoms, and
    dealt to the ``num_replicas`` ranks in turn: rank ``r`` takes batches ``r, r + R, …``. When
    the batches do not divide evenly, the first ones are repeated so that every rank runs the
    same number of steps (as ``DistributedSampler`` repeats samples). With ``max_atoms`` the
    number of batches can change by a few from one epoch to the next.

    It is a ``DistributedSampler`` so that Lightning calls :meth:`set_epoch` and leaves it in
    place under DDP rather than inserting its own sampler.
    """

    def __init__(
        self,
        natoms: np.ndarray,
        *,
        batch_size: int | None = None,
        max_atoms: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if (batch_size is None) == (max_atoms is None):
            raise ValueError("give exactly one of batch_size and max_atoms")
        if (batch_size or max_atoms) < 1:
            raise ValueError(f"batch_size / max_atoms must be positive, got {batch_size or max_atoms}")
        super().__init__(range(len(natoms)), num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed)
        self.natoms = np.asarray(natoms, dtype=np.int64)
        self.batch_size, self.max_atoms = batch_size, max_atoms
        self._plan: tuple[int, list[np.ndarray]] | None = None

    def _batches(self) -> list[np.ndarray]:
        """This rank's batches for the current epoch (computed once per epoch)."""
        if self._plan is not None and self._plan[0] == self.epoch:
            return self._plan[1]
        n = len(self.natoms)
        order = np.random.default_rng(self.seed + self.epoch).permutation(n) if self.shuffle else np.arange(n)
        if self.max_atoms is None:
            batches = [order[start : start + self.batch_size] for start in range(0, n, self.batch_size)]
        else:
            batches = batches_by_atoms(order, self.natoms, self.max_atoms)
        per_rank = math.ceil(len(batches) / self.num_replicas)
        padded = batches + batches[: per_rank * self.num_replicas - len(batches)]
        mine = padded[self.rank :: self.num_replicas]
        self._plan = (self.epoch, mine)
        return mine

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter(self._batches())

    def __len__(self) -> int:
        return len(self._batches())
