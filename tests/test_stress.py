"""The contract's stress by the strain derivative (directly and through the ASE calculator) and
periodic invariances (cells, supercells, images, batches)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.calculators.fd import calculate_numerical_stress

from pyg_hipts.calculators import HipCalculator
from pyg_hipts.potentials import Potential

from .conftest import SHARED_DATA, _rmd17
from .test_periodic import _model, _water


def _predict(model: Potential, atoms: Atoms, stress: bool = True):
    """Energy, forces and stress of one ASE structure, in float64."""
    z = torch.as_tensor(atoms.numbers)
    pos = torch.as_tensor(atoms.positions)
    cell = torch.as_tensor(np.asarray(atoms.cell)).unsqueeze(0)
    pbc = torch.as_tensor(atoms.pbc).unsqueeze(0)
    return model.predict(z, pos, cell=cell, pbc=pbc, stress=stress)


def _water_atoms(shear: float = 0.0) -> Atoms:
    """The first deepmd water frame (192 atoms), its cell optionally sheared into a triclinic one."""
    z, pos, _, cell, _ = _water(1)
    deformation = np.eye(3) + shear * np.array([[0.0, 1.0, 0.5], [0.0, 0.0, -0.7], [0.0, 0.0, 0.0]])
    return Atoms(
        numbers=z.numpy(), positions=pos.numpy() @ deformation, cell=cell[0].numpy() @ deformation, pbc=True
    )


@pytest.mark.parametrize("shear", [0.0, 0.1])
def test_contract_stress_is_the_strain_derivative_of_the_energy(shear):
    atoms = _water_atoms(shear)
    model = _model()
    out = _predict(model, atoms)
    stress = out.stress[0].detach()
    torch.testing.assert_close(stress, stress.T, rtol=0, atol=1e-12)

    # central differences of E along each symmetric strain direction, divided by the volume
    volume = abs(np.linalg.det(atoms.cell))
    step = 1e-5
    for a, b in [(0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2)]:
        strain = np.zeros((3, 3))
        strain[a, b] = strain[b, a] = step / 2 if a != b else step
        energies = []
        for sign in (1, -1):
            deformed = atoms.copy()
            deformed.set_cell(atoms.cell @ (np.eye(3) + sign * strain), scale_atoms=True)
            energies.append(float(_predict(model, deformed, stress=False).energy.detach()))
        derivative = (energies[0] - energies[1]) / (2 * step) / volume
        assert float(stress[a, b]) == pytest.approx(derivative, rel=1e-6, abs=1e-9)

    # ASE's own finite-difference stress through the calculator: same numbers and sign convention
    atoms.calc = HipCalculator(model)
    np.testing.assert_allclose(atoms.get_stress(), calculate_numerical_stress(atoms, eps=1e-5), atol=1e-8)


def test_contract_stress_needs_a_cell():
    z, pos, batch = _rmd17("ethanol", [0])
    model = _model(species=(1, 6, 8))
    with pytest.raises(ValueError, match="stress needs cell"):
        model.predict(z, pos, batch, stress=True)
    with pytest.raises(ValueError, match="non-zero volume"):
        model.predict(
            z,
            pos,
            batch,
            cell=torch.zeros(1, 3, 3, dtype=pos.dtype),
            pbc=torch.zeros(1, 3, dtype=torch.bool),
            stress=True,
        )


def test_contract_equivalent_cells_give_the_same_energy_forces_and_stress():
    atoms = _water_atoms(0.1)
    model = _model()
    reference = _predict(model, atoms)
    other = atoms.copy()
    # another basis of the same lattice: an integer matrix of determinant 1
    other.set_cell(np.array([[1, 0, 0], [1, 1, 0], [-1, 1, 1]]) @ np.asarray(atoms.cell), scale_atoms=False)
    out = _predict(model, other)
    torch.testing.assert_close(out.energy, reference.energy, rtol=1e-12, atol=1e-9)
    torch.testing.assert_close(out.forces, reference.forces, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(out.stress, reference.stress, rtol=1e-9, atol=1e-11)


def _assert_supercell_is_extensive(model: Potential, atoms: Atoms, repeats: int) -> None:
    """``repeats³`` copies: that many times the energy, the same forces per atom and stress."""
    copies = repeats**3
    cell = _predict(model, atoms)
    supercell = _predict(model, atoms.repeat((repeats,) * 3))
    torch.testing.assert_close(supercell.energy, copies * cell.energy, rtol=1e-10, atol=1e-8)
    torch.testing.assert_close(supercell.forces, cell.forces.repeat(copies, 1), rtol=1e-8, atol=1e-9)
    torch.testing.assert_close(supercell.stress, cell.stress, rtol=1e-8, atol=1e-10)


def test_contract_supercell_has_eight_times_the_energy_and_the_same_forces():
    _assert_supercell_is_extensive(_model(l_max=1), _water_atoms(0.1), 2)


def test_contract_cutoff_larger_than_half_the_cell_counts_every_image():
    """A 3-atom triclinic cell much smaller than the cutoff equals its 4x4x4 supercell / 64."""
    atoms = Atoms(
        numbers=[8, 1, 1],
        positions=[[0.3, 0.2, 0.1], [1.2, 0.4, 0.3], [0.1, 1.1, 0.6]],
        cell=[[2.9, 0.0, 0.0], [0.6, 3.1, 0.0], [0.4, -0.5, 3.3]],
        pbc=True,
    )
    _assert_supercell_is_extensive(_model(), atoms, 4)  # cutoff 4.5 Å, more than the cell's widths


def test_contract_mixed_periodic_and_molecular_batch():
    """A periodic water box and a free ethanol molecule (zero cell, no pbc) in one batch."""
    if not (SHARED_DATA / "rmd17").exists():
        pytest.skip("rMD17 is not available")
    water = _water_atoms()
    z_mol, pos_mol, _ = _rmd17("ethanol", [0])
    model = _model(species=(1, 6, 8))
    z = torch.cat([torch.as_tensor(water.numbers), z_mol])
    pos = torch.cat([torch.as_tensor(water.positions), pos_mol])
    batch = torch.cat([torch.zeros(len(water), dtype=torch.long), torch.ones(len(z_mol), dtype=torch.long)])
    cell = torch.stack([torch.as_tensor(np.asarray(water.cell)), torch.zeros(3, 3, dtype=torch.float64)])
    pbc = torch.tensor([[True] * 3, [False] * 3])
    both = model.predict(z, pos, batch, cell=cell, pbc=pbc)
    alone_water = _predict(model, water, stress=False)
    alone_molecule = model.predict(z_mol, pos_mol)
    torch.testing.assert_close(both.energy[0], alone_water.energy[0], rtol=1e-12, atol=1e-9)
    torch.testing.assert_close(both.energy[1], alone_molecule.energy[0], rtol=1e-12, atol=1e-9)
    torch.testing.assert_close(both.forces, torch.cat([alone_water.forces, alone_molecule.forces]))
