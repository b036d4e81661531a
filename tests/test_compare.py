"""The comparison report (from stub results) and ``pyg-hipts compare`` end to end on tiny models."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import matplotlib.image
import pytest
import yaml

from pyg_hipts.cli import main
from pyg_hipts.compare.report import ModelResult, learning_curve, write_report
from pyg_hipts.compare.runner import read_comparison


def _stub(tmp_path: Path, name: str, seconds: list[float], errors: list[float], **numbers) -> ModelResult:
    """A result whose metrics.csv has Lightning's layout (validation and training rows apart)."""
    path = tmp_path / f"{name}.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(
            handle, fieldnames=["epoch", "step", "time/train_seconds", "val/force_mae", "lr"]
        )
        writer.writeheader()
        for epoch, (second, error) in enumerate(zip(seconds, errors, strict=True)):
            writer.writerow(
                {"epoch": epoch, "step": 10 * epoch, "time/train_seconds": second, "val/force_mae": error}
            )
            writer.writerow({"epoch": epoch, "step": 10 * epoch, "lr": 1e-3})
    values = dict(
        parameters=1234,
        epochs=len(seconds),
        train_seconds=seconds[-1],
        seconds_per_epoch=seconds[-1] / len(seconds),
        atoms_per_second=5.0e4,
        peak_memory_mib=120.0,
        energy_mae=0.25,
        force_mae=0.5,
    )
    values.update(numbers)
    return ModelResult(
        name=name, energy_unit="kcal/mol", force_unit="kcal/mol/Å", metrics_csv=str(path), **values
    )


def test_report_holds_the_given_numbers(tmp_path: Path) -> None:
    results = [
        _stub(
            tmp_path,
            "HIP-NN-TS",
            [10.0, 20.0, 30.0],
            [2.0, 1.0, 0.7],
            force_mae=0.61,
            atoms_per_second=81234.0,
        ),
        _stub(
            tmp_path,
            "SchNet",
            [15.0, 30.0],
            [3.0, 2.5],
            parameters=98765,
            energy_mae=0.33,
            peak_memory_mib=456.0,
        ),
    ]
    paths = write_report(results, tmp_path / "report", command="pyg-hipts compare --config c.yaml")
    assert [p.name for p in paths] == [
        "report.csv",
        "report.md",
        "learning_curves.png",
        "accuracy_vs_time.png",
    ]

    with (tmp_path / "report" / "report.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["name"] for r in rows] == ["HIP-NN-TS", "SchNet"]
    assert float(rows[0]["force_mae"]) == 0.61 and float(rows[0]["atoms_per_second"]) == 81234.0
    assert int(rows[1]["parameters"]) == 98765 and float(rows[1]["energy_mae"]) == 0.33
    assert float(rows[1]["peak_memory_mib"]) == 456.0 and float(rows[1]["seconds_per_epoch"]) == 15.0

    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "pyg-hipts compare --config c.yaml" in markdown
    table = [
        line
        for line in markdown.splitlines()
        if line.startswith("| HIP-NN-TS") or line.startswith("| SchNet")
    ]
    assert table[0].split("|")[1:-1] == [
        " HIP-NN-TS ",
        " 1,234 ",
        " 3 ",
        " 10.00 ",
        " 81,234 ",
        " 120 ",
        " 0.25 ",
        " 0.61 ",
    ]
    assert "98,765" in table[1] and "456" in table[1]
    assert "force MAE (kcal/mol/Å)" in markdown

    for png in paths[2:]:
        image = matplotlib.image.imread(png)
        assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 200
    assert learning_curve(results[0].metrics_csv) == ([10.0, 20.0, 30.0], [2.0, 1.0, 0.7])


def test_report_needs_results(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no results"):
        write_report([], tmp_path)


def test_comparison_config_is_checked(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text("seed_everything: 0\n")
    good = {"base_config": str(tmp_path / "base.yaml"), "minutes": 1, "models": {"A": "base"}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(good))
    assert read_comparison(tmp_path / "c.yaml")["models"] == {"A": "base"}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({**good, "modles": {}}))
    with pytest.raises(ValueError, match="needs base_config"):
        read_comparison(tmp_path / "c.yaml")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({**good, "models": {"B": "missing.yaml"}}))
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        read_comparison(tmp_path / "c.yaml")


FORCE_LOSS = {"class_path": "pyg_hipts.train.losses.ForceLoss", "init_args": {"weight": 20.0}}
BASE = {
    "seed_everything": 0,
    "model": {
        "model": {
            "class_path": "pyg_hipts.nn.HipNN",
            "init_args": {
                **{"n_features": 8, "n_sensitivities": 6, "n_interaction_layers": 1, "n_atom_layers": 1},
                **{"l_max": 1, "dist_soft_min": 0.85, "dist_soft_max": 4.0, "dist_hard_max": 4.5},
            },
        },
        "losses": [{"class_path": "pyg_hipts.train.losses.EnergyLoss"}, FORCE_LOSS],
    },
    "data": {"train_file": "embedded:ethanol", "n_train": 20, "n_val": 10, "n_test": 10, "batch_size": 10},
    "trainer": {"max_epochs": 50, "accelerator": "cpu", "devices": 1, "inference_mode": False},
}
SCHNET_NETWORK = {
    "class_path": "torch_geometric.nn.models.SchNet",
    "init_args": {"hidden_channels": 8, "num_filters": 8, "num_interactions": 1, "cutoff": 4.0},
}
SCHNET = {
    "model": {
        "class_path": "pyg_hipts.potentials.SumPotential",
        "init_args": {
            "terms": [
                {"class_path": "pyg_hipts.potentials.ReferenceEnergies"},
                {
                    "class_path": "pyg_hipts.potentials.pyg.PygPotential",
                    "init_args": {"network": SCHNET_NETWORK},
                },
            ]
        },
    }
}


def test_compare_command_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["pyg-hipts"])
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(BASE))
    (tmp_path / "schnet.yaml").write_text(yaml.safe_dump(SCHNET))
    comparison = {
        "base_config": "base.yaml",
        "minutes": 2,
        "max_epochs": 2,
        "threads": 1,
        "output_dir": "report",
    }
    comparison["models"] = {"HIP-NN-TS": "base", "SchNet": "schnet.yaml"}
    (tmp_path / "compare.yaml").write_text(yaml.safe_dump(comparison))
    main(["compare", "--config", "compare.yaml"])
    with (tmp_path / "report" / "report.csv").open() as handle:
        rows = {r["name"]: r for r in csv.DictReader(handle)}
    assert set(rows) == {"HIP-NN-TS", "SchNet"}
    for row in rows.values():
        assert int(row["epochs"]) == 2 and float(row["atoms_per_second"]) > 0
        assert 0 < float(row["force_mae"]) < 100 and int(row["parameters"]) > 0
        seconds, errors = learning_curve(row["metrics_csv"])
        assert len(errors) == 2 and 0 < seconds[0] < seconds[1]
    assert int(rows["SchNet"]["parameters"]) != int(rows["HIP-NN-TS"]["parameters"])
    # both models saw the same split
    splits = [(tmp_path / "report" / name / "version_0" / "split.npz").read_bytes() for name in rows]
    assert splits[0] == splits[1]


