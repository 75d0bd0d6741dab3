"""The statistics engine against the field's libraries and against independent implementations.

The hand-written Holm/BH, TOST, Wilson and Anderson-Darling p-value that the library used before it
switched to statsmodels are kept here as reference implementations: the switch must not change a
number (they agreed exactly when the switch was made).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from vrg_analysis.evaluation.stats import (
    Interval,
    adjust_pvalues,
    aggregate,
    anderson_darling,
    bootstrap_pvalue,
    decide,
    decide_family,
    log_log_fit,
    one_sample_t,
    paired_bootstrap,
    percentile_interval,
    rank_correlation,
    stratified_indices,
    t_interval,
    tost_pvalue,
    welch_pvalues,
    wilson_interval,
)


# ----------------------------------------------------------------- reference implementations
def _holm_bh_reference(p: np.ndarray, method: str) -> np.ndarray:
    """The library's hand-written step-down Holm / step-up BH before the switch."""
    m = p.size
    order = np.argsort(p, kind="stable")
    ranked = p[order]
    if method == "holm":
        adj = np.maximum.accumulate((m - np.arange(m)) * ranked)
    else:
        adj = np.minimum.accumulate(m / np.arange(m, 0, -1) * ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(adj, 1.0)
    return out


def _tost_reference(v: np.ndarray, low: float, high: float) -> float:
    n = v.size
    mean, se = float(v.mean()), float(v.std(ddof=1)) / math.sqrt(n)
    return max(
        float(sps.t.sf((mean - low) / se, n - 1)), float(sps.t.cdf((mean - high) / se, n - 1))
    )


def _wilson_reference(k: int, m: int) -> tuple[float, float]:
    z = 1.959963984540054
    p = k / m
    den = 1 + z * z / m
    mid = (p + z * z / (2 * m)) / den
    half = z * math.sqrt(p * (1 - p) / m + z * z / (4 * m * m)) / den
    return mid - half, mid + half


def _ad_pvalue_reference(a2: float, n: int) -> float:
    """D'Agostino & Stephens (1986), table 4.9, as the library had it."""
    a = a2 * (1.0 + 0.75 / n + 2.25 / n**2)
    if a >= 150.0:
        return 0.0
    if a >= 0.6:
        p = math.exp(1.2937 - 5.709 * a + 0.0186 * a * a)
    elif a >= 0.34:
        p = math.exp(0.9177 - 4.279 * a - 1.38 * a * a)
    elif a >= 0.2:
        p = 1.0 - math.exp(-8.318 + 42.796 * a - 59.938 * a * a)
    else:
        p = 1.0 - math.exp(-13.436 + 101.14 * a - 223.73 * a * a)
    return min(max(p, 0.0), 1.0)


# ----------------------------------------------------------------- multiple testing
def test_holm_and_bh_match_their_definitions_and_the_old_implementation():
    p = np.array([0.01, 0.04, 0.03, 0.005, np.nan])
    np.testing.assert_allclose(adjust_pvalues(p, "holm")[:4], [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(adjust_pvalues(p, "bh")[:4], [0.02, 0.04, 0.04, 0.02])
    assert math.isnan(adjust_pvalues(p, "holm")[4])
    np.testing.assert_array_equal(adjust_pvalues(p, "none")[:4], p[:4])
    rng = np.random.default_rng(0)
    for i in range(50):
        q = rng.uniform(0, 1, rng.integers(1, 40)) ** 3
        q[rng.integers(0, q.size)] = q[0]  # ties
        for method, name in (("holm", "holm"), ("bh", "fdr_bh")):
            ours = adjust_pvalues(q, method)
            np.testing.assert_allclose(ours, _holm_bh_reference(q, method), rtol=1e-12, atol=1e-15)
            if i < 10:  # statsmodels' Holm runs gc.collect() on every call: a few suffice
                np.testing.assert_allclose(
                    ours, multipletests(q, method=name)[1], rtol=1e-12, atol=1e-15
                )
    with pytest.raises(ValueError, match="unknown correction 'bonf'"):
        adjust_pvalues(p, "bonf")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"p-values must lie in \[0, 1\]; p\[1\] = 1.5"):
        adjust_pvalues([0.1, 1.5])


# ----------------------------------------------------------------- intervals and tests
def test_t_interval_is_the_student_interval():
    x = np.array([1.0, 2.5, 0.5, 3.0, 2.0])
    iv = t_interval(x, 0.9)
    half = sps.t.ppf(0.95, 4) * x.std(ddof=1) / math.sqrt(5)
    assert iv.estimate == pytest.approx(x.mean())
    assert (iv.low, iv.high) == pytest.approx((x.mean() - half, x.mean() + half), rel=1e-12)
    assert iv.method == "t" and iv.contains(x.mean()) and iv.half_width == pytest.approx(half)
    assert t_interval([2.0, 2.0, 2.0]) == Interval(2.0, 2.0, 2.0, 0.95, "t")
    with pytest.raises(ValueError, match="at least 2"):
        t_interval([1.0])
    with pytest.raises(ValueError, match=r"x\[1\] = nan is not finite"):
        t_interval([1.0, math.nan])
    with pytest.raises(ValueError, match="confidence"):
        t_interval(x, 1.5)


def test_wilson_interval_matches_the_old_formula():
    for k, m in [(0, 10), (3, 10), (10, 10), (47, 1000), (500, 1000)]:
        iv = wilson_interval(k, m)
        assert (iv.low, iv.high) == pytest.approx(_wilson_reference(k, m), abs=1e-12)
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(11, 10)


def test_tost_matches_the_old_formula_and_decides_equivalence():
    rng = np.random.default_rng(1)
    for shift in (0.0, 0.05, 0.3):
        v = rng.standard_normal(400) + shift
        assert tost_pvalue(v, -0.1, 0.1) == pytest.approx(_tost_reference(v, -0.1, 0.1), rel=1e-9)
    big = rng.standard_normal(20000)
    assert tost_pvalue(big, -0.1, 0.1) < 1e-6  # equivalence shown with many samples
    assert tost_pvalue(big + 1.0, -0.1, 0.1) > 0.5
    with pytest.raises(ValueError, match="low < high"):
        tost_pvalue(big, 0.1, -0.1)


def test_one_sample_t_is_scipys():
    v = np.random.default_rng(2).standard_normal(30) + 0.4
    res = sps.ttest_1samp(v, 0.0)
    assert one_sample_t(v) == pytest.approx((res.statistic, res.pvalue))
    assert one_sample_t([1.0, 1.0, 1.0], null=1.0)[1] == 1.0
    assert one_sample_t([1.0, 1.0, 1.0])[1] == 0.0


def test_anderson_darling_is_statsmodels_and_agrees_with_the_old_table():
    rng = np.random.default_rng(3)
    for n, draw in [(400, rng.standard_normal), (400, lambda k: rng.standard_t(8, k)), (60, None)]:
        z = draw(n) if draw is not None else rng.uniform(-1, 1, n)
        a2, p = anderson_darling(z)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # scipy >= 1.17 asks for a method
            ref = sps.anderson((z - z.mean()) / z.std(ddof=1), dist="norm")
        assert a2 == pytest.approx(ref.statistic, rel=1e-8)
        assert p == pytest.approx(_ad_pvalue_reference(a2, n), rel=1e-9, abs=1e-15)
    with pytest.raises(ValueError, match="at least 8"):
        anderson_darling([0.0, 1.0])


# ----------------------------------------------------------------- the bootstrap
def test_stratified_indices_stay_in_their_strata():
    idx = stratified_indices([3, 5, 2], np.random.default_rng(0))
    assert idx.shape == (10,)
    assert set(idx[:3]) <= {0, 1, 2} and set(idx[3:8]) <= set(range(3, 8))
    assert set(idx[8:]) <= {8, 9}


def test_paired_bootstrap_agrees_with_scipy_on_one_stratum():
    rng = np.random.default_rng(4)
    a = rng.standard_normal(300)
    b = a + 0.2 + 0.5 * rng.standard_normal(300)  # paired: b shares a's noise
    d = b - a
    boot = paired_bootstrap(lambda i: float(d[i].mean()), [300], 4000, np.random.default_rng(5))
    ours = percentile_interval(boot, float(d.mean()))
    ref = sps.bootstrap(
        (a, b),
        lambda x, y, axis=-1: np.mean(y - x, axis=axis),
        paired=True,
        method="percentile",
        n_resamples=4000,
        random_state=6,
    ).confidence_interval
    # two Monte Carlo approximations of one interval: equal to well within its width's 5%
    width = ours.high - ours.low
    assert abs(ours.low - ref.low) < 0.05 * width and abs(ours.high - ref.high) < 0.05 * width
    # and the pairing matters: the unpaired interval is far wider
    se_unpaired = math.sqrt(a.var(ddof=1) / 300 + b.var(ddof=1) / 300)
    assert width < 0.8 * 2 * 1.96 * se_unpaired
    with pytest.raises(ValueError, match="n_boot"):
        paired_bootstrap(lambda i: 0.0, [3], 5, rng)


def test_recentred_percentiles_contain_the_estimate():
    boot = np.random.default_rng(8).normal(5.0, 1.0, 2000)  # replicates biased away from 0
    plain = percentile_interval(boot, 0.0)
    fixed = percentile_interval(boot, 0.0, recentre=True)
    assert not plain.contains(0.0) and fixed.contains(0.0)
    assert fixed.high - fixed.low == pytest.approx(plain.high - plain.low)


def test_bootstrap_pvalue_is_the_normal_test_of_the_bootstrap_se():
    boot = np.random.default_rng(7).normal(0.0, 0.5, 5000)
    assert bootstrap_pvalue(1.0, boot) == pytest.approx(2 * sps.norm.sf(1.0 / boot.std(ddof=1)))
    assert bootstrap_pvalue(0.0, np.zeros(30)) == 1.0 and bootstrap_pvalue(0.1, np.zeros(30)) == 0


# ----------------------------------------------------------------- association
def test_welch_from_summaries_is_scipys_welch_on_the_raw_samples():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0.0, 1.0, 40), rng.normal(0.5, 2.0, 25)
    p = welch_pvalues(
        [a.mean(), 1.0],
        [a.std(ddof=1) / math.sqrt(a.size), 0.0],
        [a.size, 10],
        [b.mean(), 1.0],
        [b.std(ddof=1) / math.sqrt(b.size), 0.0],
        [b.size, 10],
    )
    assert p[0] == pytest.approx(sps.ttest_ind(a, b, equal_var=False).pvalue)
    assert p[1] == 1.0  # no spread on either side: no evidence of a difference


def test_rank_correlation_known_answers():
    x = np.arange(6.0)
    assert rank_correlation(x, x**3).rho == pytest.approx(1.0)
    assert rank_correlation(x, -x).rho == pytest.approx(-1.0)
    assert math.isnan(rank_correlation(x, np.ones(6)).rho)
    assert rank_correlation(x, -x).relation(0.05, "FID") == "goes with a lower FID"
    assert rank_correlation(x, np.ones(6)).relation(0.05) == "is not significantly associated with"
    y = np.random.default_rng(4).normal(size=6)
    assert rank_correlation(x, y).p == pytest.approx(sps.spearmanr(x, y).pvalue)
    with pytest.raises(ValueError, match="differ in length"):
        rank_correlation(x, x[:3])
    with pytest.raises(ValueError, match="not finite"):
        rank_correlation(x, np.r_[x[:5], np.nan])


def test_log_log_fit_recovers_a_power_law():
    x = np.geomspace(0.1, 10.0, 12)
    fit = log_log_fit(x, 3.0 * x**2)
    assert fit.slope == pytest.approx(2.0) and fit.intercept == pytest.approx(math.log(3.0))
    assert fit.half_width == pytest.approx(0.0, abs=1e-9)
    assert fit(np.array([2.0]))[0] == pytest.approx(12.0)
    rng = np.random.default_rng(0)
    noisy = log_log_fit(x, 3.0 * x**2 * np.exp(rng.normal(0, 0.3, x.size)))
    assert noisy.slope_low < 2.0 < noisy.slope_high and noisy.excludes(1.0)
    with pytest.raises(ValueError, match="positive"):
        log_log_fit(x, -x)
    assert math.isnan(log_log_fit([1.0, 2.0], [1.0, 4.0]).slope_low)  # two points: no interval


def test_log_log_fit_is_the_t_interval_and_test_of_the_regression_slope():
    rng = np.random.default_rng(0)
    x = np.array([4.0, 8.0, 16.0, 32.0, 64.0])
    y = x**-1.5 * np.exp(rng.normal(0, 0.05, x.size))
    fit = log_log_fit(x, y)
    ref = sps.linregress(np.log(x), np.log(y))
    half = sps.t.ppf(0.975, x.size - 2) * ref.stderr
    assert (fit.slope_low, fit.slope_high) == pytest.approx((ref.slope - half, ref.slope + half))
    t = (ref.slope + 1.4) / ref.stderr
    assert fit.p_value(-1.4) == pytest.approx(2 * sps.t.sf(abs(t), x.size - 2))
    covered = sum(
        not log_log_fit(x, x**-1.5 * np.exp(rng.normal(0, 0.05, x.size))).excludes(-1.5)
        for _ in range(400)
    )
    assert 0.9 < covered / 400 <= 1.0  # 95% nominal


# ----------------------------------------------------------------- the verdict rule
@pytest.mark.parametrize(
    ("estimate", "p", "band", "expect"),
    [
        (-1.0, 0.001, (0.0, 0.0), "supported"),  # significantly lower, lower is better
        (1.0, 0.001, (0.0, 0.0), "contradicted"),
        (-1.0, 0.2, (0.0, 0.0), "inconclusive"),
        (-0.05, 0.001, (-0.1, 0.1), "inconclusive"),  # detected, inside the practical band
        (-0.5, 0.001, (-0.1, 0.1), "supported"),
        (math.nan, 0.001, (0.0, 0.0), "inconclusive"),
    ],
)
def test_decide_better(estimate, p, band, expect):
    assert decide(estimate, p, claim="better", band=band).verdict == expect


def test_decide_better_respects_the_direction():
    assert decide(1.0, 0.001, claim="better", better_sign=1).verdict == "supported"
    with pytest.raises(ValueError, match="better_sign"):
        decide(1.0, 0.001, claim="better", better_sign=0)


@pytest.mark.parametrize(
    ("estimate", "p", "interval", "strict", "expect"),
    [
        (0.02, 0.5, (-0.05, 0.06), False, "supported"),  # interval inside the tolerance
        (0.02, 0.001, (0.01, 0.03), False, "supported"),  # detectable but inside
        (0.02, 0.001, (0.01, 0.03), True, "inconclusive"),  # strict: a deviation is detected
        (0.3, 0.001, (0.2, 0.4), False, "contradicted"),
        (0.3, 0.3, (-0.1, 0.7), False, "inconclusive"),  # beyond, not significant
        (0.02, 0.5, (-0.3, 0.3), False, "inconclusive"),  # not shown: more samples needed
        (0.3, math.nan, (0.2, 0.4), False, "contradicted"),  # interval evidence alone
        (0.3, math.nan, (0.05, 0.4), False, "inconclusive"),
    ],
)
def test_decide_within(estimate, p, interval, strict, expect):
    d = decide(estimate, p, claim="within", band=(-0.1, 0.1), interval=interval, strict=strict)
    assert d.verdict == expect and d.reason


def test_decide_within_by_an_equivalence_test():
    assert decide(0.0, 0.5, claim="within", band=(-0.1, 0.1), equivalence_p=0.01).verdict == (
        "supported"
    )
    assert decide(0.0, 0.5, claim="within", band=(-0.1, 0.1), equivalence_p=0.2).verdict == (
        "inconclusive"
    )


def test_decide_family_corrects_before_deciding():
    # alone each p = 0.03 rejects at 5%; Holm over three makes the smallest 0.09: none rejects
    adj, ds = decide_family([-1.0, -1.0, -1.0], [0.03, 0.03, 0.03], claim="better")
    np.testing.assert_allclose(adj, [0.09, 0.09, 0.09])
    assert [d.verdict for d in ds] == ["inconclusive"] * 3
    _, ds = decide_family([-1.0, 1.0], [0.001, 0.001], claim="better", correction="none")
    assert [d.verdict for d in ds] == ["supported", "contradicted"]


@pytest.mark.parametrize(
    ("verdicts", "conjunction", "expect"),
    [
        (["supported", "supported"], False, "supported"),
        (["inconclusive", "inconclusive"], False, "inconclusive"),
        (["contradicted", "inconclusive"], False, "contradicted"),
        (["supported", "contradicted"], False, "mixed"),
        (["supported", "inconclusive"], False, "mixed"),
        (["supported", "contradicted"], True, "contradicted"),
        (["mixed", "inconclusive"], False, "mixed"),
    ],
)
def test_aggregate(verdicts, conjunction, expect):
    assert aggregate(verdicts, conjunction=conjunction) == expect


def test_aggregate_refuses_unknown_words():
    with pytest.raises(ValueError, match="unknown verdicts"):
        aggregate(["win"])
    with pytest.raises(ValueError, match="no verdicts"):
        aggregate([])
