"""Load weights of a hippynn ``Hipnn`` / ``HipnnVec`` / ``HipnnQuad`` / ``HipHopNNModule`` +
``HEnergy`` into :class:`HipNN` (``HipHopNNModule`` needs ``n_max``).

hippynn stores interaction weights as ``(ν, f_out, f_in)``, sensitivity parameters as
``(1, ν)`` and names the residual parts ``base_layer`` / ``res_layer`` / ``adjust_layer``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch
from torch import Tensor

from .model import HipNN

_RENAMES = [
    (r"\.base_layer\.int_weights$", ".layer.weight"),
    (r"\.base_layer\.vecscales$", ".layer.vector_scale"),
    (r"\.base_layer\.quadscales$", ".layer.quad_scale"),
    (r"\.base_layer\.selfint\.", ".layer.self_interaction."),
    (r"\.base_layer\.sensitivity\.", ".layer.sensitivity."),
    (r"\.base_layer\.", ".layer."),
    (r"\.res_layer\.", ".residual."),
    (r"\.adjust_layer\.", ".adjust."),
]


_CONSTANTS = re.compile(r"(^tensor_extractor\.|\.invars\.cmaps\.|_extra_state$)")
"""hippynn entries that are not weights: HIP-HOP-NN's fixed tensor maps (exact in :mod:`.hop`)."""


def _convert(name: str, value: Tensor) -> tuple[str, Tensor]:
    for pattern, replacement in _RENAMES:
        if re.search(pattern, name):
            name = re.sub(pattern, replacement, name)
            break
    if name.endswith(".layer.weight") and value.dim() == 3:
        value = value.permute(0, 2, 1)
    if ".sensitivity." in name:
        value = value.reshape(-1)
    return name, value


def hippynn_state_dict(
    net_state: Mapping[str, Tensor], energy_state: Mapping[str, Tensor]
) -> dict[str, Tensor]:
    """Translate hippynn's network and ``HEnergy`` state dicts to :class:`HipNN` names."""
    state = dict(_convert(k, v) for k, v in net_state.items() if not _CONSTANTS.search(k))
    for name, value in energy_state.items():
        state[name.replace("layers.", "energy_head.heads.", 1)] = value
    return state


def load_hippynn_weights(
    model: HipNN, net_state: Mapping[str, Tensor], energy_state: Mapping[str, Tensor]
) -> None:
    """Copy hippynn weights into ``model`` (same architecture); every tensor must be used."""
    with torch.no_grad():
        model.load_state_dict(hippynn_state_dict(net_state, energy_state), strict=True)
