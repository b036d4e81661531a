"""``pyg-hipts cg map``: all-atom frames -> a coarse-grained training file.

The input is any file the package reads (npz, extended XYZ, ASE db, HDF5, deepmd, prepared),
or a DCD / XTC / TRR / NetCDF trajectory with ``--topology`` and ``--forces`` (through
``mdtraj``, ``pip install -e ".[cg]"``). Each bead is given by its atoms (indices, labels such
as ``ALA2:CA`` or patterns such as ``NME3:*``), where it sits (``com`` or one atom) and a name;
see :func:`pyg_hipts.cg.mapping_from_spec`; or ``--molecules`` gives one bead per molecule of
a box of identical molecules (:func:`pyg_hipts.cg.mapping.molecule_beads`). Bead forces are the
sums of their atoms' forces by default (``--force_map sum``; constraint forces inside a bead
cancel in it), or the force on the position atom (``--force_map position``).

The output ``.npz`` holds ``nuclear_charges`` (bead types), ``coords`` and ``forces`` (the
input's units), ``masses`` (amu, each bead's atoms summed), ``names``, ``temperature``,
``time_ps``, ``length_unit``, ``energy_unit``, for periodic input ``cell [F, 3, 3]``
(read with ``reader_options: {cell_key: cell}``), and the frames' ``weights`` when an npz input
records them (biased sampling): everything ``pyg-hipts fit`` and ``pyg-hipts cg simulate``
need (:mod:`pyg_hipts.data.system`).
Options come from ``--config map.yaml`` and the command line (the command line wins)::

    pyg-hipts cg map --config configs/cg_map/ala2_backbone.yaml \\
        --input runs/ala2_aa/ala2_300K.npz --output runs/ala2_aa/ala2_cg.npz
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ase.data import atomic_masses

from pyg_hipts.cg import Mapping, atom_labels, mapping_from_spec
from pyg_hipts.cg.mapping import FORCE_MAPS, molecule_beads
from pyg_hipts.cg_workflow.options import command_parser
from pyg_hipts.data import read_dataset
from pyg_hipts.data.readers import resolve_format
from pyg_hipts.data.system import SystemInfo, read_frame_weights
from pyg_hipts.units import Units, length_factor

MDTRAJ_SUFFIXES = (".dcd", ".xtc", ".trr", ".nc", ".netcdf")


@dataclass
class AllAtomFrames:
    """Frames of one molecule or box: ``positions`` and ``forces`` ``[F, n, 3]``, ``cells``
    ``[F, 3, 3]`` or ``None``, ``z [n]``, the units, and what the input records of masses, atom
    labels, frame times (ps), frame weights and temperature (K)."""

    positions: np.ndarray
    forces: np.ndarray
    cells: np.ndarray | None
    z: np.ndarray
    units: Units
    system: SystemInfo
    time_ps: np.ndarray | None
    weights: np.ndarray | None = None


def topology_labels_and_masses(path: Path) -> tuple[list[str], np.ndarray]:
    """Atom labels (``"ALA2:CA"``) and element masses (amu) of a topology file (PDB, ...)."""
    mdtraj = _mdtraj()
    topology = mdtraj.load_topology(str(path))
    atoms = list(topology.atoms)
    labels = atom_labels(
        [a.name for a in atoms], [a.residue.name for a in atoms], [a.residue.resSeq for a in atoms]
    )
    return labels, np.array([a.element.mass for a in atoms], dtype=np.float64)


def _mdtraj() -> Any:
    try:
        import mdtraj
    except ImportError as error:
        raise ImportError('DCD / XTC input and --topology need mdtraj: pip install -e ".[cg]"') from error
    return mdtraj


def read_trajectory_file(
    path: Path, topology: Path | None, forces: Path | None, force_unit: str
) -> AllAtomFrames:
    """A DCD / XTC / TRR / NetCDF trajectory (nm, read by mdtraj) with forces from an ``.npy``
    array ``[F, n, 3]`` in ``force_unit`` (``"<energy>/<length>"``); written in Å."""
    if topology is None or forces is None:
        raise ValueError(f"{path}: a {path.suffix} trajectory needs --topology and --forces")
    trajectory = _mdtraj().load(str(path), top=str(topology))
    energy_unit, _, force_length = force_unit.rpartition("/")
    force_array = np.load(forces) * length_factor("Å", force_length)
    if force_array.shape != trajectory.xyz.shape:
        raise ValueError(
            f"{forces}: forces are {list(force_array.shape)}, "
            f"the trajectory {path} is {list(trajectory.xyz.shape)}"
        )
    cells = None if trajectory.unitcell_vectors is None else trajectory.unitcell_vectors * 10.0
    return AllAtomFrames(
        positions=trajectory.xyz.astype(np.float64) * 10.0,
        forces=force_array,
        cells=cells,
        z=np.array([a.element.atomic_number for a in trajectory.topology.atoms]),
        units=Units("Å", energy_unit),
        system=SystemInfo(),
        time_ps=np.asarray(trajectory.time, dtype=np.float64),
    )


def read_frames(path: Path, format: str | None, reader_options: dict[str, Any]) -> AllAtomFrames:
    """Every frame of a file the package reads; all must have the same atoms and forces."""
    dataset = read_dataset(path, format, dtype=torch.float64, **reader_options)
    storage = dataset.contiguous()
    sizes = np.diff(np.asarray(storage.offsets))
    if len(set(sizes.tolist())) != 1:
        raise ValueError(
            f"{path}: frames have {sorted(set(sizes.tolist()))} atoms; a mapping needs one molecule or box"
        )
    if "forces" not in storage.per_atom:
        raise ValueError(f"{path}: no forces; force matching needs them")
    n_frames, n_atoms = len(sizes), int(sizes[0])
    z = np.asarray(storage.per_atom["z"]).reshape(n_frames, n_atoms)
    if (z != z[0]).any():
        frame = int(np.nonzero((z != z[0]).any(1))[0][0])
        raise ValueError(f"{path}: frame {frame} has other species or atom order than frame 0")
    cells = storage.per_frame.get("cell")
    return AllAtomFrames(
        positions=np.asarray(storage.per_atom["pos"], dtype=np.float64).reshape(n_frames, n_atoms, 3),
        forces=np.asarray(storage.per_atom["forces"], dtype=np.float64).reshape(n_frames, n_atoms, 3),
        cells=None if cells is None else np.asarray(cells, dtype=np.float64).reshape(n_frames, 3, 3),
        z=z[0],
        units=dataset.units,
        system=dataset.system,
        **_recorded_per_frame(path, format, n_frames),
    )


def _recorded_per_frame(path: Path, format: str | None, n_frames: int) -> dict[str, np.ndarray | None]:
    """``time_ps`` and ``weights`` of an npz file (``None`` for each it lacks, or for other files)."""
    if resolve_format(path, format) != "npz":
        return {"time_ps": None, "weights": None}
    with np.load(path) as arrays:
        times = np.asarray(arrays["time_ps"], dtype=np.float64) if "time_ps" in arrays.files else None
        return {"time_ps": times, "weights": read_frame_weights(path, arrays, n_frames)}


def build_mapping(frames: AllAtomFrames, options: Any) -> Mapping:
    """The bead mapping of ``options.beads`` with labels and masses from the input or ``--topology``."""
    labels, masses = frames.system.names, frames.system.masses
    if options.topology is not None and (labels is None or masses is None):
        topology_labels, topology_masses = topology_labels_and_masses(Path(options.topology))
        if len(topology_labels) != len(frames.z):
            raise ValueError(
                f"{options.topology}: {len(topology_labels)} atoms, the input has {len(frames.z)}"
            )
        labels = labels or topology_labels
        masses = masses or tuple(topology_masses)
    if masses is None:
        masses = atomic_masses[frames.z]
    if bool(options.beads) == (options.molecules is not None):
        raise ValueError(
            "give either --beads (a list of {atoms, position, name}) or --molecules, in a --config or here"
        )
    beads = options.beads or molecule_beads(len(frames.z), **options.molecules)
    return mapping_from_spec(beads, masses, labels, options.force_map)


def map_frames(options: Any) -> Path:
    """Read, map and write (see the module docstring); returns the output path."""
    source = Path(options.input)
    if source.suffix.lower() in MDTRAJ_SUFFIXES:
        frames = read_trajectory_file(
            source,
            options.topology and Path(options.topology),
            options.forces and Path(options.forces),
            options.force_unit,
        )
    else:
        frames = read_frames(source, options.format, dict(options.reader_options or {}))
    mapping = build_mapping(frames, options)
    temperature = options.temperature or frames.system.temperature
    if temperature is None:
        raise ValueError(f"{source} records no temperature: give --temperature (K)")
    keep = slice(options.first_frame, None, options.stride)
    positions, forces = frames.positions[keep], frames.forces[keep]
    cells = None if frames.cells is None else frames.cells[keep]
    if options.frame_spacing_ps is not None:
        times = (np.arange(len(positions)) + 1) * options.frame_spacing_ps
    elif frames.time_ps is not None:
        times = frames.time_ps[keep]
    else:
        times = np.arange(len(positions), dtype=np.float64)
        print(f"{source} records no frame times: frames are numbered 0, 1, ... (give --frame_spacing_ps)")
    arrays = {
        "nuclear_charges": mapping.types,
        "coords": mapping.positions(positions, cells),
        "forces": mapping.forces(forces),
        "masses": mapping.bead_masses,
        "names": np.array(mapping.names),
        "temperature": np.array(float(temperature)),
        "time_ps": np.asarray(times, dtype=np.float64),
        "length_unit": np.array(frames.units.length),
        "energy_unit": np.array(frames.units.energy),
    }
    if cells is not None:
        arrays["cell"] = cells
    if frames.weights is not None:
        arrays["weights"] = frames.weights[keep]
    output = Path(options.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial.npz")
    np.savez(partial, **arrays)
    partial.replace(output)
    mapped = sum(len(bead.atoms) for bead in mapping.beads)
    kinds: dict[tuple[str, int], list[float]] = {}
    for bead, mass in zip(mapping.beads, mapping.bead_masses, strict=True):
        kinds.setdefault((bead.name, bead.type), []).append(float(mass))
    described = ", ".join(
        f"{name} (type {kind}) ×{len(masses)}, {min(masses):.3f}–{max(masses):.3f} amu"
        if max(masses) - min(masses) > 1e-6
        else f"{name} (type {kind}) ×{len(masses)}, {masses[0]:.3f} amu"
        for (name, kind), masses in kinds.items()
    )
    print(
        f"wrote {output}: {len(positions)} frames of {len(mapping.beads)} beads [{described}] from {mapped} "
        f"of {len(frames.z)} atoms, {temperature:g} K, forces by {mapping.force_map}, "
        f"{frames.units.length} and {frames.units.energy}"
        + (", with the frames' weights" if frames.weights is not None else "")
    )
    return output


def parser():
    """Options of ``pyg-hipts cg map``."""
    parser = command_parser("map", __doc__)
    parser.add_argument("--input", required=True, help="all-atom frames with forces")
    parser.add_argument("--output", required=True, help="coarse-grained .npz to write")
    parser.add_argument("--format", help="reader format (by default from the suffix)")
    parser.add_argument("--reader_options", type=dict[str, Any], default={}, help="reader keyword arguments")
    parser.add_argument("--topology", help="PDB (or any mdtraj topology) for atom labels and masses")
    parser.add_argument("--forces", help="forces .npy [F, n, 3] of a DCD / XTC input")
    parser.add_argument("--force_unit", default="kJ/mol/nm", help="unit of --forces (energy/length)")
    parser.add_argument("--beads", type=list[dict[str, Any]], default=[], help="bead specs (see above)")
    parser.add_argument(
        "--molecules", type=dict[str, Any], help="one bead per molecule: {size: 3, name: W, position: com}"
    )
    parser.add_argument("--force_map", choices=FORCE_MAPS, default="sum")
    parser.add_argument("--temperature", type=float, help="K (default: what the input records)")
    parser.add_argument("--frame_spacing_ps", type=float, help="time between frames (default: the input's)")
    parser.add_argument("--first_frame", type=int, default=0)
    parser.add_argument("--stride", type=int, default=1, help="keep every stride-th frame")
    return parser


def main(args: list[str]) -> Path:
    return map_frames(parser().parse_args(args))
