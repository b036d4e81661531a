"""The comparison report: a Markdown and a CSV table and two PNG plots.

Files written to the report folder:

- ``report.csv`` / ``report.md``: one row per model with the parameter count, training time per
  epoch, inference throughput (atoms/s for energy + forces), peak memory of its process (growth
  over the imports) and the
  test energy and force MAE;
- ``learning_curves.png``: validation force MAE against training wall time, all models on one pair
  of log axes (a slow model does not squeeze the others);
- ``accuracy_vs_time.png``: test force MAE against inference cost (µs per atom).
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


@dataclass
class ModelResult:
    """One model of a comparison (energies per structure, force components, data units)."""

    name: str
    parameters: int
    epochs: int
    train_seconds: float
    seconds_per_epoch: float
    atoms_per_second: float
    peak_memory_mib: float
    energy_mae: float
    force_mae: float
    energy_unit: str
    force_unit: str
    metrics_csv: str


def learning_curve(metrics_csv: str | Path) -> tuple[list[float], list[float]]:
    """``(training seconds, validation force MAE)`` per epoch from a Lightning ``metrics.csv``."""
    with Path(metrics_csv).open() as handle:
        rows = list(csv.DictReader(handle))
    seconds: dict[int, float] = {}
    errors: dict[int, float] = {}
    for row in rows:
        if not row.get("epoch"):
            continue
        epoch = int(float(row["epoch"]))
        if row.get("time/train_seconds"):
            seconds[epoch] = float(row["time/train_seconds"])
        if row.get("val/force_mae"):
            errors[epoch] = float(row["val/force_mae"])
    epochs = sorted(set(seconds) & set(errors))
    return [seconds[e] for e in epochs], [errors[e] for e in epochs]


def markdown_table(results: list[ModelResult]) -> str:
    """The report table in Markdown (units from the first result)."""
    energy, force = results[0].energy_unit, results[0].force_unit
    lines = [
        f"| model | parameters | epochs | s / epoch | atoms/s (E+F) | peak MiB | energy MAE ({energy}) "
        f"| force MAE ({force}) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.name} | {r.parameters:,} | {r.epochs} | {r.seconds_per_epoch:.2f} "
            f"| {r.atoms_per_second:,.0f} | {r.peak_memory_mib:.0f} "
            f"| {r.energy_mae:.4g} | {r.force_mae:.4g} |"
        )
    return "\n".join(lines) + "\n"


def write_report(results: list[ModelResult], out: str | Path, command: str | None = None) -> list[Path]:
    """Write the tables and plots for ``results`` into ``out``; return the written paths."""
    if not results:
        raise ValueError("no results to report")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "report.csv", out / "report.md", out / "learning_curves.png", out / "accuracy_vs_time.png"]

    names = [f.name for f in fields(ModelResult)]
    with paths[0].open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=names)
        writer.writeheader()
        for r in results:
            writer.writerow(asdict(r))

    header = "# Model comparison\n\n"
    if command:
        header += f"Command: `{command}`\n\n"
    paths[1].write_text(header + markdown_table(results))

    figure, axis = plt.subplots(figsize=(5.5, 3.8))
    for r in results:
        seconds, errors = learning_curve(r.metrics_csv)
        axis.plot([s / 60 for s in seconds], errors, label=r.name)
    axis.set_xlabel("training time (min)")
    axis.set_ylabel(f"validation force MAE ({results[0].force_unit})")
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.legend()
    figure.tight_layout()
    figure.savefig(paths[2], dpi=150)
    plt.close(figure)

    figure, axis = plt.subplots(figsize=(5.5, 3.8))
    for r in results:
        cost = 1e6 / r.atoms_per_second
        axis.scatter(cost, r.force_mae)
        axis.annotate(r.name, (cost, r.force_mae), textcoords="offset points", xytext=(4, 4))
    axis.set_xlabel("inference cost, energy + forces (µs per atom)")
    axis.set_ylabel(f"test force MAE ({results[0].force_unit})")
    axis.set_xscale("log")
    axis.set_yscale("log")
    figure.tight_layout()
    figure.savefig(paths[3], dpi=150)
    plt.close(figure)
    return paths
