"""The statistics engine: intervals, tests, multiple testing, and the book's one verdict rule.

Every interval, test and verdict in the book comes from here, so every chapter and the claims page
judge under the same rule. The field's libraries do the work where they can:

* intervals: Student-t (:func:`t_interval`, ``statsmodels`` ``DescrStatsW.tconfint_mean``), Wilson
  for proportions (:func:`wilson_interval`, ``statsmodels`` ``proportion_confint``), and the paired,
  seed-stratified bootstrap (:func:`paired_bootstrap`; written here, see its docstring);
* tests: one-sample / paired t (``scipy.stats.ttest_1samp``), TOST equivalence (:func:`tost_pvalue`,
  ``statsmodels`` ``DescrStatsW.ttost_mean``), Anderson-Darling normality
  (:func:`anderson_darling`, ``statsmodels.stats.diagnostic.normal_ad``);
* association: Spearman's rank correlation (:func:`rank_correlation`, ``scipy.stats.spearmanr``)
  and power laws (:func:`log_log_fit`: least squares of ``log y`` on ``log x``,
  ``scipy.stats.linregress``, with the slope's Student-t interval and test);
* multiple testing: Holm and Benjamini-Hochberg (:func:`adjust_pvalues`; BH through
  ``statsmodels.stats.multitest.multipletests``, Holm's step-down written here, see
  :func:`holm_adjust`, and tested against it).

**The verdict rule** (:func:`decide`). A verdict answers whether the evidence supports a stated
claim, in one vocabulary: ``"supported"``, ``"contradicted"`` or ``"inconclusive"`` (and, for a
claim judged over several results, ``"mixed"``: :func:`aggregate`). Two kinds of claim:

* ``claim="better"`` (e.g. "VRG lowers FID"): *supported* when the family-corrected test rejects
  "no difference" and the estimate lies beyond the practical ``band`` on the better side;
  *contradicted* when it rejects and the estimate lies beyond the band on the worse side;
  otherwise *inconclusive*.
* ``claim="within"`` (e.g. "the error's mean is within 0.1 sd of 0"): *supported* when equivalence
  is shown (the interval lies inside the band, or a TOST rejects); *contradicted* when the
  corrected test rejects and the estimate lies outside the band; otherwise *inconclusive*. With
  ``strict=True`` (the claim is "no deviation at all", e.g. independence) a significant deviation
  inside the band leaves it inconclusive.

A p-value alone never decides: with thousands of samples any tiny deviation is significant, which
is why a ``"within"`` claim needs its effect outside the tolerance band to be contradicted.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats as sps
from statsmodels.stats.diagnostic import normal_ad
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint
from statsmodels.stats.weightstats import DescrStatsW

__all__ = [
    "Verdict",
    "Aggregate",
    "Claim",
    "Correction",
    "VERDICTS",
    "AGGREGATES",
    "CORRECTIONS",
    "Interval",
    "Decision",
    "t_interval",
    "wilson_interval",
    "adjust_pvalues",
    "holm_adjust",
    "one_sample_t",
    "welch_pvalues",
    "tost_pvalue",
    "anderson_darling",
    "stratified_indices",
    "paired_bootstrap",
    "percentile_interval",
    "bootstrap_pvalue",
    "Correlation",
    "rank_correlation",
    "LogLogFit",
    "log_log_fit",
    "decide",
    "decide_family",
    "aggregate",
]

FloatArray = NDArray[np.float64]
Verdict = Literal["supported", "contradicted", "inconclusive"]
Aggregate = Literal["supported", "contradicted", "mixed", "inconclusive"]
Claim = Literal["better", "within"]
Correction = Literal["holm", "bh", "none"]
VERDICTS: tuple[str, ...] = ("supported", "contradicted", "inconclusive")
AGGREGATES: tuple[str, ...] = ("supported", "contradicted", "mixed", "inconclusive")
CORRECTIONS: tuple[str, ...] = ("holm", "bh", "none")


def _check_confidence(confidence: float) -> float:
    c = float(confidence)
    if not 0.5 <= c < 1.0:
        raise ValueError(f"confidence must lie in [0.5, 1), got {confidence!r}")
    return c


def _finite_vector(x: ArrayLike, name: str, min_len: int = 2) -> FloatArray:
    arr = np.asarray(x, dtype=np.float64).reshape(-1)
    if arr.size < min_len:
        raise ValueError(f"{name} needs at least {min_len} values, got {arr.size}")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise ValueError(f"{name}[{int(bad[0])}] = {float(arr[bad[0]])!r} is not finite")
    return arr


# ===================================================================== intervals
@dataclass(frozen=True)
class Interval:
    """An estimate with its confidence interval, and how the interval was made."""

    estimate: float
    low: float
    high: float
    confidence: float
    method: str

    @property
    def half_width(self) -> float:
        return 0.5 * (self.high - self.low)

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    def __str__(self) -> str:
        return f"{self.estimate:.4g} [{self.low:.4g}, {self.high:.4g}]"


def t_interval(x: ArrayLike, confidence: float = 0.95) -> Interval:
    """Student-t interval of the mean of ``x`` (``statsmodels`` ``DescrStatsW.tconfint_mean``).

    Used for quantities measured once per seed (the seeds are the independent replications)."""
    c = _check_confidence(confidence)
    v = _finite_vector(x, "x")
    if float(np.ptp(v)) == 0.0:  # statsmodels gives nan for zero spread; the interval is a point
        m = float(v[0])
        return Interval(m, m, m, c, "t")
    lo, hi = DescrStatsW(v).tconfint_mean(alpha=1.0 - c)
    return Interval(float(v.mean()), float(lo), float(hi), c, "t")


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> Interval:
    """Wilson score interval of a proportion (``statsmodels`` ``proportion_confint``)."""
    c = _check_confidence(confidence)
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if isinstance(successes, bool) or int(successes) != successes or not 0 <= successes <= n:
        raise ValueError(f"successes must be an integer in [0, {n}], got {successes!r}")
    lo, hi = proportion_confint(int(successes), int(n), alpha=1.0 - c, method="wilson")
    return Interval(successes / n, float(lo), float(hi), c, "Wilson")


# ===================================================================== tests
def holm_adjust(p: FloatArray) -> FloatArray:
    """Holm's (1979) step-down adjusted p-values of a family of finite p-values: sorted
    ascending, ``p_(i) (m - i)`` (``i`` from 0), made non-decreasing, capped at 1.

    Written here rather than called from ``statsmodels.stats.multitest.multipletests(method=
    "holm")``, which gives the same values (``tests/test_stats.py`` checks it) but runs
    ``gc.collect()`` on every call: 0.05-0.13 s each in a notebook's heap, and the book corrects
    thousands of tables."""
    q = np.asarray(p, dtype=np.float64).reshape(-1)
    m = q.size
    order = np.argsort(q, kind="stable")
    adjusted = np.minimum(np.maximum.accumulate((m - np.arange(m)) * q[order]), 1.0)
    out = np.empty(m)
    out[order] = adjusted
    return out


def adjust_pvalues(p: ArrayLike, method: Correction = "holm") -> FloatArray:
    """Family-wise (Holm 1979, step-down: :func:`holm_adjust`) or false-discovery-rate
    (Benjamini & Hochberg 1995, step-up: ``statsmodels.stats.multitest.multipletests``) adjusted
    p-values; ``"none"`` returns them unchanged. NaNs stay NaN and are not counted in the
    family."""
    if method not in CORRECTIONS:
        raise ValueError(f"unknown correction {method!r}; expected one of {CORRECTIONS}")
    arr = np.asarray(p, dtype=np.float64)
    out = np.full(arr.shape, np.nan)
    ok = np.isfinite(arr)
    bad = np.flatnonzero(ok & ((arr < 0.0) | (arr > 1.0)))
    if bad.size:
        raise ValueError(
            f"p-values must lie in [0, 1]; p[{int(bad[0])}] = {float(arr.flat[bad[0]])!r}"
        )
    q = arr[ok]
    if q.size == 0 or method == "none":
        out[ok] = q
        return out
    if method == "holm":
        out[ok] = holm_adjust(q)
    else:
        out[ok] = multipletests(q, method="fdr_bh")[1]
    return out


def one_sample_t(x: ArrayLike, null: float = 0.0) -> tuple[float, float]:
    """``(t, two-sided p)`` of the one-sample t test of mean ``null`` (``scipy.stats``); applied to
    paired differences it is the paired t test. Zero spread: ``p = 1`` at the null, else 0."""
    v = _finite_vector(x, "x")
    if float(np.ptp(v)) == 0.0:
        at_null = float(v[0]) == null
        return (0.0 if at_null else math.copysign(math.inf, v[0] - null)), float(at_null)
    res = sps.ttest_1samp(v, null)
    return float(res.statistic), float(res.pvalue)


def welch_pvalues(
    mean_a: ArrayLike,
    sem_a: ArrayLike,
    n_a: ArrayLike,
    mean_b: ArrayLike,
    sem_b: ArrayLike,
    n_b: ArrayLike,
) -> FloatArray:
    """Element-wise two-sided p-values of Welch's test of equal means from summary statistics
    (means, standard errors of the mean, counts; ``scipy.stats.ttest_ind_from_stats`` with
    ``equal_var=False``). Where both sides have zero spread the test is undefined and there is
    no evidence of a difference: p = 1."""
    sa, sb = np.asarray(sem_a, dtype=np.float64), np.asarray(sem_b, dtype=np.float64)
    na, nb = np.asarray(n_a, dtype=np.float64), np.asarray(n_b, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = sps.ttest_ind_from_stats(
            mean_a, sa * np.sqrt(na), na, mean_b, sb * np.sqrt(nb), nb, equal_var=False
        ).pvalue
    return np.where(np.isfinite(p), p, 1.0).astype(np.float64)


def tost_pvalue(x: ArrayLike, low: float, high: float) -> float:
    """p-value of the two one-sided tests (TOST) that the mean of ``x`` lies in ``(low, high)``
    (``statsmodels`` ``DescrStatsW.ttost_mean``): small when equivalence is shown."""
    if not low < high:
        raise ValueError(f"the equivalence band needs low < high, got ({low!r}, {high!r})")
    v = _finite_vector(x, "x")
    if float(np.ptp(v)) == 0.0:
        return 0.0 if low < float(v[0]) < high else 1.0
    return float(DescrStatsW(v).ttost_mean(low, high)[0])


def anderson_darling(x: ArrayLike) -> tuple[float, float]:
    """Anderson-Darling test of normality with estimated mean and variance:
    ``(A^2, p)`` from ``statsmodels.stats.diagnostic.normal_ad`` (Stephens' small-sample
    correction and D'Agostino & Stephens' p-value, which is valid down to 0)."""
    v = _finite_vector(x, "x", min_len=8)
    with np.errstate(divide="ignore"):  # statsmodels takes log(0) in extreme tails (p = 0)
        a2, p = normal_ad(v)
    return float(a2), float(p)


# ===================================================================== the bootstrap
def stratified_indices(sizes: Sequence[int], rng: np.random.Generator) -> NDArray[np.int64]:
    """One bootstrap resample of the rows of strata laid end to end (``sizes[i]`` rows each):
    rows are drawn with replacement within each stratum, so every resample keeps the strata."""
    offsets = np.cumsum([0, *sizes[:-1]])
    return np.concatenate(
        [o + rng.integers(0, s, size=s) for o, s in zip(offsets, sizes, strict=True)]
    )


def paired_bootstrap(
    statistic: Callable[[NDArray[np.int64]], float],
    sizes: Sequence[int],
    n_boot: int,
    rng: np.random.Generator,
) -> FloatArray:
    """``statistic(idx)`` over ``n_boot`` stratified resamples ``idx`` (:func:`stratified_indices`).

    Written here rather than with ``scipy.stats.bootstrap`` for two reasons: the resample is
    stratified (by seed: each seed's starting noise is one stratum), and the statistic of a paired
    comparison is computed from both arms at the same indices, including set statistics such as
    the Frechet distance of the pooled features, which are not means of per-row values. With one
    stratum and a mean it is scipy's paired percentile bootstrap (tested against it).
    """
    if isinstance(n_boot, bool) or int(n_boot) != n_boot or n_boot < 20:
        raise ValueError(f"n_boot must be an integer >= 20, got {n_boot!r}")
    if not sizes or min(sizes) < 1:
        raise ValueError(f"every stratum needs at least one row, got sizes {list(sizes)!r}")
    return np.array([statistic(stratified_indices(sizes, rng)) for _ in range(int(n_boot))])


def percentile_interval(
    boot: ArrayLike, estimate: float, confidence: float = 0.95, *, recentre: bool = False
) -> Interval:
    """The percentile interval of bootstrap replicates for ``estimate``.

    ``recentre=True`` shifts the replicates to centre on the estimate first (a bias correction of
    the percentile interval): for statistics that a resample with repeated rows biases, such as a
    Frechet distance, whose plain percentile interval can miss the estimate itself."""
    c = _check_confidence(confidence)
    b = _finite_vector(boot, "bootstrap replicates")
    if recentre:
        b = b - b.mean() + float(estimate)
    lo, hi = np.quantile(b, [(1.0 - c) / 2.0, (1.0 + c) / 2.0])
    method = "bootstrap (recentred percentile)" if recentre else "bootstrap (percentile)"
    return Interval(float(estimate), float(lo), float(hi), c, method)


def bootstrap_pvalue(estimate: float, boot: ArrayLike) -> float:
    """Two-sided p-value of "no difference" from the bootstrap standard error: the normal test
    ``z = estimate / sd(replicates)`` (Efron & Tibshirani 1993, sec. 16.4). Zero spread: 1 at 0,
    else 0."""
    b = _finite_vector(boot, "bootstrap replicates")
    se = float(b.std(ddof=1))
    if se > 0.0:
        return float(2.0 * sps.norm.sf(abs(estimate) / se))
    return 1.0 if estimate == 0.0 else 0.0


# ===================================================================== association
@dataclass(frozen=True)
class Correlation:
    """Spearman's rank correlation with its two-sided p-value over ``n`` points (NaN when one
    side is constant or there are fewer than 3 points)."""

    rho: float
    p: float
    n: int

    def relation(self, alpha: float, what: str = "") -> str:
        """The association in words (significant at ``alpha`` or not)."""
        tail = f" {what}" if what else ""
        if not math.isfinite(self.rho) or not self.p < alpha:
            return "is not significantly associated with" + tail
        return ("goes with a lower" if self.rho < 0 else "goes with a higher") + tail


def rank_correlation(x: ArrayLike, y: ArrayLike) -> Correlation:
    """Spearman's rho of ``x`` and ``y`` and its p-value (``scipy.stats.spearmanr``)."""
    xa = np.asarray(x, dtype=np.float64).reshape(-1)
    ya = np.asarray(y, dtype=np.float64).reshape(-1)
    if xa.shape != ya.shape:
        raise ValueError(f"x and y differ in length: {xa.size} and {ya.size}")
    _finite_vector(xa, "x", min_len=0)
    _finite_vector(ya, "y", min_len=0)
    n = int(xa.size)
    if n < 3 or np.ptp(xa) == 0 or np.ptp(ya) == 0:
        return Correlation(math.nan, math.nan, n)
    res = sps.spearmanr(xa, ya)
    return Correlation(float(res.statistic), float(res.pvalue), n)


