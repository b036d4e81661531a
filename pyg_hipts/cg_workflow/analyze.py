"""``pyg-hipts cg analyze``: simulated coarse-grained trajectories against the mapped reference.

For each trajectory of ``pyg-hipts cg simulate`` (``--trajectory``, repeatable, with
``--labels``), after dropping the first ``--discard_ps``:

- distributions of the bonds, angles and dihedrals (``--bonds`` / ``--angles`` /
  ``--dihedrals``; by default, for a molecule (no cell), those of a linear chain of beads
  ``0-1-2-…``; none for a periodic box) and their
  Jensen–Shannon divergences from the reference's (:func:`pyg_hipts.cg.analysis.jensen_shannon`);
- with ``--phi_psi i j k l m`` (φ = dihedral i-j-k-l, ψ = j-k-l-m): the (φ, ψ) free energy
  ``−kT ln p`` (``kT`` at the temperature the reference file records, in its energy unit),
  its Jensen–Shannon divergence, and the α / β / αL populations
  (:func:`pyg_hipts.cg.analysis.state_populations`);
- for periodic trajectories with ``--rdf_max``: ``g(r)`` of all beads, its first peak, and the
  close contacts: bead pairs per frame closer than ``--contact_distance`` (by default where the
  reference's ``g(r)`` first reaches 0.5, the onset of its first shell);
- reference frames with ``weights`` (biased sampling, :mod:`pyg_hipts.data.system`) count with
  their weights in every reference histogram and population; the report gives their effective
  number (:func:`pyg_hipts.cg.analysis.effective_sample_size`);
- block averages: the run cut into ``--blocks`` time blocks; in each, the populations with
  standard errors over the independent replicas. A run is called converged when the means of
  its first and second halves differ by less than three combined standard errors for every state.

Writes ``<output>/report.json`` and the figures ``internal_coordinates.png`` (when there are any),
``ramachandran.png``, ``convergence.png`` (and ``rdf.png`` with its curves in ``rdf.npz``:
``r`` and ``g_<label>`` per run and ``g_reference``)::

    pyg-hipts cg analyze --reference runs/cg/ala2_cg.npz --trajectory runs/cg/md/trajectory.npz \\
        --labels "priors + HIP-NN-TS" --phi_psi 0 1 2 3 4 --output runs/cg/analysis
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pyg_hipts.cg import angles, dihedrals, distances
from pyg_hipts.cg.analysis import (
    close_pair_counts,
    effective_sample_size,
    first_peak,
    jensen_shannon,
    radial_distribution,
    ramachandran,
    shared_histograms,
    state_populations,
)
from pyg_hipts.cg_workflow.options import command_parser
from pyg_hipts.cg_workflow.plots import (
    plot_convergence,
    plot_internal_coordinates,
    plot_ramachandran,
    plot_rdf,
)
from pyg_hipts.data.system import read_frame_weights
from pyg_hipts.units import boltzmann_constant


@dataclass
class Samples:
    """Frames ``positions [S, R, n, 3]`` (``R = 1`` for reference data), times ``[S]`` (ps),
    the periodic ``cell [3, 3]`` (or ``None``), and the temperature (K), energy unit and frame
    weights ``[S]`` (``None``: equal) the file records."""

    positions: np.ndarray
    time_ps: np.ndarray
    cell: np.ndarray | None
    temperature: float | None = None
    energy_unit: str | None = None
    weights: np.ndarray | None = None


def read_reference(path: Path) -> Samples:
    """The frames of a coarse-grained training file (``cg map`` output) as one replica."""
    with np.load(path) as arrays:
        positions = np.asarray(arrays["coords"], dtype=np.float64)
        times = arrays["time_ps"] if "time_ps" in arrays.files else np.arange(len(positions), dtype=float)
        cell = np.asarray(arrays["cell"][0]) if "cell" in arrays.files else None
        temperature = float(arrays["temperature"]) if "temperature" in arrays.files else None
        energy_unit = str(arrays["energy_unit"]) if "energy_unit" in arrays.files else None
        weights = read_frame_weights(path, arrays, len(positions))
    times = np.asarray(times, dtype=np.float64)
    return Samples(positions[:, None], times, cell, temperature, energy_unit, weights)


def read_simulation(path: Path, discard_ps: float) -> Samples:
    """The frames of a ``cg simulate`` trajectory after the first ``discard_ps``, with its
    temperature when it records one."""
    with np.load(path) as arrays:
        times = np.asarray(arrays["time_ps"], dtype=np.float64)
        keep = times >= times[0] + discard_ps
        if not keep.any():
            raise ValueError(
                f"{path}: the run is {times[-1] - times[0]:g} ps, shorter than --discard_ps {discard_ps}"
            )
        cell = np.asarray(arrays["cell"]) if "cell" in arrays.files else None
        temperature = float(arrays["temperature"]) if "temperature" in arrays.files else None
        positions = np.asarray(arrays["positions"], dtype=np.float64)[keep]
        return Samples(positions, times[keep], cell, temperature)


def chain_topology(n_beads: int) -> dict[str, list[list[int]]]:
    """Bonds, angles and dihedrals of a linear chain ``0-1-…-(n−1)``."""
    return {
        "bonds": [[i, i + 1] for i in range(n_beads - 1)],
        "angles": [[i, i + 1, i + 2] for i in range(n_beads - 2)],
        "dihedrals": [[i, i + 1, i + 2, i + 3] for i in range(n_beads - 3)],
    }


def internal_coordinates(
    positions: np.ndarray, topology: dict[str, list[list[int]]]
) -> dict[str, np.ndarray]:
    """Bond lengths, angles (degrees) and dihedrals (degrees) of frames ``[..., n, 3]`` by name,
    each ``[frames · replicas]``."""
    n = positions.shape[-2]
    x = torch.as_tensor(positions.reshape(-1, n, 3), dtype=torch.float64)
    found: dict[str, np.ndarray] = {}
    for kind, measure, in_degrees in (
        ("bonds", distances, False),
        ("angles", angles, True),
        ("dihedrals", dihedrals, True),
    ):
        tuples = topology[kind]
        if not tuples:
            continue
        values = measure(x, torch.tensor(tuples))
        values = torch.rad2deg(values) if in_degrees else values
        for beads, column in zip(tuples, values.T, strict=True):
            found[f"{kind[:-1]} {'-'.join(map(str, beads))}"] = column.numpy()
    return found


def phi_psi(positions: np.ndarray, beads: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """``(φ, ψ)`` in radians, each ``[S, R]``, of frames ``[S, R, n, 3]``."""
    s, r, n = positions.shape[:3]
    x = torch.as_tensor(positions.reshape(-1, n, 3), dtype=torch.float64)
    angles_ = dihedrals(x, torch.tensor([beads[:4], beads[1:]])).numpy()
    return angles_[:, 0].reshape(s, r), angles_[:, 1].reshape(s, r)


def block_populations(phi: np.ndarray, psi: np.ndarray, times: np.ndarray, n_blocks: int) -> dict[str, Any]:
    """Populations per time block of ``phi, psi [S, R]``: mean and standard error over replicas,
    and whether the two halves agree within three combined standard errors."""

    def summary(rows: slice | np.ndarray) -> tuple[dict[str, float], dict[str, float]]:
        per_replica = [state_populations(phi[rows, r], psi[rows, r]) for r in range(phi.shape[1])]
        states = per_replica[0].keys()
        mean = {k: float(np.mean([p[k] for p in per_replica])) for k in states}
        error = {
            k: float(np.std([p[k] for p in per_replica], ddof=1) / np.sqrt(len(per_replica)))
            if len(per_replica) > 1
            else float("nan")
            for k in states
        }
        return mean, error

    blocks = np.array_split(np.arange(len(times)), n_blocks)
    means, errors = zip(*(summary(block) for block in blocks), strict=True)
    half = len(times) // 2
    (first, first_error), (second, second_error) = summary(slice(0, half)), summary(slice(half, None))
    drift = {k: second[k] - first[k] for k in first}
    bound = {k: 3.0 * float(np.hypot(first_error[k], second_error[k])) for k in first}
    return {
        "block_end_ps": [float(times[b[-1]]) for b in blocks],
        "mean": {k: [m[k] for m in means] for k in means[0]},
        "standard_error": {k: [e[k] for e in errors] for k in errors[0]},
        "half_difference": drift,
        "converged": bool(all(abs(drift[k]) < bound[k] for k in drift)),
    }


def analyze(options: Any) -> dict[str, Any]:
    """Compute the report and figures (see the module docstring); returns the report."""
    output = Path(options.output)
    output.mkdir(parents=True, exist_ok=True)
    labels = options.labels or [Path(p).parent.name or str(p) for p in options.trajectory]
    if len(labels) != len(options.trajectory):
        raise ValueError(f"{len(labels)} labels for {len(options.trajectory)} trajectories")
    reference = read_reference(Path(options.reference))
    runs = {
        label: read_simulation(Path(path), options.discard_ps)
        for label, path in zip(labels, options.trajectory, strict=True)
    }
    n_beads = reference.positions.shape[-2]
    topology = (
        chain_topology(n_beads) if reference.cell is None else {"bonds": [], "angles": [], "dihedrals": []}
    )
    topology.update({k: getattr(options, k) for k in topology if getattr(options, k) is not None})
    coordinates = {"reference": internal_coordinates(reference.positions, topology)} | {
        label: internal_coordinates(run.positions, topology) for label, run in runs.items()
    }
    report: dict[str, Any] = {
        "reference": {"file": str(options.reference), "frames": len(reference.time_ps)},
        "runs": {},
    }
    if reference.weights is not None:
        report["reference"]["effective_frames"] = effective_sample_size(reference.weights)
    for label, run in runs.items():
        divergence = {}
        for name, values in coordinates["reference"].items():
            _, p, q = shared_histograms(values, coordinates[label][name], reference_weights=reference.weights)
            divergence[name] = jensen_shannon(p, q)
        report["runs"][label] = {
            "trajectory": str(options.trajectory[labels.index(label)]),
            "replicas": int(run.positions.shape[1]),
            "analysed_ps_per_replica": float(run.time_ps[-1] - run.time_ps[0]),
            "jensen_shannon": divergence,
        }
    if coordinates["reference"]:
        plot_internal_coordinates(coordinates, output / "internal_coordinates.png", reference.weights)
    if options.phi_psi is not None:
        _ramachandran_report(options, reference, runs, report, output)
    if options.rdf_max is not None:
        _rdf_report(options, reference, runs, report, output)
    (output / "report.json").write_text(json.dumps(report, indent=2))
    _print_summary(report)
    print(f"wrote {output / 'report.json'} and figures in {output}")
    return report


def _ramachandran_report(
    options: Any, reference: Samples, runs: dict[str, Samples], report: dict, output: Path
) -> None:
    """(φ, ψ) histograms, populations, divergences and block averages into ``report``."""
    angles_by_run = {"reference": phi_psi(reference.positions, options.phi_psi)}
    angles_by_run |= {label: phi_psi(run.positions, options.phi_psi) for label, run in runs.items()}
    weights = {"reference": reference.weights}
    histograms = {
        label: ramachandran(*pair, weights=weights.get(label)) for label, pair in angles_by_run.items()
    }
    report["reference"]["populations"] = state_populations(*angles_by_run["reference"], reference.weights)
    for label, run in runs.items():
        entry = report["runs"][label]
        entry["populations"] = state_populations(*angles_by_run[label])
        entry["jensen_shannon_phi_psi"] = jensen_shannon(histograms["reference"], histograms[label])
        entry["blocks"] = block_populations(*angles_by_run[label], run.time_ps, options.blocks)
    known = reference.temperature is not None and reference.energy_unit is not None
    thermal_energy = boltzmann_constant(reference.energy_unit) * reference.temperature if known else None
    plot_ramachandran(histograms, thermal_energy, reference.energy_unit, output / "ramachandran.png")
    plot_convergence(report, output / "convergence.png")


def _rdf_report(
    options: Any, reference: Samples, runs: dict[str, Samples], report: dict, output: Path
) -> None:
    """``g(r)`` of every run and the reference (periodic data), with first peaks and close-contact
    counts, into ``report``."""
    curves, counted = {}, {"reference": reference} | runs
    for label, samples in counted.items():
        if samples.cell is None:
            raise ValueError(f"{label}: --rdf_max needs periodic frames (a cell)")
        n = samples.positions.shape[-2]
        curves[label] = radial_distribution(
            samples.positions.reshape(-1, n, 3), samples.cell, options.rdf_max, weights=samples.weights
        )
    r, g_reference = curves["reference"]
    contact = options.contact_distance
    if contact is None:  # the onset of the first shell of the reference
        contact = float(r[np.argmax(g_reference >= 0.5)])
    report["contact_distance"] = contact
    for label, samples in counted.items():
        n = samples.positions.shape[-2]
        counts = close_pair_counts(samples.positions.reshape(-1, n, 3), samples.cell, contact)
        target = report["reference"] if label == "reference" else report["runs"][label]
        target["rdf_first_peak"] = dict(zip(("position", "height"), first_peak(*curves[label]), strict=True))
        target["close_contacts_per_frame"] = float(np.average(counts, weights=samples.weights))
    plot_rdf(curves, output / "rdf.png")
    np.savez(output / "rdf.npz", r=r, **{f"g_{label}": g for label, (_, g) in curves.items()})


def _print_summary(report: dict[str, Any]) -> None:
    reference = report["reference"].get("populations")
    if reference:
        effective = report["reference"].get("effective_frames")
        weighted = f" (weighted; {effective:.0f} effective frames)" if effective is not None else ""
        print(f"reference{weighted}: " + ", ".join(f"{k} {100 * v:.1f} %" for k, v in reference.items()))
    if "rdf_first_peak" in report["reference"]:
        peak = report["reference"]["rdf_first_peak"]
        print(
            f"reference: g(r) first peak {peak['position']:.3f} / {peak['height']:.3f}, "
            f"{report['reference']['close_contacts_per_frame']:.2f} pairs per frame "
            f"under {report['contact_distance']:.3f}"
        )
    for label, entry in report["runs"].items():
        divergences = entry["jensen_shannon"]
        line = f"{label}:"
        if divergences:
            worst = max(divergences, key=divergences.get)
            mean = float(np.mean(list(divergences.values())))
            line += f" JS of {len(divergences)} internal coordinates: mean {mean:.3f}"
            line += f", largest {divergences[worst]:.3f} ({worst})"
        if "rdf_first_peak" in entry:
            peak = entry["rdf_first_peak"]
            line += f" g(r) first peak {peak['position']:.3f} / {peak['height']:.3f}"
            line += f", {entry['close_contacts_per_frame']:.2f} close contacts per frame"
        if "populations" in entry:
            errors = {k: e[-1] for k, e in entry["blocks"]["standard_error"].items()}
            shares = ", ".join(f"{k} {100 * v:.1f} %" for k, v in entry["populations"].items())
            line += f"; (φ, ψ) JS {entry['jensen_shannon_phi_psi']:.3f}; {shares}"
            line += f"; converged: {entry['blocks']['converged']} (last block errors "
            line += ", ".join(f"{100 * e:.1f}" for e in errors.values()) + " points)"
        print(line)


def parser():
    """Options of ``pyg-hipts cg analyze``."""
    parser = command_parser("analyze", __doc__)
    parser.add_argument("--reference", required=True, help="mapped reference frames (cg map output)")
    parser.add_argument(
        "--trajectory", type=str, nargs="+", required=True, help="trajectory.npz files of cg simulate"
    )
    parser.add_argument("--labels", type=str, nargs="+", help="one name per trajectory")
    parser.add_argument("--output", required=True, help="folder of the report and figures")
    parser.add_argument("--bonds", type=list[list[int]])
    parser.add_argument("--angles", type=list[list[int]])
    parser.add_argument("--dihedrals", type=list[list[int]])
    parser.add_argument("--phi_psi", type=int, nargs=5, help="beads i j k l m of φ = ijkl and ψ = jklm")
    parser.add_argument("--rdf_max", type=float, help="g(r) up to this distance (periodic runs)")
    parser.add_argument("--rdf_bin_width", type=float, default=0.05, help="g(r) bin width (length)")
    parser.add_argument("--contact_distance", type=float, help="close-contact distance (length)")
    parser.add_argument("--discard_ps", type=float, default=0.0, help="equilibration dropped from each run")
    parser.add_argument("--blocks", type=int, default=5, help="time blocks of the block averages")
    return parser


def main(args: list[str]) -> dict[str, Any]:
    return analyze(parser().parse_args(args))
