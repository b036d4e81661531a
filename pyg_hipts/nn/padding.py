"""Moving rows between a list and distinct slots of a padded array, differentiable to any order.

``place(values [P, ...], index [P], size) -> [size, ...]`` puts row ``p`` at ``index[p]`` (zeros
elsewhere); ``take(array [S, ...], index [P]) -> [P, ...]`` reads rows ``index[p]``;
``swap(x [S, ...], involution [S])`` reads rows ``involution[s]`` for a permutation that is its own
inverse. With the entries of ``index`` distinct, ``place`` and ``take`` are each other's adjoint
and ``swap`` is its own, so each backward pass is one of the three again; each is linear, so its
forward-mode derivative (``jvp``) is the same move of the tangent. Autograd's own
backward of a row gather is a scatter-add (``index_put`` with accumulation), which cannot assume
distinct indices: on CPU, and in compiled graphs where it becomes atomic adds, it costs several
times the gather. The neighbour-list layout (:class:`~pyg_hipts.data.graph.PairList`) gives every
pair its own slot, so the padded message passing moves its per-pair rows through these
functions, in the forward pass and in every backward pass of a force-trained model.

``scatter_only=True`` writes every move as a scatter of distinct rows (``index_put`` into zeros),
for graphs that ATen's derivative formulas differentiate again (a traced training graph,
:mod:`~pyg_hipts.potentials.compiled_evaluation`, :attr:`PairList.scatter_only
<pyg_hipts.data.graph.PairList>`): the derivative of such a scatter is a gather, where a
gather's would be a scatter-add. Eagerly, gathers use ``index_select``, on CPU several
times faster than advanced indexing for the same rows.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


def _scatter(values: Tensor, index: Tensor, size: int) -> Tensor:
    """``out [size, ...]``, ``out[index[p]] = values[p]``, zeros elsewhere."""
    return values.new_zeros(size, *values.shape[1:]).index_put((index,), values)


def _gather(array: Tensor, index: Tensor, scatter_only: bool) -> Tensor:
    """``array[index]``; with ``scatter_only`` as a scatter through the inverse of ``index``
    (rows of ``array`` that ``index`` does not read go to an extra row, dropped)."""
    if not scatter_only:
        return array.index_select(0, index)
    n_rows = index.shape[0]
    inverse = torch.full((array.shape[0],), n_rows, dtype=index.dtype, device=index.device)
    inverse = inverse.index_put((index,), torch.arange(n_rows, dtype=index.dtype, device=index.device))
    return _scatter(array, inverse, n_rows + 1)[:n_rows]


class _Place(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(values: Tensor, index: Tensor, size: int, scatter_only: bool) -> Tensor:
        return _scatter(values, index, size)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: Tensor) -> None:
        _, index, ctx.size, ctx.scatter_only = inputs
        ctx.save_for_backward(index)
        ctx.save_for_forward(index)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        (index,) = ctx.saved_tensors
        return take(grad, index, ctx.scatter_only), None, None, None

    @staticmethod
    def jvp(ctx: Any, tangent: Tensor, *_: Any) -> Tensor:
        (index,) = ctx.saved_tensors
        return place(tangent, index, ctx.size, ctx.scatter_only)


class _Take(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(array: Tensor, index: Tensor, scatter_only: bool) -> Tensor:
        return _gather(array, index, scatter_only)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: Tensor) -> None:
        array, index, ctx.scatter_only = inputs
        ctx.size = array.shape[0]
        ctx.save_for_backward(index)
        ctx.save_for_forward(index)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        (index,) = ctx.saved_tensors
        return place(grad, index, ctx.size, ctx.scatter_only), None, None

    @staticmethod
    def jvp(ctx: Any, tangent: Tensor, *_: Any) -> Tensor:
        (index,) = ctx.saved_tensors
        return take(tangent, index, ctx.scatter_only)


class _Swap(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor, involution: Tensor, scatter_only: bool) -> Tensor:
        if scatter_only:  # x[σ] = scatter of x to σ, as σ⁻¹ = σ
            return _scatter(x, involution, x.shape[0])
        return x.index_select(0, involution)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: Tensor) -> None:
        _, involution, ctx.scatter_only = inputs
        ctx.save_for_backward(involution)
        ctx.save_for_forward(involution)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        (involution,) = ctx.saved_tensors
        return swap(grad, involution, ctx.scatter_only), None, None

    @staticmethod
    def jvp(ctx: Any, tangent: Tensor, *_: Any) -> Tensor:
        (involution,) = ctx.saved_tensors
        return swap(tangent, involution, ctx.scatter_only)


def place(values: Tensor, index: Tensor, size: int, scatter_only: bool = False) -> Tensor:
    """``out [size, ...]`` with ``out[index[p]] = values[p]`` and zeros elsewhere; the entries of
    ``index [P]`` must be distinct (not checked)."""
    return _Place.apply(values, index, size, scatter_only)


def take(array: Tensor, index: Tensor, scatter_only: bool = False) -> Tensor:
    """``array[index]`` ``[P, ...]`` for distinct entries of ``index [P]`` (not checked)."""
    return _Take.apply(array, index, scatter_only)


def swap(x: Tensor, involution: Tensor, scatter_only: bool = False) -> Tensor:
    """``x[involution]`` for a permutation ``involution [S]`` of the rows of ``x [S, ...]`` that is
    its own inverse (not checked)."""
    return _Swap.apply(x, involution, scatter_only)
