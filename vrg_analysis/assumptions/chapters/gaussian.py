"""Audit chapter: is the prediction error zero-mean and Gaussian?

VRG describes the prediction error at a noise level ``a`` as zero-mean Gaussian noise whose
variance is the profiled MSE ``w(a)`` (Algorithm 1; the paper shows a histogram of it), and adds
those variances along a trajectory,

    CPE = sum_k (sigma_k - sigma_{k-1})^2 w(a_k)                            (Eq. 10, (CPE))

This chapter tests both halves of the description, level by level and coordinate by coordinate, on
one model (:func:`vrg_analysis.testbeds.resolve_testbed`):

* errors against the **true noise**, ``delta = eps_hat(x_t) - eps`` with
  ``x_t = sqrt(a) x_0 + sqrt(1 - a) eps`` on training rows (DDPM eq. 4; Algorithm 1's error, the
  one in the paper's histogram), which contain the irreducible spread of ``eps`` given ``x_t``;
* on a testbed with an exact predictor, also against ``eps*``: the model's own error.

Zero mean (:func:`~vrg_analysis.assumptions.gaussianity.zero_mean_audit`): one-sample t test and
TOST with a margin in units of the coordinate's sd; Gaussianity
(:func:`~vrg_analysis.assumptions.gaussianity.normality_audit`): D'Agostino-Pearson K^2,
Anderson-Darling, Jarque-Bera, Shapiro-Wilk, skewness and kurtosis tests with the W1 distance to
N(0, 1) as effect size. Each family (one test over all levels x coordinates) is Holm-corrected and
judged by the book's rule on the claim "the assumption holds within its tolerance"
(``decide(claim="within")``): supported, contradicted or inconclusive.

Beside the verdicts: the share of the profiled MSE that is a systematic bias,
``sum_j mean_j^2 / sum_j E[delta_j^2]`` with the squared mean corrected for its sampling bias
``var_j / n`` (:func:`bias_share`), and 95% intervals of the standardized mean (Student t,
:func:`~vrg_analysis.evaluation.stats.t_interval`) and of the skewness (percentile bootstrap) for
the effects figure (:func:`effect_intervals`).

What a planted bias does to VRG itself is a paired comparison of trajectories and lives with the
studies (:mod:`vrg_analysis.studies.bias_sensitivity`), which this layer may not import.

``run(params) -> Result`` computes everything; :func:`summary` gives every number the prose cites,
:func:`findings_markdown` its findings list, :func:`figures` the two figures,
:func:`verdict_table` the table of verdict counts, and :func:`write_outputs` the verdict table
(``<verdict_dir>/audit_gaussian.csv`` + ``.md``, for the scorecard and
``python -m vrg_analysis audit``) and the figures as PNG.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from matplotlib.figure import Figure
from numpy.typing import NDArray
from scipy import stats

from vrg_analysis.assumptions.chapters import cached_audit
from vrg_analysis.assumptions.gaussianity import normality_audit, zero_mean_audit
from vrg_analysis.assumptions.samples import ErrorSample, errors_on_data
from vrg_analysis.assumptions.verdicts import AuditResult, with_source, write_results
from vrg_analysis.core.schedules import NoiseSchedule, sigma_from_alpha_bar
from vrg_analysis.evaluation.stats import (
    VERDICTS,
    aggregate,
    paired_bootstrap,
    percentile_interval,
    t_interval,
)
from vrg_analysis.params import as_bool, as_float, as_int
from vrg_analysis.report import PAGE_WIDTH, save_figures, styled
from vrg_analysis.testbeds import check_model, resolve_testbed
from vrg_analysis.threads import limit_threads

__all__ = [
    "CHAPTER",
    "FIGURES",
    "AGAINST",
    "TESTS",
    "ZERO_MEAN",
    "Params",
    "Result",
    "Summary",
    "audit_levels",
    "audit_frame",
    "bias_share",
    "effect_intervals",
    "sigma_list",
    "run",
    "verdict_counts",
    "verdict_table",
    "findings_markdown",
    "figure_qq",
    "figure_effects",
    "figures",
    "write_outputs",
    "summary",
    "artifact_result",
    "qq_curves",
    "qq_levels",
]

CHAPTER = "audit_gaussian"
#: The chapter's figures, by glue name (also the PNG names, ``audit_gaussian_<name>.png``).
FIGURES: tuple[str, ...] = ("fig_qq", "fig_effects")
#: The kinds of error audited, by key.
AGAINST: dict[str, str] = {"eps": "vs eps (true noise)", "eps*": "vs eps* (model's own error)"}
#: Test names in the tables, by the start of the audit's method string.
TESTS: dict[str, str] = {
    "one-sample t + TOST": "zero mean (t + TOST)",
    "dagostino k2": "D'Agostino-Pearson K2",
    "anderson darling": "Anderson-Darling",
    "jarque bera": "Jarque-Bera",
    "shapiro wilk": "Shapiro-Wilk",
    "skewness test": "skewness",
    "kurtosis test": "excess kurtosis",
}
ZERO_MEAN = TESTS["one-sample t + TOST"]
#: Default sizes (quick, full) when a size parameter is None: errors per level (power 0.9 for a
#: 0.05 sd mean at full size) and noise levels.
_SIZES: dict[str, tuple[int, int]] = {"n_samples": (1000, 5000), "num_levels": (6, 20)}
FloatArray = NDArray[np.float64]


# ===================================================================== parameters


@dataclass(frozen=True)
class Params:
    """The chapter's parameters (the notebook's ``parameters`` cell; CI-sized defaults).

    ``n_samples`` (errors per level) and ``num_levels`` (levels spread evenly over the training
    timesteps) default by ``quick``: 1000 and 6 quick, 5000 and 20 full; they are resolved to
    integers on construction. ``max_coordinates``: coordinates audited per level (a seeded random
    subset for images; None: all). ``margin``: the zero-mean tolerance in sd of the coordinate.
    ``bootstrap``: resamples of the skewness intervals drawn in the effects figure.
    """

    model: str = "mixture-2d"
    data: str | None = None
    device: str = "cpu"
    quick: bool = True
    seed: int = 0
    n_samples: int | None = None
    num_levels: int | None = None
    max_coordinates: int | None = 16
    margin: float = 0.1
    bootstrap: int = 200

    def __post_init__(self) -> None:
        s = object.__setattr__
        if self.data is not None and not isinstance(self.data, str):
            raise ValueError(f"parameter data must be a path or None, got {self.data!r}")
        check_model(self.model, self.data, self.device)
        s(self, "data", self.data or None)
        s(self, "quick", as_bool(self.quick, "quick"))
        s(self, "seed", as_int(self.seed, "seed", minimum=0))
        for name, (quick, full) in _SIZES.items():
            value = getattr(self, name)
            value = (quick if self.quick else full) if value is None else value
            s(self, name, as_int(value, name, minimum={"n_samples": 20, "num_levels": 1}[name]))
        if self.max_coordinates is not None:
            s(self, "max_coordinates", as_int(self.max_coordinates, "max_coordinates", minimum=1))
        s(self, "margin", as_float(self.margin, "margin", minimum=0.0, open_low=True))
        s(self, "bootstrap", as_int(self.bootstrap, "bootstrap", minimum=20))


# ===================================================================== the computation
def audit_levels(schedule: NoiseSchedule, num_levels: int) -> FloatArray:
    """``num_levels`` levels at training timesteps spread evenly over the schedule (rounded to
    whole timesteps, duplicates dropped), by increasing ``t``: decreasing ``alpha_bar``."""
    t = np.unique(np.round(np.linspace(0, schedule.num_timesteps - 1, int(num_levels))))
    return schedule.alpha_bar(t)


def audit_frame(rows: Mapping[str, Sequence[AuditResult]]) -> pd.DataFrame:
    """One row per audit result (``rows``: results by kind of error, a key of :data:`AGAINST`),
    with the kind (``key``, ``against``), the test's table name, the audited coordinate and the
    noise level ``sigma``."""
    frames = []
    for key, rs in rows.items():
        if not rs:
            continue
        df = pd.DataFrame([r.to_dict() for r in rs])
        df.insert(0, "key", key)
        df.insert(1, "against", AGAINST[key])
        frames.append(df)
    df = pd.concat(frames, ignore_index=True)
    df["test"] = df["method"].str.split(" (", regex=False).str[0].map(TESTS)
    df["dim"] = df["scope"].str.rsplit(" dim ", n=1).str[1].astype(int)
    df["sigma"] = sigma_from_alpha_bar(df["alpha_bar"].to_numpy())
    return df


def bias_share(sample: ErrorSample) -> FloatArray:
    """Per level, the share of the profiled MSE that is a systematic bias:
    ``sum_j max(mean_j^2 - var_j / n, 0) / sum_j E[delta_j^2]`` over all coordinates ``j`` (the
    squared sample mean is biased upwards by ``var_j / n``; the correction removes it)."""
    e = sample.errors
    mean_sq = np.clip(e.mean(axis=1) ** 2 - e.var(axis=1, ddof=1) / sample.n, 0.0, None)
    return mean_sq.sum(axis=1) / (e**2).mean(axis=1).sum(axis=1)


#: Points kept of each QQ curve (both extremes always): a curve of thousands of points draws the
#: same at the page's size.
QQ_POINTS = 400


def qq_levels(num_levels: int) -> list[int]:
    """The levels the QQ figure shows: the least noisy, a middle and the noisiest."""
    return sorted({0, num_levels // 2, num_levels - 1})


def qq_curves(sample: ErrorSample, coordinates: Sequence[int], key: str) -> pd.DataFrame:
    """Per QQ level (:func:`qq_levels`) and audited coordinate, the standardized error's order
    statistics against the normal quantiles ``(i - 1/2) / n``, thinned to :data:`QQ_POINTS`
    points (the extremes kept)."""
    n = sample.n
    keep = np.unique(np.round(np.linspace(0, n - 1, min(n, QQ_POINTS))).astype(int))
    q = stats.norm.ppf((keep + 0.5) / n)
    out = []
    for i in qq_levels(sample.num_levels):
        for j in coordinates:
            v = sample.errors[i, :, int(j)]
            z = np.sort((v - v.mean()) / v.std(ddof=1))[keep]
            out.append(pd.DataFrame({"key": key, "level": i, "dim": int(j), "q": q, "z": z}))
    return pd.concat(out, ignore_index=True)


def artifact_result(result: Result) -> Result:
    """What a committed full-size run keeps (:mod:`vrg_analysis.studies.artifacts`): everything
    but the raw errors (20 levels x 5,000 rows x 784 coordinates of the 28x28 model are about
    600 MB), which the page does not draw: its figures and numbers come from the verdict rows,
    the intervals, the bias shares and the QQ curves computed from them."""
    return dataclasses.replace(result, samples={})


def effect_intervals(
    sample: ErrorSample,
    coordinates: Sequence[int],
    *,
    bootstrap: int = 200,
    seed: int = 0,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Per level and coordinate: the standardized mean ``d = mean / sd`` with the Student-t
    interval of the mean in units of the sample sd, and the skewness with its percentile-bootstrap
    interval (``bootstrap`` resamples; no normal-theory standard error, which heavy tails break)."""
    out = []
    rng = np.random.default_rng(seed)
    for i in range(sample.num_levels):
        for j in coordinates:
            v = sample.errors[i, :, int(j)]
            sd = float(v.std(ddof=1))
            iv = t_interval(v, confidence)
            z = (v - v.mean()) / sd if sd > 0.0 else v - v.mean()
            skew = float(stats.skew(z))
            boot = paired_bootstrap(
                lambda idx, z=z: float(stats.skew(z[idx])), [z.size], bootstrap, rng
            )
            sk = percentile_interval(np.nan_to_num(boot), skew, confidence)
            out.append(
                {
                    "level": i,
                    "alpha_bar": float(sample.alpha_bar[i]),
                    "sigma": float(sigma_from_alpha_bar(sample.alpha_bar[i])),
                    "dim": int(j),
                    "d": iv.estimate / sd if sd > 0.0 else 0.0,
                    "d_low": iv.low / sd if sd > 0.0 else 0.0,
                    "d_high": iv.high / sd if sd > 0.0 else 0.0,
                    "skewness": skew,
                    "skewness_low": sk.low,
                    "skewness_high": sk.high,
                }
            )
    return pd.DataFrame(out)


