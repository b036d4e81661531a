"""The HIP-HOP-NN interaction (Allen et al. 2025): polynomial O(3) invariants of the per-atom
tensor sums up to octupoles, group-normalised and mixed, as hippynn's ``HOPInteractionLayer``.

Per atom and channel the sums of :class:`~.interaction.TensorInteraction` give a scalar ``s``,
a vector ``v``, a traceless quadrupole ``Q`` (l ≥ 2) and a traceless symmetric octupole ``T``
(l = 3). With ``a = QQ``, ``b_kl = T_ijk T_ijl``, ``c = Qv``, ``d_ij = T_ijk v_k`` and
``e_k = T_ijk Q_ij`` the invariants, numbered as in hippynn, are::

    I0 = s            I1 = v·v          I2 = tr a         I3 = tr Q³        I4 = tr b
    I5 = b:b          I6 = vᵀQv         I7 = c·c          I8 = T(v, v, v)   I9 = vᵀbv
    I10 = b:Q         I11 = b:a         I12 = e·e

and the set for ``(l_max, n_max)`` keeps those of at most ``n_max`` tensor factors
(:data:`INVARIANTS`; 13 for (3, 4)). They are raw polynomials, of degree 1 to 4 in the sums:
``GroupNorm`` over the ``f_out`` channels of each invariant (per atom) brings them to one scale,
and a mixing weight ``M [f_out, n_inv, f_out]`` combines them::

    out_i = Σ_{f,k} GN(I)_{i,k,f} M_{f,k,g} + x_i U + u

Unlike :class:`~.interaction.HipInteraction` (whose ``"complete"`` invariants are divided by the
norms to be of degree one, and enter with one scale per channel), the scalar ``s`` also passes
through the mixing. Cost: ``P · C · f_out`` for the sums (``C = 16`` for l = 3, the weights
applied first), then per atom and channel the invariants, whose largest intermediate is the set of 28
quadratic monomials of the free octupole components.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from .interaction import TensorInteraction

INVARIANTS: dict[tuple[int, int], tuple[int, ...]] = {
    (2, 2): (0, 1, 2),
    (3, 2): (0, 1, 2, 3, 6),
    (4, 2): (0, 1, 2, 3, 6, 7),
    (2, 3): (0, 1, 2, 4),
    (3, 3): (0, 1, 2, 3, 4, 6, 10),
    (4, 3): tuple(range(13)),
}
"""``(n_max, l_max)`` -> the hippynn invariant numbers it holds (hippynn's ``_invariant_counts``
are their lengths)."""


def _quadrupole_map() -> Tensor:
    """``[3, 3, 5]``: the traceless symmetric ``Q`` from ``(xx, xy, xz, yy, yz)``."""
    m = torch.zeros(3, 3, 5)
    for k, (i, j) in enumerate([(0, 0), (0, 1), (0, 2), (1, 1), (1, 2)]):
        m[i, j, k] = m[j, i, k] = 1.0
    m[2, 2, 0] = m[2, 2, 3] = -1.0
    return m


def _octupole_map() -> Tensor:
    """``[3, 3, 3, 7]``: the traceless symmetric ``T`` from ``(xxx, xxy, xxz, xyy, xyz, yyy, yyz)``;
    the others follow from ``T_αzz = -(T_αxx + T_αyy)``."""
    free = [(0, 0, 0), (0, 0, 1), (0, 0, 2), (0, 1, 1), (0, 1, 2), (1, 1, 1), (1, 1, 2)]
    index = {key: k for k, key in enumerate(free)}
    m = torch.zeros(3, 3, 3, 7)
    for i in range(3):
        for j in range(3):
            for k in range(3):
                key = tuple(sorted((i, j, k)))
                if key in index:
                    m[i, j, k, index[key]] = 1.0
                else:  # key = (α, 2, 2): minus the two other entries of the trace over the last two
                    for other in ((key[0], 0, 0), (key[0], 1, 1)):
                        m[i, j, k, index[tuple(sorted(other))]] -= 1.0
    return m


SYMMETRIC_PAIRS = (0, 1, 2, 4, 5, 8)
"""Rows ``(i j)`` of ``[9]`` with ``i ≤ j``: 00, 01, 02, 11, 12, 22."""
PAIR_ROWS, PAIR_COLUMNS = (0, 0, 0, 1, 1, 2), (0, 1, 2, 1, 2, 2)
PAIR_WEIGHTS = (1.0, 2.0, 2.0, 1.0, 2.0, 1.0)
"""How often each appears among the nine ``(i j)``."""
PAIR_OF_ENTRY = (0, 1, 2, 1, 3, 4, 2, 4, 5)
"""The pair (of the six) that holds each of the nine entries of a symmetric 3 × 3 matrix."""


def symmetric_gram_map(linear: Tensor) -> Tensor:
    """``[6, n(n+1)/2]`` map ``G`` from the monomials ``u_a u_b`` (``a ≤ b``, row-major upper
    triangle) of ``n`` free components to the six distinct entries of ``b_kl = Σ_ij X_ijk X_ijl``,
    where ``X_(ij)k = Σ_a L_(ij)ka u_a`` is a tensor symmetric in ``(i j)``, given ``L`` as
    ``linear [6 (ij), 3 (k), n]`` over the six distinct ``(i j)``."""
    n = linear.shape[-1]
    upper_a, upper_b = torch.triu_indices(n, n)
    weights = linear.new_tensor(PAIR_WEIGHTS)
    outer = torch.einsum("p,pka,plb->klab", weights, linear, linear)[list(PAIR_ROWS), list(PAIR_COLUMNS)]
    both_orders = outer + outer.transpose(1, 2)
    return torch.where(upper_a == upper_b, outer[:, upper_a, upper_b], both_orders[:, upper_a, upper_b])


class InvariantMaps(NamedTuple):
    """Constant linear maps of :func:`hop_invariants`: ``quadrupole [6, 5]`` (the six distinct
    entries of ``Q`` from its five free components), ``octupole [18, 7]`` (``T_(ij)k`` for the six
    distinct ``(i j)`` and the three ``k`` from its seven free components), ``octupole_gram
    [6, 28]`` (:func:`symmetric_gram_map` of it) and ``monomial_pairs [2, 28]`` (the ``(a, b)``,
    ``a ≤ b``, of its monomials)."""

    quadrupole: Tensor
    octupole: Tensor
    octupole_gram: Tensor
    monomial_pairs: Tensor


def invariant_maps() -> InvariantMaps:
    """The :class:`InvariantMaps`, the linear ones in float32."""
    quadrupole = _quadrupole_map().reshape(9, 5)[list(SYMMETRIC_PAIRS)]
    octupole = _octupole_map().reshape(9, 3, 7)[list(SYMMETRIC_PAIRS)]
    gram = symmetric_gram_map(octupole)
    return InvariantMaps(quadrupole, octupole.reshape(18, 7), gram, torch.triu_indices(7, 7))


def hop_invariants(sums: Tensor, l_max: int, n_max: int, maps: InvariantMaps) -> Tensor:
    """``[N, C, f]`` tensor sums -> ``[N, n_inv, f]`` invariants (the module docstring).

    Evaluated component-major: every tensor is a stack of rows ``[·, N·f]``, so each contraction
    is a product of whole rows, and every linear map between components (free components to
    symmetric entries, monomials to ``b``) is one matrix product. Symmetric matrices are kept by
    their six distinct entries (``Q``, ``a``, ``b``, ``d``, ``v vᵀ``); ``b`` comes from the 28
    monomials of the seven free octupole components. Nothing of size ``N · 27 · f`` is built."""
    n_atoms, n_components, n_channels = sums.shape
    x = sums.transpose(0, 1).reshape(n_components, n_atoms * n_channels)
    pair_weights = sums.new_tensor(PAIR_WEIGHTS).unsqueeze(0)

    def symmetric_dot(left: Tensor, right: Tensor) -> Tensor:
        """``Σ_ij A_ij B_ij`` of two symmetric matrices given by their six entries ``[6, M]``."""
        return (pair_weights @ (left * right)).squeeze(0)

    found: dict[int, Tensor] = {0: x[0]}
    v = x[1:4]
    if l_max >= 1 and n_max >= 2:
        found[1] = (v * v).sum(0)
    if l_max >= 2:
        q = maps.quadrupole.to(x.dtype) @ x[4:9]  # [6, M]
        found[2] = symmetric_dot(q, q)
        if n_max >= 3:
            q_full = q[list(PAIR_OF_ENTRY)].view(3, 3, -1)
            a = (q_full[list(PAIR_ROWS)] * q_full[list(PAIR_COLUMNS)]).sum(1)  # a_ij = Q_ik Q_kj
            c = (q_full * v.unsqueeze(0)).sum(1)  # c_i = Q_ij v_j
            found[3] = symmetric_dot(a, q)
            found[6] = (c * v).sum(0)
        if n_max >= 4:
            found[7] = (c * c).sum(0)
    if l_max >= 3:
        free = x[9:16]
        upper_a, upper_b = maps.monomial_pairs
        monomials = free.index_select(0, upper_a) * free.index_select(0, upper_b)  # [28, M]
        b = maps.octupole_gram.to(x.dtype) @ monomials  # b_kl = T_ijk T_ijl, [6, M]
        found[4] = b[0] + b[3] + b[5]
        if n_max >= 3:
            found[10] = symmetric_dot(b, q)
        if n_max >= 4:
            t = (maps.octupole.to(x.dtype) @ free).view(6, 3, -1)  # T_(ij)k
            d = (t * v.unsqueeze(0)).sum(1)  # d_ij = T_ijk v_k
            e = (t * (pair_weights.view(6, 1, 1) * q.unsqueeze(1))).sum(0)  # e_k = T_ijk Q_ij
            vv = v[list(PAIR_ROWS)] * v[list(PAIR_COLUMNS)]
            found[5] = symmetric_dot(b, b)
            found[8] = symmetric_dot(d, vv)
            found[9] = symmetric_dot(b, vv)
            found[11] = symmetric_dot(b, a)
            found[12] = (e * e).sum(0)
    invariants = torch.stack([found[k] for k in INVARIANTS[n_max, l_max]], dim=0)
    return invariants.view(-1, n_atoms, n_channels).transpose(0, 1)


class HopInteraction(TensorInteraction):
    """One HIP-HOP-NN interaction layer (the module docstring).

    Args: those of :class:`~.interaction.TensorInteraction` (``l_max`` 2 or 3), and
        n_max: most tensor factors per invariant (2, 3 or 4); group_norm: normalise each
        invariant's channels per atom (hippynn's default); group_norm_eps: its ``ε``;
        pseudoscalars: add the chirality feature of :func:`~.interaction.pseudoscalar` (its
        scale starts at 0).
    """

    max_l = 3

    def __init__(
        self,
        in_features: int,
        out_features: int,
        n_sensitivities: int,
        dist_soft_min: float,
        dist_soft_max: float,
        dist_hard_max: float,
        l_max: int = 3,
        sensitivity_type: str = "inverse",
        n_max: int = 4,
        group_norm: bool = True,
        group_norm_eps: float = 1e-5,
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
        )
        if (n_max, l_max) not in INVARIANTS:
            supported = sorted((order, factors) for factors, order in INVARIANTS)
            raise ValueError(
                f"HIP-HOP-NN has no invariant set for l_max={l_max}, n_max={n_max}; (l, n) in {supported}"
            )
        self.n_max = n_max
        self.n_invariants = len(INVARIANTS[n_max, l_max])
        self.mixing_weights = nn.Parameter(torch.empty(out_features, self.n_invariants, out_features))
        norm = nn.GroupNorm(self.n_invariants, self.n_invariants * out_features, eps=group_norm_eps)
        self.group_norm = norm if group_norm else None
        for name, value in invariant_maps()._asdict().items():
            self.register_buffer(f"{name}_map", value, persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        nn.init.xavier_normal_(self.mixing_weights)
        if self.group_norm is not None:
            self.group_norm.reset_parameters()

    def regularization_parameters(self) -> list[Tensor]:
        return [*super().regularization_parameters(), self.mixing_weights]

    def combine(self, sums: Tensor, x: Tensor) -> Tensor:
        maps = InvariantMaps(*(getattr(self, f"{name}_map") for name in InvariantMaps._fields))
        invariants = hop_invariants(sums, self.l_max, self.n_max, maps)  # [N, n_inv, f]
        if self.group_norm is not None:
            n_atoms = invariants.shape[0]
            invariants = self.group_norm(invariants.reshape(n_atoms, -1)).view_as(invariants)
        return torch.einsum("nkf,fkg->ng", invariants, self.mixing_weights) + self.self_interaction(x)
