"""Compiled evaluation of energies and forces: :meth:`~pyg_hipts.potentials.Potential.compile_for_training`
and :meth:`~pyg_hipts.potentials.Potential.compile_for_inference`.

A loss on forces differentiates the forces ``−∂E/∂pos`` again, in the weights. ``torch.compile``
cannot give a compiled graph's derivatives a second derivative, so here the whole evaluation of
a batch, atom energies and forces included, is traced into one graph of ATen operations
(:mod:`~pyg_hipts.potentials.tracing`) and that graph is compiled. For training
(``differentiable=True``) the forces in the graph keep their dependence on the weights: the
gradient of the loss is then an ordinary first-order backward pass of the compiled graph. For
inference (``differentiable=False``) the graph runs without autograd; being one graph, with the
neighbour search outside it, it has no graph breaks.

The graph takes the neighbour list of the potential's cutoff with its layout as inputs, so models
keep their fused message passing::

    z [N], pos [N, 3], batch [N], structures [B, 0], edge_index [2, P], shifts [P, 3],
    slot [P], reverse [P], canonical [P/2], from_canonical [P], neighbours [K, 0]
        -> atom_energies [N], forces [N, 3], extras (each [B, ...])

(``structures`` and ``neighbours`` are empty tensors that carry the sizes ``B`` and ``K`` as
shapes, so that they stay symbolic.) Terms of a sum with a shorter cutoff take the pairs within
their own cutoff from it. The neighbour search and the input checks stay eager, before the graph.

Sizes 0 and 1 are fixed by a trace, so one graph is traced for each pattern of sizes below 2 met
(usually one). Each graph is checked once, on the batch it was traced on, against the eager
evaluation: values (and, for training, the weight gradients of a random linear function of the
outputs) must agree to :data:`TOLERANCE` (relative), or
:class:`~pyg_hipts.potentials.tracing.UntraceableError` (a ``ValueError``) names the potential, as
it does when the trace or the compiler fails.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from pyg_hipts.data.graph import PairList, pair_geometry, plain_pair_list
from pyg_hipts.potentials.structures import Structures
from pyg_hipts.potentials.tracing import (
    UntraceableError,
    WeightedGraph,
    largest_difference,
    trace_with_weights,
)

TOLERANCE = {torch.float64: 1e-6, torch.float32: 1e-3}


@dataclass
class LayoutStructures(Structures):
    """:class:`Structures` whose pairs within ``pair_cutoff`` are given with their layout
    (``layout``: the graph inputs from ``edge_index`` on, module docstring); ``scatter_only``
    for a graph that is differentiated again (:attr:`PairList.scatter_only`)."""

    layout: tuple[Tensor, ...] = ()
    pair_cutoff: float = 0.0
    scatter_only: bool = False

    def pairs(self, cutoff: float) -> PairList:
        if cutoff > self.pair_cutoff:
            raise ValueError(f"the traced pair list reaches {self.pair_cutoff}, a term needs {cutoff}")
        if cutoff not in self._pairs:
            edge_index, shifts, slot, reverse, canonical, from_canonical, neighbours = self.layout
            if cutoff == self.pair_cutoff:
                vec, dist = pair_geometry(self.pos, edge_index, shifts)
                pairs = PairList(
                    edge_index, vec, dist, self.pos.shape[0], slot, reverse, neighbours.shape[0],
                    canonical, from_canonical, shifts=shifts, traced=True,
                    scatter_only=self.scatter_only,
                )  # fmt: skip
            else:
                keep = pair_geometry(self.pos, edge_index, shifts)[1] <= cutoff
                pairs = plain_pair_list(self.pos, edge_index[:, keep], shifts[keep])
            self._pairs[cutoff] = pairs
        return self._pairs[cutoff]


@contextlib.contextmanager
def _class_atom_energies(potential: nn.Module) -> Iterator[None]:
    """Within the block every module of ``potential`` evaluates its class's ``atom_energies``, not
    one compiled in its place by ``compile_for_inference`` (a compiled function cannot be
    traced)."""
    held = {m: m.__dict__.pop("atom_energies") for m in potential.modules() if "atom_energies" in m.__dict__}
    try:
        yield
    finally:
        for module, method in held.items():
            module.__dict__["atom_energies"] = method


class LayoutEvaluation(nn.Module):
    """The traced function (module docstring), evaluated eagerly by ``potential``, with forces
    differentiable in the weights when ``differentiable``; :attr:`extra_names` lists the extras
    after a call."""

    def __init__(self, potential: nn.Module, differentiable: bool = True):
        super().__init__()
        self.potential = potential
        self.differentiable = differentiable
        self.extra_names: list[str] = []

    def forward(self, z: Tensor, pos: Tensor, batch: Tensor, structures: Tensor, *layout: Tensor) -> tuple:
        pos = pos.detach().requires_grad_(True)
        inputs = LayoutStructures(
            z, pos, batch, structures.shape[0], layout=layout, pair_cutoff=self.potential.cutoff,
            scatter_only=self.differentiable,
        )  # fmt: skip
        with torch.enable_grad(), _class_atom_energies(self.potential):
            atom_energies = self.potential.atom_energies(inputs).reshape(-1)
            (gradient,) = torch.autograd.grad(atom_energies.sum(), pos, create_graph=self.differentiable)
        self.extra_names = sorted(inputs.extras)
        return (atom_energies, -gradient, *(inputs.extras[name] for name in self.extra_names))


def graph_inputs(structures: Structures, cutoff: float) -> tuple[Tensor, ...]:
    """The graph inputs (module docstring) of validated ``structures``: the neighbour list of
    ``cutoff`` is built (and checked) eagerly."""
    pairs = structures.pairs(cutoff)
    shifts = pairs.shifts if pairs.shifts is not None else torch.zeros_like(pairs.vec)
    empty = structures.pos.new_empty
    return (
        structures.z, structures.pos, structures.batch, empty(structures.n_structures, 0),
        pairs.edge_index, shifts.detach(), pairs.slot, pairs.reverse, pairs.canonical,
        pairs.from_canonical, empty(pairs.max_neighbours, 0),
    )  # fmt: skip


class CompiledEvaluation:
    """Compiled graphs of a potential's evaluation, one per pattern of small sizes: for training
    (``differentiable``, forces differentiable in the weights) or for inference.

    ``backend`` is ``torch.compile``'s (``"inductor"`` by default; ``"aot_eager"`` runs the same
    graphs uncompiled, e.g. to check them quickly).
    """

    def __init__(self, potential: nn.Module, backend: str = "inductor", differentiable: bool = True):
        self.evaluation = LayoutEvaluation(potential, differentiable)
        self.backend = backend
        self.graphs: dict[tuple, tuple[Callable[..., tuple], WeightedGraph, list[str]]] = {}

    @property
    def purpose(self) -> str:
        return "training" if self.evaluation.differentiable else "inference"

    def __deepcopy__(self, memo: dict) -> CompiledEvaluation:
        """A copy of a potential gets its own graphs, traced when it is first used."""
        potential = copy.deepcopy(self.evaluation.potential, memo)
        return CompiledEvaluation(potential, self.backend, self.evaluation.differentiable)

    def __call__(self, structures: Structures) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """``atom_energies [N]``, ``forces [N, 3]`` (for training differentiable in the weights)
        and the extras."""
        inputs = graph_inputs(structures, self.evaluation.potential.cutoff)
        sizes = (len(inputs[1]), len(inputs[3]), inputs[4].shape[1], len(inputs[8]), len(inputs[10]))
        small = (min(size, 2) for size in sizes)  # N, B, P, P/2, K below 2 are fixed by a trace
        key = (*small, inputs[1].dtype, inputs[1].device)
        if key not in self.graphs:
            self.graphs[key] = self._trace(inputs)
        compiled, weighted, names = self.graphs[key]
        with torch.set_grad_enabled(self.evaluation.differentiable):
            atom_energies, forces, *extras = compiled(*weighted.tensors(), *inputs)
        return atom_energies, forces, dict(zip(names, extras, strict=True))

    def _trace(self, inputs: tuple[Tensor, ...]) -> tuple[Callable[..., tuple], WeightedGraph, list[str]]:
        differentiable = self.evaluation.differentiable
        weighted = trace_with_weights(
            self.evaluation, inputs, differentiable=differentiable, frozen=False, purpose=self.purpose
        )
        names = list(self.evaluation.extra_names)
        compiled = torch.compile(weighted.graph, dynamic=True, backend=self.backend)
        try:
            self._check(lambda *args: compiled(*weighted.tensors(), *args), inputs)
        except UntraceableError:
            raise
        except Exception as error:  # the compiler fails in many ways; name the potential
            name = type(self.evaluation.potential).__name__
            raise UntraceableError(f"{name} cannot be compiled for {self.purpose}: {error}") from error
        return compiled, weighted, names

    def _check(self, compiled: Callable[..., tuple], inputs: tuple[Tensor, ...]) -> None:
        """Compare ``compiled`` with the eager evaluation on ``inputs`` (module docstring)."""
        differentiable = self.evaluation.differentiable
        weights = [p for p in self.evaluation.parameters() if p.requires_grad] if differentiable else []
        generator = torch.Generator().manual_seed(0)
        results = []
        for evaluate in (self.evaluation, compiled):
            with torch.set_grad_enabled(differentiable):
                outputs = evaluate(*inputs)
            gradients = []
            if weights:
                noise = [torch.randn(o.shape, generator=generator, dtype=o.dtype) for o in outputs]
                probe = sum((o * n.to(o.device)).sum() for o, n in zip(outputs, noise, strict=True))
                generator.manual_seed(0)
                gradients = torch.autograd.grad(probe, weights, allow_unused=True, materialize_grads=True)
            results.append([output.detach() for output in outputs] + list(gradients))
        dtype = inputs[1].dtype
        difference = largest_difference(results[1], results[0])
        if difference > TOLERANCE.get(dtype, 1e-3):
            name = type(self.evaluation.potential).__name__
            what = "values or weight gradients" if differentiable else "values"
            raise UntraceableError(
                f"{name} cannot be compiled for {self.purpose}: its traced graph differs from the "
                f"eager evaluation by {difference:.2g} (relative) in {what}"
            )