@dataclass(frozen=True, eq=False)
class Result:
    """Everything the chapter shows: the error samples, the verdict rows by kind of error, the
    tidy frame of the rows, the intervals of the effects figure, and what the page draws from
    the raw errors, computed once: the audited levels, the error's dimension, the bias share
    per level (:func:`bias_share`) and the QQ curves (:func:`qq_curves`). A committed result
    keeps those and leaves out the raw errors (:func:`artifact_result`)."""

    params: Params
    target_name: str
    reference_name: str
    exact: bool
    conditional: bool
    samples: dict[str, ErrorSample]
    rows: dict[str, list[AuditResult]]
    frame: pd.DataFrame = field(repr=False)
    intervals: pd.DataFrame = field(repr=False)
    alpha_bar: FloatArray = field(repr=False)
    dim: int
    bias_shares: FloatArray = field(repr=False)
    qq: pd.DataFrame = field(repr=False)

    @property
    def results(self) -> list[AuditResult]:
        """Every verdict row (the verdict table the chapter writes), with its source."""
        return [r for rs in self.rows.values() for r in rs]

    @property
    def levels(self) -> FloatArray:
        return self.alpha_bar

    @property
    def keys(self) -> list[str]:
        """The kinds of error audited (:data:`AGAINST`), in order."""
        return list(self.rows)

    @property
    def sigmas(self) -> FloatArray:
        return sigma_from_alpha_bar(self.levels)

    @property
    def coordinates(self) -> list[int]:
        return sorted(int(j) for j in self.frame["dim"].unique())

    @property
    def data_label(self) -> str:
        return "training data" + (" with labels" if self.conditional else "")

    def tolerance(self, test: str) -> float:
        return float(self.frame.loc[self.frame.test == test, "tolerance"].iloc[0])


