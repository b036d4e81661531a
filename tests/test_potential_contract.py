"""The contract every potential of the package keeps, checked on each of them.

For every potential: invariance under rotations, translations and permutations; forces equal
to −∇E by central finite differences (float64); stress equal to the strain derivative of the
energy on a periodic box where the potential supports it; save → ``load_potential`` →
identical predictions; the ASE calculator's results equal ``predict``'s in ASE units, for a
molecule and a periodic box; float32 and float64 weights agree.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms

from pyg_hipts import Potential, load_potential, save_potential
from pyg_hipts.calculators import HipCalculator
from pyg_hipts.cg import PairRepulsion, TopologyPrior
from pyg_hipts.data import AtomsDataset, embedded_dataset_path, make_frame, read_deepmd, read_npz
from pyg_hipts.nn import HipNN
from pyg_hipts.potentials import ReferenceEnergies, SumPotential
from pyg_hipts.potentials.ensemble import Ensemble
from pyg_hipts.potentials.pyg import PygPotential
from pyg_hipts.units import Units, energy_factor

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
KCAL = Units("Å", "kcal/mol")


@dataclass
class Case:
    """A potential and the structures it is checked on: ``z [n]``, ``pos [F, n, 3]`` and, for a
    periodic case, ``cell [3, 3]``. ``fixed_topology``: atoms may not be permuted (bonded priors)."""

    build: Callable[[], Potential]
    z: torch.Tensor
    pos: torch.Tensor
    cell: torch.Tensor | None = None
    fixed_topology: bool = False


def _ethanol() -> tuple[torch.Tensor, torch.Tensor]:
    dataset = read_npz(embedded_dataset_path("ethanol"), dtype=torch.float64)
    return dataset[0].z, torch.stack([dataset[i].pos for i in range(2)])


def _water(n_molecules: int = 8) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The first ``n_molecules`` of a deepmd water frame in a cell scaled to keep the density."""
    if not (SHARED / "deepmd_water").is_dir():
        pytest.skip("shared deepmd water data not available")
    frame = read_deepmd(SHARED / "deepmd_water", dtype=torch.float64)[0]
    keep = torch.arange(3 * n_molecules)
    scale = (n_molecules / 64) ** (1 / 3)
    cell = frame.cell[0] * scale
    pos = torch.remainder(frame.pos[keep] @ torch.linalg.inv(frame.cell[0]) * scale, 1.0) @ frame.cell[0]
    return frame.z[keep], pos.unsqueeze(0), cell


def _ala2_beads() -> tuple[torch.Tensor, torch.Tensor]:
    if not (SHARED / "cgnet_ala2").is_dir():
        pytest.skip("shared cgnet ala2 data not available")
    coordinates = np.load(SHARED / "cgnet_ala2" / "ala2_coordinates.npy")[::500]
    return torch.tensor([1, 2, 3, 1, 2]), torch.as_tensor(coordinates, dtype=torch.float64)


def _hipnn(species: list[int], **options) -> HipNN:
    sizes = {"n_features": 8, "n_sensitivities": 6, "n_interaction_layers": 2, "n_atom_layers": 1}
    return HipNN(
        species, **{**sizes, "dist_soft_min": 0.8, "dist_soft_max": 3.5, "dist_hard_max": 4.0, **options}
    )


def _pyg(species: list[int], class_name: str, **sizes) -> PygPotential:
    network = {"class_path": f"torch_geometric.nn.models.{class_name}", "init_args": {"cutoff": 4.0, **sizes}}
    return PygPotential(species, network=network)


def _fitted(potential: Potential, z: torch.Tensor, pos: torch.Tensor) -> Potential:
    """``potential`` after its ``pre_fit`` on the frames ``pos [F, n, 3]`` (energies absent)."""
    frames = [make_frame(z.numpy(), p.numpy(), None, dtype=torch.float64) for p in pos]
    potential.pre_fit(AtomsDataset(frames, KCAL, "test frames"))
    return potential


def _cg_molecule() -> Case:
    z, pos = _ala2_beads()

    def build() -> Potential:
        prior = TopologyPrior(
            [1, 2, 3],
            bonds=[[0, 1], [1, 2], [2, 3], [3, 4]],
            angles=[[0, 1, 2], [1, 2, 3], [2, 3, 4]],
            dihedrals=[[0, 1, 2, 3], [1, 2, 3, 4]],
            repulsion_pairs=[[0, 4]],
            temperature=300.0,
        )
        return SumPotential([1, 2, 3], [_fitted(prior, z, pos), _hipnn([1, 2, 3])])

    return Case(build, z, pos[:2], fixed_topology=True)


