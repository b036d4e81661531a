"""Figures of ``pyg-hipts cg analyze``: distributions, (φ, ψ) free energies, block averages, g(r)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

from pyg_hipts.cg.analysis import free_energy, shared_histograms

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_internal_coordinates(
    coordinates: dict[str, dict[str, np.ndarray]], path: Path, reference_weights: np.ndarray | None = None
) -> None:
    """One panel per coordinate: the ``"reference"`` histogram (black; its frames weighted by
    ``reference_weights`` when given) and every run's."""
    reference = coordinates["reference"]
    columns = min(4, len(reference))
    rows = math.ceil(len(reference) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.6 * rows), squeeze=False)
    for axis, name in zip(axes.ravel(), reference, strict=False):
        for label, values in coordinates.items():
            if label != "reference":
                centers, _, q = shared_histograms(reference[name], values[name])
                axis.plot(centers, q, label=label)
        centers, p, _ = shared_histograms(
            reference[name], reference[name], reference_weights=reference_weights
        )
        axis.plot(centers, p, color="black", label="reference")
        axis.set_title(name, fontsize=9)
    for axis in axes.ravel()[len(reference) :]:
        axis.axis("off")
    axes[0, 0].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_ramachandran(
    histograms: dict[str, np.ndarray], thermal_energy: float | None, energy_unit: str | None, path: Path
) -> None:
    """The (φ, ψ) free energy of the reference and of every run side by side (in ``kT`` when
    the temperature is unknown)."""
    figure, axes = plt.subplots(
        1, len(histograms), figsize=(4.2 * len(histograms), 4), sharey=True, squeeze=False
    )
    scale, unit = (thermal_energy, energy_unit) if thermal_energy is not None else (1.0, "kT")
    for axis, (label, probability) in zip(axes[0], histograms.items(), strict=True):
        image = axis.imshow(
            free_energy(probability, scale).T, origin="lower", extent=[-180, 180, -180, 180], vmax=12 * scale
        )
        axis.set_title(label, fontsize=10)
        axis.set_xlabel("φ (°)")
    axes[0, 0].set_ylabel("ψ (°)")
    figure.colorbar(image, ax=axes[0].tolist(), label=f"free energy ({unit})")
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_convergence(report: dict[str, Any], path: Path) -> None:
    """Populations per time block with standard errors, one panel per state; the reference's
    as a dashed line."""
    reference = report["reference"]["populations"]
    figure, axes = plt.subplots(1, len(reference), figsize=(4 * len(reference), 3.2), squeeze=False)
    for axis, state in zip(axes[0], reference, strict=True):
        for label, entry in report["runs"].items():
            blocks = entry["blocks"]
            axis.errorbar(
                blocks["block_end_ps"],
                blocks["mean"][state],
                yerr=blocks["standard_error"][state],
                marker="o",
                capsize=3,
                label=label,
            )
        axis.axhline(reference[state], color="black", linestyle="--", label="reference")
        axis.set_title(state)
        axis.set_xlabel("end of block (ps)")
    axes[0, 0].set_ylabel("population")
    axes[0, 0].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_rdf(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: Path) -> None:
    """``g(r)`` of the reference and of every run."""
    figure, axis = plt.subplots(figsize=(5, 3.5))
    for label, (r, g) in curves.items():
        axis.plot(r, g, label=label, color="black" if label == "reference" else None)
    axis.set_xlabel("r")
    axis.set_ylabel("g(r)")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
