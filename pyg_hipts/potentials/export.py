"""A trained potential as an AOTInductor package that runs without this package's source.

The package holds one compiled function of a neighbour list::

    (z [N] long, pos [N, 3], edge_index [2, P] long, shifts [P, 3])
        -> (atom_energies [N], forces [N, 3])

``edge_index`` lists every ordered pair ``(source j, target i)`` within the potential's cutoff,
both directions, and ``shifts`` the Cartesian periodic image shift of each (``r_ij = pos_j −
pos_i + shift``; zeros for a molecule). The energy of a structure is the sum of its atom energies
and ``forces = −∂E/∂pos``; any neighbour-list code (vesin, ASE's ``neighbor_list("ijS", …)``)
provides the inputs. Units, species, cutoff and dtype are in the package's metadata
(``load_package(path).get_metadata()``).

How it is built: :func:`traced_energy_and_forces` traces the atom energies and their gradient
into one graph of ATen operations (``make_fx``, symbolic shapes), the trained weights becoming
constants; :func:`torch.export.export` gives it dynamic ``N`` and ``P``; AOTInductor compiles
it to a shared library inside the ``.pt2`` file. The traced graph is checked against the eager
potential on the example input before compiling, so a potential whose evaluation cannot be
traced this way (a data-dependent branch, or a layout the geometry-only pair list lacks) is an
error, not a wrong package.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from pyg_hipts.data import read_dataset
from pyg_hipts.data.graph import PairList, plain_pair_list
from pyg_hipts.data.periodic import neighbour_pairs
from pyg_hipts.potentials.base import Potential
from pyg_hipts.potentials.io import load_potential
from pyg_hipts.potentials.structures import Structures
from pyg_hipts.potentials.tracing import WeightedGraph, largest_difference, trace_with_weights

INPUTS = ("z", "pos", "edge_index", "shifts")
OUTPUTS = ("atom_energies", "forces")


@dataclass
class TracedStructures(Structures):
    """:class:`Structures` whose pairs are the given ``edge_index [2, P]`` and ``shifts [P, 3]``
    within ``pair_cutoff``, as geometry-only lists (all atoms one structure, as only the atom
    energies leave the graph); a term with a shorter cutoff gets the pairs within its own."""

    edge_index: Tensor | None = None
    shifts: Tensor | None = None
    pair_cutoff: float = 0.0

    def pairs(self, cutoff: float) -> PairList:
        if self.edge_index is None or self.shifts is None or cutoff > self.pair_cutoff:
            raise ValueError(f"the exported pair list reaches {self.pair_cutoff}, a term needs {cutoff}")
        if cutoff not in self._pairs:
            pairs = plain_pair_list(self.pos, self.edge_index, self.shifts)
            if cutoff < self.pair_cutoff:
                keep = pairs.dist <= cutoff
                pairs = plain_pair_list(self.pos, self.edge_index[:, keep], self.shifts[keep])
            self._pairs[cutoff] = pairs
        return self._pairs[cutoff]


class EnergyAndForces(nn.Module):
    """The function the package holds (module docstring), evaluated eagerly by ``potential``."""

    def __init__(self, potential: Potential):
        super().__init__()
        self.potential = potential

    def forward(self, z: Tensor, pos: Tensor, edge_index: Tensor, shifts: Tensor) -> tuple[Tensor, Tensor]:
        with torch.enable_grad():
            pos = pos.detach().requires_grad_(True)
            cutoff = self.potential.cutoff
            structures = TracedStructures(
                z, pos, torch.zeros_like(z), 1, edge_index=edge_index, shifts=shifts, pair_cutoff=cutoff
            )
            atom_energies = self.potential.atom_energies(structures).reshape(-1)
            (gradient,) = torch.autograd.grad(atom_energies.sum(), pos)
        return atom_energies.detach(), -gradient


def traced_energy_and_forces(potential: Potential, example: Sequence[Tensor]) -> WeightedGraph:
    """:class:`EnergyAndForces` of ``potential`` traced on ``example`` (the four inputs) into one
    ATen graph with symbolic shapes and the weights as buffers; raises ``ValueError`` if the graph
    and the eager potential disagree on ``example`` (beyond 1e-6 relative)."""
    evaluate = EnergyAndForces(potential.eval())
    traced = trace_with_weights(evaluate, example, differentiable=False, frozen=True, purpose="export")
    for name, got, expected in zip(OUTPUTS, traced(*example), evaluate(*example), strict=True):
        if largest_difference([got], [expected]) > 1e-6:
            raise ValueError(
                f"{type(potential).__name__} cannot be exported: its traced {name} differ from the "
                "eager ones (it needs the neighbour-list layout or a data-dependent branch)"
            )
    return traced


def example_inputs(
    potential: Potential, z: Tensor, pos: Tensor, cell: Tensor | None = None, pbc: Tensor | None = None
) -> tuple[Tensor, ...]:
    """The four package inputs of one structure, with the package's own neighbour search."""
    dtype = potential.dtype or torch.float64
    pos = pos.to(dtype)
    z = z.long()
    batch = torch.zeros_like(z)
    edge_index, shifts, _ = neighbour_pairs(pos, batch, potential.cutoff, cell, pbc)
    if shifts is None:
        shifts = torch.zeros(edge_index.shape[1], 3, dtype=dtype)
    return z, pos, edge_index, shifts.to(dtype)


