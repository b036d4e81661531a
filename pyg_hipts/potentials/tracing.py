"""Tracing a potential's energies and forces into one graph of ATen operations.

An evaluation module ``forward(*inputs) -> tuple[Tensor, ...]`` that computes atom energies and
their gradient (the forces) is traced with ``make_fx`` (symbolic shapes) as a function
``(weights..., inputs...) -> outputs``: the backward pass that gives the forces becomes explicit
operations of the graph, so the graph can be compiled (its derivatives are then only of first
order) or exported.

Autograd saves the outputs of some operations (``exp``, ``sqrt``, a norm…) for their backward
formula as detached aliases, which the trace records as ``detach``. Evaluated again, such a
graph has the right values but loses the dependence of the forces on the weights through those
aliases. A graph traced with ``differentiable=True`` has its ``detach`` nodes removed: its
outputs are then differentiable in the weights as ``create_graph=True`` forces are (an
evaluation module must not detach anything on purpose; :func:`trace_with_weights` callers check
the traced gradients against eager ones).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, fx, nn
from torch.func import functional_call
from torch.fx.experimental import _config as fx_config
from torch.fx.experimental.proxy_tensor import make_fx

DETACH = torch.ops.aten.detach.default


class UntraceableError(ValueError):
    """A potential's evaluation cannot be traced, compiled or checked against eager."""


class WeightedGraph(nn.Module):
    """A traced graph ``(weights..., inputs...) -> outputs`` called with the given ``weights``
    (tensors of a module, kept by reference: the live parameters of a trained potential, or
    buffers holding frozen copies)."""

    def __init__(self, graph: fx.GraphModule, weights: Sequence[Tensor], as_buffers: bool):
        super().__init__()
        self.graph = graph
        self.n_weights = len(weights)
        self.as_buffers = as_buffers
        if as_buffers:
            for index, tensor in enumerate(weights):
                self.register_buffer(f"tensor_{index}", tensor)
        else:
            self.__dict__["weights"] = list(weights)  # not submodule state: the owner's tensors

    def tensors(self) -> list[Tensor]:
        if self.as_buffers:
            return [getattr(self, f"tensor_{index}") for index in range(self.n_weights)]
        return self.__dict__["weights"]

    def forward(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        return self.graph(*self.tensors(), *inputs)


def trace_with_weights(
    evaluation: nn.Module, example: Sequence[Tensor], *, differentiable: bool, frozen: bool, purpose: str
) -> WeightedGraph:
    """``evaluation`` traced on ``example`` with its parameters and buffers as leading inputs.

    Every input size is its own symbol (no two sizes are merged because they happen to be equal
    in ``example``). ``differentiable``: remove the ``detach`` nodes (module docstring).
    ``frozen``: the graph keeps copies of the weights as buffers (an export); otherwise it reads
    ``evaluation``'s live parameters at every call (training). When the trace fails, raises
    :class:`UntraceableError` ``("<class of evaluation.potential> cannot be traced for <purpose>:
    <cause>")``.
    """
    state = {**dict(evaluation.named_parameters()), **dict(evaluation.named_buffers())}
    names = list(state)

    def with_weights(*arguments: Tensor) -> tuple[Tensor, ...]:
        weights = dict(zip(names, arguments[: len(names)], strict=True))
        with torch.enable_grad():
            return functional_call(evaluation, weights, tuple(arguments[len(names) :]))

    placeholders = [tensor.detach() for tensor in state.values()]
    try:
        with fx_config.patch(use_duck_shape=False):
            graph = make_fx(with_weights, tracing_mode="symbolic")(*placeholders, *example)
    except Exception as error:  # tracing fails in many ways; name the module and the cause
        name = type(getattr(evaluation, "potential", evaluation)).__name__
        raise UntraceableError(f"{name} cannot be traced for {purpose}: {error}") from error
    if differentiable:
        remove_detaches(graph)
    weights = placeholders if frozen else list(state.values())
    return WeightedGraph(graph, weights, as_buffers=frozen)


def remove_detaches(graph: fx.GraphModule) -> None:
    """Replace every ``detach(x)`` of ``graph`` by ``x``, in place."""
    for node in list(graph.graph.nodes):
        if node.op == "call_function" and node.target is DETACH:
            node.replace_all_uses_with(node.args[0])
            graph.graph.erase_node(node)
    graph.recompile()


def largest_difference(got: Sequence[Tensor], expected: Sequence[Tensor]) -> float:
    """Largest ``max |got − expected| / max(max |expected|, 1e-30)`` over pairs of tensors."""
    worst = 0.0
    for a, b in zip(got, expected, strict=True):
        scale = max(float(b.abs().max()) if b.numel() else 0.0, 1e-30)
        difference = float((a - b).abs().max()) if b.numel() else 0.0
        worst = max(worst, difference / scale)
    return worst
