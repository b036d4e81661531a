"""``pyg-hipts label``: write an ensemble's mean forces and per-atom energies as training labels.

    pyg-hipts label --ensemble runs/teachers/ensemble.yaml --input train.npz --output labelled.npz

The output is an rMD17-style ``.npz`` in the input's units: ``nuclear_charges`` ``[F, n]``,
``coords`` ``[F, n, 3]``, the input's reference ``energies`` ``[F]``, the ensemble-mean
``forces`` ``[F, n, 3]`` and ``atom_energies`` ``[F, n]``, their standard deviations
(``forces_std``, ``atom_energies_std``) and the ensemble's ``teacher_energies`` /
``teacher_energies_std`` ``[F]``. Read it back with ``read_npz(path, atom_energies_key=
"atom_energies")`` (or the data module's ``reader_options``). All frames must have the same
number of atoms. ``--ensemble`` is the ``ensemble.yaml`` of ``pyg-hipts ensemble`` or an ensemble
saved with :func:`~pyg_hipts.potentials.save_potential`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from torch_geometric.data import Batch

from pyg_hipts.data import AtomsDataset, read_dataset
from pyg_hipts.potentials import Potential, load_potential
from pyg_hipts.potentials.ensemble import SPREADS, Ensemble


def load_ensemble(path: str | Path) -> Potential:
    """The ensemble of an ``ensemble.yaml`` (:meth:`Ensemble.from_file`) or of a saved potential
    file (:func:`~pyg_hipts.potentials.load_potential`)."""
    path = Path(path)
    if path.suffix in (".yaml", ".yml"):
        return Ensemble.from_file(path)
    return load_potential(path)


def ensemble_labels(
    ensemble: Potential, dataset: AtomsDataset, batch_size: int = 50
) -> dict[str, np.ndarray]:
    """The arrays of the labelled file (see the module docstring) for every frame of ``dataset``;
    ``ensemble`` is a potential that reports the spreads of an :class:`Ensemble`."""
    if not all(ensemble.supports(name) for name in SPREADS):
        raise ValueError(f"{type(ensemble).__name__} reports no ensemble spreads; labels need an ensemble")
    sizes = {int(frame.natoms) for frame in dataset}
    if len(sizes) != 1:
        raise ValueError(f"{dataset.source}: frames of different sizes {sorted(sizes)}; labels need one size")
    if ensemble.units is not None and dataset.units is not None and ensemble.units != dataset.units:
        raise ValueError(f"the ensemble predicts in {ensemble.units}, the data is in {dataset.units}")
    columns: dict[str, list[np.ndarray]] = {}
    n_batches = (len(dataset) + batch_size - 1) // batch_size
    for index, start in enumerate(range(0, len(dataset), batch_size), start=1):
        batch = Batch.from_data_list(
            [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        )
        out = ensemble.predict_data(batch)
        n_frames = batch.num_graphs
        values = {
            "nuclear_charges": batch.z.view(n_frames, -1),
            "coords": batch.pos.view(n_frames, -1, 3),
            "energies": batch.energy,
            "forces": out.forces.view(n_frames, -1, 3),
            "forces_std": out.extras["forces_std"].view(n_frames, -1, 3),
            "atom_energies": out.atom_energies.view(n_frames, -1),
            "atom_energies_std": out.extras["atom_energies_std"].view(n_frames, -1),
            "teacher_energies": out.energy.view(-1),
            "teacher_energies_std": out.extras["energy_std"].view(-1),
        }
        for key, value in values.items():
            columns.setdefault(key, []).append(value.detach().cpu().numpy())
        if index % 10 == 0 or index == n_batches:
            print(f"  labelled {min(start + batch_size, len(dataset))}/{len(dataset)} frames", flush=True)
    return {key: np.concatenate(parts) for key, parts in columns.items()}


def main(args: list[str]) -> Path:
    parser = argparse.ArgumentParser(
        prog="pyg-hipts label", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--ensemble", required=True, help="ensemble.yaml from pyg-hipts ensemble, or a saved ensemble"
    )
    parser.add_argument("--input", required=True, help="structures to label (any readable format)")
    parser.add_argument("--output", required=True, help=".npz to write")
    parser.add_argument("--format")
    parser.add_argument("--reader_options", default="{}", help="YAML mapping for the reader")
    parser.add_argument("--batch_size", type=int, default=50)
    options = parser.parse_args(args)
    reader_options: dict[str, Any] = yaml.safe_load(options.reader_options) or {}
    ensemble = load_ensemble(options.ensemble)
    dataset = read_dataset(options.input, options.format, **reader_options)
    labels = ensemble_labels(ensemble, dataset, options.batch_size)
    output = Path(options.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    np.savez(output, **labels)
    print(f"wrote {output}: {len(dataset)} frames, keys {sorted(labels)}")
    return output
