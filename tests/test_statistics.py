"""Species counts and least-squares reference energies, on exact synthetic data and on rMD17."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch
from torch_geometric.loader import DataLoader

from pyg_hipts.data import (
    AtomsDataset,
    Units,
    count_species,
    embedded_dataset_path,
    fit_reference_energies,
    make_frame,
    read_npz,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SPECIES = [1, 6, 7, 8]
# Per-species energies (Hartree) in the range of isolated-atom DFT energies.
TRUE_E0 = torch.tensor([-0.500273, -37.846772, -54.583861, -75.064579], dtype=torch.float64)


def _synthetic(n_frames: int = 200, seed: int = 0) -> AtomsDataset:
    """Molecules of random composition whose energy is exactly the sum of per-species energies."""
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n_frames):
        z = rng.choice(SPECIES, size=int(rng.integers(2, 20)))
        counts = torch.tensor([(z == s).sum() for s in SPECIES], dtype=torch.float64)
        energy = float(counts @ TRUE_E0)
        frames.append(make_frame(z, rng.normal(size=(len(z), 3)), energy, dtype=torch.float64))
    return AtomsDataset(frames, Units("Å", "Hartree"), "synthetic", min_distance=0)  # random geometry


def test_count_species() -> None:
    z = torch.tensor([1, 1, 8, 6, 1, 8, 8])
    batch = torch.tensor([0, 0, 0, 1, 1, 2, 2])
    expected = [[2, 0, 0, 1], [1, 1, 0, 0], [0, 0, 0, 2]]
    assert count_species(z, batch, SPECIES).tolist() == expected
    assert count_species(z, batch, SPECIES, num_graphs=4).tolist() == [*expected, [0, 0, 0, 0]]
    with pytest.raises(ValueError, match=r"species \[8\] occur in the data but are not in species=\[1, 6\]"):
        count_species(z, batch, [1, 6])
    with pytest.raises(ValueError, match="distinct"):
        count_species(z, batch, [1, 1, 6, 8])


def test_fit_recovers_exact_reference_energies() -> None:
    dataset = _synthetic()
    e0 = fit_reference_energies(dataset, SPECIES)
    assert e0.dtype == torch.float64 and e0.shape == (4,)
    torch.testing.assert_close(e0, TRUE_E0, rtol=0, atol=1e-9)
    from_batches = fit_reference_energies(DataLoader(dataset, batch_size=33, shuffle=True), SPECIES)
    torch.testing.assert_close(from_batches, TRUE_E0, rtol=0, atol=1e-9)
    from_frames = fit_reference_energies([dataset[i] for i in range(len(dataset))], SPECIES)
    torch.testing.assert_close(from_frames, TRUE_E0, rtol=0, atol=1e-9)


def test_fit_species_order_and_unused_species() -> None:
    e0 = fit_reference_energies(_synthetic(seed=1), [8, 1, 7, 6, 9])
    torch.testing.assert_close(e0[:4], TRUE_E0[[3, 0, 2, 1]], rtol=0, atol=1e-9)
    assert abs(e0[4].item()) < 1e-9  # absent species: minimum-norm solution gives 0


def test_fit_rejects_unknown_species_and_empty_input() -> None:
    with pytest.raises(ValueError, match=r"species \[7, 8\] occur in the data"):
        fit_reference_energies(_synthetic(), [1, 6])
    with pytest.raises(ValueError, match="no structures"):
        fit_reference_energies([], SPECIES)


def test_single_molecule_fit_reproduces_mean_energy() -> None:
    """With one composition the E0 are not determined; the fit still reproduces the mean energy."""
    dataset = read_npz(embedded_dataset_path(), dtype=torch.float64)
    e0 = fit_reference_energies(dataset, [1, 6, 8])
    counts = torch.tensor([6.0, 2.0, 1.0], dtype=torch.float64)
    torch.testing.assert_close(counts @ e0, dataset.energy.mean(), rtol=1e-12, atol=0)


def test_rmd17_fit_residual_much_smaller_than_energy_spread() -> None:
    if not DATA.is_dir():
        pytest.skip(f"shared data folder {DATA} not found")
    molecules = ["aspirin", "ethanol", "malonaldehyde", "naphthalene", "salicylic", "uracil"]
    batches = []
    for name in molecules:
        dataset = read_npz(DATA / "rmd17" / f"rmd17_{name}_train_01.npz", dtype=torch.float64)
        batches.append(Batch.from_data_list(dataset[:100]))
    e0 = fit_reference_energies(batches, SPECIES)
    energy = torch.cat([b.energy for b in batches])
    counts = torch.cat([count_species(b.z, b.batch, SPECIES) for b in batches]).double()
    residual = energy - counts @ e0
    assert energy.std() > 5e4  # kcal/mol: the totals of six molecules differ by ~1e5
    assert residual.std() < 1e-3 * energy.std()
    assert residual.abs().max() < 100.0
    # Sign and size of a per-atom energy: hydrogen near its free-atom value (-0.5 Ha = -314 kcal/mol)
    assert -400.0 < e0[0].item() < -300.0