@dataclass(frozen=True)
class LogLogFit:
    """``log(y) = intercept + slope log(x)`` by least squares, with the slope's standard error and
    Student-t interval ``slope -+ t_{n-2} stderr`` (NaN with fewer than 3 points; zero width for
    an exact power law)."""

    slope: float
    intercept: float
    stderr: float
    slope_low: float
    slope_high: float
    n: int
    confidence: float = 0.95

    @property
    def half_width(self) -> float:
        return 0.5 * (self.slope_high - self.slope_low)

    def excludes(self, value: float) -> bool:
        """Whether the slope's interval excludes ``value``."""
        return bool(value < self.slope_low or value > self.slope_high)

    def p_value(self, slope: float) -> float:
        """Two-sided p-value of "the slope is ``slope``" (t test on ``n - 2`` degrees of
        freedom); for an exact power law 1 at its own slope and 0 elsewhere."""
        if self.n < 3:
            return math.nan
        if self.stderr > 0.0:
            t_stat = (self.slope - slope) / self.stderr
            return float(2.0 * sps.t.sf(abs(t_stat), self.n - 2))
        return 1.0 if math.isclose(self.slope, slope, abs_tol=1e-12) else 0.0

    def __call__(self, x: ArrayLike) -> FloatArray:
        return np.exp(self.intercept) * np.asarray(x, dtype=np.float64) ** self.slope


