"""Potentials added as peers: ``E = Σ_t E_t`` (reference energies + priors + network)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch

from pyg_hipts.data.dataset import AtomsDataset
from pyg_hipts.potentials.base import Potential
from pyg_hipts.potentials.structures import Structures
from pyg_hipts.units import Units

PotentialFactory = Callable[[Sequence[int]], Potential]
"""A potential still waiting for its species (e.g. a YAML ``class_path`` without ``species``)."""


RESIDUAL_BATCH = 256
"""Structures evaluated at once for :func:`energy_residual`."""


def energy_residual(dataset: Any, terms: Sequence[Potential]) -> AtomsDataset:
    """A copy of ``dataset`` whose energies are ``E − Σ_t E_t`` of ``terms`` (other fields kept)."""
    frames = []
    with torch.no_grad():
        for start in range(0, len(dataset), RESIDUAL_BATCH):
            batch = Batch.from_data_list(
                [dataset[i] for i in range(start, min(start + RESIDUAL_BATCH, len(dataset)))]
            )
            predicted = sum(term.predict_data(batch, forces=False).energy.squeeze(-1) for term in terms)
            for frame, energy in zip(batch.to_data_list(), (batch.energy - predicted).tolist(), strict=True):
                frame.energy = torch.tensor([energy], dtype=torch.float64)
                del frame.frame_number  # given again by the new dataset
                frames.append(frame)
    return AtomsDataset(frames, dataset.units, dataset.source, min_distance=0)


def build_parts(
    species: Sequence[int], parts: Sequence[Potential | PotentialFactory], owner: str
) -> list[Potential]:
    """``parts`` as potentials (factories built with ``species``), each of exactly ``species``;
    ``owner`` names the container in the error."""
    built = [part if isinstance(part, Potential) else part(species) for part in parts]
    for part in built:
        if sorted(part.species) != sorted(int(s) for s in species):
            raise ValueError(
                f"{owner} parts know different species: {type(part).__name__} has {part.species}, "
                f"the {owner} {list(species)}"
            )
    return built


class SumPotential(Potential):
    """The sum of potentials on the same atoms: ``e_i = Σ_t e_i^(t)``, forces and stress by
    the base class's autograd through all of them at once.

    Neighbour lists are shared by the terms with the same cutoff; extra outputs are those of
    every term. :meth:`pre_fit` sets up the terms in their order; a term that fits energies
    (``fits_energies``, e.g. reference energies) sees the residual ``E − Σ_{s<t} E_s`` of the terms
    before it, so that per-species energies are fitted once, by the first term that fits them.

    Args:
        species: the species of every term.
        terms: potentials, or factories ``species -> potential`` (a YAML entry without
            ``species``) built here with ``species``.
        units: of every term.
    """

    def __init__(
        self,
        species: Sequence[int],
        terms: Sequence[Potential | PotentialFactory],
        units: Units | None = None,
    ) -> None:
        built = build_parts(species, terms, "sum")
        if not built:
            raise ValueError("a sum of potentials needs at least one term")
        super().__init__(species, max(term.cutoff for term in built), units)
        self.terms = nn.ModuleList(built)
        self.set_units(units)

    @property
    def periodic(self) -> bool:  # type: ignore[override]
        return all(term.periodic for term in self.terms)

    @property
    def fits_energies(self) -> bool:  # type: ignore[override]
        return any(term.fits_energies for term in self.terms)

    @property
    def reports(self) -> frozenset[str]:  # type: ignore[override]
        return frozenset().union(*(term.reports for term in self.terms))

    def atom_energies(self, structures: Structures) -> Tensor:
        total = None
        for term in self.terms:
            energies = term.atom_energies(structures).reshape(-1).double()
            total = energies if total is None else total + energies
        return total

    def pre_fit(self, dataset: Any) -> None:
        for index, term in enumerate(self.terms):
            fitted_before = [t for t in self.terms[:index] if t.fits_energies]
            if term.fits_energies and fitted_before and len(dataset) and "energy" in dataset[0]:
                term.pre_fit(energy_residual(dataset, fitted_before))
            else:
                term.pre_fit(dataset)

    def regularization_parameters(self) -> list[Tensor]:
        return [p for term in self.terms for p in term.regularization_parameters()]

    def init_arguments(self) -> dict[str, Any]:
        return {"terms": [term.spec() for term in self.terms]}

    def term(self, cls: type[Potential]) -> Potential:
        """The first term of class ``cls`` (e.g. the network of a coarse-grained model)."""
        for term in self.terms:
            if isinstance(term, cls):
                return term
        raise LookupError(f"no {cls.__name__} among the terms {[type(t).__name__ for t in self.terms]}")

    def without(self, cls: type[Potential]) -> SumPotential:
        """The sum of the other terms (sharing their modules), e.g. the priors alone."""
        kept = [term for term in self.terms if not isinstance(term, cls)]
        return SumPotential(self.species, kept, self.units)
