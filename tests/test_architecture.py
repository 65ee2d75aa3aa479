"""The import direction physics <- perception <- reasoning <- benchmarks holds in every module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAYERS = ["physics", "perception", "reasoning", "benchmarks"]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("layer", LAYERS)
def test_no_module_imports_a_higher_layer(layer):
    higher = set(LAYERS[LAYERS.index(layer) + 1 :])
    offenders = {
        str(p.relative_to(REPO)): sorted(_imports(p) & higher)
        for p in (REPO / layer).rglob("*.py")
        if _imports(p) & higher
    }
    assert not offenders, f"{layer} must not import {sorted(higher)}: {offenders}"


def test_every_package_ships_a_py_typed_marker():
    for layer in LAYERS:
        assert (REPO / layer / "py.typed").is_file(), layer
