"""The package's layer rules (docs/architecture.md): what each layer may import.

Every import statement counts, those inside functions too: a lazy import still ties the layer
to the library at run time.
"""

from __future__ import annotations

import ast
import re
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


#: Where a model config may still be asked "is this a syntax model?": config validation (which
#: decides ``ModelSettings.kind``), the engine, and readers of raw configs before validation
#: (the catalog's listing; ``simstudy fit`` reading a data set's incomplete columns into the
#: config). Everything else reads ``plan.model.kind``. Values: uses of ``is_spec(`` allowed.
KIND_ASKED = {"config/study.py": 1, "config/checks.py": 1, "catalog.py": 2, "fitting.py": 1}
_SYNTAX_IN = re.compile(r"""["']syntax["']\s+(?:not\s+)?in\b""")


def kind_questions(path: Path) -> tuple[int, int]:
    """Uses of ``is_spec(`` and of ``"syntax" in`` in ``path``'s code (comments left out)."""
    code = "\n".join(line.split("#", 1)[0] for line in path.read_text().splitlines())
    return code.count("is_spec("), len(_SYNTAX_IN.findall(code))


@pytest.mark.parametrize(
    "path",
    [p for p in files(".") if p.relative_to(PACKAGE).parts[0] != "spec"],
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_a_models_kind_is_asked_only_where_its_config_is_read(path):
    where = str(path.relative_to(PACKAGE))
    calls, syntax_in = kind_questions(path)
    assert syntax_in == 0, f'{where}: "syntax" in ...: read plan.model.kind instead'
    assert calls <= KIND_ASKED.get(where, 0), f"{where}: is_spec(...): read plan.model.kind"


def test_the_kind_guard_sees_a_new_question(tmp_path):
    added = tmp_path / "new.py"
    added.write_text('if "syntax" in (plan.model.structure or {}):\n    pass  # "syntax" in x\n')
    assert kind_questions(added) == (0, 1)
    added.write_text("ok = spec_info.is_spec(raw) and 'syntax' not in raw\n")
    assert kind_questions(added) == (1, 1)


@pytest.mark.parametrize(
    "name", ["api.py", "runstudy.py", "compose.py", "checkcmd.py", "fitting.py"]
)
def test_what_the_cli_shells_over_prints_nothing(name):
    """The API and the run's orchestration return what happened; the CLI prints it."""
    tree = ast.parse((PACKAGE / name).read_text())
    calls = [
        n.lineno
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "print"
    ]
    assert not calls, f"{name}: print( at lines {calls}"
