"""The ``pyg-hipts`` command: a tiny fit from the quick-start config, then predict from its checkpoint."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

from pyg_hipts.data import embedded_dataset_path, load_split, read_npz
from pyg_hipts.train import PotentialModule
from pyg_hipts.train.cli import main
from tests.test_train_module import single_thread  # noqa: F401

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml"
TINY_RUN = [
    *("--model.init_args.n_features", "8", "--model.init_args.n_sensitivities", "6"),
    *("--model.init_args.n_interaction_layers", "1", "--model.init_args.n_atom_layers", "1"),
    *("--model.init_args.l_max", "1"),
    *("--data.n_train", "40", "--data.n_val", "20", "--data.n_test", "20"),
    *("--data.batch_size", "10", "--data.eval_batch_size", "20"),
    *("--trainer.max_epochs", "2"),
]
N_PREDICT = 7


@pytest.fixture
def run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Working directory of the command (outputs go to ``runs/`` below it)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["pyg-hipts"])
    return tmp_path


def _metric_rows(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_fit_then_predict(run_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert main(["fit", "--config", str(CONFIG), *TINY_RUN]) is None  # a console script exits with it
    version = run_dir / "runs" / "quickstart" / "version_0"
    best, last = version / "checkpoints" / "best.ckpt", version / "checkpoints" / "last.ckpt"
    assert best.is_file() and last.is_file() and (version / "config.yaml").is_file()
    assert any((run_dir / "runs" / "quickstart" / "tensorboard").rglob("events.out.tfevents.*"))

    split = load_split(version / "split.npz", n=1000)
    assert [len(split[name]) for name in ("train", "val", "test")] == [40, 20, 20]

    rows = _metric_rows(version / "metrics.csv")
    assert sorted({int(r["epoch"]) for r in rows if r.get("val/force_mae")}) == [0, 1]
    assert any(r.get("val/energy_mae") for r in rows)
    assert any(r.get("test/energy_mae") and r.get("test/force_mae") for r in rows)
    summary = [line for line in caplog.text.splitlines() if "Test: energy MAE" in line]
    assert summary and "kcal/mol" in summary[0] and "force MAE" in summary[0] and "kcal/mol/Å" in summary[0]

    module = PotentialModule.load_from_checkpoint(best)
    assert module.hparams.l_max == 1 and module.model.l_max == 1
    assert module.hparams.species == [1, 6, 8]

    frames = np.load(embedded_dataset_path("ethanol"))
    np.savez(
        run_dir / "few.npz",
        **{key: frames[key][:N_PREDICT] for key in ("coords", "energies", "forces")},
        nuclear_charges=frames["nuclear_charges"],
    )
    main(
        [
            "predict",
            "--config",
            str(version / "config.yaml"),
            "--ckpt_path",
            str(best),
            "--data.predict_file",
            "few.npz",
            "--prediction_writer.output_path",
            "predictions.npz",
        ]
    )
    with np.load(run_dir / "predictions.npz") as written:
        assert written["energy"].shape == (N_PREDICT,)
        assert written["forces"].shape == (9 * N_PREDICT, 3)
        assert written["natoms"].tolist() == [9] * N_PREDICT
        assert written["index"].tolist() == list(range(N_PREDICT))
        assert (str(written["energy_unit"]), str(written["force_unit"])) == ("kcal/mol", "kcal/mol/Å")
        energy, forces = torch.as_tensor(written["energy"]), torch.as_tensor(written["forces"])

    expected = module.model.predict_data(Batch.from_data_list(list(read_npz(run_dir / "few.npz"))))
    torch.testing.assert_close(energy, expected.energy.squeeze(1).detach())
    torch.testing.assert_close(forces, expected.forces, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "name", ["quickstart", "rmd17_hipnn", "rmd17_ts1", "rmd17_ts2", "water", "cg_ala2", "cg_water"]
)
def test_configs_parse(name: str, run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["fit", "--config", str(CONFIG.with_name(f"{name}.yaml")), "--print_config"])
    assert stop.value.code == 0
    assert "class_path: pyg_hipts." in capsys.readouterr().out
