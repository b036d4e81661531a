"""Per-species reference energies as a potential: ``e_i = e⁰(z_i)``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor

from pyg_hipts.data.statistics import fit_reference_energies
from pyg_hipts.potentials.base import Potential
from pyg_hipts.potentials.structures import Structures
from pyg_hipts.units import Units


class ReferenceEnergies(Potential):
    """Frozen per-species energies ``e⁰ [S]`` (float64), fitted by least squares on the
    training energies in :meth:`pre_fit` (:func:`~pyg_hipts.data.fit_reference_energies`), so
    that the terms beside it learn the residual. No forces: the energy does not depend on
    positions.

    Args:
        species: the ``S`` species. energies: initial ``e⁰`` in the order of ``species``
            (zeros by default).
    """

    fits_energies = True

    def __init__(
        self, species: Sequence[int], energies: Sequence[float] | None = None, units: Units | None = None
    ) -> None:
        super().__init__(species, 0.0, units)
        values = torch.zeros(len(self.species), dtype=torch.float64)
        if energies is not None:
            if len(energies) != len(self.species):
                raise ValueError(f"expected {len(self.species)} reference energies, got {len(energies)}")
            values = torch.as_tensor(energies, dtype=torch.float64)
        self.register_buffer("energies", values)

    @property
    def dtype(self) -> None:  # type: ignore[override]
        return None  # float64 constants: they do not decide the inputs' dtype

    def atom_energies(self, structures: Structures) -> Tensor:
        index = self.species_index(structures.z)
        # zero times the positions keeps the energy connected to them (forces are then zeros)
        return self.energies[index] + 0.0 * structures.pos.sum(-1).double()

    def pre_fit(self, dataset: Any) -> None:
        if len(dataset) == 0 or "energy" not in dataset[0]:
            rank_zero_info("The training data has no energies: reference energies are not fitted.")
            return
        self.energies.copy_(fit_reference_energies(dataset, self.species))
        values = zip(self.species, self.energies.tolist(), strict=True)
        listing = ", ".join(f"{z}: {e:.6g}" for z, e in values)
        rank_zero_info(f"Reference energies per species: {listing}")

    def init_arguments(self) -> dict[str, Any]:
        return {"energies": self.energies.tolist()}
