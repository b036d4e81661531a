"""MACE (``mace-torch``) as a potential: ``e_i`` = MACE's node energy of atom ``i``.

:class:`MacePotential` builds ``mace.modules.ScaleShiftMACE`` (or ``MACE``) from plain YAML
arguments and evaluates its own forward on the package's pair list instead of MACE's neighbour
list. MACE takes an edge ``(sender j, receiver i)`` with the vector
``r_i − r_j + shift`` and sums messages at the receiver; the package's pair ``(source j,
target i)`` has ``vec = r_j − r_i (+ S)`` and sums at the target. So the edges are the pairs as
they are, with all positions zero and ``shift = −vec``, which makes MACE's vector exactly
``−vec`` with gradients through ``vec`` (periodic images and stress work as for every
potential; MACE uses positions for nothing else when it does not compute forces itself, and the
caller's positions are left alone). Per atom::

    e_i = E0(z_i) + scale · Σ_t readout_t(h_i^t) + shift

MACE's own ``E0`` are zero here: per-species reference energies are a
:class:`~pyg_hipts.potentials.ReferenceEnergies` term beside it in a
:class:`~pyg_hipts.potentials.SumPotential` (``configs/models/mace.yaml``), as for every model of
a comparison. When not given, ``avg_num_neighbors`` (the normalisation of MACE's messages) and
``scale`` are fitted from the training set as MACE's training script does: the mean number of
neighbours within ``r_max`` and the RMS of the force components (``shift`` stays 0: the
reference energies take the mean). Both are kept in the potential's state (MACE holds
``avg_num_neighbors`` as a plain attribute of each interaction block), so a copy that loads the
state, such as the EMA weights, and a checkpoint carry them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from pyg_hipts.potentials.base import Potential
from pyg_hipts.potentials.structures import Structures
from pyg_hipts.units import Units


def _import_mace() -> tuple[Any, Any]:
    """``e3nn.o3`` and ``mace.modules``, imported without changing how the process loads files.

    e3nn 0.4 (the version mace-torch requires) reads its constants with ``torch.load``'s
    default, weights-only, which refuses the ``slice`` objects in them unless they are allowed;
    ``mace`` sets ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` on import, which would make every later
    ``torch.load`` without ``weights_only`` unpickle arbitrary code. The variable is put back
    as it was.
    """
    before = os.environ.get(WEIGHTS_ONLY_SWITCH)
    try:
        with torch.serialization.safe_globals([slice]):
            from e3nn import o3
            from mace import modules
    finally:
        if before is None:
            os.environ.pop(WEIGHTS_ONLY_SWITCH, None)
        else:
            os.environ[WEIGHTS_ONLY_SWITCH] = before
    return o3, modules


WEIGHTS_ONLY_SWITCH = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"
o3, modules = _import_mace()

MODELS = {"ScaleShiftMACE": modules.ScaleShiftMACE, "MACE": modules.MACE}

FIT_FRAMES = 1000
"""At most this many training frames are used to fit ``avg_num_neighbors`` and ``scale``."""


class MacePotential(Potential):
    """MACE on the package's pairs (see the module docstring).

    Args:
        species: atomic numbers, the order of MACE's one-hot node attributes.
        r_max: cutoff (length unit). num_bessel, num_polynomial_cutoff: radial basis.
        max_ell: largest ℓ of the edge spherical harmonics.
        hidden_irreps: e.g. ``"64x0e + 64x1o"``. MLP_irreps: of the last readout.
        correlation: body order of the product basis minus one. num_interactions: layers.
        radial_MLP: hidden widths of the radial network.
        interaction, interaction_first: names in ``mace.modules.interaction_classes``.
        gate: name in ``mace.modules.gate_dict``. model: ``"ScaleShiftMACE"`` or ``"MACE"``.
        avg_num_neighbors, scale: fitted from the training data when ``None``.
        units: of positions and energies.
    """

    periodic = True

    def __init__(
        self,
        species: Sequence[int],
        r_max: float = 5.0,
        num_bessel: int = 8,
        num_polynomial_cutoff: int = 5,
        max_ell: int = 3,
        hidden_irreps: str = "64x0e + 64x1o",
        MLP_irreps: str = "16x0e",  # noqa: N803 (MACE's name)
        correlation: int = 3,
        num_interactions: int = 2,
        radial_MLP: Sequence[int] = (64, 64, 64),  # noqa: N803
        interaction: str = "RealAgnosticResidualInteractionBlock",
        interaction_first: str = "RealAgnosticInteractionBlock",
        gate: str = "silu",
        model: str = "ScaleShiftMACE",
        avg_num_neighbors: float | None = None,
        scale: float | None = None,
        units: Units | None = None,
    ) -> None:
        super().__init__(species, r_max, units)
        if model not in MODELS:
            raise ValueError(f"model must be one of {sorted(MODELS)}, got {model!r}")
        for name, table in (("interaction", interaction), ("interaction_first", interaction_first)):
            if table not in modules.interaction_classes:
                raise ValueError(f"{name} {table!r} is not one of {sorted(modules.interaction_classes)}")
        if gate not in modules.gate_dict:
            raise ValueError(f"gate {gate!r} is not one of {sorted(modules.gate_dict)}")
        arguments: dict[str, Any] = dict(
            r_max=float(r_max),
            num_bessel=num_bessel,
            num_polynomial_cutoff=num_polynomial_cutoff,
            max_ell=max_ell,
            interaction_cls=modules.interaction_classes[interaction],
            interaction_cls_first=modules.interaction_classes[interaction_first],
            num_interactions=num_interactions,
            num_elements=len(self.species),
            hidden_irreps=o3.Irreps(hidden_irreps),
            MLP_irreps=o3.Irreps(MLP_irreps),
            atomic_energies=torch.zeros(len(self.species)).numpy(),
            avg_num_neighbors=1.0 if avg_num_neighbors is None else float(avg_num_neighbors),
            atomic_numbers=list(self.species),
            correlation=correlation,
            gate=modules.gate_dict[gate],
            radial_MLP=list(radial_MLP),
        )
        if model == "ScaleShiftMACE":
            arguments.update(
                atomic_inter_scale=1.0 if scale is None else float(scale), atomic_inter_shift=0.0
            )
        elif scale is not None:
            raise ValueError("scale is an option of ScaleShiftMACE only")
        self.network = MODELS[model](**arguments)
        self.register_buffer("neighbour_normalisation", torch.tensor(arguments["avg_num_neighbors"]))

    def set_avg_num_neighbors(self, value: float) -> None:
        """Set the normalisation of MACE's messages (kept in the state, so copies, EMA weights
        and checkpoints carry it)."""
        if not value > 0:
            raise ValueError(f"avg_num_neighbors must be positive, got {value}")
        self.neighbour_normalisation.fill_(value)
        stored = float(self.neighbour_normalisation)  # the value every copy of the state gets
        for block in self.network.interactions:
            block.avg_num_neighbors = stored
        self.__dict__["_init_arguments"]["avg_num_neighbors"] = stored

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: Any) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args)
        if prefix + "neighbour_normalisation" in state_dict:
            self.set_avg_num_neighbors(float(state_dict[prefix + "neighbour_normalisation"]))
        if hasattr(self.network, "scale_shift"):
            self.__dict__["_init_arguments"]["scale"] = float(self.network.scale_shift.scale)

    def mace_inputs(self, structures: Structures) -> dict[str, Tensor]:
        """MACE's input dictionary on the package's pairs (``[N, S]`` one-hot node attributes,
        ``[2, P]`` edges, ``[P, 3]`` shifts; see the module docstring)."""
        pairs = structures.pairs(self.cutoff)
        pos = structures.pos
        one_hot = torch.nn.functional.one_hot(self.species_index(structures.z), len(self.species))
        n = structures.n_structures
        counts = torch.bincount(structures.batch, minlength=n)
        cell = structures.cell if structures.cell is not None else pos.new_zeros(n, 3, 3)
        return {
            "positions": pos.new_zeros(pos.shape),
            "node_attrs": one_hot.to(pos.dtype),
            "edge_index": pairs.edge_index,
            "shifts": -pairs.vec,
            "unit_shifts": pos.new_zeros(pairs.n_pairs, 3),
            "cell": cell,
            "batch": structures.batch,
            "ptr": torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)]),
        }

    def atom_energies(self, structures: Structures) -> Tensor:
        output = self.network(self.mace_inputs(structures), training=self.training, compute_force=False)
        return output["node_energy"].reshape(-1)

    def pre_fit(self, dataset: Any) -> None:
        recorded = self.__dict__["_init_arguments"]
        frames = [dataset[i] for i in range(min(len(dataset), FIT_FRAMES))]
        if not frames:
            raise ValueError("MacePotential.pre_fit: the training set is empty")
        if recorded["avg_num_neighbors"] is None:
            pairs = sum(self._pair_count(frame) for frame in frames)
            self.set_avg_num_neighbors(max(pairs / sum(int(frame.z.numel()) for frame in frames), 1.0))
        if recorded["scale"] is None and hasattr(self.network, "scale_shift") and "forces" in frames[0]:
            rms = float(
                torch.cat([frame.forces.reshape(-1) for frame in frames]).double().square().mean().sqrt()
            )
            self.network.scale_shift.scale.fill_(rms)
            recorded["scale"] = rms

    def _pair_count(self, frame: Any) -> int:
        """Number of directed pairs within ``r_max`` in one frame."""
        structures = self.structures(
            frame.z, frame.pos, None, getattr(frame, "cell", None), getattr(frame, "pbc", None)
        )
        return structures.pairs(self.cutoff).n_pairs
