"""The package's layers, and its import graph read from the source.

Each top-level module or subpackage of ``vrg_analysis`` sits on one layer; a module may import
only from its own layer or below (``tests/test_architecture.py`` checks this, and that no module
imports another inside a function to dodge a cycle). The book's "How this toolkit is built" page
draws the graph from :func:`import_graph`.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "LAYERS",
    "LAYER_NAMES",
    "Import",
    "component_of",
    "package_modules",
    "import_graph",
    "find_cycle",
]

#: component (top-level module or subpackage) -> layer; lower layers never import higher ones.
LAYERS: dict[str, int] = {
    "_version": 0,
    "_checks": 0,
    "io": 0,
    "cache": 0,
    "resources": 0,
    "layers": 0,
    "params": 0,
    "threads": 0,
    "core": 1,
    "data": 1,
    "models": 2,
    "samplers": 3,
    "profiling": 3,
    "vrg": 4,
    "evaluation": 4,
    "testbeds": 5,
    "report": 6,
    "assumptions": 7,
    "studies": 8,
    "training": 9,
    "audit": 9,
    "cli": 10,
    "__main__": 10,
    "__init__": 10,
}

#: A short name for each layer, for the book's diagram.
LAYER_NAMES: dict[int, str] = {
    0: "utilities",
    1: "the method's maths and data",
    2: "models",
    3: "sampling and Algorithm 1",
    4: "VRG and evaluation",
    5: "testbeds",
    6: "report",
    7: "assumption audits",
    8: "studies and claims",
    9: "training and the audit runner",
    10: "command line",
}

PACKAGE = "vrg_analysis"


@dataclass(frozen=True)
class Import:
    """One import of a ``vrg_analysis`` module by another."""

    importer: str  # dotted module name
    imported: str  # dotted module name (or package)
    line: int
    local: bool  # inside a function or class body, not at module level


def component_of(module: str) -> str:
    """The component (key of :data:`LAYERS`) of a dotted module name."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        raise ValueError(f"{module!r} is not a {PACKAGE} module")
    return parts[1] if len(parts) > 1 else "__init__"


def _module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1] if len(parts) > 1 else [*parts[:-1], "__init__"]
        if parts == [PACKAGE, "__init__"] or parts == [PACKAGE]:
            return f"{PACKAGE}.__init__"
    return ".".join(parts)


def _package_root(root: str | Path | None) -> Path:
    return Path(root) if root is not None else Path(__file__).resolve().parent


def package_modules(root: str | Path | None = None) -> list[str]:
    """Every module of the package at ``root`` (default: this package), dotted."""
    pkg = _package_root(root)
    return sorted(_module_name(p, pkg) for p in pkg.rglob("*.py") if "_bundled" not in p.parts)


def import_graph(root: str | Path | None = None) -> list[Import]:
    """Every import of a ``vrg_analysis`` module inside the package at ``root`` (default: this
    package), read with :mod:`ast` (nothing is imported)."""
    pkg = _package_root(root)
    out: list[Import] = []
    for path in sorted(pkg.rglob("*.py")):
        if "_bundled" in path.parts:
            continue
        name = _module_name(path, pkg)
        tree = ast.parse(path.read_text(), filename=str(path))
        local_nodes: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                for sub in ast.walk(node):
                    if isinstance(sub, ast.Import | ast.ImportFrom):
                        local_nodes.add(id(sub))
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    raise ValueError(f"{path}:{node.lineno}: relative import; use absolute ones")
                if node.module is None:
                    continue
                if node.module == PACKAGE:  # from vrg_analysis import samplers
                    targets = [f"{PACKAGE}.{a.name}" for a in node.names]
                else:
                    targets = [node.module]
            for t in targets:
                if t == PACKAGE or t.startswith(PACKAGE + "."):
                    out.append(Import(name, t, node.lineno, id(node) in local_nodes))
    return out


def find_cycle(edges: list[tuple[str, str]]) -> list[str] | None:
    """A cycle in the directed graph ``edges`` as a list of nodes, or ``None``."""
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None
