"""Reading a file block by block (:class:`~pyg_hipts.data.chunks.FrameChunk`), never whole.

``npz`` members are read as byte streams from the zip archive, ``k`` rows at a time (compressed
or not); HDF5 datasets are sliced. Other formats (ASE files, deepmd folders) are read whole by
their reader and then cut into chunks. The options are those of the format's reader.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import h5py
import numpy as np
import torch

from pyg_hipts.data.chunks import FrameChunk, dataset_chunks, stacked_chunks
from pyg_hipts.data.dataset import Units
from pyg_hipts.data.readers import hdf5, npz, read_dataset, resolve_format
from pyg_hipts.data.readers._checks import problem, require_path
from pyg_hipts.data.system import UNIT_KEYS, stored_units

STREAMED_FORMATS = ("npz", "hdf5")
"""Formats read block by block; the others are read whole, then chunked."""


class NpyMember:
    """One ``.npy`` member of an open zip archive, read by rows: ``member[start:stop]``.

    Rows are read forwards from a byte stream, so consecutive blocks cost one pass over the
    member; ``np.asarray(member)`` reads it whole (for small arrays such as species).
    """

    def __init__(self, stream: IO[bytes], name: str) -> None:
        self.stream, self.name = stream, name
        version = np.lib.format.read_magic(stream)
        header_readers = {
            (1, 0): np.lib.format.read_array_header_1_0,
            (2, 0): np.lib.format.read_array_header_2_0,
        }
        if version not in header_readers:
            raise ValueError(f"{name}: .npy format version {version} is not supported")
        shape, fortran_order, dtype = header_readers[version](stream)
        if fortran_order and len(shape) > 1:
            raise ValueError(f"{name} is stored in Fortran order, which cannot be read by rows")
        if dtype.hasobject:
            raise ValueError(f"{name} holds Python objects, which are not read (they would run pickled code)")
        self.shape, self.dtype = tuple(shape), dtype
        self.ndim = len(self.shape)
        self.data_start = stream.tell()
        self.row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * dtype.itemsize

    def __getitem__(self, rows: slice) -> np.ndarray:
        start, stop, _ = rows.indices(self.shape[0] if self.shape else 1)
        self.stream.seek(self.data_start + start * self.row_bytes)
        count = max(stop - start, 0)
        data = self.stream.read(count * self.row_bytes)
        if len(data) != count * self.row_bytes:
            raise EOFError(f"{self.name} is truncated")
        return np.frombuffer(data, dtype=self.dtype).reshape((count, *self.shape[1:]))

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        if not self.shape:
            self.stream.seek(self.data_start)
            return np.frombuffer(self.stream.read(self.dtype.itemsize), dtype=self.dtype).reshape(())
        values = self[0 : self.shape[0]]
        return values if dtype is None else values.astype(dtype)


@dataclass
class ChunkSource:
    """What :func:`read_chunks` gives: the units, the float dtype asked for, the chunks."""

    units: Units
    dtype: torch.dtype
    chunks: Iterator[FrameChunk]
    streamed: bool


def _npz_chunks(path: Path, chunk_frames: int, keys: dict[str, Any]) -> Iterator[FrameChunk]:
    with zipfile.ZipFile(path) as archive, ExitStack() as stack:
        members = {}
        for info in archive.infolist():
            if info.filename.endswith(".npy"):
                name = info.filename[: -len(".npy")]
                members[name] = NpyMember(stack.enter_context(archive.open(info)), f"{path}:{name}")
        if "weights" in members:
            raise ValueError(
                f"{path}: the frames carry weights (biased sampling), which a prepared dataset does "
                "not keep; read the .npz file itself"
            )
        options = {
            "z_key": "nuclear_charges",
            "pos_key": "coords",
            "energy_key": "energies",
            "forces_key": "forces",
            **keys,
        }
        yield from stacked_chunks(path, members, chunk_frames=chunk_frames, **options)


def _hdf5_chunks(path: Path, chunk_frames: int, keys: dict[str, Any]) -> Iterator[FrameChunk]:
    coordinates_key = keys.get("coordinates_key", "coordinates")
    with h5py.File(path, "r") as handle:
        groups = hdf5.molecule_groups(handle, coordinates_key)
        if not groups:
            raise problem(path, f"no group holds a {coordinates_key!r} dataset")
        for group in groups:
            yield from stacked_chunks(
                f"{path}:{group.name}",
                group,
                z_key=keys.get("species_key", "species"),
                pos_key=coordinates_key,
                energy_key=keys.get("energy_key", "energies"),
                forces_key=keys.get("forces_key", "forces"),
                chunk_frames=chunk_frames,
            )


def _recorded_units(name: str, path: Path) -> Units | None:
    """The units an npz file records (:func:`~pyg_hipts.data.system.stored_units`)."""
    if name != "npz":
        return None
    with np.load(require_path(path)) as arrays:
        return stored_units(path, {key: arrays[key] for key in UNIT_KEYS if key in arrays.files})


def read_chunks(
    path: str | Path, format: str | None = None, chunk_frames: int = 10_000, **options: Any
) -> ChunkSource:
    """The frames of ``path`` in chunks of at most ``chunk_frames``, with the units and dtype of
    ``options`` (the reader's defaults otherwise). ``npz`` and HDF5 stream; other formats are read
    whole by :func:`~pyg_hipts.data.read_dataset` first."""
    path = Path(path)
    name = resolve_format(path, format)
    dtype = options.pop("dtype", torch.float32)
    streamers = {"npz": (_npz_chunks, npz.DEFAULT_UNITS), "hdf5": (_hdf5_chunks, hdf5.DEFAULT_UNITS)}
    if name in streamers:
        reader, default_units = streamers[name]
        units = options.pop("units", None) or _recorded_units(name, path) or default_units
        return ChunkSource(units, dtype, reader(require_path(path), chunk_frames, options), True)
    dataset = read_dataset(path, name, dtype=dtype, **options)
    return ChunkSource(dataset.units, dtype, dataset_chunks(dataset, chunk_frames), False)
