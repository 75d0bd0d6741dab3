"""Audit chapter: does the error depend on ``x_t`` beyond the noise level?

VRG's profile ``w(a)`` is one number per noise level, the error averaged over the states at that
level. This chapter measures, on a trained model's held-out data, how far the mean error of
groups of states (by class, by the size of ``x_t``, by the distance to the data) moves from that
average, and what a class's own profile would do to CPE
(:mod:`vrg_analysis.assumptions.conditional_error`, which computes every number; this module
runs it on a testbed and renders it).

``run(params) -> Result``; :func:`summary` (every number the prose cites), :func:`figure_means`,
:func:`figure_spread`, :func:`verdict_table`, :func:`write_outputs` (the verdict table in the
scorecard's format; the notebook does not write it yet, because the claims page refuses an audit
that no claim lists, and the claim "one variance per noise level" will list it only when the
claims module changes next).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from matplotlib.figure import Figure

from vrg_analysis.assumptions import conditional_error as ce
from vrg_analysis.assumptions.verdicts import AuditResult, write_results
from vrg_analysis.core.trajectories import BASELINES, baseline
from vrg_analysis.evaluation.stats import VERDICTS
from vrg_analysis.evaluation.verdict_words import ASSUMPTION_WORDS
from vrg_analysis.params import as_float, as_int, as_tuple
from vrg_analysis.report import PAGE_WIDTH, VERDICT_COLOURS, styled
from vrg_analysis.testbeds import make_testbed
from vrg_analysis.testbeds.base import Testbed

__all__ = [
    "CHAPTER",
    "Params",
    "Result",
    "Summary",
    "run",
    "summary",
    "figure_means",
    "figure_spread",
    "verdict_table",
    "class_cpe_table",
    "write_outputs",
]

CHAPTER = "audit_conditional"


@dataclass(frozen=True)
class Params:
    """The chapter's parameters (the notebook's ``parameters`` cell; CI-sized defaults).

    ``labels_testbed``: a testbed with the same data and split whose labels name the classes
    (the class-conditional sibling of an unconditional model; empty: the testbed's own labels,
    or no class covariate)."""

    testbed: str = "digits"
    labels_testbed: str = "digits-cond"
    timesteps: tuple[int, ...] = (50, 200, 400, 600, 800, 950)
    n: int = 450  # held-out rows (at most the testbed's)
    reference_rows: int = 1347  # training rows the distance to the data is measured against
    bins: int = 5
    tolerance: float = 0.1
    trajectory: str = "time_uniform"
    num_steps: int = 10
    n_boot: int = 200
    alpha: float = 0.05
    seed: int = 0

    def __post_init__(self) -> None:
        s = object.__setattr__
        s(self, "timesteps", tuple(sorted(set(as_tuple(self.timesteps, "timesteps", int)))))
        if len(self.timesteps) < 2 or min(self.timesteps) < 0:
            raise ValueError(
                f"parameter timesteps needs at least two timesteps >= 0, got {self.timesteps!r}"
            )
        s(self, "n", as_int(self.n, "n", minimum=20))
        s(self, "reference_rows", as_int(self.reference_rows, "reference_rows", minimum=1))
        s(self, "bins", as_int(self.bins, "bins", minimum=2))
        s(self, "num_steps", as_int(self.num_steps, "num_steps", minimum=2))
        s(self, "n_boot", as_int(self.n_boot, "n_boot", minimum=20))
        s(self, "seed", as_int(self.seed, "seed", minimum=0))
        s(
            self,
            "tolerance",
            as_float(self.tolerance, "tolerance", minimum=0.0, maximum=1.0, open_low=True),
        )
        s(
            self,
            "alpha",
            as_float(self.alpha, "alpha", minimum=0.0, maximum=0.5, open_low=True, open_high=True),
        )
        if self.trajectory not in BASELINES:
            raise ValueError(
                f"parameter trajectory: unknown value {self.trajectory!r}; allowed: "
                f"{list(BASELINES)}"
            )


@dataclass(frozen=True, eq=False)
class Result:
    """The per-sample data, the audit's verdicts, the class CPE ratios and the run's time."""

    params: Params
    model_name: str
    data: ce.ConditionalData
    results: tuple[AuditResult, ...]
    table: pd.DataFrame
    classes: tuple[int, ...]
    class_cpe: tuple[float, ...]
    seconds: float

    @property
    def timesteps(self) -> tuple[int, ...]:
        return self.params.timesteps


def _labels(bed: Testbed, p: Params) -> np.ndarray | None:
    """The held-out labels: the testbed's own, else those of ``labels_testbed`` when its
    held-out data is the same (refused, naming both, when it is not)."""
    if bed.held_out_y is not None:
        return bed.held_out_y.numpy()
    if not p.labels_testbed:
        return None
    other = make_testbed(p.labels_testbed)
    if other.held_out_y is None:
        raise ValueError(f"parameter labels_testbed: {p.labels_testbed!r} has no labels")
    if other.held_out_x.shape != bed.held_out_x.shape or not torch.equal(
        other.held_out_x, bed.held_out_x
    ):
        raise ValueError(
            f"parameter labels_testbed: {p.labels_testbed!r} does not hold the same held-out "
            f"data as {p.testbed!r}, so its labels do not name these rows"
        )
    return other.held_out_y.numpy()


def run(params: Params) -> Result:
    """Profile the model's per-sample errors at the chapter's levels and audit them."""
    p = params
    t0 = time.perf_counter()
    bed = make_testbed(p.testbed)
    if max(p.timesteps) >= bed.schedule.num_timesteps:
        raise ValueError(
            f"parameter timesteps: {max(p.timesteps)} is past the schedule's last timestep "
            f"{bed.schedule.num_timesteps - 1}"
        )
    n = min(p.n, int(bed.held_out_x.shape[0]))
    labels = _labels(bed, p)
    levels = bed.schedule.alpha_bar(np.asarray(p.timesteps, dtype=np.float64))
    data = ce.conditional_errors(
        bed.model,
        bed.held_out_x[:n],
        levels,
        bed.train_x[: p.reference_rows],
        labels=None if labels is None else labels[:n],
        seed=p.seed,
        source=f"{bed.model_name} on held-out data, vs eps",
    )
    audit = ce.dependence_audit(
        data,
        bins=p.bins,
        tolerance=p.tolerance,
        alpha=p.alpha,
        n_boot=p.n_boot,
        seed=p.seed,
    )
    classes: tuple[int, ...] = ()
    cpe: tuple[float, ...] = ()
    if data.labels is not None:
        traj = baseline(p.trajectory, bed.schedule, p.num_steps)
        ratios = ce.class_cpe_ratios(data, traj)
        classes, cpe = tuple(ratios), tuple(ratios.values())
    return Result(
        params=p,
        model_name=bed.model_name,
        data=data,
        results=audit.results,
        table=audit.table,
        classes=classes,
        class_cpe=cpe,
        seconds=time.perf_counter() - t0,
    )


# ===================================================================== tables and figures
def _frame(result: Result) -> pd.DataFrame:
    """The audit's table with the timestep of each row."""
    f = result.table.copy()
    f.insert(0, "t", [result.params.timesteps[i] for i in f.level])
    return f


