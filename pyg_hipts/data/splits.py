"""Train / validation / test splits of frame indices: drawing, saving, loading, validating.

A split is a ``dict`` with keys ``"train"``, ``"val"``, ``"test"``, each a 1-D ``torch.long``
tensor of frame indices; the three are disjoint.
"""

from __future__ import annotations

import hashlib
import math
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from pyg_hipts.data.readers._checks import require_path

SPLIT_NAMES = ("train", "val", "test")
FINGERPRINT_KEYS = ("n_frames", "positions_sha256")


def dataset_fingerprint(dataset) -> dict[str, np.ndarray]:
    """``n_frames`` and the SHA-256 of all species and positions (as float32, so a file read in
    either precision gives the same) of an :class:`~pyg_hipts.data.AtomsDataset` (the whole file,
    not a view); a prepared dataset gives the same, stored when it was written."""
    if hasattr(dataset, "fingerprint"):
        return dataset.fingerprint
    digest = hashlib.sha256()
    digest.update(dataset._data.z.numpy().tobytes())
    digest.update(dataset._data.pos.to(torch.float32).numpy().tobytes())
    return {
        "n_frames": np.array(dataset.frame_bounds.numel() - 1),
        "positions_sha256": np.array(digest.hexdigest()),
    }


def _counts(
    n: int,
    n_train: int | None,
    n_val: int | None,
    n_test: int | None,
    fractions: Sequence[float] | None,
) -> list[int]:
    """Sizes of train, val and test; see :func:`random_split`."""
    if fractions is not None:
        if (n_train, n_val, n_test) != (None, None, None):
            raise ValueError("give either counts (n_train, n_val, n_test) or fractions, not both")
        if len(fractions) != 3 or min(fractions) < 0 or sum(fractions) > 1 + 1e-9:
            raise ValueError(
                f"fractions must be 3 non-negative numbers summing to at most 1, got {fractions}"
            )
        counts = [math.floor(f * n) for f in fractions]
        if math.isclose(sum(fractions), 1.0):
            counts[2] = n - counts[0] - counts[1]
        return counts
    if n_train is None:
        raise ValueError("give n_train (with optional n_val, n_test) or fractions")
    n_val = 0 if n_val is None else n_val
    n_test = n - n_train - n_val if n_test is None else n_test
    counts = [n_train, n_val, n_test]
    if min(counts) < 0 or sum(counts) > n:
        raise ValueError(f"split sizes train={n_train}, val={n_val}, test={n_test} do not fit in {n} frames")
    return counts


def random_split(
    n: int,
    *,
    n_train: int | None = None,
    n_val: int | None = None,
    n_test: int | None = None,
    fractions: Sequence[float] | None = None,
    seed: int = 0,
) -> dict[str, Tensor]:
    """Disjoint random train / val / test indices into ``range(n)``, each sorted.

    Give sizes (``n_val`` defaults to 0, ``n_test`` to all remaining frames) or
    ``fractions=(train, val, test)`` (floored; when they sum to 1 the test set takes the rest).
    Sizes that do not fit in ``n`` raise ``ValueError``. The same ``seed`` gives the same split.
    """
    counts = _counts(n, n_train, n_val, n_test, fractions)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    bounds = np.cumsum([0, *counts]).tolist()
    return {name: order[bounds[i] : bounds[i + 1]].sort().values for i, name in enumerate(SPLIT_NAMES)}


def block_split(
    n: int,
    *,
    n_train: int | None = None,
    n_val: int | None = None,
    n_test: int | None = None,
    fractions: Sequence[float] | None = None,
) -> dict[str, Tensor]:
    """Contiguous time blocks of a trajectory: the first ``n_train`` frames train, the next
    ``n_val`` validate, the next ``n_test`` test (sizes as in :func:`random_split`).

    Frames of a trajectory are correlated in time, so a random split puts test frames a few
    steps from training frames and measures interpolation; blocks test on a later stretch of
    the trajectory that training never saw. Frames left over after the three blocks are not used.
    """
    counts = _counts(n, n_train, n_val, n_test, fractions)
    bounds = np.cumsum([0, *counts]).tolist()
    return {name: torch.arange(bounds[i], bounds[i + 1]) for i, name in enumerate(SPLIT_NAMES)}


SPLIT_METHODS = ("auto", "random", "blocks")
"""``random``: :func:`random_split`; ``blocks``: :func:`block_split`; ``auto``: blocks for a time
series (a file that records ``time_ps``, :mod:`pyg_hipts.data.system`), random otherwise."""


