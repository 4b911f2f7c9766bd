"""Declared dependencies are the imported ones: every third-party module campaign/ imports is
a runtime dependency in pyproject.toml, and every runtime dependency is imported (or, for the
few loaded by name, used) somewhere in campaign/."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions, version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "campaign"

# Loaded by name, not imported: the distribution and the text in campaign/ that uses it.
LOADED_BY_NAME = {
    "psycopg": "postgresql+psycopg",  # SQLAlchemy's dialect+driver URL
    "itsdangerous": "SessionMiddleware",  # Starlette's, in web/app.py, signs with it
}


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _name(requirement: str) -> str:
    """'psycopg[binary]>=3.1,<4' -> 'psycopg' (normalized: lower case, '-' for '_' and '.')."""
    name = re.match(r"[A-Za-z0-9._-]+", requirement.strip())
    assert name, requirement
    return re.sub(r"[-_.]+", "-", name.group(0)).lower()


def _optional(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """An import inside `try: ... except ImportError:` (an extra that may be missing)."""
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.Try):
            for handler in node.handlers:
                caught = ast.unparse(handler.type) if handler.type else ""
                if "ImportError" in caught or "ModuleNotFoundError" in caught:
                    return True
    return False


def _third_party_imports() -> dict[str, list[str]]:
    """Top-level module -> where campaign/ imports it (optional imports left out)."""
    found: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            if _optional(node, parents):
                continue
            for module in modules:
                top = module.split(".")[0]
                if top in sys.stdlib_module_names or top == "campaign":
                    continue
                found.setdefault(top, []).append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def _distributions(module: str) -> set[str]:
    return {_name(d) for d in packages_distributions().get(module, [module])}


def test_every_imported_module_is_declared():
    declared = {_name(r) for r in _pyproject()["project"]["dependencies"]}
    missing = {
        module: where
        for module, where in _third_party_imports().items()
        if not _distributions(module) & declared
    }
    assert missing == {}, "imported by campaign/ but not in [project.dependencies]"


def test_every_declared_dependency_is_used():
    imported: set[str] = set()
    for module in _third_party_imports():
        imported |= _distributions(module)
    source = "\n".join(p.read_text(encoding="utf-8") for p in PACKAGE.rglob("*.py"))
    unused = []
    for requirement in _pyproject()["project"]["dependencies"]:
        name = _name(requirement)
        if name in imported:
            continue
        if name in LOADED_BY_NAME and LOADED_BY_NAME[name] in source:
            continue
        unused.append(requirement)
    assert unused == [], "declared in [project.dependencies] but not used by campaign/"


def test_test_only_libraries_are_dev_dependencies():
    runtime = {_name(r) for r in _pyproject()["project"]["dependencies"]}
    dev = {_name(r) for r in _pyproject()["project"]["optional-dependencies"]["dev"]}
    assert "openpyxl" in dev and "openpyxl" not in runtime  # tests read workbooks back
    assert {"mypy", "pytest", "ruff"} <= dev


def test_typer_still_carries_the_click_the_cli_uses():
    """cli/app.py and cli/common.py import typer._click (typer's private copy of click), because
    typer >= 0.24 raises its own click's exceptions: the public `click` package's classes
    would not catch them. When this fails, typer changed how it carries click: re-check
    those imports (maybe public `click` works again) and the typer pin in pyproject.toml."""
    import typer
    from typer._click import ClickException, Command, Context
    from typer._click.exceptions import UsageError

    assert issubclass(typer.BadParameter, UsageError)
    assert issubclass(UsageError, ClickException)
    assert issubclass(typer.Context, Context)
    assert isinstance(Command, type)
    major, minor = (int(part) for part in version("typer").split(".")[:2])
    assert (0, 24) <= (major, minor) < (0, 30), f"typer {version('typer')}: re-check the pin"
