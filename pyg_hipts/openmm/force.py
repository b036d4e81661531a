"""Any :class:`~pyg_hipts.potentials.Potential` as an OpenMM force (``openmm.PythonForce``).

OpenMM works in nm and kJ/mol. The force converts the positions (and the periodic box) from nm to
the potential's length unit, predicts in the potential's units (its
:attr:`~pyg_hipts.potentials.Potential.units`, eV and Å when unset) and converts back with the
factors of :mod:`pyg_hipts.units`: with ``s`` the potential's lengths per nm and ``c`` kJ/mol per
its energy unit, ``E = c E_model`` and ``F = c s F_model``. The neighbour pairs are rebuilt on
every evaluation, as :meth:`~pyg_hipts.potentials.Potential.predict` always does.

The force is never written into a serialized ``System`` by this package: OpenMM would store it as
a pickle of the Python function, and a file that runs code when it is read is refused here
(:func:`~pyg_hipts.openmm.files.read_system`). It is built from the checkpoint instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import openmm
import torch
from openmm import unit

from pyg_hipts.potentials import Potential
from pyg_hipts.units import EV_ANGSTROM, Units, energy_factor, length_factor


class Scales:
    """Conversion of a potential's units (eV and Å when unset) to OpenMM's: ``length`` (its
    lengths per nm) and ``energy`` (kJ/mol per its energy unit)."""

    def __init__(self, units: Units | None) -> None:
        units = units or EV_ANGSTROM
        self.length = length_factor("nm", units.length)
        self.energy = energy_factor(units.energy, "kJ/mol")


class PotentialEvaluator:
    """``state -> (energy kJ/mol, forces [n, 3] kJ/mol/nm)`` of a potential for ``n`` atoms of
    species ``z``, the computation function of an ``openmm.PythonForce``.

    Args:
        potential: moved (in place) to ``device`` and ``dtype`` and put in eval mode.
        z: ``[n]`` species of the particles the force acts on, in their order.
        periodic: whether the state's box vectors are a periodic cell (periodic in all three
            directions, as OpenMM's boxes are).
        device, dtype: where and in which precision to evaluate.
        replicas: the particles are ``R`` consecutive copies of the ``n`` of ``z``, evaluated as
            a batch of ``R`` independent structures (``E = Σ_r E_r``).
    """

    def __init__(
        self,
        potential: Potential,
        z: Sequence[int],
        periodic: bool,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float64,
        replicas: int = 1,
    ) -> None:
        if replicas < 1:
            raise ValueError(f"replicas must be >= 1, got {replicas}")
        self.device, self.dtype, self.replicas = torch.device(device), dtype, int(replicas)
        self.potential = potential.to(device=self.device, dtype=dtype).eval()
        self.z = torch.as_tensor(list(z), dtype=torch.long, device=self.device)
        self.potential.species_index(self.z)  # unknown species are an error now, not in a step
        self.batch = torch.arange(self.replicas, device=self.device).repeat_interleave(len(self.z))
        self.z = self.z.repeat(self.replicas)
        self.periodic = bool(periodic)
        if self.periodic and not potential.supports("periodic"):
            name = type(potential).__name__
            raise ValueError(f"{name} takes no periodic cell; give it a system without a box")
        self.scales = Scales(potential.units)

    def __call__(self, state: openmm.State) -> tuple[float, np.ndarray]:
        options = {"device": self.device, "dtype": self.dtype}
        nanometres = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        pos = torch.as_tensor(np.asarray(nanometres) * self.scales.length, **options)
        cell = pbc = None
        if self.periodic:
            box = np.asarray(state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer))
            cell = torch.as_tensor(box * self.scales.length, **options).expand(self.replicas, 3, 3)
            pbc = torch.ones(self.replicas, 3, dtype=torch.bool, device=self.device)
        out = self.potential.predict(self.z, pos, self.batch, cell=cell, pbc=pbc, forces=True)
        energy = float(out.energy.detach().sum()) * self.scales.energy
        forces = out.forces.detach().cpu().double().numpy() * (self.scales.energy * self.scales.length)
        return energy, forces


def potential_force(
    potential: Potential,
    z: Sequence[int],
    periodic: bool,
    particles: Sequence[int] | None = None,
    force_group: int = 0,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float64,
    replicas: int = 1,
) -> openmm.PythonForce:
    """An ``openmm.PythonForce`` of ``potential`` (see :class:`PotentialEvaluator`) acting on
    ``particles`` of the system (all when ``None``; ``z`` lists their species in that order,
    repeated for ``replicas`` copies)."""
    if particles is not None and len(particles) != len(z) * replicas:
        raise ValueError(f"{len(particles)} particles but {len(z) * replicas} species given")
    force = openmm.PythonForce(PotentialEvaluator(potential, z, periodic, device, dtype, replicas))
    force.setUsesPeriodicBoundaryConditions(bool(periodic))
    force.setForceGroup(force_group)
    if particles is not None:
        force.setParticles(list(particles))
    return force