def _cg_liquid() -> Case:
    z, pos, cell = _water(16)
    oxygen = z == 8
    beads, bead_pos = z[oxygen], pos[:, oxygen]

    def build() -> Potential:
        repulsion = _fitted(PairRepulsion([8], cutoff=3.5, temperature=300.0), beads, bead_pos)
        return SumPotential([8], [repulsion, _hipnn([8])])

    return Case(build, beads, bead_pos, cell)


def _molecule(build: Callable[[list[int]], Potential]) -> Callable[[], Case]:
    def case() -> Case:
        z, pos = _ethanol()
        return Case(lambda: build([1, 6, 8]), z, pos)

    return case


def _periodic(build: Callable[[list[int]], Potential]) -> Callable[[], Case]:
    def case() -> Case:
        z, pos, cell = _water()
        return Case(lambda: build([1, 8]), z, pos, cell)

    return case


CASES: dict[str, Callable[[], Case]] = {
    "hipnn_l0": _molecule(lambda s: _hipnn(s, l_max=0)),
    "hipnn_l1": _molecule(lambda s: _hipnn(s, l_max=1)),
    "hipnn_l2": _molecule(lambda s: _hipnn(s, l_max=2)),
    "hipnn_complete": _molecule(lambda s: _hipnn(s, l_max=2, tensor_invariants="complete")),
    "hipnn_l2_periodic": _periodic(lambda s: _hipnn(s, l_max=2)),
    "reference_plus_hipnn": _molecule(
        lambda s: SumPotential(s, [ReferenceEnergies(s, [-1.0] * len(s)), _hipnn(s)])
    ),
    "schnet": _molecule(lambda s: _pyg(s, "SchNet", hidden_channels=8, num_filters=8, num_interactions=2)),
    "schnet_periodic": _periodic(
        lambda s: _pyg(s, "SchNet", hidden_channels=8, num_filters=8, num_interactions=1)
    ),
    "dimenet_pp": _molecule(
        lambda s: _pyg(
            s,
            "DimeNetPlusPlus",
            hidden_channels=8,
            out_channels=1,
            num_blocks=1,
            int_emb_size=8,
            basis_emb_size=4,
            out_emb_channels=8,
            num_spherical=3,
            num_radial=4,
        )
    ),
    "visnet": _molecule(
        lambda s: _pyg(s, "ViSNet", hidden_channels=8, num_layers=1, num_heads=2, num_rbf=8, lmax=1)
    ),
    "cg_prior_network": _cg_molecule,
    "cg_liquid_pair_repulsion": _cg_liquid,
    "ensemble": _molecule(lambda s: Ensemble(s, [_hipnn(s), _hipnn(s, l_max=1)])),
}


@pytest.fixture(params=sorted(CASES))
def case(request: pytest.FixtureRequest) -> Case:
    torch.manual_seed(0)
    return CASES[request.param]()


def _inputs(case: Case, pos: torch.Tensor) -> dict:
    """``predict`` arguments for the frames ``pos [F, n, 3]`` as one batch."""
    frames, n = pos.shape[:2]
    inputs = {
        "z": case.z.repeat(frames),
        "pos": pos.reshape(-1, 3),
        "batch": torch.arange(frames).repeat_interleave(n),
    }
    if case.cell is not None:
        inputs["cell"] = case.cell.expand(frames, 3, 3)
        inputs["pbc"] = torch.ones(frames, 3, dtype=torch.bool)
    return inputs


def _random_rotation(generator: torch.Generator) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=generator, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))
    return q if torch.det(q) > 0 else -q


