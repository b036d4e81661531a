"""Validation shared by the readers: every problem becomes an error that names the file.

Arrays are checked as NumPy arrays before they become tensors. ``source`` is the file (or
file and group) the array came from; it starts every message.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
from ase.data import atomic_numbers


def require_path(path: str | Path, *, directory: bool = False) -> Path:
    """Return ``path`` as a ``Path``; ``FileNotFoundError`` if it is not an existing file (or folder)."""
    path = Path(path)
    exists = path.is_dir() if directory else path.is_file()
    if not exists:
        kind = "folder" if directory else "file"
        raise FileNotFoundError(f"{path}: no such {kind}")
    return path


def problem(source: str | Path, message: str) -> ValueError:
    """The ``ValueError`` raised for a bad input: ``"<source>: <message>"``."""
    return ValueError(f"{source}: {message}")


def require_key(source: str | Path, key: str, available: Iterable[str]) -> None:
    """Raise if ``key`` is not among ``available``, listing what is there."""
    available = sorted(available)
    if key not in available:
        raise problem(source, f"missing key {key!r} (available: {', '.join(available) or 'none'})")


def check_shape(source: str | Path, name: str, array: np.ndarray, shape: tuple[int | None, ...]) -> None:
    """Raise unless ``array.shape`` matches ``shape`` (``None`` matches any length on that axis)."""
    ok = array.ndim == len(shape) and all(
        e is None or e == s for s, e in zip(array.shape, shape, strict=True)
    )
    if not ok:
        axes = ["any" if e is None else str(e) for e in shape]
        wanted = f"({axes[0]},)" if len(axes) == 1 else f"({', '.join(axes)})"
        raise problem(source, f"{name} has shape {array.shape}, expected {wanted}")


def check_finite(source: str | Path, name: str, array: np.ndarray, first_index: int = 0) -> None:
    """Raise if ``array`` holds NaN or infinite values, naming the first bad index (the leading
    index counted from ``first_index``, for a block of rows of a larger array)."""
    finite = np.isfinite(array)
    if not finite.all():
        first = np.argwhere(~finite)[0]
        if first.size:
            first[0] += first_index
        raise problem(source, f"{name} holds NaN or infinite values (first at index {tuple(first.tolist())})")


def energies_1d(source: str | Path, name: str, array: np.ndarray, n_frames: int) -> np.ndarray:
    """Energies as ``(n_frames,)``; ``(n_frames, 1)`` is accepted, anything else raises."""
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    check_shape(source, name, array, (n_frames,))
    check_finite(source, name, array)
    return array


def atomic_numbers_of(source: str | Path, name: str, values: np.ndarray) -> np.ndarray:
    """Atomic numbers (int64, same shape) from integers or element symbols (``str`` or ``bytes``)."""
    values = np.asarray(values)
    if values.dtype.kind in "SUO":
        symbols = [v.decode() if isinstance(v, bytes) else str(v) for v in values.ravel()]
        unknown = sorted({s for s in symbols if s not in atomic_numbers})
        if unknown:
            raise problem(source, f"{name} holds unknown element symbols {unknown}")
        return np.array([atomic_numbers[s] for s in symbols], dtype=np.int64).reshape(values.shape)
    if values.dtype.kind == "f" and not np.array_equal(values, np.round(values)):
        raise problem(source, f"{name} holds non-integer values")
    if values.dtype.kind not in "iuf":
        raise problem(source, f"{name} has dtype {values.dtype}, expected integers or element symbols")
    if (values < 0).any():
        raise problem(source, f"{name} holds negative values")
    return values.astype(np.int64)


def species_per_frame(
    source: str | Path, name: str, z: np.ndarray, n_frames: int, n_atoms: int
) -> np.ndarray:
    """Species as ``(n_frames, n_atoms)``.

    ``z`` is either ``(n_atoms,)``, the same for all frames, or already ``(n_frames, n_atoms)``.
    """
    if z.ndim == 1:
        check_shape(source, name, z, (n_atoms,))
        return np.broadcast_to(z, (n_frames, n_atoms))
    check_shape(source, name, z, (n_frames, n_atoms))
    return z
