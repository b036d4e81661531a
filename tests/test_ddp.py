"""Distributed data parallel on 2 CPU processes (gloo): disjoint shards, metrics equal to one process.

The DDP part runs in a subprocess (``python -m tests.test_ddp <folder>``); Lightning starts the
second rank by running the same command again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Callback, Trainer, seed_everything
from lightning.pytorch.callbacks import ModelCheckpoint
from torch_geometric.data import Batch

from pyg_hipts.data import embedded_dataset_path, read_npz
from pyg_hipts.data.prepare import prepare
from pyg_hipts.potentials import load_potential
from pyg_hipts.train import PotentialModule
from pyg_hipts.train.callbacks import TimeBudgetAnnealing
from tests.test_train_module import QUIET, ethanol_datamodule, tiny_losses, tiny_module

REPO = Path(__file__).resolve().parents[1]
VALIDATE_FILE = "ddp_validate.json"


def _frame_key(positions: torch.Tensor) -> str:
    """An exact identifier of a structure: its coordinates."""
    return json.dumps(positions.reshape(-1).tolist())


class SampleRecorder(Callback):
    """Per rank, the structures of every training epoch and of ``Trainer.validate``, written as JSON."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.seen: dict[str, list[str]] = defaultdict(list)

    def _record(self, name: str, batch: Batch) -> None:
        self.seen[name] += [_frame_key(batch.pos[batch.batch == g]) for g in range(batch.num_graphs)]

    def on_train_batch_start(self, trainer: Trainer, module, batch: Batch, batch_idx: int) -> None:
        self._record(f"train_epoch{trainer.current_epoch}", batch)

    def on_validation_batch_start(self, trainer: Trainer, module, batch: Batch, *args) -> None:
        if trainer.state.fn == "validate":
            self._record("validate", batch)

    def teardown(self, trainer: Trainer, module, stage: str) -> None:
        self.seen["learning_rate"] = [repr(trainer.optimizers[0].param_groups[0]["lr"])]
        path = self.directory / f"samples.rank{trainer.global_rank}.json"
        path.write_text(json.dumps(self.seen))


def ddp_fit_and_validate(directory: Path, train_file: str) -> None:
    """Fit 2 epochs and validate on 2 processes; rank 0 writes the validation metrics. The
    learning rate is annealed by the time spent from the first batch on."""
    seed_everything(0)
    callbacks = [
        ModelCheckpoint(dirpath=directory, save_last=True),
        SampleRecorder(directory),
        TimeBudgetAnnealing(start=0.0, final_factor=0.5),
    ]
    trainer = Trainer(
        **{**QUIET, "devices": 2, "enable_checkpointing": True},
        strategy="ddp",
        max_epochs=2,
        max_time={"minutes": 10},
        default_root_dir=directory,
        callbacks=callbacks,
    )
    module, datamodule = tiny_module(), ethanol_datamodule(train_file=train_file)
    trainer.fit(module, datamodule)
    metrics = trainer.validate(module, datamodule, verbose=False)[0]
    if trainer.is_global_zero:
        (directory / VALIDATE_FILE).write_text(json.dumps(metrics))
    # Left to interpreter exit, gloo's teardown sometimes aborts ("terminate called without an
    # active exception", exit -6) after all work is done.
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def _indices(keys: list[str], index_of: dict[str, int]) -> list[int]:
    return [index_of[key] for key in keys]


@pytest.mark.slow
@pytest.mark.parametrize("storage", ["in memory", "prepared"])
def test_ddp_two_processes(tmp_path: Path, storage: str) -> None:
    """In memory, Lightning's distributed sampler shards the frames; a prepared folder is batched
    from its memory-mapped arrays by each rank's own share of the batch plan."""
    train_file = "embedded:ethanol"
    if storage == "prepared":
        train_file = str(
            prepare(embedded_dataset_path("ethanol"), tmp_path / "ethanol.prepared", progress=False).folder
        )
    env = {key: value for key, value in os.environ.items() if key not in ("LOCAL_RANK", "WORLD_SIZE")}
    result = subprocess.run(
        [sys.executable, "-m", "tests.test_ddp", str(tmp_path), train_file],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoint = torch.load(tmp_path / "last.ckpt", weights_only=True)
    assert checkpoint["epoch"] == 1

    # each epoch's training frames and the validation frames: disjoint shards covering the set
    datamodule = ethanol_datamodule()
    datamodule.setup("fit")
    frames = read_npz(embedded_dataset_path("ethanol"))
    index_of = {_frame_key(frames[i].pos): i for i in range(len(frames))}
    ranks = [json.loads((tmp_path / f"samples.rank{r}.json").read_text()) for r in (0, 1)]
    for name, expected in [("train_epoch0", "train"), ("train_epoch1", "train"), ("validate", "val")]:
        shards = [_indices(rank[name], index_of) for rank in ranks]
        assert len(shards[0]) == len(shards[1]) > 0
        assert not set(shards[0]) & set(shards[1])
        assert sorted(shards[0] + shards[1]) == datamodule.split[expected].tolist()

    # both ranks stepped with the same, annealed learning rate
    learning_rates = [float(rank["learning_rate"][0]) for rank in ranks]
    assert learning_rates[0] == learning_rates[1] < tiny_module().hparams.lr

    # the same weights validated on one process give the same epoch metrics
    ddp_metrics = json.loads((tmp_path / VALIDATE_FILE).read_text())
    module = PotentialModule(load_potential(tmp_path / "last.ckpt"), tiny_losses())
    single = Trainer(**QUIET).validate(module, ethanol_datamodule(), verbose=False)[0]
    assert set(single) == set(ddp_metrics)
    for name, value in single.items():
        assert ddp_metrics[name] == pytest.approx(value, rel=1e-5), name


if __name__ == "__main__":
    ddp_fit_and_validate(Path(sys.argv[1]), sys.argv[2])
