"""What simulating the structures of a dataset needs besides their frames.

A trajectory file (e.g. a coarse-grained training file written by ``pyg-hipts cg map``) records
the masses (amu) and names of its atoms or beads, the temperature (K) it was sampled at and the
time of each frame (ps). In an ``.npz`` file these are the optional arrays

- ``masses`` ``[n_atoms]``, ``names`` ``[n_atoms]`` (strings), ``temperature`` ``[]``,
- ``time_ps`` ``[n_frames]``: its presence marks the frames as a time series, which makes the
  default split contiguous time blocks (:func:`pyg_hipts.data.block_split`),
- ``length_unit`` and ``energy_unit`` ``[]`` (strings): the units of the file,
- ``weights`` ``[n_frames]``: the statistical weight of each frame in the ensemble the frames
  stand for, for frames sampled with a bias ``V`` (umbrella sampling, metadynamics with the
  bias frozen): ``w ∝ exp(V / kT)``. Averages over the ensemble are ``Σ w A / Σ w``
  (:func:`read_frame_weights`); the priors' Boltzmann inversion and ``cg analyze`` use them.

A training checkpoint keeps the :class:`SystemInfo` of its training file, so that simulations
take masses, names and temperature from it instead of asking for them again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pyg_hipts.units import Units

SYSTEM_KEYS = ("masses", "names", "temperature", "time_ps")
UNIT_KEYS = ("length_unit", "energy_unit")


@dataclass(frozen=True)
class SystemInfo:
    """Masses ``[n]`` (amu), names ``[n]``, temperature (K) and frame spacing (ps) of a
    trajectory; each ``None`` when the file does not record it. ``time_series`` says whether the
    frames are in time order."""

    masses: tuple[float, ...] | None = None
    names: tuple[str, ...] | None = None
    temperature: float | None = None
    frame_spacing_ps: float | None = None
    time_series: bool = False

    def as_dict(self) -> dict[str, Any]:
        """Plain data (lists, floats), for checkpoints and JSON."""
        values = asdict(self)
        for key in ("masses", "names"):
            if values[key] is not None:
                values[key] = list(values[key])
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> SystemInfo:
        """The inverse of :meth:`as_dict`; unknown keys are an error."""
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown system fields {sorted(unknown)}")
        masses, names = values.get("masses"), values.get("names")
        return cls(
            masses=None if masses is None else tuple(float(m) for m in masses),
            names=None if names is None else tuple(str(n) for n in names),
            temperature=None if values.get("temperature") is None else float(values["temperature"]),
            frame_spacing_ps=(
                None if values.get("frame_spacing_ps") is None else float(values["frame_spacing_ps"])
            ),
            time_series=bool(values.get("time_series", False)),
        )


def read_system_info(source: str | Path, arrays: Mapping[str, np.ndarray], n_atoms: int) -> SystemInfo:
    """The :class:`SystemInfo` stored in the arrays of ``source`` (see the module docstring).

    Masses must be ``[n_atoms]`` and positive, names ``[n_atoms]``, the temperature positive and
    the times increasing; otherwise ``ValueError`` naming ``source``.
    """
    present = {key: np.asarray(arrays[key]) for key in SYSTEM_KEYS if key in arrays}
    masses = names = temperature = spacing = None
    if "masses" in present:
        masses = present["masses"].astype(np.float64)
        if masses.shape != (n_atoms,) or not np.isfinite(masses).all() or (masses <= 0).any():
            raise ValueError(f"{source}: masses must be {n_atoms} positive numbers, got {masses.tolist()}")
        masses = tuple(masses.tolist())
    if "names" in present:
        if present["names"].shape != (n_atoms,):
            raise ValueError(f"{source}: names must be [{n_atoms}], got {list(present['names'].shape)}")
        names = tuple(str(name) for name in present["names"])
    if "temperature" in present:
        temperature = float(present["temperature"])
        if not temperature > 0:
            raise ValueError(f"{source}: temperature must be > 0 K, got {temperature}")
    if "time_ps" in present:
        times = present["time_ps"].astype(np.float64).ravel()
        steps = np.diff(times)
        if len(steps) and not (steps > 0).all():
            frame = int(np.argmin(steps > 0)) + 1
            raise ValueError(f"{source}: time_ps must increase; frame {frame} is at {times[frame]} ps")
        spacing = float(np.median(steps)) if len(steps) else None
    return SystemInfo(masses, names, temperature, spacing, "time_ps" in present)


def read_frame_weights(
    source: str | Path, arrays: Mapping[str, np.ndarray], n_frames: int
) -> np.ndarray | None:
    """``weights [n_frames]`` (float64) of ``source``, ``None`` when it records none.

    Raises ``ValueError`` naming ``source`` (and the first bad frame) unless there is one finite,
    non-negative weight per frame and at least one is positive.
    """
    if "weights" not in arrays:
        return None
    weights = np.asarray(arrays["weights"], dtype=np.float64)
    if weights.shape != (n_frames,):
        raise ValueError(f"{source}: weights must be [{n_frames}] (one per frame), got {list(weights.shape)}")
    bad = ~np.isfinite(weights) | (weights < 0)
    if bad.any():
        frame = int(np.argmax(bad))
        raise ValueError(f"{source}: weights must be finite and >= 0; frame {frame} has {weights[frame]}")
    if not weights.sum() > 0:
        raise ValueError(f"{source}: every frame has weight 0")
    return weights


def stored_units(source: str | Path, arrays: Mapping[str, np.ndarray]) -> Units | None:
    """The units recorded in ``length_unit`` and ``energy_unit``; ``None`` when absent."""
    present = [key in arrays for key in UNIT_KEYS]
    if not any(present):
        return None
    if not all(present):
        raise ValueError(f"{source}: give both length_unit and energy_unit, or neither")
    return Units(str(arrays["length_unit"]), str(arrays["energy_unit"]))
