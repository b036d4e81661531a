"""``pyg-hipts ensemble``: train ``M`` members that differ only by their seed, list them in
``ensemble.yaml``.

    pyg-hipts ensemble --config configs/quickstart.yaml --members 4 --output_dir runs/ensemble \\
        [--first_seed 0] [-- --trainer.max_epochs 50 ...]

Member ``k`` runs ``pyg-hipts fit`` with ``--seed_everything first_seed + k`` (weights, batch
order); the data split (``data.seed``) is the same for all. Logs and checkpoints go to
``<output_dir>/member_<k>/version_0/``; ``<output_dir>/ensemble.yaml`` lists the best
checkpoints (paths relative to it), for :meth:`pyg_hipts.potentials.ensemble.Ensemble.from_file`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from pyg_hipts.train.cli import run_fit_cli


def train_ensemble(
    configs: list[str],
    members: int,
    output_dir: str | Path,
    first_seed: int = 0,
    extra: list[str] | None = None,
) -> Path:
    """Train the members one after the other; return the path of ``ensemble.yaml``."""
    if members < 2:
        raise ValueError(f"an ensemble needs at least 2 members, got {members}")
    output_dir = Path(output_dir)
    checkpoints = []
    for k in range(members):
        seed = first_seed + k
        print(f"[{k + 1}/{members}] member {k}, seed {seed}", flush=True)
        arguments = ["fit", *(argument for path in configs for argument in ("--config", path))]
        arguments += [
            *("--seed_everything", str(seed), "--trainer.logger", "lightning.pytorch.loggers.CSVLogger"),
            *("--trainer.logger.save_dir", str(output_dir), "--trainer.logger.name", f"member_{k}"),
            *("--trainer.logger.version", "0", "--test_after_fit", "false"),
            *(extra or []),
        ]
        cli = run_fit_cli(arguments)
        callback = cli.trainer.checkpoint_callback
        if callback is None or not (callback.best_model_path or callback.last_model_path):
            raise RuntimeError(f"member {k} wrote no checkpoint; the config needs a ModelCheckpoint callback")
        best = Path(callback.best_model_path or callback.last_model_path)
        checkpoints.append(str(best.resolve().relative_to(output_dir.resolve())))
    listing = output_dir / "ensemble.yaml"
    seeds = list(range(first_seed, first_seed + members))
    listing.write_text(yaml.safe_dump({"checkpoints": checkpoints, "seeds": seeds, "configs": configs}))
    print(f"wrote {listing}")
    return listing


def main(args: list[str]) -> Path:
    extra: list[str] = []
    if "--" in args:
        split = args.index("--")
        args, extra = args[:split], args[split + 1 :]
    parser = argparse.ArgumentParser(
        prog="pyg-hipts ensemble", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", action="append", required=True, help="repeatable; later ones override")
    parser.add_argument("--members", type=int, required=True)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--first_seed", type=int, default=0)
    options = parser.parse_args(args)
    return train_ensemble(options.config, options.members, options.output_dir, options.first_seed, extra)
