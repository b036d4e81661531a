"""Coarse-grained (or any) potentials as OpenMM ``System`` objects with native forces where they
exist.

A potential is split into terms (the terms of a :class:`~pyg_hipts.potentials.SumPotential`,
nested sums flattened). The priors become OpenMM's own forces, with the same energy functions and
the parameters converted to nm, radians and kJ/mol:

- :class:`~pyg_hipts.cg.TopologyPrior` terms: harmonic bonds and angles as
  ``HarmonicBondForce`` / ``HarmonicAngleForce``; Fourier dihedrals as a ``CustomTorsionForce``
  ``Σ_m a_m cos(mθ) + b_m sin(mθ)``; a dihedral map as a ``CustomCompoundBondForce`` of the
  same two-dimensional Fourier series in ``dihedral(p1, p2, p3, p4)`` and
  ``dihedral(p5, p6, p7, p8)`` (exact, where a ``CMAPTorsionForce`` would interpolate a grid);
  the ``ε (σ/r)^p`` repulsion of chosen pairs as a ``CustomBondForce``;
- :class:`~pyg_hipts.cg.PairRepulsion`: a ``CustomNonbondedForce`` of its shifted-force form with
  ``σ`` tabulated per pair of bead types, its cutoff, and periodic images by the minimum-image
  convention (OpenMM's requirement: a cutoff below half the box).

Every other term (the network, reference energies) is the *rest*, a potential evaluated by an
``openmm.PythonForce`` (:mod:`pyg_hipts.openmm.force`). ``R`` replicas of one structure go into
one ``System`` of ``R n`` particles: bonded terms are repeated per replica, the pair repulsion
acts within each replica (one interaction group per replica), and the rest sees the replicas as
a batch of ``R`` structures.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import openmm
import torch
from torch import Tensor

from pyg_hipts.cg import PairRepulsion, TopologyPrior
from pyg_hipts.cg.priors import (
    FourierDihedralMaps,
    FourierDihedrals,
    HarmonicAngles,
    HarmonicBonds,
    PriorTerm,
    Repulsion,
)
from pyg_hipts.openmm.force import Scales, potential_force
from pyg_hipts.potentials import Potential, SumPotential

NATIVE = (TopologyPrior, PairRepulsion)
"""Potentials that become OpenMM's own forces."""


def flat_terms(potential: Potential) -> list[Potential]:
    """The terms of ``potential`` (nested sums flattened; a single potential is its own term)."""
    if isinstance(potential, SumPotential):
        return [term for part in potential.terms for term in flat_terms(part)]
    return [potential]


def split_native(potential: Potential) -> tuple[list[Potential], Potential | None]:
    """``(native terms, rest)``: the terms OpenMM computes itself and the sum of the others
    (``None`` when every term is native)."""
    terms = flat_terms(potential)
    native = [term for term in terms if isinstance(term, NATIVE)]
    others = [term for term in terms if not isinstance(term, NATIVE)]
    if not others:
        return native, None
    rest = others[0] if len(others) == 1 else SumPotential(potential.species, others, potential.units)
    return native, rest


def _replicated(index: Tensor, replicas: int, n: int) -> np.ndarray:
    """``[R T, w]`` particle indices of bead tuples ``index [T, w]`` in ``R`` replicas of ``n``."""
    flat = index.reshape(index.shape[0], -1).numpy()
    return np.concatenate([flat + r * n for r in range(replicas)])


def _fourier_expression(variable: str, n_terms: int) -> list[str]:
    """``["1", "cos(θ)", "sin(θ)", …]`` of the basis ``g`` of :func:`~pyg_hipts.cg.priors.fourier_basis`."""
    waves = [f"{f}({m}*{variable})" for m in range(1, n_terms + 1) for f in ("cos", "sin")]
    return ["1", *waves]


