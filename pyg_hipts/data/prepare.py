"""``pyg-hipts prepare``: any readable file into a prepared (memory-mapped) dataset, streaming.

    pyg-hipts prepare --input rmd17_aspirin.npz --output aspirin.prepared [--cutoff 5.0]

``npz`` and HDF5 inputs are read block by block (``--chunk_frames`` frames at a time) and never
held whole; other formats are read by their reader first. Each block is validated (shapes,
NaN / infinite values, atoms closer than 0.1 Å) and appended; then the statistics are gathered
in a pass over the written arrays: species counts per frame, the per-species reference energies
by normal equations, the force RMS and, with ``--cutoff``, the neighbours per atom. The result
is used anywhere a data file is: ``--data.train_file aspirin.prepared``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
import yaml
from tqdm import tqdm

from pyg_hipts.data.chunks import FrameChunk
from pyg_hipts.data.dataset import MIN_DISTANCE_ANGSTROM, Units
from pyg_hipts.data.prepared_writer import PreparedWriter
from pyg_hipts.data.readers.streaming import read_chunks
from pyg_hipts.data.storage import PreparedDataset
from pyg_hipts.units import length_factor

FLOAT_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def reader_options_of(options: dict[str, Any]) -> dict[str, Any]:
    """Reader options from YAML / JSON: ``units`` as a mapping and ``dtype`` as a name become a
    :class:`~pyg_hipts.data.Units` and a torch dtype."""
    options = dict(options)
    if isinstance(options.get("units"), dict):
        options["units"] = Units(**options["units"])
    if isinstance(options.get("dtype"), str):
        if options["dtype"] not in FLOAT_DTYPES:
            raise ValueError(f"dtype must be one of {sorted(FLOAT_DTYPES)}, got {options['dtype']!r}")
        options["dtype"] = FLOAT_DTYPES[options["dtype"]]
    return options


def _with_progress(chunks: Iterable[FrameChunk], show: bool) -> Iterable[FrameChunk]:
    with tqdm(desc="prepare", unit=" frames", disable=not show, file=sys.stderr, mininterval=1.0) as bar:
        for chunk in chunks:
            yield chunk
            bar.update(chunk.n_frames)


def prepare(
    input: str | Path,
    output: str | Path,
    *,
    format: str | None = None,
    reader_options: dict[str, Any] | None = None,
    chunk_frames: int = 10_000,
    cutoff: float | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> PreparedDataset:
    """Write ``input`` as a prepared dataset in folder ``output`` and open it (see the module
    docstring). ``reader_options`` are those of the input's reader (keys, ``units``, ``dtype``)."""
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames must be positive, got {chunk_frames}")
    source = read_chunks(input, format, chunk_frames, **reader_options_of(reader_options or {}))
    min_distance = MIN_DISTANCE_ANGSTROM * length_factor("Å", source.units.length) if source.streamed else 0.0
    writer = PreparedWriter(
        output,
        source.units,
        str(input),
        dtype=source.dtype,
        min_distance=min_distance,
        cutoff=cutoff,
        overwrite=overwrite,
    )
    try:
        for chunk in _with_progress(source.chunks, progress):
            writer.append(chunk)
        return PreparedDataset(writer.finish())
    finally:
        writer.discard()


def main(args: list[str]) -> PreparedDataset:
    """``pyg-hipts prepare`` on ``args``; prints the dataset and its statistics."""
    parser = argparse.ArgumentParser(prog="pyg-hipts prepare", description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", required=True, help="file or folder in any readable format")
    parser.add_argument("--output", required=True, help="folder to write (must not exist)")
    parser.add_argument("--format", help="reader format (by default from the suffix)")
    parser.add_argument(
        "--reader_options", default="{}", help="YAML mapping for the reader (keys, units, dtype)"
    )
    parser.add_argument("--chunk_frames", type=int, default=10_000, help="frames read and written at once")
    parser.add_argument("--cutoff", type=float, help="gather neighbour counts within this distance")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    options = parser.parse_args(args)
    started = time.perf_counter()
    dataset = prepare(
        options.input,
        options.output,
        format=options.format,
        reader_options=yaml.safe_load(options.reader_options) or {},
        chunk_frames=options.chunk_frames,
        cutoff=options.cutoff,
        overwrite=options.overwrite,
        progress=not options.quiet,
    )
    seconds = time.perf_counter() - started
    statistics = {k: v for k, v in dataset.meta["statistics"].items() if k != "normal_equations"}
    print(f"{dataset} in {seconds:.1f} s ({len(dataset) / seconds:.0f} frames/s)")
    print(json.dumps(statistics, indent=1))
    return dataset
