"""Pseudoscalar (chirality) features: rotation-invariant, odd under reflection, smooth, forces
equal to −∇E, and a model that starts reflection-invariant (float64)."""

from __future__ import annotations

import pytest
import torch

from pyg_hipts.nn import HipNN
from pyg_hipts.nn.interaction import angular_basis, pseudoscalar, tensor_norms

from .test_model_symmetry import _rotation

MIRROR = torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64))


def _sums(vectors: torch.Tensor, messages: torch.Tensor) -> torch.Tensor:
    """``[1, 9, f]`` tensor sums of one atom with neighbours at ``vectors [K, 3]`` sending
    ``messages [K, f]``."""
    unit = vectors / vectors.norm(dim=1, keepdim=True)
    return torch.einsum("kc,kf->cf", angular_basis(unit, 2), messages).unsqueeze(0)


def _feature(sums: torch.Tensor) -> torch.Tensor:
    _, vector_norm, quad_norm = tensor_norms(sums, 2, 1e-6)
    return pseudoscalar(sums, vector_norm, quad_norm)


def test_pseudoscalar_is_rotation_invariant_and_odd_under_reflection() -> None:
    generator = torch.Generator().manual_seed(0)
    vectors = torch.randn(5, 3, generator=generator, dtype=torch.float64)
    messages = torch.randn(5, 7, generator=generator, dtype=torch.float64)
    feature = _feature(_sums(vectors, messages))
    assert feature.abs().min() > 1e-4  # a chiral environment
    rotated = _feature(_sums(vectors @ _rotation(3).T, messages))
    mirrored = _feature(_sums(vectors @ MIRROR, messages))
    inverted = _feature(_sums(-vectors, messages))
    torch.testing.assert_close(rotated, feature, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(mirrored, -feature, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(inverted, -feature, rtol=1e-10, atol=1e-12)


def test_pseudoscalar_is_bounded_by_the_vector_norm_and_vanishes_for_a_plane() -> None:
    generator = torch.Generator().manual_seed(1)
    vectors = torch.randn(6, 3, generator=generator, dtype=torch.float64)
    messages = torch.randn(6, 4, generator=generator, dtype=torch.float64)
    sums = _sums(vectors, messages)
    assert (_feature(sums).abs() <= sums[:, 1:4].norm(dim=1) + 1e-12).all()
    planar = vectors.clone()
    planar[:, 2] = 0.0  # a mirror plane through the atom: no chirality
    assert _feature(_sums(planar, messages)).abs().max() < 1e-12


def _chiral_model(**options) -> HipNN:
    torch.manual_seed(0)
    sizes = dict(n_features=16, n_sensitivities=8, dist_soft_min=0.85, dist_soft_max=5.0, dist_hard_max=6.0)
    model = HipNN([1, 6, 7, 8], pseudoscalars=True, **{**sizes, **options}).double()
    return model


@pytest.mark.parametrize("options", [{"l_max": 2}, {"l_max": 3, "n_max": 4}])
def test_chiral_model_tells_mirror_images_apart(options, mixed_batch) -> None:
    z, pos, batch = mixed_batch
    model = _chiral_model(**options)
    energy = model.predict(z, pos, batch).energy
    torch.testing.assert_close(model.predict(z, pos @ MIRROR, batch).energy, energy, rtol=1e-10, atol=1e-10)
    with torch.no_grad():  # the chirality scales start at 0; give them weight
        for interaction in model.interactions:
            interaction.chiral_scale.normal_(std=0.5)
    energy = model.predict(z, pos, batch).energy
    rotated = model.predict(z, pos @ _rotation(7).T, batch).energy
    mirrored = model.predict(z, pos @ MIRROR, batch).energy
    torch.testing.assert_close(rotated, energy, rtol=1e-10, atol=1e-10)
    assert (mirrored - energy).abs().max() > 1e-4


def test_chiral_forces_match_finite_differences(mixed_batch) -> None:
    z, pos, batch = mixed_batch
    model = _chiral_model(l_max=2)
    with torch.no_grad():
        for interaction in model.interactions:
            interaction.chiral_scale.normal_(std=0.5)
    forces = model.predict(z, pos, batch).forces
    step = 1e-5
    for atom, axis in [(0, 0), (3, 1), (7, 2)]:
        shifted = [pos.clone(), pos.clone()]
        shifted[0][atom, axis] += step
        shifted[1][atom, axis] -= step
        energies = [model.predict(z, p, batch).energy.sum() for p in shifted]
        numeric = -(energies[0] - energies[1]) / (2 * step)
        torch.testing.assert_close(forces[atom, axis], numeric, rtol=1e-6, atol=1e-8)


def test_pseudoscalars_need_a_quadrupole() -> None:
    with pytest.raises(ValueError, match="pseudoscalars need l_max >= 2"):
        HipNN([1, 6], l_max=1, pseudoscalars=True)
