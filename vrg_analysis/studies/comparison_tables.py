"""The judged table of a paired comparison, shared by the chapters that compare VRG with its
baseline configuration by configuration (sample quality against steps, guidance).

One row per metric, sampler, baseline and K of a :class:`~vrg_analysis.studies.engine.
ComparisonResult`, judged by the engine's :func:`~vrg_analysis.studies.engine.compare_all` (the
book's verdict rule, Holm over each comparison-and-metric table), and the figure of its differences
with their intervals. The chapters name their comparisons; this module only lays them out.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from vrg_analysis.report import interval_grid, styled
from vrg_analysis.studies.engine import METRIC_DIRECTION, ComparisonResult, compare_all

__all__ = [
    "FAMILY",
    "JUDGED_COLUMNS",
    "judged_table",
    "METRIC_NAMES",
    "VERDICT_ORDER",
    "comparison_metrics",
    "judged_rows",
    "difference_grid",
    "verdict_counts",
]

#: The sample-quality and error metrics a comparison can report, in words.
METRIC_NAMES: dict[str, str] = {
    "fid": "domain FID",
    "pixel_frechet": "pixel-space Fréchet distance",
    "frechet": "Fréchet distance to the exact moments",
    "image_mse": "deviation from the fine solve (MSE)",
    "log_likelihood": "exact log-likelihood (nats)",
    "exact_error": "error against the exact ODE (MSE)",
}
#: The sampler families by their names in the book.
FAMILY: dict[str, str] = {
    "ddim": "DDIM",
    "dpm_solver_2": "DPM-Solver-2",
    "dpm_solver_pp_2m": "DPM-Solver++(2M)",
    "s_pndm": "S-PNDM",
    "deis_tab2": "DEIS tAB2",
}
#: The verdicts in the order the tables count them.
VERDICT_ORDER: tuple[str, ...] = ("supported", "inconclusive", "contradicted")


def comparison_metrics(res: ComparisonResult) -> list[str]:
    """The metrics a comparison is judged on: its set metric (FID or Fréchet distance), then the
    per-sample ones it measured (exact log-likelihood, error against the exact ODE, deviation
    from the fine solve)."""
    order = ["log_likelihood", "exact_error", "image_mse"]
    return [res.set_metric, *[m for m in order if m in res.arms[0].per_sample]]


def judged_rows(name: str, res: ComparisonResult, n_boot: int) -> list[dict[str, Any]]:
    """Every configuration of the comparison ``name`` judged on each of its metrics
    (:func:`comparison_metrics`), Holm over each metric's table: the two values, the difference
    with its 95% paired bootstrap interval, the Holm-adjusted p-value, the verdict, the number of
    seeds on which VRG was better and both arms' CPE (Eq. 10)."""
    rows = []
    for metric in comparison_metrics(res):
        for c in compare_all(res, metric, n_boot=n_boot):
            rows.append(
                {
                    "testbed": name,
                    "metric": metric,
                    "sampler": c.sampler,
                    "baseline": c.baseline,
                    "K": c.K,
                    "NFE": c.nfe,
                    "baseline value": c.base_value,
                    "VRG value": c.vrg_value,
                    "difference": c.delta,
                    "relative": c.relative,
                    "ci_low": c.ci_low,
                    "ci_high": c.ci_high,
                    "p (Holm)": c.p_adjusted,
                    "verdict": c.verdict,
                    "seeds improved": sum(METRIC_DIRECTION[metric] * d > 0 for d in c.seed_deltas),
                    "CPE baseline": c.base_cpe,
                    "CPE VRG": c.vrg_cpe,
                }
            )
    return rows


def verdict_counts(rows: pd.DataFrame) -> dict[str, int]:
    """How many of the judged ``rows`` are supported, inconclusive and contradicted."""
    return {v: int((rows.verdict == v).sum()) for v in VERDICT_ORDER}


def difference_grid(rows: pd.DataFrame, metric: str, **facets: Any) -> Any:
    """The judged rows' VRG − baseline with its interval against K, one panel per sampler and one
    colour per baseline (``facets``: more :func:`~vrg_analysis.report.interval_grid` options,
    e.g. a row)."""
    rows = rows.assign(sampler=rows.sampler.map(lambda s: FAMILY.get(s, s)))
    return interval_grid(
        rows,
        x="K",
        y="difference",
        low="ci_low",
        high="ci_high",
        col="sampler",
        hue="baseline",
        xlabel="K (levels)",
        ylabel=f"VRG − baseline\n{METRIC_NAMES[metric]}",
        zero_line=True,
        **facets,
    )


#: The columns of a judged comparison table after its leading ones (:func:`judged_table`).
JUDGED_COLUMNS: tuple[str, ...] = (
    "sampler",
    "baseline",
    "K",
    "NFE",
    "baseline value",
    "VRG value",
    "difference",
    "interval",
    "p (Holm)",
    "seeds improved",
    "verdict",
    "CPE baseline",
    "CPE VRG",
)


def judged_table(rows: pd.DataFrame, caption: str, lead: tuple[str, ...] = ()) -> Any:
    """Judged rows (:func:`judged_rows`) as the book's table: the ``lead`` columns, then
    :data:`JUDGED_COLUMNS`, the interval as text and the verdicts as badges."""
    sub = rows.copy()
    sub["interval"] = [
        f"[{lo:.3g}, {hi:.3g}]" for lo, hi in zip(sub.ci_low, sub.ci_high, strict=True)
    ]
    return styled(
        sub[[*lead, *JUDGED_COLUMNS]],
        formats={
            "baseline value": "{:.4g}",
            "VRG value": "{:.4g}",
            "difference": "{:+.3g}",
            "p (Holm)": "{:.2g}",
            "CPE baseline": "{:.3g}",
            "CPE VRG": "{:.3g}",
        },
        caption=caption,
    )
