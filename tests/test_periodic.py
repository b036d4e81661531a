"""Periodic structures: vesin neighbour lists, image invariance, forces, real water."""

from __future__ import annotations

import pytest
import torch

from pyg_hipts.data import read_deepmd
from pyg_hipts.data.periodic import periodic_radius_graph
from pyg_hipts.nn import HipNN

from .conftest import SHARED_DATA


def _water(n_frames: int = 2):
    path = SHARED_DATA / "deepmd_water" / "data_0"
    if not path.exists():
        pytest.skip(f"{path} is not available")
    frames = [read_deepmd(path, dtype=torch.float64)[i] for i in range(n_frames)]
    z = torch.cat([f.z for f in frames])
    pos = torch.cat([f.pos for f in frames])
    batch = torch.arange(n_frames).repeat_interleave(frames[0].z.shape[0])
    return z, pos, batch, torch.cat([f.cell for f in frames]), torch.cat([f.pbc for f in frames])


def _model(l_max=2, species=(1, 8)):
    torch.manual_seed(0)
    return HipNN(
        species,
        n_features=8,
        n_sensitivities=6,
        dist_soft_min=0.8,
        dist_soft_max=4.0,
        dist_hard_max=4.5,
        n_interaction_layers=2,
        n_atom_layers=1,
        l_max=l_max,
    ).double()


def test_neighbour_counts_match_brute_force_images():
    z, pos, batch, cell, pbc = _water(1)
    edges, shifts, _ = periodic_radius_graph(pos, cell, pbc, 4.5, batch)
    images = (
        torch.stack(torch.meshgrid(*[torch.arange(-2, 3)] * 3, indexing="ij"), -1).reshape(-1, 3).double()
    )
    vec = pos[None, :, None, :] - pos[:, None, None, :] + (images @ cell[0])[None, None]
    dist = vec.norm(dim=-1)
    expected = int(((dist <= 4.5) & (dist > 0)).sum())
    assert edges.shape[1] == expected
    d = (pos[edges[0]] - pos[edges[1]] + shifts).norm(dim=1)
    assert float(d.max()) <= 4.5 and float(d.min()) > 0.5


@pytest.mark.parametrize("l_max", [0, 2])
def test_wrapping_atoms_into_another_image_changes_nothing(l_max):
    z, pos, batch, cell, pbc = _water(1)
    model = _model(l_max)
    out = model.predict(z, pos, batch, cell=cell, pbc=pbc)
    lattice_shift = torch.randint(-2, 3, (len(z), 3), generator=torch.Generator().manual_seed(1)).double()
    moved = model.predict(z, pos + lattice_shift @ cell[0], batch, cell=cell, pbc=pbc)
    torch.testing.assert_close(moved.energy, out.energy, rtol=1e-12, atol=1e-9)
    torch.testing.assert_close(moved.forces, out.forces, rtol=1e-9, atol=1e-9)
    assert abs(float(out.forces.sum(0).abs().max())) < 1e-9  # momentum conservation


def test_periodic_forces_match_finite_differences_and_batching():
    z, pos, batch, cell, pbc = _water(2)
    model = _model()
    out = model.predict(z, pos, batch, cell=cell, pbc=pbc)
    step = 1e-5
    for atom, axis in [(0, 0), (100, 1), (250, 2)]:
        plus, minus = pos.clone(), pos.clone()
        plus[atom, axis] += step
        minus[atom, axis] -= step
        e_plus = model.predict(z, plus, batch, cell=cell, pbc=pbc, forces=False).energy.sum()
        e_minus = model.predict(z, minus, batch, cell=cell, pbc=pbc, forces=False).energy.sum()
        torch.testing.assert_close(
            out.forces[atom, axis], -(e_plus - e_minus) / (2 * step), rtol=1e-6, atol=1e-8
        )
    second = batch == 1
    alone = model.predict(z[second], pos[second], cell=cell[1:], pbc=pbc[1:])
    torch.testing.assert_close(alone.energy[0], out.energy[1], rtol=1e-12, atol=1e-9)


def test_degenerate_cell_is_an_error():
    z, pos, batch, cell, pbc = _water(1)
    with pytest.raises(ValueError, match="degenerate"):
        _model().predict(z, pos, batch, cell=torch.zeros_like(cell), pbc=pbc)
