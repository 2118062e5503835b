"""Layers point one way: no import cycle inside a package, and only the entry points import the CLI.

The graph is read from the source files with `ast` (every import, at the top of a module or inside
a function, since a lazy import still ties the two modules together), so nothing is imported here.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("connector", "playbooks", "emulators")
CLI = "connector.cli"
ENTRY_POINTS = {"connector.__main__", CLI}  # `python -m connector`; the console script is connector.cli:main


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


def imported(path: Path, name: str, known: set[str]) -> set[str]:
    """The project modules a file imports; `from pkg import mod` counts as importing `pkg.mod`."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in runtime_nodes(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                out.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {m for m in out if m in known}


def runtime_nodes(tree: ast.AST):
    """Every node that can run: an `if TYPE_CHECKING:` block names types for annotations only."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                yield child
                yield from runtime_nodes(child)
            continue
        yield node
        yield from runtime_nodes(node)


def import_graph() -> dict[str, set[str]]:
    modules = source_modules()
    known = set(modules)
    return {name: imported(path, name, known) - {name} for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_inside_a_package():
    graph = import_graph()
    within = {m: {n for n in deps if n.split(".")[0] == m.split(".")[0]} for m, deps in graph.items()}
    assert cycles(within) == [], "modules that import each other (a cycle): split out what both need"


def test_only_the_entry_points_import_the_cli():
    importers = sorted(m for m, deps in import_graph().items() if CLI in deps and m not in ENTRY_POINTS)
    assert importers == [], f"{CLI} is the top layer; move what these need out of it"


def test_the_engine_names_no_rule():
    """A rule that learns from the whole shop says so in its own `learn(shop, config)` step; the
    engine only walks the registry, so a new rule needs no engine change."""
    from playbooks.rules import REGISTRY

    path = ROOT / "playbooks" / "engine.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    named = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    named |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    imported_rules = {m for m in imported(path, "playbooks.engine", set(source_modules()))
                      if m.startswith("playbooks.rules.")}
    assert not named & set(REGISTRY), "the engine names a rule"
    assert imported_rules == set() and "__dict__" not in named


def test_the_graph_sees_lazy_and_relative_imports():
    """The checks above can fail: a function-local import and a package's own modules are edges;
    a name imported for annotations only is not."""
    graph = import_graph()
    assert CLI in graph["connector.__main__"]
    assert "connector.sync" in graph[CLI]  # imported inside cmd_sync, not at the top
    assert "playbooks.schema" not in graph["playbooks.metrics"]  # under `if TYPE_CHECKING:`
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
