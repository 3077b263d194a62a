"""The package's layers hold: the method library imports neither the mini world, the book machinery nor
the benchmarks, and no two modules import each other (ltlib/__init__.py describes the layers)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "ltlib"
UPPER_LAYERS = ("ltlib.miniworld", "ltlib.book", "ltlib.bench")
COMMANDS = {"ltlib.cli", "ltlib.__main__", "ltlib.reproduce"}  # the command line wires every layer together


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, *, top_level_only: bool = False) -> set[str]:
    """Every ltlib module that ``path`` imports (absolute names; function-level imports included
    unless ``top_level_only``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module_name(path).split(".") if path.name == "__init__.py" else module_name(path).split(".")[:-1]
    nodes = tree.body if top_level_only else ast.walk(tree)
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            stem = ".".join(base + ([node.module] if node.module else []))
            found.update(_resolve(stem, alias.name) for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name == "ltlib" or name.startswith("ltlib.")}


def _resolve(stem: str, name: str) -> str:
    """``from stem import name``: the submodule ``stem.name`` when it exists, else ``stem``."""
    candidate = PACKAGE.parent / Path(*f"{stem}.{name}".split("."))
    return f"{stem}.{name}" if candidate.with_suffix(".py").is_file() or (candidate / "__init__.py").is_file() else stem


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
METHOD_LIBRARY = sorted(name for name in MODULES
                        if not name.startswith(UPPER_LAYERS) and name not in COMMANDS and name != "ltlib")


def test_the_resolver_sees_known_imports():
    # guards the two tests below against passing because nothing was recognised
    assert "ltlib.miniworld.world" in imported_modules(MODULES["ltlib.miniworld.diagnostics"])
    assert "ltlib.errors" in imported_modules(MODULES["ltlib.priors"])
    assert {"ltlib.book.runner", "ltlib.bench.suite"} <= imported_modules(MODULES["ltlib.cli"])
    assert len(METHOD_LIBRARY) > 20


@pytest.mark.parametrize("name", METHOD_LIBRARY)
def test_method_library_never_imports_an_upper_layer(name):
    upward = sorted(m for m in imported_modules(MODULES[name]) if m.startswith(UPPER_LAYERS))
    assert not upward, f"{name} imports {upward}"


def test_no_import_cycles_between_modules():
    graph = {name: {m for m in imported_modules(path, top_level_only=False) if m in MODULES and m != name}
             for name, path in MODULES.items()}
    # a package's __init__ re-exporting its own submodules is not a cycle worth reporting
    for name in graph:
        graph[name] = {m for m in graph[name] if not (name.startswith(m + ".") or m.startswith(name + "."))}
    cycle = _find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None