def metadata(potential: Potential) -> dict[str, str]:
    """What a user of the package needs besides the inputs (all values are strings)."""
    units = potential.units
    return {
        "inputs": ",".join(INPUTS),
        "outputs": ",".join(OUTPUTS),
        "species": json.dumps(potential.species),
        "cutoff": repr(potential.cutoff),
        "dtype": str(potential.dtype or torch.float64).removeprefix("torch."),
        "length_unit": units.length if units else "",
        "energy_unit": units.energy if units else "",
        "potential": json.dumps(potential.spec()["class_path"]),
    }


def export_potential(potential: Potential, path: str | Path, example: Sequence[Tensor]) -> Path:
    """Write ``potential`` as an AOTInductor package to ``path`` (``.pt2``), traced on
    ``example`` (:func:`example_inputs`); ``N`` and ``P`` stay dynamic. Compiling takes about a
    minute on a CPU."""
    n_atoms, n_pairs = example[1].shape[0], example[2].shape[1]
    if n_atoms <= 3 or n_pairs in (3, n_atoms):  # equal sizes would be traced as one symbol
        raise ValueError(
            f"the example must have more than 3 atoms and a number of pairs other than 3 and its "
            f"number of atoms, so that both stay dynamic; got {n_atoms} atoms and {n_pairs} pairs"
        )
    traced = traced_energy_and_forces(potential, example)
    atoms, pairs = torch.export.Dim("atoms", min=2), torch.export.Dim("pairs", min=2)
    shapes = ({0: atoms}, {0: atoms}, {1: pairs}, {0: pairs})
    program = torch.export.export(
        traced, tuple(example), dynamic_shapes=(shapes,), strict=False
    )  # forward(*inputs)
    options = {"aot_inductor.metadata": metadata(potential)}
    return Path(
        torch._inductor.aoti_compile_and_package(program, package_path=str(path), inductor_configs=options)
    )


def load_package(path: str | Path) -> Callable[..., tuple[Tensor, Tensor]]:
    """The compiled function of a package written by :func:`export_potential` (torch alone)."""
    return torch._inductor.aoti_load_package(str(path))


def main(args: Sequence[str]) -> Path:
    """``pyg-hipts export --checkpoint C --output model.pt2 --example frames.npz``."""
    parser = argparse.ArgumentParser(prog="pyg-hipts export", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="a checkpoint or saved potential")
    parser.add_argument("--output", required=True, help="the .pt2 package to write")
    parser.add_argument("--example", required=True, help="a data file; its first frame is traced")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float64")
    options = parser.parse_args(list(args))
    potential = load_potential(options.checkpoint).to(getattr(torch, options.dtype))
    frame = read_dataset(options.example)[0]
    cell = getattr(frame, "cell", None)
    pbc = getattr(frame, "pbc", None)
    example = example_inputs(potential, frame.z, frame.pos, cell, pbc)
    written = export_potential(potential, options.output, example)
    print(f"wrote {written}: {metadata(potential)}")
    return written
