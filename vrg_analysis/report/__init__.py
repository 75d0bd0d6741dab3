"""Rendering for the book: one seaborn theme and palette, tables with verdict badges, figures that
draw the library's own intervals, and glue of typed results into the prose."""

from __future__ import annotations

from vrg_analysis.report.figures import draw_intervals, interval_grid, save_figures
from vrg_analysis.report.glue import glue_fields, glue_figure, plain
from vrg_analysis.report.settings import collapsed, settings_block, settings_html
from vrg_analysis.report.tables import styled, verdict_css
from vrg_analysis.report.theme import (
    MAX_COLUMNS,
    PAGE_WIDTH,
    PALETTE,
    VERDICT_COLOURS,
    colour,
    palette_for,
    panel_size,
    set_book_theme,
)

__all__ = [
    "save_figures",
    "set_book_theme",
    "colour",
    "palette_for",
    "panel_size",
    "PALETTE",
    "VERDICT_COLOURS",
    "PAGE_WIDTH",
    "MAX_COLUMNS",
    "styled",
    "verdict_css",
    "interval_grid",
    "draw_intervals",
    "glue_fields",
    "glue_figure",
    "plain",
    "settings_block",
    "collapsed",
    "settings_html",
]
