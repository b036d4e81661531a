"""Writing a prepared dataset (:mod:`pyg_hipts.data.storage`) block by block: the arrays as
chunks arrive, then the species counts, statistics, fingerprint and ``meta.json``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pyg_hipts.data.chunks import FrameChunk
from pyg_hipts.data.dataset import Units, check_close_atoms
from pyg_hipts.data.storage import (
    FORMAT_NAME,
    FORMAT_VERSION,
    PER_ATOM,
    PER_FRAME,
    PREPARED_META,
    Z_DTYPE,
    PreparedDataset,
    array_file,
    dtype_of,
)


class PreparedWriter:
    """Writes a prepared dataset into ``folder`` one :class:`~pyg_hipts.data.chunks.FrameChunk` at a
    time (:meth:`append`), then the statistics and ``meta.json`` (:meth:`finish`).

    The data go to ``<folder>.partial`` first and are moved into place by :meth:`finish`; an
    existing ``folder`` is an error unless ``overwrite``. With ``min_distance > 0`` every chunk is
    checked for atoms closer than that (an error naming the frame); with ``cutoff`` the neighbour
    counts within it are gathered (mean and maximum per atom).
    """

    def __init__(
        self,
        folder: str | Path,
        units: Units,
        source: str,
        *,
        dtype: torch.dtype = torch.float32,
        min_distance: float = 0.0,
        cutoff: float | None = None,
        overwrite: bool = False,
    ) -> None:
        self.folder = Path(folder)
        if self.folder.exists() and not overwrite:
            raise FileExistsError(f"{self.folder}: exists; choose another output or pass overwrite")
        self.partial = self.folder.with_name(self.folder.name + ".partial")
        shutil.rmtree(self.partial, ignore_errors=True)
        self.partial.mkdir(parents=True)
        self.units, self.source = units, source
        self.float_dtype = np.dtype(str(dtype).removeprefix("torch."))
        self.min_distance, self.cutoff = min_distance, cutoff
        self.fields: tuple[str, ...] | None = None
        self.handles: dict[str, Any] = {}
        self.natoms: list[np.ndarray] = []
        self.species: set[int] = set()
        self.n_frames = self.n_atoms = 0
        self.force_square_sum = 0.0
        self.neighbours = {"pairs": 0, "max": 0}

    def append(self, chunk: FrameChunk) -> None:
        """Validate and write ``chunk`` (its optional fields must be those of the first chunk)."""
        present = chunk.present()
        if self.fields is None:
            self.fields = present
            names = [n for n in (*PER_ATOM, *PER_FRAME) if n in ("z", "pos") or n in present]
            self.handles = {name: array_file(self.partial, name).open("wb") for name in names}
        elif present != self.fields:
            raise ValueError(
                f"{self.source}: frame {self.n_frames} has fields {sorted(present)}, "
                f"frame 0 has {sorted(self.fields)}"
            )
        if chunk.z.min(initial=0) < 0 or chunk.z.max(initial=0) > np.iinfo(Z_DTYPE).max:
            raise ValueError(
                f"{self.source}: species outside [0, {np.iinfo(Z_DTYPE).max}] near frame {self.n_frames}"
            )
        self._check_geometry(chunk)
        for name, array in chunk.arrays().items():
            if name in self.handles:
                self.handles[name].write(
                    np.ascontiguousarray(array, dtype=dtype_of(name, self.float_dtype)).tobytes()
                )
        self.natoms.append(np.asarray(chunk.natoms, dtype=np.int64))
        self.species.update(np.unique(chunk.z).tolist())
        if chunk.forces is not None:
            self.force_square_sum += float(np.square(chunk.forces, dtype=np.float64).sum())
        self.n_frames += chunk.n_frames
        self.n_atoms += len(chunk.z)

    def _check_geometry(self, chunk: FrameChunk) -> None:
        """The close-atom check and the neighbour counts of one chunk."""
        if not self.min_distance and self.cutoff is None:
            return
        pos = torch.from_numpy(np.array(chunk.pos, dtype=np.float64))
        counts = torch.from_numpy(chunk.natoms)
        cell = None if chunk.cell is None else torch.from_numpy(np.array(chunk.cell, dtype=np.float64))
        pbc = None if chunk.pbc is None else torch.from_numpy(np.array(chunk.pbc))
        if self.min_distance:
            source = f"{self.source}: atoms too close ({self.units.length})"
            check_close_atoms(pos, counts, cell, pbc, self.min_distance, source=source, first=self.n_frames)
        if self.cutoff is not None:
            from pyg_hipts.data.periodic import neighbour_pairs

            batch = torch.repeat_interleave(torch.arange(len(counts)), counts)
            edge_index, _, _ = neighbour_pairs(pos, batch, self.cutoff, cell, pbc)
            per_atom = torch.bincount(edge_index[1], minlength=len(pos))
            self.neighbours["pairs"] += int(edge_index.shape[1])
            self.neighbours["max"] = max(self.neighbours["max"], int(per_atom.max()) if len(pos) else 0)

    def finish(self) -> Path:
        """Close the arrays, write the offsets, species counts, statistics and ``meta.json``, and
        move the folder into place; returns it."""
        if self.fields is None:
            raise ValueError(f"{self.source}: no frames")
        for handle in self.handles.values():
            handle.close()
        natoms = np.concatenate(self.natoms)
        offsets = np.concatenate([[0], np.cumsum(natoms)]).astype(np.int64)
        offsets.tofile(array_file(self.partial, "offsets"))
        species = sorted(self.species)
        meta = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "source": self.source,
            "units": {"length": self.units.length, "energy": self.units.energy},
            "n_frames": self.n_frames,
            "n_atoms": self.n_atoms,
            "float_dtype": self.float_dtype.name,
            "fields": ["z", "pos", *self.fields],
            "species": species,
        }
        dataset = PreparedDataset(self.partial, meta=meta)
        meta["fingerprint"] = dataset.compute_fingerprint()
        meta["statistics"] = self._statistics(dataset)
        (self.partial / PREPARED_META).write_text(json.dumps(meta, indent=1))
        shutil.rmtree(self.folder, ignore_errors=True)
        self.partial.rename(self.folder)
        return self.folder

    def discard(self) -> None:
        """Close the files and remove ``<folder>.partial`` if :meth:`finish` did not move it."""
        for handle in self.handles.values():
            handle.close()
        shutil.rmtree(self.partial, ignore_errors=True)

    def _statistics(self, dataset: PreparedDataset) -> dict[str, Any]:
        """Species counts (written), reference energies, force RMS and neighbour counts."""
        statistics: dict[str, Any] = {
            "atoms_per_frame": {
                "mean": self.n_atoms / self.n_frames,
                "max": int(np.diff(dataset.offsets).max()),
            }
        }
        equations = dataset.write_species_counts()
        if equations is not None:
            statistics["reference_energies"] = dict(
                zip(map(str, dataset.species), equations.solve().tolist(), strict=True)
            )
            statistics["normal_equations"] = {
                "gram": equations.gram.tolist(),
                "moment": equations.moment.tolist(),
            }
        if "forces" in self.fields:
            statistics["force_rms"] = float(np.sqrt(self.force_square_sum / (3 * self.n_atoms)))
        if self.cutoff is not None:
            statistics["neighbours"] = {
                "cutoff": self.cutoff,
                "mean_per_atom": self.neighbours["pairs"] / self.n_atoms,
                "max_per_atom": self.neighbours["max"],
            }
        return statistics
