"""The AOTInductor export: the traced graph equals the eager potential (molecule, periodic box,
coarse-grained sum with a shorter-cutoff term); the compiled package runs in a process that
cannot import this package and gives the eager energies and forces for inputs of other sizes;
potentials that cannot be traced are refused with their name."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from pyg_hipts.cg import PairRepulsion
from pyg_hipts.cli import main
from pyg_hipts.data import embedded_dataset_path
from pyg_hipts.potentials import Potential, SumPotential, save_potential
from pyg_hipts.potentials.export import (
    example_inputs,
    export_potential,
    metadata,
    traced_energy_and_forces,
)
from pyg_hipts.potentials.structures import Structures

from .test_ase_calculator import _ethanol_atoms, _water_box
from .test_cg import BEAD_TYPES, KCAL, _ala2, _known_prior
from .test_periodic import _model


def _inputs(potential: Potential, atoms) -> tuple[torch.Tensor, ...]:
    z = torch.as_tensor(atoms.numbers)
    pos = torch.as_tensor(atoms.positions)
    if atoms.pbc.any():
        cell = torch.as_tensor(np.asarray(atoms.cell)).unsqueeze(0)
        return example_inputs(potential, z, pos, cell, torch.tensor([[True, True, True]]))
    return example_inputs(potential, z, pos)


def _eager(potential: Potential, atoms) -> tuple[np.ndarray, np.ndarray]:
    """``(E, F [N, 3])`` of ``potential.predict``."""
    periodic = {}
    if atoms.pbc.any():
        periodic = {
            "cell": torch.as_tensor(np.asarray(atoms.cell)).unsqueeze(0),
            "pbc": torch.ones(1, 3, dtype=bool),
        }
    out = potential.predict(torch.as_tensor(atoms.numbers), torch.as_tensor(atoms.positions), **periodic)
    return float(out.energy.sum()), out.forces.detach().numpy()


def _assert_traced_equals_eager(potential: Potential, atoms) -> None:
    atom_energies, forces = traced_energy_and_forces(potential, _inputs(potential, atoms))(
        *_inputs(potential, atoms)
    )
    energy, expected = _eager(potential, atoms)
    assert float(atom_energies.sum()) == pytest.approx(energy, rel=1e-10)
    np.testing.assert_allclose(forces.numpy(), expected, rtol=1e-9, atol=1e-10 * np.abs(expected).max())


def test_traced_molecule_and_periodic_box_equal_eager() -> None:
    _assert_traced_equals_eager(_model(species=(1, 6, 8)), _ethanol_atoms())
    _assert_traced_equals_eager(_model(), _water_box())


def test_traced_cg_sum_with_a_shorter_cutoff_term_equals_eager() -> None:
    """Priors, a 4.0 pair repulsion and a 4.5 network: the repulsion sees only its own pairs."""
    from ase import Atoms

    repulsion = PairRepulsion([1, 2, 3], cutoff=4.0, power=12)
    repulsion.set_parameters([[3.0, 3.1, 3.2], [3.1, 3.3, 3.4], [3.2, 3.4, 3.5]], 0.6)
    potential = SumPotential([1, 2, 3], [_known_prior(), repulsion, _model(species=(1, 2, 3))], KCAL)
    _assert_traced_equals_eager(potential, Atoms(numbers=BEAD_TYPES, positions=_ala2(1)[0]))


class _Branching(Potential):
    """A potential with a data-dependent Python branch (cannot be traced)."""

    def __init__(self) -> None:
        super().__init__([1], 3.0)
        self.scale = torch.nn.Parameter(torch.ones((), dtype=torch.float64))

    def atom_energies(self, structures: Structures) -> torch.Tensor:
        pairs = structures.pairs(self.cutoff)
        if bool(pairs.dist.min() > 1.0):
            return self.scale * torch.zeros(structures.n_atoms, dtype=torch.float64).index_add(
                0, pairs.target, pairs.dist
            )
        return structures.pos.sum(1)


def test_an_example_whose_sizes_would_be_traced_as_constants_is_refused() -> None:
    from ase import Atoms

    potential = _model(species=(1, 8))
    water = Atoms(numbers=[8, 1, 1], positions=[[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]])
    with pytest.raises(ValueError, match="more than 3 atoms .* got 3 atoms and 6 pairs"):
        export_potential(potential, "model.pt2", _inputs(potential, water))


def test_a_potential_with_a_data_dependent_branch_is_refused() -> None:
    pos = torch.tensor([[0.0, 0.0, 0.0], [1.5, 0.0, 0.0], [0.0, 1.5, 0.0]], dtype=torch.float64)
    potential = _Branching()
    with pytest.raises(ValueError, match="_Branching cannot be traced for export"):
        traced_energy_and_forces(potential, example_inputs(potential, torch.ones(3, dtype=torch.long), pos))


RUN_WITHOUT_THE_PACKAGE = textwrap.dedent(
    """
    import sys
    sys.modules["pyg_hipts"] = None  # any import of the package fails
    import json, numpy as np, torch
    runner = torch._inductor.aoti_load_package(sys.argv[1])
    meta = runner.get_metadata()
    inputs = np.load(sys.argv[2])
    results = {}
    for name in ("molecule", "box"):
        args = [torch.as_tensor(inputs[f"{name}_{key}"]) for key in meta["inputs"].split(",")]
        atom_energies, forces = runner(*args)
        results[f"{name}_energy"] = float(atom_energies.sum())
        results[f"{name}_forces"] = forces.tolist()
    results["species"] = json.loads(meta["species"])
    print(json.dumps(results))
    """
)


def test_package_runs_without_the_package_source_and_equals_eager(tmp_path) -> None:
    """``pyg-hipts export`` traces the first ethanol frame of a data file; the package is then
    evaluated on another frame and on the 192-atom periodic box."""
    potential = _model(species=(1, 6, 8))
    save_potential(potential, tmp_path / "model.pt")
    path = tmp_path / "model.pt2"
    main(
        [
            "export",
            "--checkpoint",
            str(tmp_path / "model.pt"),
            "--output",
            str(path),
            "--example",
            str(embedded_dataset_path("ethanol")),
        ]
    )
    molecule, box = _ethanol_atoms(1), _water_box()
    arrays = {}
    for name, atoms in (("molecule", molecule), ("box", box)):
        for key, value in zip(("z", "pos", "edge_index", "shifts"), _inputs(potential, atoms), strict=True):
            arrays[f"{name}_{key}"] = value.numpy()
    np.savez(tmp_path / "inputs.npz", **arrays)
    script = tmp_path / "run.py"
    script.write_text(RUN_WITHOUT_THE_PACKAGE)
    done = subprocess.run(
        [sys.executable, str(script), str(path), str(tmp_path / "inputs.npz")],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    import json

    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert results["species"] == [1, 6, 8]
    for name, atoms in (("molecule", molecule), ("box", box)):
        energy, forces = _eager(potential, atoms)
        assert results[f"{name}_energy"] == pytest.approx(energy, rel=1e-10)
        np.testing.assert_allclose(np.array(results[f"{name}_forces"]), forces, rtol=1e-8, atol=1e-10)
    assert metadata(potential)["dtype"] == "float64"
