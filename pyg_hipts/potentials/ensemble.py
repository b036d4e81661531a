"""An ensemble of potentials: the members' mean as the potential, their spread as its uncertainty.

For ``M`` members with per-atom energies ``e_i^(m)``, energies ``E_m [B]`` and forces
``F_m [N, 3]``, the ensemble is the potential of the mean per-atom energy::

    e_i = (1/M) Σ_m e_i^(m),   E = (1/M) Σ_m E_m,   F = −∂E/∂pos = (1/M) Σ_m F_m

(stress and virial are means in the same way). :meth:`Ensemble.predict` also reports the
population standard deviations over the members, e.g. ``σ_E = sqrt((1/M) Σ_m (E_m − E)²)``, as
``extras``: ``energy_std [B, 1]``, ``forces_std [N, 3]`` (per component), ``atom_energies_std
[N, 1]`` and the members' energies ``member_energies [M, B]``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor, nn

from pyg_hipts.potentials.base import Potential, PotentialOutput
from pyg_hipts.potentials.io import TRUSTED_PACKAGES, load_potential
from pyg_hipts.potentials.structures import Structures
from pyg_hipts.potentials.sum import PotentialFactory, build_parts
from pyg_hipts.units import Units

SPREADS = frozenset({"energy_std", "forces_std", "atom_energies_std", "member_energies"})
"""The extra outputs of :meth:`Ensemble.predict` (see the module docstring)."""


def mean_and_std(values: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
    """Mean and population standard deviation over the members: ``M × [...] -> [...], [...]``.
    The spread is computed from detached values (a diagnostic, without gradients)."""
    stacked = torch.stack(list(values))
    return stacked.mean(0), stacked.detach().std(0, correction=0)


def mean_extras(extras: Sequence[Mapping[str, Tensor]]) -> dict[str, Tensor]:
    """The mean over the members of every extra output all of them give with the same shape
    (``level_energies`` of HIP-NN members with different numbers of layers are left out)."""
    common = set(extras[0]).intersection(*extras[1:])
    same = [name for name in sorted(common) if len({e[name].shape for e in extras}) == 1]
    return {name: torch.stack([e[name] for e in extras]).mean(0) for name in same}


class Ensemble(Potential):
    """Members on the same species and units; see the module docstring for the math.

    Args:
        species: the species of every member.
        members: at least two potentials, or factories ``species -> potential`` built here.
        units: of every member; by default the members' own. Members in other units than each
            other or than ``units`` are an error (nothing is converted).
    """

    def __init__(
        self,
        species: Sequence[int],
        members: Sequence[Potential | PotentialFactory],
        units: Units | None = None,
    ) -> None:
        built = build_parts(species, members, "ensemble")
        if len(built) < 2:
            raise ValueError(f"an ensemble needs at least 2 members, got {len(built)}")
        known = {member.units for member in built if member.units is not None}
        if units is not None:
            known.add(units)
        if len(known) > 1:
            raise ValueError(f"ensemble members are in different units: {sorted(map(str, known))}")
        super().__init__(species, max(member.cutoff for member in built), next(iter(known), None))
        self.members = nn.ModuleList(built)
        self.set_units(self.units)

    @classmethod
    def from_checkpoints(
        cls,
        paths: Sequence[str | Path],
        map_location: str | torch.device = "cpu",
        trusted: Iterable[str] = TRUSTED_PACKAGES,
    ) -> Ensemble:
        """Members from training checkpoints or saved potentials
        (:func:`~pyg_hipts.potentials.load_potential`, whose ``trusted`` packages the classes named
        in them must lie in); they must share their species and units."""
        if len(paths) < 2:
            raise ValueError(f"an ensemble needs at least 2 checkpoints, got {len(paths)}")
        members = [load_potential(path, map_location, trusted) for path in paths]
        for label, key in (("species", lambda m: sorted(m.species)), ("units", lambda m: m.units)):
            values = [key(member) for member in members]
            if any(value != values[0] for value in values):
                listing = "; ".join(f"{path}: {value}" for path, value in zip(paths, values, strict=True))
                raise ValueError(f"ensemble members must share their {label}, got {listing}")
        return cls(members[0].species, members, members[0].units)

    @classmethod
    def from_file(
        cls,
        path: str | Path,
        map_location: str | torch.device = "cpu",
        trusted: Iterable[str] = TRUSTED_PACKAGES,
    ) -> Ensemble:
        """The ``ensemble.yaml`` written by ``pyg-hipts ensemble``: a mapping with a list of
        ``checkpoints`` (paths relative to the file)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such ensemble file")
        try:
            listing = yaml.safe_load(path.read_text())
        except yaml.YAMLError as error:
            raise ValueError(f"{path}: not a readable YAML file: {error}") from error
        checkpoints = listing.get("checkpoints") if isinstance(listing, dict) else None
        if not isinstance(checkpoints, list) or not all(isinstance(p, str) for p in checkpoints):
            raise ValueError(f"{path}: expected a mapping with a 'checkpoints' list of paths")
        paths = [path.parent / checkpoint for checkpoint in checkpoints]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"{path}: the checkpoints {missing} do not exist")
        return cls.from_checkpoints(paths, map_location, trusted)

    # --- capabilities --------------------------------------------------------------------------

    def supports(self, name: str) -> bool:
        """The spreads, and what every member supports."""
        return name in SPREADS or all(member.supports(name) for member in self.members)

    @property
    def periodic(self) -> bool:  # type: ignore[override]
        return self.supports("periodic")

    @property
    def reports(self) -> frozenset[str]:  # type: ignore[override]
        return SPREADS | frozenset.intersection(*(frozenset(member.reports) for member in self.members))

    # --- evaluation ----------------------------------------------------------------------------

    def atom_energies(self, structures: Structures) -> Tensor:
        """``(1/M) Σ_m e_i^(m)`` ``[N]``; the members share the neighbour lists, and the mean of
        the extra outputs they all record is recorded."""
        energies, extras = [], []
        for member in self.members:
            own = dataclasses.replace(structures, extras={})
            energies.append(member.atom_energies(own).reshape(-1).double())
            extras.append(own.extras)
        for name, value in mean_extras(extras).items():
            structures.record(name, value)
        return torch.stack(energies).mean(0)

    def predict(self, z: Tensor, pos: Tensor, batch: Tensor | None = None, **options: Any) -> PotentialOutput:
        """Every member's :meth:`~Potential.predict` (same ``options``: ``cell``, ``pbc``,
        ``forces``, ``stress``, ``virial``, ``create_graph``), then the means (as the output's
        fields) and the spreads (in ``extras``, see the module docstring)."""
        pbc = options.get("pbc")
        asked = {"periodic": pbc is not None and bool(pbc.any())}
        asked |= {name: bool(options.get(name, False)) for name in ("stress", "virial")}
        for name in (name for name, wanted in asked.items() if wanted and not self.supports(name)):
            unable = [type(m).__name__ for m in self.members if not m.supports(name)]
            raise ValueError(f"the ensemble members {unable} cannot give {name}")
        outputs = [member.predict(z, pos, batch, **options) for member in self.members]
        energy, energy_std = mean_and_std([o.energy for o in outputs])
        atom, atom_std = mean_and_std([o.atom_energies.double() for o in outputs])
        extras = mean_extras([o.extras for o in outputs])
        extras.update(
            energy_std=energy_std,
            atom_energies_std=atom_std,
            member_energies=torch.stack([o.energy.detach() for o in outputs]).squeeze(-1),
        )
        output = PotentialOutput(energy, atom, extras=extras)
        if options.get("forces", True):
            output.forces, extras["forces_std"] = mean_and_std([o.forces for o in outputs])
        if asked["stress"]:
            output.stress = torch.stack([o.stress for o in outputs]).mean(0)
        if asked["virial"]:
            output.virial = torch.stack([o.virial for o in outputs]).mean(0)
        return output

    # --- set-up and metadata -------------------------------------------------------------------

    def pre_fit(self, dataset: Any) -> None:
        for member in self.members:
            member.pre_fit(dataset)

    def regularization_parameters(self) -> list[Tensor]:
        return [p for member in self.members for p in member.regularization_parameters()]

    def init_arguments(self) -> dict[str, Any]:
        return {"members": [member.spec() for member in self.members]}
