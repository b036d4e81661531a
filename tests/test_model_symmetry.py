"""Physical symmetries and derivative consistency of HIP-NN / HIP-NN-TS (float64)."""

from __future__ import annotations

import pytest
import torch

from pyg_hipts.nn import HipNN


def _model(l_max: int | str, seed: int = 0, **kwargs) -> HipNN:
    """A small float64 model; ``l_max="complete"`` is ``l_max = 2`` with the complete invariants,
    their scales drawn at random (they start at zero) so that they count in every check;
    ``l_max="hop"`` is HIP-HOP-NN with ``l_max = 3, n_max = 4``."""
    torch.manual_seed(seed)
    if l_max == "hop":
        return _model(3, seed, n_max=4, **kwargs)
    if l_max == "complete":
        model = _model(2, seed, tensor_invariants="complete", **kwargs)
        with torch.no_grad():
            for interaction in model.interactions:
                interaction.higher_scale.normal_(std=0.1)
        return model
    options = dict(
        n_features=16,
        n_sensitivities=8,
        dist_soft_min=0.85,
        dist_soft_max=5.0,
        dist_hard_max=6.0,
        n_interaction_layers=2,
        n_atom_layers=2,
    )
    return HipNN([1, 6, 7, 8], l_max=l_max, **{**options, **kwargs}).double()


def _rotation(seed: int) -> torch.Tensor:
    q, r = torch.linalg.qr(
        torch.randn(3, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    )
    q = q * torch.sign(torch.diagonal(r))
    return q if torch.det(q) > 0 else -q


@pytest.mark.parametrize("l_max", [0, 1, 2, "complete", "hop"])
def test_rotation_translation_invariance_and_force_equivariance(l_max, mixed_batch):
    z, pos, batch = mixed_batch
    model = _model(l_max)
    rot, shift = _rotation(5), torch.tensor([1.7, -3.2, 0.4], dtype=torch.float64)
    out = model.predict(z, pos, batch)
    moved = model.predict(z, pos @ rot.T + shift, batch)
    torch.testing.assert_close(moved.energy, out.energy, rtol=1e-12, atol=1e-10)
    torch.testing.assert_close(moved.forces, out.forces @ rot.T, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("l_max", [0, 2, "complete"])
def test_reflection_invariance(l_max, mixed_batch):
    z, pos, batch = mixed_batch
    model = _model(l_max)
    mirror = torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(model(z, pos @ mirror, batch), model(z, pos, batch), rtol=1e-12, atol=1e-10)


@pytest.mark.parametrize("l_max", [0, 1, 2, "complete", "hop"])
def test_permutation_invariance(l_max, mixed_batch):
    z, pos, batch = mixed_batch
    model = _model(l_max)
    out = model.predict(z, pos, batch)
    # shuffle atoms inside every structure (PyG batches keep structures contiguous)
    perm = torch.cat(
        [
            idx[torch.randperm(len(idx), generator=torch.Generator().manual_seed(3))]
            for idx in [torch.nonzero(batch == b).flatten() for b in range(int(batch.max()) + 1)]
        ]
    )
    shuffled = model.predict(z[perm], pos[perm], batch[perm])
    torch.testing.assert_close(shuffled.energy, out.energy, rtol=1e-12, atol=1e-10)
    torch.testing.assert_close(shuffled.forces, out.forces[perm], rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(shuffled.atom_energies, out.atom_energies[perm], rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("l_max", [0, 1, 2, "complete", "hop"])
def test_forces_match_finite_differences(l_max, mixed_batch):
    z, pos, batch = mixed_batch
    model = _model(l_max, sensitivity_type="gaussian" if l_max == 1 else "inverse")
    forces = model.predict(z, pos, batch).forces
    step = 1e-5
    for atom, axis in [(0, 0), (5, 1), (20, 2), (45, 0), (len(z) - 1, 1)]:
        plus, minus = pos.clone(), pos.clone()
        plus[atom, axis] += step
        minus[atom, axis] -= step
        derivative = (model(z, plus, batch).sum() - model(z, minus, batch).sum()) / (2 * step)
        torch.testing.assert_close(forces[atom, axis], -derivative, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("l_max", [0, 2, "complete"])
def test_energy_of_a_structure_does_not_depend_on_the_batch(l_max, mixed_batch):
    z, pos, batch = mixed_batch
    model = _model(l_max)
    together = model.predict(z, pos, batch)
    for b in range(int(batch.max()) + 1):
        mask = batch == b
        alone = model.predict(z[mask], pos[mask])
        torch.testing.assert_close(alone.energy[0], together.energy[b], rtol=1e-12, atol=1e-10)
        torch.testing.assert_close(alone.forces, together.forces[mask], rtol=1e-10, atol=1e-11)


@pytest.mark.parametrize("l_max", [0, 1, 2, "complete", "hop"])
def test_fused_and_plain_message_passing_agree_to_second_derivatives(l_max, mixed_batch):
    z, pos, batch = mixed_batch
    fused, plain = _model(l_max), _model(l_max, fused=False)
    plain.load_state_dict(fused.state_dict())
    grads = []
    for model in (fused, plain):
        out = model.predict(z, pos, batch, create_graph=True)
        loss = out.energy.square().sum() + out.forces.square().sum()
        grads.append(torch.autograd.grad(loss, [p for p in model.parameters() if p.requires_grad]))
        torch.testing.assert_close(out.energy, fused.predict(z, pos, batch).energy, rtol=1e-12, atol=1e-10)
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


def test_energy_is_sum_of_levels_and_of_atom_energies(mixed_batch):
    z, pos, batch = mixed_batch
    out = _model(2).predict(z, pos, batch)
    torch.testing.assert_close(out.extras["level_energies"].sum(1, keepdim=True), out.energy)
    per_structure = torch.zeros_like(out.energy).index_add_(0, batch, out.atom_energies)
    torch.testing.assert_close(per_structure, out.energy)
    assert out.extras["level_energies"].shape == (4, 3)
    assert out.extras["hierarchicality"].shape == (4, 1) and bool((out.extras["hierarchicality"] > 0).all())


def test_reference_energies_shift_energy_by_composition(mixed_batch):
    z, pos, batch = mixed_batch
    model = _model(1)
    before = model(z, pos, batch)
    shift = torch.tensor([1.0, 10.0, 100.0, 1000.0], dtype=torch.float64)
    model.set_reference_energies(model.energy_head.heads[0].weight.detach().flatten() + shift)
    counts = torch.zeros(4, 4, dtype=torch.float64)
    counts.index_put_(
        (batch, torch.searchsorted(torch.tensor([1, 6, 7, 8]), z)),
        torch.ones(len(z), dtype=torch.float64),
        accumulate=True,
    )
    torch.testing.assert_close(model(z, pos, batch), before + (counts @ shift).unsqueeze(1))


def test_hierarchical_initialisation_shrinks_higher_levels(mixed_batch):
    z, pos, batch = mixed_batch
    model = _model(2)
    before = model.predict(z, pos, batch, forces=False).extras["level_energies"]
    model.set_reference_energies(torch.zeros(4, dtype=torch.float64), decay_factor=1e-2)
    after = model.predict(z, pos, batch, forces=False).extras["level_energies"]
    torch.testing.assert_close(after[:, 0], torch.zeros(4, dtype=torch.float64))
    torch.testing.assert_close(after[:, 1], 1e-2 * before[:, 1])
    torch.testing.assert_close(after[:, 2], 1e-4 * before[:, 2])
