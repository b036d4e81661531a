"""A coarse-grained potential: fitted priors plus a HIP-NN-TS network for what they miss.

``E(x) = E_prior(x) + E_net(x)`` and ``F = −∂E/∂x``; trained on mapped forces only, the
network learns the force left after the priors.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor, nn
from torch_geometric.data import Batch

from pyg_hipts.cg.langevin import boltzmann_constant
from pyg_hipts.cg.pair_priors import PairRepulsion
from pyg_hipts.cg.priors import (
    FourierDihedralMaps,
    FourierDihedrals,
    HarmonicAngles,
    HarmonicBonds,
    PriorEnergy,
    Repulsion,
)
from pyg_hipts.data.graph import validate_atoms
from pyg_hipts.nn import HipNN, HipOutput
from pyg_hipts.nn.model import forces_of, periodic_inputs, structure_inputs
from pyg_hipts.train.module import MODEL_OPTIONS, PotentialModule


class PriorNetwork(nn.Module):
    """``network`` (a :class:`HipNN`) plus priors: ``prior`` (a :class:`PriorEnergy` over a
    fixed topology) and ``pair_prior`` (a :class:`PairRepulsion` over all close pairs), either
    of which may be ``None``.

    ``with_network=False`` leaves the network out of every prediction (see :meth:`priors_only`).
    """

    def __init__(
        self,
        network: HipNN,
        prior: PriorEnergy | None,
        pair_prior: PairRepulsion | None = None,
        with_network: bool = True,
    ):
        super().__init__()
        if prior is None and pair_prior is None:
            raise ValueError("a prior network needs a topology prior, a pair prior or both")
        self.network, self.prior, self.pair_prior = network, prior, pair_prior
        self.species = network.species
        self.with_network = with_network

    def priors_only(self) -> PriorNetwork:
        """The same priors without the network (sharing their modules), to see what it adds."""
        return PriorNetwork(self.network, self.prior, self.pair_prior, with_network=False)

    def prior_energy(
        self, z: Tensor, pos: Tensor, batch: Tensor, cell: Tensor | None, pbc: Tensor | None
    ) -> Tensor:
        """The priors' energy ``[B, 1]`` of a flat batch."""
        n_structures = int(batch[-1]) + 1
        energy = torch.zeros(n_structures, 1, dtype=pos.dtype, device=pos.device)
        if self.prior is not None:
            energy = energy + self.prior(pos, n_structures).to(pos.dtype)
        if self.pair_prior is not None:
            types = self.network.species_index(z)
            energy = energy + self.pair_prior(types, pos, batch, n_structures, cell, pbc).to(pos.dtype)
        return energy

    def set_reference_energies(self, per_species: Tensor, decay_factor: float = 1.0) -> None:
        self.network.set_reference_energies(per_species, decay_factor)

    def regularization_parameters(self) -> list[Tensor]:
        return self.network.regularization_parameters()

    def predict(
        self,
        z: Tensor,
        pos: Tensor,
        batch: Tensor | None = None,
        *,
        cell: Tensor | None = None,
        pbc: Tensor | None = None,
        forces: bool = True,
        create_graph: bool = False,
    ) -> HipOutput:
        """Total energy ``[B, 1]`` and forces; atom and level energies are the network's (without
        the network: no atom energies, and the prior energy as the only level)."""
        batch = validate_atoms(z, pos, batch)
        if forces and not pos.requires_grad:
            pos = pos.detach().requires_grad_(True)
        with torch.set_grad_enabled(forces or torch.is_grad_enabled()):
            energy = self.prior_energy(z, pos, batch, cell, pbc)
            if self.with_network:
                out = self.network.predict(z, pos, batch, cell=cell, pbc=pbc, forces=False)
                energy = out.energy + energy.to(out.energy.dtype)
            else:
                out = HipOutput(energy, None, None, energy, torch.zeros_like(energy))
            force = forces_of(energy, pos, create_graph) if forces else None
        return HipOutput(energy, force, out.atom_energies, out.level_energies, out.hierarchicality)

    def predict_data(self, data: Batch, *, forces: bool = True, create_graph: bool = False) -> HipOutput:
        return self.predict(
            *structure_inputs(data), **periodic_inputs(data), forces=forces, create_graph=create_graph
        )

    def forward(self, z: Tensor, pos: Tensor, batch: Tensor | None = None) -> Tensor:
        return self.predict(z, pos, batch, forces=False).energy


def prior_terms(
    bonds: list[list[int]] | None,
    angles: list[list[int]] | None,
    dihedrals: list[list[int]] | None,
    dihedral_maps: list[list[list[int]]] | None,
    repulsion_pairs: list[list[int]] | None,
    n_dihedral_terms: int,
    repulsion_power: int,
) -> list[nn.Module]:
    """Prior terms of a topology with placeholder parameters (filled by a fit or a checkpoint)."""
    terms: list[nn.Module] = []
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
    return terms