def _prior_force(term: PriorTerm, scales: Scales, replicas: int, n: int, periodic: bool) -> openmm.Force:
    """The OpenMM force of one prior term (see the module docstring)."""
    tuples = _replicated(term.index, replicas, n)
    if isinstance(term, HarmonicBonds):
        force = openmm.HarmonicBondForce()
        k = (term.k * scales.energy * scales.length**2).tolist() * replicas
        for (i, j), r0, kb in zip(tuples, (term.center / scales.length).tolist() * replicas, k, strict=True):
            force.addBond(int(i), int(j), r0, kb)
    elif isinstance(term, HarmonicAngles):
        force = openmm.HarmonicAngleForce()
        k = (term.k * scales.energy).tolist() * replicas
        for triple, theta0, ka in zip(tuples, term.center.tolist() * replicas, k, strict=True):
            force.addAngle(*(int(p) for p in triple), theta0, ka)
    elif isinstance(term, FourierDihedrals):
        n_terms = term.a.shape[1]
        names = [f"{f}{m}" for m in range(1, n_terms + 1) for f in ("a", "b")]
        waves = _fourier_expression("theta", n_terms)[1:]
        force = openmm.CustomTorsionForce("+".join(f"{c}*{g}" for c, g in zip(names, waves, strict=True)))
        for name in names:
            force.addPerTorsionParameter(name)
        coefficients = torch.stack((term.a, term.b), dim=-1).flatten(-2) * scales.energy
        for quad, values in zip(tuples, coefficients.tolist() * replicas, strict=True):
            force.addTorsion(*(int(p) for p in quad), values)
    elif isinstance(term, FourierDihedralMaps):
        size = term.c.shape[-1]
        g_phi = _fourier_expression("phi", term.n_terms)
        g_psi = _fourier_expression("psi", term.n_terms)
        products = [f"c{j}_{k}*{g_phi[j]}*{g_psi[k]}" for j in range(size) for k in range(size)]
        expression = "+".join(products) + "; phi=dihedral(p1,p2,p3,p4); psi=dihedral(p5,p6,p7,p8)"
        force = openmm.CustomCompoundBondForce(8, expression)
        for j in range(size):
            for k in range(size):
                force.addPerBondParameter(f"c{j}_{k}")
        coefficients = (term.c * scales.energy).reshape(term.c.shape[0], -1).tolist() * replicas
        for beads, values in zip(tuples, coefficients, strict=True):
            force.addBond([int(p) for p in beads], values)
    elif isinstance(term, Repulsion):
        force = openmm.CustomBondForce(f"epsilon*(sigma/r)^{term.power}")
        force.addPerBondParameter("epsilon")
        force.addPerBondParameter("sigma")
        epsilon = float(term.epsilon) * scales.energy
        for (i, j), sigma in zip(tuples, (term.sigma / scales.length).tolist() * replicas, strict=True):
            force.addBond(int(i), int(j), [epsilon, sigma])
    else:
        raise TypeError(f"no OpenMM force for the prior {type(term).__name__}")
    force.setUsesPeriodicBoundaryConditions(periodic)
    return force


def _pair_repulsion_force(
    prior: PairRepulsion, z: Sequence[int], scales: Scales, replicas: int, periodic: bool
) -> openmm.CustomNonbondedForce:
    """The shifted-force repulsion of :class:`~pyg_hipts.cg.PairRepulsion` within each replica."""
    p, cutoff = prior.power, prior.cutoff / scales.length
    expression = (
        f"epsilon*((s/r)^{p} - (s/rc)^{p} + {p}*(s/rc)^{p}*(r/rc - 1)); "
        f"s=sigma(type1, type2); rc={cutoff!r}; epsilon={float(prior.epsilon) * scales.energy!r}"
    )
    force = openmm.CustomNonbondedForce(expression)
    size = len(prior.species)
    sigma = (prior.sigma / scales.length).numpy()
    force.addTabulatedFunction("sigma", openmm.Discrete2DFunction(size, size, sigma.T.ravel().tolist()))
    force.addPerParticleParameter("type")
    types = prior.species_index(torch.as_tensor(list(z))).tolist()
    for _ in range(replicas):
        for t in types:
            force.addParticle([float(t)])
    n = len(types)
    for r in range(replicas):
        members = set(range(r * n, (r + 1) * n))
        force.addInteractionGroup(members, members)
    methods = openmm.CustomNonbondedForce
    force.setNonbondedMethod(methods.CutoffPeriodic if periodic else methods.CutoffNonPeriodic)
    force.setCutoffDistance(cutoff)
    return force


def native_system(
    potential: Potential,
    z: Sequence[int],
    masses: Sequence[float],
    replicas: int = 1,
    box: Tensor | np.ndarray | None = None,
) -> tuple[openmm.System, Potential | None]:
    """An OpenMM ``System`` of ``replicas`` copies of the ``n`` particles of species ``z`` and
    ``masses`` (amu) with the native forces of ``potential``, and the rest (see the module
    docstring) still to be added (:func:`add_rest`). ``box [3, 3]`` (rows are the box vectors,
    in the potential's length unit, a reduced triclinic box as OpenMM requires) makes the system
    periodic."""
    z, masses = list(z), [float(m) for m in masses]
    if len(z) != len(masses):
        raise ValueError(f"{len(z)} particles but {len(masses)} masses")
    if any(m <= 0 for m in masses):
        raise ValueError(f"every mass must be > 0 amu, got {masses}")
    potential.species_index(torch.as_tensor(z))
    scales = Scales(potential.units)
    system = openmm.System()
    for _ in range(replicas):
        for mass in masses:
            system.addParticle(mass)
    periodic = box is not None
    if periodic:
        vectors = np.asarray(box, dtype=np.float64).reshape(3, 3) / scales.length
        system.setDefaultPeriodicBoxVectors(*(openmm.Vec3(*row) for row in vectors.tolist()))
    native, rest = split_native(potential)
    for term in native:
        if isinstance(term, TopologyPrior):
            for prior in term.terms:
                system.addForce(_prior_force(prior, scales, replicas, len(z), periodic))
        else:
            system.addForce(_pair_repulsion_force(term, z, scales, replicas, periodic))
    return system, rest


def add_rest(
    system: openmm.System,
    rest: Potential | None,
    z: Sequence[int],
    periodic: bool,
    replicas: int = 1,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float64,
) -> None:
    """Add the rest of :func:`native_system` to ``system`` as one ``openmm.PythonForce`` over its
    ``replicas`` copies of species ``z`` (nothing when ``rest`` is ``None``)."""
    if rest is not None:
        system.addForce(potential_force(rest, z, periodic, device=device, dtype=dtype, replicas=replicas))
