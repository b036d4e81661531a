"""The priors of a fixed topology (a molecule's bonds, angles, dihedrals) as a
:class:`~pyg_hipts.potentials.Potential`.

Every structure has the same ``n`` beads in the same order, and the terms of :mod:`.priors` act
on bead tuples ``τ`` of it: ``E_b = Σ_τ U_τ(x_b)``. Each tuple's energy is spread equally over its
distinct beads, ``e_i = Σ_{τ ∋ i} U_τ / |τ|``, so the per-bead energies sum to the energy exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor, nn
from torch_geometric.data import Batch

from pyg_hipts.cg.priors import (
    FourierDihedralMaps,
    FourierDihedrals,
    HarmonicAngles,
    HarmonicBonds,
    PriorTerm,
    Repulsion,
    fitting_temperature,
)
from pyg_hipts.potentials import Potential, Structures
from pyg_hipts.units import Units, boltzmann_constant


def spread(energies: Tensor, beads: Tensor, n_beads: int) -> Tensor:
    """``[B, n]`` per-bead shares of tuple energies ``[B, T]``: each tuple's energy divided equally
    among its distinct beads ``beads [T, k]``."""
    members = torch.zeros(beads.shape[0], n_beads, dtype=energies.dtype, device=energies.device)
    members.scatter_(1, beads, 1.0)
    return energies @ (members / members.sum(1, keepdim=True))


def _periodic(structures: Structures) -> tuple[Tensor | None, Tensor | None]:
    """``(cell, pbc)`` of periodic structures, ``(None, None)`` of molecules."""
    return (structures.cell, structures.pbc) if structures.periodic else (None, None)


class TopologyPrior(Potential):
    """Fixed-topology priors (see the module docstring) with parameters fitted by Boltzmann
    inversion in :meth:`pre_fit`.

    The parameters start as placeholders (zero energy) and are float64 buffers, saved with the
    weights. Periodic structures are supported: bead-to-bead vectors are minimum images
    (:func:`~pyg_hipts.cg.priors.displacements`), so a molecule may be wrapped across the
    boundary, as long as its bonded vectors are shorter than half the cell's smallest width.

    Args:
        species: bead types of the structures (the terms do not depend on them).
        bonds, angles, dihedrals, repulsion_pairs: bead index tuples of each term (0-based,
            within one structure).
        dihedral_maps: pairs of dihedral quadruples ``[[i, j, k, l], [j, k, l, m]]`` with a joint
            two-dimensional Fourier prior (e.g. the backbone's φ and ψ).
        temperature: of the reference simulation, in kelvin (``kT`` in the data's energy unit); by
            default the one the training data record (:func:`~pyg_hipts.cg.priors.fitting_temperature`).
        n_dihedral_terms: Fourier terms ``M`` per dihedral (and per angle of a dihedral map).
        repulsion_power: ``p`` of ``ε (σ/r)^p``.
        units: of positions and energies (set from the training data).
    """

    def __init__(
        self,
        species: Sequence[int],
        bonds: Sequence[Sequence[int]] | None = None,
        angles: Sequence[Sequence[int]] | None = None,
        dihedrals: Sequence[Sequence[int]] | None = None,
        dihedral_maps: Sequence[Sequence[Sequence[int]]] | None = None,
        repulsion_pairs: Sequence[Sequence[int]] | None = None,
        temperature: float | None = None,
        n_dihedral_terms: int = 3,
        repulsion_power: int = 6,
        units: Units | None = None,
    ) -> None:
        super().__init__(species, 0.0, units)
        terms: list[PriorTerm] = []
        if bonds:
            terms.append(HarmonicBonds(bonds, [0.0] * len(bonds), [1.0] * len(bonds)))
        if angles:
            terms.append(HarmonicAngles(angles, [0.0] * len(angles), [1.0] * len(angles)))
        if dihedrals:
            zeros = np.zeros((len(dihedrals), n_dihedral_terms))
            terms.append(FourierDihedrals(dihedrals, zeros, zeros))
        if dihedral_maps:
            size = 2 * n_dihedral_terms + 1
            terms.append(FourierDihedralMaps(dihedral_maps, np.zeros((len(dihedral_maps), size, size))))
        if repulsion_pairs:
            terms.append(Repulsion(repulsion_pairs, [1.0] * len(repulsion_pairs), 0.0, repulsion_power))
        if not terms:
            raise ValueError("a topology prior needs at least one term (bonds, angles, dihedrals, ...)")
        if temperature is not None and temperature <= 0:
            raise ValueError(f"temperature must be > 0 K, got {temperature}")
        self.terms = nn.ModuleList(terms)
        self.temperature = None if temperature is None else float(temperature)
        self.min_beads = 1 + max(int(term.index.max()) for term in terms)

    def check_structures(self, structures: Structures) -> None:
        """Structures of one topology: ``n ≥ min_beads`` beads each."""
        counts = torch.bincount(structures.batch, minlength=structures.n_structures)
        n = structures.n_atoms // structures.n_structures
        if bool((counts != n).any()) or n < self.min_beads:
            raise ValueError(
                f"{type(self).__name__} needs structures of one topology with at least {self.min_beads} "
                f"beads each; got bead counts {sorted(set(counts.tolist()))}"
            )

    def stacked(self, structures: Structures) -> Tensor:
        """``pos [B, n, 3]`` of structures of ``n`` beads each (:meth:`check_structures`)."""
        n = structures.n_atoms // structures.n_structures
        return structures.pos.view(structures.n_structures, n, 3)

    def atom_energies(self, structures: Structures) -> Tensor:
        pos, (cell, pbc) = self.stacked(structures), _periodic(structures)
        energies = sum(spread(term.energies(pos, cell, pbc), term.beads, pos.shape[1]) for term in self.terms)
        return energies.reshape(-1)

    def pre_fit(self, dataset: Any) -> None:
        """Boltzmann inversion of every term on the frames of ``dataset`` at
        ``kT = k_B · temperature`` in the data's energy unit (see :mod:`.priors`), weighted by
        the frames' ``frame_weight`` when the data carry them."""
        self.temperature = fitting_temperature(self.temperature, dataset, type(self).__name__)
        thermal_energy = boltzmann_constant(dataset.units.energy) * self.temperature
        frames = Batch.from_data_list(list(dataset))
        cell, pbc = getattr(frames, "cell", None), getattr(frames, "pbc", None)
        structures = self.structures(frames.z, frames.pos.double(), frames.batch, cell, pbc)
        pos, (cell, pbc) = self.stacked(structures), _periodic(structures)
        weights = getattr(frames, "frame_weight", None)
        for term in self.terms:
            term.fit_in_place(pos, thermal_energy, cell, pbc, weights)
        rank_zero_info(
            f"Topology priors fitted by Boltzmann inversion on {len(pos)} "
            f"{'weighted ' if weights is not None else ''}frames at "
            f"kT = {thermal_energy:.4g} {dataset.units.energy}"
        )
