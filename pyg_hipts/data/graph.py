"""Radius graphs of molecules in a batch, and the pair list the interaction layers consume.

Convention (PyG ``source_to_target``): ``edge_index[0]`` is the source atom ``j`` and
``edge_index[1]`` the target atom ``i`` that receives the message. The pair vector is
``r_ij = pos[j] - pos[i] (+ periodic shift)`` and ``d_ij = |r_ij|``; pairs never join an atom to
itself, and both directions of every pair are listed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

try:  # optional compiled neighbour search
    import torch_cluster

    HAS_TORCH_CLUSTER = True
except ImportError:  # pragma: no cover - depends on the environment
    torch_cluster = None
    HAS_TORCH_CLUSTER = False


def validate_atoms(z: Tensor, pos: Tensor, batch: Tensor | None) -> Tensor:
    """Check the inputs of a forward pass and return ``batch`` (all zeros when ``None``).

    Raises ``ValueError`` naming the problem for: an empty batch, ``pos`` not of shape
    ``[N, 3]``, ``z`` not of shape ``[N]``, ``batch`` not of shape ``[N]``, not sorted, not
    starting at 0 or with gaps (a missing structure index would be a phantom structure of
    energy 0), and NaN or infinite positions.
    """
    if pos.dim() != 2 or pos.shape[-1] != 3:
        raise ValueError(f"pos must have shape [N, 3], got {list(pos.shape)}")
    n_atoms = pos.shape[0]
    if n_atoms == 0:
        raise ValueError("empty batch: there are no atoms")
    if z.dim() != 1 or z.shape[0] != n_atoms:
        raise ValueError(f"z must have shape [N] = [{n_atoms}] to match pos, got {list(z.shape)}")
    if z.is_floating_point():
        raise ValueError(f"z must hold integer species, got dtype {z.dtype}")
    if batch is not None and (batch.dim() != 1 or batch.shape[0] != n_atoms):
        raise ValueError(f"batch must have shape [N] = [{n_atoms}] to match pos, got {list(batch.shape)}")
    finite = torch.isfinite(pos).all()
    if batch is None:
        batch = torch.zeros(n_atoms, dtype=torch.long, device=pos.device)
    step = torch.diff(batch, prepend=batch[:1])  # 0 or 1 from atom to atom
    bad = (step < 0) | (step > 1)
    bad[0] = batch[0] != 0
    if not bool(finite & ~bad.any()):  # one host synchronisation; the details only for bad input
        _raise_for_input(pos, batch, step)
    return batch


def _raise_for_input(pos: Tensor, batch: Tensor, step: Tensor) -> None:
    """The error for non-finite positions or a malformed ``batch`` (see :func:`validate_atoms`)."""
    if not torch.isfinite(pos).all():
        bad = (~torch.isfinite(pos)).any(dim=1).nonzero().flatten()
        raise ValueError(f"pos holds NaN or infinite values at atoms {bad[:10].tolist()}")
    if bool((step[1:] < 0).any()):
        raise ValueError("batch must be sorted (atoms of one structure contiguous, as PyG batches are)")
    if int(batch[0]) != 0:
        raise ValueError(
            f"batch must number the structures from 0; the first atom is in structure {int(batch[0])}"
        )
    atom = int((step > 1).nonzero()[0])
    raise ValueError(
        f"batch must number the structures 0, 1, …, B−1 without gaps; it jumps from "
        f"{int(batch[atom - 1])} to {int(batch[atom])} at atom {atom}"
    )


def _radius_graph_dense(pos: Tensor, cutoff: float, batch: Tensor) -> Tensor:
    """Pure-torch radius graph: all pairs of each structure, padded to the largest one.

    Memory ``O(B · n_max²)``; exact (no neighbour cap). Returns ``edge_index`` ``[2, P]``.
    """
    counts = torch.bincount(batch)
    starts = torch.cumsum(counts, 0) - counts
    n_max = int(counts.max())
    local = torch.arange(pos.shape[0], device=pos.device) - starts[batch]
    dense = pos.new_zeros(counts.shape[0], n_max, 3)
    real = torch.zeros(counts.shape[0], n_max, dtype=torch.bool, device=pos.device)
    dense[batch, local] = pos.detach()
    real[batch, local] = True
    dist2 = (dense.unsqueeze(2) - dense.unsqueeze(1)).square().sum(-1)
    keep = (dist2 <= cutoff * cutoff) & real.unsqueeze(2) & real.unsqueeze(1)
    keep &= ~torch.eye(n_max, dtype=torch.bool, device=pos.device)
    mol, target, source = keep.nonzero(as_tuple=True)
    return torch.stack([source + starts[mol], target + starts[mol]])


def radius_graph(pos: Tensor, cutoff: float, batch: Tensor, use_torch_cluster: bool | None = None) -> Tensor:
    """Directed pairs ``(j -> i)`` of distinct atoms with ``|pos_j - pos_i| <= cutoff`` within each
    structure (coincident atoms, ``d = 0``, are pairs too, so that callers can refuse them).

    Uses torch-cluster when it is importable (``use_torch_cluster=None``), else the pure-torch
    search; both give the same set of pairs. There is no neighbour cap: torch-cluster is called
    with ``max_num_neighbors`` equal to the largest structure. Returns ``[2, P]`` sorted by target.
    """
    if use_torch_cluster is None:
        use_torch_cluster = HAS_TORCH_CLUSTER
    if use_torch_cluster:
        if not HAS_TORCH_CLUSTER:
            raise ImportError("torch-cluster is not installed; install the 'fast' extra")
        largest = int(torch.bincount(batch).max())
        edge_index = torch_cluster.radius_graph(
            pos.detach(), r=cutoff, batch=batch, loop=False, max_num_neighbors=largest
        )
    else:
        edge_index = _radius_graph_dense(pos, cutoff, batch)
    return edge_index[:, target_order(edge_index, pos.shape[0])]


def target_order(edge_index: Tensor, n_atoms: int) -> Tensor:
    """Permutation ``[P]`` that orders pairs by target atom, then source atom (stable)."""
    return torch.argsort(edge_index[1] * n_atoms + edge_index[0], stable=True)


@dataclass
class PairList:
    """Pairs of a batch with the geometry that carries gradients to ``pos``.

    Attributes:
        edge_index: ``[2, P]`` (source ``j``, target ``i``), sorted by target.
        vec: ``[P, 3]`` pair vectors ``r_ij = pos_j - pos_i (+ shift)``.
        dist: ``[P]`` distances ``|r_ij|``.
        n_atoms: number of atoms ``N``.
        slot: ``[P]`` position of each pair within its target's neighbour list.
        reverse: ``[P]`` index of the pair ``(i -> j)`` of each pair ``(j -> i)``.
        max_neighbours: ``K``, the longest neighbour list.
        canonical: ``[P / 2]`` indices of the pairs listed before their reverse.
        from_canonical: ``[P]`` position in ``canonical`` of each pair or of its reverse.
        has_layout: whether ``slot``, ``reverse``, ``max_neighbours`` and ``canonical`` describe
            the neighbour lists (:func:`build_pair_list`); ``False`` for the geometry-only lists
            of :func:`plain_pair_list`, which models evaluate without the padded layout.
        shifts: ``[P, 3]`` the periodic image shifts inside ``vec`` (``None``: no shifts).
        traced: whether the list lives in a traced graph, where models must not synchronise with
            the host (no checks of values).
        scatter_only: whether models move per-pair rows by scatters only (``pyg_hipts.nn.padding``),
            for a traced graph that is differentiated again (compiled training).

    Functions of the distance alone are the same for a pair and its reverse, so they can be
    evaluated on one direction of each pair (``dist[canonical]``, ``[P / 2]``) and spread back
    with ``[from_canonical]`` (``[P]``).
    """

    edge_index: Tensor
    vec: Tensor
    dist: Tensor
    n_atoms: int
    slot: Tensor
    reverse: Tensor
    max_neighbours: int
    canonical: Tensor
    from_canonical: Tensor
    has_layout: bool = True
    shifts: Tensor | None = None
    traced: bool = False
    scatter_only: bool = False
    _memo: dict[str, Tensor] = field(default_factory=dict, repr=False)

    def memo(self, key: str, compute: Callable[[], Tensor]) -> Tensor:
        """``compute()`` once per pair list: values every interaction layer shares (the angular
        basis, its padded form, the adjacency)."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    @property
    def source(self) -> Tensor:
        return self.edge_index[0]

    @property
    def target(self) -> Tensor:
        return self.edge_index[1]

    @property
    def n_pairs(self) -> int:
        return self.edge_index.shape[1]

    def adjacency(self) -> Tensor:
        """Sparse ``[N, N]`` adjacency with rows = targets (PyG's ``adj_t``)."""
        ones = torch.ones(self.n_pairs, dtype=self.vec.dtype, device=self.vec.device)
        return torch.sparse_coo_tensor(
            self.edge_index.flip(0), ones, (self.n_atoms, self.n_atoms), check_invariants=False
        )