def log_log_fit(x: ArrayLike, y: ArrayLike, confidence: float = 0.95) -> LogLogFit:
    """The least-squares line of ``log y`` on ``log x`` (``scipy.stats.linregress``), the power
    law ``y = exp(intercept) x^slope``, with the slope's t interval."""
    c = _check_confidence(confidence)
    xa = np.asarray(x, dtype=np.float64)
    ya = np.asarray(y, dtype=np.float64)
    if xa.shape != ya.shape or xa.ndim != 1:
        raise ValueError(f"x and y must be vectors of one length, got {xa.shape} and {ya.shape}")
    _finite_vector(xa, "x")
    _finite_vector(ya, "y")
    if np.any(xa <= 0) or np.any(ya <= 0):
        raise ValueError("a log-log fit needs positive x and y")
    fit = sps.linregress(np.log(xa), np.log(ya))
    n = int(xa.size)
    se = float(fit.stderr) if n > 2 else math.nan
    half = float(sps.t.ppf(0.5 + c / 2.0, n - 2)) * se if n > 2 else math.nan
    return LogLogFit(
        slope=float(fit.slope),
        intercept=float(fit.intercept),
        stderr=se,
        slope_low=float(fit.slope) - half,
        slope_high=float(fit.slope) + half,
        n=n,
        confidence=c,
    )


