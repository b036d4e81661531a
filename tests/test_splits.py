"""Random splits, their files, and index files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pyg_hipts.data import (
    embedded_dataset_path,
    load_split,
    random_split,
    read_index_file,
    read_npz,
    save_split,
    validate_split,
)


def _assert_disjoint_within(split: dict[str, torch.Tensor], n: int) -> None:
    merged = torch.cat(list(split.values()))
    assert merged.dtype == torch.long
    assert merged.unique().numel() == merged.numel()
    assert merged.numel() == 0 or (merged.min() >= 0 and merged.max() < n)


def test_counts_disjoint_and_reproducible() -> None:
    split = random_split(1000, n_train=50, n_val=25, n_test=500, seed=3)
    assert [split[k].numel() for k in ("train", "val", "test")] == [50, 25, 500]
    _assert_disjoint_within(split, 1000)
    assert all(torch.equal(v, v.sort().values) for v in split.values())
    again = random_split(1000, n_train=50, n_val=25, n_test=500, seed=3)
    assert all(torch.equal(split[k], again[k]) for k in split)
    other = random_split(1000, n_train=50, n_val=25, n_test=500, seed=4)
    assert not torch.equal(split["train"], other["train"])


def test_default_sizes_and_fractions() -> None:
    rest = random_split(100, n_train=10)
    assert [rest[k].numel() for k in ("train", "val", "test")] == [10, 0, 90]
    whole = random_split(101, fractions=(0.8, 0.1, 0.1))
    assert [whole[k].numel() for k in ("train", "val", "test")] == [80, 10, 11]
    assert torch.equal(torch.cat(list(whole.values())).sort().values, torch.arange(101))
    part = random_split(100, fractions=(0.5, 0.1, 0.2))
    assert [part[k].numel() for k in ("train", "val", "test")] == [50, 10, 20]
    _assert_disjoint_within(part, 100)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_train": 900, "n_val": 200}, "do not fit in 1000 frames"),
        ({"n_train": 10, "n_val": 10, "n_test": 990}, "do not fit"),
        ({"n_train": -1}, "do not fit"),
        ({"fractions": (0.8, 0.3, 0.0)}, "summing to at most 1"),
        ({"fractions": (0.8, 0.2)}, "3 non-negative numbers"),
        ({"n_train": 10, "fractions": (0.5, 0.5, 0.0)}, "not both"),
        ({}, "give n_train"),
    ],
)
def test_bad_sizes_raise(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        random_split(1000, **kwargs)


def test_save_and_load_roundtrip(tmp_path: Path) -> None:
    split = random_split(1000, n_train=100, n_val=50, seed=1)
    path = save_split(tmp_path / "split.npz", split)
    loaded = load_split(path, n=1000)
    assert all(torch.equal(split[k], loaded[k]) for k in ("train", "val", "test"))
    with np.load(path) as arrays:
        assert sorted(arrays.files) == ["test", "train", "val"] and arrays["train"].dtype == np.int64
    with pytest.raises(ValueError, match=r"split\.npz: train indices must lie in \[0, 500\), found"):
        load_split(path, n=500)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"train": [0, 1, 2], "val": [2, 3], "test": [4]}, r"train and val share 1 indices, e\.g\. \[2\]"),
        ({"train": [0, 1, 1]}, "train repeats indices"),
        ({"train": [0, -1]}, r"train indices must be >= 0, found -1\.\.0"),
        ({"train": [0.5, 1.0]}, "train must be 1-D integers"),
        ({"train": [[0, 1]]}, "train must be 1-D integers"),
        ({"train": [0], "extra": [1]}, r"unknown split names \['extra'\]"),
    ],
)
def test_invalid_split_file_raises_naming_file(tmp_path: Path, arrays: dict, message: str) -> None:
    path = tmp_path / "bad_split.npz"
    np.savez(path, **{key: np.asarray(value) for key, value in arrays.items()})
    with pytest.raises(ValueError, match=rf"bad_split\.npz: {message}"):
        load_split(path)


def test_missing_split_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"none\.npz"):
        load_split(tmp_path / "none.npz")


def test_save_refuses_overlapping_split(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="train and test share"):
        save_split(tmp_path / "split.npz", {"train": torch.tensor([1, 2]), "test": torch.tensor([2])})
    assert not (tmp_path / "split.npz").exists()


def test_read_index_file_text_and_npy(tmp_path: Path) -> None:
    text = tmp_path / "train_idx.txt"
    text.write_text("# frames used for training\n3 1, 4\n1000\n  5  # last one\n")
    assert read_index_file(text).tolist() == [3, 1, 4, 1000, 5]
    npy = tmp_path / "train_idx.npy"
    np.save(npy, np.array([7, 8, 9], dtype=np.int32))
    indices = read_index_file(npy)
    assert indices.dtype == torch.long and indices.tolist() == [7, 8, 9]
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    assert read_index_file(empty).numel() == 0


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.txt", "1 2 x3", r"bad\.txt: entries are not integers: \['x3'\]"),
        ("float.txt", "1 2.5", r"float\.txt: entries are not integers"),
        ("negative.txt", "4 -2", r"negative\.txt: negative index -2"),
        ("matrix.npy", np.zeros((2, 2), dtype=np.int64), r"matrix\.npy: expected a 1-D integer array"),
        ("floats.npy", np.array([1.0, 2.0]), r"floats\.npy: expected a 1-D integer array"),
    ],
)
def test_bad_index_files_raise(tmp_path: Path, name: str, content: str | np.ndarray, message: str) -> None:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content)
    else:
        np.save(path, content)
    with pytest.raises(ValueError, match=message):
        read_index_file(path)


def test_split_selects_dataset_frames() -> None:
    dataset = read_npz(embedded_dataset_path())
    split = validate_split(random_split(len(dataset), n_train=200, n_val=100, n_test=700), len(dataset))
    parts = {name: dataset[indices] for name, indices in split.items()}
    assert [len(p) for p in parts.values()] == [200, 100, 700]
    assert all(p.units == dataset.units for p in parts.values())
    torch.testing.assert_close(parts["val"][0].energy, dataset[int(split["val"][0])].energy)