def run(params: Params) -> Result:
    """Draw the errors and run the zero-mean and Gaussianity audits, cached by the parameters and
    the audited model's identity (:mod:`vrg_analysis.cache`): the notebook and
    ``python -m vrg_analysis audit`` share one computation.
    """
    return cached_audit(CHAPTER, params, _compute)


def _compute(params: Params) -> Result:
    """Draw the errors and run the zero-mean and Gaussianity audits (module docstring)."""
    bed = resolve_testbed(params.model, data=params.data, device=params.device, seed=params.seed)
    ref = bed.reference()
    with limit_threads(1 if ref.exact and params.device == "cpu" else None):
        levels = audit_levels(bed.schedule, params.num_levels)
        # n training rows drawn with replacement (i.i.d. from the empirical training distribution,
        # so n may exceed the training set), one fresh eps per row and level
        gen = torch.Generator().manual_seed(params.seed)
        rows = torch.randint(0, bed.train_x.shape[0], (params.n_samples,), generator=gen)
        x0 = bed.train_x[rows]
        train_y = bed.train_y
        kwargs = {"y": train_y[rows]} if bed.conditional and train_y is not None else None
        name = bed.name if bed.name == bed.model_name else f"{bed.name} ({bed.model_name})"
        samples = {
            "eps": errors_on_data(
                bed.model,
                x0,
                levels,
                generator=torch.Generator().manual_seed(params.seed + 1),
                model_kwargs=kwargs,
                source=name,
            )
        }
        if ref.exact:  # the same eps draws, against eps*
            samples["eps*"] = errors_on_data(
                bed.model,
                x0,
                levels,
                reference=ref.model,
                generator=torch.Generator().manual_seed(params.seed + 1),
                model_kwargs=kwargs,
                source=name,
                reference_name=ref.name,
            )
    label = "training data" + (" with labels" if bed.conditional else "")
    by_key: dict[str, list[AuditResult]] = {}
    for key, s in samples.items():
        src = f"{name}, {label}, vs {key}"
        common = {"max_coordinates": params.max_coordinates, "seed": params.seed}
        by_key[key] = with_source(zero_mean_audit(s, margin=params.margin, **common), src)
        by_key[key] += with_source(normality_audit(s, **common), src)
    frame = audit_frame(by_key)
    coords = sorted(int(j) for j in frame["dim"].unique())
    qq = pd.concat([qq_curves(s, coords, key) for key, s in samples.items()], ignore_index=True)
    intervals = pd.concat(
        [
            effect_intervals(s, coords, bootstrap=params.bootstrap, seed=params.seed).assign(
                key=key
            )
            for key, s in samples.items()
        ],
        ignore_index=True,
    )
    return Result(
        params=params,
        target_name=name,
        reference_name=ref.name if ref.exact else "none exact",
        exact=ref.exact,
        conditional=bed.conditional,
        samples=samples,
        rows=by_key,
        frame=frame,
        intervals=intervals,
        alpha_bar=samples["eps"].alpha_bar,
        dim=samples["eps"].dim,
        bias_shares=bias_share(samples["eps"]),
        qq=qq,
    )


