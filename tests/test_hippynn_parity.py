"""Agreement with the reference implementation (hippynn) for identical weights, float64."""

from __future__ import annotations

import pytest
import torch

from pyg_hipts.nn import HipNN, load_hippynn_weights

from .conftest import REFERENCE

SPECIES = [1, 6, 7, 8]
NET_KWARGS = dict(
    n_features=24,
    n_sensitivities=10,
    dist_soft_min=0.85,
    dist_soft_max=5.0,
    dist_hard_max=6.0,
    n_interaction_layers=2,
    n_atom_layers=2,
)


def _hippynn_outputs(network, head, z, pos, batch, cutoff):
    """Energies, atom energies, hierarchicality and forces of hippynn's bare torch modules."""
    pos = pos.clone().requires_grad_(True)
    first, second = torch.nonzero(
        (batch[:, None] == batch[None, :])
        & (torch.cdist(pos.detach(), pos.detach()) <= cutoff)
        & ~torch.eye(len(z), dtype=torch.bool),
        as_tuple=True,
    )
    coord = pos[second] - pos[first]
    dist = coord.norm(dim=1)
    onehot = (z[:, None] == torch.tensor(SPECIES)[None, :]).double()
    args = (onehot, first, second, dist) + ((coord,) if network.__class__.__name__ != "Hipnn" else ())
    features = network(*args)
    energy, atom_energy, _, mol_hier, *_ = head(features, batch, int(batch.max()) + 1)
    (grad,) = torch.autograd.grad(energy.sum(), pos)
    return energy.detach(), atom_energy.detach(), mol_hier.detach(), -grad


def _assert_matches(out, energy, atom_energies, hierarchicality, forces) -> None:
    """Our outputs against hippynn's to 1e-6 relative."""
    torch.testing.assert_close(out.energy, energy, rtol=1e-6, atol=0)
    torch.testing.assert_close(out.atom_energies, atom_energies, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(out.forces, forces, rtol=1e-6, atol=1e-8 * forces.abs().max().item())
    torch.testing.assert_close(out.extras["hierarchicality"], hierarchicality, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("l_max", [0, 1, 2])
def test_live_parity_with_hippynn(l_max, mixed_batch):
    hipnn = pytest.importorskip("hippynn.networks.hipnn")
    targets = pytest.importorskip("hippynn.layers.targets")
    torch.manual_seed(l_max)
    network_class = [hipnn.Hipnn, hipnn.HipnnVec, hipnn.HipnnQuad][l_max]
    network = network_class(possible_species=[0, *SPECIES], **NET_KWARGS).double()
    head = targets.HEnergy([len(SPECIES)] + [NET_KWARGS["n_features"]] * 2).double()
    with torch.no_grad():  # non-trivial scales and biases everywhere
        for p in list(network.parameters()) + list(head.parameters()):
            if p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
    z, pos, batch = mixed_batch
    ref_energy, ref_atom, ref_hier, ref_forces = _hippynn_outputs(
        network, head, z, pos, batch, NET_KWARGS["dist_hard_max"]
    )

    model = HipNN(SPECIES, l_max=l_max, **NET_KWARGS).double()
    load_hippynn_weights(model, network.state_dict(), head.state_dict())
    out = model.predict(z, pos, batch)

    _assert_matches(out, ref_energy, ref_atom, ref_hier, ref_forces)


@pytest.mark.parametrize("tag,l_max", [("hipnn", 0), ("ts1", 1), ("ts2", 2)])
@pytest.mark.parametrize("fused", [True, False])
def test_golden_hippynn_outputs(tag, l_max, fused):
    path = REFERENCE / f"reference_{tag}.pt"
    if not path.exists():
        pytest.skip(f"{path} is not available")
    ref = torch.load(path, weights_only=True)
    kwargs = dict(ref["net_kwargs"])
    species = [s for s in kwargs.pop("possible_species") if s != 0]
    model = HipNN(species, l_max=l_max, fused=fused, **kwargs).double()
    load_hippynn_weights(model, ref["net_state"], ref["energy_state"])
    real = ref["Z"] > 0
    batch = torch.arange(ref["Z"].shape[0]).unsqueeze(1).expand_as(ref["Z"])[real]
    out = model.predict(ref["Z"][real], ref["R"][real], batch)

    torch.testing.assert_close(out.energy, ref["mol_energy"], rtol=1e-10, atol=0)
    torch.testing.assert_close(out.forces, ref["forces"], rtol=1e-8, atol=1e-12)
    torch.testing.assert_close(out.atom_energies, ref["atom_energy"], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(out.extras["hierarchicality"], ref["hierarchicality"], rtol=1e-10, atol=0)
    pairs = model.structures(ref["Z"][real], ref["R"][real], batch).pairs(model.cutoff)
    sense = model.interactions[0].sensitivity(pairs.dist)
    assert sense.shape == ref["sensitivities_layer0"].shape
    torch.testing.assert_close(sense.sum(), ref["sensitivities_layer0"].sum(), rtol=1e-12, atol=0)


def _exact_hiphop_maps(network) -> None:
    """hippynn builds its Cartesian ↔ irreducible maps at import in the default dtype (float32,
    errors ≈ 1e-7); rebuild them in float64 so the reference is exact to float64."""
    tensors = pytest.importorskip("hippynn.layers.hiplayers.tensors")
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        cmaps = [torch.ones(1, 1)] + [tensors.cartesian_irreducible_mapping(i).double() for i in (1, 2, 3)]
        pmaps = [torch.ones(1, 1)] + [tensors.pinv_project(c) for c in cmaps[1:]]
    finally:
        torch.set_default_dtype(default)
    with torch.no_grad():
        for stored, exact in zip(network.tensor_extractor.pmaps, pmaps, strict=False):
            stored.copy_(exact)
        for block in network.blocks:
            for stored, exact in zip(block[0].base_layer.invars.cmaps, cmaps, strict=True):
                stored.copy_(exact)


@pytest.mark.parametrize(("l_max", "n_max"), [(2, 2), (2, 3), (2, 4), (3, 2), (3, 3), (3, 4)])
def test_live_parity_with_hippynn_hiphop(l_max, n_max, mixed_batch):
    """HIP-HOP-NN against hippynn's ``HipHopNNModule`` with its weights copied in."""
    hiphop = pytest.importorskip("hippynn.networks.hiphop")
    targets = pytest.importorskip("hippynn.layers.targets")
    torch.manual_seed(10 * l_max + n_max)
    with pytest.warns(UserWarning, match="beta"):
        network = hiphop.HipHopNNModule(
            possible_species=[0, *SPECIES], l_max=l_max, n_max=n_max, **NET_KWARGS
        )
    network = network.double()
    _exact_hiphop_maps(network)
    head = targets.HEnergy([len(SPECIES)] + [NET_KWARGS["n_features"]] * 2).double()
    with torch.no_grad():  # non-trivial scales, biases and group-norm affines everywhere
        for p in list(network.parameters()) + list(head.parameters()):
            if p.dim() == 1 and p.requires_grad:
                p.add_(0.1 * torch.randn_like(p))
    z, pos, batch = mixed_batch
    ref_energy, ref_atom, ref_hier, ref_forces = _hippynn_outputs(
        network, head, z, pos, batch, NET_KWARGS["dist_hard_max"]
    )

    model = HipNN(SPECIES, l_max=l_max, n_max=n_max, **NET_KWARGS).double()
    load_hippynn_weights(model, network.state_dict(), head.state_dict())
    out = model.predict(z, pos, batch)

    _assert_matches(out, ref_energy, ref_atom, ref_hier, ref_forces)