def validate_split(
    split: Mapping[str, Tensor | np.ndarray], n: int | None = None, *, source: str = "split"
) -> dict[str, Tensor]:
    """Check a split and return it as ``torch.long`` tensors.

    Keys must be among ``train``, ``val``, ``test`` (missing ones become empty); each entry is 1-D,
    integer, non-negative, below ``n`` when given, without repeats; the entries are disjoint.
    """
    unknown = set(split) - set(SPLIT_NAMES)
    if unknown:
        raise ValueError(f"{source}: unknown split names {sorted(unknown)}; expected {list(SPLIT_NAMES)}")
    checked: dict[str, Tensor] = {}
    for name in SPLIT_NAMES:
        indices = np.asarray(split.get(name, np.zeros(0, dtype=np.int64)))
        if indices.ndim != 1 or (indices.size and indices.dtype.kind not in "iu"):
            raise ValueError(f"{source}: {name} must be 1-D integers, got {indices.dtype} {indices.shape}")
        if indices.size and (indices.min() < 0 or (n is not None and indices.max() >= n)):
            bound = "be >= 0" if n is None else f"lie in [0, {n})"
            span = f"{indices.min()}..{indices.max()}"
            raise ValueError(f"{source}: {name} indices must {bound}, found {span}")
        if np.unique(indices).size != indices.size:
            raise ValueError(f"{source}: {name} repeats indices")
        checked[name] = torch.as_tensor(indices, dtype=torch.long)
    for i, first in enumerate(SPLIT_NAMES):
        for second in SPLIT_NAMES[i + 1 :]:
            shared = np.intersect1d(checked[first].numpy(), checked[second].numpy())
            if shared.size:
                example = shared[:5].tolist()
                raise ValueError(
                    f"{source}: {first} and {second} share {shared.size} indices, e.g. {example}"
                )
    return checked


def save_split(path: str | Path, split: Mapping[str, Tensor | np.ndarray], dataset=None) -> Path:
    """Write a validated split to ``path`` (``.npz`` with int64 arrays ``train``, ``val``, ``test``),
    with the :func:`dataset_fingerprint` of the ``dataset`` it indexes when given."""
    checked = validate_split(split, None if dataset is None else len(dataset))
    fingerprint = {} if dataset is None else dataset_fingerprint(dataset)
    path = Path(path)
    with path.open("wb") as handle:
        np.savez(handle, **{name: indices.numpy() for name, indices in checked.items()}, **fingerprint)
    return path


def load_split(path: str | Path, n: int | None = None, dataset=None) -> dict[str, Tensor]:
    """Read a split written by :func:`save_split`; with ``n``, indices must lie in ``range(n)``.

    With ``dataset``, a split that records the fingerprint of another dataset is refused; one
    without a fingerprint is accepted with a warning.
    """
    path = require_path(path)
    try:
        with np.load(path) as arrays:
            stored = {name: arrays[name] for name in arrays.files}
    except (OSError, ValueError, EOFError) as error:
        raise ValueError(f"{path}: not a readable split file ({error})") from error
    fingerprint = {key: stored.pop(key) for key in FINGERPRINT_KEYS if key in stored}
    if dataset is not None:
        n = len(dataset) if n is None else n
        if not fingerprint:
            warnings.warn(
                f"{path}: the split records no dataset fingerprint; it is not checked", stacklevel=2
            )
        else:
            expected = dataset_fingerprint(dataset)
            if any(str(fingerprint[k]) != str(expected[k]) for k in FINGERPRINT_KEYS):
                raise ValueError(
                    f"{path}: the split was made for another dataset ({int(fingerprint['n_frames'])} frames, "
                    f"positions sha256 {str(fingerprint['positions_sha256'])[:12]}…) than {dataset.source} "
                    f"({int(expected['n_frames'])} frames, {str(expected['positions_sha256'])[:12]}…)"
                )
    return validate_split(stored, n, source=str(path))


def read_index_file(path: str | Path) -> Tensor:
    """Frame indices ``[K]`` (long) from a ``.npy`` array or a text file.

    Text files hold integers separated by whitespace or commas; ``#`` starts a comment.
    Non-integer entries, negative values and arrays that are not 1-D raise ``ValueError``.
    """
    path = require_path(path)
    if path.suffix == ".npy":
        values = np.load(path)
        if values.ndim != 1 or (values.size and values.dtype.kind not in "iu"):
            raise ValueError(f"{path}: expected a 1-D integer array, got {values.dtype} {values.shape}")
    else:
        text = re.sub(r"#.*", "", path.read_text())
        tokens = [t for t in re.split(r"[\s,]+", text) if t]
        bad = [t for t in tokens if not re.fullmatch(r"[+-]?\d+", t)]
        if bad:
            raise ValueError(f"{path}: entries are not integers: {bad[:5]}")
        values = np.array([int(t) for t in tokens], dtype=np.int64)
    if values.size and values.min() < 0:
        raise ValueError(f"{path}: negative index {values.min()}")
    return torch.as_tensor(values, dtype=torch.long)