# ===================================================================== tables and prose
def verdict_counts(result: Result) -> pd.DataFrame:
    """One row per kind of error and test: how many (level, coordinate) tests support the claim
    "within tolerance", contradict it or stay inconclusive, the verdict on all of them together
    (a conjunction: one contradicted test contradicts it) and the largest effect with its level."""
    out = []
    for (against, test), g in result.frame.groupby(["against", "test"], sort=False):
        worst = g.loc[g["effect_size"].abs().idxmax()]
        counts = {v: int((g.verdict == v).sum()) for v in VERDICTS}
        out.append(
            {
                "errors": against,
                "test": test,
                "tests": len(g),
                **counts,
                "verdict": aggregate(g.verdict, conjunction=True),
                "effect": worst["effect_name"],
                "largest |effect|": abs(float(worst["effect_size"])),
                "tolerance": float(worst["tolerance"]),
                "at sigma": float(worst["sigma"]),
            }
        )
    return pd.DataFrame(out)


def verdict_table(result: Result) -> Any:
    """:func:`verdict_counts` as a styled table (verdicts as badges)."""
    return styled(
        verdict_counts(result),
        formats={"largest |effect|": "{:.3g}", "tolerance": "{:g}", "at sigma": "{:.3g}"},
        caption=(
            f"{result.target_name}, {result.params.n_samples} errors per level: the claim "
            "'within tolerance' per (level, coordinate) test, Holm-corrected per test"
        ),
    )


