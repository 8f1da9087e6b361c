"""The direction of dependencies: the core never imports the REST layer, the CLI, the tools
built on the daemon (authoring), Flask or APScheduler; each third-party adapter lives in its
one place; and no two modules import each other, even through others, even for typing."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "daemon" / "dicomd"

# Outer layers: the composition root and what stands on it. Everything else is the core.
OUTER = ("rest/", "authoring/", "cli.py", "app.py", "__main__.py")
CORE_MAY_NOT_IMPORT = (
    "flask",
    "werkzeug",
    "cheroot",
    "apscheduler",
    "dicomd.rest",
    "dicomd.cli",
    "dicomd.app",
    "dicomd.authoring",
)
# third-party adapters and the only places allowed to import them
ADAPTERS = {
    "flask": ("rest/",),
    "werkzeug": ("rest/",),
    "cheroot": ("rest/server.py",),
    "apscheduler": ("events/scheduler.py",),
    "watchdog": ("ingest/hotfolders.py",),
    "lupa": ("scripting/lua.py",),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports, wherever the import stands (top level, a function, an
    ``if TYPE_CHECKING:`` block), by its full name; ``from a import b`` names ``a.b`` when
    that is a module."""
    tree = ast.parse(path.read_text())
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            names.add(module)
            names.update(
                f"{module}.{alias.name}"
                for alias in node.names
                if f"{module}.{alias.name}" in MODULES
            )
    return names


def test_layers() -> None:
    problems = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).as_posix()
        for name in imports_of(path):
            top = name.split(".")[0]
            allowed = ADAPTERS.get(top)
            if allowed is not None and not rel.startswith(allowed):
                problems.append(f"{rel} imports {name}")
            is_adapter = allowed is not None and rel.startswith(allowed)
            if (
                not rel.startswith(OUTER)
                and not is_adapter
                and (name + ".").startswith(tuple(f"{n}." for n in CORE_MAY_NOT_IMPORT))
            ):
                problems.append(f"core module {rel} imports {name}")
    assert not problems, problems


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules importing it runs: the module itself and the packages
    above it (their ``__init__``), but not the importer's own packages, already running."""
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        own = {".".join(name.split(".")[:i]) for i in range(1, len(name.split(".")) + 1)}
        targets = set()
        for imported in imports_of(path):
            parts = imported.split(".")
            for i in range(1, len(parts) + 1):
                target = ".".join(parts[:i])
                if target in MODULES and target not in own:
                    targets.add(target)
        graph[name] = targets
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
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


def test_no_import_circles() -> None:
    assert circles(import_graph()) == []


def test_the_circle_check_sees_a_circle() -> None:
    """The check itself: a graph with a loop through three modules is reported."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(graph) == [["a", "b", "c"]]
