"""``pyg-hipts compare --config configs/compare_<dataset>.yaml``: train several models on the
same data split with the same wall-clock budget, then write a report (:mod:`.report`).

The comparison config (YAML)::

    base_config: configs/rmd17_ts2.yaml   # data, split, trainer and callbacks shared by all
                                           # (or a list of configs, later ones overriding)
    minutes: 20                            # training budget per model
    threads: 2                             # CPU threads per model (optional)
    max_epochs: 50                         # also stop at this many epochs (optional: equal
                                           # epochs instead of equal time)
    output_dir: reports/rmd17_aspirin
    models:                                # name -> model YAML, or "base" for base_config's own
      HIP-NN-TS: base
      SchNet: configs/models/schnet.yaml

Every model runs in its own process (:mod:`.worker`), so the peak memory is its own. The split
is fixed by the base config's data options and seed, and is the same for every model. Relative
paths are read from the folder the command runs in.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from pyg_hipts.compare.report import ModelResult, write_report


def read_comparison(path: str | Path) -> dict[str, Any]:
    """The comparison config, checked: unknown keys, missing models or files are errors."""
    config = yaml.safe_load(Path(path).read_text())
    allowed = {"base_config", "minutes", "threads", "max_epochs", "output_dir", "models"}
    if (
        not isinstance(config, dict)
        or set(config) - allowed
        or not {"base_config", "minutes", "models"} <= set(config)
    ):
        raise ValueError(
            f"{path}: needs base_config, minutes and models (optional: threads, max_epochs, output_dir)"
        )
    if not config["models"]:
        raise ValueError(f"{path}: no models listed")
    if isinstance(config["base_config"], str):
        config["base_config"] = [config["base_config"]]
    files = config["base_config"] + [m for m in config["models"].values() if m != "base"]
    missing = [f for f in files if not Path(f).is_file()]
    if missing:
        raise FileNotFoundError(f"{path}: config files not found: {missing}")
    return config


def main(args: list[str] | None = None) -> list[ModelResult]:
    parser = argparse.ArgumentParser(
        prog="pyg-hipts compare", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", required=True, help="comparison YAML")
    parser.add_argument("--minutes", type=float, help="override the budget per model")
    parser.add_argument("--output_dir", help="override the report folder")
    parser.add_argument("--threads", type=int, help="override the CPU threads per model")
    parser.add_argument(
        "--keep_results",
        action="store_true",
        help="reuse the result of every model that already has one in the report folder",
    )
    options = parser.parse_args(args)
    config = read_comparison(options.config)
    minutes = options.minutes if options.minutes is not None else float(config["minutes"])
    out = Path(options.output_dir or config.get("output_dir", "reports/comparison"))
    out.mkdir(parents=True, exist_ok=True)
    models = config["models"]
    results = []
    for index, (name, model) in enumerate(models.items(), start=1):
        kept = out / name / "result.json"
        if options.keep_results and kept.is_file():
            results.append(ModelResult(**json.loads(kept.read_text())))
            print(f"[{index}/{len(models)}] {name}: reusing {kept}", flush=True)
            continue
        print(f"[{index}/{len(models)}] {name}: training for at most {minutes:g} min", flush=True)
        command = [sys.executable, "-m", "pyg_hipts.compare.worker"]
        command += [argument for path in config["base_config"] for argument in ("--config", path)]
        command += ["--name", name, "--out", str(out), "--minutes", str(minutes)]
        if model != "base":
            command += ["--model", model]
        threads = options.threads if options.threads is not None else config.get("threads")
        if threads is not None:
            command += ["--threads", str(threads)]
        if config.get("max_epochs") is not None:
            command += ["--max_epochs", str(int(config["max_epochs"]))]
        start = time.perf_counter()
        subprocess.run(command, check=True)
        result = ModelResult(**json.loads((out / name / "result.json").read_text()))
        results.append(result)
        print(
            f"[{index}/{len(models)}] {name}: test force MAE {result.force_mae:.4g} {result.force_unit}, "
            f"{result.atoms_per_second:,.0f} atoms/s, {(time.perf_counter() - start) / 60:.1f} min",
            flush=True,
        )
    command_line = "pyg-hipts compare " + " ".join(args if args is not None else sys.argv[2:])
    for path in write_report(results, out, command_line):
        print(f"wrote {path}")
    return results


if __name__ == "__main__":
    main()
