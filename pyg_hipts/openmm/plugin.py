"""The ``pyg_hipts`` potential of OpenMM-ML (registered under the ``openmmml.potentials`` entry
point), so that any trained potential of the package runs in OpenMM::

    from openmmml import MLPotential
    potential = MLPotential("pyg_hipts", checkpoint="runs/quickstart/checkpoints/best.ckpt")
    system = potential.createSystem(topology)                        # all ML
    mixed = potential.createMixedSystem(topology, mm_system, ml_atoms)  # ML/MM, mechanical embedding

Arguments of ``MLPotential``: ``checkpoint`` (a training checkpoint or a saved potential, read
without executing pickled code; the classes it names must lie in the packages of ``trusted``,
:data:`~pyg_hipts.potentials.TRUSTED_PACKAGES` by default) or ``potential`` (a
:class:`~pyg_hipts.potentials.Potential` object), and optionally ``device``, ``dtype``
(``"float64"``, the default, or ``"float32"``) and
``compile=True`` (:meth:`~pyg_hipts.potentials.Potential.compile_for_inference`).
Species are the topology's elements (atomic numbers); an element the model does not know is an
error naming the atom. A topology with periodic box vectors gives a periodic force.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import openmm
import torch
from openmm import app
from openmmml.mlpotential import MLPotentialImpl, MLPotentialImplFactory

from pyg_hipts.openmm.force import potential_force
from pyg_hipts.potentials import TRUSTED_PACKAGES, Potential, load_potential

DTYPES = {"float64": torch.float64, "float32": torch.float32}


def topology_species(topology: app.Topology, atoms: Iterable[int] | None, known: Iterable[int]) -> list[int]:
    """Atomic numbers of the ``atoms`` of ``topology`` (all when ``None``); an atom without an
    element or of an element not in ``known`` is an error naming it."""
    known = sorted(set(known))
    everyone = list(topology.atoms())
    chosen = everyone if atoms is None else [everyone[i] for i in atoms]
    species = []
    for atom in chosen:
        residue = f"{atom.name} of residue {atom.residue.name} {atom.residue.id}"
        if atom.element is None:
            raise ValueError(f"atom {atom.index} ({residue}) has no element; the model needs one per atom")
        number = atom.element.atomic_number
        if number not in known:
            raise ValueError(
                f"atom {atom.index} ({residue}) is {atom.element.symbol} (Z = {number}), which the model "
                f"does not know; it knows Z = {known}"
            )
        species.append(number)
    return species


class PotentialImpl(MLPotentialImpl):
    """Adds one ``PythonForce`` of the potential (see :mod:`pyg_hipts.openmm.force`)."""

    def __init__(self, potential: Potential, device: str | torch.device, dtype: torch.dtype) -> None:
        self.potential, self.device, self.dtype = potential, device, dtype

    def getMLLongRange(self) -> bool:  # noqa: N802  (OpenMM-ML's interface)
        """``False``: every potential of the package is local (no interaction beyond its cutoff)."""
        return False

    def addForces(  # noqa: N802  (OpenMM-ML's interface)
        self,
        topology: app.Topology,
        system: openmm.System,
        atoms: Iterable[int] | None,
        forceGroup: int,  # noqa: N803
        **args: Any,
    ) -> None:
        atoms = None if atoms is None else list(atoms)
        z = topology_species(topology, atoms, self.potential.species)
        periodic = topology.getPeriodicBoxVectors() is not None
        force = potential_force(self.potential, z, periodic, atoms, forceGroup, self.device, self.dtype)
        system.addForce(force)


class PotentialImplFactory(MLPotentialImplFactory):
    """Creates :class:`PotentialImpl` from ``checkpoint=`` or ``potential=`` (see the module
    docstring)."""

    def createImpl(  # noqa: N802  (OpenMM-ML's interface)
        self,
        name: str,
        checkpoint: str | Path | None = None,
        potential: Potential | None = None,
        device: str | torch.device = "cpu",
        dtype: str | torch.dtype = "float64",
        compile: bool = False,
        trusted: Iterable[str] = TRUSTED_PACKAGES,
        **args: Any,
    ) -> PotentialImpl:
        if (checkpoint is None) == (potential is None):
            raise ValueError(f"MLPotential({name!r}) needs exactly one of checkpoint= and potential=")
        if isinstance(dtype, str):
            if dtype not in DTYPES:
                raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
            dtype = DTYPES[dtype]
        if potential is None:
            potential = load_potential(checkpoint, trusted=trusted)
        if compile:
            potential.compile_for_inference()
        return PotentialImpl(potential, device, dtype)
