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
applied first), then per atom and channel the invariants: polynomials of the 16 sums, each
intermediate one row of ``N · f_out`` values.
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


Symmetric = tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]
"""A symmetric 3 × 3 matrix of rows ``[M]`` by its six distinct entries ``(00, 01, 02, 11, 12, 22)``."""
Vector = tuple[Tensor, Tensor, Tensor]
PAIRS = ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))
"""Row and column of each of the six entries of a :data:`Symmetric`."""
ENTRY = ((0, 1, 2), (1, 3, 4), (2, 4, 5))
"""``ENTRY[i][j]``: the position of ``(i j)`` among the six entries of a :data:`Symmetric`."""


def _dot(u: Vector, w: Vector) -> Tensor:
    return u[0] * w[0] + u[1] * w[1] + u[2] * w[2]


def _symmetric_dot(a: Symmetric, b: Symmetric) -> Tensor:
    """``Σ_ij A_ij B_ij``."""
    return a[0] * b[0] + a[3] * b[3] + a[5] * b[5] + 2.0 * (a[1] * b[1] + a[2] * b[2] + a[4] * b[4])


def _rows(a: Symmetric) -> tuple[Vector, Vector, Vector]:
    """The three rows ``A_i·`` of the full matrix."""
    return tuple(tuple(a[ENTRY[i][j]] for j in range(3)) for i in range(3))


def _apply(a: Symmetric, v: Vector) -> Vector:
    """``(A v)_i = Σ_j A_ij v_j``."""
    return tuple(_dot(row, v) for row in _rows(a))


def _square(a: Symmetric) -> Symmetric:
    """``(A A)_ij = Σ_k A_ik A_kj`` (symmetric for a symmetric ``A``)."""
    rows = _rows(a)
    return tuple(_dot(rows[i], rows[j]) for i, j in PAIRS)


def _outer(v: Vector) -> Symmetric:
    """``v vᵀ``."""
    return tuple(v[i] * v[j] for i, j in PAIRS)


OCTUPOLE_FREE = ((0, 0, 0), (0, 0, 1), (0, 0, 2), (0, 1, 1), (0, 1, 2), (1, 1, 1), (1, 1, 2))
"""The seven free components of a traceless symmetric ``T_ijk`` (``C = 9 … 15`` of the sums)."""


def _octupole_slices(free: list[Tensor]) -> tuple[Symmetric, Symmetric, Symmetric]:
    """The slices ``S_k = T_··k`` of the traceless symmetric octupole from its seven free
    components; ``T_αzz = -(T_αxx + T_αyy)`` for ``α = x, y, z``."""
    entries = dict(zip(OCTUPOLE_FREE, free, strict=True))
    for alpha in range(3):
        entries[tuple(sorted((alpha, 2, 2)))] = -(
            entries[tuple(sorted((alpha, 0, 0)))] + entries[tuple(sorted((alpha, 1, 1)))]
        )
    return tuple(tuple(entries[tuple(sorted((i, j, k)))] for i, j in PAIRS) for k in range(3))


def hop_invariants(sums: Tensor, l_max: int, n_max: int) -> Tensor:
    """``[N, C, f]`` tensor sums -> ``[N, n_inv, f]`` invariants (the module docstring).

    Every tensor entry is a row ``[M = N·f]`` and every invariant an explicit polynomial of rows
    (symmetric matrices by their six distinct entries, the octupole by its three slices
    ``T_··k``): no constant map is applied as a matrix product and no stacked intermediate is
    built, so a compiled step fuses each pass over the invariants into loops over ``M``."""
    n_atoms, n_components, n_channels = sums.shape
    x = list(sums.transpose(0, 1).reshape(n_components, n_atoms * n_channels).unbind(0))
    found: dict[int, Tensor] = {0: x[0]}
    v = (x[1], x[2], x[3])
    if l_max >= 1 and n_max >= 2:
        found[1] = _dot(v, v)
    if l_max >= 2:
        q = (x[4], x[5], x[6], x[7], x[8], -(x[4] + x[7]))
        found[2] = _symmetric_dot(q, q)
        if n_max >= 3:
            a = _square(q)
            c = _apply(q, v)
            found[3] = _symmetric_dot(a, q)
            found[6] = _dot(c, v)
        if n_max >= 4:
            found[7] = _dot(c, c)
    if l_max >= 3:
        slices = _octupole_slices(x[9:16])
        b = tuple(_symmetric_dot(slices[k], slices[m]) for k, m in PAIRS)
        found[4] = b[0] + b[3] + b[5]
        if n_max >= 3:
            found[10] = _symmetric_dot(b, q)
        if n_max >= 4:
            d = tuple(_dot((slices[0][p], slices[1][p], slices[2][p]), v) for p in range(6))  # T_ijk v_k
            e = tuple(_symmetric_dot(slices[k], q) for k in range(3))  # T_ijk Q_ij
            vv = _outer(v)
            found[5] = _symmetric_dot(b, b)
            found[8] = _symmetric_dot(d, vv)
            found[9] = _symmetric_dot(b, vv)
            found[11] = _symmetric_dot(b, a)
            found[12] = _dot(e, e)
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
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        nn.init.xavier_normal_(self.mixing_weights)
        if self.group_norm is not None:
            self.group_norm.reset_parameters()

    def regularization_parameters(self) -> list[Tensor]:
        return [*super().regularization_parameters(), self.mixing_weights]

    def combine(self, sums: Tensor, x: Tensor) -> Tensor:
        invariants = hop_invariants(sums, self.l_max, self.n_max)  # [N, n_inv, f]
        if self.group_norm is not None:
            n_atoms = invariants.shape[0]
            invariants = self.group_norm(invariants.reshape(n_atoms, -1)).view_as(invariants)
        return torch.einsum("nkf,fkg->ng", invariants, self.mixing_weights) + self.self_interaction(x)
