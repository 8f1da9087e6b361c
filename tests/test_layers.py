"""The direction of dependencies: the core never imports the REST layer, the CLI, Flask or
APScheduler; each third-party adapter lives in its one module."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "daemon" / "dicomd"

# module prefix (relative to the package) -> imports it may not make
FORBIDDEN = {
    "": ("flask", "werkzeug", "cheroot", "apscheduler", "dicomd.rest", "dicomd.cli"),
}
# third-party adapters and the only places allowed to import them
ADAPTERS = {
    "flask": ("rest/",),
    "werkzeug": ("rest/",),
    "cheroot": ("rest/server.py",),
    "apscheduler": ("scheduler.py",),
    "watchdog": ("hotfolders",),
    "lupa": ("scripting/lua.py",),
}
CORE_EXEMPT = ("rest/", "cli.py", "app.py", "__main__.py")


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = path.relative_to(PACKAGE).parent.parts
                base = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
                module = ".".join(("dicomd", *base, *(node.module or "").split(".")))
                names.add(module.rstrip("."))
            elif node.module:
                names.add(node.module)
    return names


def test_layers() -> None:
    problems = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).as_posix()
        names = imports_of(path)
        for name in names:
            top = name.split(".")[0]
            allowed = ADAPTERS.get(top)
            if allowed is not None and not rel.startswith(allowed):
                problems.append(f"{rel} imports {name}")
            is_adapter = allowed is not None and rel.startswith(allowed)
            if (
                not rel.startswith(CORE_EXEMPT)
                and not is_adapter
                and name.startswith(FORBIDDEN[""])
            ):
                problems.append(f"core module {rel} imports {name}")
    assert not problems, problems