def sigma_list(values: Sequence[float] | FloatArray, most: int = 6) -> str:
    """Distinct noise levels as text (3 significant digits, at most ``most`` named)."""
    v = sorted({float(f"{x:.3g}") for x in values})
    text = ", ".join(f"{x:.3g}" for x in v[:most])
    return text + (f" and {len(v) - most} more" if len(v) > most else "")


def _md_against(key: str) -> str:
    return AGAINST[key].replace("*", "\\*")  # a bare * would end the bold text


def _zero_mean_sentence(result: Result, key: str) -> str:
    df, margin = result.frame, result.params.margin
    g = df[(df.key == key) & (df.test == ZERO_MEAN)]
    worst = g.loc[g["effect_size"].abs().idxmax()]
    bad = g[g.verdict == "contradicted"]
    ok = int((g.verdict == "supported").sum())
    where = f"($\\sigma$ = {float(worst['sigma']):.3g})"
    head = f"**Zero mean, errors {_md_against(key)}.** "
    if len(bad):
        text = (
            f"The claim $|$mean$|$ $\\leq$ {margin:g} sd is contradicted in {len(bad)} of {len(g)} "
            f"tests, at $\\sigma$ = {sigma_list(bad['sigma'])}; the largest standardized mean is "
            f"{float(worst['effect_size']):+.3g} sd {where}"
        )
    else:
        text = (
            f"No test finds a mean beyond the margin of {margin:g} sd; the largest standardized "
            f"mean is {float(worst['effect_size']):+.3g} sd {where}"
        )
    return head + text + f". A mean within $\\pm${margin:g} sd is supported in {ok} of {len(g)}."


