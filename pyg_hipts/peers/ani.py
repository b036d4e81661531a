"""An ANI model (``torchani``) as a potential, trained from scratch: ``e_i = NN_{z_i}(G_i)``.

:class:`AniPotential` holds torchani's ``AEVComputer`` (the atomic environment vector ``G_i``:
radial terms per neighbour species, angular terms per pair of neighbour species) and its
``ANINetworks`` (one network per element). The AEVs are computed by torchani from the package's
pairs (``AEVComputer.compute_from_neighbors``): each unordered pair once (``pairs.canonical``,
source ``j`` and target ``i``) with torchani's difference vector ``r_j − r_i (+ S)``, which is the
pair's ``vec``, so periodic images, stress and gradients are the package's. The whole batch is
one padded "molecule" of ``N`` atoms for torchani; pairs never cross structures, so each
structure's AEVs are its own.

The AEV parameters are in Å (data in another length unit are refused), and the species are
elements: each gets the network sizes of its element in the chosen preset (coarse-grained bead
types 1, 2, 3 would be treated as H, He, Li). Per-species
reference energies are a :class:`~pyg_hipts.potentials.ReferenceEnergies` term beside it
(``configs/models/ani.yaml``); torchani's own self energies are not used.
"""

from __future__ import annotations

from collections.abc import Sequence

from ase.data import chemical_symbols
from torch import Tensor
from torchani.aev import AEVComputer
from torchani.neighbors import Neighbors
from torchani.nn import ANINetworks

from pyg_hipts.potentials.base import Potential
from pyg_hipts.potentials.structures import Structures
from pyg_hipts.units import Units, length_in_angstrom

NETWORK_SIZES = {"ani1x": "like_1x", "ani2x": "like_2x"}
"""Names of torchani's per-element layer sizes (ANI-1x, ANI-2x)."""


class AniPotential(Potential):
    """An ANI potential on the package's pairs (see the module docstring).

    Args:
        species: atomic numbers (elements: ``z >= 1``).
        aev: torchani's AEV preset for both terms, ``"ani1x"`` (radial cutoff 5.2 Å, angular
            3.5 Å) or ``"ani2x"`` (5.1 Å, 3.5 Å).
        networks: per-element layer sizes of ``"ani1x"`` or ``"ani2x"`` (CELU, with biases).
        units: of positions and energies (positions in Å).
    """

    periodic = True

    def __init__(
        self, species: Sequence[int], aev: str = "ani1x", networks: str = "ani1x", units: Units | None = None
    ) -> None:
        if networks not in NETWORK_SIZES:
            raise ValueError(f"networks must be one of {sorted(NETWORK_SIZES)}, got {networks!r}")
        if not all(1 <= int(z) < len(chemical_symbols) for z in species):
            raise ValueError(
                f"ANI species are elements (atomic numbers 1 to {len(chemical_symbols) - 1}), "
                f"got {list(species)}"
            )
        computer = AEVComputer(radial=aev, angular=aev, num_species=len(species), strategy="pyaev")
        super().__init__(species, computer.radial.cutoff, units)
        self.aev_computer = computer
        symbols = [chemical_symbols[z] for z in self.species]
        self.networks = getattr(ANINetworks, NETWORK_SIZES[networks])(symbols, computer.out_dim)

    def atom_energies(self, structures: Structures) -> Tensor:
        if self.units is not None and length_in_angstrom(self.units.length) != 1.0:
            raise ValueError(
                f"AniPotential's AEVs are in Å; this potential's length unit is {self.units.length}"
            )
        pairs = structures.pairs(self.cutoff)
        half = pairs.canonical
        neighbours = Neighbors(pairs.edge_index[:, half], pairs.dist[half], pairs.vec[half])
        elements = self.species_index(structures.z).unsqueeze(0)
        aevs = self.aev_computer.compute_from_neighbors(elements, structures.pos.unsqueeze(0), neighbours)
        return self.networks(elements, aevs, atomic=True).reshape(-1)
