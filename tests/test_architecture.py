"""The package's layering: lower layers never import upper ones, no cycles, no dodges."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from vrg_analysis.layers import LAYERS, component_of, find_cycle, import_graph, package_modules

GRAPH = import_graph()


def test_every_component_has_a_layer() -> None:
    root = Path(importlib.import_module("vrg_analysis").__file__).parent
    components = {
        p.stem if p.is_file() else p.name
        for p in root.iterdir()
        if (p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").is_file()))
        and p.name != "_bundled"
    }
    missing = sorted(components - set(LAYERS))
    assert not missing, f"components without a layer in vrg_analysis.layers.LAYERS: {missing}"


def test_lower_layers_never_import_upper_ones() -> None:
    bad = [
        f"{i.importer} (layer {LAYERS[component_of(i.importer)]}) imports {i.imported} "
        f"(layer {LAYERS[component_of(i.imported)]}) at line {i.line}"
        for i in GRAPH
        if LAYERS[component_of(i.imported)] > LAYERS[component_of(i.importer)]
    ]
    assert not bad, "\n".join(bad)


def test_no_function_local_imports_of_the_package() -> None:
    local = [
        f"{i.importer}:{i.line} imports {i.imported} inside a function" for i in GRAPH if i.local
    ]
    assert not local, "\n".join(local)


def test_no_import_cycles() -> None:
    modules = set(package_modules())
    edges = []
    for i in GRAPH:
        target = i.imported
        # "from vrg_analysis.x import y": the edge goes to the module x (a package's __init__)
        while target not in modules and "." in target:
            target = target.rsplit(".", 1)[0]
        if target != i.importer and target in modules:
            edges.append((i.importer, target))
    cycle = find_cycle(edges)
    assert cycle is None, " -> ".join(cycle or [])


def test_find_cycle_finds_one() -> None:
    assert find_cycle([("a", "b"), ("b", "c")]) is None
    assert find_cycle([("a", "b"), ("b", "c"), ("c", "a")]) == ["a", "b", "c", "a"]


def test_graph_sees_a_planted_upward_import(tmp_path: Path) -> None:
    pkg = tmp_path / "vrg_analysis"
    (pkg / "core").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "core" / "__init__.py").write_text("def f():\n    from vrg_analysis.studies import x\n")
    (pkg / "studies.py").write_text("import vrg_analysis.core\n")
    graph = import_graph(pkg)
    assert {(i.importer, i.imported, i.local) for i in graph} == {
        ("vrg_analysis.core", "vrg_analysis.studies", True),
        ("vrg_analysis.studies", "vrg_analysis.core", False),
    }
    (pkg / "io.py").write_text("from .core import f\n")
    with pytest.raises(ValueError, match="relative import"):
        import_graph(pkg)
