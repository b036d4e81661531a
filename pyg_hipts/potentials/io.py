"""Saving and loading potentials without executing pickled code.

A potential is stored as its :meth:`~pyg_hipts.potentials.Potential.spec` (class path, init
arguments, units: plain data) beside its ``state_dict``. Files are read with
``torch.load(weights_only=True)``, which only rebuilds tensors and plain containers, so a crafted
file cannot run code through unpickling; class paths in it are resolved only inside trusted
packages and only to potentials (or, for networks a potential wraps, ``nn.Module`` subclasses).

Two layouts are read by :func:`load_potential`:

- a training checkpoint of :class:`pyg_hipts.train.PotentialModule` (a Lightning ``.ckpt`` with
  ``potential`` and ``state_dict``; the EMA weights are taken when the run kept them);
- a file written by :func:`save_potential` (``format``, ``potential``, ``state_dict``).
"""

from __future__ import annotations

import importlib
import pickle
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pyg_hipts.potentials.base import Potential
from pyg_hipts.units import Units

FORMAT = "pyg_hipts.potential/1"
"""Value of ``format`` in files written by :func:`save_potential`."""

TRUSTED_PACKAGES: tuple[str, ...] = ("pyg_hipts", "torch_geometric", "mace", "torchani", "hippynn")
"""Top-level packages whose classes a saved spec may name."""


FLOAT_DTYPES = {name: getattr(torch, name) for name in ("float16", "bfloat16", "float32", "float64")}


class CheckpointError(ValueError):
    """A file is not a readable potential; the message names the file and the reason."""


def resolve_class(path: str, base: type, trusted: Iterable[str] = TRUSTED_PACKAGES) -> type:
    """The class at ``"package.module.Class"``, which must lie in a ``trusted`` package and
    subclass ``base``; nothing outside the trusted packages is imported."""
    if not isinstance(path, str) or "." not in path:
        raise ValueError(f"a class path is 'package.module.Class', got {path!r}")
    module_name, _, name = path.rpartition(".")
    if module_name.split(".")[0] not in set(trusted):
        raise ValueError(
            f"class {path!r} is outside the trusted packages {sorted(trusted)}; "
            "pass its package in trusted= to load it"
        )
    try:
        found = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"cannot import {path!r}: {error}") from error
    if not (isinstance(found, type) and issubclass(found, base)):
        raise ValueError(f"{path!r} is not a subclass of {base.__module__}.{base.__qualname__}")
    return found


def check_spec(spec: Any, trusted: Iterable[str] = TRUSTED_PACKAGES, where: str = "potential") -> None:
    """Resolve every class path in ``spec`` (nested too) before anything is built: the top one
    must be a :class:`Potential`, nested ones potentials or ``nn.Module`` subclasses."""
    trusted = tuple(trusted)

    def visit(value: Any, at: str, base: type) -> None:
        if isinstance(value, Mapping):
            if "class_path" in value:
                resolve_class(value["class_path"], base, trusted)
            for key, item in value.items():
                visit(item, f"{at}.{key}", nn.Module)
        elif isinstance(value, list | tuple):
            for index, item in enumerate(value):
                visit(item, f"{at}[{index}]", nn.Module)

    if not isinstance(spec, Mapping) or "class_path" not in spec:
        raise ValueError(f"{where}: a potential spec is a mapping with a class_path")
    visit(spec, where, Potential)


def build_potential(spec: Mapping[str, Any], trusted: Iterable[str] = TRUSTED_PACKAGES) -> Potential:
    """A fresh potential (initial weights) from its :meth:`~Potential.spec`; nested specs of
    potentials (terms of a sum, members of an ensemble) are built first."""
    check_spec(spec, trusted)
    return _build(spec, tuple(trusted))


def _build(spec: Mapping[str, Any], trusted: tuple[str, ...]) -> Potential:
    cls = resolve_class(spec["class_path"], Potential, trusted)
    arguments = {name: _build_nested(value, trusted) for name, value in spec.get("init_args", {}).items()}
    potential = cls(**arguments)
    if spec.get("units") is not None:
        potential.set_units(Units(**spec["units"]))
    if spec.get("dtype") is not None:
        if spec["dtype"] not in FLOAT_DTYPES:
            raise ValueError(f"unknown dtype {spec['dtype']!r}; known: {sorted(FLOAT_DTYPES)}")
        potential.to(FLOAT_DTYPES[spec["dtype"]])
    return potential


def _build_nested(value: Any, trusted: tuple[str, ...]) -> Any:
    """Nested potential specs become potentials; everything else stays plain data."""
    if isinstance(value, Mapping) and "class_path" in value:
        cls = resolve_class(value["class_path"], nn.Module, trusted)
        return _build(value, trusted) if issubclass(cls, Potential) else dict(value)
    if isinstance(value, list):
        return [_build_nested(item, trusted) for item in value]
    return value


def save_potential(potential: Potential, path: str | Path, extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``potential`` (spec and weights) to ``path``, atomically (a temporary file beside it
    is renamed); ``extra`` adds entries of plain data (e.g. the ``system`` a training checkpoint
    records)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        **(extra or {}),
        "format": FORMAT,
        "potential": potential.spec(),
        "state_dict": potential.state_dict(),
    }
    temporary = path.with_name(f".{path.name}.partial")
    try:
        torch.save(payload, temporary)
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The contents of a checkpoint or potential file, read with ``weights_only=True``; a clear
    :class:`CheckpointError` naming the file for missing, truncated, foreign or unsafe files."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    try:
        contents = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"{path}: refused to load: the file holds pickled objects other than tensors and plain "
            f"data, which could run code ({str(error).splitlines()[0]})"
        ) from error
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as error:
        reason = f"not a readable checkpoint (truncated or foreign file): {error}"
        raise CheckpointError(f"{path}: {reason}") from error
    if not isinstance(contents, dict):
        raise CheckpointError(f"{path}: not a checkpoint of this package (holds a {type(contents).__name__})")
    return contents


def _match_dtypes(potential: Potential, state: Mapping[str, torch.Tensor]) -> None:
    """Give every float parameter and buffer the dtype of its saved tensor (float64 prior
    constants beside float32 weights stay float64)."""
    tensors = dict(potential.named_parameters()) | dict(potential.named_buffers())
    for name, saved in state.items():
        tensor = tensors.get(name)
        if tensor is not None and tensor.is_floating_point() and saved.is_floating_point():
            tensor.data = tensor.data.to(saved.dtype)


def load_potential(
    path: str | Path,
    map_location: str | torch.device = "cpu",
    trusted: Iterable[str] = TRUSTED_PACKAGES,
) -> Potential:
    """The trained :class:`Potential` saved in ``path`` (see the module docstring), in eval mode."""
    contents = read_checkpoint(path, map_location)
    if "potential" not in contents or "state_dict" not in contents:
        hint = ""
        if "hyper_parameters" in contents:
            hint = " It is a Lightning checkpoint of an older layout of this package: retrain, or rebuild it."
        raise CheckpointError(f"{path}: no potential in this file (keys {sorted(contents)}).{hint}")
    try:
        potential = build_potential(contents["potential"], trusted)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: cannot rebuild the potential: {error}") from error
    state = contents["state_dict"]
    for prefix in ("ema_model.", "model."):
        weights = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if weights:
            state = weights
            break
    _match_dtypes(potential, state)
    try:
        potential.load_state_dict(state)
    except RuntimeError as error:
        raise CheckpointError(f"{path}: the weights do not fit the potential: {error}") from error
    return potential.to(map_location).eval()
