"""Predicted against measured: does the cumulative prediction error forecast the sample's error?

VRG chooses a trajectory by minimising one number, the cumulative prediction error (Eq. 10),
``CPE = sum_k (sigma_k - sigma_{k-1})^2 w(alpha_bar_k)``, where ``w`` is the model's
noise-prediction MSE profiled on training data (Algorithm 1). CPE is a *prediction*: the variance
per dimension that the model's errors add to the clean sample if they are independent across
steps and reach the sample unchanged. The paper checks its trajectories with two *measurements*:
the "image MSE" against a 200-step solve of the same model from the same ``x_T``, and FID. This
chapter runs DDIM on three baselines and their VRG re-timing as published (the engine's default
arm, :data:`~vrg_analysis.vrg.retime.PUBLISHED_VRG`) through the paired comparison engine
(:mod:`vrg_analysis.studies.engine`) on two testbeds, a trained image model (its set metric and
image MSE) and an exact testbed (also the error against the exact probability-flow ODE), and
computes:

1. **Levels** (:func:`level_stats`): per arm, CPE against the measured error; the least-squares
   fit ``log(measured) = a + b log(CPE)`` with a Student-t interval of the slope
   (:func:`~vrg_analysis.evaluation.stats.log_log_fit`; slope 1: the error is proportional to
   CPE), Spearman's rho and the factor ``CPE / measured``.
2. **Changes** (:func:`change_stats`): per configuration, VRG's CPE ratio to its baseline (the
   predicted change) against the measured ratio with a paired bootstrap interval (the same sample
   indices in both arms, within each seed: :func:`ratio_interval`; for the set metric the engine's
   paired interval of the difference, divided by the baseline's value). Verdicts come from the
   engine's :func:`~vrg_analysis.studies.engine.judge` (Holm over the configurations of one testbed
   and metric) on "VRG lowers the metric", and on "the metric moves the way CPE predicts"
   (:func:`prediction_verdicts`: the same Holm-adjusted p-values under the book's rule, the better
   side being the sign of the predicted change).
3. **What image MSE cannot see** (:func:`decomposition`): on the exact testbed the engine records,
   per sample, the error against the exact ODE from the arm's own start level (``exact_error``),
   from the baselines' start (``exact_error_common``), and, with ``decompose``, its split into the
   sampler's discretisation error (the same run with the exact ``eps*``) and the propagated model
   error. The **floor**, the error of the model's own fine solve against the truth, which image MSE
   cannot see because both of its solves share it, is the exact error of a ``reference_steps``
   time-uniform baseline in a comparison of its own (:meth:`Params.configs`, ``"floor"``), with
   its discretisation part.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from numpy.typing import ArrayLike, NDArray

from vrg_analysis.core.trajectories import BASELINES
from vrg_analysis.evaluation.stats import (
    Correlation,
    Interval,
    LogLogFit,
    Verdict,
    aggregate,
    decide,
    log_log_fit,
    paired_bootstrap,
    percentile_interval,
    rank_correlation,
)
from vrg_analysis.params import as_int, as_tuple, check_seeds
from vrg_analysis.report import colour, panel_size, styled
from vrg_analysis.studies.claims import Finding, describe_testbed, size_text
from vrg_analysis.studies.engine import (
    METRIC_DIRECTION,
    ComparisonConfig,
    ComparisonResult,
    FrechetToReference,
    compare_all,
    run_comparison,
)
from vrg_analysis.vrg.retime import PUBLISHED_VRG, VRGSetting

__all__ = [
    "Params",
    "Result",
    "Summary",
    "run",
    "arm_interval",
    "ratio_interval",
    "prediction_verdicts",
    "arm_table",
    "pair_table",
    "level_stats",
    "change_stats",
    "decomposition",
    "figure_levels",
    "figure_changes",
    "figure_quality",
    "figure_decomposition",
    "change_table",
    "decomposition_table",
    "split_table",
    "changes_markdown",
    "findings_markdown",
    "summary",
    "findings",
    "ROLES",
]

CHAPTER = "predicted_vs_measured"
SAMPLER = "ddim"
#: The two comparisons, by role, and their tags in glued names.
ROLES: dict[str, str] = {"image": "img", "exact": "ex"}
#: The per-sample errors that CPE predicts, where a comparison measured them.
ERRORS: tuple[str, ...] = ("image_mse", "exact_error")
SHORT = {"fid": "FID", "frechet": "Fréchet", "image_mse": "image MSE", "exact_error": "exact err."}
FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class Params:
    """The chapter's parameters (the notebook's ``parameters`` cell; CI-sized defaults)."""

    image_testbed: str = "digits"
    exact_testbed: str = "mixture-2d"
    baselines: tuple[str, ...] = ("time_uniform", "time_quadratic", "logsnr_uniform")
    steps: tuple[int, ...] = (5, 10, 20)
    seeds: tuple[int, ...] = (0, 1)
    n_samples_image: int = 128
    n_samples_exact: int = 256
    reference_steps: int = 200
    n_boot: int = 100
    profile_samples: int = 512  # Algorithm 1's training rows (the engine's default)

    def __post_init__(self) -> None:
        s = object.__setattr__
        s(self, "baselines", as_tuple(self.baselines, "baselines", str, choices=BASELINES))
        if len(set(self.baselines)) != len(self.baselines):
            raise ValueError(f"parameter baselines has repeats: {list(self.baselines)!r}")
        steps = tuple(sorted(set(as_tuple(self.steps, "steps", int))))
        if min(steps) < 2:
            raise ValueError(f"parameter steps must be integers >= 2, got {list(steps)!r}")
        if len(steps) < 2:
            raise ValueError(
                f"parameter steps needs at least 2 distinct step counts (a slope over K), "
                f"got {list(steps)!r}"
            )
        s(self, "steps", steps)
        s(self, "seeds", check_seeds(self.seeds, min_len=2))
        for name in ("n_samples_image", "n_samples_exact"):
            s(self, name, as_int(getattr(self, name), name, minimum=2))
        s(self, "reference_steps", as_int(self.reference_steps, "reference_steps", minimum=2))
        s(self, "n_boot", as_int(self.n_boot, "n_boot", minimum=20))
        s(self, "profile_samples", as_int(self.profile_samples, "profile_samples", minimum=2))

    @property
    def vrg(self) -> VRGSetting:
        return PUBLISHED_VRG

    def testbed(self, role: str) -> str:
        return self.image_testbed if role == "image" else self.exact_testbed

    def configs(self) -> dict[str, ComparisonConfig]:
        """The chapter's comparisons: the image model, the exact testbed (exact-ODE errors and
        their split), and the floor (the fine reference solve itself against the exact ODE; a
        gamma = 0 arm, the baseline unchanged, because the engine needs an arm)."""
        common: dict[str, Any] = {
            "samplers": (SAMPLER,),
            "seeds": self.seeds,
            "arms": (self.vrg,),
            "profile_samples": self.profile_samples,
        }
        main: dict[str, Any] = {
            **common,
            "baselines": self.baselines,
            "steps": self.steps,
            "reference_steps": self.reference_steps,
        }
        return {
            "image": ComparisonConfig(
                testbed=self.image_testbed, n_samples=self.n_samples_image, **main
            ),
            "exact": ComparisonConfig(
                testbed=self.exact_testbed,
                n_samples=self.n_samples_exact,
                exact_reference=True,
                decompose=True,
                **main,
            ),
            "floor": ComparisonConfig(
                testbed=self.exact_testbed,
                n_samples=self.n_samples_exact,
                baselines=("time_uniform",),
                steps=(self.reference_steps,),
                reference_steps=0,
                exact_reference=True,
                decompose=True,
                **{**common, "arms": (VRGSetting(0.0, PUBLISHED_VRG.reg_lambda),)},
            ),
        }


# ===================================================================== estimators
def arm_interval(
    values: Sequence[ArrayLike],
    n_boot: int,
    *,
    statistic: Callable[[FloatArray], float] | None = None,
    recentre: bool = False,
    seed: int = 0,
) -> Interval:
    """One arm's value (``statistic`` of its rows pooled over seeds, default the mean) with a
    95% bootstrap interval: ``n_boot`` resamples within each seed (``values[i]``: the rows of seed
    ``i``) from ``np.random.default_rng(seed)``, so every arm resampled with the same seed and
    sizes shares the indices (the pairing by starting noise). ``recentre``: for statistics that
    resampling biases (a Frechet distance)."""
    rows = [np.asarray(v, dtype=np.float64) for v in values]
    pooled = np.concatenate(rows)
    stat = statistic or (lambda a: float(a.mean()))
    boot = paired_bootstrap(
        lambda idx: stat(pooled[idx]), [len(r) for r in rows], n_boot, np.random.default_rng(seed)
    )
    return percentile_interval(boot, stat(pooled), recentre=recentre)


def ratio_interval(
    base: Sequence[ArrayLike], arm: Sequence[ArrayLike], n_boot: int, *, seed: int = 0
) -> Interval:
    """``mean(arm) / mean(base)`` of paired per-sample values (``[seed][sample]``) with a 95%
    paired bootstrap interval (both arms resampled at the same indices, within each seed)."""
    b = np.concatenate([np.asarray(v, dtype=np.float64) for v in base])
    a = np.concatenate([np.asarray(v, dtype=np.float64) for v in arm])
    if a.shape != b.shape:
        raise ValueError(f"paired values differ in size: {a.size} and {b.size}")
    sizes = [len(v) for v in base]
    boot = paired_bootstrap(
        lambda idx: float(a[idx].mean() / b[idx].mean()),
        sizes,
        n_boot,
        np.random.default_rng(seed),
    )
    return percentile_interval(boot, float(a.mean() / b.mean()))


def prediction_verdicts(
    cpe_ratio: ArrayLike, delta: ArrayLike, p_adjusted: ArrayLike, alpha: float = 0.05
) -> list[Verdict]:
    """The book's rule on "the metric moves the way CPE predicts", per configuration: the claim
    is a fall where CPE falls (``cpe_ratio < 1``) and a rise otherwise; ``delta`` = VRG -
    baseline of a lower-is-better metric and ``p_adjusted`` its family-corrected p-value."""
    out: list[Verdict] = []
    for r, d, p in zip(
        np.asarray(cpe_ratio, dtype=float),
        np.asarray(delta, dtype=float),
        np.asarray(p_adjusted, dtype=float),
        strict=True,
    ):
        sign = -1 if r < 1 else +1
        out.append(
            decide(float(d), float(p), claim="better", better_sign=sign, alpha=alpha).verdict
        )
    return out


# ===================================================================== tables of the run
def _metrics(res: ComparisonResult) -> list[str]:
    return [res.set_metric, *[m for m in ERRORS if m in res.arms[0].per_sample]]


def _errors(res: ComparisonResult) -> list[str]:
    return [m for m in ERRORS if m in res.arms[0].per_sample]


def arm_table(role: str, res: ComparisonResult, n_boot: int) -> pd.DataFrame:
    """One row per baseline, K and variant: CPE, start level, and each metric (pooled over seeds)
    with its bootstrap interval (every arm resampled at the same indices)."""
    cfg = res.config
    frechet = FrechetToReference(res.reference_moments)
    rows = []
    for _, b, k in res.configurations():
        for variant in ("baseline", *cfg.arm_labels):
            arms = [res.arm(SAMPLER, b, k, variant, s) for s in cfg.seeds]
            row: dict[str, Any] = {
                "role": role,
                "baseline": b,
                "K": k,
                "variant": "baseline" if variant == "baseline" else "VRG",
                "cpe": arms[0].cpe,
                "start": float(arms[0].alpha_bar[0]),
                "moved": bool(arms[0].optimisation.get("moved", True)),
                "converged": bool(arms[0].optimisation.get("converged", True)),
            }
            for m in _metrics(res):
                if m == res.set_metric:
                    iv = arm_interval(
                        [a.features for a in arms], n_boot, statistic=frechet, recentre=True
                    )
                else:
                    iv = arm_interval([a.per_sample[m] for a in arms], n_boot)
                row.update({m: iv.estimate, f"{m}_lo": iv.low, f"{m}_hi": iv.high})
            rows.append(row)
    return pd.DataFrame(rows)


def pair_table(role: str, res: ComparisonResult, n_boot: int) -> pd.DataFrame:
    """One row per baseline and K: VRG's CPE ratio and start move, and for each metric the ratio
    VRG / baseline with its paired interval, the difference with the engine's interval, the Holm
    p-value and the verdicts on "VRG lowers it" and "it moves the way CPE predicts"."""
    cfg = res.config
    variant = cfg.arm_labels[0]
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for _, b, k in res.configurations():
        base = res.arm(SAMPLER, b, k, "baseline", cfg.seeds[0])
        arm = res.arm(SAMPLER, b, k, variant, cfg.seeds[0])
        rows[(b, k)] = {
            "role": role,
            "baseline": b,
            "K": k,
            "cpe_ratio": arm.cpe / base.cpe,
            "start_shift": float(arm.alpha_bar[0] / base.alpha_bar[0] - 1.0),
        }
    for m in _metrics(res):
        if METRIC_DIRECTION[m] != -1:  # pragma: no cover - the chapter's metrics are errors
            raise ValueError(f"metric {m!r} is not lower-is-better")
        judged = compare_all(res, m, n_boot=n_boot)  # Holm over one testbed and metric
        pred = prediction_verdicts(
            [rows[(c.baseline, c.K)]["cpe_ratio"] for c in judged],
            [c.delta for c in judged],
            [c.p_adjusted for c in judged],
        )
        for c, pv in zip(judged, pred, strict=True):
            if m == res.set_metric:  # the engine's paired interval of the difference, as a ratio
                lo, hi = 1 + c.ci_low / c.base_value, 1 + c.ci_high / c.base_value
            else:
                iv = ratio_interval(
                    [
                        res.arm(SAMPLER, c.baseline, c.K, "baseline", s).per_sample[m]
                        for s in cfg.seeds
                    ],
                    [
                        res.arm(SAMPLER, c.baseline, c.K, variant, s).per_sample[m]
                        for s in cfg.seeds
                    ],
                    n_boot,
                )
                lo, hi = iv.low, iv.high
            rows[(c.baseline, c.K)].update(
                {
                    f"{m}_ratio": c.vrg_value / c.base_value,
                    f"{m}_ratio_lo": lo,
                    f"{m}_ratio_hi": hi,
                    f"{m}_delta": c.delta,
                    f"{m}_delta_lo": c.ci_low,
                    f"{m}_delta_hi": c.ci_high,
                    f"{m}_p": c.p_adjusted,
                    f"{m}_verdict": c.verdict,
                    f"{m}_prediction": pv,
                }
            )
    return pd.DataFrame(list(rows.values()))


def level_stats(arms: pd.DataFrame, role: str, metric: str) -> dict[str, Any]:
    """CPE against a measured error over every arm of one testbed: the log-log fit, Spearman's
    rho and the factor CPE / measured (median, min, max)."""
    sub = arms[arms.role == role]
    fit = log_log_fit(sub.cpe, sub[metric])
    rho = rank_correlation(sub.cpe, sub[metric])
    over = sub.cpe / sub[metric]
    return {
        "role": role,
        "metric": metric,
        "fit": fit,
        "rho": rho,
        "over": float(over.median()),
        "over_min": float(over.min()),
        "over_max": float(over.max()),
    }


def change_stats(pairs: pd.DataFrame, role: str, metric: str) -> dict[str, Any]:
    """The predicted change (CPE ratio) against the measured one over the configurations of one
    testbed: Spearman's rho of the log ratios, how often the signs agree, the median measured
    change (%) and the verdict counts on "VRG lowers the metric"."""
    sub = pairs[pairs.role == role]
    pred = np.log(sub.cpe_ratio.to_numpy())
    meas = np.log(sub[f"{metric}_ratio"].to_numpy())
    counts = sub[f"{metric}_verdict"].value_counts()
    return {
        "role": role,
        "metric": metric,
        "rho": rank_correlation(pred, meas),
        "agree": int(np.sum(np.sign(pred) == np.sign(meas))),
        "n": int(len(sub)),
        "median_change": 100 * float(np.median(sub[f"{metric}_ratio"] - 1)),
        "pred_median": 100 * float(np.median(sub.cpe_ratio - 1)),
        "lowered": int((sub.cpe_ratio < 1).sum()),
        **{v: int(counts.get(v, 0)) for v in ("supported", "inconclusive", "contradicted")},
        "verdict": aggregate(sub[f"{metric}_prediction"]),
    }


def _mean(res: ComparisonResult, b: str, k: int, variant: str, metric: str) -> float:
    return float(
        np.mean(
            np.concatenate(
                [res.arm(SAMPLER, b, k, variant, s).per_sample[metric] for s in res.config.seeds]
            )
        )
    )


def decomposition(exact: ComparisonResult, floor: float) -> pd.DataFrame:
    """Per baseline, K and variant (means over all samples): image MSE, the ``floor`` (the fine
    solve's own error against the truth, the same for every arm), the error against the exact ODE
    from the baselines' start (``exact_error_common``) and what remains of it (cross terms), the
    start-level effect (from the baselines' start minus from the arm's own start: zero for a
    baseline), the error from the arm's own start and its split into discretisation and
    propagated model error (``decompose``) and their cross term."""
    rows = []
    variant = exact.config.arm_labels[0]
    for _, b, k in exact.configurations():
        for v in ("baseline", variant):
            image = _mean(exact, b, k, v, "image_mse")
            common = _mean(exact, b, k, v, "exact_error_common")
            own = _mean(exact, b, k, v, "exact_error")
            disc = _mean(exact, b, k, v, "discretisation_error")
            prop = _mean(exact, b, k, v, "propagated_error")
            rows.append(
                {
                    "baseline": b,
                    "K": k,
                    "variant": "baseline" if v == "baseline" else "VRG",
                    "image MSE": image,
                    "floor": floor,
                    "cross terms": common - image - floor,
                    "exact error (baselines' start)": common,
                    "start-level effect": common - own,
                    "exact error (own start)": own,
                    "discretisation": disc,
                    "propagated model error": prop,
                    "cross term (split)": own - disc - prop,
                }
            )
    return pd.DataFrame(rows).set_index(["baseline", "K", "variant"])


# ===================================================================== the run
@dataclass(frozen=True, eq=False)
class Result:
    """The comparisons and every table the chapter shows."""

    params: Params
    comparisons: dict[str, ComparisonResult]
    arms: pd.DataFrame = field(repr=False)
    pairs: pd.DataFrame = field(repr=False)
    levels: list[dict[str, Any]] = field(repr=False)
    changes: list[dict[str, Any]] = field(repr=False)
    decomposition: pd.DataFrame = field(repr=False)
    floor: Interval
    floor_disc: float

    def name(self, role: str) -> str:
        return self.params.testbed(role)

    def set_metric(self, role: str) -> str:
        return self.comparisons[role].set_metric

    def label(self, metric: str) -> str:
        return {
            "fid": "FID",
            "frechet": "Fréchet distance",
            "pixel_frechet": "pixel Fréchet distance",
            "image_mse": f"image MSE (vs {self.params.reference_steps}-step DDIM)",
            "exact_error": "error vs exact ODE",
        }.get(metric, metric)

    def change_metrics(self, role: str) -> list[str]:
        return [*_errors(self.comparisons[role]), self.set_metric(role)]


def run(params: Params, *, progress: bool = False) -> Result:
    """Run the comparisons (image, exact, floor) and compute every table of the chapter."""
    p = params
    comps = {name: run_comparison(cfg, progress=progress) for name, cfg in p.configs().items()}
    for role in ROLES:  # equal cost in every pair (the engine's contract, checked)
        res = comps[role]
        for _, b, k in res.configurations():
            calls = {res.arm(SAMPLER, b, k, v, s).nfe for v in res.variants() for s in p.seeds}
            if len(calls) != 1:
                raise RuntimeError(f"{role} {b} K={k}: arms differ in model calls {calls}")
    arms = pd.concat([arm_table(r, comps[r], p.n_boot) for r in ROLES], ignore_index=True)
    pairs = pd.concat([pair_table(r, comps[r], p.n_boot) for r in ROLES], ignore_index=True)
    levels = [level_stats(arms, r, m) for r in ROLES for m in _errors(comps[r])]
    changes = [
        change_stats(pairs, r, m) for r in ROLES for m in [*_errors(comps[r]), comps[r].set_metric]
    ]
    fl = comps["floor"]
    fine = [fl.arm(SAMPLER, "time_uniform", p.reference_steps, "baseline", s) for s in p.seeds]
    floor = arm_interval([a.per_sample["exact_error"] for a in fine], p.n_boot)
    floor_disc = float(
        np.mean(np.concatenate([a.per_sample["discretisation_error"] for a in fine]))
    )
    return Result(
        params=p,
        comparisons=comps,
        arms=arms,
        pairs=pairs,
        levels=levels,
        changes=changes,
        decomposition=decomposition(comps["exact"], floor.estimate),
        floor=floor,
        floor_disc=floor_disc,
    )


# ===================================================================== rendering
_MARK = {"image_mse": "o", "exact_error": "^"}
_CMARK = {"image_mse": "o", "exact_error": "^"}


def _bars(value: Any, lo: Any, hi: Any) -> FloatArray:
    v, lo_, hi_ = (np.asarray(x, dtype=float) for x in (value, lo, hi))
    return np.clip(np.vstack([v - lo_, hi_ - v]), 0.0, None)


def figure_levels(result: Result) -> Any:
    """Predicted (CPE) against measured endpoint error per arm, one panel per testbed: arrows
    from each baseline (open) to its VRG re-timing (filled), 95% bootstrap intervals, y = x
    (dashed) and the log-log fits (dotted)."""
    height, aspect = panel_size(2)
    fig, axes = plt.subplots(1, 2, figsize=(2 * height * aspect, height + 0.9))
    baselines = result.params.baselines
    for ax, role in zip(axes, ROLES, strict=True):
        sub = result.arms[result.arms.role == role]
        values = [sub.cpe.to_numpy()]
        for j, m in enumerate(_errors(result.comparisons[role])):
            for b in baselines:
                for k in result.params.steps:
                    g = sub[(sub.baseline == b) & (sub.K == k)].set_index("variant")
                    ax.annotate(
                        "",
                        xy=(g.cpe["VRG"], g[m]["VRG"]),
                        xytext=(g.cpe["baseline"], g[m]["baseline"]),
                        arrowprops={
                            "arrowstyle": "->",
                            "color": colour(b),
                            "lw": 0.8,
                            "alpha": 0.7,
                        },
                    )
                for variant, face in (("baseline", "white"), ("VRG", colour(b))):
                    gv = sub[(sub.baseline == b) & (sub.variant == variant)]
                    ax.errorbar(
                        gv.cpe,
                        gv[m],
                        yerr=_bars(gv[m], gv[f"{m}_lo"], gv[f"{m}_hi"]),
                        fmt=_MARK[m],
                        mfc=face,
                        mec=colour(b),
                        ecolor=colour(b),
                        ms=5,
                        capsize=2,
                        lw=0.8,
                    )
            fit = next(s["fit"] for s in result.levels if s["role"] == role and s["metric"] == m)
            xs = np.geomspace(sub.cpe.min(), sub.cpe.max(), 50)
            ax.plot(xs, fit(xs), ":", color=f"{0.1 + 0.3 * j}", lw=1.5)
            values.append(sub[m].to_numpy())
        allv = np.concatenate(values)
        lims = (allv.min() / 2, allv.max() * 2)
        ax.plot(lims, lims, "--", color="0.5", lw=1)
        ax.set(xscale="log", yscale="log", title=result.name(role))
        ax.set_xlabel("predicted: CPE (Eq. 10), per dim.")
        ax.set_ylabel("measured: MSE per dimension")
    handles = [Line2D([], [], color=colour(b), marker="s", ls="", label=b) for b in baselines]
    handles += [
        Line2D([], [], color="k", marker="o", mfc="white", ls="", label="baseline"),
        Line2D([], [], color="k", marker="o", ls="", label="VRG as published"),
        Line2D([], [], color="k", marker="^", ls="", label=result.label("exact_error")),
        Line2D([], [], color="0.5", ls="--", label="y = x"),
        Line2D([], [], color="0.1", ls=":", label="fit, image MSE"),
        Line2D([], [], color="0.4", ls=":", label="fit, exact error"),
    ]
    fig.tight_layout()
    fig.subplots_adjust(bottom=0.32)
    fig.legend(handles=handles, loc="lower center", ncol=3, frameon=False, fontsize=7.5)
    plt.close(fig)
    return fig


def figure_changes(result: Result) -> Any:
    """Predicted change (CPE ratio, VRG over baseline) against measured change per configuration,
    one panel per testbed, 95% paired bootstrap intervals; shaded: the measured change has the
    sign CPE predicts; dashed: measured = predicted."""
    height, aspect = panel_size(2)
    fig, axes = plt.subplots(1, 2, figsize=(2 * height * aspect, height + 0.3))
    for ax, role in zip(axes, ROLES, strict=True):
        sub = result.pairs[result.pairs.role == role]
        ms = result.change_metrics(role)
        for j, m in enumerate(ms):
            y = sub[f"{m}_ratio"]
            ax.errorbar(
                sub.cpe_ratio * (1 + 0.006 * (j - 1)),
                y,
                yerr=_bars(y, sub[f"{m}_ratio_lo"], sub[f"{m}_ratio_hi"]),
                fmt=_CMARK.get(m, "s"),
                color=f"C{j}",
                ms=4.5,
                capsize=2,
                lw=0.8,
                label=result.label(m),
            )
        lo = min(sub.cpe_ratio.min(), *(sub[f"{m}_ratio_lo"].min() for m in ms)) * 0.9
        hi = max(1.0, *(sub[f"{m}_ratio_hi"].max() for m in ms)) * 1.1
        ax.axhline(1, color="k", lw=0.8)
        ax.axvline(1, color="k", lw=0.8)
        ax.fill_between([lo, 1], lo, 1, color="0.92", zorder=0)
        ax.fill_between([1, hi], 1, hi, color="0.92", zorder=0)
        ax.plot([lo, hi], [lo, hi], "--", color="0.5", lw=1, label="y = x")
        ax.set(xscale="log", yscale="log", xlim=(lo, hi), ylim=(lo, hi), title=result.name(role))
        ax.set_xlabel("predicted: CPE(VRG) / CPE(baseline)")
        ax.set_ylabel("measured: VRG / baseline")
        ticks = [t for t in (0.25, 0.3, 0.4, 0.5, 0.6, 0.8, 1, 1.25, 1.5, 2, 3, 4) if lo <= t <= hi]
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.set_yticks(ticks, [f"{t:g}" for t in ticks])
        ax.minorticks_off()
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    plt.close(fig)
    return fig


def _panel_axes(
    n_rows_blocks: int, n_panels: int, *, sharey: bool = False
) -> tuple[Any, list[list[Any]]]:
    """A grid of at most three panels a row: ``n_rows_blocks`` blocks of ``n_panels`` panels,
    each block starting on a new row; returns the figure and the axes of each block."""
    cols = min(n_panels, 3)
    rows_per = math.ceil(n_panels / cols)
    height, aspect = panel_size(cols)
    fig, axes = plt.subplots(
        n_rows_blocks * rows_per,
        cols,
        figsize=(cols * height * aspect, n_rows_blocks * rows_per * height + 0.4),
        squeeze=False,
        sharey=sharey,
    )
    blocks = []
    for blk in range(n_rows_blocks):
        flat = [axes[blk * rows_per + i // cols, i % cols] for i in range(rows_per * cols)]
        for ax in flat[n_panels:]:
            ax.set_visible(False)
        blocks.append(flat[:n_panels])
    return fig, blocks


def figure_quality(result: Result) -> Any:
    """Sample quality over K, baseline (open) and VRG (filled), 95% bootstrap intervals over the
    pooled samples (recentred): one row of panels per testbed (its set metric), one panel per
    baseline; a decided verdict on "VRG lowers it" is written above its K."""
    p = result.params
    fig, blocks = _panel_axes(len(ROLES), len(p.baselines))
    for axes, role in zip(blocks, ROLES, strict=True):
        m = result.set_metric(role)
        sub = result.arms[result.arms.role == role]
        for ax, b in zip(axes, p.baselines, strict=True):
            c = colour(b)
            for variant, style in (("baseline", "o-"), ("VRG", "s--")):
                g = sub[(sub.baseline == b) & (sub.variant == variant)].sort_values("K")
                ax.errorbar(
                    g.K * (1.03 if variant == "VRG" else 1.0),
                    g[m],
                    yerr=_bars(g[m], g[f"{m}_lo"], g[f"{m}_hi"]),
                    fmt=style,
                    color=c,
                    mfc="white" if variant == "baseline" else c,
                    capsize=2,
                    ms=4.5,
                    label=variant,
                )
            verdicts = result.pairs[(result.pairs.role == role) & (result.pairs.baseline == b)]
            for r in verdicts.itertuples():
                word = getattr(r, f"{m}_verdict")
                if word != "inconclusive":
                    y = sub[(sub.baseline == b) & (sub.K == r.K)][f"{m}_hi"].max()
                    ax.annotate(
                        word,
                        (r.K, y),
                        textcoords="offset points",
                        xytext=(0, 4),
                        fontsize=7,
                        ha="center",
                    )
            span = sub[f"{m}_hi"].max() / max(sub[f"{m}_lo"].min(), 1e-12)
            ax.set(xscale="log", yscale="log" if span > 20 else "linear")
            ax.set_title(f"{result.name(role)}: {b}", fontsize=9)
            ax.set_xticks(p.steps, [str(k) for k in p.steps])
            ax.minorticks_off()
            ax.set_xlabel("K (model calls)")
            ax.set_ylabel(result.label(m))
        axes[0].legend(fontsize=7)
    fig.tight_layout()
    plt.close(fig)
    return fig


def figure_decomposition(result: Result) -> Any:
    """On the exact testbed, one panel per baseline: image MSE (blue) and the error against the
    exact ODE (red) over K, baseline (open) and VRG (filled), 95% bootstrap intervals; the floor
    (black) and its discretisation part (dotted)."""
    p = result.params
    fig, (axes,) = _panel_axes(1, len(p.baselines), sharey=True)
    sub0 = result.arms[result.arms.role == "exact"]
    for ax, b in zip(axes, p.baselines, strict=True):
        sub = sub0[sub0.baseline == b]
        for m, c in (("image_mse", "C0"), ("exact_error", "C3")):
            for variant, style in (("baseline", "o-"), ("VRG", "s--")):
                g = sub[sub.variant == variant].sort_values("K")
                ax.errorbar(
                    g.K,
                    g[m],
                    yerr=_bars(g[m], g[f"{m}_lo"], g[f"{m}_hi"]),
                    fmt=style,
                    color=c,
                    mfc="white" if variant == "baseline" else c,
                    capsize=2,
                    ms=4.5,
                    label=f"{SHORT[m]}, {variant}",
                )
        ax.axhline(result.floor.estimate, color="k", lw=1, label="floor (fine solve vs truth)")
        ax.axhline(result.floor_disc, color="0.6", lw=1, ls=":", label="its discretisation part")
        ax.set(xscale="log", yscale="log", title=b)
        ax.set_xlabel("K (model calls)")
        ax.set_ylabel("MSE per dimension")
        ax.set_xticks(p.steps, [str(k) for k in p.steps])
        ax.minorticks_off()
    handles, labels = axes[0].get_legend_handles_labels()
    fig.tight_layout()
    fig.subplots_adjust(bottom=0.34)
    fig.legend(handles, labels, loc="lower center", ncol=3, frameon=False, fontsize=7.5)
    plt.close(fig)
    return fig


def _ci_text(m: float, lo: float, hi: float) -> str:
    m, lo, hi = (100.0 * (v - 1) for v in (m, lo, hi))
    return f"{m:+.1f} [{lo:+.1f}, {hi:+.1f}]"


def change_table(result: Result, role: str) -> Any:
    """Per configuration of one testbed: the CPE change, the start move, and per metric VRG's
    change (%) with its 95% paired interval and the verdict on "VRG lowers it" (Holm per testbed
    and metric)."""
    sub = result.pairs[result.pairs.role == role]
    cols: dict[str, Any] = {
        "baseline": sub.baseline,
        "K": sub.K,
        "CPE (%)": [f"{100 * (r - 1):+.1f}" for r in sub.cpe_ratio],
        "a_K moved (%)": [f"{100 * r:+.0f}" for r in sub.start_shift],
    }
    verdict_cols = []
    for m in _metrics(result.comparisons[role]):
        cols[f"{SHORT[m]} (%)"] = [
            _ci_text(a, b, c)
            for a, b, c in zip(
                sub[f"{m}_ratio"], sub[f"{m}_ratio_lo"], sub[f"{m}_ratio_hi"], strict=True
            )
        ]
        cols[f"lowers {SHORT[m]}"] = sub[f"{m}_verdict"]
        verdict_cols.append(f"lowers {SHORT[m]}")
    return styled(
        pd.DataFrame(cols),
        verdict_columns=verdict_cols,
        caption=f"{result.name(role)}: VRG against the baseline (change in %, 95% interval)",
    ).set_properties(**{"white-space": "nowrap"})


def decomposition_table(result: Result) -> Any:
    """What image MSE sees and misses on the exact testbed (means over all samples)."""
    cols = [
        "image MSE",
        "floor",
        "cross terms",
        "exact error (baselines' start)",
        "start-level effect",
        "exact error (own start)",
    ]
    return (
        result.decomposition[cols]
        .style.format("{:.3g}")
        .set_caption(f"{result.name('exact')}: image MSE, the floor and the exact error")
        .set_properties(**{"white-space": "nowrap"})
    )


def split_table(result: Result) -> Any:
    """The error against the exact ODE from each arm's own start, split into the sampler's
    discretisation error and the propagated model error (means over all samples)."""
    cols = ["exact error (own start)", "discretisation", "propagated model error"]
    return (
        result.decomposition[[*cols, "cross term (split)"]]
        .style.format("{:.3g}")
        .set_caption(f"{result.name('exact')}: the exact error split by the engine (decompose)")
        .set_properties(**{"white-space": "nowrap"})
    )


def _tally(s: dict[str, Any]) -> str:
    return (
        f"VRG better (supported) in {s['supported']}, inconclusive in {s['inconclusive']}, worse "
        f"(contradicted) in {s['contradicted']}"
    )


def _order_words(s: dict[str, Any]) -> str:
    rho: Correlation = s["rho"]
    text = f"$\\rho$ = {rho.rho:.2f}, $p$ = {rho.p:.2g}"
    if not rho.p < 0.05:
        return f"the size of the predicted cut does not order the measured changes ({text})"
    if rho.rho > 0:
        return f"larger predicted cuts came with larger measured improvements ({text})"
    return f"larger predicted cuts came with *worse* measured changes ({text})"


def changes_markdown(result: Result) -> str:
    """One bullet per testbed and metric: the measured change against the predicted one."""
    lines = []
    for s in result.changes:
        lines.append(
            f"* **{result.name(s['role'])}, {result.label(s['metric'])}**: median measured change "
            f"{s['median_change']:+.1f}%; its sign matches the prediction in {s['agree']} of "
            f'{s["n"]} configurations; on "VRG lowers it" (Holm): {_tally(s)}; '
            f"{_order_words(s)}."
        )
    return "\n".join(lines)


def _sign_words(s: dict[str, Any]) -> str:
    if s["agree"] == s["n"]:
        return "in every configuration"
    if s["agree"] >= 0.5 * s["n"]:
        return f"in {s['agree']} of {s['n']} configurations"
    return f"in only {s['agree']} of {s['n']} configurations"


def findings_markdown(result: Result) -> str:
    """The chapter's conclusions, one bullet each, from the tables above."""
    p = result.params
    out = []
    for s in result.levels:
        fit: LogLogFit = s["fit"]
        slope = f"log-log slope {fit.slope:.2f} [{fit.slope_low:.2f}, {fit.slope_high:.2f}]"
        out.append(
            f"**{result.name(s['role'])}, {result.label(s['metric'])}, levels.** CPE is "
            f"{s['over']:.3g} times the measured error (median over arms), "
            + (
                f"and the {slope} excludes 1: the measured error is not proportional to CPE."
                if fit.excludes(1.0)
                else f"and the {slope} does not exclude 1 (a loose fit that mostly follows K)."
            )
        )
    for s in result.changes:
        out.append(
            f"**{result.name(s['role'])}, {result.label(s['metric'])}.** Predicted change: a "
            f"median CPE change of {s['pred_median']:+.0f}%; measured {s['median_change']:+.1f}%. "
            f"The sign matches {_sign_words(s)}; {_tally(s)} (Holm, {len(p.seeds)} seeds); "
            f"{_order_words(s)}."
        )
    sm = summary(result)
    out.append(
        f"**What image MSE misses.** On {result.name('exact')} the model's own "
        f"{p.reference_steps}-step solve is {sm.floor:.3g} (MSE per dimension) from the truth, "
        f"{sm.top_floor_pct:.0f}% of the baselines' exact error at K = {sm.k_max} and "
        f"{sm.low_floor_pct:.0f}% at K = {sm.k_min}: image MSE cannot see this floor. Image MSE "
        f"and exact error give different verdicts on VRG in {sm.n_disagree} of {sm.n_configs} "
        f"configurations; the start-level effect is {sm.shift_share_pct:.2g}% of VRG's image MSE "
        "(median)."
    )
    return "\n".join(f"* {f}" for f in out)


# ===================================================================== the prose's numbers
@dataclass(frozen=True)
class Summary:
    """Every number and phrase the chapter's prose cites (glued by field name; the mapping fields
    glue their keys: ``{img,ex}_{metric}_{slope,...}`` per level fit and
    ``{img,ex}_{metric|set}_{crho,cp,agree,...}`` per change)."""

    image_name: str
    exact_name: str
    image_set_name: str
    exact_set_name: str
    n_seeds: int
    seeds_text: str
    n_image: int
    n_exact: int
    ref_steps: int
    gamma: float
    reg_lambda: float
    k_text: str
    n_configs: int
    n_boot: int
    n_moved: int
    n_converged: int
    n_vrg_arms: int
    shift_min: float
    shift_max: float
    cpe_cut_min: float
    cpe_cut_max: float
    slope_note: str
    pred_median: float
    k_min: int
    k_max: int
    fid_kmin: float
    fid_kmax: float
    floor: float
    floor_lo: float
    floor_hi: float
    floor_disc: float
    floor_model_pct: float
    top_image: float
    top_exact: float
    top_floor_pct: float
    low_floor_pct: float
    img_over_exact_top: float
    n_disagree: int
    median_img_change: float
    median_exact_change: float
    shift_term_median: float
    shift_share_pct: float
    shift_note: str
    levels: dict[str, Any] = field(default_factory=dict)
    changes: dict[str, Any] = field(default_factory=dict)


def summary(result: Result) -> Summary:
    p = result.params
    pairs, arms = result.pairs, result.arms
    vrg = arms[arms.variant == "VRG"]
    levels: dict[str, Any] = {}
    resolved = []
    for s in result.levels:
        tag = f"{ROLES[s['role']]}_{s['metric']}"
        fit: LogLogFit = s["fit"]
        rho: Correlation = s["rho"]
        levels.update(
            {
                f"{tag}_slope": fit.slope,
                f"{tag}_slope_lo": fit.slope_low,
                f"{tag}_slope_hi": fit.slope_high,
                f"{tag}_rho": rho.rho,
                f"{tag}_p": rho.p,
                f"{tag}_over": s["over"],
                f"{tag}_over_word": "overstates" if s["over"] > 1 else "understates",
                f"{tag}_over_min": s["over_min"],
                f"{tag}_over_max": s["over_max"],
            }
        )
        if fit.excludes(1.0):
            resolved.append(
                f"{result.label(s['metric'])} on {result.name(s['role'])} falls "
                f"{'faster' if fit.slope > 1 else 'slower'} than CPE"
            )
    changes: dict[str, Any] = {}
    for s in result.changes:
        key = "set" if s["metric"] == result.set_metric(s["role"]) else s["metric"]
        tag = f"{ROLES[s['role']]}_{key}"
        changes.update(
            {
                f"{tag}_crho": s["rho"].rho,
                f"{tag}_cp": s["rho"].p,
                f"{tag}_cmedian_change": s["median_change"],
                f"{tag}_agree": s["agree"],
                f"{tag}_n": s["n"],
                f"{tag}_agree_pct": 100 * s["agree"] / s["n"],
                f"{tag}_supported": s["supported"],
                f"{tag}_inconclusive": s["inconclusive"],
                f"{tag}_contradicted": s["contradicted"],
            }
        )
    k_lo, k_hi = p.steps[0], p.steps[-1]
    for role, tag in ROLES.items():
        m = result.set_metric(role)
        sub = pairs[pairs.role == role]
        changes[f"{tag}_set_kmax_change"] = 100 * float(
            np.median(sub[sub.K == k_hi][f"{m}_ratio"] - 1)
        )
        changes[f"{tag}_set_kmin_change"] = 100 * float(
            np.median(sub[sub.K == k_lo][f"{m}_ratio"] - 1)
        )
    img_base = arms[(arms.role == "image") & (arms.variant == "baseline")]
    img_set = result.set_metric("image")
    ex_pairs = pairs[pairs.role == "exact"]
    ex_base = arms[(arms.role == "exact") & (arms.variant == "baseline")]
    top, low = ex_base[ex_base.K == k_hi], ex_base[ex_base.K == k_lo]
    floor = result.floor
    dec_vrg = result.decomposition.xs("VRG", level="variant")
    share = float(np.median(dec_vrg["start-level effect"] / dec_vrg["image MSE"]))
    if abs(share) < 0.01:
        shift_note = (
            "It is negligible: this close to pure noise the exact flow's endpoint hardly depends "
            "on the level at which the same starting noise is started, so moving the start level "
            "is no error here and image MSE charges next to nothing for it."
        )
    else:
        shift_note = (
            "So a part of what image MSE charges to VRG is only the move of the start level that "
            "the paper's penalty allows, a different sampler rather than an error of it."
        )
    return Summary(
        image_name=result.name("image"),
        exact_name=result.name("exact"),
        image_set_name=result.label(img_set),
        exact_set_name=result.label(result.set_metric("exact")),
        n_seeds=len(p.seeds),
        seeds_text=", ".join(str(s) for s in p.seeds),
        n_image=p.n_samples_image,
        n_exact=p.n_samples_exact,
        ref_steps=p.reference_steps,
        gamma=p.vrg.gamma,
        reg_lambda=p.vrg.reg_lambda,
        k_text=", ".join(str(k) for k in p.steps),
        n_configs=len(p.baselines) * len(p.steps),
        n_boot=p.n_boot,
        n_moved=int(vrg.moved.sum()),
        n_converged=int(vrg.converged.sum()),
        n_vrg_arms=int(len(vrg)),
        shift_min=100 * float(pairs.start_shift.min()),
        shift_max=100 * float(pairs.start_shift.max()),
        cpe_cut_min=100 * float(1 - pairs.cpe_ratio.max()),
        cpe_cut_max=100 * float(1 - pairs.cpe_ratio.min()),
        slope_note=(
            "Every one of these intervals contains 1: over so few arms the slopes are not resolved."
            if not resolved
            else "Where the interval excludes 1: " + "; ".join(resolved) + "."
        ),
        pred_median=100 * float(np.median(pairs.cpe_ratio - 1)),
        k_min=k_lo,
        k_max=k_hi,
        fid_kmin=float(img_base[img_base.K == k_lo][img_set].median()),
        fid_kmax=float(img_base[img_base.K == k_hi][img_set].median()),
        floor=floor.estimate,
        floor_lo=floor.low,
        floor_hi=floor.high,
        floor_disc=result.floor_disc,
        floor_model_pct=100 * (1 - result.floor_disc / floor.estimate),
        top_image=float(top.image_mse.median()),
        top_exact=float(top.exact_error.median()),
        top_floor_pct=100 * float(np.median(floor.estimate / top.exact_error)),
        low_floor_pct=100 * float(np.median(floor.estimate / low.exact_error)),
        img_over_exact_top=float(np.median(top.image_mse / top.exact_error)),
        n_disagree=int(np.sum(ex_pairs.image_mse_verdict != ex_pairs.exact_error_verdict)),
        median_img_change=100 * float(np.median(ex_pairs.image_mse_ratio - 1)),
        median_exact_change=100 * float(np.median(ex_pairs.exact_error_ratio - 1)),
        shift_term_median=float(dec_vrg["start-level effect"].median()),
        shift_share_pct=100 * share,
        shift_note=shift_note,
        levels=levels,
        changes=changes,
    )


def _scope(result: Result, role: str) -> tuple[str, str]:
    """A finding's ``model`` and ``size`` for one testbed (``"image"`` or ``"exact"``), from its
    comparison's configuration (:meth:`Params.configs`)."""
    p = result.params
    cfg = p.configs()[role]
    note = "errors against the exact ODE" if cfg.exact_reference else ""
    size = size_text(
        p,
        CHAPTER,
        samples=cfg.n_samples,
        seeds=cfg.seeds,
        steps=cfg.steps,
        detail=f"{SAMPLER} × {len(cfg.baselines)} baseline(s)",
    )
    return describe_testbed(cfg.testbed, cfg.data, note=note), size


def findings(result: Result) -> list[Finding]:
    """The chapter's findings on "cpe-predicts-error": per testbed and measured error, the
    aggregate (:func:`~vrg_analysis.evaluation.stats.aggregate`) of the per-configuration verdicts
    on "the error moves the way CPE predicts" (:func:`prediction_verdicts`, Holm per testbed and
    metric); value: the median measured change (%)."""
    seeds = ", ".join(str(x) for x in result.params.seeds)
    out = []
    for s in result.changes:
        if s["metric"] not in ERRORS:
            continue  # the claim is about the error of the generated sample
        model, size = _scope(result, s["role"])
        out.append(
            Finding(
                claim="cpe-predicts-error",
                chapter=CHAPTER,
                finding=(
                    f"{result.name(s['role'])}, {result.label(s['metric'])}: VRG (as published) "
                    f"lowers CPE in {s['lowered']} of {s['n']} configurations; the measured error "
                    f"changes by a median {s['median_change']:+.1f}%, its sign matches the "
                    f"prediction in {s['agree']} of {s['n']}; VRG lowers it (supported) in "
                    f"{s['supported']}, inconclusive in {s['inconclusive']}, raises it "
                    f"(contradicted) in {s['contradicted']} (Holm)"
                ),
                value=float(s["median_change"]),
                ci_low=math.nan,
                ci_high=math.nan,
                verdict=s["verdict"],
                seeds=seeds,
                model=model,
                size=size,
            )
        )
    return out
