"""The GPU path: CUDA equals CPU for energies, forces, stress and a training step, the step's
host synchronisations are the ones counted on the CPU (``tests/test_host_syncs.py``), and a
``pyg-hipts fit`` runs on the GPU from a prepared dataset. Every test is marked ``cuda`` and
skips without a GPU; ``benchmarks/gpu_check.sh`` runs them on a GPU machine."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import pytest
import torch
from torch_geometric.data import Batch

from pyg_hipts.data import embedded_dataset_path, read_dataset, read_npz
from pyg_hipts.data.prepare import prepare
from pyg_hipts.nn import HipNN
from pyg_hipts.train.cli import run_fit_cli
from tests.test_host_syncs import STEP_DATA_DEPENDENT, STEP_READS
from tests.test_readers import shared

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
]
QUICKSTART = Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml"
SIZES = dict(
    n_features=32, n_sensitivities=16, dist_soft_min=0.85, dist_soft_max=5.0, dist_hard_max=6.5, l_max=2
)


def _ethanol_batch(n: int = 32) -> Batch:
    frames = read_npz(embedded_dataset_path("ethanol"), dtype=torch.float64)
    return Batch.from_data_list([frames[i] for i in range(n)])


def _loss(model: HipNN, batch: Batch) -> torch.Tensor:
    out = model.predict(batch.z, batch.pos, batch.batch, create_graph=True)
    energy = batch.energy - batch.energy.mean()
    return (out.energy.flatten() - energy).square().mean() + (out.forces - batch.forces).square().mean()


def test_energies_and_forces_equal_cpu() -> None:
    batch = _ethanol_batch()
    model = HipNN(species=[1, 6, 8], **SIZES).double()
    on_cpu = model.predict(batch.z, batch.pos, batch.batch)
    on_gpu = copy.deepcopy(model).cuda().predict(batch.z.cuda(), batch.pos.cuda(), batch.batch.cuda())
    assert torch.allclose(on_gpu.energy.cpu(), on_cpu.energy, rtol=1e-10, atol=1e-10)
    assert torch.allclose(on_gpu.forces.cpu(), on_cpu.forces, rtol=1e-9, atol=1e-10)


def test_periodic_water_with_stress_equals_cpu() -> None:
    frames = read_dataset(shared("deepmd_water", "data_0"), dtype=torch.float64)
    batch = Batch.from_data_list([frames[i] for i in range(2)])
    model = HipNN(species=[1, 8], **SIZES).double()
    options = dict(cell=batch.cell, pbc=batch.pbc, stress=True)
    on_cpu = model.predict(batch.z, batch.pos, batch.batch, **options)
    gpu = batch.to("cuda")
    on_gpu = (
        copy.deepcopy(model)
        .cuda()
        .predict(gpu.z, gpu.pos, gpu.batch, cell=gpu.cell, pbc=gpu.pbc, stress=True)
    )
    for name in ("energy", "forces", "stress"):
        assert torch.allclose(getattr(on_gpu, name).cpu(), getattr(on_cpu, name), rtol=1e-9, atol=1e-10), name


def test_training_step_equals_cpu() -> None:
    batch = _ethanol_batch()
    models = [HipNN(species=[1, 6, 8], **SIZES).double() for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    models[1].cuda()
    for model, data in zip(models, (batch, batch.to("cuda")), strict=True):
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        _loss(model, data).backward()
        optimizer.step()
    for (name, cpu), gpu in zip(models[0].state_dict().items(), models[1].state_dict().values(), strict=True):
        assert torch.allclose(gpu.cpu(), cpu, rtol=1e-9, atol=1e-12), name


def test_training_step_synchronises_only_where_counted() -> None:
    batch = _ethanol_batch(16).to("cuda")
    model = HipNN(
        species=[1, 6, 8], n_features=16, n_sensitivities=8, dist_soft_max=4.5, dist_hard_max=5.0, l_max=2
    )
    model = model.double().cuda()
    _loss(model, batch).backward()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _loss(model, batch).backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    synchronising = [w for w in caught if "synchroniz" in str(w.message)]
    assert len(synchronising) <= STEP_READS + STEP_DATA_DEPENDENT, [str(w.message) for w in synchronising]


def test_fit_on_gpu_from_prepared_data(tmp_path) -> None:
    prepared = prepare(embedded_dataset_path("ethanol"), tmp_path / "ethanol.prepared", progress=False)
    cli = run_fit_cli(
        [
            "fit",
            "--config",
            str(QUICKSTART),
            *["--data.train_file", str(prepared.folder), "--trainer.accelerator", "gpu"],
            *[
                "--trainer.max_epochs",
                "2",
                "--trainer.max_time",
                "null",
                "--trainer.callbacks.refresh_rate",
                "0",
            ],
        ]
    )
    assert cli.trainer.strategy.root_device.type == "cuda"
    assert cli.trainer.callback_metrics["test/force_mae"] < 10.0
