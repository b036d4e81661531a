"""``Potential.compile_for_training``: the compiled training evaluation gives the eager energies,
forces, extras and weight gradients of a force loss (float64), for batches of other sizes, a
periodic box and a coarse-grained sum with a shorter-cutoff term; the Lightning module compiles
its trained potential only; potentials that cannot be traced are refused."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from pyg_hipts.cg import PairRepulsion
from pyg_hipts.nn import HipNN
from pyg_hipts.potentials import Potential, SumPotential
from pyg_hipts.train import PotentialModule

from .test_ase_calculator import _water_box
from .test_cg import BEAD_TYPES, KCAL, _ala2, _known_prior
from .test_compile import _ethanol_batch
from .test_export import _Branching
from .test_periodic import _model


def _loss_and_gradients(potential: Potential, inputs: dict, targets: torch.Tensor) -> tuple:
    """A force-matching loss (plus hierarchicality when reported) and its weight gradients."""
    potential.zero_grad()
    out = potential.predict(**inputs, create_graph=True)
    loss = out.energy.square().sum() + (out.forces - targets).square().sum()
    if "hierarchicality" in out.extras:
        loss = loss + out.extras["hierarchicality"].sum()
    loss.backward()
    gradients = [p.grad.clone() for p in potential.parameters() if p.grad is not None]
    return out, gradients


def _assert_compiled_equals_eager(eager: Potential, compiled: Potential, inputs: dict, rtol: float) -> None:
    targets = torch.zeros_like(inputs["pos"])
    expected, expected_gradients = _loss_and_gradients(eager, inputs, targets)
    got, gradients = _loss_and_gradients(compiled, inputs, targets)
    torch.testing.assert_close(got.energy, expected.energy, rtol=rtol, atol=0)
    scale = float(expected.forces.detach().abs().max())
    torch.testing.assert_close(got.forces, expected.forces, rtol=rtol, atol=rtol * scale)
    assert sorted(got.extras) == sorted(expected.extras)
    for name, value in expected.extras.items():
        torch.testing.assert_close(got.extras[name], value, rtol=rtol, atol=rtol * float(value.abs().max()))
    assert len(gradients) == len(expected_gradients) > 0
    for got_gradient, gradient in zip(gradients, expected_gradients, strict=True):
        torch.testing.assert_close(
            got_gradient, gradient, rtol=rtol, atol=rtol * max(float(gradient.abs().max()), 1e-12)
        )


def _batch(n: int) -> dict:
    z, pos, batch = _ethanol_batch(n)
    return {"z": z, "pos": pos, "batch": batch}


@pytest.mark.parametrize("l_max, n_max", [(2, None), (3, 4)])
def test_compiled_training_equals_eager_for_batches_of_other_sizes(l_max: int, n_max: int | None) -> None:
    """One graph serves batches of 4 and 3 ethanols; a single molecule traces its own."""
    torch.manual_seed(0)
    eager = HipNN(
        [1, 6, 8], n_features=8, n_sensitivities=6, dist_soft_min=0.8, dist_soft_max=4.0,
        dist_hard_max=4.5, n_interaction_layers=2, n_atom_layers=1, l_max=l_max, n_max=n_max,
    ).double()  # fmt: skip
    compiled = copy.deepcopy(eager).compile_for_training(backend="aot_eager")
    for n in (4, 3, 1):
        _assert_compiled_equals_eager(eager, compiled, _batch(n), rtol=1e-10)
    assert len(compiled.__dict__["_compiled_training"].graphs) == 2


def test_inductor_compiled_training_equals_eager_within_1e_6() -> None:
    eager = _model(species=(1, 6, 8))
    compiled = copy.deepcopy(eager).compile_for_training()
    for n in (4, 3):
        _assert_compiled_equals_eager(eager, compiled, _batch(n), rtol=1e-6)


def test_compiled_training_of_a_periodic_box() -> None:
    atoms = _water_box()
    inputs = {
        "z": torch.as_tensor(atoms.numbers),
        "pos": torch.as_tensor(atoms.positions),
        "cell": torch.as_tensor(np.asarray(atoms.cell)).unsqueeze(0),
        "pbc": torch.ones(1, 3, dtype=torch.bool),
    }
    eager = _model()
    _assert_compiled_equals_eager(
        eager, copy.deepcopy(eager).compile_for_training(backend="aot_eager"), inputs, rtol=1e-10
    )


def test_compiled_training_of_a_cg_sum_with_a_shorter_cutoff_term() -> None:
    """Priors, a 4.0 pair repulsion and a 4.5 network, two ala2 frames."""
    repulsion = PairRepulsion([1, 2, 3], cutoff=4.0, power=12)
    repulsion.set_parameters([[3.0, 3.1, 3.2], [3.1, 3.3, 3.4], [3.2, 3.4, 3.5]], 0.6)
    eager = SumPotential([1, 2, 3], [_known_prior(), repulsion, _model(species=(1, 2, 3))], KCAL)
    frames = torch.as_tensor(_ala2(2))
    inputs = {
        "z": torch.as_tensor(BEAD_TYPES).repeat(2),
        "pos": frames.reshape(-1, 3),
        "batch": torch.arange(2).repeat_interleave(len(BEAD_TYPES)),
    }
    _assert_compiled_equals_eager(
        eager, copy.deepcopy(eager).compile_for_training(backend="aot_eager"), inputs, rtol=1e-10
    )


def test_the_module_compiles_the_trained_potential_not_its_ema() -> None:
    module = PotentialModule(_model(species=(1, 6, 8)), ema_decay=0.9, compile=True)
    assert "_compiled_training" in module.model.__dict__
    assert "_compiled_training" not in module.ema_model.__dict__
    copied = copy.deepcopy(module.model)  # a copy traces its own graphs for its own weights
    graphs = copied.__dict__["_compiled_training"]
    assert graphs.evaluation.potential is copied and not graphs.graphs


def test_a_potential_that_cannot_be_traced_is_refused_by_name() -> None:
    potential = _Branching().compile_for_training(backend="aot_eager")
    inputs = _batch(2)
    inputs["z"] = torch.ones_like(inputs["z"])
    with pytest.raises(ValueError, match="_Branching cannot be traced for training"):
        potential.predict(**inputs, create_graph=True)
