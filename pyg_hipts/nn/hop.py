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
applied first), then ``N · 27 · f_out`` per contraction.
"""

from __future__ import annotations

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
PAIR_WEIGHTS = (1.0, 2.0, 2.0, 1.0, 2.0, 1.0)
"""How often each appears among the nine ``(i j)``."""


def _octupole_gram(t: Tensor) -> Tensor:
    """``b_kl = Σ_ij T_ijk T_ijl`` ``[N, 3, 3, f]`` from ``T`` ``[N, 9, 3, f]``, over the six
    distinct ``(i j)`` (T is symmetric) and the six distinct ``(k, l)`` (b is symmetric): 36
    products per channel instead of 81."""
    rows = t[:, list(SYMMETRIC_PAIRS)]  # [N, 6, 3, f]
    weighted = rows * rows.new_tensor(PAIR_WEIGHTS).view(1, 6, 1, 1)
    entry = {(k, m): (weighted[:, :, k] * rows[:, :, m]).sum(1) for k in range(3) for m in range(k, 3)}
    return torch.stack([torch.stack([entry[min(k, m), max(k, m)] for m in range(3)], 1) for k in range(3)], 1)


def hop_invariants(sums: Tensor, l_max: int, n_max: int, maps: tuple[Tensor, Tensor]) -> Tensor:
    """``[N, C, f]`` tensor sums -> ``[N, n_inv, f]`` invariants (the module docstring), given the
    component maps ``(quadrupole [3, 3, 5], octupole [3, 3, 3, 7])``.

    Contractions are broadcast products summed over an axis, with the channels ``f`` last and
    contiguous: ``v [N, 3, f]``, ``Q [N, 3, 3, f]``, ``T`` as ``[N, 9, 3, f]``. (Batched matrix
    products of ``N · f`` tiny matrices cost several times more on a CPU.)"""
    n_atoms = sums.shape[0]
    found: dict[int, Tensor] = {0: sums[:, 0]}
    v = sums[:, 1:4]
    if l_max >= 1 and n_max >= 2:
        found[1] = (v * v).sum(1)
    if l_max >= 2:
        q = torch.matmul(maps[0].reshape(9, 5), sums[:, 4:9]).view(n_atoms, 3, 3, -1)
        found[2] = (q * q).sum((1, 2))
        if n_max >= 3:
            a = (q.unsqueeze(3) * q.unsqueeze(1)).sum(2)  # a_ij = Q_ik Q_kj
            c = (q * v.unsqueeze(2)).sum(1)  # c_j = Q_ij v_i
            found[3] = (a * q).sum((1, 2))
            found[6] = (c * v).sum(1)
        if n_max >= 4:
            found[7] = (c * c).sum(1)
    if l_max >= 3:
        t = torch.matmul(maps[1].reshape(27, 7), sums[:, 9:16]).view(n_atoms, 9, 3, -1)  # [N, (i j), k, f]
        b = _octupole_gram(t)  # b_kl = T_ijk T_ijl
        found[4] = torch.diagonal(b, dim1=1, dim2=2).sum(-1)
        if n_max >= 3:
            found[10] = (b * q).sum((1, 2))
        if n_max >= 4:
            d = (t * v.unsqueeze(1)).sum(2).view(n_atoms, 3, 3, -1)  # d_ij = T_ijk v_k
            e = (t * q.reshape(n_atoms, 9, 1, -1)).sum(1)  # e_k = T_ijk Q_ij
            vv = v.unsqueeze(2) * v.unsqueeze(1)
            found[5] = (b * b).sum((1, 2))
            found[8] = (vv * d).sum((1, 2))
            found[9] = (vv * b).sum((1, 2))
            found[11] = (b * a).sum((1, 2))
            found[12] = (e * e).sum(1)
    return torch.stack([found[k] for k in INVARIANTS[n_max, l_max]], dim=1)


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
        self.register_buffer("quadrupole_map", _quadrupole_map(), persistent=False)
        self.register_buffer("octupole_map", _octupole_map(), persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        nn.init.xavier_normal_(self.mixing_weights)
        if self.group_norm is not None:
            self.group_norm.reset_parameters()

    def regularization_parameters(self) -> list[Tensor]:
        return [*super().regularization_parameters(), self.mixing_weights]

    def combine(self, sums: Tensor, x: Tensor) -> Tensor:
        maps = (self.quadrupole_map.to(sums.dtype), self.octupole_map.to(sums.dtype))
        invariants = hop_invariants(sums, self.l_max, self.n_max, maps)  # [N, n_inv, f]
        if self.group_norm is not None:
            n_atoms = invariants.shape[0]
            invariants = self.group_norm(invariants.reshape(n_atoms, -1)).view_as(invariants)
        return torch.einsum("nkf,fkg->ng", invariants, self.mixing_weights) + self.self_interaction(x)
