"""Ensemble knowledge distillation (EKD) and teacher–student training with atomic energies on rMD17.

Forces are withheld from every teacher: teachers see DFT energies only.

1. ``pyg-hipts ensemble``: ``--members`` HIP-NN-TS teachers (``configs/rmd17_ts2.yaml`` sizes)
   trained on the energies of the 1000 training frames (950 train / 50 validation): an
   ``EnergyLoss`` alone.
2. ``pyg-hipts label``: the teachers' mean forces and per-atom energies for those frames.
3. EKD student, same size as a teacher, trained on DFT energies + teacher forces.
4. Baseline: teacher 0, an energy-only model of the same size and budget.
5. Teacher–student: a small model (``--small-features``, ``l_max 1``, one interaction layer)
   trained on energies + teacher forces, with and without the teachers' per-atom energies as an
   extra target (an ``AtomEnergyLoss``).

Every model is tested on the 1000 test frames against DFT energies and forces. Run from the
project root::

    python benchmarks/distill_rmd17.py --molecule ethanol --members 4 --minutes 10 --threads 2

It prints the commands it runs, then a table (energy MAE meV, force MAE meV/Å, inference
atoms/s).
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
from pathlib import Path

import torch
import yaml
from rmd17_files import KCAL_TO_MEV, ROOT, rmd17_file

from pyg_hipts.compare.worker import throughput
from pyg_hipts.data import read_npz
from pyg_hipts.potentials import load_potential
from pyg_hipts.timing import max_time
from pyg_hipts.train.checkpoints import newest_checkpoint

BASE = ROOT / "configs" / "rmd17_ts2.yaml"


def run(command: list[str], threads: int) -> None:
    print("#", " ".join(command), flush=True)
    environment = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    subprocess.run(command, check=True, env=environment, cwd=ROOT)


def write_yaml(path: Path, content: dict) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(content))
    return str(path)


def test_errors(run_dir: Path) -> tuple[float, float]:
    """Test energy and force MAE (meV, meV/Å) from the newest ``metrics.csv`` under ``run_dir``."""
    newest = max(run_dir.rglob("metrics.csv"), key=lambda p: p.stat().st_mtime)
    with newest.open() as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("test/force_mae")]
    return KCAL_TO_MEV * float(rows[-1]["test/energy_mae"]), KCAL_TO_MEV * float(rows[-1]["test/force_mae"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--molecule", default="ethanol")
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget of every model")
    parser.add_argument("--small-features", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="runs/distill")
    args = parser.parse_args()
    print(f"# python {' '.join(sys.argv)}", flush=True)
    out = (ROOT / args.out / args.molecule).resolve()
    train_file, test_file = rmd17_file(args.molecule, "train"), rmd17_file(args.molecule, "test")
    common = {
        "data": {"train_file": str(train_file), "test_file": str(test_file)},
        "trainer": {"max_time": max_time(args.minutes), "callbacks": [_checkpoint()], "logger": False},
    }

    base_losses = yaml.safe_load(BASE.read_text())["model"]["losses"]
    energy_only = [term for term in base_losses if term["class_path"].endswith(".EnergyLoss")]
    teachers = write_yaml(out / "teachers.yaml", {**common, "model": {"losses": energy_only}})
    run(
        [
            "pyg-hipts",
            "ensemble",
            "--config",
            str(BASE),
            "--config",
            teachers,
            "--members",
            str(args.members),
            "--output_dir",
            str(out / "teachers"),
        ],
        args.threads,
    )
    labelled = out / "labelled.npz"
    run(
        [
            "pyg-hipts",
            "label",
            "--ensemble",
            str(out / "teachers" / "ensemble.yaml"),
            "--input",
            str(train_file),
            "--output",
            str(labelled),
        ],
        args.threads,
    )

    baseline_dir = out / "teachers" / "member_0"
    baseline_test = write_yaml(
        out / "baseline_test.yaml",
        {"data": common["data"], "trainer": {"logger": _logger(baseline_dir / "test")}},
    )
    run(
        [
            "pyg-hipts",
            "test",
            "--config",
            str(BASE),
            "--config",
            baseline_test,
            "--ckpt_path",
            str(newest_checkpoint(baseline_dir)),
        ],
        args.threads,
    )

    student_data = {
        "train_file": str(labelled),
        "test_file": str(test_file),
        "reader_options": {"atom_energies_key": "atom_energies"},
        "test_reader_options": {},
    }
    small_sizes = {"n_features": args.small_features, "n_interaction_layers": 1, "l_max": 1}
    small = {"model": {"init_args": small_sizes}}
    atom_energies = {"class_path": "pyg_hipts.train.losses.AtomEnergyLoss", "init_args": {"weight": 1.0}}
    runs = {
        "EKD student": {},
        "small, energies + teacher forces": small,
        "small, + teacher atom energies": {**small, "losses": [*base_losses, atom_energies]},
    }
    for name, model_section in runs.items():
        run_dir = out / name.replace(" ", "_").replace(",", "").replace("+", "plus")
        override = {
            "data": student_data,
            "model": model_section,
            "trainer": {**common["trainer"], "logger": _logger(run_dir)},
        }
        run(
            [
                "pyg-hipts",
                "fit",
                "--config",
                str(BASE),
                "--config",
                write_yaml(run_dir / "override.yaml", override),
            ],
            args.threads,
        )
        runs[name] = run_dir

    frames = list(read_npz(test_file))[:200]
    torch.set_num_threads(args.threads)
    rows = [("energy-only baseline (teacher 0)", baseline_dir / "test")] + list(runs.items())
    print(f"\n| {args.molecule}, split 01 | energy MAE (meV) | force MAE (meV/Å) | atoms/s (E+F) |")
    print("|---|---|---|---|")
    for name, run_dir in rows:
        energy, force = test_errors(run_dir)
        checkpoint = newest_checkpoint(baseline_dir if run_dir == baseline_dir / "test" else run_dir)
        model = load_potential(checkpoint)
        print(f"| {name} | {energy:.2f} | {force:.2f} | {throughput(model, frames, 100):,.0f} |")


def _checkpoint() -> dict:
    return {
        "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
        "init_args": {"monitor": "val/loss", "mode": "min", "filename": "best", "save_top_k": 1},
    }


def _logger(save_dir: Path) -> dict:
    return {
        "class_path": "lightning.pytorch.loggers.CSVLogger",
        "init_args": {"save_dir": str(save_dir), "name": ""},
    }


if __name__ == "__main__":
    main()