def test_contract_rotation_translation_and_permutation_invariance(case: Case) -> None:
    potential = case.build().double()
    out = potential.predict(**_inputs(case, case.pos))
    generator = torch.Generator().manual_seed(1)
    rotation = _random_rotation(generator)
    moved = case.pos @ rotation.T + torch.tensor([0.7, -1.3, 2.1], dtype=torch.float64)
    rotated = Case(case.build, case.z, moved, None if case.cell is None else case.cell @ rotation.T)
    out_rotated = potential.predict(**_inputs(rotated, moved))
    torch.testing.assert_close(out_rotated.energy, out.energy, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(out_rotated.forces, out.forces @ rotation.T, rtol=1e-7, atol=1e-8)
    # the structures of the batch in the other order
    flipped = potential.predict(**_inputs(case, case.pos.flip(0)))
    torch.testing.assert_close(flipped.energy, out.energy.flip(0), rtol=1e-10, atol=1e-10)
    if not case.fixed_topology:
        order = torch.randperm(case.z.shape[0], generator=generator)
        permuted = Case(case.build, case.z[order], case.pos[:, order], case.cell)
        out_permuted = potential.predict(**_inputs(permuted, permuted.pos))
        n = case.z.shape[0]
        torch.testing.assert_close(out_permuted.energy, out.energy, rtol=1e-9, atol=1e-9)
        forces = out.forces.view(-1, n, 3)[:, order].reshape(-1, 3)
        torch.testing.assert_close(out_permuted.forces, forces, rtol=1e-7, atol=1e-8)


def test_contract_forces_are_minus_the_energy_gradient(case: Case) -> None:
    potential = case.build().double()
    pos = case.pos[:1].clone()
    forces = potential.predict(**_inputs(case, pos)).forces
    step = 1e-5
    generator = torch.Generator().manual_seed(2)
    atoms = torch.randint(0, pos.shape[1], (4,), generator=generator).tolist()
    for atom in atoms:
        for axis in range(3):
            shifted = [pos.clone(), pos.clone()]
            shifted[0][0, atom, axis] += step
            shifted[1][0, atom, axis] -= step
            plus, minus = (float(potential.predict(**_inputs(case, p), forces=False).energy) for p in shifted)
            numeric = -(plus - minus) / (2 * step)
            assert math.isclose(float(forces[atom, axis]), numeric, rel_tol=1e-5, abs_tol=1e-7), (atom, axis)


def test_contract_stress_is_the_strain_derivative(case: Case) -> None:
    potential = case.build().double()
    if case.cell is None:
        pytest.skip("a molecular case")
    assert potential.supports("stress")
    pos, cell = case.pos[:1], case.cell
    out = potential.predict(**_inputs(case, pos), stress=True, virial=True)
    volume = float(torch.det(cell).abs())
    step = 1e-5
    for a, b in [(0, 0), (1, 1), (2, 2), (0, 1), (1, 2), (0, 2)]:
        energies = []
        for sign in (1, -1):
            strain = torch.zeros(3, 3, dtype=torch.float64)
            strain[a, b] += 0.5 * sign * step
            strain[b, a] += 0.5 * sign * step
            deformation = torch.eye(3, dtype=torch.float64) + strain
            strained = Case(case.build, case.z, pos @ deformation, cell @ deformation)
            energies.append(float(potential.predict(**_inputs(strained, strained.pos), forces=False).energy))
        numeric = (energies[0] - energies[1]) / (2 * step) / volume
        assert math.isclose(float(out.stress[0, a, b]), numeric, rel_tol=1e-5, abs_tol=1e-8), (a, b)
    torch.testing.assert_close(out.virial, -volume * out.stress)


def test_contract_save_and_load_give_identical_predictions(case: Case, tmp_path: Path) -> None:
    potential = case.build().double()
    potential.set_units(KCAL)
    path = save_potential(potential, tmp_path / "potential.pt")
    loaded = load_potential(path)
    assert type(loaded) is type(potential) and loaded.units == KCAL and loaded.species == potential.species
    before, after = potential.predict(**_inputs(case, case.pos)), loaded.predict(**_inputs(case, case.pos))
    assert torch.equal(before.energy, after.energy) and torch.equal(before.forces, after.forces)


def test_contract_ase_calculator_matches_predict(case: Case) -> None:
    potential = case.build().double()
    potential.set_units(KCAL)
    frame = case.pos[0]
    atoms = Atoms(numbers=case.z.numpy(), positions=frame.numpy())
    if case.cell is not None:
        atoms.set_cell(case.cell.numpy())
        atoms.set_pbc(True)
    atoms.calc = HipCalculator(potential)
    out = potential.predict(**_inputs(case, case.pos[:1]))
    to_ev = energy_factor("kcal/mol", "eV")
    assert math.isclose(atoms.get_potential_energy(), float(out.energy) * to_ev, rel_tol=1e-12)
    np.testing.assert_allclose(atoms.get_forces(), out.forces.numpy() * to_ev, rtol=1e-10, atol=1e-12)
    if case.cell is not None and potential.supports("stress"):
        stress = potential.predict(**_inputs(case, case.pos[:1]), stress=True).stress[0]
        np.testing.assert_allclose(
            atoms.get_stress(voigt=False), stress.numpy() * to_ev, rtol=1e-8, atol=1e-12
        )


def test_contract_float32_weights_agree_with_float64(case: Case) -> None:
    potential = case.build().double()
    single = case.build()
    single.load_state_dict(potential.state_dict())
    single = single.float()
    expected = potential.predict(**_inputs(case, case.pos))
    # float64 positions into float32 weights are cast at the entry point
    got = single.predict(**_inputs(case, case.pos))
    torch.testing.assert_close(got.energy, expected.energy, rtol=1e-5, atol=1e-4)
    scale = float(expected.forces.abs().max())
    torch.testing.assert_close(got.forces.double(), expected.forces, rtol=1e-3, atol=1e-4 * max(scale, 1.0))