def _normality_sentence(result: Result, key: str) -> str:
    df = result.frame
    g = df[(df.key == key) & (df.test != ZERO_MEAN)]
    bad = g[g.verdict == "contradicted"]
    bad_levels = set(bad["sigma"].round(12))
    ok_levels = [s for s in result.sigmas if round(float(s), 12) not in bad_levels]
    worst = {
        test: g[g.test == test].loc[g[g.test == test]["effect_size"].abs().idxmax()]
        for test in ("excess kurtosis", "skewness", "D'Agostino-Pearson K2")
    }
    k, s, w = worst["excess kurtosis"], worst["skewness"], worst["D'Agostino-Pearson K2"]
    text = (
        f"**Gaussianity, errors {_md_against(key)}.** Contradicted in {len(bad)} of {len(g)} tests "
        f"({bad['sigma'].nunique()} of {len(result.levels)} levels). The largest |excess "
        f"kurtosis| is {abs(float(k['effect_size'])):.3g} ($\\sigma$ = {float(k['sigma']):.3g}), "
        f"the largest |skewness| {abs(float(s['effect_size'])):.3g} "
        f"($\\sigma$ = {float(s['sigma']):.3g}), the largest $W_1$ distance "
        f"{float(w['effect_size']):.3g} sd ($\\sigma$ = {float(w['sigma']):.3g})."
    )
    if ok_levels:
        return text + f" No test is contradicted at $\\sigma$ = {sigma_list(ok_levels)}."
    return text + " Every level has at least one contradicted test."


def findings_markdown(result: Result) -> str:
    """The findings list (Markdown bullets): per kind of error, the zero-mean and the
    Gaussianity verdicts with their largest effects and where they occur."""
    keys = result.keys
    items = [_zero_mean_sentence(result, k) for k in keys]
    items += [_normality_sentence(result, k) for k in keys]
    if not result.exact:
        items.append(
            "No exact predictor exists for this target, so its own error is not separated from "
            "the irreducible spread of the noise."
        )
    return "\n".join(f"* {item}" for item in items)


# ===================================================================== figures
def _colours(keys: Sequence[str]) -> dict[str, Any]:
    return dict(zip(keys, sns.color_palette("colorblind", len(keys)), strict=True))


def figure_qq(result: Result) -> Figure:
    """QQ plots of the standardized error of each audited coordinate against normal quantiles at
    the least noisy, a middle and the noisiest level; one row per kind of error."""
    picks = qq_levels(len(result.levels))
    keys = result.keys
    width = PAGE_WIDTH / 3
    fig, axes = plt.subplots(
        len(keys), len(picks), figsize=(width * len(picks), 0.95 * width * len(keys)), squeeze=False
    )
    for r, key in enumerate(keys):
        for c, i in enumerate(picks):
            ax = axes[r, c]
            curves = result.qq[(result.qq.key == key) & (result.qq.level == i)]
            for _, curve in curves.groupby("dim", sort=True):
                ax.plot(curve.q, curve.z, lw=1, alpha=0.5)
            lim = max(4.0, float(np.abs(ax.get_ylim()).max()))
            ax.plot([-4, 4], [-4, 4], "k--", lw=1)
            ax.set_ylim(-lim, lim)
            ax.set_title(f"{AGAINST[key]}\nσ = {result.sigmas[i]:.3g}", fontsize=8.5)
            ax.set_xlabel("normal quantile (sd)")
        axes[r, 0].set_ylabel("standardized error (sd)")
    fig.tight_layout()
    plt.close(fig)
    return fig


