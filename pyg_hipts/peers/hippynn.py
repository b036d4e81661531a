"""hippynn's HIP-NN networks (the reference implementation) as a potential.

:class:`HippynnPotential` holds one of hippynn's bare torch networks (``Hipnn``, ``HipnnVec``,
``HipnnQuad``: l = 0, 1, 2; ``HipHopNNModule``) and its hierarchical energy head ``HEnergy``::

    e_i = Σ_n e_i^(n),   e_i^(n) = w^(n) · x_i^(n) + b^(n)   (layer n's features x^(n))

hippynn's networks take their pairs ready-made: ``pair_first`` (the atom whose environment is
summed), ``pair_second`` and ``pair_coord = r_second − r_first``. They are the package's pairs:
``first`` the target ``i``, ``second`` the source ``j``, ``pair_coord`` = ``vec`` (periodic images
and strain included), sorted by ``first`` as hippynn's kernels expect. hippynn's own custom
kernels (numba where installed) are used as hippynn selects them. Its input features are the
one-hot species; hippynn's ``possible_species`` is ``[0, *species]`` (0 for padding).

:meth:`HippynnPotential.pre_fit` starts the head as hippynn's hierarchical energy
initialisation and :class:`pyg_hipts.nn.HipNN` do: the level-0 read-out (one weight per species)
holds the per-species reference energies fitted by least squares on the training energies, and
the read-outs of levels ``k ≥ 1`` are scaled by ``HIGHER_LEVEL_DECAY^(2^(k-1))``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from hippynn.layers.targets import HEnergy
from hippynn.networks.hipnn import Hipnn, HipnnQuad, HipnnVec
from torch import Tensor

from pyg_hipts.nn.model import start_from_reference_energies
from pyg_hipts.potentials.base import Potential
from pyg_hipts.potentials.structures import Structures
from pyg_hipts.units import Units


def _hiphop() -> type[torch.nn.Module]:
    with warnings.catch_warnings():  # hippynn warns that HIP-HOP-NN is a beta on import of the class
        warnings.simplefilter("ignore")
        from hippynn.networks.hiphop import HipHopNNModule
    return HipHopNNModule


NETWORKS: dict[str, type[torch.nn.Module]] = {
    "Hipnn": Hipnn,
    "HipnnVec": HipnnVec,
    "HipnnQuad": HipnnQuad,
    "HipHopNNModule": _hiphop(),
}
"""hippynn's network classes by name."""


class HippynnPotential(Potential):
    """hippynn's HIP-NN / HIP-NN-TS on the package's pairs (see the module docstring).

    Args:
        species: atomic numbers (>= 1).
        network: a name in :data:`NETWORKS`.
        n_features, n_sensitivities, dist_soft_min, dist_soft_max, dist_hard_max,
        n_interaction_layers, n_atom_layers: hippynn's arguments of the same names (lengths
            in the potential's unit; ``dist_hard_max`` is the cutoff).
        options: further keyword arguments of the network (e.g. ``sensitivity_type``,
            ``l_max`` / ``n_max`` of ``HipHopNNModule``).
        units: of positions and energies.
    """

    periodic = True

    def __init__(
        self,
        species: Sequence[int],
        network: str = "HipnnQuad",
        n_features: int = 64,
        n_sensitivities: int = 20,
        dist_soft_min: float = 0.85,
        dist_soft_max: float = 5.0,
        dist_hard_max: float = 5.5,
        n_interaction_layers: int = 2,
        n_atom_layers: int = 3,
        options: Mapping[str, Any] | None = None,
        units: Units | None = None,
    ) -> None:
        if network not in NETWORKS:
            raise ValueError(f"network must be one of {sorted(NETWORKS)}, got {network!r}")
        if min(int(z) for z in species) < 1:
            raise ValueError(
                f"hippynn reserves species 0 for padding; species must be >= 1, got {list(species)}"
            )
        super().__init__(species, dist_hard_max, units)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # HIP-HOP-NN's beta warning
            self.network = NETWORKS[network](
                n_features=n_features,
                n_sensitivities=n_sensitivities,
                dist_soft_min=dist_soft_min,
                dist_soft_max=dist_soft_max,
                dist_hard_max=dist_hard_max,
                n_interaction_layers=n_interaction_layers,
                n_atom_layers=n_atom_layers,
                possible_species=[0, *self.species],
                **dict(options or {}),
            )
        self.head = HEnergy(list(self.network.feature_sizes))
        self.takes_coordinates = network != "Hipnn"

    def atom_energies(self, structures: Structures) -> Tensor:
        pairs = structures.pairs(self.cutoff)
        second, first = pairs.edge_index
        one_hot = torch.nn.functional.one_hot(self.species_index(structures.z), len(self.species))
        arguments = (one_hot.to(structures.pos.dtype), first, second, pairs.dist)
        if self.takes_coordinates:
            arguments += (pairs.vec,)
        features = self.network(*arguments)
        _, atom_energies, *_ = self.head(features, structures.batch, structures.n_structures)
        return atom_energies.reshape(-1)

    def pre_fit(self, dataset: Any) -> None:
        start_from_reference_energies(list(self.head.layers), dataset, self.species)
