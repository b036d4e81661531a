"""Train HIP-NN-TS on rMD17 (standard split 01, 1000 training frames) with a stated CPU budget.

For each molecule: ``pyg-hipts fit`` with ``--config`` (950 training / 50 validation
frames drawn from ``rmd17_<molecule>_train_01.npz``), a wall-time budget, then a test of the best
checkpoint on the 1000 frames of ``rmd17_<molecule>_test_01.npz``. Prints energy MAE (meV per
molecule) and force MAE (meV/Å per component) next to published numbers (MACE paper, Table 1;
these models trained for days on GPUs).

Run from the project root, e.g.::

    python benchmarks/train_rmd17.py --molecules aspirin ethanol uracil --minutes 40 --threads 2

Any further option goes to ``pyg-hipts fit`` unchanged, so a variant of a config needs no new file,
e.g. ``--model.model.init_args.tensor_invariants complete``; ``--config`` takes several files, applied
in order (a base config, then one that changes part of it).
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml
from rmd17_files import KCAL_TO_MEV, ROOT, rmd17_file

from pyg_hipts.timing import max_time

PUBLISHED = {  # energy meV / force meV/Å, N_train = 1000
    "aspirin": {"PaiNN": (6.9, 16.1), "NequIP": (2.3, 8.2), "MACE": (2.2, 6.6)},
    "ethanol": {"PaiNN": (2.7, 10.0), "NequIP": (0.4, 2.8), "MACE": (0.4, 2.1)},
    "malonaldehyde": {"PaiNN": (3.9, 13.8), "NequIP": (0.8, 5.1), "MACE": (0.8, 4.1)},
    "naphthalene": {"PaiNN": (5.1, 3.6), "NequIP": (0.9, 1.3), "MACE": (0.5, 1.6)},
    "salicylic": {"PaiNN": (4.9, 9.1), "NequIP": (0.7, 4.0), "MACE": (0.9, 3.1)},
    "uracil": {"PaiNN": (4.5, 6.1), "NequIP": (0.4, 3.1), "MACE": (0.5, 2.1)},
}


def override_config(molecule: str, minutes: float, run_dir: Path, max_epochs: int) -> Path:
    """A second YAML for LightningCLI: the molecule's files, the time budget and the log folder."""
    config = {
        "data": {
            "train_file": str(rmd17_file(molecule, "train")),
            "test_file": str(rmd17_file(molecule, "test")),
        },
        "trainer": {
            "max_time": max_time(minutes),
            "max_epochs": max_epochs,
            "logger": [
                {
                    "class_path": "lightning.pytorch.loggers.CSVLogger",
                    "init_args": {"save_dir": str(run_dir), "name": ""},
                }
            ],
        },
    }
    path = run_dir / "benchmark_override.yaml"
    run_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    return path


def last_metrics(run_dir: Path) -> tuple[dict[str, float], int]:
    """Test metrics and the number of finished epochs from the newest ``metrics.csv``."""
    newest = max(run_dir.glob("version_*/metrics.csv"), key=lambda p: p.stat().st_mtime)
    rows = list(csv.DictReader(newest.open()))
    test = {k: float(v) for row in rows for k, v in row.items() if k.startswith("test/") and v}
    epochs = len({row["epoch"] for row in rows if row.get("train/loss")})  # epochs that finished
    return test, epochs


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False
    )
    parser.add_argument("--molecules", nargs="+", default=["aspirin", "ethanol", "uracil"])
    parser.add_argument(
        "--config", nargs="+", default=["configs/rmd17_ts2.yaml"], help="configs applied in order"
    )
    parser.add_argument("--minutes", type=float, default=40.0, help="training wall-time budget per molecule")
    parser.add_argument("--max-epochs", type=int, default=100000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="runs/rmd17_benchmark")
    args, fit_options = parser.parse_known_args()
    print(f"# python {' '.join(sys.argv)}", flush=True)
    environment = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    rows = []
    for molecule in args.molecules:
        run_dir = Path(args.out) / molecule
        override = override_config(molecule, args.minutes, run_dir, args.max_epochs)
        configs = [item for path in [*args.config, str(override)] for item in ("--config", path)]
        command = ["pyg-hipts", "fit", *configs, *fit_options]
        print("#", " ".join(command), flush=True)
        start = time.perf_counter()
        subprocess.run(command, check=True, env=environment, cwd=ROOT)
        wall = (time.perf_counter() - start) / 60
        test, epochs = last_metrics(run_dir)
        energy, force = KCAL_TO_MEV * test["test/energy_mae"], KCAL_TO_MEV * test["test/force_mae"]
        rows.append((molecule, energy, force, epochs, wall))
        print(
            f"{molecule}: energy MAE {energy:.2f} meV, force MAE {force:.2f} meV/Å, "
            f"{epochs} epochs, {wall:.1f} min",
            flush=True,
        )

    variant = " ".join([*(Path(path).stem for path in args.config), *fit_options])
    print(
        f"\n| molecule | pyg_hipts ({variant}) E / F | epochs "
        f"| wall (min, {args.threads} threads) | PaiNN | NequIP | MACE |"
    )
    print("|---|---|---|---|---|---|---|")
    for molecule, energy, force, epochs, wall in rows:
        published = " | ".join(f"{e} / {f}" for e, f in PUBLISHED[molecule].values())
        print(f"| {molecule} | {energy:.1f} / {force:.1f} | {epochs} | {wall:.0f} | {published} |")


if __name__ == "__main__":
    main()