def build_pair_list(
    pos: Tensor, edge_index: Tensor, shifts: Tensor | None = None, image_index: Tensor | None = None
) -> PairList:
    """Geometry and neighbour-list layout of target-sorted pairs.

    ``shifts`` ``[P, 3]`` are Cartesian periodic image shifts added to ``pos_j - pos_i``;
    ``image_index`` ``[P, 3]`` are the integer cell shifts that identify the image, used to find
    each pair's reverse (whose shift is the negative). Raises if the list is not symmetric.
    """
    n_atoms = pos.shape[0]
    target = edge_index[1]
    vec, dist = pair_geometry(pos, edge_index, shifts)
    n_pairs = edge_index.shape[1]
    counts = torch.bincount(target, minlength=n_atoms)
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.arange(n_pairs, device=pos.device) - starts[target]
    if n_pairs and bool((slot < 0).any()):
        raise ValueError("pairs must be sorted by target atom")
    reverse = _reverse_pairs(edge_index, n_atoms, image_index)
    max_neighbours = int(counts.max()) if n_pairs else 0
    index = torch.arange(n_pairs, device=pos.device)
    canonical = torch.nonzero(index < reverse).flatten()
    position = torch.empty_like(index)
    position[canonical] = torch.arange(len(canonical), device=pos.device)
    from_canonical = position[torch.minimum(index, reverse)]
    return PairList(
        edge_index,
        vec,
        dist,
        n_atoms,
        slot,
        reverse,
        max_neighbours,
        canonical,
        from_canonical,
        shifts=shifts,
    )


