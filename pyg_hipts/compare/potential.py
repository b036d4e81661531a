"""A PyG atomistic model as a potential: reference energies, energies, forces by autograd.

``E_b = Σ_{i ∈ b} e⁰(z_i) + network(z, pos, batch)_b`` with frozen per-species reference
energies ``e⁰`` (least squares on the training set, as for HIP-NN), so every model learns the
same residual; forces are ``−∂E/∂pos``.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch
from torch_geometric.nn.models import DimeNet

from pyg_hipts.compare.graphs import dimenet_energy, use_project_graphs
from pyg_hipts.data.graph import validate_atoms
from pyg_hipts.nn import HipOutput
from pyg_hipts.nn.model import forces_of, structure_inputs
from pyg_hipts.nn.species import SpeciesIndex


def build_network(spec: dict[str, Any]) -> nn.Module:
    """``{"class_path": "torch_geometric.nn.models.SchNet", "init_args": {...}}`` -> the module."""
    if "class_path" not in spec or set(spec) - {"class_path", "init_args"}:
        raise ValueError(
            f"a network is {{class_path: ..., init_args: {{...}}}}, got keys {sorted(spec)}; from the "
            "command line give the whole dictionary, e.g. --model.init_args.network "
            "'{class_path: torch_geometric.nn.models.SchNet, init_args: {cutoff: 5.0}}'"
        )
    module_name, _, class_name = spec["class_path"].rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"cannot import {spec['class_path']!r}: {error}") from error
    return cls(**spec.get("init_args", {}))


class PygPotential(nn.Module):
    """Energies and forces of a PyG model (``SchNet``, ``DimeNet``/``DimeNetPlusPlus``,
    ``ViSNet`` or any ``network(z, pos, batch) -> [B, 1]``) on the project's radius graph.

    Args:
        network: the PyG model, predicting one value per structure (``out_channels=1``).
        species: atomic numbers the data holds (for the reference energies and input checks).
    """

    def __init__(self, network: nn.Module, species: Sequence[int]):
        super().__init__()
        self.network = network
        self.species = [int(s) for s in species]
        use_project_graphs(network)
        self.species_index = SpeciesIndex(self.species)
        self.register_buffer("reference_energies", torch.zeros(len(self.species), dtype=torch.float64))

    def set_reference_energies(self, per_species: Tensor, decay_factor: float = 1.0) -> None:
        """Per-species reference energies ``[n_species]``; ``decay_factor`` has no use here."""
        if per_species.numel() != len(self.species):
            raise ValueError(f"expected {len(self.species)} reference energies, got {per_species.numel()}")
        self.reference_energies.copy_(per_species.reshape(-1))

    def regularization_parameters(self) -> list[Tensor]:
        """Every weight matrix of the network (no biases)."""
        return [p for p in self.network.parameters() if p.dim() > 1]

    def network_energy(self, z: Tensor, pos: Tensor, batch: Tensor, n_structures: int) -> Tensor:
        """The network's own prediction ``[B, 1]``."""
        if isinstance(self.network, DimeNet):
            out = dimenet_energy(self.network, z, pos, batch, n_structures)
        else:
            out = self.network(z, pos, batch)
            out = out[0] if isinstance(out, tuple) else out
        if out.shape != (n_structures, 1):
            raise ValueError(
                f"{type(self.network).__name__} returned {list(out.shape)}; a potential needs "
                f"[{n_structures}, 1] (one energy per structure: out_channels=1)"
            )
        return out

    def predict(
        self,
        z: Tensor,
        pos: Tensor,
        batch: Tensor | None = None,
        *,
        forces: bool = True,
        create_graph: bool = False,
    ) -> HipOutput:
        """Energy ``[B, 1]`` (float64 sum of reference and network) and forces ``[N, 3]``."""
        batch = validate_atoms(z, pos, batch)
        z = z.long()
        index = self.species_index(z)
        if forces and not pos.requires_grad:
            pos = pos.detach().requires_grad_(True)
        n_structures = int(batch[-1]) + 1
        with torch.set_grad_enabled(forces or torch.is_grad_enabled()):
            learned = self.network_energy(z, pos, batch, n_structures)
            reference = torch.zeros(n_structures, 1, dtype=torch.float64, device=pos.device)
            reference = reference.index_add(0, batch, self.reference_energies[index].unsqueeze(1))
            energy = reference + learned.double()
            force = forces_of(learned, pos, create_graph) if forces else None
        empty = energy.new_zeros(n_structures, 1)
        return HipOutput(energy, force, atom_energies=None, level_energies=empty, hierarchicality=empty)

    def predict_data(self, data: Batch, *, forces: bool = True, create_graph: bool = False) -> HipOutput:
        return self.predict(*structure_inputs(data), forces=forces, create_graph=create_graph)

    def forward(self, z: Tensor, pos: Tensor, batch: Tensor | None = None) -> Tensor:
        """Energy per structure ``[B, 1]``."""
        return self.predict(z, pos, batch, forces=False).energy
