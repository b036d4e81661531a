"""The contract every model of the package implements: :class:`Potential`.

A potential maps a batch of structures to per-atom energies ``e_i``; everything else follows in
one place, :meth:`Potential.predict`:

- validate the inputs (shapes, dtypes, finite values, known species, sorted ``batch``);
- neighbour pairs on demand, molecular or periodic (:class:`~.structures.Structures`);
- the energy of structure ``b``, ``E_b = Σ_{i ∈ b} e_i``, summed in float64;
- forces ``F = −∂E/∂pos`` ``[N, 3]``, stress ``σ = (1/V) ∂E/∂ε`` and virial ``W = −∂E/∂ε``
  ``[B, 3, 3]`` by autograd through a homogeneous strain ``ε`` (:mod:`pyg_hipts.nn.strain`),
  each only when asked for.

A subclass implements :meth:`Potential.atom_energies` and, when it depends on data,
:meth:`Potential.pre_fit`. Every potential carries its metadata: ``species``, ``cutoff``,
``units`` (of its inputs and outputs; ``None`` until trained on data) and the class path and
arguments it was built with (:meth:`Potential.spec`), from which
:func:`~pyg_hipts.potentials.io.load_potential` rebuilds it without executing pickled code.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import types
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch

from pyg_hipts.data.dataset import MIN_DISTANCE_ANGSTROM
from pyg_hipts.data.graph import validate_atoms
from pyg_hipts.potentials.compiled_evaluation import CompiledEvaluation
from pyg_hipts.potentials.species import SpeciesIndex
from pyg_hipts.potentials.strain import apply_strain, stress_from_strain_gradient, zero_strain
from pyg_hipts.potentials.structures import Structures
from pyg_hipts.potentials.tracing import UntraceableError
from pyg_hipts.units import Units, length_factor

PROPERTIES = ("energy", "atom_energies", "forces", "stress", "virial")
"""What :meth:`Potential.predict` can return; :meth:`Potential.supports` says which a potential does."""


@dataclass
class PotentialOutput:
    """Predictions for ``B`` structures with ``N`` atoms in total (in the potential's units).

    Attributes:
        energy: ``[B, 1]`` float64. atom_energies: ``[N, 1]`` (``Σ_{i ∈ b} e_i = E_b``).
        forces: ``[N, 3]`` (``None`` unless asked for).
        stress, virial: ``[B, 3, 3]`` (``None`` unless asked for).
        extras: further per-structure outputs some potentials report, by name (e.g.
            ``hierarchicality`` ``[B, 1]`` of HIP-NN, ``energy_std`` of an ensemble).
    """

    energy: Tensor
    atom_energies: Tensor
    forces: Tensor | None = None
    stress: Tensor | None = None
    virial: Tensor | None = None
    extras: dict[str, Tensor] = field(default_factory=dict)


def class_path(cls: type) -> str:
    """``"package.module.Class"`` of a class."""
    return f"{cls.__module__}.{cls.__qualname__}"


def _record_init(init: Callable[..., None]) -> Callable[..., None]:
    """Wrap a subclass's ``__init__`` so that the outermost call records its arguments."""
    signature = inspect.signature(init)

    @functools.wraps(init)
    def recording_init(self: Potential, *args: Any, **kwargs: Any) -> None:
        if "_init_arguments" not in self.__dict__:
            bound = signature.bind(self, *args, **kwargs)
            bound.apply_defaults()
            arguments = dict(bound.arguments)
            arguments.pop("self")
            for name, parameter in signature.parameters.items():
                if parameter.kind is inspect.Parameter.VAR_KEYWORD:
                    arguments.update(arguments.pop(name))
            self.__dict__["_init_arguments"] = arguments
        init(self, *args, **kwargs)

    return recording_init


class Potential(nn.Module, ABC):
    """Base class of every potential (see the module docstring).

    Args:
        species: atomic numbers (or bead types) the potential knows; others are an error.
        cutoff: the largest distance at which two atoms interact (length unit); ``0`` for
            potentials without pairs (e.g. per-species reference energies).
        units: units of positions and energies; usually set from the training data.

    Class attributes a subclass may change: ``periodic`` (whether it accepts periodic cells),
    ``reports`` (names of the extra outputs it records), ``fits_energies`` (whether
    :meth:`pre_fit` fits the data's energies, see :class:`~pyg_hipts.potentials.SumPotential`).
    """

    periodic: ClassVar[bool] = True
    reports: ClassVar[frozenset[str]] = frozenset()
    fits_energies: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:
            cls.__init__ = _record_init(cls.__dict__["__init__"])

    def __init__(self, species: Sequence[int], cutoff: float, units: Units | None = None) -> None:
        super().__init__()
        species = [int(s) for s in species]
        if not species or len(set(species)) != len(species) or min(species) < 0:
            raise ValueError(f"species must be distinct non-negative integers, got {species}")
        if cutoff < 0:
            raise ValueError(f"cutoff must be >= 0, got {cutoff}")
        self.species = species
        self.cutoff = float(cutoff)
        self.units = units
        self.species_index = SpeciesIndex(species)

    # --- what a subclass implements -------------------------------------------------------------

    @abstractmethod
    def atom_energies(self, structures: Structures) -> Tensor:
        """Per-atom energies ``[N]`` of the structures (any float dtype; summed in float64)."""

    def pre_fit(self, dataset: Any) -> None:
        """Data-dependent set-up from the training set before training (nothing by default).

        ``dataset`` is an :class:`~pyg_hipts.data.AtomsDataset` (frames with ``z``, ``pos``,
        ``energy``, ``forces``, ``cell``, ``pbc`` as the data hold them, and ``units``).
        """

    def regularization_parameters(self) -> list[Tensor]:
        """Weights an L2 penalty acts on: every trainable matrix by default."""
        return [p for p in self.parameters() if p.dim() > 1 and p.requires_grad]

    # --- capabilities --------------------------------------------------------------------------

    def supports(self, name: str) -> bool:
        """Whether :meth:`predict` can give ``name``: one of :data:`PROPERTIES`, ``"periodic"``
        or an extra output listed in ``reports``."""
        if name in ("energy", "atom_energies", "forces"):
            return True
        if name in ("stress", "virial", "periodic"):
            return self.periodic
        return name in self.reports

    @property
    def dtype(self) -> torch.dtype | None:
        """The float dtype of the weights (``None`` for a potential without float weights)."""
        tensors = itertools.chain(self.parameters(), self.buffers())
        return next((tensor.dtype for tensor in tensors if tensor.is_floating_point()), None)

    @property
    def is_compiled(self) -> bool:
        """Whether :meth:`compile_for_inference` was called."""
        return "atom_energies" in self.__dict__

    def compile_for_inference(self) -> Potential:
        """Compile the evaluation for inference, in place; returns the potential.

        Energies and forces (``predict`` without stress or virial) then come from one compiled
        graph of the atom energies and their gradient
        (:mod:`~pyg_hipts.potentials.compiled_evaluation`); the neighbour search and the input
        checks stay eager, before it. Stress, virial and energies alone go through
        :meth:`atom_energies` compiled by ``torch.compile`` (dynamic shapes), as do energies and
        forces of a potential that cannot be traced (a warning says why). The derivatives of a
        compiled graph cannot be differentiated again, so ``predict(create_graph=True)`` (a loss
        on the forces) is refused: train eagerly or with :meth:`compile_for_training`, compile
        the trained potential. The first call for a new kind of input traces, checks and compiles
        (tens of seconds on a CPU).
        """
        # a method of this instance, so that a deep copy calls its own weights
        compiled = torch.compile(type(self).atom_energies, dynamic=True)
        self.__dict__["atom_energies"] = types.MethodType(compiled, self)
        self.__dict__["_compiled_inference"] = CompiledEvaluation(self, differentiable=False)
        return self

    def compile_for_training(self, backend: str = "inductor") -> Potential:
        """Compile the evaluation that a loss on forces differentiates, in place; returns the
        potential.

        ``predict(forces=True, create_graph=True)`` (without stress or virial) then runs one
        compiled graph of the atom energies, the forces and the extras whose weight gradients
        are a first-order backward pass (:mod:`~pyg_hipts.potentials.compiled_evaluation`); the
        neighbour search and the input checks stay eager. The graph reads the live weights, so
        optimizer steps need no recompilation. The first batch traces, checks and compiles
        (about a minute on a CPU); a batch with a new pattern of sizes below 2 does it again.
        """
        self.__dict__["_compiled_training"] = CompiledEvaluation(self, backend)
        return self

    # --- evaluation ----------------------------------------------------------------------------

    def structures(
        self,
        z: Tensor,
        pos: Tensor,
        batch: Tensor | None = None,
        cell: Tensor | None = None,
        pbc: Tensor | None = None,
    ) -> Structures:
        """Validated :class:`Structures` of the inputs, positions cast to the weights' dtype.

        Atoms closer than :data:`~pyg_hipts.data.dataset.MIN_DISTANCE_ANGSTROM` (in the
        potential's length unit) are refused when the pairs are built.
        """
        batch = validate_atoms(z, pos, batch)
        dtype = self.dtype or pos.dtype
        pos = pos.to(dtype)
        if cell is not None:
            cell = cell.to(dtype).reshape(-1, 3, 3)
        if pbc is not None:
            pbc = pbc.reshape(-1, 3)
        if (cell is None) != (pbc is None):
            raise ValueError("cell and pbc must be given together")
        z = z.long()
        self.species_index(z)  # unknown species are an error here, for every potential
        length = "Å" if self.units is None else self.units.length
        min_distance = MIN_DISTANCE_ANGSTROM * length_factor("Å", length)
        structures = Structures(z, pos, batch, int(batch[-1]) + 1, cell, pbc, min_distance)
        for module in self.modules():
            if isinstance(module, Potential):
                module.check_structures(structures)
        return structures

    def check_structures(self, structures: Structures) -> None:
        """Refuse inputs this potential cannot evaluate (``ValueError``), eagerly: called by
        :meth:`structures` for this potential and every potential it holds, so that
        :meth:`atom_energies` needs no check that synchronises with the host and can be traced.
        By default everything is accepted."""

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
        virial: bool = False,
        create_graph: bool = False,
    ) -> PotentialOutput:
        """Energies and, when asked for, forces, stress and virial (see the module docstring).

        ``create_graph=True`` keeps the derivatives differentiable (a loss on the forces).
        """
        if create_graph and self.is_compiled:
            raise ValueError(
                f"{type(self).__name__} is compiled for inference: its forces cannot be differentiated "
                "again (create_graph=True); train an eager potential"
            )
        inputs = self.structures(z, pos, batch, cell, pbc)
        if inputs.periodic and not self.periodic:
            raise ValueError(f"{type(self).__name__} takes no periodic cell")
        strained = stress or virial
        compiled = self.__dict__.get("_compiled_training" if create_graph else "_compiled_inference")
        if compiled is not None and forces and not strained:
            evaluated = self._evaluate_compiled(compiled, inputs)
            if evaluated is not None:
                atom, force, extras = evaluated
                atom = atom.reshape(-1, 1)
                return PotentialOutput(self._structure_energies(atom, inputs), atom, force, extras=extras)
        pos = inputs.pos
        if (forces or strained) and not pos.requires_grad:
            pos = pos.detach().requires_grad_(True)
        with torch.set_grad_enabled(forces or strained or torch.is_grad_enabled()):
            strain, cell = None, inputs.cell
            inputs.pos = pos
            if strained:
                strain = zero_strain(inputs.cell, inputs.pbc, inputs.n_structures)
                inputs.pos, inputs.cell = apply_strain(pos, inputs.cell, inputs.batch, strain)
            atom = self.atom_energies(inputs).reshape(-1, 1)
            energy = self._structure_energies(atom, inputs)
            wrt = ([pos] if forces else []) + ([strain] if strained else [])
            grads: Sequence[Tensor] = []
            if wrt:
                grads = torch.autograd.grad(
                    energy.sum(),
                    wrt,
                    create_graph=create_graph,
                    retain_graph=create_graph,
                    allow_unused=True,
                    materialize_grads=True,
                )
        output = PotentialOutput(energy, atom, extras=inputs.extras)
        if forces:
            output.forces = -grads[0]
        if strained:
            if stress:
                output.stress = stress_from_strain_gradient(grads[-1], cell)
            if virial:
                output.virial = -grads[-1]
        return output

    def _evaluate_compiled(
        self, compiled: CompiledEvaluation, inputs: Structures
    ) -> tuple[Tensor, Tensor, dict[str, Tensor]] | None:
        """``compiled(inputs)``; for inference, ``None`` (with a warning, once) when this potential
        cannot be traced, and :meth:`atom_energies` compiled alone serves from then on."""
        try:
            return compiled(inputs)
        except UntraceableError as error:
            if compiled.evaluation.differentiable:
                raise
            warnings.warn(f"{error}; energies and forces use torch.compile of atom_energies", stacklevel=3)
            del self.__dict__["_compiled_inference"]
            return None

    def _structure_energies(self, atom: Tensor, inputs: Structures) -> Tensor:
        """``E_b = Σ_{i ∈ b} e_i`` ``[B, 1]`` in float64 from ``atom [N, 1]``; non-finite energies
        are a ``FloatingPointError`` naming the structures."""
        energy = torch.zeros(inputs.n_structures, 1, dtype=torch.float64, device=atom.device)
        energy = energy.index_add(0, inputs.batch, atom.double())
        if not bool(torch.isfinite(energy).all()):
            bad = (~torch.isfinite(energy)).nonzero()[:, 0].tolist()
            raise FloatingPointError(f"{type(self).__name__}: non-finite energy for structures {bad[:10]}")
        return energy

    def predict_data(self, data: Batch, **options: Any) -> PotentialOutput:
        """:meth:`predict` on a PyG ``Data`` / ``Batch`` (``z``, ``pos``, ``batch``, ``cell``, ``pbc``)."""
        return self.predict(
            data.z,
            data.pos,
            getattr(data, "batch", None),
            cell=getattr(data, "cell", None),
            pbc=getattr(data, "pbc", None),
            **options,
        )

    def forward(self, z: Tensor, pos: Tensor, batch: Tensor | None = None) -> Tensor:
        """Energy per structure ``[B, 1]``, like PyG's ``SchNet``."""
        return self.predict(z, pos, batch, forces=False).energy

    # --- metadata ------------------------------------------------------------------------------

    def init_arguments(self) -> dict[str, Any]:
        """The arguments this potential was built with, as plain data (nested potentials as
        their :meth:`spec`); containers of potentials override it."""
        recorded = self.__dict__.get("_init_arguments", {})
        return {name: plain(value, f"{type(self).__name__}.{name}") for name, value in recorded.items()}

    def spec(self) -> dict[str, Any]:
        """``{"class_path", "init_args", "units", "dtype"}``: everything but the weights, as
        plain data."""
        arguments = self.init_arguments()
        arguments["species"] = list(self.species)
        arguments.pop("units", None)
        dtype = self.dtype
        return {
            "class_path": class_path(type(self)),
            "init_args": arguments,
            "units": None if self.units is None else self.units.as_dict(),
            "dtype": None if dtype is None else str(dtype).removeprefix("torch."),
        }

    def set_units(self, units: Units | None) -> None:
        """Set the units of this potential (and of the potentials it holds)."""
        for module in self.modules():
            if isinstance(module, Potential):
                module.units = units


def plain(value: Any, name: str) -> Any:
    """``value`` as YAML-like plain data (potentials as their :meth:`Potential.spec`)."""
    if isinstance(value, Potential):
        return value.spec()
    if isinstance(value, Units):
        return value.as_dict()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Tensor):
        return value.tolist()
    if isinstance(value, Mapping):
        return {str(k): plain(v, f"{name}.{k}") for k, v in value.items()}
    if isinstance(value, Sequence):
        return [plain(v, f"{name}[{i}]") for i, v in enumerate(value)]
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return value.tolist()
    raise TypeError(
        f"argument {name} of type {type(value).__name__} cannot be saved with the potential; "
        "give plain values (numbers, strings, lists, mappings) or potentials"
    )
