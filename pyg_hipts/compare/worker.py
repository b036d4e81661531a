"""One model of a comparison, in its own process: fit, test, time inference, report peak memory
(the growth of the process's peak resident set over its size after imports).

``python -m pyg_hipts.compare.worker --config BASE.yaml [--config MORE.yaml] [--model MODEL.yaml] --name NAME
--out DIR --minutes M [--max_epochs E] [--threads T]`` trains with ``pyg-hipts fit`` (the base config's data,
trainer and callbacks; the model from ``--model`` when given), tests the best checkpoint, and
writes ``DIR/NAME/result.json`` (see :class:`pyg_hipts.compare.report.ModelResult`).
"""

from __future__ import annotations

import argparse
import json
import resource
from dataclasses import asdict
from pathlib import Path

from torch_geometric.data import Batch

from pyg_hipts.compare.report import ModelResult
from pyg_hipts.potentials import Potential, load_potential
from pyg_hipts.timing import max_time, median_seconds
from pyg_hipts.train.callbacks import EpochClock
from pyg_hipts.train.cli import run_fit_cli

THROUGHPUT_FRAMES = 200
THROUGHPUT_REPEATS = 3


def throughput(model: Potential, frames: list, batch_size: int) -> float:
    """Atoms per second for energies + forces over ``frames`` (median of a few passes)."""
    batches = [Batch.from_data_list(frames[i : i + batch_size]) for i in range(0, len(frames), batch_size)]
    n_atoms = sum(b.num_nodes for b in batches)
    model.eval()

    def one_pass() -> None:
        for batch in batches:
            model.predict_data(batch, forces=True)

    return n_atoms / median_seconds(one_pass, THROUGHPUT_REPEATS)


def run(
    configs: list[str],
    model: str | None,
    name: str,
    out: Path,
    minutes: float,
    threads: int | None,
    max_epochs: int | None = None,
) -> ModelResult:
    """Fit and test one model; measure it; return its row of the report."""
    run_dir = out / name
    memory_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    arguments = ["fit", *(argument for path in configs for argument in ("--config", path))]
    if model is not None:
        arguments += ["--model", model]
    arguments += [
        *("--trainer.max_time", max_time(minutes), "--test_after_fit", "true"),
        *("--trainer.logger", "lightning.pytorch.loggers.CSVLogger"),
        *(
            "--trainer.logger.save_dir",
            str(out),
            "--trainer.logger.name",
            name,
            "--trainer.logger.version",
            "0",
        ),
        "--trainer.callbacks+=pyg_hipts.train.callbacks.EpochClock",
    ]
    if threads is not None:
        arguments += ["--num_threads", str(threads)]
    if max_epochs is not None:
        arguments += ["--trainer.max_epochs", str(max_epochs)]
    cli = run_fit_cli(arguments)
    clock = next(c for c in cli.trainer.callbacks if isinstance(c, EpochClock))
    metrics = {key: float(value) for key, value in cli.trainer.callback_metrics.items()}
    checkpoint = cli.trainer.checkpoint_callback
    if checkpoint is not None and checkpoint.best_model_path:
        network = load_potential(checkpoint.best_model_path)
    else:
        network = cli.model.eval_model
    test_frames = list(cli.datamodule.datasets["test"])[:THROUGHPUT_FRAMES]
    epochs = cli.trainer.current_epoch
    units = cli.datamodule.units
    return ModelResult(
        name=name,
        parameters=sum(p.numel() for p in network.parameters()),
        epochs=epochs,
        train_seconds=clock.train_seconds,
        seconds_per_epoch=clock.train_seconds / max(epochs, 1),
        atoms_per_second=throughput(network, test_frames, cli.datamodule.hparams.eval_batch_size or 32),
        peak_memory_mib=(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - memory_before) / 1024,
        energy_mae=metrics["test/energy_mae"],
        force_mae=metrics["test/force_mae"],
        energy_unit=units.energy,
        force_unit=units.force,
        metrics_csv=str(run_dir / "version_0" / "metrics.csv"),
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", required=True, action="append", help="repeatable; later ones override")
    parser.add_argument("--model")
    parser.add_argument("--name", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--minutes", type=float, required=True)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--max_epochs", type=int, help="stop at this many epochs if the budget lasts")
    args = parser.parse_args()
    out = Path(args.out)
    result = run(args.config, args.model, args.name, out, args.minutes, args.threads, args.max_epochs)
    (out / args.name).mkdir(parents=True, exist_ok=True)
    (out / args.name / "result.json").write_text(json.dumps(asdict(result), indent=2))


if __name__ == "__main__":
    main()
