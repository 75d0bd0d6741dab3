"""Numbers into prose: every number a chapter cites is a field of a typed result, glued by name.

A chapter's ``summary(result)`` returns a frozen dataclass of the numbers and phrases its prose
cites; :func:`glue_fields` glues every field under its own name (myst-nb ``glue``), so the prose
never carries a hand-typed number and a renamed field fails the strict book build.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vrg_analysis.io import atomic_write_text

__all__ = ["glue_fields", "glue_figure", "plain"]


def plain(value: Any) -> Any:
    """``value`` as a plain Python scalar (numpy scalars unwrapped); ``None`` for what cannot be
    glued as a number or a phrase (arrays, tables, figures)."""
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value)
    if isinstance(value, str):
        return value
    return None


def _glue(name: str, value: Any) -> None:
    try:
        from myst_nb import glue
    except ImportError as exc:  # pragma: no cover - myst-nb comes with the book extra
        raise ImportError(
            "gluing into the book needs myst-nb: pip install 'vrg-analysis[book]'"
        ) from exc
    glue(name, value, display=False)


def glue_fields(summary: Any, prefix: str = "") -> dict[str, Any]:
    """Glue every scalar field of ``summary`` (a dataclass or a mapping) as ``prefix + name``, and
    every entry of a mapping-valued field under its own key; returns what was glued."""
    if dataclasses.is_dataclass(summary) and not isinstance(summary, type):
        items = {f.name: getattr(summary, f.name) for f in dataclasses.fields(summary)}
    elif isinstance(summary, Mapping):
        items = dict(summary)
    else:
        raise TypeError(f"summary must be a dataclass or a mapping, got {type(summary).__name__}")
    flat: dict[str, Any] = {}
    for name, value in items.items():
        if isinstance(value, Mapping):  # a mapping field glues its own keys (e.g. verdict counts)
            flat.update({str(k): v for k, v in value.items()})
        else:
            flat[name] = value
    glued: dict[str, Any] = {}
    for name, value in flat.items():
        v = plain(value)
        if v is None:
            continue
        _glue(prefix + name, v)
        glued[prefix + name] = v
    return glued


def glue_figure(
    name: str,
    figure: Any,
    data: pd.DataFrame | None = None,
    data_dir: str | Path = "figures",
) -> Path | None:
    """Glue a matplotlib figure (or a seaborn grid) by name and close it. With ``data`` (the
    table the figure draws), also write it as ``<data_dir>/<name>.csv`` (atomically) for the
    download link beside the figure, and return that path."""
    import matplotlib.pyplot as plt

    fig = getattr(figure, "figure", figure)
    _glue(name, fig)
    plt.close(fig)
    if data is None:
        return None
    if not isinstance(data, pd.DataFrame):
        kind = type(data).__name__
        raise TypeError(f"glue_figure {name!r}: data must be a DataFrame, got {kind}")
    return atomic_write_text(Path(data_dir) / f"{name}.csv", data.to_csv(index=False))