def figure_effects(result: Result) -> Figure:
    """Effect sizes against the noise level, one point per coordinate and level, with their
    tolerance bands (grey): the standardized mean (Student-t 95% intervals), the skewness
    (bootstrap 95% intervals), the excess kurtosis and the W1 distance to N(0, 1)."""
    df, iv = result.frame, result.intervals
    keys = result.keys
    colours = _colours(keys)
    panels = [
        (ZERO_MEAN, "standardized mean (sd)", "d"),
        ("skewness", "skewness", "skewness"),
        ("excess kurtosis", "excess kurtosis", None),
        ("D'Agostino-Pearson K2", "W1 distance to N(0, 1) (sd)", None),
    ]
    fig, axes = plt.subplots(2, 2, figsize=(PAGE_WIDTH, 0.7 * PAGE_WIDTH), sharex=True)
    for ax, (test, label, interval) in zip(axes.flat, panels, strict=True):
        tol = result.tolerance(test)
        ax.axhspan(0.0 if test.startswith("D'Agostino") else -tol, tol, color="0.85", lw=0)
        for k, key in enumerate(keys):
            shift = 1.08**k  # side by side on the log axis
            if interval is None:
                g = df[(df.key == key) & (df.test == test)]
                x, y, yerr = g["sigma"].to_numpy() * shift, g["effect_size"].to_numpy(), None
            else:
                g = iv[iv.key == key]
                x, y = g["sigma"].to_numpy() * shift, g[interval].to_numpy()
                lo, hi = g[f"{interval}_low"].to_numpy(), g[f"{interval}_high"].to_numpy()
                yerr = np.clip(np.vstack([y - lo, hi - y]), 0.0, None)
            ax.errorbar(
                x, y, yerr=yerr, fmt="o", ms=3, alpha=0.6, color=colours[key], label=AGAINST[key]
            )
        ax.set(xscale="log", ylabel=label, title=label)
        if test == "excess kurtosis":
            ax.set_yscale("symlog", linthresh=1.0)
    for ax in axes[1]:
        ax.set_xlabel("noise level σ")
    axes[0, 0].legend(fontsize=7.5)
    fig.tight_layout()
    plt.close(fig)
    return fig


def figures(result: Result) -> dict[str, Figure]:
    """The chapter's figures by glue name (:data:`FIGURES`)."""
    return {"fig_qq": figure_qq(result), "fig_effects": figure_effects(result)}


def write_outputs(
    result: Result,
    verdict_dir: str | Path,
    figure_dir: str | Path | None = None,
    figs: Mapping[str, Any] | None = None,
) -> tuple[Path, Path]:
    """Write the verdict table ``<verdict_dir>/audit_gaussian.csv`` (+ ``.md``) and, with a
    ``figure_dir``, the figures (``figs``, default :func:`figures`) as PNG; returns the table's
    paths."""
    paths = write_results(result.results, verdict_dir, CHAPTER)
    if figure_dir:
        save_figures(figs if figs is not None else figures(result), figure_dir, CHAPTER)
    return paths


# ===================================================================== the prose's numbers
@dataclass(frozen=True)
class Summary:
    """Every number and phrase the chapter's prose cites (glued by field name)."""

    target_name: str
    reference_name: str
    data_label: str
    exact_note: str
    n_used: int
    n_levels: int
    n_coords: int
    dim: int
    sigma_min: float
    sigma_max: float
    margin: float
    tol_w1: float
    tol_skew: float
    tol_kurt: float
    n_tests: int
    n_supported: int
    n_contradicted: int
    n_inconclusive: int
    csv_name: str
    bias_share_max: float
    bias_share_sigma: float
    bias_share_median: float


def summary(result: Result) -> Summary:
    df = result.frame
    share = result.bias_shares
    i = int(np.argmax(share))
    counts = {v: int((df.verdict == v).sum()) for v in VERDICTS}
    return Summary(
        target_name=result.target_name,
        reference_name=result.reference_name,
        data_label=result.data_label,
        exact_note=(
            "The target has an exact predictor, so both kinds of error are audited."
            if result.exact
            else "The target has no exact predictor: only the errors against the true noise are "
            "audited."
        ),
        n_used=result.params.n_samples,
        n_levels=len(result.levels),
        n_coords=len(result.coordinates),
        dim=result.dim,
        sigma_min=float(result.sigmas.min()),
        sigma_max=float(result.sigmas.max()),
        margin=result.params.margin,
        tol_w1=result.tolerance("D'Agostino-Pearson K2"),
        tol_skew=result.tolerance("skewness"),
        tol_kurt=result.tolerance("excess kurtosis"),
        n_tests=len(df),
        n_supported=counts["supported"],
        n_contradicted=counts["contradicted"],
        n_inconclusive=counts["inconclusive"],
        csv_name=f"{CHAPTER}.csv",
        bias_share_max=100 * float(share[i]),
        bias_share_sigma=float(result.sigmas[i]),
        bias_share_median=100 * float(np.median(share)),
    )
