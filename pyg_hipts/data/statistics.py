"""Dataset statistics: per-species atom counts and the least-squares reference energies E0."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import Tensor
from torch_geometric.data import Data, Dataset
from torch_geometric.loader import DataLoader


def count_species(z: Tensor, batch: Tensor, species: Sequence[int], num_graphs: int | None = None) -> Tensor:
    """Atoms of each species in each structure.

    Args:
        z: ``[N]`` species of every atom.
        batch: ``[N]`` structure index of every atom.
        species: the ``S`` species (distinct), defining the column order.
        num_graphs: ``B``; by default ``batch.max() + 1``.

    Returns:
        ``[B, S]`` long counts. Raises ``ValueError`` if ``z`` holds a species not in ``species``.
    """
    if len(species) == 0 or len(set(species)) != len(species):
        raise ValueError(f"species must be a non-empty list of distinct values, got {list(species)}")
    if num_graphs is None:
        num_graphs = int(batch.max()) + 1 if batch.numel() else 0
    if batch.numel() and int(batch.max()) >= num_graphs:
        raise ValueError(f"batch holds structure index {int(batch.max())} but num_graphs is {num_graphs}")
    n_species = len(species)
    table = torch.full((max(max(species), int(z.max()) if z.numel() else 0) + 1,), -1, dtype=torch.long)
    table[torch.as_tensor(species, dtype=torch.long)] = torch.arange(n_species)
    column = table[z.cpu()]
    if (column < 0).any():
        missing = torch.unique(z.cpu()[column < 0]).tolist()
        raise ValueError(f"species {missing} occur in the data but are not in species={list(species)}")
    flat = batch.cpu() * n_species + column
    return torch.bincount(flat, minlength=num_graphs * n_species).view(num_graphs, n_species)


def fit_reference_energies(data: Dataset | Iterable[Data], species: Sequence[int]) -> Tensor:
    """Per-species reference energies ``E0`` ``[S]`` (float64, in the data's energy unit).

    Solves ``min ||C E0 - E||`` by float64 least squares, with ``C`` ``[B, S]`` the species
    counts and ``E`` ``[B]`` the total energies of all structures. ``data`` is a PyG dataset or
    an iterable of batches (or single structures) with ``z``, ``energy`` and ``batch``. When the
    compositions do not determine every ``E0`` (e.g. one molecule), the minimum-norm solution is
    returned. Raises ``ValueError`` if there are no structures or a species is not in ``species``.

    A dataset that offers ``reference_energy_equations(species)`` (a prepared dataset: its
    stored species counts and energies) is fitted through those :class:`NormalEquations` instead
    of being read frame by frame.
    """
    if hasattr(data, "reference_energy_equations"):
        return data.reference_energy_equations(species).solve()
    batches = DataLoader(data, batch_size=1024) if isinstance(data, Dataset) else data
    counts, energies = [], []
    for item in batches:
        energy = item.energy.detach().reshape(-1).to(torch.float64).cpu()
        batch = getattr(item, "batch", None)
        if batch is None:
            batch = torch.zeros_like(item.z)
        counts.append(count_species(item.z, batch, species, num_graphs=energy.numel()).to(torch.float64))
        energies.append(energy)
    if not energies:
        raise ValueError("no structures to fit reference energies on")
    target = torch.cat(energies).unsqueeze(1)
    return torch.linalg.lstsq(torch.cat(counts), target, driver="gelsd").solution.squeeze(1)


GRAM_RCOND = 1e-12
"""Singular values of ``CᵀC`` below this fraction of the largest are treated as zero (those of
``C`` below ``1e-6``): the directions a dataset's compositions do not determine."""


class NormalEquations:
    """The reference-energy fit accumulated block by block: ``A = Σ CᵀC`` ``[S, S]`` and
    ``b = Σ CᵀE`` ``[S]`` (float64) over species counts ``C`` ``[B, S]`` and energies ``E`` ``[B]``,
    so that no more than one block is ever held.

    :meth:`solve` gives the minimum-norm solution of ``A E0 = b``, which is the minimum-norm
    least-squares solution of ``C E0 ≈ E`` over all blocks (the normal equations have the same
    solutions and null space), as :func:`fit_reference_energies` computes in memory.
    """

    def __init__(self, n_species: int) -> None:
        self.gram = torch.zeros(n_species, n_species, dtype=torch.float64)
        self.moment = torch.zeros(n_species, dtype=torch.float64)
        self.n_structures = 0

    def add(self, counts: Tensor, energies: Tensor) -> None:
        """Accumulate a block: ``counts`` ``[B, S]``, ``energies`` ``[B]``."""
        counts = counts.to(torch.float64)
        self.gram += counts.T @ counts
        self.moment += counts.T @ energies.to(torch.float64)
        self.n_structures += len(energies)

    def solve(self) -> Tensor:
        """``E0`` ``[S]``; ``ValueError`` when nothing was added."""
        if self.n_structures == 0:
            raise ValueError("no structures to fit reference energies on")
        moment = self.moment.unsqueeze(1)
        return torch.linalg.lstsq(self.gram, moment, rcond=GRAM_RCOND, driver="gelsd").solution.squeeze(1)