# ===================================================================== the verdict rule
@dataclass(frozen=True)
class Decision:
    """A verdict and the reason, in words, that the rule gave it."""

    verdict: Verdict
    reason: str


def _outside(value: float, band: tuple[float, float]) -> int:
    """-1 below the band, +1 above it, 0 inside."""
    if value < band[0]:
        return -1
    if value > band[1]:
        return 1
    return 0


def decide(
    estimate: float,
    p_adjusted: float,
    *,
    claim: Claim,
    alpha: float = 0.05,
    band: tuple[float, float] = (0.0, 0.0),
    interval: tuple[float, float] | None = None,
    better_sign: int = -1,
    equivalence_p: float | None = None,
    strict: bool = False,
) -> Decision:
    """The book's verdict rule (see the module docstring).

    ``estimate``: the effect (e.g. VRG - baseline, or an effect size); ``p_adjusted``: the
    family-corrected p-value of "no effect"; ``band``: the region of no (practical) effect, a
    tolerance (``(-tol, tol)``, or ``(-inf, tol)`` for a magnitude); ``interval``: the effect's
    confidence interval; ``better_sign``: for ``claim="better"``, the sign of an improvement
    (``-1``: lower is better); ``equivalence_p``: for ``claim="within"``, a corrected TOST p-value
    that can show equivalence instead of the interval.

    Evidence from an interval alone (``p_adjusted`` NaN, ``claim="within"``): a deviation beyond
    the band is shown when the whole interval lies outside the band, a test at the interval's
    level.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")
    if not band[0] <= band[1]:
        raise ValueError(f"band must be (low, high) with low <= high, got {band!r}")
    if not math.isfinite(estimate):
        return Decision("inconclusive", f"the estimate is {estimate!r}")
    rejects = math.isfinite(p_adjusted) and p_adjusted < alpha
    side = _outside(estimate, band)
    if claim == "better":
        if better_sign not in (-1, 1):
            raise ValueError(f"better_sign must be -1 or +1, got {better_sign!r}")
        if rejects and side == better_sign:
            return Decision("supported", f"better (p_adj = {p_adjusted:.2g} < {alpha:g})")
        if rejects and side == -better_sign:
            return Decision("contradicted", f"worse (p_adj = {p_adjusted:.2g} < {alpha:g})")
        if rejects:
            return Decision("inconclusive", "a difference is detected, inside the practical band")
        return Decision("inconclusive", f"no significant difference (p_adj = {p_adjusted:.2g})")
    if claim != "within":
        raise ValueError(f"claim must be 'better' or 'within', got {claim!r}")
    shown = (interval is not None and band[0] <= interval[0] and interval[1] <= band[1]) or (
        equivalence_p is not None and math.isfinite(equivalence_p) and equivalence_p < alpha
    )
    if not math.isfinite(p_adjusted) and interval is not None:
        rejects = interval[0] > band[1] or interval[1] < band[0]
    if rejects and side != 0:
        return Decision("contradicted", "a deviation beyond the tolerance is detected")
    if shown and not (strict and rejects):
        extra = " (a smaller deviation is detectable)" if rejects else ""
        return Decision("supported", "shown to lie within the tolerance" + extra)
    if shown:
        return Decision(
            "inconclusive", "within the tolerance, but a deviation is detected (strict claim)"
        )
    if rejects:
        return Decision("inconclusive", "a deviation is detected but not shown to exceed the band")
    if side != 0:
        return Decision("inconclusive", "beyond the tolerance but not significant")
    return Decision("inconclusive", "not shown to lie within the tolerance: more samples needed")


def decide_family(
    estimates: Sequence[float],
    p_values: Sequence[float],
    *,
    claim: Claim,
    alpha: float = 0.05,
    correction: Correction = "holm",
    band: tuple[float, float] = (0.0, 0.0),
    intervals: Sequence[tuple[float, float] | None] | None = None,
    better_sign: int = -1,
) -> tuple[FloatArray, list[Decision]]:
    """:func:`decide` for a family of results: the p-values are corrected together first.
    Returns the adjusted p-values and the decisions."""
    if len(estimates) != len(p_values):
        raise ValueError(f"{len(estimates)} estimates but {len(p_values)} p-values")
    adj = adjust_pvalues(p_values, correction)
    ivs = list(intervals) if intervals is not None else [None] * len(estimates)
    return adj, [
        decide(
            float(e),
            float(p),
            claim=claim,
            alpha=alpha,
            band=band,
            interval=iv,
            better_sign=better_sign,
        )
        for e, p, iv in zip(estimates, adj, ivs, strict=True)
    ]


def aggregate(verdicts: Iterable[str], *, conjunction: bool = False) -> Aggregate:
    """One verdict for a claim judged over several results.

    Default (a claim that should hold in every configuration): *supported* when all results are,
    *contradicted* when none is and at least one is contradicted, *inconclusive* when all are,
    *mixed* otherwise. ``conjunction=True`` (a claim that is false if any part fails, e.g. "every
    assumption holds"): one contradicted result contradicts it.
    """
    vs = list(verdicts)
    unknown = sorted({v for v in vs if v not in AGGREGATES})
    if unknown:
        raise ValueError(f"unknown verdicts {unknown}; expected {AGGREGATES}")
    if not vs:
        raise ValueError("no verdicts to aggregate")
    if conjunction and "contradicted" in vs:
        return "contradicted"
    if all(v == "supported" for v in vs):
        return "supported"
    if all(v == "inconclusive" for v in vs):
        return "inconclusive"
    if not any(v in ("supported", "mixed") for v in vs) and "contradicted" in vs:
        return "contradicted"
    return "mixed"