def pair_geometry(pos: Tensor, edge_index: Tensor, shifts: Tensor | None) -> tuple[Tensor, Tensor]:
    """Pair vectors ``r_ij = pos_j − pos_i (+ shift)`` ``[P, 3]`` and distances ``[P]``."""
    vec = pos[edge_index[0]] - pos[edge_index[1]]
    if shifts is not None:
        vec = vec + shifts
    return vec, torch.linalg.vector_norm(vec, dim=-1)


def plain_pair_list(pos: Tensor, edge_index: Tensor, shifts: Tensor) -> PairList:
    """Pair geometry without the neighbour-list layout: every pair is its own canonical pair
    (functions of the distance are evaluated on both directions) and no host synchronisation or
    data-dependent shape occurs, so the list can be traced into a graph (:mod:`pyg_hipts.potentials.export`).

    ``pos [N, 3]``, ``edge_index [2, P]`` (source, target), ``shifts [P, 3]`` Cartesian image shifts.
    """
    vec, dist = pair_geometry(pos, edge_index, shifts)
    index = torch.arange(edge_index.shape[1], device=pos.device)
    return PairList(
        edge_index,
        vec,
        dist,
        pos.shape[0],
        index,
        index,
        0,
        index,
        index,
        has_layout=False,
        shifts=shifts,
        traced=True,
    )


def _reverse_pairs(edge_index: Tensor, n_atoms: int, image_index: Tensor | None) -> Tensor:
    """Index of the pair ``(i -> j, -shift)`` for every pair ``(j -> i, shift)``. ``[P]``."""
    source, target = edge_index
    key = target * n_atoms + source
    reverse_key = source * n_atoms + target
    if image_index is not None:
        span = int(image_index.abs().max()) * 2 + 1 if image_index.numel() else 1
        digits = torch.tensor([span * span, span, 1], device=key.device)
        code = ((span // 2 + image_index) * digits).sum(1)
        reverse_code = ((span // 2 - image_index) * digits).sum(1)
        key = key * span**3 + code
        reverse_key = reverse_key * span**3 + reverse_code
    order = torch.argsort(key)
    sorted_key = key[order]
    found = torch.searchsorted(sorted_key, reverse_key).clamp(max=max(len(key) - 1, 0))
    if len(key) and not bool((sorted_key[found] == reverse_key).all()):
        raise ValueError("the pair list is not symmetric: some pair (j -> i) has no (i -> j)")
    return order[found]
