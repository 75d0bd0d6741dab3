"""Audit chapter: are the verdict *rules* calibrated near their tolerances?

The calibration chapter (:mod:`.calibration`) tests each raw test. This chapter tests what the
scorecard shows: each audit's whole verdict rule (test, effect size against its tolerance, the
effect's interval or equivalence test, Holm over the audit's family), run end to end by
:func:`vrg_analysis.assumptions.rule_calibration.calibrate_rules` on errors planted at stated
multiples of the tolerance. It reports how often each rule says "holds" (supported), "violated"
(contradicted) or "not settled" (inconclusive) when the truth is exact, inside, just inside, just
outside and well outside the tolerance.

``run(params) -> Result``; :func:`summary` (every number the prose cites), :func:`figure`,
:func:`rates_table`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from vrg_analysis.assumptions import rule_calibration as rc
from vrg_analysis.assumptions.verdicts import ASSUMPTION_WORDS
from vrg_analysis.params import as_float, as_int, as_tuple
from vrg_analysis.report import MAX_COLUMNS, PAGE_WIDTH, VERDICT_COLOURS, styled

__all__ = [
    "CHAPTER",
    "HEADLINE_METHODS",
    "Params",
    "Result",
    "Summary",
    "run",
    "summary",
    "figure",
    "rates_table",
]

CHAPTER = "audit_rules"
#: The row group of each rule the figure shows (the table has them all).
HEADLINE_METHODS: dict[str, str] = {
    "zero-mean": "one-sample t + TOST",
    "gaussianity": "dagostino k2",
    "independence": "distance correlation",
    "transfer": "Welch t on per-sample MSE; ratio 95% CI",
}


@dataclass(frozen=True)
class Params:
    """The chapter's parameters (the notebook's ``parameters`` cell). CI-sized defaults: two
    replications of small families; the full set runs the audits' own quick sizes (the ones the
    book's audit pages use)."""

    replications: int = 2
    ratios: tuple[float, ...] = rc.RATIOS
    n: int = 1000
    levels: int = 2
    coordinates: int = 8
    n_paths: int = 200
    path_steps: int = 6
    alpha: float = 0.05
    seed: int = 0

    def __post_init__(self) -> None:
        s = object.__setattr__
        s(self, "replications", as_int(self.replications, "replications", minimum=1))
        for name, low in (("n", 20), ("levels", 1), ("coordinates", 1), ("n_paths", 10)):
            s(self, name, as_int(getattr(self, name), name, minimum=low))
        s(self, "path_steps", as_int(self.path_steps, "path_steps", minimum=2))
        s(self, "seed", as_int(self.seed, "seed", minimum=0))
        s(
            self,
            "alpha",
            as_float(self.alpha, "alpha", minimum=0.0, maximum=0.5, open_low=True, open_high=True),
        )
        ratios = rc.check_ratios(as_tuple(self.ratios, "ratios", float), "parameter ratios")
        s(self, "ratios", tuple(sorted(set(ratios))))

    @property
    def sizes(self) -> rc.RuleSizes:
        return rc.RuleSizes(
            n=self.n,
            levels=self.levels,
            coordinates=self.coordinates,
            n_paths=self.n_paths,
            path_steps=self.path_steps,
        )


@dataclass(frozen=True, eq=False)
class Result:
    """The verdict rates (one row per rule, row group and planted ratio) and the run's time."""

    params: Params
    table: pd.DataFrame = field(repr=False)
    seconds: float

    def headline(self) -> pd.DataFrame:
        """The figure's rows: the headline row group of each rule."""
        t = self.table
        keep = t.method == t.rule.map(HEADLINE_METHODS)
        return t[keep].reset_index(drop=True)


def run(params: Params, *, progress: bool = False) -> Result:
    """Every rule at every planted ratio, ``params.replications`` families each."""
    t0 = time.perf_counter()
    table = rc.calibrate_rules(
        ratios=params.ratios,
        replications=params.replications,
        sizes=params.sizes,
        alpha=params.alpha,
        seed=params.seed,
        progress=print if progress else None,
    )
    return Result(params, table, time.perf_counter() - t0)


def _label(ratio: float) -> str:
    return "exact" if ratio == 0.0 else f"{ratio:g}x"


