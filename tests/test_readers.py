"""Readers and AtomsDataset on the shared reference data, and on corrupt copies written to tmp_path."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import ase.io
import h5py
import numpy as np
import pytest
import torch
from ase import Atoms
from ase.db import connect
from ase.units import kcal, mol
from torch_geometric.loader import DataLoader

from pyg_hipts.data import (
    AtomsDataset,
    Units,
    embedded_dataset_path,
    make_frame,
    read_ani_hdf5,
    read_ase,
    read_dataset,
    read_deepmd,
    read_npz,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared(*parts: str) -> Path:
    """A path under the shared data folder; skips the test when that folder is absent."""
    if not DATA.is_dir():
        pytest.skip(f"shared data folder {DATA} not found")
    return DATA.joinpath(*parts)


# ---------------------------------------------------------------- npz (rMD17)


def test_rmd17_aspirin_npz() -> None:
    path = shared("rmd17", "rmd17_aspirin_train_01.npz")
    dataset = read_npz(path)
    raw = np.load(path)
    assert len(dataset) == 1000
    assert dataset.species == [1, 6, 8]
    assert dataset.units == Units("Å", "kcal/mol") and dataset.units.force == "kcal/mol/Å"
    assert dataset.source == str(path)
    frame = dataset[7]
    assert frame.z.dtype == torch.long and frame.z.tolist() == raw["nuclear_charges"].tolist()
    assert frame.pos.shape == (21, 3) and frame.pos.dtype == torch.float32
    assert frame.energy.shape == (1,) and frame.natoms.tolist() == [21]
    assert frame.forces.shape == (21, 3)
    assert "cell" not in frame and "pbc" not in frame
    np.testing.assert_allclose(frame.energy.item(), raw["energies"][7], rtol=1e-7)


def test_npz_float64_is_exact() -> None:
    path = shared("rmd17", "rmd17_uracil_test_03.npz")
    dataset = read_npz(path, dtype=torch.float64)
    raw = np.load(path)
    assert dataset[0].pos.dtype == torch.float64
    assert np.array_equal(dataset.energy.numpy(), raw["energies"])
    assert np.array_equal(dataset.forces.numpy(), raw["forces"].reshape(-1, 3))
    assert np.array_equal(dataset[999].pos.numpy(), raw["coords"][999])


def test_npz_per_frame_species_and_custom_keys(tmp_path: Path) -> None:
    raw = np.load(shared("rmd17", "rmd17_ethanol_test_02.npz"))
    path = tmp_path / "pyg_md17_style.npz"
    z = np.tile(raw["nuclear_charges"], (5, 1))
    np.savez(path, z=z, R=raw["coords"][:5], E=raw["energies"][:5, None], F=raw["forces"][:5])
    dataset = read_npz(path, z_key="z", pos_key="R", energy_key="E", forces_key="F", dtype=torch.float64)
    assert len(dataset) == 5 and dataset.species == [1, 6, 8]
    assert np.array_equal(dataset.energy.numpy(), raw["energies"][:5])
    assert "forces" not in read_npz(path, z_key="z", pos_key="R", energy_key="E", forces_key=None)[0]


def test_npz_force_only_periodic_frames(tmp_path: Path) -> None:
    """Coarse-grained layout: no energies, a cell per frame."""
    rng = np.random.default_rng(0)
    cells = np.stack([np.diag([10.0, 11.0, 12.0]) + 0.1 * i for i in range(3)])
    path = tmp_path / "cg.npz"
    np.savez(
        path,
        nuclear_charges=np.ones(4),
        coords=rng.random((3, 4, 3)),
        forces=rng.random((3, 4, 3)),
        cell=cells,
    )
    dataset = read_npz(path, energy_key=None, cell_key="cell", dtype=torch.float64)
    assert "energy" not in dataset[0] and dataset[2].pbc.tolist() == [[True, True, True]]
    np.testing.assert_array_equal(dataset[1].cell[0].numpy(), cells[1])
    with pytest.raises(ValueError, match="cell"):
        np.savez(path, nuclear_charges=np.ones(4), coords=rng.random((3, 4, 3)), cell=cells[:2])
        read_npz(path, energy_key=None, forces_key=None, cell_key="cell")


# ---------------------------------------------------------------- extended XYZ


def test_extxyz_energy_and_forces_match_file_text() -> None:
    path = shared("extxyz_ethanol", "test_MD.xyz")
    lines = path.read_text().splitlines()
    energy0 = float(re.search(r"\benergy=(\S+)", lines[1]).group(1))
    forces0 = [float(v) for v in lines[2].split()[4:7]]
    dataset = read_ase(path, dtype=torch.float64)
    assert len(dataset) == 1000 and dataset.units == Units("Å", "eV")
    assert dataset[0].energy.item() == energy0
    assert dataset[0].forces[0].tolist() == forces0
    assert dataset[0].z.tolist() == [6, 6, 8, 1, 1, 1, 1, 1, 1]
    assert "cell" not in dataset[0]  # Lattice is given but pbc="F F F"


def test_extxyz_is_rmd17_ethanol_split04_in_ev() -> None:
    xyz = read_ase(shared("extxyz_ethanol", "train.xyz"), dtype=torch.float64)
    npz = read_npz(shared("rmd17", "rmd17_ethanol_train_04.npz"), dtype=torch.float64)
    kcal_per_mol = kcal / mol
    torch.testing.assert_close(xyz.energy, npz.energy * kcal_per_mol, rtol=1e-12, atol=0)
    torch.testing.assert_close(xyz.forces, npz.forces * kcal_per_mol, rtol=0, atol=1e-7)
    torch.testing.assert_close(xyz.pos, npz.pos, rtol=0, atol=1e-7)


def test_extxyz_index_and_ref_keys(tmp_path: Path) -> None:
    images = ase.io.read(shared("extxyz_ethanol", "train.xyz"), index="0:3")
    botnet = []
    for atoms in images:
        copy = Atoms(atoms.numbers, atoms.positions)
        copy.info["REF_energy"] = atoms.get_potential_energy()
        copy.new_array("REF_forces", atoms.get_forces())
        botnet.append(copy)
    path = tmp_path / "botnet.xyz"
    ase.io.write(path, botnet, format="extxyz")
    dataset = read_ase(path, energy_key="REF_energy", forces_key="REF_forces", dtype=torch.float64)
    assert [f.energy.item() for f in dataset] == [a.get_potential_energy() for a in images]
    assert torch.equal(dataset[2].forces, torch.from_numpy(images[2].get_forces()))
    assert len(read_ase(shared("extxyz_ethanol", "train.xyz"), index="10:15")) == 5
    with pytest.raises(ValueError, match=r"botnet\.xyz structure 0: no 'energy' from a calculator"):
        read_ase(path)


def test_extxyz_periodic_keeps_cell(tmp_path: Path) -> None:
    water = read_deepmd(shared("deepmd_water", "data_0"), dtype=torch.float64)[0]
    atoms = Atoms(water.z.numpy(), water.pos.numpy(), cell=water.cell[0].numpy(), pbc=True)
    atoms.info["REF_energy"] = water.energy.item()
    path = tmp_path / "water.extxyz"
    ase.io.write(path, atoms, format="extxyz")
    frame = read_dataset(path, energy_key="REF_energy")[0]
    assert frame.cell.shape == (1, 3, 3) and frame.pbc.tolist() == [[True, True, True]]
    torch.testing.assert_close(frame.cell.double(), water.cell, rtol=0, atol=1e-6)


# ---------------------------------------------------------------- ASE databases


@pytest.mark.parametrize(
    ("name", "energy_key", "forces_key", "rows", "species"),
    [
        ("test_ethanol", "energy", "forces", 20, [1, 6, 8]),  # row data
        ("test_iso", "total_energy", "atomic_forces", 40, [1, 6, 8]),  # key_value_pairs + data
        ("test_qm9", "energy_U0", None, 19, [1, 6, 7, 8]),  # row data, no forces
        ("test_ani1", "energy", None, 20, [1, 6]),
    ],
)
def test_ase_db_samples(
    name: str, energy_key: str, forces_key: str | None, rows: int, species: list[int]
) -> None:
    path = shared("ase_db_samples", f"{name}.db")
    dataset = read_ase(path, energy_key=energy_key, forces_key=forces_key, dtype=torch.float64)
    assert len(dataset) == rows and dataset.species == species
    with connect(path) as db:
        row = db.get(id=rows)
    last = dataset[rows - 1]
    expected = row.key_value_pairs.get(energy_key, None)
    expected = float(np.asarray(row.data[energy_key]).item()) if expected is None else expected
    assert last.energy.item() == expected
    assert last.z.tolist() == row.numbers.tolist()
    assert ("forces" in last) == (forces_key is not None)
    if forces_key is not None:
        assert np.array_equal(last.forces.numpy(), np.asarray(row.data[forces_key]))


def test_ase_db_missing_energy_names_file_and_keys() -> None:
    path = shared("ase_db_samples", "test_qm9.db")
    with pytest.raises(ValueError, match=r"test_qm9\.db structure 0: no 'energy' from a calculator.*U0"):
        read_ase(path)
    with pytest.raises(ValueError, match=r"test_qm9\.db structure 0: no 'forces'"):
        read_ase(path, energy_key="energy_U0", forces_key="forces")
    with pytest.raises(ValueError, match=r"ethanol_snip\.xyz structure 0: no 'energy'"):
        read_ase(shared("ase_db_samples", "ethanol_snip.xyz"))


# ---------------------------------------------------------------- ANI-style HDF5


def test_comp6_s66x8_hdf5() -> None:
    path = shared("comp6_s66x8", "s66x8_wb97x6-31gd.h5")
    dataset = read_ani_hdf5(path, dtype=torch.float64)
    assert len(dataset) == 528
    assert dataset.species == [1, 6, 7, 8]
    assert dataset.units == Units("Å", "Hartree")
    with h5py.File(path, "r") as handle:
        group = handle["s66x8/mol00"]
        symbols = [s.decode() for s in group["species"][()]]
        energies, forces = group["energies"][()], group["forces"][()]
    first = dataset[0]
    assert first.z.tolist() == [{"H": 1, "C": 6, "N": 7, "O": 8}[s] for s in symbols]
    assert np.array_equal(dataset.energy[:8].numpy(), energies)
    assert np.array_equal(first.forces.numpy(), forces[0].astype(np.float64))


# ---------------------------------------------------------------- deepmd


def test_deepmd_water_union() -> None:
    path = shared("deepmd_water")
    dataset = read_deepmd(path)
    assert len(dataset) == 400 and dataset.units == Units("Å", "eV")
    assert dataset.species == [1, 8]
    assert set(dataset.natoms.tolist()) == {192}
    frame = dataset[123]
    assert torch.bincount(frame.z).tolist()[1::7] == [128, 64]
    torch.testing.assert_close(torch.diagonal(frame.cell[0]), torch.full((3,), 12.444661), rtol=0, atol=1e-5)
    assert frame.pbc.tolist() == [[True, True, True]]
    assert frame.forces.shape == (192, 3)


def test_deepmd_sets_are_concatenated_in_order() -> None:
    system = shared("deepmd_water", "data_1")
    dataset = read_deepmd(system, dtype=torch.float64)
    assert len(dataset) == 160
    coord = np.load(system / "set.001" / "coord.npy")
    energy = np.load(system / "set.001" / "energy.npy")
    assert np.array_equal(dataset[80].pos.numpy(), coord[0].reshape(192, 3).astype(np.float64))
    assert dataset[80].energy.item() == float(energy[0])


# ---------------------------------------------------------------- dispatch


def test_read_dataset_dispatch() -> None:
    assert len(read_dataset(shared("rmd17", "rmd17_ethanol_test_05.npz"))) == 1000
    assert len(read_dataset(shared("extxyz_ethanol", "isolated_atoms.xyz"))) > 0
    assert len(read_dataset(shared("ase_db_samples", "test_ani1.db"), energy_key="energy")) == 20
    assert len(read_dataset(shared("comp6_s66x8", "s66x8_wb97x6-31gd.h5"))) == 528
    assert len(read_dataset(shared("deepmd_water", "data_2"))) == 80
    units = Units("Å", "kcal/mol")
    ethanol_db = read_dataset(
        shared("ase_db_samples", "test_ethanol.db"), "db", energy_key="energy", units=units
    )
    assert ethanol_db.units == units


def test_read_dataset_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="absent.npz"):
        read_dataset(tmp_path / "absent.npz")
    table = tmp_path / "table.csv"
    table.write_text("1,2\n")
    with pytest.raises(ValueError, match=r"table\.csv: unknown suffix '\.csv'.*npz"):
        read_dataset(table)
    with pytest.raises(ValueError, match=r"unknown format 'csv'; supported: .*deepmd.*hdf5.*npz"):
        read_dataset(table, format="csv")
    with pytest.raises(ValueError, match="no deepmd system"):
        read_dataset(tmp_path)


# ---------------------------------------------------------------- corrupt files


@pytest.fixture
def ethanol_arrays() -> dict[str, np.ndarray]:
    raw = np.load(shared("rmd17", "rmd17_ethanol_train_01.npz"))
    return {key: raw[key] if key == "nuclear_charges" else raw[key][:10] for key in raw.files}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: a.pop("energies"), r"missing key 'energies'"),
        (lambda a: a.update(energies=a["energies"][:9]), r"energies has shape \(9,\), expected \(10,\)"),
        (lambda a: a.update(forces=a["forces"][:, :8]), r"forces has shape \(10, 8, 3\), expected \(10, 9,"),
        (lambda a: a.update(nuclear_charges=a["nuclear_charges"][:8]), r"nuclear_charges has shape \(8,\)"),
        (lambda a: a["coords"].__setitem__((3, 2, 1), np.nan), r"coords holds NaN .* \(3, 2, 1\)"),
        (lambda a: a["energies"].__setitem__(4, np.nan), r"energies holds NaN"),
        (lambda a: a["forces"].__setitem__((0, 0, 0), np.inf), r"forces holds NaN or infinite"),
    ],
)
def test_corrupt_npz_raises_naming_file(tmp_path: Path, ethanol_arrays, change, message) -> None:
    arrays = {key: value.copy() for key, value in ethanol_arrays.items()}
    change(arrays)
    path = tmp_path / "corrupt.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=rf"corrupt\.npz: {message}"):
        read_npz(path)


def test_missing_npz_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nothing\.npz: no such file"):
        read_npz(tmp_path / "nothing.npz")


def test_corrupt_hdf5_raises_naming_file_and_group(tmp_path: Path) -> None:
    source = shared("comp6_s66x8", "s66x8_wb97x6-31gd.h5")
    path = tmp_path / "corrupt.h5"
    shutil.copy(source, path)
    with h5py.File(path, "r+") as handle:
        handle["s66x8/mol05/energies"][2] = np.nan
    with pytest.raises(ValueError, match=r"corrupt\.h5:/s66x8/mol05: energies holds NaN"):
        read_ani_hdf5(path)
    with h5py.File(path, "r+") as handle:
        del handle["s66x8/mol05/energies"]
    with pytest.raises(ValueError, match=r"corrupt\.h5:/s66x8/mol05: missing key 'energies'"):
        read_ani_hdf5(path)
    assert len(read_ani_hdf5(source, forces_key=None)) == 528


def test_corrupt_deepmd_raises_naming_file(tmp_path: Path) -> None:
    system = tmp_path / "system"
    shutil.copytree(shared("deepmd_water", "data_1"), system)
    coord = np.load(system / "set.001" / "coord.npy")
    np.save(system / "set.001" / "coord.npy", coord[:, :-3])
    with pytest.raises(
        ValueError, match=r"system/set\.001: coord\.npy has shape \(80, 573\), expected \(80, 5"
    ):
        read_deepmd(system)
    coord[5, 0] = np.nan
    np.save(system / "set.001" / "coord.npy", coord)
    with pytest.raises(ValueError, match=r"system/set\.001: coord\.npy holds NaN .* \(5, 0, 0\)"):
        read_deepmd(system)
    (system / "set.000" / "energy.npy").unlink()
    with pytest.raises(FileNotFoundError, match=r"set\.000/energy\.npy"):
        read_deepmd(system)


# ---------------------------------------------------------------- AtomsDataset and the embedded data


def test_views_keep_units_and_source() -> None:
    dataset = read_ani_hdf5(shared("comp6_s66x8", "s66x8_wb97x6-31gd.h5"))
    mask = torch.zeros(len(dataset), dtype=torch.bool)
    mask[:8] = True
    views = [dataset[10:20], dataset[torch.tensor([0, 1])], dataset[mask], dataset.index_select([3, 4])]
    views += [dataset.shuffle(), dataset.copy(torch.arange(5))]
    for view in views:
        assert view.units == dataset.units and view.source == dataset.source
    assert dataset[mask].species == [1, 8]  # mol00 is a water dimer
    for view in views:
        z = torch.cat([frame.z for frame in view])
        assert view.species == torch.unique(z).tolist()


def test_batches_follow_conventions() -> None:
    dataset = read_deepmd(shared("deepmd_water", "data_3"))
    batch = next(iter(DataLoader(dataset, batch_size=4)))
    assert batch.energy.shape == (4,) and batch.natoms.tolist() == [192] * 4
    assert batch.cell.shape == (4, 3, 3) and batch.pbc.shape == (4, 3) and batch.pbc.dtype == torch.bool


def test_dataset_rejects_empty_and_mixed_frames() -> None:
    z, pos = np.array([1, 1]), np.zeros((2, 3))
    with pytest.raises(ValueError, match="src: no frames"):
        AtomsDataset([], Units("Å", "eV"), "src")
    mixed = [make_frame(z, pos, 0.0), make_frame(z, pos, 0.0, forces=np.zeros((2, 3)))]
    with pytest.raises(ValueError, match="src: frame 1 has fields"):
        AtomsDataset(mixed, Units("Å", "eV"), "src")


def test_embedded_ethanol() -> None:
    path = embedded_dataset_path()
    assert path.is_file() and path.stat().st_size < 1_000_000
    assert (path.parent / "README.md").is_file() and (path.parent / "LICENSE").is_file()
    dataset = read_npz(path, dtype=torch.float64)
    assert len(dataset) == 1000 and dataset.species == [1, 6, 8]
    with pytest.raises(ValueError, match="unknown embedded dataset 'water'"):
        embedded_dataset_path("water")
    if DATA.is_dir():
        train = np.load(DATA / "rmd17" / "rmd17_ethanol_train_01.npz")
        test = np.load(DATA / "rmd17" / "rmd17_ethanol_test_01.npz")
        expected = np.concatenate([train["energies"][:500], test["energies"][:500]])
        assert np.array_equal(dataset.energy.numpy(), expected)
