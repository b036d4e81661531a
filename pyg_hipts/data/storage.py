"""Prepared datasets: a folder of flat binary arrays (written by
:class:`~pyg_hipts.data.prepared_writer.PreparedWriter`), read memory-mapped.

Layout (``F`` frames, ``A`` atoms in all, ``S`` species)::

    meta.json          format, version, units, counts, fields with their dtypes, species,
                       content fingerprint and the statistics of ``prepare``
    offsets.bin        int64 [F + 1]  first atom of each frame (and A at the end)
    z.bin              int16 [A]      atomic numbers or bead types
    pos.bin            float [A, 3]   positions (float32 or float64, as prepared)
    forces.bin         float [A, 3]   (when the data have forces)
    atom_energies.bin  float [A]      (per-atom energy targets, when present)
    energy.bin         float64 [F]    (when the data have energies)
    cell.bin           float [F, 3, 3], pbc.bin bool [F, 3]  (periodic data)
    species_counts.bin int32 [F, S]   atoms of each species per frame, for the energy fit

Every file is raw little-endian data with no header; ``meta.json`` gives dtypes and shapes and is
written last, so a folder without it is not a dataset. Opening maps the files (``np.memmap``): a
batch costs reading its own atoms, whatever the dataset's size. Nothing is unpickled.
"""

from __future__ import annotations

import hashlib
import json
import mmap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Data, Dataset

from pyg_hipts.data.batching import ContiguousFrames, gather_frames
from pyg_hipts.data.dataset import Units
from pyg_hipts.data.statistics import NormalEquations, count_species

PREPARED_META = "meta.json"
FORMAT_NAME = "pyg_hipts.prepared"
FORMAT_VERSION = 1
Z_DTYPE = np.int16
STATISTICS_BLOCK = 65_536
"""Frames read at once by the passes over a written dataset (fingerprint, species counts)."""
PER_ATOM = ("z", "pos", "forces", "atom_energies")
PER_FRAME = ("energy", "cell", "pbc")
TAIL_SHAPES = {
    "z": (),
    "pos": (3,),
    "forces": (3,),
    "atom_energies": (),
    "energy": (),
    "cell": (3, 3),
    "pbc": (3,),
}


def array_file(folder: Path, name: str) -> Path:
    """The file of array ``name`` in a prepared folder."""
    return folder / f"{name}.bin"


def dtype_of(name: str, float_dtype: np.dtype) -> np.dtype:
    """The stored dtype of array ``name``: species int16, energies float64, pbc bool, the rest
    ``float_dtype``."""
    return {"z": np.dtype(Z_DTYPE), "energy": np.dtype(np.float64), "pbc": np.dtype(bool)}.get(
        name, float_dtype
    )


def read_meta(folder: Path) -> dict[str, Any]:
    """``meta.json`` of a prepared dataset, checked for its format and version."""
    path = folder / PREPARED_META
    if not path.is_file():
        raise FileNotFoundError(
            f"{folder}: no {PREPARED_META}; not a prepared dataset (or an unfinished one)"
        )
    meta = json.loads(path.read_text())
    if meta.get("format") != FORMAT_NAME or meta.get("version") != FORMAT_VERSION:
        raise ValueError(
            f"{path}: format {meta.get('format')!r} version {meta.get('version')!r}, "
            f"expected {FORMAT_NAME!r} version {FORMAT_VERSION}"
        )
    return meta


