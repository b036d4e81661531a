"""The ``pyg-hipts`` command: a tiny fit from the quick-start config, its checkpoint loaded as a
potential, predict from it; and every shipped config parses and trains for one step."""

from __future__ import annotations

import csv
import math
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch_geometric.data import Batch

from pyg_hipts.cg.mapping import Mapping
from pyg_hipts.cli import main, run_cli
from pyg_hipts.compare.runner import read_comparison
from pyg_hipts.data import Units, embedded_dataset_path, load_split, read_npz
from pyg_hipts.potentials import Potential, load_potential

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
SHARED_DATA = REPO.parent / "shared" / "data"
CONFIG = CONFIGS / "quickstart.yaml"
TINY_RUN = [
    *("--model.model.init_args.n_features", "8", "--model.model.init_args.n_sensitivities", "6"),
    *("--model.model.init_args.n_interaction_layers", "1", "--model.model.init_args.n_atom_layers", "1"),
    *("--model.model.init_args.l_max", "1", "--model.ema_decay", "0.5"),
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


def test_fit_then_load_then_predict(run_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    cli = run_cli(["fit", "--config", str(CONFIG), *TINY_RUN])
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

    # the YAML's HipNN has no species: they came from the data; the checkpoint is plain data
    contents = torch.load(best, weights_only=True)
    spec = contents["potential"]
    assert spec["class_path"] == "pyg_hipts.nn.model.HipNN" and spec["dtype"] == "float32"
    assert spec["init_args"]["species"] == [1, 6, 8] and spec["init_args"]["l_max"] == 1
    assert spec["units"] == {"length": "Å", "energy": "kcal/mol"}
    assert contents["hyper_parameters"]["species"] == [1, 6, 8]

    # the loaded potential is the module's eval model (the EMA; the test after fit loaded best)
    potential = load_potential(best)
    assert type(potential) is type(cli.model.model) and not potential.training
    assert potential.units == Units("Å", "kcal/mol") and potential.species == [1, 6, 8]
    frames = np.load(embedded_dataset_path("ethanol"))
    np.savez(
        run_dir / "few.npz",
        **{key: frames[key][:N_PREDICT] for key in ("coords", "energies", "forces")},
        nuclear_charges=frames["nuclear_charges"],
    )
    batch = Batch.from_data_list(list(read_npz(run_dir / "few.npz")))
    expected = potential.predict_data(batch)
    module_output = cli.model.eval_model.predict_data(batch)
    assert torch.equal(expected.energy, module_output.energy)
    assert torch.equal(expected.forces, module_output.forces)
    trained = cli.model.model.predict_data(batch)  # the weights themselves, not their average
    assert not torch.allclose(trained.energy, expected.energy, rtol=0, atol=1e-4)

    assert (
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
        is None  # a console script exits with it
    )
    with np.load(run_dir / "predictions.npz") as written:
        assert written["energy"].shape == (N_PREDICT,)
        assert written["forces"].shape == (9 * N_PREDICT, 3)
        assert written["natoms"].tolist() == [9] * N_PREDICT
        assert written["z"].tolist() == frames["nuclear_charges"].tolist() * N_PREDICT
        assert written["index"].tolist() == list(range(N_PREDICT))
        assert (str(written["energy_unit"]), str(written["force_unit"])) == ("kcal/mol", "kcal/mol/Å")
        assert str(written["length_unit"]) == "Å"
        energy, forces = torch.as_tensor(written["energy"]), torch.as_tensor(written["forces"])
    torch.testing.assert_close(energy, expected.energy.squeeze(1).detach().to(energy.dtype))
    torch.testing.assert_close(forces, expected.forces, rtol=1e-4, atol=1e-4)


# --- every shipped config -------------------------------------------------------------------------


def _write_ala2_beads(path: Path, n_frames: int = 40) -> None:
    """The first frames of the cgnet alanine-dipeptide beads (C N CA C N), forces only."""
    folder = SHARED_DATA / "cgnet_ala2"
    np.savez(
        path,
        nuclear_charges=np.array([1, 2, 3, 1, 2]),
        coords=np.load(folder / "ala2_coordinates.npy")[:n_frames],
        forces=np.load(folder / "ala2_forces.npy")[:n_frames],
        temperature=np.array(300.0),
    )


def _write_water_beads(path: Path, n_frames: int = 8) -> None:
    """One bead per molecule (centre of mass, summed forces) of the deepmd water frames."""
    folder = SHARED_DATA / "deepmd_water" / "data_0"
    types = np.loadtxt(folder / "type.raw", dtype=np.int64)  # 0 = O, 1 = H
    pos = np.load(folder / "set.000" / "coord.npy")[:n_frames].reshape(n_frames, -1, 3)
    forces = np.load(folder / "set.000" / "force.npy")[:n_frames].reshape(n_frames, -1, 3)
    cell = np.load(folder / "set.000" / "box.npy")[:n_frames].reshape(n_frames, 3, 3)
    oxygens, hydrogens = np.flatnonzero(types == 0), np.flatnonzero(types == 1)
    offset = pos[0][hydrogens][:, None] - pos[0][oxygens][None]
    offset -= np.round(offset @ np.linalg.inv(cell[0])) @ cell[0]
    owner = oxygens[np.linalg.norm(offset, axis=-1).argmin(1)]
    groups = [(o, *hydrogens[owner == o]) for o in oxygens]
    assert all(len(group) == 3 for group in groups)
    mapping = Mapping.centers_of_mass(groups, np.where(types == 0, 15.999, 1.008), [1] * len(groups))
    beads = mapping.positions(pos, cell)
    np.savez(
        path,
        nuclear_charges=mapping.types,
        coords=beads,
        forces=mapping.forces(forces),
        cell=cell,
        temperature=np.array(300.0),
    )


SMALL_FILES: dict[str, Callable[[Path], None]] = {
    "runs/cg_ala2/ala2_cg.npz": _write_ala2_beads,
    "runs/cg_water/water_cg_300K.npz": _write_water_beads,
}
"""Stand-ins, a few real frames each, for training files that examples write."""

ONE_STEP = [
    *("--trainer.max_steps", "1", "--trainer.limit_val_batches", "1", "--trainer.num_sanity_val_steps", "0"),
    *("--trainer.logger", "false", "--trainer.callbacks", "null", "--trainer.enable_checkpointing", "false"),
    *("--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"),
    *("--test_after_fit", "false", "--data.batch_size", "2", "--data.eval_batch_size", "2"),
]


def _config_names(pattern: str) -> list[str]:
    return sorted(str(path.relative_to(REPO)) for path in CONFIGS.glob(pattern))


def _full_configs() -> list[str]:
    return [name for name in _config_names("*.yaml") if "model" in yaml.safe_load((REPO / name).read_text())]


MODEL_SECTIONS = _config_names("models/*.yaml")
RUNS = (
    [[name] for name in _full_configs()]
    + [["configs/rmd17_ts2.yaml", "--model", name] for name in MODEL_SECTIONS]
    + [["configs/rmd17_ts2.yaml", "--config", name] for name in _config_names("data/*.yaml")]
    + [["configs/cg_ala2.yaml", "--config", name] for name in _config_names("cg/*.yaml")]
    # one eager step: compiled training has its own tests (tests/test_compile.py)
    + [
        ["configs/rmd17_hiphop.yaml", "--config", name, "--model.compile", "false"]
        for name in _config_names("hiphop/*.yaml")
    ]
)
COMPARISONS = _config_names("compare_*.yaml")
MAPS = _config_names("cg_map/*.yaml")


def test_every_config_is_checked() -> None:
    checked = (
        {part for run in RUNS for part in run if part.startswith("configs/")} | set(COMPARISONS) | set(MAPS)
    )
    assert checked == set(_config_names("**/*.yaml"))
    assert len(RUNS) >= 12 and len(COMPARISONS) >= 2 and len(MAPS) >= 1


@pytest.mark.parametrize("name", MAPS)
def test_mapping_configs_parse_into_beads(name: str) -> None:
    """Every bead spec has atoms and a known force map (tests/test_cg_workflow.py maps real
    frames with them)."""
    from pyg_hipts.cg_workflow.map_frames import parser

    options = parser().parse_args(["--config", str(REPO / name), "--input", "in.npz", "--output", "out.npz"])
    assert options.beads and all("atoms" in bead for bead in options.beads)


def _data_overrides(configs: list[str], tmp_path: Path) -> list[str]:
    """Point a training file that is not there at a small stand-in (``SMALL_FILES``)."""
    data: dict = {}
    for name in configs:
        data.update(yaml.safe_load((REPO / name).read_text()).get("data") or {})
    train_file = str(data.get("train_file", ""))
    if train_file.startswith("embedded:") or (REPO / train_file).exists():
        return []
    if train_file not in SMALL_FILES:
        if not SHARED_DATA.is_dir():
            pytest.skip(f"{SHARED_DATA} is not available")
        pytest.fail(f"{configs}: {train_file} does not exist; give the test a small stand-in for it")
    stand_in = tmp_path / Path(train_file).name
    SMALL_FILES[train_file](stand_in)
    test_split = [] if "test_file" in data else ["--data.n_test", "0"]
    return ["--data.train_file", str(stand_in), "--data.n_train", "4", "--data.n_val", "2", *test_split]


@pytest.mark.parametrize("run", RUNS, ids=[" ".join(run) for run in RUNS])
def test_config_parses_and_trains_one_step(
    run: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(REPO)  # paths in the configs are relative to the repository root
    monkeypatch.setattr(sys, "argv", ["pyg-hipts"])
    configs = [part for part in run if part.startswith("configs/")]
    arguments = ["fit", "--config", *run, *_data_overrides(configs, tmp_path), *ONE_STEP]
    arguments += ["--trainer.default_root_dir", str(tmp_path)]
    with pytest.raises(SystemExit) as stop:
        run_cli([*arguments, "--print_config"])
    assert stop.value.code == 0
    assert "class_path: pyg_hipts." in capsys.readouterr().out

    cli = run_cli(arguments)
    assert cli.trainer.global_step == 1
    loss = cli.trainer.callback_metrics["train/batch_loss"]
    assert math.isfinite(float(loss))
    potential, datamodule = cli.model.model, cli.datamodule
    assert isinstance(potential, Potential)
    assert potential.species == datamodule.species and potential.units == datamodule.units


@pytest.mark.parametrize("name", COMPARISONS)
def test_comparison_configs_parse(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    config = read_comparison(name)
    assert config["minutes"] > 0 and len(config["models"]) >= 2
    for model in config["models"].values():
        assert model == "base" or model in MODEL_SECTIONS
