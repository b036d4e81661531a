"""ASE calculator for a trained :class:`~pyg_hipts.nn.HipNN`, a PyG model or an ensemble.

ASE works in eV and Å. A model predicts in the units of its training data (recorded in the
checkpoint, e.g. rMD17's kcal/mol and Å); the calculator converts energies, forces, per-atom
energies and stress to ASE's units. Stress follows ASE's convention ``σ = (1/V) ∂E/∂ε``
(see :mod:`pyg_hipts.nn.strain`), returned in Voigt order ``xx, yy, zz, yz, xz, xy`` in eV/Å³.
With an :class:`~pyg_hipts.ensemble.Ensemble` the results are the members' means, and
``calc.results`` also holds their standard deviations ``energy_std`` (eV) and ``forces_std``
(eV/Å, per component).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from ase import Atoms, units
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
from ase.stress import full_3x3_to_voigt_6_stress
from torch import nn

from ..compare.potential import PygPotential
from ..data.dataset import Units
from ..train.checkpoints import load_trained_model

ENERGY_UNITS_IN_EV = {
    "eV": 1.0,
    "meV": 1e-3,
    "kcal/mol": units.kcal / units.mol,
    "kJ/mol": units.kJ / units.mol,
    "Hartree": units.Hartree,
    "Ha": units.Hartree,
    "Ry": units.Ry,
}
LENGTH_UNITS_IN_ANGSTROM = {"Å": 1.0, "Angstrom": 1.0, "A": 1.0, "nm": 10.0, "Bohr": units.Bohr}


def energy_unit_in_ev(name: str) -> float:
    """eV per energy unit ``name`` (``"kcal/mol"`` -> 0.0434)."""
    if name not in ENERGY_UNITS_IN_EV:
        raise ValueError(f"unknown energy unit {name!r}; known: {sorted(ENERGY_UNITS_IN_EV)}")
    return ENERGY_UNITS_IN_EV[name]


def length_unit_in_angstrom(name: str) -> float:
    """Å per length unit ``name`` (``"Bohr"`` -> 0.529)."""
    if name not in LENGTH_UNITS_IN_ANGSTROM:
        raise ValueError(f"unknown length unit {name!r}; known: {sorted(LENGTH_UNITS_IN_ANGSTROM)}")
    return LENGTH_UNITS_IN_ANGSTROM[name]


class HipCalculator(Calculator):
    """Energy, forces, per-atom energies and stress of a trained potential for ASE.

    Args:
        model: a :class:`~pyg_hipts.nn.HipNN`, a :class:`~pyg_hipts.compare.PygPotential`
            (molecules only) or an :class:`~pyg_hipts.ensemble.Ensemble` (put in eval mode; its
            weights are not changed).
        model_units: units of the model's inputs and outputs; ASE's eV and Å when ``None``.
        device, dtype: where and in which precision to evaluate (float64 gives the smoothest
            energies for long dynamics).

    Stress is only available for atoms with all three directions periodic.
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress"]

    def __init__(
        self,
        model: nn.Module,
        model_units: Units | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float64,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.device, self.dtype = torch.device(device), dtype
        self.model = model.to(device=self.device, dtype=dtype).eval()
        units_ = model_units or Units("Å", "eV")
        self.energy_scale = energy_unit_in_ev(units_.energy)
        self.length_scale = length_unit_in_angstrom(units_.length)

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float64
    ) -> HipCalculator:
        """Load a Lightning checkpoint of any of the project's modules (EMA weights when it has
        them) with the units it was trained in."""
        model, units = load_trained_model(path)
        return cls(model, units, device=device, dtype=dtype)

    @classmethod
    def from_ensemble(
        cls, path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float64
    ) -> HipCalculator:
        """Load the ``ensemble.yaml`` written by ``pyg-hipts ensemble``."""
        from ..ensemble import Ensemble

        ensemble = Ensemble.from_file(path)
        return cls(ensemble, ensemble.units, device=device, dtype=dtype)

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: list[str] | tuple[str, ...] = ("energy",),
        system_changes: list[str] = all_changes,
    ) -> None:
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        want_stress = "stress" in properties
        if want_stress and not atoms.pbc.all():
            raise PropertyNotImplementedError("stress needs atoms periodic in all three directions")
        to_tensor = {"device": self.device, "dtype": self.dtype}
        z = torch.as_tensor(atoms.numbers, dtype=torch.long, device=self.device)
        pos = torch.as_tensor(atoms.positions / self.length_scale, **to_tensor)
        cell = pbc = None
        if atoms.pbc.any():
            cell = torch.as_tensor(np.asarray(atoms.cell) / self.length_scale, **to_tensor).unsqueeze(0)
            pbc = torch.as_tensor(atoms.pbc, device=self.device).unsqueeze(0)
        if cell is not None and isinstance(self.model, PygPotential):
            raise PropertyNotImplementedError("PyG models here take no periodic cell; use a HIP-NN model")
        periodic = {"cell": cell, "pbc": pbc, "stress": want_stress} if cell is not None else {}
        out = self.model.predict(z, pos, forces=True, **periodic)
        force_scale = self.energy_scale / self.length_scale
        energy = float(out.energy.detach().sum()) * self.energy_scale
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "forces": out.forces.detach().cpu().double().numpy() * force_scale,
        }
        if out.atom_energies is not None:
            self.results["energies"] = (
                out.atom_energies.detach().cpu().double().numpy().ravel() * self.energy_scale
            )
        if hasattr(out, "energy_std"):
            self.results["energy_std"] = float(out.energy_std.sum()) * self.energy_scale
            self.results["forces_std"] = out.forces_std.cpu().double().numpy() * force_scale
        if want_stress:
            stress = out.stress[0].detach().cpu().double().numpy() * self.energy_scale / self.length_scale**3
            self.results["stress"] = full_3x3_to_voigt_6_stress(stress)
