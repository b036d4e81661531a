"""The HIP-NN-TS interaction layer as a PyG ``MessagePassing`` module.

For a target atom ``i`` with neighbours ``j`` (unit vector ``r̂ = r_ij / d_ij``), tensor order
``l_max`` and weights ``W ∈ R^{ν × f_in × f_out}`` shared by every order (weight tying)::

    m_ij      = Σ_ν s_ν(d_ij) · (x_j W_ν)                    message, [f_out]
    a_i       = Σ_j m_ij                                      scalar
    b_i^α     = Σ_j r̂^α m_ij                                  vector (l >= 1)
    c_i^{αβ}  = Σ_j (r̂^α r̂^β - δ^{αβ}/3) m_ij                  quadrupole (l >= 2)
    out_i     = a_i + t₁ ⊙ ‖b_i‖ + t₂ ⊙ ‖c_i‖ + x_i U + u

with ``‖b‖ = sqrt(Σ_α b_α² + ε)``, ``‖c‖`` the Frobenius norm ``sqrt(Σ_{αβ} c_{αβ}² + ε)``.
The quadrupole is stored by its five free components ``(xx, xy, xz, yy, yz)``, for which
``Σ_{αβ} c_{αβ}² = 2 (Σ_k c_k² + c_xx c_yy)``.

The two norms see at most three bodies (the centre and two neighbours) per channel. With
``tensor_invariants="complete"`` (``l_max = 2``) every channel also gets the three invariants
that complete the O(3) integrity basis of one vector and one traceless symmetric tensor, as in
HIP-HOP-NN (Allen et al. 2025)::

    out_i    += t₃ ⊙ bᵀcb / (‖b‖ ‖c‖) + t₄ ⊙ tr(c³) / ‖c‖² + t₅ ⊙ ‖cb‖² / (‖b‖ ‖c‖²)

(four and five bodies; divided by the norms so that, like them, they are of degree one in the
sums; smooth, as the norms carry ``ε``; ``t₃..t₅`` start at zero, i.e. the layer starts as
HIP-NN-TS).

Cost: contracting ``x_j W`` first (``N·f_in·ν·f_out``) leaves a per-pair message of width
``f_out``; the tensor channels then cost ``P·(1+3+5)·f_out`` instead of the
``P·(1+3+5)·ν·f_in`` of summing the environment first. The fused path evaluates the messages
with two batched matrix products over padded neighbour lists, so no ``[P, ν, f]`` tensor is
ever built.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing

from ..data.graph import PairList
from .padding import place, swap
from .sensitivity import make_sensitivity

N_COMPONENTS = {0: 1, 1: 4, 2: 9, 3: 16}
TENSOR_INVARIANTS = ("norms", "complete")


def angular_basis(unit: Tensor, l_max: int) -> Tensor:
    """Per-pair tensor basis ``[P, C]``: ``1``, then ``r̂`` (l >= 1), then the traceless
    ``r̂ r̂ᵀ - I/3`` components ``(xx, xy, xz, yy, yz)`` (l >= 2), then the traceless symmetric
    octupole ``r̂_α r̂_β r̂_γ - (r̂_α δ_βγ + r̂_β δ_αγ + r̂_γ δ_αβ)/5`` components
    ``(xxx, xxy, xxz, xyy, xyz, yyy, yyz)`` (l = 3). ``C = 1, 4, 9, 16``."""
    parts = [torch.ones_like(unit[:, :1])]
    if l_max >= 1:
        parts.append(unit)
    x, y, z = unit.unbind(-1)
    if l_max >= 2:
        third = 1.0 / 3.0
        parts.append(torch.stack([x * x - third, x * y, x * z, y * y - third, y * z], dim=-1))
    if l_max >= 3:
        fifth = 0.2
        octupole = [
            x * x * x - 3 * fifth * x,
            x * x * y - fifth * y,
            x * x * z - fifth * z,
            x * y * y - fifth * x,
            x * y * z,
            y * y * y - 3 * fifth * y,
            y * y * z - fifth * z,
        ]
        parts.append(torch.stack(octupole, dim=-1))
    return torch.cat(parts, dim=-1)


def tensor_norms(components: Tensor, l_max: int, eps: float) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """Split ``[N, C, f]`` sums into the scalar ``[N, f]`` and the vector / quadrupole norms."""
    scalar = components[:, 0]
    vector_norm = quad_norm = None
    if l_max >= 1:
        vector_norm = torch.sqrt(components[:, 1:4].square().sum(1) + eps)
    if l_max >= 2:
        quad = components[:, 4:9]
        frobenius_sq = 2.0 * (quad.square().sum(1) + quad[:, 0] * quad[:, 3])
        quad_norm = torch.sqrt(frobenius_sq + eps)
    return scalar, vector_norm, quad_norm


def higher_invariants(components: Tensor, vector_norm: Tensor, quad_norm: Tensor) -> Tensor:
    """The three higher invariants per channel of ``[N, 9, f]`` sums -> ``[N, 3, f]``:
    ``bᵀcb / (‖b‖ ‖c‖)``, ``tr(c³) / ‖c‖²`` and ``‖cb‖² / (‖b‖ ‖c‖²)``, given the norms ``[N, f]``.

    Divided by the norms, each is of degree one in the sums, like ``‖b‖`` and ``‖c‖``, and bounded
    by them (``≤ ‖b‖``, ``≤ ‖c‖ / √6``, ``≤ ‖b‖``): raw cubic and quartic polynomials grow fast
    enough through the layers to make training diverge. Written out on the five free components
    ``(xx, xy, xz, yy, yz)``, ``zz = -xx - yy``, with ``tr(c³) = 3 det c`` for a traceless
    symmetric ``c`` (Cayley–Hamilton): ``[N, f]`` products, whose first and second derivatives
    cost less than broadcast ``3 × 3 × 3`` contractions (the cost against the norms alone:
    ``benchmarks/invariant_cost.py``).
    """
    bx, by, bz = components[:, 1], components[:, 2], components[:, 3]
    xx, xy, xz, yy, yz = components[:, 4:9].unbind(1)
    zz = -(xx + yy)
    cb_x = xx * bx + xy * by + xz * bz
    cb_y = xy * bx + yy * by + yz * bz
    cb_z = xz * bx + yz * by + zz * bz
    projected = bx * cb_x + by * cb_y + bz * cb_z
    determinant = xx * (yy * zz - yz * yz) - xy * (xy * zz - yz * xz) + xz * (xy * yz - yy * xz)
    quad_vector_sq = cb_x * cb_x + cb_y * cb_y + cb_z * cb_z
    quad_norm_sq = quad_norm.square()
    return torch.stack(
        [
            projected / (vector_norm * quad_norm),
            3.0 * determinant / quad_norm_sq,
            quad_vector_sq / (vector_norm * quad_norm_sq),
        ],
        dim=1,
    )


def pseudoscalar(components: Tensor, vector_norm: Tensor, quad_norm: Tensor) -> Tensor:
    """The chirality feature per channel of ``[N, C ≥ 9, f]`` sums -> ``[N, f]``:
    ``b · (cb × c²b) / (‖b‖² ‖c‖³)``.

    The triple product of ``b``, ``cb`` and ``c²b`` is the lowest-degree pseudoscalar of one vector
    and one traceless symmetric tensor: invariant under rotations, odd under reflections (and
    under inversion, which flips ``b``). Divided by the norms it is of degree one in the sums and
    bounded by ``‖b‖`` (as ``|b · (x × y)| ≤ ‖b‖ ‖x‖ ‖y‖`` and ``‖cb‖ ≤ ‖c‖ ‖b‖``); the norms
    carry ``ε``, so it is smooth where ``b`` or ``c`` vanish. Given the norms ``[N, f]``.
    """
    b = components[:, 1:4]
    xx, xy, xz, yy, yz = components[:, 4:9].unbind(1)
    zz = -(xx + yy)
    rows = torch.stack(
        [torch.stack([xx, xy, xz], 1), torch.stack([xy, yy, yz], 1), torch.stack([xz, yz, zz], 1)], 1
    )  # [N, 3, 3, f]
    cb = torch.einsum("nijf,njf->nif", rows, b)
    ccb = torch.einsum("nijf,njf->nif", rows, cb)
    triple = (b * torch.cross(cb, ccb, dim=1)).sum(1)
    return triple / (vector_norm.square() * quad_norm.pow(3))


def _padded(values: Tensor, pairs: PairList) -> Tensor:
    """Per-pair rows ``[P, ...]`` placed in neighbour-list padding ``[N, K, ...]`` (zeros)."""
    padded = place(values, _slots(pairs), pairs.n_atoms * pairs.max_neighbours, pairs.scatter_only)
    return padded.view(pairs.n_atoms, pairs.max_neighbours, *values.shape[1:])


def _slots(pairs: PairList) -> Tensor:
    """``[P]`` each pair's slot ``i·K + k`` in the flattened padding (distinct)."""
    return pairs.memo("slots", lambda: pairs.target * pairs.max_neighbours + pairs.slot)


