"""The layering rule, enforced: nothing under pipeline/ imports Dagster or the Dagster layer (assets/).

The scan walks the syntax tree of every module, so an import inside a function counts as much as one at
the top. It reads the source only: no module is imported, and the test runs in well under a second.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "pipeline"
FORBIDDEN = ("dagster", "dagster_webserver", "dagster_graphql", "dagster_duckdb", "dagster_openai", "assets")


def imported_modules(source: str) -> list[tuple[int, str]]:
    """(line, module) for every absolute import anywhere in the source, nested ones included."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif (isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attribute))
              and (getattr(node.func, "id", None) or getattr(node.func, "attr", None)) in ("import_module", "__import__")
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.append((node.lineno, node.args[0].value))
    return found


def forbidden_imports(source: str) -> list[tuple[int, str]]:
    return [(line, mod) for line, mod in imported_modules(source) if mod.split(".")[0] in FORBIDDEN
            or mod.split(".")[0].startswith("dagster")]


CORE_MODULES = sorted(CORE.rglob("*.py"))


def test_the_core_has_modules_to_scan():
    names = {p.relative_to(CORE).as_posix() for p in CORE_MODULES}
    assert {"config.py", "data/steps.py", "pii/masker.py", "model/steps.py", "provider/app.py"} <= names


@pytest.mark.parametrize("path", CORE_MODULES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_core_module_imports_no_dagster(path):
    assert forbidden_imports(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("source, expected", [
    ("import dagster as dg\n", [(1, "dagster")]),
    ("def f():\n    from dagster import asset\n", [(2, "dagster")]),
    ("def f():\n    if True:\n        from assets.runner import run_job\n", [(3, "assets.runner")]),
    ("import importlib\nimportlib.import_module('dagster_duckdb')\n", [(2, "dagster_duckdb")]),
    ("from . import storage\nfrom pipeline.catalog import Catalog\nimport pandas\n", []),
    ("from .assets import x\n", []),  # a relative import stays inside the package
])
def test_the_scan_finds_nested_and_dynamic_imports(source, expected):
    assert forbidden_imports(source) == expected


@pytest.mark.parametrize("path", CORE_MODULES + sorted((ROOT / "assets").glob("*.py")),
                         ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_module_says_what_it_is_for(path):
    source = path.read_text(encoding="utf-8")
    assert ast.get_docstring(ast.parse(source)), f"{path} has no module docstring"
