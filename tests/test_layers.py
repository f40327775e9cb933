"""The package's layer rules (docs/architecture.md): what each layer may import.

Every import statement counts, those inside functions too: a lazy import still ties the layer
to the library at run time.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "simstudy"
JAX_FAMILY = {"jax", "jaxlib", "numpyro", "blackjax"}


def imported(path: Path) -> set[str]:
    """Top-level names of every module ``path`` imports (``simstudy.x`` kept as ``simstudy.x``)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
        elif isinstance(node, ast.ImportFrom):  # relative: inside its own package
            modules = []
        else:
            continue
        for m in modules:
            parts = m.split(".")
            names.add(".".join(parts[:2]) if parts[0] == "simstudy" else parts[0])
    return names


def files(*where: str) -> list[Path]:
    out = []
    for w in where:
        p = PACKAGE / w
        out += sorted(p.rglob("*.py")) if p.is_dir() else [p]
    return out


@pytest.mark.parametrize("path", files("blocks"), ids=lambda p: p.name)
def test_blocks_import_only_jax_and_the_standard_library(path):
    allowed = {"jax", "simstudy.blocks"} | set(sys.stdlib_module_names)
    assert imported(path) <= allowed, sorted(imported(path) - allowed)


@pytest.mark.parametrize(
    "path", files("aggregate", "report", "store.py"), ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_results_layers_run_without_jax(path):
    assert not imported(path) & JAX_FAMILY


@pytest.mark.parametrize("path", files("spec"), ids=lambda p: p.name)
def test_the_engine_imports_nothing_of_the_model_registry(path):
    assert "simstudy.models" not in imported(path)


def test_the_rule_sees_imports_inside_functions(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("import numpy\n\ndef f():\n    from jax import numpy as jnp\n")
    assert imported(module) == {"numpy", "jax"}
