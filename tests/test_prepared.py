"""Prepared datasets: streaming ``prepare``, the memory-mapped format, batches from contiguous
arrays, batch plans by atoms and by rank, and training from a prepared folder."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

from pyg_hipts.data import embedded_dataset_path, fit_reference_energies, read_dataset, save_split
from pyg_hipts.data.batching import FrameBatchSampler, assemble_batch
from pyg_hipts.data.prepare import main as prepare_main
from pyg_hipts.data.prepare import prepare
from pyg_hipts.data.readers.streaming import NpyMember
from pyg_hipts.data.splits import dataset_fingerprint, load_split
from pyg_hipts.data.storage import PreparedDataset
from pyg_hipts.train import AtomsDataModule
from tests.test_readers import shared

ETHANOL = embedded_dataset_path("ethanol")


def assert_same_batches(first: Batch, second: Batch) -> None:
    assert set(first.keys()) == set(second.keys())
    for key in sorted(second.keys()):
        assert first[key].dtype == second[key].dtype, key
        assert torch.equal(first[key], second[key]), key


@pytest.mark.parametrize(
    ("parts", "chunk_frames"),
    [
        (("rmd17", "rmd17_aspirin_train_01.npz"), 300),
        (("comp6_s66x8", "s66x8_wb97x6-31gd.h5"), 7),
        (("deepmd_water", "data_0"), 16),
    ],
)
def test_prepared_equals_in_memory(tmp_path: Path, parts: tuple[str, ...], chunk_frames: int) -> None:
    """npz and HDF5 stream in chunks that do not divide the frames (and split HDF5 groups); the
    deepmd folder goes through its reader. Every field of every frame, the fingerprint and the
    species agree with the in-memory reader."""
    path = shared(*parts)
    in_memory = read_dataset(path)
    prepared = prepare(path, tmp_path / "out", chunk_frames=chunk_frames, progress=False)
    assert len(prepared) == len(in_memory) and prepared.species == in_memory.species
    assert prepared.units == in_memory.units
    assert (
        dataset_fingerprint(prepared)["positions_sha256"]
        == dataset_fingerprint(in_memory)["positions_sha256"]
    )
    frames = np.random.default_rng(0).permutation(len(in_memory))
    for start in range(0, len(frames), 64):
        chosen = frames[start : start + 64]
        expected = Batch.from_data_list([in_memory[int(i)] for i in chosen])
        assert_same_batches(assemble_batch(prepared.contiguous(), chosen), expected)
        assert_same_batches(assemble_batch(in_memory.contiguous(), chosen), expected)
    frame = prepared[5]
    for key in sorted(in_memory[5].keys()):
        assert torch.equal(frame[key], in_memory[5][key]), key


def test_streamed_reference_energies_equal_least_squares(tmp_path: Path) -> None:
    """Normal equations accumulated over blocks give the in-memory least-squares E0 to 1e-8,
    for the whole file (stored by prepare) and for a view (from the stored species counts)."""
    path = shared("rmd17", "rmd17_aspirin_train_01.npz")
    in_memory = read_dataset(path, dtype=torch.float64)
    prepared = prepare(path, tmp_path / "out", chunk_frames=128, progress=False)
    species = in_memory.species
    expected = fit_reference_energies(in_memory, species)
    stored = torch.tensor(
        [prepared.meta["statistics"]["reference_energies"][str(s)] for s in species], dtype=torch.float64
    )
    assert torch.allclose(stored, expected, rtol=1e-8, atol=0)
    view = np.arange(0, 1000, 3)
    expected_view = fit_reference_energies(in_memory[torch.as_tensor(view)], species)
    streamed_view = fit_reference_energies(prepared[torch.as_tensor(view)], species)
    assert torch.allclose(streamed_view, expected_view, rtol=1e-8, atol=0)
    assert not torch.allclose(expected_view, expected, rtol=1e-8, atol=0)  # the view's own fit
    forces = np.load(path)["forces"]
    assert prepared.meta["statistics"]["force_rms"] == pytest.approx(np.sqrt(np.mean(forces**2)), rel=1e-5)


def test_several_molecules_reference_energies(tmp_path: Path) -> None:
    """COMP6 S66x8 holds dimers of several compositions: a full-rank fit, equal to lstsq."""
    path = shared("comp6_s66x8", "s66x8_wb97x6-31gd.h5")
    in_memory = read_dataset(path)
    prepared = prepare(path, tmp_path / "out", chunk_frames=50, progress=False)
    expected = fit_reference_energies(in_memory, in_memory.species)
    assert torch.allclose(fit_reference_energies(prepared, in_memory.species), expected, rtol=1e-8, atol=0)


def test_neighbour_statistics(tmp_path: Path) -> None:
    """Ethanol has 9 atoms, all within 5 Å of each other: 8 neighbours per atom."""
    prepared = prepare(ETHANOL, tmp_path / "out", cutoff=5.0, progress=False)
    assert prepared.meta["statistics"]["neighbours"] == {
        "cutoff": 5.0,
        "mean_per_atom": 8.0,
        "max_per_atom": 8,
    }


def test_npy_member_reads_rows_of_compressed_archives(tmp_path: Path) -> None:
    values = np.random.default_rng(1).normal(size=(101, 4, 3))
    np.savez_compressed(tmp_path / "a.npz", coords=values)
    with zipfile.ZipFile(tmp_path / "a.npz") as archive, archive.open("coords.npy") as stream:
        member = NpyMember(stream, "coords")
        assert member.shape == (101, 4, 3)
        assert np.array_equal(member[0:40], values[:40])
        assert np.array_equal(member[40:101], values[40:])
        assert np.array_equal(np.asarray(member), values)


def _ethanol_copy(tmp_path: Path, **changes: np.ndarray) -> Path:
    arrays = dict(np.load(ETHANOL))
    arrays.update(changes)
    path = tmp_path / "changed.npz"
    np.savez(path, **arrays)
    return path


def test_errors_name_the_file_and_the_frame(tmp_path: Path) -> None:
    arrays = np.load(ETHANOL)
    coords = arrays["coords"].copy()
    coords[737, 2, 1] = np.nan
    bad = _ethanol_copy(tmp_path, coords=coords)
    with pytest.raises(
        ValueError,
        match=r"changed\.npz: coords holds NaN or infinite values \(first at index \(737, 2, 1\)\)",
    ):
        prepare(bad, tmp_path / "nan", chunk_frames=100, progress=False)
    assert not (tmp_path / "nan").exists() and not (tmp_path / "nan.partial").exists()

    coords = arrays["coords"].copy()
    coords[512, 3] = coords[512, 4]
    close = _ethanol_copy(tmp_path, coords=coords)
    with pytest.raises(ValueError, match=r"atoms too close \(Å\): frame 512: atoms 3 and 4 are 0"):
        prepare(close, tmp_path / "close", chunk_frames=100, progress=False)

    prepare(ETHANOL, tmp_path / "ok", progress=False)
    with pytest.raises(FileExistsError, match="ok: exists"):
        prepare(ETHANOL, tmp_path / "ok", progress=False)
    with pytest.raises(ValueError, match="takes no reader options"):
        read_dataset(tmp_path / "ok", dtype=torch.float64)
    positions = tmp_path / "ok" / "pos.bin"
    positions.write_bytes(positions.read_bytes()[:-12])
    with pytest.raises(
        ValueError, match=r"pos\.bin: expected 108000 bytes for pos \(9000, 3\) float32, found 107988"
    ):
        PreparedDataset(tmp_path / "ok").contiguous()
    (tmp_path / "ok" / "meta.json").unlink()
    with pytest.raises(FileNotFoundError, match="no meta.json; not a prepared dataset"):
        PreparedDataset(tmp_path / "ok")


def test_command_writes_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    options = json.dumps({"units": {"length": "Å", "energy": "kcal/mol"}, "dtype": "float64"})
    prepared = prepare_main(
        ["--input", str(ETHANOL), "--output", str(tmp_path / "out"), "--reader_options", options, "--quiet"]
    )
    assert prepared.meta["float_dtype"] == "float64" and prepared[0].pos.dtype == torch.float64
    printed = capsys.readouterr().out
    assert "PreparedDataset(1000 frames, species=[1, 6, 8]" in printed and '"force_rms"' in printed


# ---------------------------------------------------------------- batch plans


def test_batches_by_atoms_fit_and_cover() -> None:
    natoms = np.random.default_rng(2).integers(3, 40, size=500)
    sampler = FrameBatchSampler(natoms, max_atoms=100, seed=3)
    batches = list(sampler)
    assert all(natoms[b].sum() <= 100 for b in batches)
    assert sorted(np.concatenate(batches).tolist()) == list(range(500))
    # greedy: no batch would have taken the next frame
    assert all(natoms[a].sum() + natoms[b[0]] > 100 for a, b in zip(batches[:-1], batches[1:], strict=True))
    sampler.set_epoch(1)
    assert not np.array_equal(np.concatenate(list(sampler)), np.concatenate(batches))
    with pytest.raises(ValueError, match="frame 7 has 120 atoms, more than max_atoms=100"):
        list(FrameBatchSampler(np.where(np.arange(10) == 7, 120, 5), max_atoms=100, shuffle=False))


@pytest.mark.parametrize("options", [{"batch_size": 7}, {"max_atoms": 90}])
def test_ranks_take_disjoint_shares_of_equal_length(options: dict[str, int]) -> None:
    natoms = np.random.default_rng(4).integers(3, 40, size=203)
    shares = [list(FrameBatchSampler(natoms, num_replicas=3, rank=r, seed=5, **options)) for r in range(3)]
    assert len({len(share) for share in shares}) == 1
    single = list(FrameBatchSampler(natoms, seed=5, **options))
    dealt = [share[i] for i in range(len(shares[0])) for share in shares]
    # every rank's batches are the single-process batches dealt in turn, the first few repeated
    assert all(np.array_equal(a, b) for a, b in zip(dealt, single + single, strict=False))
    assert len(dealt) - len(single) < 3


# ---------------------------------------------------------------- training on prepared data


def test_datamodule_on_prepared_data(tmp_path: Path) -> None:
    """Prepared and in-memory data give the same split (a saved split is accepted on both),
    the same frames in each set and workers give the same batches as the main process."""
    prepare(ETHANOL, tmp_path / "eth", progress=False)
    options = dict(n_train=40, n_val=20, n_test=20, batch_size=10)
    in_memory = AtomsDataModule(train_file="embedded:ethanol", **options)
    in_memory.setup("fit")
    save_split(tmp_path / "split.npz", in_memory.split, dataset=in_memory._train_source())
    prepared = AtomsDataModule(
        train_file=str(tmp_path / "eth"), split_file=str(tmp_path / "split.npz"), **options
    )
    prepared.setup("fit")
    assert prepared.species == in_memory.species == [1, 6, 8]
    for name in ("train", "val", "test"):
        frames = [int(f) for batch in getattr(prepared, f"{name}_dataloader")() for f in batch.frame_number]
        assert sorted(frames) == in_memory.split[name].tolist()
    assert (
        load_split(tmp_path / "split.npz", dataset=prepared._train_source())["train"].tolist()
        == in_memory.split["train"].tolist()
    )
    with_workers = AtomsDataModule(train_file=str(tmp_path / "eth"), num_workers=2, **options)
    with_workers.setup("fit")
    for first, second in zip(prepared.val_dataloader(), with_workers.val_dataloader(), strict=True):
        assert_same_batches(first, second)
