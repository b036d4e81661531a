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

from .interaction import N_COMPONENTS, TensorInteraction

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
    m = torch.zeros(3, 3, 5, dtype=torch.float64)
    for k, (i, j) in enumerate([(0, 0), (0, 1), (0, 2), (1, 1), (1, 2)]):
        m[i, j, k] = m[j, i, k] = 1.0
    m[2, 2, 0] = m[2, 2, 3] = -1.0
    return m


def _octupole_map() -> Tensor:
    """``[3, 3, 3, 7]``: the traceless symmetric ``T`` from ``(xxx, xxy, xxz, xyy, xyz, yyy, yyz)``;
    the others follow from ``T_αzz = -(T_αxx + T_αyy)``."""
    free = [(0, 0, 0), (0, 0, 1), (0, 0, 2), (0, 1, 1), (0, 1, 2), (1, 1, 1), (1, 1, 2)]
    index = {key: k for k, key in enumerate(free)}
    m = torch.zeros(3, 3, 3, 7, dtype=torch.float64)
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


def _component_rows(n_components: int) -> dict[str, Tensor]:
    """Every entry of ``s, v, Q`` (and ``T`` when ``n_components = 16``) as a row
    ``[n_components]`` over the sums' components, named ``s``, ``v0``, ``Q01``, ``T012``
    (indices 0, 1, 2 for x, y, z)."""
    identity = torch.eye(16, dtype=torch.float64)
    quadrupole, octupole = _quadrupole_map(), _octupole_map()
    rows = {"s": identity[0]}
    for i in range(3):
        rows[f"v{i}"] = identity[1 + i]
        for j in range(3):
            rows[f"Q{i}{j}"] = identity[4:9].T @ quadrupole[i, j]
            for k in range(3):
                rows[f"T{i}{j}{k}"] = identity[9:16].T @ octupole[i, j, k]
    return {name: row[:n_components] for name, row in rows.items() if n_components == 16 or name[0] != "T"}


Products = list[tuple[float, str, str]]
"""A sum of weighted products of two named quantities."""

UPPER = [(i, j) for i in range(3) for j in range(i, 3)]
"""The six ``(i, j)`` with ``i ≤ j`` of a symmetric ``3 × 3`` tensor."""


def _multiplicity(i: int, j: int) -> float:
    """How often the entry ``(i, j)``, ``i ≤ j``, of a symmetric tensor occurs among all nine."""
    return 1.0 if i == j else 2.0


def _contract(left: str, right: str) -> Products:
    """``A : B = Σ_ij A_ij B_ij`` of two symmetric tensors, over their six distinct entries."""
    return [(_multiplicity(i, j), f"{left}{i}{j}", f"{right}{i}{j}") for i, j in UPPER]


def _dot(left: str, right: str) -> Products:
    return [(1.0, f"{left}{i}", f"{right}{i}") for i in range(3)]


def _quadratics() -> dict[str, Products]:
    """The quadratic intermediates as products of tensor entries: ``vv_ij = v_i v_j``,
    ``a_ij = Q_ik Q_kj``, ``c_j = Q_ij v_i``, ``b_kl = T_ijk T_ijl``, ``d_ij = T_ijk v_k`` and
    ``e_k = T_ijk Q_ij`` (symmetric ones by their six distinct entries)."""
    found: dict[str, Products] = {}
    for i, j in UPPER:
        found[f"vv{i}{j}"] = [(1.0, f"v{i}", f"v{j}")]
        found[f"a{i}{j}"] = [(1.0, f"Q{i}{k}", f"Q{k}{j}") for k in range(3)]
        found[f"b{i}{j}"] = [(_multiplicity(p, q), f"T{p}{q}{i}", f"T{p}{q}{j}") for p, q in UPPER]
        found[f"d{i}{j}"] = [(1.0, f"T{i}{j}{k}", f"v{k}") for k in range(3)]
    for k in range(3):
        found[f"c{k}"] = [(1.0, f"Q{i}{k}", f"v{i}") for i in range(3)]
        found[f"e{k}"] = [(_multiplicity(p, q), f"T{p}{q}{k}", f"Q{p}{q}") for p, q in UPPER]
    return found


def _trace(name: str) -> list[tuple[float, str]]:
    return [(1.0, f"{name}{i}{i}") for i in range(3)]


INVARIANT_TERMS: dict[int, tuple[list[tuple[float, str]], Products]] = {
    0: ([(1.0, "s")], []),
    1: (_trace("vv"), []),
    2: (_trace("a"), []),
    3: ([], _contract("a", "Q")),
    4: (_trace("b"), []),
    5: ([], _contract("b", "b")),
    6: ([], _dot("c", "v")),
    7: ([], _dot("c", "c")),
    8: ([], _contract("d", "vv")),
    9: ([], _contract("vv", "b")),
    10: ([], _contract("b", "Q")),
    11: ([], _contract("b", "a")),
    12: ([], _dot("e", "e")),
}
"""Invariant number -> (linear terms, product terms) in the tensor entries and the quadratics
of :func:`_quadratics`: ``I1 = tr vv``, ``I3 = a : Q``, ``I8 = d : vv`` and so on."""