def figure(result: Result) -> Figure:
    """One panel per rule: the shares of "holds", "not settled" and "violated" (stacked bars)
    against the planted effect in multiples of the tolerance; the dashed line marks the
    tolerance."""
    head = result.headline()
    rules = [r for r in rc.RULES if r in set(head.rule)]
    cols = min(2, MAX_COLUMNS)
    rows = int(np.ceil(len(rules) / cols))
    fig, axes = plt.subplots(
        rows, cols, figsize=(PAGE_WIDTH, 2.6 * rows), sharey=True, squeeze=False
    )
    for ax, rule in zip(axes.flat, rules, strict=False):
        part = head[head.rule == rule].sort_values("ratio")
        x = np.arange(len(part))
        bottom = np.zeros(len(part))
        for verdict in ("supported", "inconclusive", "contradicted"):
            share = part[f"{verdict}_rate"].to_numpy()
            ax.bar(
                x,
                share,
                bottom=bottom,
                color=VERDICT_COLOURS[verdict],
                width=0.7,
                label=ASSUMPTION_WORDS[verdict],
            )
            bottom += share
        inside = int((part.ratio < 1.0).sum())
        ax.axvline(inside - 0.5, color="black", ls="--", lw=1)
        ax.set_xticks(x, [_label(r) for r in part.ratio])
        ax.set_title(f"{rule} (family {int(part.family.iloc[0])})")
        ax.set_xlabel("planted effect / tolerance")
        ax.set_ylim(0, 1)
    for ax in axes.flat[len(rules) :]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("share of verdicts")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


def rates_table(result: Result) -> Any:
    """Every row group's verdict rates with Wilson 95% intervals, as a styled table."""
    t = result.table
    out = pd.DataFrame(
        {
            "rule": t.rule,
            "rows": t.method,
            "planted / tolerance": t.true_over_tolerance,
            "verdicts": t.verdicts,
        }
    )
    for verdict in ("supported", "inconclusive", "contradicted"):
        out[f"{ASSUMPTION_WORDS[verdict]} [95% CI]"] = [
            f"{r:.2f} [{lo:.2f}, {hi:.2f}]"
            for r, lo, hi in zip(
                t[f"{verdict}_rate"], t[f"{verdict}_lo"], t[f"{verdict}_hi"], strict=True
            )
        ]
    return styled(
        out,
        formats={"planted / tolerance": "{:.3g}"},
        caption="Share of each verdict over every member of every planted family",
    )


@dataclass(frozen=True)
class Summary:
    """Every number the chapter's prose cites."""

    replications: int
    n: int
    n_paths: int
    family_gaussian: int
    family_paths: int
    seconds: float
    worst_wrong_rate: float
    worst_wrong_where: str
    exact_holds_zero_mean: float
    exact_holds_gaussianity: float
    exact_holds_independence: float
    exact_holds_transfer: float
    just_inside_holds: str
    just_outside_violated: str
    far_outside_violated: str
    kurtosis_at_w1_tolerance: float


def _at(head: pd.DataFrame, ratio: float, column: str) -> str:
    rows = head[np.isclose(head.ratio, ratio)]
    return ", ".join(f"{r.rule} {getattr(r, column):.2f}" for r in rows.itertuples()) or "-"


def summary(result: Result) -> Summary:
    """The prose's numbers: the worst wrong-verdict rate over every row group and ratio (where),
    the share judged "holds" when the assumption is exact, per rule, and the headline rows' right
    verdict rates just inside (0.9x), just outside (1.1x) and at 2x the tolerance."""
    t, head, p = result.table, result.headline(), result.params
    worst = t.loc[t.wrong_rate.idxmax()]

    def exact(rule: str) -> float:
        rows = head[(head.rule == rule) & (head.ratio == 0.0)]
        return float(rows.supported_rate.iloc[0]) if len(rows) else float("nan")

    return Summary(
        replications=p.replications,
        n=p.n,
        n_paths=p.n_paths,
        family_gaussian=p.sizes.family("gaussianity"),
        family_paths=p.sizes.family("independence"),
        seconds=result.seconds,
        worst_wrong_rate=float(worst.wrong_rate),
        worst_wrong_where=(
            f"{worst.rule} ({worst.method}) at {worst.true_over_tolerance:.3g}x its tolerance"
        ),
        exact_holds_zero_mean=exact("zero-mean"),
        exact_holds_gaussianity=exact("gaussianity"),
        exact_holds_independence=exact("independence"),
        exact_holds_transfer=exact("transfer"),
        just_inside_holds=_at(head, 0.9, "supported_rate"),
        just_outside_violated=_at(head, 1.1, "contradicted_rate"),
        far_outside_violated=_at(head, 2.0, "contradicted_rate"),
        kurtosis_at_w1_tolerance=rc.student_t_excess_kurtosis(
            rc.student_t_df_for_w1(rc.TOLERANCES["gaussianity"])
        ),
    )