def verdict_table(result: Result) -> Any:
    """One row per level and covariate: the relative spread of the conditional mean error with
    its 95% interval, the Holm-adjusted ANOVA p-value and the verdict."""
    f = _frame(result)
    show = pd.DataFrame(
        {
            "t": f.t,
            "ᾱ_t": f.alpha_bar,
            "grouped by": f.covariate.map(ce.COVARIATES),
            "spread (% of w)": 100 * f.spread,
            "95% CI (%)": [
                f"[{100 * lo:.1f}, {100 * hi:.1f}]" for lo, hi in zip(f.low, f.high, strict=True)
            ],
            "p (Holm)": f.p_holm,
            "one w per level": f.verdict.map(ASSUMPTION_WORDS),
        }
    )
    return styled(
        show,
        formats={"ᾱ_t": "{:.3g}", "spread (% of w)": "{:.1f}", "p (Holm)": "{:.2g}"},
        verdict_columns=("one w per level",),
        caption=(
            f"Spread of the conditional mean error across groups, relative to the level's w "
            f"(tolerance {100 * result.params.tolerance:g}%; Holm over the table)"
        ),
    )


def class_cpe_table(result: Result) -> Any:
    """CPE under each class's own profile relative to the marginal profile's."""
    p = result.params
    frame = pd.DataFrame(
        {"class": list(result.classes), "CPE_c / CPE": list(result.class_cpe)}
    ).set_index("class")
    return frame.T.style.format("{:.2f}").set_caption(
        f"CPE of {p.trajectory} K = {p.num_steps} under each class's profile w(a) r_c(a), "
        "relative to the marginal profile"
    )


def figure_means(result: Result) -> Figure:
    """The mean error of each group relative to the level's mean (``r_g``) against the
    timestep, one panel per covariate; the shaded band is the tolerance."""
    p = result.params
    d = result.data
    covs = d.covariates()
    fig, axes = plt.subplots(1, len(covs), figsize=(PAGE_WIDTH, 2.9), sharey=True, squeeze=False)
    t = np.asarray(p.timesteps)
    for ax, cov in zip(axes[0], covs, strict=True):
        ratios = []
        for i in range(d.alpha_bar.size):
            groups = d.labels if cov == "class" else ce.quantile_groups(getattr(d, cov)[i], p.bins)
            keys, r = ce.group_means(d.errors[i], groups)
            ratios.append(r)
        r = np.asarray(ratios)
        if cov == "class":
            colours = sns.color_palette("tab10", len(keys))
            names = [f"class {k}" for k in keys]
        else:
            colours = sns.color_palette("viridis", len(keys))
            names = [f"bin {k + 1} of {len(keys)}" for k in keys]
        ax.axhspan(1 - p.tolerance, 1 + p.tolerance, color="0.9", zorder=0)
        for j in range(r.shape[1]):
            ax.plot(t, r[:, j], marker="o", ms=3, lw=1.1, color=colours[j], label=names[j])
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xlabel("timestep t")
        ax.set_title(ce.COVARIATES[cov], fontsize=9)
        if cov != "class":
            ax.legend(fontsize=6, frameon=False, title="low → high", title_fontsize=6)
    axes[0, 0].set_ylabel("group mean error / level mean")
    fig.tight_layout()
    plt.close(fig)
    return fig


