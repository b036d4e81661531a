"""Potentials added as peers: ``E = Σ_t E_t`` (reference energies + priors + network)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor, nn

from pyg_hipts.potentials.base import Potential
from pyg_hipts.potentials.structures import Structures
from pyg_hipts.units import Units

PotentialFactory = Callable[[Sequence[int]], Potential]
"""A potential still waiting for its species (e.g. a YAML ``class_path`` without ``species``)."""


class SumPotential(Potential):
    """The sum of potentials on the same atoms: ``e_i = Σ_t e_i^(t)``, forces and stress by
    the base class's autograd through all of them at once.

    Neighbour lists are shared by the terms with the same cutoff; extra outputs are those of
    every term. :meth:`pre_fit` sets up the terms in their order, so a term can rely on the
    data-dependent set-up of the terms before it.

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
        built = [term if isinstance(term, Potential) else term(species) for term in terms]
        if not built:
            raise ValueError("a sum of potentials needs at least one term")
        for term in built:
            if sorted(term.species) != sorted(int(s) for s in species):
                raise ValueError(
                    f"every term needs the species {list(species)}; {type(term).__name__} has {term.species}"
                )
        super().__init__(species, max(term.cutoff for term in built), units)
        self.terms = nn.ModuleList(built)
        self.set_units(units)

    @property
    def periodic(self) -> bool:  # type: ignore[override]
        return all(term.periodic for term in self.terms)

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
        for term in self.terms:
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