def fit_prior_terms(terms: list[nn.Module], pos: Tensor, thermal_energy: float) -> None:
    """Boltzmann-invert every term on samples ``pos [F, n, 3]`` and copy the result into it."""
    for term in terms:
        index = term.index.tolist()
        if isinstance(term, FourierDihedrals):
            fitted = FourierDihedrals.fit(pos, index, thermal_energy, n_terms=term.a.shape[1])
        elif isinstance(term, FourierDihedralMaps):
            fitted = FourierDihedralMaps.fit(pos, index, thermal_energy, n_terms=term.n_terms)
        elif isinstance(term, Repulsion):
            fitted = Repulsion.fit(pos, index, thermal_energy, term.power)
        else:
            fitted = type(term).fit(pos, index, thermal_energy)
        for name, buffer in fitted.named_buffers():
            getattr(term, name).copy_(buffer)


class CGPotentialModule(PotentialModule):
    """Force matching of a coarse-grained model: priors fitted by Boltzmann inversion on the
    training frames when fitting starts, plus a HIP-NN-TS network.

    Args:
        bonds, angles, dihedrals, repulsion_pairs: bead index tuples of each prior (0-based,
            within one structure; every structure has the same beads).
        dihedral_maps: pairs of dihedral quadruples ``[[i, j, k, l], [j, k, l, m]]`` with a joint
            two-dimensional Fourier prior (e.g. the backbone's φ and ψ).
        temperature: of the reference simulation, in kelvin (``kT`` in the data's energy unit).
        n_dihedral_terms: Fourier terms per dihedral (and per angle of a dihedral map).
        repulsion_power: ``p`` of ``(σ/r)^p``.
        pair_repulsion_cutoff: when given, a :class:`PairRepulsion` acts on every pair of beads
            closer than this (periodic images included; for liquids), fitted on the training
            frames like the other priors.
        pair_repulsion_power: its ``p``.
        species, model and training options: as :class:`~pyg_hipts.train.PotentialModule`
            (``energy_weight`` is unused: coarse-grained data has forces only).
    """

    def __init__(
        self,
        bonds: list[list[int]] | None = None,
        angles: list[list[int]] | None = None,
        dihedrals: list[list[int]] | None = None,
        dihedral_maps: list[list[list[int]]] | None = None,
        repulsion_pairs: list[list[int]] | None = None,
        temperature: float = 300.0,
        n_dihedral_terms: int = 3,
        repulsion_power: int = 6,
        pair_repulsion_cutoff: float | None = None,
        pair_repulsion_power: int = 12,
        **options: Any,
    ) -> None:
        if not (bonds or angles or dihedrals or dihedral_maps or repulsion_pairs or pair_repulsion_cutoff):
            raise ValueError("a coarse-grained model needs at least one prior term")
        super().__init__(**options)

    def make_model(self, species: list[int]) -> nn.Module:
        hp = self.hparams
        terms = prior_terms(
            hp.bonds,
            hp.angles,
            hp.dihedrals,
            hp.dihedral_maps,
            hp.repulsion_pairs,
            hp.n_dihedral_terms,
            hp.repulsion_power,
        )
        network = HipNN(species, **{name: hp[name] for name in MODEL_OPTIONS})
        prior = None
        if terms:
            prior = PriorEnergy(terms, n_beads=1 + max(int(term.index.max()) for term in terms))
        pair_prior = None
        if hp.pair_repulsion_cutoff:
            cutoff = hp.pair_repulsion_cutoff
            placeholder = torch.full((len(species), len(species)), 0.5 * cutoff)
            pair_prior = PairRepulsion(placeholder.tolist(), 0.0, cutoff, hp.pair_repulsion_power)
        return PriorNetwork(network, prior, pair_prior)

    def on_fit_start(self) -> None:
        """Fit the priors on the training frames (unless resuming), then the base class's start."""
        super().on_fit_start()
        if self.trainer.ckpt_path is not None:
            return
        frames = self.trainer.datamodule.train_dataset
        thermal_energy = boltzmann_constant(self.units.energy) * self.hparams.temperature
        if self.model.prior is not None:
            pos = torch.stack([frame.pos for frame in frames]).double()
            fit_prior_terms(list(self.model.prior.terms), pos, thermal_energy)
        if self.model.pair_prior is not None:
            self.fit_pair_prior(frames, thermal_energy)
        if self.ema_model is not None:
            self.ema_model.load_state_dict(self.model.state_dict())
        rank_zero_info(
            f"Priors fitted by Boltzmann inversion on {len(frames)} frames at kT = {thermal_energy:.4g}"
        )

    def fit_pair_prior(self, frames, thermal_energy: float) -> None:
        """Fit the pair repulsion on the training ``frames`` and copy it into the model."""
        model = self.model
        species_index = model.network.species_index
        fitted = PairRepulsion.fit(
            (
                (species_index(frame.z), frame.pos, getattr(frame, "cell", None), getattr(frame, "pbc", None))
                for frame in frames
            ),
            n_types=len(model.species),
            thermal_energy=thermal_energy,
            cutoff=model.pair_prior.cutoff,
            power=model.pair_prior.power,
        )
        for name, buffer in fitted.named_buffers():
            getattr(model.pair_prior, name).copy_(buffer)
