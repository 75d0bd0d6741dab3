"""The package's architecture as the book shows it: the layers, read from the source.

:func:`layer_table` lists every component (top-level module or subpackage) with its layer and the
first line of its docstring; :func:`layer_figure` draws the components by layer with the imports
between them, both from :func:`vrg_analysis.layers.import_graph` (the same graph the architecture
test checks), so the page cannot drift from the code.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

from vrg_analysis.layers import LAYER_NAMES, LAYERS, component_of, import_graph
from vrg_analysis.report.theme import PAGE_WIDTH

__all__ = ["component_summary", "layer_table", "component_edges", "layer_figure"]

_PACKAGE = Path(__file__).resolve().parents[1]


def component_summary(component: str, root: str | Path | None = None) -> str:
    """The first line of a component's docstring (its ``__init__`` for a subpackage)."""
    pkg = Path(root) if root is not None else _PACKAGE
    path = (
        pkg / component / "__init__.py" if (pkg / component).is_dir() else pkg / f"{component}.py"
    )
    if not path.is_file():
        raise ValueError(f"no component {component!r} in {pkg}")
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def layer_table(root: str | Path | None = None) -> pd.DataFrame:
    """One row per component: layer, layer name, component, what it is (its docstring's first
    line), sorted bottom layer first."""
    rows = [
        {
            "layer": layer,
            "role": LAYER_NAMES[layer],
            "component": name,
            "what it is": component_summary(name, root),
        }
        for name, layer in LAYERS.items()
        if name not in ("__init__", "__main__", "_version")
    ]
    return pd.DataFrame(rows).sort_values(["layer", "component"]).reset_index(drop=True)


def component_edges(root: str | Path | None = None) -> set[tuple[str, str]]:
    """Imports between components (module-level, self-imports dropped)."""
    out = set()
    for imp in import_graph(root):
        a, b = component_of(imp.importer), component_of(imp.imported)
        if a != b:
            out.add((a, b))
    return out


def layer_figure(root: str | Path | None = None) -> Any:
    """Components placed by layer (bottom: layer 0) with an arrow for every import between two
    components; every arrow points down or sideways (the architecture test's guarantee)."""
    table = layer_table(root)
    table = table[~table.component.isin(["cli", "layers"])]
    pos: dict[str, tuple[float, float]] = {}
    for layer, sub in table.groupby("layer"):
        names = list(sub.component)
        for i, name in enumerate(names):
            pos[name] = ((i + 1) / (len(names) + 1), float(layer))
    fig, ax = plt.subplots(figsize=(PAGE_WIDTH, 0.62 * PAGE_WIDTH))
    for a, b in sorted(component_edges(root)):
        if a in pos and b in pos:
            (x0, y0), (x1, y1) = pos[a], pos[b]
            ax.annotate(
                "",
                xy=(x1, y1 + 0.18),
                xytext=(x0, y0 - 0.18),
                arrowprops={"arrowstyle": "->", "color": "#9a9a9a", "lw": 0.6, "alpha": 0.7},
            )
    for name, (x, y) in pos.items():
        ax.text(
            x,
            y,
            name,
            ha="center",
            va="center",
            fontsize=8.5,
            bbox={"boxstyle": "round,pad=0.3", "fc": "#eef3fb", "ec": "#4a6fa5", "lw": 0.8},
        )
    layers = sorted({int(v) for _, v in pos.values()})
    ax.set_yticks(layers, [f"{k}: {LAYER_NAMES[k]}" for k in layers], fontsize=8)
    ax.set_xticks([])
    ax.set_xlim(0, 1)
    ax.set_ylim(min(layers) - 0.6, max(layers) + 0.6)
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)
    ax.set_title("Layers of vrg_analysis: an arrow is an import (always downwards or sideways)")
    fig.tight_layout()
    plt.close(fig)
    return fig
