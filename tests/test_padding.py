"""Row moves of the padded message passing: values and derivatives to second order equal those of
plain indexing, eagerly and written as scatters only; forward-mode derivatives too, so that
``torch.func.hessian`` of a model's energy equals the reverse-mode Hessian; the scatter-only form
has no accumulating scatter in its traced backward."""

from __future__ import annotations

import pytest
import torch
from torch.fx.experimental.proxy_tensor import make_fx

from pyg_hipts.nn import HipNN
from pyg_hipts.nn.padding import place, swap, take

SIZE = 7
INDEX = torch.tensor([5, 0, 3, 6])  # distinct slots of SIZE
INVOLUTION = torch.tensor([3, 1, 6, 0, 4, 5, 2])  # swaps 0 <-> 3 and 2 <-> 6
GATHERS = ("aten.index.", "index_select", "gather", "index_add")


def _reference(name: str, x: torch.Tensor) -> torch.Tensor:
    if name == "place":
        return torch.zeros(SIZE, *x.shape[1:], dtype=x.dtype).index_put((INDEX,), x)
    return x[INDEX] if name == "take" else x[INVOLUTION]


def _move(name: str, x: torch.Tensor, scatter_only: bool) -> torch.Tensor:
    if name == "place":
        return place(x, INDEX, SIZE, scatter_only)
    if name == "take":
        return take(x, INDEX, scatter_only)
    return swap(x, INVOLUTION, scatter_only)


def _input(name: str) -> torch.Tensor:
    rows = len(INDEX) if name == "place" else SIZE
    return torch.randn(rows, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("scatter_only", [False, True])
@pytest.mark.parametrize("name", ["place", "take", "swap"])
def test_moves_equal_indexing_to_second_order(name: str, scatter_only: bool) -> None:
    x = _input(name).requires_grad_(True)
    assert torch.equal(_move(name, x, scatter_only), _reference(name, x))

    def cubic(move) -> torch.Tensor:  # a function whose second derivative sees the move twice
        return (move(x) ** 3).sum()

    ours = cubic(lambda t: _move(name, t, scatter_only))
    reference = cubic(lambda t: _reference(name, t))
    (grad_ours,) = torch.autograd.grad(ours, x, create_graph=True)
    (grad_ref,) = torch.autograd.grad(reference, x, create_graph=True)
    torch.testing.assert_close(grad_ours, grad_ref, rtol=0, atol=0)
    probe = torch.linspace(-1, 1, x.numel(), dtype=x.dtype).view_as(x)
    (second_ours,) = torch.autograd.grad((grad_ours * probe).sum(), x)
    (second_ref,) = torch.autograd.grad((grad_ref * probe).sum(), x)
    torch.testing.assert_close(second_ours, second_ref, rtol=0, atol=0)
    assert torch.autograd.gradgradcheck(lambda t: _move(name, t, scatter_only), (x,))


@pytest.mark.parametrize("scatter_only", [False, True])
@pytest.mark.parametrize("name", ["place", "take", "swap"])
def test_forward_mode_moves_the_tangent(name: str, scatter_only: bool) -> None:
    x = _input(name)
    tangent = torch.linspace(-1, 1, x.numel(), dtype=x.dtype).view_as(x)
    value, derivative = torch.func.jvp(lambda t: _move(name, t, scatter_only), (x,), (tangent,))
    assert torch.equal(value, _reference(name, x))
    assert torch.equal(derivative, _reference(name, tangent))


def test_forward_over_reverse_hessian_of_a_model_equals_reverse_over_reverse() -> None:
    """``torch.func.hessian`` (forward over reverse, e.g. for normal modes) of an l = 2 model."""
    torch.manual_seed(0)
    model = HipNN(
        [1, 8], n_features=8, n_sensitivities=4, dist_soft_min=0.8, dist_soft_max=3.0, dist_hard_max=3.5,
        n_interaction_layers=2, l_max=2,
    ).double()  # fmt: skip
    z, batch = torch.tensor([8, 1, 1]), torch.zeros(3, dtype=torch.long)
    pos = torch.tensor([[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]], dtype=torch.float64)

    def energy(p: torch.Tensor) -> torch.Tensor:
        return model.predict(z, p, batch, forces=False).energy.sum()

    forward_over_reverse = torch.func.hessian(energy)(pos).reshape(9, 9)
    reverse_over_reverse = torch.autograd.functional.hessian(energy, pos).reshape(9, 9)
    torch.testing.assert_close(forward_over_reverse, reverse_over_reverse, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(forward_over_reverse, forward_over_reverse.T, rtol=1e-10, atol=1e-12)
    assert forward_over_reverse.abs().max() > 0.1


def _row_reads(move, x: torch.Tensor) -> set[str]:
    """The row gathers and accumulating scatters in the traced value-and-gradient graph of
    ``(move(x)²).sum()``, as compiled training traces it."""

    def value_and_gradient(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.detach().requires_grad_(True)
        y = (move(x) ** 2).sum()
        return y, torch.autograd.grad(y, x, create_graph=True)[0]

    graph = make_fx(value_and_gradient)(x)
    found = set()
    for node in graph.graph.nodes:
        target = str(node.target)
        accumulating = "index_put" in target and len(node.args) > 3 and node.args[3]
        if accumulating or any(name in target for name in GATHERS):
            found.add(target)
    return found


@pytest.mark.parametrize("name", ["place", "take", "swap"])
def test_scatter_only_graph_has_no_row_gathers(name: str) -> None:
    """Differentiating a gather again gives a scatter-add; the scatter-only graphs hold neither
    (while plain indexing's graph does), so a compiled training step needs no scatter-add."""
    assert _row_reads(lambda t: _move(name, t, True), _input(name)) == set()
    assert _row_reads(lambda t: _reference(name, t), _input(name))
