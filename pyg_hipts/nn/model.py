"""HIP-NN / HIP-NN-TS: ``forward(z, pos, batch) -> energy [B, 1]``, like PyG's ``SchNet``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch

from ..data.graph import PairList, build_pair_list, validate_atoms
from ..data.periodic import neighbour_pairs
from .energy import HierarchicalEnergy
from .interaction import HipInteraction
from .layers import Residual, atom_layer
from .species import SpeciesIndex
from .strain import apply_strain, stress_from_strain_gradient, zero_strain


def forces_of(energy: Tensor, pos: Tensor, create_graph: bool = False) -> Tensor:
    """``F = −∂(Σ_b E_b)/∂pos`` ``[N, 3]``; ``create_graph`` keeps it differentiable (force losses)."""
    (grad,) = torch.autograd.grad(
        energy.sum(), pos, create_graph=create_graph, retain_graph=create_graph, materialize_grads=True
    )
    return -grad


def structure_inputs(data: Batch) -> tuple[Tensor, Tensor, Tensor | None]:
    """``(z, pos, batch)`` of a PyG ``Data`` / ``Batch``; ``batch`` is ``None`` for one structure."""
    return data.z, data.pos, getattr(data, "batch", None)


def periodic_inputs(data: Batch) -> dict[str, Tensor | None]:
    """``cell`` and ``pbc`` of a PyG ``Data`` / ``Batch`` (``None`` when absent), as keywords."""
    return {"cell": getattr(data, "cell", None), "pbc": getattr(data, "pbc", None)}


@dataclass
class HipOutput:
    """Predictions for ``B`` structures with ``N`` atoms in total.

    Attributes:
        energy: ``[B, 1]``. forces: ``[N, 3]`` ``= -∂E/∂pos`` (``None`` unless asked for).
        atom_energies: ``[N, 1]`` (``None`` for models without them).
        level_energies: ``[B, L + 1]``. hierarchicality: ``[B, 1]``.
        stress: ``[B, 3, 3]`` ``= (1/V) ∂E/∂ε`` (``None`` unless asked for), see :mod:`.strain`.
    """

    energy: Tensor
    forces: Tensor | None
    atom_energies: Tensor | None
    level_energies: Tensor
    hierarchicality: Tensor
    stress: Tensor | None = None


class HipNN(nn.Module):
    """Hierarchically Interacting Particle Neural Network with tensor sensitivity.

    Hyper-parameter names follow hippynn's ``Hipnn``:

    Args:
        species: atomic numbers (or bead types) the model knows; input ``z`` outside this list
            is an error. Features start as the one-hot encoding of the position in this list.
        n_features: width of every interaction block.
        n_sensitivities: number of distance sensitivities ``ν``.
        dist_soft_min, dist_soft_max: innermost and outermost sensitivity centres.
        dist_hard_max: cutoff radius of the radius graph and of the sensitivities.
        n_interaction_layers: number of blocks (interaction + atom layers).
        n_atom_layers: dense layers after each interaction.
        l_max: tensor sensitivity order: 0 = HIP-NN, 1 = vectors, 2 = vectors and quadrupoles.
        resnet: residual form of every layer (hippynn's default).
        cusp_reg: ``ε`` inside the tensor norms.
        tensor_invariants: ``"norms"`` (HIP-NN-TS: ``‖b‖`` and ``‖c‖`` per channel) or
            ``"complete"`` (adds ``bᵀcb``, ``tr c³``, ``‖cb‖²``, divided by the norms; ``l_max = 2``), see
            :mod:`.interaction`.
        sensitivity_type: ``"inverse"`` (Gaussians in ``1/d``) or ``"gaussian"`` (in ``d``).
        trainable_sensitivities: let the optimiser move the sensitivity centres and widths
            (hippynn's default). Freezing them keeps the radial functions as wide as they start
            (trained on 1000 rMD17 frames, the widths of 10 Gaussians in ``d`` shrink from 0.4 Å
            to 0.13–0.3 Å).
        fused: evaluate interactions with padded batched products (fast) instead of PyG's
            gather / scatter path (same numbers).
        trainable_reference_energies: let the optimiser move the per-species reference energies
            (level 0). Off by default, as in hippynn: they are large (≈ 10⁴ kcal/mol per atom), a
            float32 step rounds to their last bit, and an average of the weights cannot follow them.
    """

    def __init__(
        self,
        species: Sequence[int],
        n_features: int = 64,
        n_sensitivities: int = 20,
        dist_soft_min: float = 0.75,
        dist_soft_max: float = 5.5,
        dist_hard_max: float = 6.5,
        n_interaction_layers: int = 2,
        n_atom_layers: int = 3,
        l_max: int = 2,
        resnet: bool = True,
        cusp_reg: float = 1e-6,
        tensor_invariants: str = "norms",
        sensitivity_type: str = "inverse",
        trainable_sensitivities: bool = True,
        fused: bool = True,
        trainable_reference_energies: bool = False,
    ):
        super().__init__()
        species = [int(s) for s in species]
        if not species or len(set(species)) != len(species) or min(species) < 0:
            raise ValueError(f"species must be distinct non-negative integers, got {species}")
        self.species = species
        self.dist_hard_max, self.l_max, self.fused = dist_hard_max, l_max, fused
        self.species_index = SpeciesIndex(species)
        self.activation = nn.Softplus()
        widths = [len(species)] + [n_features] * n_interaction_layers
        self.blocks = nn.ModuleList()
        for width_in, width_out in zip(widths[:-1], widths[1:], strict=True):
            interaction = HipInteraction(
                width_in,
                width_out,
                n_sensitivities,
                dist_soft_min,
                dist_soft_max,
                dist_hard_max,
                l_max,
                sensitivity_type,
                cusp_reg,
                tensor_invariants,
            )
            interaction.sensitivity.requires_grad_(trainable_sensitivities)
            layers = [Residual(interaction, width_in, width_out, width_out, self.activation, resnet)]
            layers += [
                atom_layer(width_out, width_out, self.activation, resnet) for _ in range(n_atom_layers)
            ]
            self.blocks.append(nn.ModuleList(layers))
        self.energy_head = HierarchicalEnergy(widths)
        self.energy_head.heads[0].weight.requires_grad_(trainable_reference_energies)

    @property
    def interactions(self) -> list[HipInteraction]:
        return [block[0].layer for block in self.blocks]

    def one_hot(self, z: Tensor, dtype: torch.dtype) -> Tensor:
        """``z [N] -> [N, n_species]``; raises on species the model does not know."""
        return nn.functional.one_hot(self.species_index(z), len(self.species)).to(dtype)

    def pairs(
        self, pos: Tensor, batch: Tensor, cell: Tensor | None = None, pbc: Tensor | None = None
    ) -> PairList:
        """Radius graph of the batch with geometry that carries gradients to ``pos``.

        With ``cell [B, 3, 3]`` and ``pbc [B, 3]`` periodic images are included (vesin).
        """
        edge_index, shifts, images = neighbour_pairs(pos, batch, self.dist_hard_max, cell, pbc)
        pairs = build_pair_list(pos, edge_index, shifts, images)
        self.interactions[0].sensitivity.warn_if_too_close(pairs.dist)
        return pairs

    def features(self, z: Tensor, pos: Tensor, pairs: PairList) -> list[Tensor]:
        """Features of every level ``[x⁰ = one-hot, x¹, ..., x^L]``, each ``[N, f_k]``."""
        x = self.one_hot(z, pos.dtype)
        levels = [x]
        for block in self.blocks:
            x = block[0](x, pairs, self.fused)
            for layer in block[1:]:
                x = layer(x)
            levels.append(x)
        return levels

    def forward(self, z: Tensor, pos: Tensor, batch: Tensor | None = None) -> Tensor:
        """Energy per structure ``[B, 1]``."""
        return self.predict(z, pos, batch, forces=False).energy

    def predict(
        self,
        z: Tensor,
        pos: Tensor,
        batch: Tensor | None = None,
        *,
        cell: Tensor | None = None,
        pbc: Tensor | None = None,
        forces: bool = True,
        stress: bool = False,
        create_graph: bool = False,
    ) -> HipOutput:
        """Energies, forces ``-∂E/∂pos`` and stress ``(1/V) ∂E/∂ε`` by autograd when asked for.

        ``cell [B, 3, 3]`` (rows = lattice vectors) and ``pbc [B, 3]`` make the structures
        periodic; ``stress`` needs them. Use ``create_graph=True`` when a loss on the forces is
        to be back-propagated.
        """
        batch = validate_atoms(z, pos, batch)
        z = z.long()
        if (forces or stress) and not pos.requires_grad:
            pos = pos.detach().requires_grad_(True)
        n_structures = int(batch[-1]) + 1
        with torch.set_grad_enabled(forces or stress or torch.is_grad_enabled()):
            strain = None
            strained_pos, strained_cell = pos, cell
            if stress:
                strain = zero_strain(cell, pbc, n_structures)
                strained_pos, strained_cell = apply_strain(pos, cell, batch, strain)
            pairs = self.pairs(strained_pos, batch, strained_cell, pbc)
            levels = self.features(z, strained_pos, pairs)
            energies = self.energy_head(levels, batch, n_structures)
            wrt = ([pos] if forces else []) + ([strain] if stress else [])
            grads = []
            if wrt:
                grads = torch.autograd.grad(
                    energies.energy.sum(),
                    wrt,
                    create_graph=create_graph,
                    retain_graph=create_graph,
                    allow_unused=True,
                    materialize_grads=True,
                )
            force = -grads[0] if forces else None
            stress_tensor = stress_from_strain_gradient(grads[-1], cell) if stress else None
        return HipOutput(
            energies.energy,
            force,
            energies.atom_energies,
            energies.level_energies,
            energies.hierarchicality,
            stress_tensor,
        )

    def predict_data(
        self, data: Batch, *, forces: bool = True, stress: bool = False, create_graph: bool = False
    ) -> HipOutput:
        """:meth:`predict` on a PyG ``Data`` / ``Batch`` (``z``, ``pos``, ``batch``, ``cell``, ``pbc``)."""
        return self.predict(
            *structure_inputs(data),
            **periodic_inputs(data),
            forces=forces,
            stress=stress,
            create_graph=create_graph,
        )

    def set_reference_energies(self, per_species: Tensor, decay_factor: float = 1.0) -> None:
        """Per-species reference energies ``[n_species]`` (order of ``species``) into level 0.

        ``decay_factor < 1`` also shrinks the higher-level read-outs (hippynn uses ``1e-2`` when a
        model starts training), see :meth:`HierarchicalEnergy.set_reference_energies`.
        """
        if per_species.numel() != len(self.species):
            raise ValueError(f"expected {len(self.species)} reference energies, got {per_species.numel()}")
        self.energy_head.set_reference_energies(per_species, decay_factor)

    def regularization_parameters(self) -> list[Tensor]:
        """Weights penalised by an L2 term (interaction, self-interaction, dense, residual)."""
        params = []
        for block in self.blocks:
            for layer in block:
                params += layer.regularization_parameters()
        return params