def _reverse_slots(pairs: PairList) -> Tensor:
    """``[N·K]`` the involution of the flattened padding that swaps the slots of every pair and its
    reverse and keeps the empty slots."""

    def involution() -> Tensor:
        slots = _slots(pairs)
        identity = torch.arange(pairs.n_atoms * pairs.max_neighbours, dtype=slots.dtype, device=slots.device)
        return identity.index_put((slots,), slots[pairs.reverse])

    return pairs.memo("reverse_slots", involution)


class TensorInteraction(MessagePassing):
    """What every tensor-sensitivity interaction shares: the sensitivities ``s_ν``, the weights
    ``W [ν, f_in, f_out]`` tied across tensor orders, the self-interaction ``x U + u``, and the
    per-atom tensor sums ``Σ_j T_l(r̂_ij) m_ij`` ``[N, C, f_out]`` (:meth:`tensor_sums`).
    Subclasses define ``combine(sums [N, C, f_out], x [N, f_in]) -> [N, f_out]``, which turns the
    sums into invariant output features; :meth:`forward` adds the optional chirality feature."""

    max_l = 2

    def __init__(
        self,
        in_features: int,
        out_features: int,
        n_sensitivities: int,
        dist_soft_min: float,
        dist_soft_max: float,
        dist_hard_max: float,
        l_max: int = 0,
        sensitivity_type: str = "inverse",
        pseudoscalars: bool = False,
        cusp_reg: float = 1e-6,
    ):
        super().__init__(aggr="sum", node_dim=0)
        if not 0 <= l_max <= self.max_l:
            raise ValueError(f"l_max must be 0 … {self.max_l} for {type(self).__name__}, got {l_max}")
        if pseudoscalars and l_max < 2:
            raise ValueError(
                f"pseudoscalars need l_max >= 2 (a vector and a quadrupole), got l_max = {l_max}"
            )
        self.cusp_reg = cusp_reg
        self.in_features, self.out_features, self.l_max = in_features, out_features, l_max
        self.n_sensitivities = n_sensitivities
        self.sensitivity = make_sensitivity(
            sensitivity_type, n_sensitivities, dist_soft_min, dist_soft_max, dist_hard_max
        )
        self.weight = nn.Parameter(torch.empty(n_sensitivities, in_features, out_features))
        self.self_interaction = nn.Linear(in_features, out_features)
        self.chiral_scale = nn.Parameter(torch.zeros(out_features)) if pseudoscalars else None

    def reset_parameters(self) -> None:
        super().reset_parameters()
        # Xavier-normal with the fans of HIP-NN's (ν, f_out, f_in) layout.
        nn.init.xavier_normal_(self.weight.data.permute(0, 2, 1))
        nn.init.xavier_normal_(self.self_interaction.weight)
        nn.init.zeros_(self.self_interaction.bias)
        if self.chiral_scale is not None:
            nn.init.zeros_(self.chiral_scale)  # the layer starts reflection-invariant

    def chirality(self, sums: Tensor) -> Tensor | int:
        """``t_χ ⊙`` :func:`pseudoscalar` ``[N, f_out]``, or 0 without pseudoscalars."""
        if self.chiral_scale is None:
            return 0
        _, vector_norm, quad_norm = tensor_norms(sums, 2, self.cusp_reg)
        return self.chiral_scale * pseudoscalar(sums, vector_norm, quad_norm)

    def regularization_parameters(self) -> list[Tensor]:
        return [self.weight, self.self_interaction.weight]

    def tensor_sums(self, x: Tensor, pairs: PairList, fused: bool = True) -> Tensor:
        """``[N, C, f_out]``: for every atom the sums ``Σ_j T_c(r̂_ij) Σ_ν s_ν(d_ij) (x_j W_ν)``."""
        sense = self.sensitivity(pairs.dist[pairs.canonical])[pairs.from_canonical]  # [P, ν], symmetric
        basis = pairs.memo(
            f"basis{self.l_max}", lambda: angular_basis(pairs.vec / pairs.dist.unsqueeze(-1), self.l_max)
        )
        # y_j = x_j W_ν for every ν: [N, ν, f_out]
        y = torch.matmul(x.unsqueeze(0), self.weight).transpose(0, 1)
        if fused and pairs.traced:  # a sparse adjacency's size would be fixed by the trace
            return self.message_and_aggregate(pairs.edge_index, y, sense, basis, pairs)
        edges = pairs.memo("adjacency", pairs.adjacency) if fused else pairs.edge_index
        return self.propagate(
            edges, y=y, sense=sense, basis=basis, pairs=pairs, size=(x.shape[0], x.shape[0])
        )

    def message(self, y_j: Tensor, sense: Tensor, basis: Tensor) -> Tensor:
        """Plain path: ``[P, ν, f]`` gathered features -> ``[P, C, f]`` tensor messages."""
        message = torch.einsum("pv,pvf->pf", sense, y_j)
        return basis.unsqueeze(-1) * message.unsqueeze(1)

    def message_and_aggregate(
        self, adj_t: Tensor, y: Tensor, sense: Tensor, basis: Tensor, pairs: PairList
    ) -> Tensor:
        """Fused path over padded neighbour lists ``[N, K, ·]``; returns ``[N, C, f_out]``.

        Sensitivities are symmetric, so row ``j`` of the padded sensitivities lists
        ``s(d_jk)`` for the neighbours ``k`` of ``j``: one ``bmm`` gives every message leaving
        ``j``. Swapping the slots of every pair and its reverse puts each message in the slot of
        the pair it arrives through, and a second
        ``bmm`` with the angular basis sums the messages arriving at each target.
        """
        n_atoms, k_max = pairs.n_atoms, pairs.max_neighbours
        if k_max == 0:
            return y.new_zeros(n_atoms, basis.shape[1], self.out_features)
        outgoing = torch.bmm(_padded(sense, pairs), y).view(n_atoms * k_max, self.out_features)
        arriving = swap(outgoing, _reverse_slots(pairs), pairs.scatter_only).view(n_atoms, k_max, -1)
        padded_basis = pairs.memo(
            f"padded_basis{basis.shape[1]}", lambda: _padded(basis, pairs).transpose(1, 2)
        )
        return torch.bmm(padded_basis, arriving)

    def forward(self, x: Tensor, pairs: PairList, fused: bool = True) -> Tensor:
        sums = self.tensor_sums(x, pairs, fused)
        return self.combine(sums, x) + self.chirality(sums)


