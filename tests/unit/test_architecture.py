"""The import rules between the core and the edges, read from the source (every import, lazy ones too)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMPOSITION_ROOT = {"bot.service", "bot.cli"}
PLATFORM_SDKS = ("telegram", "slack_bolt", "slack_sdk")


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in ("bot", "adapters"):
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imported(name: str, path: Path) -> Iterator[str]:
    """Every module ``name`` imports, wherever the import statement is."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            yield module
            # ``from bot.store import models`` imports the module ``bot.store.models``.
            yield from (
                f"{module}.{alias.name}" for alias in node.names if f"{module}.{alias.name}" in MODULES
            )


def _under(module: str, *prefixes: str) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)


def _ours(module: str) -> str | None:
    """The module of ours that importing ``module`` runs (itself, or the package it names a member of)."""
    parts = module.split(".")
    while parts and ".".join(parts) not in MODULES:
        parts.pop()
    return ".".join(parts) or None


GRAPH = {
    name: {ours for m in _imported(name, path) if (ours := _ours(m)) is not None and ours != name}
    for name, path in MODULES.items()
}


def test_the_sources_were_found() -> None:
    assert {"bot.engine", "bot.service", "adapters.base", "adapters.telegram.adapter"} <= set(MODULES)
    assert "adapters" in GRAPH["bot.service"]


def test_adapters_use_neither_the_composition_root_nor_the_store() -> None:
    offending = {
        f"{name} imports {m}"
        for name, path in MODULES.items()
        if _under(name, "adapters")
        for m in _imported(name, path)
        if _under(m, "bot.app", "bot.store", *COMPOSITION_ROOT)
    }
    assert not offending


def test_the_core_imports_no_adapter_and_no_platform_sdk() -> None:
    offending = {
        f"{name} imports {m}"
        for name, path in MODULES.items()
        if _under(name, "bot") and name not in COMPOSITION_ROOT
        for m in _imported(name, path)
        if _under(m, "adapters", *PLATFORM_SDKS)
    }
    assert not offending


def test_no_module_imports_back_into_one_that_imports_it() -> None:
    cycles: list[list[str]] = []
    state: dict[str, str] = {}  # "open" while on the current path, "done" once fully explored
    path: list[str] = []

    def visit(name: str) -> None:
        state[name] = "open"
        path.append(name)
        for imported in sorted(GRAPH[name]):
            if state.get(imported) == "open":
                cycles.append([*path[path.index(imported) :], imported])
            elif imported not in state:
                visit(imported)
        path.pop()
        state[name] = "done"

    for name in sorted(GRAPH):
        if name not in state:
            visit(name)
    assert not cycles, "\n".join(" -> ".join(cycle) for cycle in cycles)
