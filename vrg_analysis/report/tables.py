"""Tables for the page: pandas Stylers with units in the headers and verdicts as coloured badges."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from vrg_analysis.report.theme import VERDICT_COLOURS

__all__ = ["verdict_css", "styled"]


def verdict_css(value: Any) -> str:
    """CSS of a verdict badge (white on the verdict's colour); empty for anything else."""
    c = VERDICT_COLOURS.get(str(value))
    if c is None:
        return ""
    return f"background-color: {c}; color: white; font-weight: bold; border-radius: 4px"


def styled(
    frame: pd.DataFrame,
    *,
    formats: Mapping[str, str] | None = None,
    verdict_columns: Sequence[str] = ("verdict",),
    caption: str | None = None,
    hide_index: bool = True,
) -> Any:
    """``frame`` as a Styler: the given column formats (``"{:.3g}"`` style), verdict columns as
    badges, NaN as ``-``, no index."""
    sty = frame.style.format(dict(formats or {}), na_rep="-")
    cols = [c for c in verdict_columns if c in frame.columns]
    if cols:
        sty = sty.map(verdict_css, subset=cols)
    if caption:
        sty = sty.set_caption(caption)
    if hide_index:
        sty = sty.hide(axis="index")
    return sty