class InvariantProgram(nn.Module):
    """The invariants of a set as two rounds of "linear maps, multiply, sum" over the sums.

    With the sums of one channel as ``u [C]`` (``s, v, Q`` and, for ``C = 16``, ``T`` free
    components)::

        q   = M₁ ((A₁ u) ⊙ (B₁ u))              the quadratics of :func:`_quadratics`  [n_q]
        x   = [u; q]
        I   = M₂ ((A₂ x) ⊙ (B₂ x)) + L₂ x        the invariants  [n_inv]

    The rows of ``A, B`` are the entries that each product term reads, ``M`` holds the terms'
    weights. Every channel of every atom is one column, so each step is one matrix product or one
    elementwise product over ``[rows, N · f]``: a few large operations, cheap to differentiate
    twice, instead of many small tensor contractions.

    Args: numbers: the hippynn invariant numbers to compute, in order; n_components: ``C``.
    """

    def __init__(self, numbers: tuple[int, ...], n_components: int):
        super().__init__()
        entries = _component_rows(n_components)
        quadratics = _quadratics()
        read = {name for k in numbers for _, *names in INVARIANT_TERMS[k][1] for name in names}
        read |= {name for k in numbers for _, name in INVARIANT_TERMS[k][0]}
        needed = [name for name in quadratics if name in read]
        width = n_components + len(needed)

        def row(name: str) -> Tensor:
            """A tensor entry or a quadratic as a row over ``x = [u; q]``."""
            if name in entries:
                return torch.cat([entries[name], torch.zeros(len(needed), dtype=torch.float64)])
            return torch.eye(width, dtype=torch.float64)[n_components + needed.index(name)]

        first = [(q, term) for q, name in enumerate(needed) for term in quadratics[name]]
        second = [(k, term) for k, n in enumerate(numbers) for term in INVARIANT_TERMS[n][1]]
        linear = torch.zeros(len(numbers), width, dtype=torch.float64)
        for k, n in enumerate(numbers):
            for weight, name in INVARIANT_TERMS[n][0]:
                linear[k] += weight * row(name)
        self._buffer("left1", [entries[t[1]] for _, t in first], n_components)
        self._buffer("right1", [entries[t[2]] for _, t in first], n_components)
        self._buffer("weights1", _weights(first, len(needed)), None)
        self._buffer("left2", [row(t[1]) for _, t in second], width)
        self._buffer("right2", [row(t[2]) for _, t in second], width)
        self._buffer("weights2", _weights(second, len(numbers)), None)
        self._buffer("linear2", linear, None)

    def _buffer(self, name: str, rows: list[Tensor] | Tensor, width: int | None) -> None:
        value = rows if isinstance(rows, Tensor) else torch.stack(rows) if rows else torch.zeros(0, width)
        self.register_buffer(name, value.to(torch.float64), persistent=False)

    def forward(self, sums: Tensor) -> Tensor:
        """``[N, C, f]`` sums -> ``[N, n_inv, f]`` invariants."""
        n_atoms, n_components, n_channels = sums.shape
        left1, right1, weights1, left2, right2, weights2, linear2 = (
            getattr(self, name).to(sums.dtype)
            for name in ("left1", "right1", "weights1", "left2", "right2", "weights2", "linear2")
        )
        u = sums.transpose(0, 1).reshape(n_components, -1)  # [C, N·f]
        x = torch.cat([u, weights1 @ ((left1 @ u) * (right1 @ u))])
        invariants = linear2 @ x
        if left2.shape[0]:
            invariants = invariants + weights2 @ ((left2 @ x) * (right2 @ x))
        return invariants.view(-1, n_atoms, n_channels).transpose(0, 1)


def _weights(terms: list[tuple[int, tuple[float, str, str]]], n_outputs: int) -> Tensor:
    """``[n_outputs, n_terms]``: each term's weight in the row of the output it adds to."""
    weights = torch.zeros(n_outputs, len(terms), dtype=torch.float64)
    for column, (output, (weight, _, _)) in enumerate(terms):
        weights[output, column] = weight
    return weights


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
        self.invariants = InvariantProgram(INVARIANTS[n_max, l_max], N_COMPONENTS[l_max])
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        nn.init.xavier_normal_(self.mixing_weights)
        if self.group_norm is not None:
            self.group_norm.reset_parameters()

    def regularization_parameters(self) -> list[Tensor]:
        return [*super().regularization_parameters(), self.mixing_weights]

    def combine(self, sums: Tensor, x: Tensor) -> Tensor:
        invariants = self.invariants(sums)  # [N, n_inv, f]
        if self.group_norm is not None:
            n_atoms = invariants.shape[0]
            invariants = self.group_norm(invariants.reshape(n_atoms, -1)).view_as(invariants)
        return torch.einsum("nkf,fkg->ng", invariants, self.mixing_weights) + self.self_interaction(x)
