"""AtomsDataModule: splits (sizes, a separate test file, reuse of a saved split) and reader options."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pyg_hipts.data import Units, embedded_dataset_path, save_split
from pyg_hipts.train import AtomsDataModule
from pyg_hipts.train.datamodule import resolve_data_path

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
ASPIRIN = str(SHARED_DATA / "rmd17" / "rmd17_aspirin_{}_01.npz")


def ethanol_datamodule(**options) -> AtomsDataModule:
    """The embedded ethanol frames: 40 train, 20 validation, 20 test by default."""
    defaults = dict(train_file="embedded:ethanol", n_train=40, n_val=20, n_test=20, batch_size=10)
    return AtomsDataModule(**{**defaults, **options})


def test_split_with_a_separate_test_file() -> None:
    train, test = ASPIRIN.format("train"), ASPIRIN.format("test")
    if not Path(train).exists():
        pytest.skip("rMD17 aspirin files are not available")
    datamodule = AtomsDataModule(train_file=train, test_file=test, n_train=950, n_val=50)
    datamodule.setup("fit")
    datamodule.setup("test")
    sizes = {name: len(dataset) for name, dataset in datamodule.datasets.items()}
    assert sizes == {"train": 950, "val": 50, "test": 1000}
    assert datamodule.species == [1, 6, 8] and datamodule.units.force == "kcal/mol/Å"
    assert datamodule.has_test_data
    with pytest.raises(ValueError, match="n_test"):
        AtomsDataModule(train_file=train, test_file=test, n_test=10)


def test_split_sizes_and_reuse(tmp_path: Path) -> None:
    drawn = ethanol_datamodule(n_train=None, n_test=None, n_val=None, val_fraction=0.1)
    drawn.setup("fit")
    assert [len(drawn.split[name]) for name in ("train", "val", "test")] == [900, 100, 0]
    assert not drawn.has_test_data
    rest = ethanol_datamodule(n_train=30, n_val=10, n_test=None)
    rest.setup("fit")
    assert len(rest.split["test"]) == 960

    save_split(tmp_path / "split.npz", rest.split)
    reused = ethanol_datamodule(split_file=str(tmp_path / "split.npz"), seed=123)
    reused.setup("fit")
    for name in ("train", "val", "test"):
        assert torch.equal(reused.split[name], rest.split[name])
    assert torch.equal(reused.train_dataset.energy, rest.train_dataset.energy)


def test_reader_options_and_embedded_paths(tmp_path: Path) -> None:
    assert resolve_data_path("embedded:ethanol") == embedded_dataset_path("ethanol")
    assert resolve_data_path("data/x.npz") == Path("data/x.npz")
    frames = np.load(embedded_dataset_path("ethanol"))
    np.savez(
        tmp_path / "ev.npz", Z=frames["nuclear_charges"], R=frames["coords"][:20], E=frames["energies"][:20]
    )
    options = dict(
        z_key="Z", pos_key="R", energy_key="E", forces_key=None, units={"length": "Å", "energy": "eV"}
    )
    datamodule = AtomsDataModule(
        train_file=str(tmp_path / "ev.npz"), reader_options=options, n_train=15, n_val=5
    )
    datamodule.setup("fit")
    assert datamodule.units == Units("Å", "eV")
    assert "forces" not in datamodule.train_dataset[0]
