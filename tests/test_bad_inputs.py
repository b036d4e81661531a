"""Bad input, bad data and failing runs end in a clear error naming the file, frame or atoms.

One test per case, each asserting the exact error class and that the message names what is
wrong; valid inputs that used to be refused (a slab with a zero third cell vector) give the right
result; and a fuzz test feeds random corruptions of real files to the readers.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from pyg_hipts import load_potential
from pyg_hipts.calculators import HipCalculator
from pyg_hipts.cli import run_cli
from pyg_hipts.data import embedded_dataset_path, read_dataset, read_npz, save_split
from pyg_hipts.data.graph import radius_graph
from pyg_hipts.data.periodic import CELL_LIST_MIN_ATOMS, neighbour_pairs, open_cell_list_graph
from pyg_hipts.nn import HipNN
from pyg_hipts.potentials import CheckpointError
from pyg_hipts.train import AtomsDataModule, PotentialModule
from pyg_hipts.train.checkpoint_io import AtomicCheckpointIO, partial_path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
ETHANOL = embedded_dataset_path("ethanol")


def _small(species=(1, 6, 8)) -> HipNN:
    return HipNN(list(species), n_features=8, n_sensitivities=6, n_interaction_layers=1, n_atom_layers=1)


def _ethanol_arrays(n_frames: int = 40) -> dict[str, np.ndarray]:
    """The first ``n_frames`` frames of the embedded ethanol file, as writable arrays."""
    with np.load(ETHANOL) as arrays:
        total = len(arrays["coords"])
        return {
            k: (v[:n_frames] if len(v) == total else v).copy()
            for k, v in ((k, arrays[k]) for k in arrays.files)
        }


def _write(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    np.savez(path, **arrays)
    return path


# --- coincident atoms ---------------------------------------------------------------------------


def test_a_training_frame_with_coincident_atoms_is_refused_naming_frame_and_atoms(tmp_path: Path) -> None:
    arrays = _ethanol_arrays()
    arrays["coords"][7, 4] = arrays["coords"][7, 2]
    path = _write(tmp_path / "bad.npz", arrays)
    with pytest.raises(
        ValueError, match=r"bad\.npz: atoms too close \(Å\): frame 7: atoms 2 and 4 are 0 apart"
    ):
        read_npz(path)


def test_near_coincident_atoms_in_predict_and_ase_are_an_error_naming_the_atoms() -> None:
    model = _small()
    frame = read_npz(ETHANOL, dtype=torch.float64)[0]
    pos = frame.pos.clone()
    pos[5] = pos[3] + torch.tensor([0.05, 0.0, 0.0], dtype=torch.float64)
    with pytest.raises(ValueError, match=r"atoms too close: structure 0: atoms 3 and 5 are 0\.05 apart"):
        model.predict(frame.z, pos)
    atoms = Atoms(numbers=frame.z.numpy(), positions=pos.numpy())
    atoms.calc = HipCalculator(model)
    with pytest.raises(ValueError, match=r"atoms 3 and 5 are 0\.05 apart"):
        atoms.get_potential_energy()


# --- species, cells, batches, splits --------------------------------------------------------------


def test_a_species_only_in_the_test_file_is_an_error_naming_it_and_the_file(tmp_path: Path) -> None:
    arrays = _ethanol_arrays()
    train = _write(tmp_path / "train.npz", arrays)
    arrays["nuclear_charges"] = arrays["nuclear_charges"].copy()
    arrays["nuclear_charges"][0] = 7
    test = _write(tmp_path / "test.npz", arrays)
    data = AtomsDataModule(train_file=str(train), test_file=str(test), n_val=5)
    with pytest.raises(ValueError, match=r"test\.npz: species \[7\] do not occur in the training data"):
        data.setup("fit")
    allowed = AtomsDataModule(train_file=str(train), test_file=str(test), n_val=5, allow_unseen_species=True)
    with pytest.warns(UserWarning, match=r"species \[7\] are not in the training data"):
        assert allowed.species == [1, 6, 7, 8]


def test_a_cell_without_pbc_is_refused() -> None:
    frame = read_npz(ETHANOL)[0]
    with pytest.raises(ValueError, match="cell and pbc must be given together"):
        _small().predict(frame.z, frame.pos, cell=torch.eye(3) * 10)


@pytest.mark.parametrize(
    ("batch", "message"),
    [([0, 0, 2, 2], "it jumps from 0 to 2 at atom 2"), ([1, 1, 1, 1], "the first atom is in structure 1")],
)
def test_a_batch_with_gaps_or_not_from_zero_is_refused(batch: list[int], message: str) -> None:
    z = torch.tensor([6, 1, 6, 1])
    pos = torch.tensor([[0.0, 0, 0], [1.1, 0, 0], [5.0, 0, 0], [6.1, 0, 0]])
    with pytest.raises(ValueError, match=message):
        _small().predict(z, pos, torch.tensor(batch))


def test_a_split_of_another_dataset_of_the_same_size_is_refused(tmp_path: Path) -> None:
    arrays = _ethanol_arrays()
    first = _write(tmp_path / "first.npz", arrays)
    arrays["coords"] = arrays["coords"] + 0.01
    second = _write(tmp_path / "second.npz", arrays)
    data = AtomsDataModule(train_file=str(first), n_train=30, n_val=5, n_test=5)
    split = save_split(tmp_path / "split.npz", data.draw_split(40), dataset=read_npz(first))
    other = AtomsDataModule(train_file=str(second), split_file=str(split))
    with pytest.raises(ValueError, match=r"split\.npz: the split was made for another dataset \(40 frames"):
        other.setup("fit")
    same = AtomsDataModule(train_file=str(first), split_file=str(split))
    same.setup("test")
    assert len(same.datasets["train"]) == 30


# --- unreadable files -----------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["truncated", "empty", "corrupt_hdf5", "hdf5_format_on_npz", "no_frames"])
def test_unreadable_data_files_are_a_value_error_naming_the_file(tmp_path: Path, case: str) -> None:
    raw = ETHANOL.read_bytes()
    path, format = tmp_path / "data.npz", None
    if case == "truncated":
        path.write_bytes(raw[: len(raw) // 3])
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "corrupt_hdf5":
        path = tmp_path / "data.h5"
        path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(200))
    elif case == "hdf5_format_on_npz":
        path.write_bytes(raw)
        format = "hdf5"
    else:
        _write(path, _ethanol_arrays(0))
    with pytest.raises(ValueError, match=rf"{path.name}: "):
        read_dataset(path, format)


def test_an_empty_predict_file_is_an_error_naming_it(tmp_path: Path) -> None:
    path = _write(tmp_path / "predict.npz", _ethanol_arrays(0))
    data = AtomsDataModule(predict_file=str(path))
    with pytest.raises(ValueError, match=r"predict\.npz: no frames"):
        data.setup("predict")


@pytest.mark.parametrize("case", ["corrupt", "foreign", "old_layout"])
def test_bad_checkpoints_are_a_checkpoint_error_naming_the_file(
    tmp_path: Path, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    path = tmp_path / "model.ckpt"
    if case == "corrupt":
        path.write_bytes(b"PK\x03\x04" + bytes(100))
    elif case == "foreign":
        with path.open("wb") as handle:
            np.save(handle, np.zeros(3))
    else:
        torch.save({"hyper_parameters": {}, "state_dict": {}, "pytorch-lightning_version": "2.0"}, path)
    with pytest.raises(CheckpointError, match=r"model\.ckpt: "):
        load_potential(path)
    arguments = ["test", "--config", "configs/quickstart.yaml", "--ckpt_path", str(path)]
    with pytest.raises(CheckpointError, match=r"model\.ckpt: "):
        run_cli(arguments)


# --- dtypes, slabs, large structures ----------------------------------------------------------------


def test_float64_positions_into_float32_weights_and_the_reverse_are_cast() -> None:
    frame = read_npz(ETHANOL, dtype=torch.float64)[0]
    single = _small()
    double = _small().double()
    double.load_state_dict(single.state_dict())
    from_double = single.predict(frame.z, frame.pos)
    from_single = double.predict(frame.z, frame.pos.float())
    assert from_double.forces.dtype == torch.float32 and from_single.forces.dtype == torch.float64
    torch.testing.assert_close(from_double.energy, from_single.energy, rtol=1e-5, atol=1e-5)


def test_a_slab_with_a_zero_third_cell_vector_is_valid() -> None:
    generator = torch.Generator().manual_seed(0)
    grid = torch.stack(torch.meshgrid(*[torch.arange(3.0)] * 2, indexing="ij"), -1).reshape(-1, 2) * 2.2
    pos = torch.cat([grid, torch.zeros(9, 1)], 1).double() + 0.1 * torch.rand(9, 3, generator=generator)
    z = torch.tensor([6, 1, 1, 6, 1, 1, 8, 1, 1])
    model = _small().double()
    pbc = torch.tensor([[True, True, False]])
    zero_c = torch.tensor([[6.6, 0.0, 0.0], [0.0, 6.6, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    tall_c = zero_c.clone()
    tall_c[2, 2] = 50.0
    slab = model.predict(z, pos, cell=zero_c.unsqueeze(0), pbc=pbc)
    reference = model.predict(z, pos, cell=tall_c.unsqueeze(0), pbc=pbc)
    torch.testing.assert_close(slab.energy, reference.energy)
    torch.testing.assert_close(slab.forces, reference.forces)
    open_box = model.predict(z, pos)
    assert not torch.allclose(open_box.energy, slab.energy)  # the images do interact
    with pytest.raises(ValueError, match="periodic directions .* are degenerate"):
        model.predict(z, pos, cell=zero_c.unsqueeze(0), pbc=torch.ones(1, 3, dtype=torch.bool))


def test_large_open_structures_use_cell_lists_with_the_same_pairs() -> None:
    generator = torch.Generator().manual_seed(0)
    n = 2 * CELL_LIST_MIN_ATOMS
    pos = torch.rand(n, 3, generator=generator, dtype=torch.float64) * (n / 0.1) ** (1 / 3)
    batch = torch.zeros(n, dtype=torch.long)
    dense = radius_graph(pos, 4.0, batch, use_torch_cluster=False)
    cells = open_cell_list_graph(pos, 4.0, batch)
    assert torch.equal(dense, cells) and dense.shape[1] > n
    edge_index, shifts, _ = neighbour_pairs(pos, batch, 4.0)
    assert torch.equal(edge_index, cells) and shifts is None


# --- runs that fail ---------------------------------------------------------------------------------


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_kill_while_a_checkpoint_is_written_leaves_the_old_one_intact(tmp_path: Path, monkeypatch) -> None:
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"step": torch.tensor(1)}, path)
    before = _digest(path)

    def dies_midway(obj, handle) -> None:
        handle.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"step": torch.tensor(2)}, path)
    assert _digest(path) == before and not partial_path(path).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]


def test_a_poisoned_frame_stops_training_naming_it_and_keeps_the_checkpoints(tmp_path: Path) -> None:
    arrays = _ethanol_arrays()
    clean = _write(tmp_path / "clean.npz", arrays)
    data = AtomsDataModule(train_file=str(clean), n_train=30, n_val=10, batch_size=10)
    victim = int(data.draw_split(40)["train"][3])
    arrays["forces"][victim] *= 1e25  # its squared error overflows float32
    poisoned = _write(tmp_path / "poisoned.npz", arrays)

    def trainer(max_epochs: int) -> Trainer:
        checkpoints = ModelCheckpoint(
            dirpath=tmp_path / "checkpoints", filename="best", monitor="val/loss", save_last=True
        )
        return Trainer(
            max_epochs=max_epochs,
            logger=False,
            callbacks=[checkpoints],
            enable_progress_bar=False,
            inference_mode=False,
            default_root_dir=tmp_path,
        )

    trainer(1).fit(PotentialModule(_small()), datamodule=data)
    saved = {name: _digest(tmp_path / "checkpoints" / name) for name in ("best.ckpt", "last.ckpt")}
    bad = AtomsDataModule(train_file=str(poisoned), n_train=30, n_val=10, batch_size=40)
    with pytest.raises(
        FloatingPointError,
        match=rf"non-finite training loss .*frames \[.*\b{victim}\b.*\] of the training file",
    ):
        trainer(2).fit(
            PotentialModule(_small()), datamodule=bad, ckpt_path=tmp_path / "checkpoints" / "last.ckpt"
        )
    assert {name: _digest(tmp_path / "checkpoints" / name) for name in saved} == saved
    assert all(
        p.isfinite().all() for p in load_potential(tmp_path / "checkpoints" / "last.ckpt").parameters()
    )


# --- fuzz -------------------------------------------------------------------------------------------


def _corruptions(raw: bytes, seed: int, count: int):
    """Truncations at random bytes and random single-byte flips of ``raw``."""
    generator = np.random.default_rng(seed)
    for _ in range(count):
        cut = int(generator.integers(1, len(raw) - 1))
        yield f"truncated at {cut}", raw[:cut]
    for _ in range(count):
        flipped = bytearray(raw)
        where = int(generator.integers(0, len(raw)))
        flipped[where] ^= int(generator.integers(1, 256))
        yield f"byte {where} flipped", bytes(flipped)


def _files() -> list[tuple[Path, bool]]:
    """Real files to corrupt, and whether a corruption may parse (text formats carry no checksum)."""
    files = [(ETHANOL, False)]
    if (SHARED / "extxyz_ethanol" / "test_MD.xyz").is_file():
        files.append((SHARED / "extxyz_ethanol" / "test_MD.xyz", True))
    if (SHARED / "comp6_s66x8" / "s66x8_wb97x6-31gd.h5").is_file():
        files.append((SHARED / "comp6_s66x8" / "s66x8_wb97x6-31gd.h5", True))
    return files


@pytest.mark.parametrize("source", _files(), ids=lambda f: f[0].suffix)
def test_fuzzed_files_give_clear_errors_or_a_checked_result(
    tmp_path: Path, source: tuple[Path, bool]
) -> None:
    original, may_parse = source
    raw = original.read_bytes()
    if len(raw) > 4_000_000:  # keep the fuzz quick
        pytest.skip(f"{original.name} is large")
    reference = read_dataset(original)
    for description, corrupted in _corruptions(raw, seed=len(raw), count=6):
        path = tmp_path / f"fuzzed{original.suffix}"
        path.write_bytes(corrupted)
        try:
            dataset = read_dataset(path)
        except ValueError as error:
            assert str(error).startswith(str(path)), f"{description}: {error}"
            continue
        if not may_parse:  # zip members carry CRC-32 checksums: only harmless bytes can change
            assert len(dataset) == len(reference), description
            assert torch.equal(dataset._data.pos, reference._data.pos), description
        else:
            assert torch.isfinite(dataset._data.pos).all(), description