def figure_spread(result: Result) -> Figure:
    """The relative spread of the conditional mean error with its 95% interval against the
    timestep, one line per covariate, each point coloured by its verdict; the dashed line is
    the tolerance."""
    f = _frame(result)
    fig, ax = plt.subplots(figsize=(PAGE_WIDTH * 0.62, 3.0))
    styles = {"class": ("o", "-"), "norm": ("s", "--"), "distance": ("D", ":")}
    for i, (cov, sub) in enumerate(f.groupby("covariate", sort=False)):
        x = sub.t.to_numpy() + (i - 1) * 6.0  # sideways, so intervals do not hide each other
        marker, ls = styles[str(cov)]
        ax.plot(x, 100 * sub.spread, ls=ls, color="0.35", lw=1.0, label=ce.COVARIATES[str(cov)])
        for xi, row in zip(x, sub.itertuples(), strict=True):
            c = VERDICT_COLOURS[row.verdict]
            ax.errorbar(
                xi,
                100 * row.spread,
                yerr=[[100 * (row.spread - row.low)], [100 * (row.high - row.spread)]],
                color=c,
                marker=marker,
                ms=5,
                capsize=2,
            )
    ax.axhline(100 * result.params.tolerance, color="k", ls="--", lw=0.9)
    ax.set_xlabel("timestep t")
    ax.set_ylabel("spread of group means (% of w)")
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    plt.close(fig)
    return fig


def write_outputs(result: Result, verdict_dir: str | Path) -> tuple[Path, Path]:
    """The verdict table ``<verdict_dir>/audit_conditional.csv`` (+ ``.md``) for the
    scorecard."""
    return write_results(list(result.results), verdict_dir, CHAPTER)


# ===================================================================== the prose's numbers
@dataclass(frozen=True)
class Summary:
    """Every number and phrase the chapter's prose cites (glued by field name)."""

    testbed: str
    model_name: str
    n: int
    n_levels: int
    t_list: str
    bins: int
    tolerance_pct: float
    n_tests: int
    counts: dict[str, int]
    by_covariate: str
    largest: str
    class_cpe_min: float
    class_cpe_max: float
    class_cpe_text: str
    seconds: float


def _counts_text(f: pd.DataFrame) -> str:
    parts = []
    for cov, sub in f.groupby("covariate", sort=False):
        c = {v: int((sub.verdict == v).sum()) for v in VERDICTS}
        parts.append(
            f"by {ce.COVARIATES[str(cov)]}: holds at {c['supported']}, violated at "
            f"{c['contradicted']}, not settled at {c['inconclusive']} of {len(sub)} levels"
        )
    return "; ".join(parts)


def summary(result: Result) -> Summary:
    p = result.params
    f = _frame(result)
    top = f.loc[f.spread.idxmax()]
    largest = (
        f"{100 * top.spread:.1f}% [{100 * top.low:.1f}, {100 * top.high:.1f}] at t = {top.t} "
        f"by {ce.COVARIATES[top.covariate]} ({ASSUMPTION_WORDS[top.verdict]})"
    )
    if result.classes:
        lo = int(np.argmin(result.class_cpe))
        hi = int(np.argmax(result.class_cpe))
        cmin, cmax = result.class_cpe[lo], result.class_cpe[hi]
        cpe_text = (
            f"Under its own class's profile, CPE of {p.trajectory} K = {p.num_steps} ranges from "
            f"{cmin:.2f}× (class {result.classes[lo]}) to {cmax:.2f}× (class "
            f"{result.classes[hi]}) of the marginal profile's."
        )
    else:
        cmin = cmax = float("nan")
        cpe_text = "The data has no class labels, so no class profile is computed."
    return Summary(
        testbed=p.testbed,
        model_name=result.model_name,
        n=int(result.data.errors.shape[1]),
        n_levels=len(p.timesteps),
        t_list=", ".join(str(t) for t in p.timesteps),
        bins=p.bins,
        tolerance_pct=100 * p.tolerance,
        n_tests=len(result.results),
        counts={f"n_{v}": int((f.verdict == v).sum()) for v in VERDICTS},
        by_covariate=_counts_text(f),
        largest=largest,
        class_cpe_min=float(cmin),
        class_cpe_max=float(cmax),
        class_cpe_text=cpe_text,
        seconds=result.seconds,
    )
