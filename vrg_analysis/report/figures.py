"""Figure helpers: grids that wrap at the page's width and draw the library's own intervals, and
saving figures as PNG files that are never half-written."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import matplotlib.ticker as mticker
import numpy as np
import pandas as pd
import seaborn as sns

from vrg_analysis.io import atomic_open
from vrg_analysis.report.theme import MAX_COLUMNS, colour, panel_size

__all__ = ["interval_grid", "draw_intervals", "save_figures"]


def save_figures(figs: Mapping[str, Any], folder: str | Path, stem: str) -> list[Path]:
    """Save each figure (or seaborn grid) as ``<folder>/<stem>_<name>.png`` through a temporary
    file renamed into place, so a failure never leaves a half-written PNG; returns the paths."""
    out = []
    for name, fig in figs.items():
        path = Path(folder) / f"{stem}_{name}.png"
        with atomic_open(path, "wb") as fh:
            getattr(fig, "figure", fig).savefig(fh, format="png", dpi=120, bbox_inches="tight")
        out.append(path)
    return out


def draw_intervals(
    ax: Any,
    frame: pd.DataFrame,
    *,
    x: str,
    y: str,
    low: str | None,
    high: str | None,
    hue: str | None = None,
    marker: str = "o",
    linestyle: str = "-",
    label_prefix: str = "",
) -> None:
    """Points (joined by lines) with error bars from the ``low``/``high`` columns, one colour per
    ``hue`` value (the book's :func:`~vrg_analysis.report.theme.colour`)."""
    groups = frame.groupby(hue, sort=False) if hue else [(None, frame)]
    for key, g in groups:
        g = g.sort_values(x)
        yerr = None
        if low is not None and high is not None:
            yerr = np.clip(np.vstack([g[y] - g[low], g[high] - g[y]]), 0.0, None)
        c = colour(str(key)) if key is not None else "#333333"
        ax.errorbar(
            g[x],
            g[y],
            yerr=yerr,
            color=c,
            marker=marker,
            ls=linestyle,
            capsize=2.5,
            ms=4.5,
            lw=1.3,
            label=f"{label_prefix}{key}" if key is not None else label_prefix or None,
        )


def _plain_number(value: float, _pos: object = None) -> str:
    """A tick label without powers of ten (``4``, ``0.5``, ``1e-05`` only when tiny)."""
    return f"{value:g}"


def interval_grid(
    frame: pd.DataFrame,
    *,
    x: str,
    y: str,
    low: str | None = None,
    high: str | None = None,
    col: str | None = None,
    row: str | None = None,
    hue: str | None = None,
    xlabel: str | None = None,
    ylabel: str | None = None,
    zero_line: bool = False,
    log_x: bool = False,
    log_y: bool = False,
    sharey: bool | str = False,
    titles: str = "{col_name}",
) -> sns.FacetGrid:
    """A seaborn ``FacetGrid`` (``col`` wrapped at three panels a row) of ``y`` against ``x`` with
    the library's intervals ``low``/``high`` as error bars, one colour per ``hue`` value."""
    n_cols = frame[col].nunique() if col else 1
    wrap = min(n_cols, MAX_COLUMNS) if col and not row else None
    height, aspect = panel_size(wrap or (n_cols if col else 1))
    grid = sns.FacetGrid(
        frame,
        col=col,
        row=row,
        col_wrap=wrap,
        height=height,
        aspect=aspect,
        sharey=sharey,
        despine=False,
        margin_titles=bool(row and col),
    )
    for (i, j, _), sub in grid.facet_data():
        if sub.empty:
            continue
        ax = grid.facet_axis(i, j)
        draw_intervals(ax, sub, x=x, y=y, low=low, high=high, hue=hue)
    xs = np.sort(frame[x].unique())
    for ax in grid.axes.flat:
        if zero_line:
            ax.axhline(0.0, color="k", lw=0.8)
        if log_x:
            ax.set_xscale("log")
        if log_y:
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(mticker.FuncFormatter(_plain_number))
            ax.yaxis.set_minor_formatter(mticker.NullFormatter())
        if np.issubdtype(xs.dtype, np.number) and 1 < xs.size <= 8:
            ax.set_xticks(xs, [_plain_number(v) for v in xs])
            ax.xaxis.set_minor_formatter(mticker.NullFormatter())
    grid.set_axis_labels(xlabel or x, ylabel or y)
    if row and col:
        grid.set_titles(row_template="{row_name}", col_template="{col_name}")
    elif col or row:
        grid.set_titles(titles)
    if hue:
        handles, labels = grid.axes.flat[0].get_legend_handles_labels()
        height_in = grid.figure.get_figheight()
        grid.figure.subplots_adjust(bottom=min(0.3, 0.95 / height_in))  # about an inch of legend
        grid.figure.legend(
            handles,
            labels,
            loc="lower center",
            ncol=min(len(labels), 4),
            frameon=False,
            bbox_to_anchor=(0.5, 0.0),
        )
    plt.close(grid.figure)
    return grid
