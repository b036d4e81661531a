"""Imports of the package run only downward through its layers (imports inside functions too).

Layers, lowest first: the root modules (units, timing, allocator) → data → potentials → nn, cg,
md → calculators, openmm, peers → train → compare, ensemble, cg_workflow → cli. A module may
import from its own subpackage and from lower layers only; two subpackages of one layer never
import each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pyg_hipts"
LAYERS: list[set[str]] = [
    {"units", "timing", "allocator"},
    {"data"},
    {"potentials"},
    {"nn", "cg", "md"},
    {"calculators", "openmm", "peers"},
    {"train"},
    {"compare", "ensemble", "cg_workflow"},
    {"cli"},
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def _part(module: str) -> str | None:
    """The first component below ``pyg_hipts`` of a dotted module name (``None`` for others)."""
    parts = module.split(".")
    if parts[0] != "pyg_hipts":
        return None
    return parts[1] if len(parts) > 1 else ""


def imports_of(path: Path) -> list[tuple[int, str]]:
    """``(line, absolute module)`` of every import in ``path``, relative ones resolved."""
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    package = list(relative.parts[:-1])  # the package a relative import starts from
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            if node.module is None:
                found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, module))
    return found


def _owner(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def test_every_subpackage_has_a_layer() -> None:
    parts = {_owner(p) for p in PACKAGE.rglob("*.py")} - {"__init__"}
    assert parts <= set(RANK), f"subpackages without a layer: {sorted(parts - set(RANK))}"


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_run_downward(path: Path) -> None:
    owner = _owner(path)
    if owner == "__init__":  # the package's own __init__ re-exports the public names
        return
    wrong = []
    for line, module in imports_of(path):
        target = _part(module)
        if target is None or target == owner:
            continue
        if target == "":
            wrong.append(f"line {line}: imports the top-level package (import from its subpackage instead)")
        elif target in RANK and RANK[target] >= RANK[owner]:
            wrong.append(
                f"line {line}: {owner} (layer {RANK[owner]}) imports {module} (layer {RANK[target]})"
            )
    assert not wrong, f"{path.relative_to(PACKAGE.parent)}:\n" + "\n".join(wrong)


def test_the_import_parser_sees_function_level_and_relative_imports() -> None:
    modules = {module for _, module in imports_of(PACKAGE / "nn" / "model.py")}
    assert {"pyg_hipts.nn.interaction", "pyg_hipts.potentials"} <= modules  # "from .interaction import"
    assert "pyg_hipts.train.cli" in {module for _, module in imports_of(PACKAGE / "cli.py")}  # in a function


def test_no_mock_and_no_unsafe_loading_in_the_package() -> None:
    offenders = [
        str(path.relative_to(PACKAGE.parent))
        for path in PACKAGE.rglob("*.py")
        if "unittest.mock" in path.read_text() or "weights_only=False" in path.read_text()
    ]
    assert not offenders
