"""Row moves of the padded message passing: values and derivatives to second order equal those of
plain indexing, eagerly and written as scatters only; the scatter-only form has no
accumulating scatter in its traced backward."""

from __future__ import annotations

import pytest
import torch
from torch.fx.experimental.proxy_tensor import make_fx

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
