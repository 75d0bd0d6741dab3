"""The book's one look: a seaborn theme, one colour per sampler, baseline, arm and verdict.

Every chapter draws through :func:`set_book_theme` and :func:`colour`, so DDIM, logSNR-uniform or
"VRG as published" have the same colour on every page. Figures are sized for the book's text
column (:data:`PAGE_WIDTH`); grids wrap at :data:`MAX_COLUMNS` panels a row.
"""

from __future__ import annotations

from collections.abc import Iterable

import matplotlib as mpl
import seaborn as sns

__all__ = [
    "PAGE_WIDTH",
    "MAX_COLUMNS",
    "PALETTE",
    "VERDICT_COLOURS",
    "colour",
    "palette_for",
    "panel_size",
    "set_book_theme",
]

#: Width of the book's text column in inches (sphinx-book-theme at the default page width).
PAGE_WIDTH = 7.5
#: Panels per row in a wrapped grid: more would make tick labels unreadable at the page's width.
MAX_COLUMNS = 3

_SAMPLERS = [
    "ddim",
    "ddpm",
    "dpm_solver_1",
    "dpm_solver_2",
    "dpm_solver_3",
    "dpm_solver_pp_2s",
    "dpm_solver_pp_2m",
    "f_pndm",
    "s_pndm",
    "plms",
    "ipndm",
    "deis_tab1",
    "deis_tab2",
    "deis_tab3",
]
_BASELINES = ["time_uniform", "time_quadratic", "logsnr_uniform", "karras", "time_uniform_offset"]

#: name -> colour: samplers (the "tab20" colours), baselines and arms (the colour-blind palette)
PALETTE: dict[str, str] = {
    **dict(zip(_SAMPLERS, sns.color_palette("tab20", len(_SAMPLERS)).as_hex(), strict=True)),
    **dict(zip(_BASELINES, sns.color_palette("colorblind", 5).as_hex(), strict=True)),
    "baseline": "#4d4d4d",
    "vrg": "#0072b2",
    "vrg start held": "#009e73",
    "start level only": "#e69f00",
    "vrg (paper's settings)": "#cc79a7",
    "global optimum": "#d55e00",
    "mlp_sgd": "#56b4e9",
    "cpe + d": "#ca9161",
    "j-prop": "#de8f05",
    "auto-gamma": "#029e73",
    "oracle gamma": "#cc78bc",
    # the predictors an exact testbed can sample with
    "exact eps*": "#000000",
    "trained mlp": "#8c564b",
}
#: The verdict badges (background colours) of every table and of the headline figure.
VERDICT_COLOURS: dict[str, str] = {
    "supported": "#1b7837",
    "contradicted": "#b2182b",
    "mixed": "#e08214",
    "inconclusive": "#8c8c8c",
    "not measured": "#d9d9d9",
}


def colour(name: str) -> str:
    """The book's colour for a sampler, baseline, arm label or verdict (a VRG setting's label,
    ``"VRG(gamma=...)"``, takes the VRG colour, its start-held form the start-held one)."""
    key = str(name)
    if key in VERDICT_COLOURS:
        return VERDICT_COLOURS[key]
    if key in PALETTE:
        return PALETTE[key]
    low = key.lower()
    if low.startswith("vrg("):
        if "start held" in low:
            return PALETTE["vrg start held"]
        if "mlp+sgd" in low:
            return PALETTE["mlp_sgd"]
        return PALETTE["vrg"]
    for key in ("global optimum", "cpe + d", "j-prop", "auto-gamma", "oracle gamma"):
        if key in low:
            return PALETTE[key]
    if low in ("exact eps*", "trained mlp"):
        return PALETTE[low]
    raise KeyError(f"no book colour for {name!r}; known: {sorted(PALETTE)}")


def palette_for(names: Iterable[str]) -> dict[str, str]:
    """``{name: colour}`` for the given names (a seaborn ``palette=`` argument)."""
    return {n: colour(n) for n in names}


def panel_size(columns: int, aspect: float = 1.25) -> tuple[float, float]:
    """``(height, aspect)`` of one panel of a seaborn grid with ``columns`` panels a row that
    fills the page's width."""
    cols = max(1, min(int(columns), MAX_COLUMNS))
    width = PAGE_WIDTH / cols
    return width / aspect, aspect


def set_book_theme() -> None:
    """seaborn's ``whitegrid`` theme at a font size readable at the rendered width."""
    sns.set_theme(context="notebook", style="whitegrid", font_scale=0.9)
    mpl.rcParams.update(
        {
            "figure.dpi": 110,
            "savefig.dpi": 150,
            "figure.figsize": (PAGE_WIDTH, PAGE_WIDTH / 1.8),
            "axes.titlesize": 10,
            "axes.labelsize": 9.5,
            "legend.fontsize": 8.5,
            "xtick.labelsize": 8.5,
            "ytick.labelsize": 8.5,
        }
    )
