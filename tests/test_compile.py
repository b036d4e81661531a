"""``Potential.compile_for_inference``: compiled energies and forces equal eager ones (float64)
through ``predict``, the ASE calculator and OpenMM, from one traced graph; a potential that cannot
be traced falls back to ``torch.compile`` of its atom energies with a warning; derivatives of
derivatives are refused."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch
from openmmml import MLPotential

from pyg_hipts.calculators import HipCalculator
from pyg_hipts.cg import TopologyPrior
from pyg_hipts.potentials import SumPotential

from .test_ase_calculator import _ethanol_atoms
from .test_export import _Branching
from .test_openmm import _network, _openmm_energy_forces, _topology


@pytest.fixture(scope="module")
def eager_and_compiled():
    """An l = 2 HIP-NN-TS plus a bond prior (a sum, compiled as one), eager and compiled."""
    prior = TopologyPrior([1, 6, 8], bonds=[[0, 1], [0, 2]])
    prior.terms[0].k.fill_(100.0)
    prior.terms[0].center.fill_(1.5)
    eager = SumPotential([1, 6, 8], [prior, _network([1, 6, 8])], _network([1, 6, 8]).units).double()
    return eager, copy.deepcopy(eager).compile_for_inference()


def _ethanol_batch(n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    atoms = _ethanol_atoms()
    rng = np.random.default_rng(0)
    pos = np.stack([atoms.positions + rng.normal(0, 0.05, atoms.positions.shape) for _ in range(n)])
    z = torch.as_tensor(atoms.numbers).repeat(n)
    return z, torch.as_tensor(pos.reshape(-1, 3)), torch.arange(n).repeat_interleave(len(atoms))


def test_compiled_equals_eager_for_batches_of_other_sizes(eager_and_compiled) -> None:
    eager, compiled = eager_and_compiled
    assert compiled.is_compiled and not eager.is_compiled
    for n in (3, 5):  # a second size reuses the dynamic-shape graphs
        z, pos, batch = _ethanol_batch(n)
        expected, got = eager.predict(z, pos, batch), compiled.predict(z, pos, batch)
        torch.testing.assert_close(got.energy, expected.energy, rtol=1e-6, atol=0)
        torch.testing.assert_close(got.forces, expected.forces, rtol=1e-6, atol=1e-8)
    assert len(compiled.__dict__["_compiled_inference"].graphs) == 1  # one graph, all sizes ≥ 2


def test_compiled_through_the_calculator_and_openmm(eager_and_compiled) -> None:
    eager, compiled = eager_and_compiled
    atoms = _ethanol_atoms()
    atoms.calc = HipCalculator(eager)
    energy, forces = atoms.get_potential_energy(), atoms.get_forces()
    atoms.calc = HipCalculator(compiled)
    assert atoms.get_potential_energy() == pytest.approx(energy, rel=1e-6)
    np.testing.assert_allclose(atoms.get_forces(), forces, rtol=1e-6, atol=1e-8)

    topology = _topology(atoms.numbers)
    expected = _openmm_energy_forces(
        MLPotential("pyg_hipts", potential=eager).createSystem(topology), atoms.positions
    )
    system = MLPotential("pyg_hipts", potential=compiled).createSystem(topology)
    got = _openmm_energy_forces(system, atoms.positions)
    assert got[0] == pytest.approx(expected[0], rel=1e-6)
    np.testing.assert_allclose(got[1], expected[1], rtol=1e-6, atol=1e-8)


def test_compiled_potential_refuses_derivatives_of_forces(eager_and_compiled) -> None:
    _, compiled = eager_and_compiled
    z, pos, batch = _ethanol_batch(3)
    with pytest.raises(
        ValueError, match="is compiled for inference: its forces cannot be differentiated again"
    ):
        compiled.predict(z, pos, batch, create_graph=True)


def test_a_potential_that_cannot_be_traced_is_compiled_piecewise_with_a_warning() -> None:
    eager = _Branching()
    compiled = copy.deepcopy(eager).compile_for_inference()
    z, pos, batch = _ethanol_batch(2)
    z = torch.ones_like(z)
    fallback = r"(?s)_Branching cannot be traced for inference: .*; energies and forces use torch.compile"
    with pytest.warns(UserWarning, match=fallback):
        got = compiled.predict(z, pos, batch)
    assert "_compiled_inference" not in compiled.__dict__
    expected = eager.predict(z, pos, batch)
    torch.testing.assert_close(got.energy, expected.energy, rtol=1e-10, atol=0)
    torch.testing.assert_close(got.forces, expected.forces, rtol=1e-10, atol=1e-12)


def test_bad_input_to_a_compiled_potential_is_refused_and_keeps_it_compiled(eager_and_compiled) -> None:
    _, compiled = eager_and_compiled
    z, pos, batch = _ethanol_batch(2)
    pos[1] = pos[0] + 0.01
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fall-back warning
        with pytest.raises(ValueError, match="atoms too close"):
            compiled.predict(z, pos, batch)
    assert "_compiled_inference" in compiled.__dict__


def test_a_sum_with_a_term_compiled_on_its_own_compiles_as_one_graph(eager_and_compiled) -> None:
    """As when OpenMM compiles a CG model's network and the package's own dynamics the whole model."""
    eager, _ = eager_and_compiled
    compiled = copy.deepcopy(eager)
    compiled.terms[1].compile_for_inference()
    compiled.compile_for_inference()
    z, pos, batch = _ethanol_batch(3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no fall-back
        got = compiled.predict(z, pos, batch)
    expected = eager.predict(z, pos, batch)
    torch.testing.assert_close(got.energy, expected.energy, rtol=1e-6, atol=0)
    torch.testing.assert_close(got.forces, expected.forces, rtol=1e-6, atol=1e-8)
    assert compiled.terms[1].is_compiled


def test_a_deep_copy_of_a_compiled_potential_evaluates_its_own_weights(eager_and_compiled) -> None:
    """Energies alone go through the compiled ``atom_energies``: a copy must not call the original's."""
    eager, compiled = eager_and_compiled
    copied = copy.deepcopy(compiled)
    changed = copy.deepcopy(eager)
    with torch.no_grad():
        for original, other in zip(copied.parameters(), changed.parameters(), strict=True):
            original.mul_(1.1)
            other.mul_(1.1)
    z, pos, batch = _ethanol_batch(3)
    for potential, reference in ((copied, changed), (compiled, eager)):
        got = potential.predict(z, pos, batch, forces=False).energy
        expected = reference.predict(z, pos, batch, forces=False).energy
        torch.testing.assert_close(got, expected, rtol=1e-6, atol=0)
