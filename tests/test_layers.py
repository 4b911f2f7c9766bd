"""The layers of `campaign/`, read from the source with `ast` (nothing is imported).

- `campaign/store/` imports nothing above it: from `campaign` only other store modules and
  the dependency-free leaves in STORE_MAY_IMPORT (imports under `if TYPE_CHECKING:` are
  annotations, not dependencies, and are not counted).
- No import cycle among the modules of `campaign/` (imports inside functions count: a
  function-local import that hides a cycle is still a cycle).
- No module outside the store reaches into its tables (`campaign.store.schema`).
- SQL only in the store: `sqlalchemy` is imported by `campaign/store/` alone, except the
  modules of SQL_OUTSIDE_STORE, which are still being moved down (each one a known debt).
  The handles `Engine` and `Connection` (what callers pass to the store) are not SQL.
- Every module of `campaign/cli/` is short (CLI_MAX_LINES): a command parses its options,
  makes one call to `workflow` and prints; anything longer belongs below it.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "campaign"

#: The modules outside the store that the store may import: they import nothing of
#: `campaign` (or only each other) and hold no behaviour of an upper layer.
STORE_MAY_IMPORT = frozenset(
    {
        "campaign.errors",
        "campaign.outcomes",
        "campaign.patterns",
        "campaign.redact",
        "campaign.timeutil",
    }
)
#: Modules outside `campaign/store/` that still import sqlalchemy (to move into the store).
SQL_OUTSIDE_STORE: frozenset[str] = frozenset()

#: Cycles still to break (each a frozenset of the modules of one cycle).
KNOWN_CYCLES: frozenset[frozenset[str]] = frozenset()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(inner) for stmt in node.body for inner in ast.walk(stmt))
    return skipped


def imported_names(path: Path) -> set[str]:
    """Every module name imported anywhere in the file (absolute imports; `from a import b`
    gives `a.b` when that is a module, else `a`)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = _type_checking_nodes(tree)
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            subs = {f"{node.module}.{alias.name}" for alias in node.names}
            found = subs & MODULES.keys()
            names.update(found)
            if len(found) < len(subs):
                names.add(node.module)
    return names


def campaign_graph() -> dict[str, set[str]]:
    return {
        name: {dep for dep in imported_names(path) if dep in MODULES and dep != name}
        for name, path in MODULES.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for dep in sorted(graph[node]):
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = set()
            while True:
                top = stack.pop()
                component.add(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_store_imports_nothing_above_it():
    above = {
        name: sorted(
            dep
            for dep in deps
            if not dep.startswith("campaign.store") and dep not in STORE_MAY_IMPORT
        )
        for name, deps in campaign_graph().items()
        if name.startswith("campaign.store")
    }
    assert {name: deps for name, deps in above.items() if deps} == {}


def test_the_leaves_the_store_may_import_import_nothing_of_campaign():
    graph = campaign_graph()
    assert {name: graph[name] - STORE_MAY_IMPORT for name in STORE_MAY_IMPORT} == {
        name: set() for name in STORE_MAY_IMPORT
    }


def test_no_import_cycle_in_campaign():
    assert set(cycles(campaign_graph())) <= KNOWN_CYCLES


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [frozenset({"a", "b", "c"})]


HANDLES = frozenset({"Engine", "Connection"})


def sql_imports(path: Path) -> set[str]:
    """What the file imports from sqlalchemy, the handles Engine and Connection left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = _type_checking_nodes(tree)
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "sqlalchemy")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "sqlalchemy":
            found.update(f"{node.module}.{a.name}" for a in node.names if a.name not in HANDLES)
    return found


def test_sqlalchemy_is_imported_only_by_the_store():
    users = {
        name
        for name, path in MODULES.items()
        if not name.startswith("campaign.store") and sql_imports(path)
    }
    assert users <= SQL_OUTSIDE_STORE, sorted(users - SQL_OUTSIDE_STORE)


def test_the_tables_are_used_only_by_the_store():
    users = {
        name
        for name, deps in campaign_graph().items()
        if not name.startswith("campaign.store") and "campaign.store.schema" in deps
    }
    assert users == set()


#: A command module longer than this holds logic that belongs in `workflow` (or a helper).
CLI_MAX_LINES = 150


def test_every_cli_module_is_short():
    lines = {
        name: len(path.read_text(encoding="utf-8").splitlines())
        for name, path in MODULES.items()
        if name.startswith("campaign.cli")
    }
    assert {name: n for name, n in lines.items() if n > CLI_MAX_LINES} == {}
