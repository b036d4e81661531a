"""Trajectory files: recorded masses, names, temperature, times and units; time-block splits;
what checkpoints keep of them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pyg_hipts.cg import PairRepulsion, TopologyPrior
from pyg_hipts.data import SystemInfo, block_split, read_npz
from pyg_hipts.data.splits import load_split
from pyg_hipts.train import AtomsDataModule
from pyg_hipts.units import Units


def _frames(n: int = 40, seed: int = 0) -> dict[str, np.ndarray]:
    generator = np.random.default_rng(seed)
    chain = np.arange(4)[:, None] * np.array([1.5, 0.0, 0.0])
    coords = chain + 0.05 * generator.standard_normal((n, 4, 3))
    return {
        "nuclear_charges": np.array([1, 2, 2, 1]),
        "coords": coords,
        "forces": generator.standard_normal((n, 4, 3)),
    }


def _trajectory(path: Path, n: int = 40, **extra: np.ndarray) -> Path:
    np.savez(
        path,
        **_frames(n),
        masses=np.array([12.0, 14.0, 14.0, 12.0]),
        names=np.array(["C", "N", "N", "C"]),
        temperature=np.array(310.0),
        time_ps=0.5 * (np.arange(n) + 1),
        **extra,
    )
    return path


def test_block_split_is_contiguous_in_time() -> None:
    split = block_split(100, n_train=70, n_val=10, n_test=15)
    assert split["train"].tolist() == list(range(70))
    assert split["val"].tolist() == list(range(70, 80))
    assert split["test"].tolist() == list(range(80, 95))
    by_fraction = block_split(10, fractions=(0.6, 0.2, 0.2))
    assert [len(by_fraction[name]) for name in ("train", "val", "test")] == [6, 2, 2]
    with pytest.raises(ValueError, match="do not fit in 10 frames"):
        block_split(10, n_train=8, n_val=3)


def test_npz_records_the_system_and_its_units(tmp_path: Path) -> None:
    path = _trajectory(tmp_path / "cg.npz", length_unit=np.array("nm"), energy_unit=np.array("kJ/mol"))
    dataset = read_npz(path, energy_key=None)
    assert dataset.units == Units("nm", "kJ/mol")
    assert dataset.system == SystemInfo((12.0, 14.0, 14.0, 12.0), ("C", "N", "N", "C"), 310.0, 0.5, True)
    assert dataset[3:9].system == dataset.system  # views keep it
    assert SystemInfo.from_dict(dataset.system.as_dict()) == dataset.system
    assert read_npz(path, energy_key=None, units=Units("Å", "eV")).units == Units("Å", "eV")
    plain = tmp_path / "plain.npz"
    np.savez(plain, **_frames())
    assert read_npz(plain, energy_key=None).system == SystemInfo()
    assert read_npz(plain, energy_key=None).units == Units("Å", "kcal/mol")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"time_ps": np.array([1.0, 2.0, 2.0, 3.0] * 10)}, "time_ps must increase; frame 2 is at 2.0 ps"),
        ({"masses": np.array([12.0, -1.0, 14.0, 12.0])}, "masses must be 4 positive numbers"),
        ({"names": np.array(["C", "N"])}, r"names must be \[4\], got \[2\]"),
        ({"temperature": np.array(0.0)}, "temperature must be > 0 K"),
        ({"length_unit": np.array("Å")}, "give both length_unit and energy_unit"),
    ],
)
def test_bad_system_records_name_the_file(tmp_path: Path, extra: dict, message: str) -> None:
    arrays = {"masses": np.array([12.0, 14.0, 14.0, 12.0]), "time_ps": np.arange(40.0)} | extra
    np.savez(tmp_path / "bad.npz", **_frames(), **arrays)
    with pytest.raises(ValueError, match=f"bad.npz: {message}"):
        read_npz(tmp_path / "bad.npz", energy_key=None)


def _module(path: Path, **options) -> AtomsDataModule:
    module = AtomsDataModule(
        train_file=str(path),
        reader_options={"energy_key": None},
        val_fraction=0.25,
        test_fraction=0.25,
        **options,
    )
    module.setup("validate")
    return module


def test_time_series_split_by_blocks_by_default(tmp_path: Path) -> None:
    trajectory = _module(_trajectory(tmp_path / "cg.npz"))
    assert trajectory.split_method == "blocks"
    assert trajectory.split["train"].tolist() == list(range(20))
    assert trajectory.split["test"].tolist() == list(range(30, 40))
    shuffled = _module(tmp_path / "cg.npz", split="random")
    assert shuffled.split_method == "random" and shuffled.split["train"].tolist() != list(range(20))
    np.savez(tmp_path / "frames.npz", **_frames())
    assert _module(tmp_path / "frames.npz").split_method == "random"
    with pytest.raises(ValueError, match="split must be one of"):
        AtomsDataModule(train_file="x.npz", split="time")
    counted = _module(tmp_path / "cg.npz", n_test=4)  # a count wins over the fraction
    assert counted.split["test"].tolist() == list(range(36, 40))


def test_checkpoint_keeps_the_system(tmp_path: Path) -> None:
    from pyg_hipts.cli import run_cli
    from pyg_hipts.train.checkpoints import checkpoint_system, newest_checkpoint

    data = _trajectory(tmp_path / "cg.npz")
    run_cli(
        [
            *("fit", "--model.model.class_path", "pyg_hipts.nn.HipNN"),
            *("--model.model.init_args.n_features", "4", "--model.model.init_args.n_sensitivities", "2"),
            *("--model.model.init_args.n_interaction_layers", "1"),
            *("--model.losses", "[{class_path: pyg_hipts.train.losses.ForceLoss}]"),
            *("--data.train_file", str(data), "--data.reader_options", "{energy_key: null}"),
            *("--data.test_fraction", "0.25", "--data.batch_size", "10"),
            *("--trainer.max_epochs", "1", "--trainer.default_root_dir", str(tmp_path)),
            *("--trainer.enable_progress_bar", "false", "--test_after_fit", "false"),
        ]
    )
    checkpoint = newest_checkpoint(tmp_path, "*.ckpt")
    assert checkpoint_system(checkpoint) == read_npz(data, energy_key=None).system
    split = load_split(next(tmp_path.rglob("split.npz")))
    assert split["test"].tolist() == list(range(30, 40))
    assert torch.equal(split["train"], torch.arange(len(split["train"])))


def test_prior_temperature_comes_from_the_data_or_must_agree(tmp_path: Path) -> None:
    """A prior without a temperature takes the one its training file records; one whose
    temperature differs from the file's is an error, not a silently wrong kT."""
    dataset = read_npz(_trajectory(tmp_path / "cg.npz"), energy_key=None)  # records 310 K
    taken = TopologyPrior([1, 2], bonds=[[0, 1], [1, 2]])
    taken.pre_fit(dataset)
    given = TopologyPrior([1, 2], bonds=[[0, 1], [1, 2]], temperature=310.0)
    given.pre_fit(dataset)
    assert taken.temperature == 310.0 and torch.equal(taken.terms[0].k, given.terms[0].k)
    with pytest.raises(
        ValueError, match="TopologyPrior: the temperature is 300 K, but the training data record 310 K"
    ):
        TopologyPrior([1, 2], bonds=[[0, 1]], temperature=300.0).pre_fit(dataset)
    np.savez(tmp_path / "plain.npz", **_frames())
    with pytest.raises(
        ValueError, match="PairRepulsion: give a temperature, or train on a file that records one"
    ):
        PairRepulsion([1, 2], cutoff=3.0).pre_fit(read_npz(tmp_path / "plain.npz", energy_key=None))
