"""Lightning's CLI over :class:`PotentialModule` and :class:`AtomsDataModule`.

Subcommands ``fit``, ``validate``, ``test``, ``predict``; e.g.::

    pyg-hipts fit --config configs/quickstart.yaml --model.model.init_args.l_max 1 --trainer.max_epochs 10
    pyg-hipts predict --config runs/quickstart/version_0/config.yaml \\
        --ckpt_path runs/quickstart/version_0/checkpoints/best.ckpt \\
        --data.predict_file structures.npz --prediction_writer.output_path predictions.npz

Options of the module are ``--model.<name>`` (e.g. ``--model.lr``), of the potential
``--model.model.init_args.<name>``, of the data ``--data.<name>``. After ``fit``, the best
checkpoint is tested when a test set exists (disable with ``--test_after_fit false``), which
prints the test errors with their units.
"""

from __future__ import annotations

import sys

import torch
from lightning.pytorch import Trainer
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI

from pyg_hipts.potentials.io import CheckpointError, read_checkpoint
from pyg_hipts.train.checkpoint_io import AtomicCheckpointIO
from pyg_hipts.train.datamodule import AtomsDataModule
from pyg_hipts.train.module import PotentialModule
from pyg_hipts.train.writer import PredictionWriter


class PotentialCLI(LightningCLI):
    """LightningCLI with a prediction writer, an optional test of the best checkpoint after ``fit``,
    atomic checkpoint writes (:class:`~pyg_hipts.train.checkpoint_io.AtomicCheckpointIO`) and a
    check of ``--ckpt_path`` before anything is built."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--test_after_fit",
            type=bool,
            default=True,
            help="(fit only) test the best checkpoint on the test set when fitting ends",
        )
        parser.add_argument(
            "--num_threads",
            type=int | None,
            default=None,
            help="CPU threads per process for tensor operations (torch.set_num_threads); small models "
            "often run fastest on 1; default: PyTorch's choice",
        )
        parser.add_lightning_class_args(PredictionWriter, "prediction_writer")

    def before_instantiate_classes(self) -> None:
        """Apply ``--num_threads``."""
        threads = self.config[self.subcommand].num_threads
        if threads is not None:
            torch.set_num_threads(threads)

    def _parse_ckpt_path(self) -> None:
        """Refuse a ``--ckpt_path`` that is not a checkpoint of this package (clear error naming the
        file) before Lightning reads hyper-parameters from it."""
        subcommand = self.config.get("subcommand")
        path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if path not in (None, "best", "last", "hpc", "registry"):
            contents = read_checkpoint(path)
            if "potential" not in contents:
                raise CheckpointError(f"{path}: not a training checkpoint of this package (no potential)")
        super()._parse_ckpt_path()

    def instantiate_trainer(self, **kwargs) -> Trainer:
        """The trainer, writing checkpoints atomically."""
        trainer = super().instantiate_trainer(**kwargs)
        trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        return trainer

    def after_fit(self) -> None:
        """Test the best checkpoint (or the final weights without one) when a test set exists."""
        if not self.config.fit.test_after_fit or not self.datamodule.has_test_data:
            return
        checkpoint = self.trainer.checkpoint_callback
        best = checkpoint is not None and bool(checkpoint.best_model_path)
        self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path="best" if best else None)


def run_fit_cli(args: ArgsType = None) -> PotentialCLI:
    """Lightning's subcommands (``fit``, ``validate``, ``test``, ``predict``) on ``args``
    (``sys.argv[1:]`` when ``None``); returns the CLI object."""
    saved_argv = sys.argv
    if (
        args is not None
    ):  # given arguments replace the calling program's own, which Lightning would warn about
        sys.argv = sys.argv[:1]
    try:
        return PotentialCLI(
            PotentialModule,
            AtomsDataModule,
            auto_configure_optimizers=False,
            seed_everything_default=0,
            save_config_kwargs={"overwrite": True},
            args=args,
        )
    finally:
        sys.argv = saved_argv