class PreparedDataset(Dataset):
    """A prepared dataset, memory-mapped: a PyG ``Dataset`` whose items are ``Data`` frames like
    those of :class:`~pyg_hipts.data.AtomsDataset` (with ``frame_number``), and whose batches are
    assembled from the mapped arrays (:meth:`contiguous`, :func:`~pyg_hipts.data.batching.assemble_batch`).

    Views (``dataset[indices]``) keep their frame indices as one int64 array. The maps are
    opened lazily in each process, so a dataset passed to loader workers carries no array data.
    """

    def __init__(
        self,
        folder: str | Path,
        transform: Callable[[Data], Data] | None = None,
        *,
        meta: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(root=None, transform=transform)
        self.folder = Path(folder)
        self.meta = read_meta(self.folder) if meta is None else meta
        self._maps: dict[str, np.memmap] | None = None

    # --- storage ------------------------------------------------------------------------------

    def _map(self, name: str) -> np.memmap:
        tail = TAIL_SHAPES.get(name, (len(self.meta["species"]),))
        per_frame = name in PER_FRAME or name == "species_counts"
        dtype = (
            np.dtype(np.int32)
            if name == "species_counts"
            else dtype_of(name, np.dtype(self.meta["float_dtype"]))
        )
        if name == "offsets":
            shape, dtype = (self.meta["n_frames"] + 1,), np.dtype(np.int64)
        else:
            shape = (self.meta["n_frames"] if per_frame else self.meta["n_atoms"], *tail)
        path = array_file(self.folder, name)
        expected = int(np.prod(shape)) * dtype.itemsize
        if not path.is_file() or path.stat().st_size != expected:
            found = path.stat().st_size if path.is_file() else "no file"
            raise ValueError(f"{path}: expected {expected} bytes for {name} {shape} {dtype}, found {found}")
        mapped = np.memmap(path, dtype=dtype, mode="r", shape=shape)
        if hasattr(mmap, "MADV_RANDOM") and mapped.size:
            mapped._mmap.madvise(mmap.MADV_RANDOM)  # batches read scattered frames: no read-ahead
        return mapped

    def arrays(self) -> dict[str, np.memmap]:
        """The mapped arrays by name (opened on first use in this process)."""
        if self._maps is None:
            names = ["offsets", *self.meta["fields"]]
            self._maps = {name: self._map(name) for name in names}
        return self._maps

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_maps"] = None
        return state

    @property
    def offsets(self) -> np.ndarray:
        return self.arrays()["offsets"]

    def contiguous(self) -> ContiguousFrames:
        """The whole file as :class:`~pyg_hipts.data.batching.ContiguousFrames`."""
        arrays = self.arrays()
        return ContiguousFrames(
            offsets=arrays["offsets"],
            per_atom={n: arrays[n] for n in PER_ATOM if n in arrays},
            per_frame={n: arrays[n] for n in PER_FRAME if n in arrays},
        )

    # --- frames and views -----------------------------------------------------------------------

    def file_frames(self, positions: np.ndarray | None = None) -> np.ndarray:
        """File frame indices of this view's ``positions`` (all of the view when ``None``)."""
        frames = np.arange(self.meta["n_frames"]) if self._indices is None else np.asarray(self._indices)
        return frames if positions is None else frames[positions]

    def index_select(self, idx: Any) -> PreparedDataset:
        """A view of the frames ``idx`` (slice, integer sequence or array, long tensor or mask)."""
        if isinstance(idx, Tensor) and idx.dtype == torch.bool:
            idx = idx.nonzero().flatten()
        if isinstance(idx, slice):
            chosen = self.file_frames()[idx]
        else:
            chosen = self.file_frames(np.asarray(idx, dtype=np.int64).reshape(-1))
        view = self.__class__.__new__(self.__class__)
        view.__dict__.update(self.__dict__)
        view._indices = chosen
        return view

    def len(self) -> int:
        return self.meta["n_frames"]

    def __len__(self) -> int:
        return self.meta["n_frames"] if self._indices is None else len(self._indices)

    def get(self, idx: int) -> Data:
        """Frame ``idx`` of the file as ``Data`` (the fields of :func:`~pyg_hipts.data.make_frame`)."""
        fields = gather_frames(self.contiguous(), np.array([idx]))
        del fields["batch"], fields["ptr"]
        return Data(**fields)

    def frame_sizes(self) -> np.ndarray:
        """Atoms of each frame of this view ``[len(view)]``."""
        return np.diff(self.offsets)[self.file_frames()]

    # --- what the readers' datasets offer ------------------------------------------------------

    @property
    def units(self) -> Units:
        return Units(**self.meta["units"])

    @property
    def source(self) -> str:
        return str(self.folder)

    @property
    def frame_bounds(self) -> Tensor:
        """``[F + 1]`` atom offsets of all frames of the file."""
        return torch.from_numpy(np.array(self.offsets))

    @property
    def species(self) -> list[int]:
        """Sorted species of this dataset (of the view's frames for a view)."""
        if self._indices is None:
            return list(self.meta["species"])
        present = np.zeros(len(self.meta["species"]), dtype=bool)
        counts = self.arrays_with_counts()
        for block in self._frame_blocks():
            present |= (counts[block] > 0).any(axis=0)
        return [s for s, p in zip(self.meta["species"], present, strict=True) if p]

    @property
    def fingerprint(self) -> dict[str, np.ndarray]:
        """The content fingerprint stored by ``prepare`` (see :func:`compute_fingerprint`)."""
        stored = self.meta["fingerprint"]
        return {
            "n_frames": np.array(stored["n_frames"]),
            "positions_sha256": np.array(stored["positions_sha256"]),
        }

    def compute_fingerprint(self) -> dict[str, Any]:
        """``n_frames`` and the SHA-256 of all species (int64) then all positions (float32), the
        same as :func:`~pyg_hipts.data.splits.dataset_fingerprint` of the file read in memory, so a
        split saved on either is accepted on the other. Read in blocks, not mapped."""
        digest = hashlib.sha256()
        atoms_per_block = STATISTICS_BLOCK * 64
        for name, dtype in (("z", np.int64), ("pos", np.float32)):
            for start in range(0, self.meta["n_atoms"], atoms_per_block):
                count = min(atoms_per_block, self.meta["n_atoms"] - start)
                digest.update(self._read_rows(name, start, count).astype(dtype).tobytes())
        return {"n_frames": self.meta["n_frames"], "positions_sha256": digest.hexdigest()}

    def _read_rows(self, name: str, start: int, count: int) -> np.ndarray:
        """Rows ``start … start + count − 1`` of array ``name``, read from its file (no mapping,
        so a pass over the whole dataset keeps no pages resident)."""
        mapped = self.arrays()[name]
        row_bytes = int(np.prod(mapped.shape[1:], dtype=np.int64)) * mapped.dtype.itemsize
        values = np.fromfile(
            array_file(self.folder, name),
            dtype=mapped.dtype,
            count=count * row_bytes // mapped.dtype.itemsize,
            offset=start * row_bytes,
        )
        return values.reshape(count, *mapped.shape[1:])

    def _frame_blocks(self) -> list[np.ndarray]:
        frames = self.file_frames()
        return [frames[start : start + STATISTICS_BLOCK] for start in range(0, len(frames), STATISTICS_BLOCK)]

    def arrays_with_counts(self) -> np.memmap:
        """The ``species_counts`` ``[F, S]`` map."""
        return self._map("species_counts")

    def write_species_counts(self) -> NormalEquations | None:
        """Write ``species_counts.bin`` block by block; return the normal equations of the
        reference-energy fit over all frames (``None`` without energies)."""
        species, n_frames = self.meta["species"], self.meta["n_frames"]
        equations = NormalEquations(len(species)) if "energy" in self.meta["fields"] else None
        offsets = np.array(self.offsets)
        with array_file(self.folder, "species_counts").open("wb") as handle:
            for start in range(0, n_frames, STATISTICS_BLOCK):
                stop = min(start + STATISTICS_BLOCK, n_frames)
                z = self._read_rows("z", int(offsets[start]), int(offsets[stop] - offsets[start]))
                sizes = torch.from_numpy(np.diff(offsets[start : stop + 1]))
                batch = torch.repeat_interleave(torch.arange(stop - start), sizes)
                counts = count_species(
                    torch.from_numpy(z.astype(np.int64)), batch, species, num_graphs=stop - start
                )
                handle.write(counts.numpy().astype(np.int32).tobytes())
                if equations is not None:
                    equations.add(counts, torch.from_numpy(self._read_rows("energy", start, stop - start)))
        return equations

    def reference_energy_equations(self, species: Sequence[int]) -> NormalEquations:
        """Normal equations of the reference-energy fit over this view's frames, from the stored
        species counts and energies (columns in the order of ``species``, which must include every
        species of the file that the view holds)."""
        if "energy" not in self.meta["fields"]:
            raise ValueError(f"{self.source}: no energies to fit reference energies on")
        stored = list(self.meta["species"])
        missing = sorted(set(self.species) - set(species))
        if missing:
            raise ValueError(f"species {missing} occur in the data but are not in species={list(species)}")
        columns = torch.tensor([stored.index(s) if s in stored else -1 for s in species])
        counts_map, energy = self.arrays_with_counts(), self.arrays()["energy"]
        equations = NormalEquations(len(species))
        for block in self._frame_blocks():
            stored_counts = torch.from_numpy(np.asarray(counts_map[block], dtype=np.int64))
            counts = torch.zeros(len(block), len(species), dtype=torch.long)
            known = columns >= 0
            counts[:, known] = stored_counts[:, columns[known]]
            equations.add(counts, torch.from_numpy(np.asarray(energy[block])))
        return equations

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({len(self)} frames, species={self.meta['species']}, "
            f"units=({self.units.length}, {self.units.energy}), source={self.source!r})"
        )


def open_prepared(path: str | Path, **options: Any) -> PreparedDataset:
    """Open the prepared dataset in folder ``path`` (the ``prepared`` reader; takes no options:
    units and dtype were fixed by ``prepare``)."""
    if options:
        raise ValueError(f"{path}: a prepared dataset takes no reader options, got {sorted(options)}")
    return PreparedDataset(path)
