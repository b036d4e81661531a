"""An ensemble of trained potentials: mean predictions and their spread as the uncertainty.

For ``M`` members with energies ``E_m [B]`` and forces ``F_m [N, 3]``::

    E = (1/M) Σ_m E_m,   σ_E = sqrt((1/M) Σ_m (E_m − E)²)      (population standard deviation)

and the same per force component (``σ_F [N, 3]``) and per-atom energy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from torch import Tensor, nn
from torch_geometric.data import Batch

from pyg_hipts.data import Units
from pyg_hipts.nn import HipNN
from pyg_hipts.nn.model import periodic_inputs, structure_inputs
from pyg_hipts.train.checkpoints import load_trained_model


@dataclass
class EnsembleOutput:
    """Means over the members (the fields of :class:`~pyg_hipts.nn.HipOutput`) and spreads.

    Attributes:
        energy: ``[B, 1]``. energy_std: ``[B, 1]``. member_energies: ``[M, B]``.
        forces, forces_std: ``[N, 3]`` (``None`` without forces).
        atom_energies, atom_energies_std: ``[N, 1]`` (``None`` if a member has none).
        stress: ``[B, 3, 3]`` mean (``None`` unless asked for).
    """

    energy: Tensor
    energy_std: Tensor
    member_energies: Tensor
    forces: Tensor | None
    forces_std: Tensor | None
    atom_energies: Tensor | None
    atom_energies_std: Tensor | None
    stress: Tensor | None = None


def _mean_and_std(values: list[Tensor]) -> tuple[Tensor, Tensor]:
    stacked = torch.stack(values)
    return stacked.mean(0), stacked.std(0, correction=0)


class Ensemble(nn.Module):
    """Members with the same inputs (species, units); see the module docstring for the math."""

    def __init__(self, members: Sequence[nn.Module], units: Units | None = None):
        super().__init__()
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least 2 members, got {len(members)}")
        species = {tuple(m.species) for m in members}
        if len(species) != 1:
            raise ValueError(f"ensemble members know different species: {sorted(species)}")
        self.members = nn.ModuleList(members)
        self.species = list(members[0].species)
        self.units = units

    @classmethod
    def from_checkpoints(cls, paths: Sequence[str | Path]) -> Ensemble:
        """Members from Lightning checkpoints (EMA weights when kept); they must share units."""
        loaded = [load_trained_model(path) for path in paths]
        units = {u for _, u in loaded}
        if len(units) != 1:
            raise ValueError(f"ensemble members were trained in different units: {units}")
        return cls([model for model, _ in loaded], units.pop())

    @classmethod
    def from_file(cls, path: str | Path) -> Ensemble:
        """The ``ensemble.yaml`` written by ``pyg-hipts ensemble`` (checkpoint paths relative to it)."""
        path = Path(path)
        listing = yaml.safe_load(path.read_text())
        if not isinstance(listing, dict) or "checkpoints" not in listing:
            raise ValueError(f"{path}: expected a 'checkpoints' list")
        return cls.from_checkpoints([path.parent / p for p in listing["checkpoints"]])

    def predict(
        self,
        z: Tensor,
        pos: Tensor,
        batch: Tensor | None = None,
        *,
        cell: Tensor | None = None,
        pbc: Tensor | None = None,
        forces: bool = True,
        stress: bool = False,
    ) -> EnsembleOutput:
        """Every member's prediction, then means and standard deviations (detached)."""
        periodic = {"cell": cell, "pbc": pbc} if cell is not None else {}
        if stress:
            periodic["stress"] = True
        outputs = []
        for member in self.members:
            if periodic and not isinstance(member, HipNN):
                raise ValueError(f"{type(member).__name__} members take no cell, pbc or stress")
            outputs.append(member.predict(z, pos, batch, forces=forces, **periodic))
        energies = [o.energy.detach() for o in outputs]
        energy, energy_std = _mean_and_std(energies)
        force = force_std = atom = atom_std = mean_stress = None
        if forces:
            force, force_std = _mean_and_std([o.forces.detach() for o in outputs])
        if all(o.atom_energies is not None for o in outputs):
            atom, atom_std = _mean_and_std([o.atom_energies.detach() for o in outputs])
        if stress:
            mean_stress = torch.stack([o.stress.detach() for o in outputs]).mean(0)
        member_energies = torch.stack(energies).squeeze(-1)
        return EnsembleOutput(
            energy, energy_std, member_energies, force, force_std, atom, atom_std, mean_stress
        )

    def predict_data(self, data: Batch, *, forces: bool = True) -> EnsembleOutput:
        """:meth:`predict` on a PyG ``Data`` / ``Batch``."""
        return self.predict(*structure_inputs(data), **periodic_inputs(data), forces=forces)