class HipInteraction(TensorInteraction):
    """One HIP-NN / HIP-NN-TS interaction layer (see the module docstring for the math).

    Args:
        in_features: ``f_in``. out_features: ``f_out``. n_sensitivities: ``ν``.
        dist_soft_min, dist_soft_max, dist_hard_max: sensitivity range and cutoff.
        l_max: tensor order, 0 (HIP-NN), 1 or 2 (HIP-NN-TS).
        sensitivity_type: ``"inverse"`` or ``"gaussian"``.
        cusp_reg: ``ε`` inside the tensor norms.
        tensor_invariants: ``"norms"`` (HIP-NN-TS) or ``"complete"`` (adds the three higher
            invariants of the module docstring; needs ``l_max = 2``).
        pseudoscalars: add ``t_χ ⊙`` :func:`pseudoscalar` (``l_max >= 2``; ``t_χ`` starts at 0),
            which tells a structure from its mirror image.

    ``forward(x [N, f_in], pairs) -> [N, f_out]`` (no activation). Passing
    ``fused=False`` evaluates the same sums through PyG's plain message / aggregate path.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        n_sensitivities: int,
        dist_soft_min: float,
        dist_soft_max: float,
        dist_hard_max: float,
        l_max: int = 0,
        sensitivity_type: str = "inverse",
        cusp_reg: float = 1e-6,
        tensor_invariants: str = "norms",
        pseudoscalars: bool = False,
    ):
        super().__init__(
            in_features,
            out_features,
            n_sensitivities,
            dist_soft_min,
            dist_soft_max,
            dist_hard_max,
            l_max,
            sensitivity_type,
            pseudoscalars,
            cusp_reg,
        )
        if tensor_invariants not in TENSOR_INVARIANTS:
            raise ValueError(
                f"tensor_invariants must be one of {TENSOR_INVARIANTS}, got {tensor_invariants!r}"
            )
        if tensor_invariants == "complete" and l_max != 2:
            raise ValueError(f"tensor_invariants='complete' needs l_max = 2, got l_max = {l_max}")
        self.vector_scale = nn.Parameter(torch.empty(out_features)) if l_max >= 1 else None
        self.quad_scale = nn.Parameter(torch.empty(out_features)) if l_max >= 2 else None
        complete = tensor_invariants == "complete"
        self.higher_scale = nn.Parameter(torch.empty(3, out_features)) if complete else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        for scale in (self.vector_scale, self.quad_scale):
            if scale is not None:
                nn.init.normal_(scale)
        if self.higher_scale is not None:
            nn.init.zeros_(self.higher_scale)

    def combine(self, sums: Tensor, x: Tensor) -> Tensor:
        scalar, vector_norm, quad_norm = tensor_norms(sums, self.l_max, self.cusp_reg)
        out = scalar + self.self_interaction(x)
        if vector_norm is not None:
            out = out + self.vector_scale * vector_norm
        if quad_norm is not None:
            out = out + self.quad_scale * quad_norm
        if self.higher_scale is not None:
            out = out + (self.higher_scale * higher_invariants(sums, vector_norm, quad_norm)).sum(1)
        return out
