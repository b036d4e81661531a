"""Residual wrapping and atom layers of a HIP-NN block."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn


class Residual(nn.Module):
    """``y = A x + W_r σ(layer(x, ...)) + b_r`` (``A`` = identity when widths match, else a
    bias-free linear map). With ``resnet=False`` the wrapper is just ``y = σ(layer(x, ...))``.

    Shapes: ``x [N, f_in] -> y [N, f_out]``; ``layer`` maps ``f_in -> f_middle``.
    """

    def __init__(
        self,
        layer: nn.Module,
        in_features: int,
        middle_features: int,
        out_features: int,
        activation: nn.Module,
        resnet: bool = True,
    ):
        super().__init__()
        self.layer, self.activation, self.resnet = layer, activation, resnet
        self.residual = nn.Linear(middle_features, out_features) if resnet else None
        needs_adjust = resnet and in_features != out_features
        self.adjust = nn.Linear(in_features, out_features, bias=False) if needs_adjust else None
        if not resnet and middle_features != out_features:
            raise ValueError("without the residual form the middle and output widths must match")

    def forward(self, x: Tensor, *args: Any) -> Tensor:
        middle = self.activation(self.layer(x, *args))
        if self.residual is None:
            return middle
        shortcut = x if self.adjust is None else self.adjust(x)
        return shortcut + self.residual(middle)

    def regularization_parameters(self) -> list[Tensor]:
        inner = getattr(self.layer, "regularization_parameters", None)
        params = inner() if inner is not None else [self.layer.weight]
        params += [m.weight for m in (self.residual, self.adjust) if m is not None]
        return params


def atom_layer(width: int, middle: int, activation: nn.Module, resnet: bool) -> Residual:
    """A dense atom layer ``f -> f`` (xavier-normal weights) in its residual wrapper."""
    dense = nn.Linear(width, middle)
    nn.init.xavier_normal_(dense.weight)
    return Residual(dense, width, middle, width, activation, resnet)
