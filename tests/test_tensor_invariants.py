"""The complete tensor invariants (``tensor_invariants="complete"``) of the interaction layer."""

from __future__ import annotations

import pytest
import torch

from pyg_hipts.nn import HipNN
from pyg_hipts.nn.interaction import higher_invariants, tensor_norms


def _components(vector: torch.Tensor, quad: torch.Tensor) -> torch.Tensor:
    """Sums ``[1, 9, 1]`` from a vector ``[3]`` and a symmetric traceless matrix ``[3, 3]``."""
    five = torch.stack([quad[0, 0], quad[0, 1], quad[0, 2], quad[1, 1], quad[1, 2]])
    return torch.cat([torch.ones(1, dtype=vector.dtype), vector, five]).view(1, 9, 1)


def _orthogonal(seed: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(
        torch.randn(3, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    )
    return q


def _random_pair(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    vector = torch.randn(3, generator=generator, dtype=torch.float64)
    a = torch.randn(3, 3, generator=generator, dtype=torch.float64)
    quad = a + a.T
    return vector, quad - torch.eye(3, dtype=torch.float64) * torch.trace(quad) / 3


def _invariants(components: torch.Tensor) -> torch.Tensor:
    """The higher invariants with exact norms (``ε = 0``)."""
    _, vector_norm, quad_norm = tensor_norms(components, 2, 0.0)
    return higher_invariants(components, vector_norm, quad_norm)


def test_higher_invariants_are_the_stated_contractions():
    vector, quad = _random_pair(0)
    invariants = _invariants(_components(vector, quad)).flatten()
    b, c = torch.linalg.vector_norm(vector), torch.linalg.matrix_norm(quad)
    expected = torch.stack(
        [
            vector @ quad @ vector / (b * c),
            torch.trace(quad @ quad @ quad) / c**2,
            (quad @ vector).square().sum() / (b * c**2),
        ]
    )
    torch.testing.assert_close(invariants, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_higher_invariants_are_unchanged_by_rotations_and_reflections(seed):
    vector, quad = _random_pair(seed)
    turn = _orthogonal(seed + 10)  # det = ±1: both kinds
    before = _invariants(_components(vector, quad))
    after = _invariants(_components(turn @ vector, turn @ quad @ turn.T))
    torch.testing.assert_close(after, before, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", [6, 7, 8])
def test_higher_invariants_grow_like_the_norms_and_are_bounded_by_them(seed):
    """Degree one in the sums (scaling ``b`` and ``c`` by ``k`` scales them by ``k``), with
    ``|bᵀcb| / (‖b‖‖c‖) ≤ ‖b‖``, ``|tr c³| / ‖c‖² ≤ ‖c‖ / √6`` and ``‖cb‖² / (‖b‖‖c‖²) ≤ ‖b‖``."""
    vector, quad = _random_pair(seed)
    components = _components(vector, quad)
    invariants = _invariants(components).flatten()
    scaled = components.clone()
    scaled[:, 1:] *= 7.5
    torch.testing.assert_close(_invariants(scaled).flatten(), 7.5 * invariants, rtol=1e-12, atol=1e-12)
    b, c = torch.linalg.vector_norm(vector), torch.linalg.matrix_norm(quad)
    bounds = torch.stack([b, c / 6**0.5, b])
    assert bool((invariants.abs() <= bounds * (1 + 1e-12)).all()), (invariants, bounds)


def test_complete_invariants_separate_environments_the_norms_confuse():
    """Turning the vector alone keeps ‖b‖ and ‖c‖ but changes its angle to the quadrupole's axes."""
    vector, quad = _random_pair(4)
    turned = _orthogonal(5) @ vector
    first, second = _components(vector, quad), _components(turned, quad)
    for norm_a, norm_b in zip(tensor_norms(first, 2, 0.0)[1:], tensor_norms(second, 2, 0.0)[1:], strict=True):
        torch.testing.assert_close(norm_a, norm_b, rtol=1e-12, atol=1e-12)
    difference = (_invariants(first) - _invariants(second)).abs().flatten()
    assert float(difference[0]) > 1e-2 and float(difference[2]) > 1e-2
    torch.testing.assert_close(difference[1], torch.zeros((), dtype=torch.float64))  # tr c³ is c's alone


def test_complete_layer_starts_as_hip_nn_ts(mixed_batch):
    z, pos, batch = mixed_batch
    options = dict(n_features=8, n_sensitivities=6, dist_soft_max=4.0, dist_hard_max=4.5, l_max=2)
    torch.manual_seed(0)
    norms = HipNN([1, 6, 7, 8], **options).double()
    torch.manual_seed(0)
    complete = HipNN([1, 6, 7, 8], tensor_invariants="complete", **options).double()
    missing, unexpected = complete.load_state_dict(norms.state_dict(), strict=False)
    assert not unexpected and sorted(missing) == [f"blocks.{k}.0.layer.higher_scale" for k in range(2)]
    torch.testing.assert_close(complete(z, pos, batch), norms(z, pos, batch), rtol=1e-12, atol=1e-12)
    with torch.no_grad():
        complete.interactions[1].higher_scale.fill_(0.1)
        assert float((complete(z, pos, batch) - norms(z, pos, batch)).abs().max()) > 1e-6


@pytest.mark.parametrize("l_max,invariants", [(1, "complete"), (2, "all")])
def test_bad_invariant_options_are_rejected(l_max, invariants):
    with pytest.raises(ValueError, match="tensor_invariants"):
        HipNN([1, 6], l_max=l_max, tensor_invariants=invariants)
