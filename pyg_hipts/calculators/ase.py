"""ASE calculator for any trained :class:`~pyg_hipts.potentials.Potential`.

ASE works in eV and Å. A potential predicts in its :attr:`~pyg_hipts.potentials.Potential.units`
(those of its training data, e.g. rMD17's kcal/mol and Å; eV and Å when unset); the calculator
converts energies, forces, per-atom energies and stress with the factors of
:mod:`pyg_hipts.units`. Stress follows ASE's convention ``σ = (1/V) ∂E/∂ε`` (see
:mod:`pyg_hipts.potentials.strain`), returned in Voigt order ``xx, yy, zz, yz, xz, xy`` in eV/Å³.
With an :class:`~pyg_hipts.potentials.ensemble.Ensemble` the results are the members' means,
and ``calc.results`` also holds their standard deviations ``energy_std`` (eV) and
``forces_std`` ``[N, 3]`` (eV/Å, per component).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
from ase.stress import full_3x3_to_voigt_6_stress
from torch import Tensor

from pyg_hipts.potentials import TRUSTED_PACKAGES, Potential, load_potential
from pyg_hipts.potentials.ensemble import Ensemble
from pyg_hipts.units import EV_ANGSTROM, energy_factor, length_factor


def scaled(tensor: Tensor, scale: float) -> np.ndarray:
    """``tensor`` times ``scale`` (to ASE's units), as a float64 array."""
    return tensor.detach().cpu().double().numpy() * scale


class HipCalculator(Calculator):
    """Energy, forces, per-atom energies and stress of a potential for ASE.

    Args:
        potential: any potential; it is moved (in place) to ``device`` and ``dtype`` and put in
            eval mode. Periodic atoms need one that supports ``"periodic"``.
        device, dtype: where and in which precision to evaluate (float64 gives the smoothest
            energies for long dynamics).

    Stress is only available for atoms periodic in all three directions, from a potential that
    supports ``"stress"``.
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress"]

    def __init__(
        self,
        potential: Potential,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float64,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.device, self.dtype = torch.device(device), dtype
        self.potential = potential.to(device=self.device, dtype=dtype).eval()
        units = potential.units or EV_ANGSTROM
        self.energy_scale = energy_factor(units.energy, EV_ANGSTROM.energy)
        self.length_scale = length_factor(units.length, EV_ANGSTROM.length)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float64,
        trusted: Iterable[str] = TRUSTED_PACKAGES,
    ) -> HipCalculator:
        """Any potential from a training checkpoint (EMA weights when it has them) or a file of
        :func:`~pyg_hipts.potentials.save_potential` (an ensemble too), in its units; the classes
        it names must lie in the ``trusted`` packages."""
        return cls(load_potential(path, trusted=trusted), device=device, dtype=dtype)

    @classmethod
    def from_ensemble(
        cls,
        path: str | Path,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float64,
        trusted: Iterable[str] = TRUSTED_PACKAGES,
    ) -> HipCalculator:
        """The ensemble of the ``ensemble.yaml`` written by ``pyg-hipts ensemble``."""
        return cls(Ensemble.from_file(path, trusted=trusted), device=device, dtype=dtype)

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: list[str] | tuple[str, ...] = ("energy",),
        system_changes: list[str] = all_changes,
    ) -> None:
        super().calculate(atoms, properties, system_changes)
        atoms, name = self.atoms, type(self.potential).__name__
        want_stress = "stress" in properties
        if want_stress and not atoms.pbc.all():
            raise PropertyNotImplementedError("stress needs atoms periodic in all three directions")
        if want_stress and not self.potential.supports("stress"):
            raise PropertyNotImplementedError(f"{name} gives no stress")
        if atoms.pbc.any() and not self.potential.supports("periodic"):
            raise PropertyNotImplementedError(f"{name} takes no periodic cell; give it free molecules")
        to_tensor: dict[str, Any] = {"device": self.device, "dtype": self.dtype}
        z = torch.as_tensor(atoms.numbers, dtype=torch.long, device=self.device)
        pos = torch.as_tensor(atoms.positions / self.length_scale, **to_tensor)
        cell = pbc = None
        if atoms.pbc.any():
            cell = torch.as_tensor(np.asarray(atoms.cell) / self.length_scale, **to_tensor).unsqueeze(0)
            pbc = torch.as_tensor(atoms.pbc, device=self.device).unsqueeze(0)
        out = self.potential.predict(z, pos, cell=cell, pbc=pbc, forces=True, stress=want_stress)
        force_scale = self.energy_scale / self.length_scale
        energy = float(scaled(out.energy, self.energy_scale).sum())
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "energies": scaled(out.atom_energies, self.energy_scale).ravel(),
            "forces": scaled(out.forces, force_scale),
        }
        if "energy_std" in out.extras:
            self.results["energy_std"] = float(scaled(out.extras["energy_std"], self.energy_scale).sum())
            self.results["forces_std"] = scaled(out.extras["forces_std"], force_scale)
        if want_stress:
            stress = scaled(out.stress[0], self.energy_scale / self.length_scale**3)
            self.results["stress"] = full_3x3_to_voigt_6_stress(stress)