@pytest.mark.parametrize(
    "name, models",
    [
        ("compare_rmd17_aspirin", {"HIP-NN-TS", "SchNet", "DimeNet++", "ViSNet"}),
        ("compare_rmd17_ethanol", {"HIP-NN-TS", "SchNet", "DimeNet++", "ViSNet"}),
        ("compare_peers_rmd17_aspirin", {"HIP-NN-TS", "MACE", "ANI"}),
        ("compare_peers_rmd17_ethanol", {"HIP-NN-TS", "MACE", "ANI"}),
        ("compare_hippynn_rmd17_ethanol", {"HIP-NN-TS", "hippynn HIP-NN-TS"}),
    ],
)
def test_shipped_comparisons_name_existing_configs(
    name: str, models: set, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(root)
    config = read_comparison(root / "configs" / f"{name}.yaml")
    assert set(config["models"]) == models


def test_keep_results_reports_earlier_results_without_training(tmp_path: Path, monkeypatch) -> None:
    from dataclasses import asdict

    from pyg_hipts.compare.runner import main

    (tmp_path / "base.yaml").write_text(yaml.safe_dump(BASE))
    comparison = {"base_config": "base.yaml", "minutes": 1, "output_dir": "report", "models": {"A": "base"}}
    (tmp_path / "compare.yaml").write_text(yaml.safe_dump(comparison))
    kept = _stub(tmp_path, "A", [1.0, 2.0], [0.9, 0.7], force_mae=0.125)
    (tmp_path / "report" / "A").mkdir(parents=True)
    (tmp_path / "report" / "A" / "result.json").write_text(json.dumps(asdict(kept)))
    monkeypatch.setattr("subprocess.run", lambda *args, **kwargs: pytest.fail("a kept model was trained"))
    results = main(["--config", "compare.yaml", "--keep_results"])
    assert results == [kept]
    assert "| A | 1,234 | 2 |" in (tmp_path / "report" / "report.md").read_text()
