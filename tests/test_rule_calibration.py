"""The verdict-rule calibration (issue 14, item 5): planted truths, rates, and the chapter."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
from scipy import stats

from vrg_analysis.assumptions import rule_calibration as rc
from vrg_analysis.assumptions.chapters import rules as chapter

SMALL = rc.RuleSizes(n=400, levels=1, coordinates=4, n_paths=120, path_steps=3, transfer_dim=4)


def test_population_w1_matches_scipy_on_a_large_sample() -> None:
    """The quadrature W1 of a unit-variance t(6) against scipy's empirical W1 of 400k draws."""
    df = 6.0
    rng = np.random.default_rng(0)
    t = rng.standard_t(df, 400_000) * math.sqrt((df - 2.0) / df)
    empirical = stats.wasserstein_distance(t, rng.standard_normal(400_000))
    assert rc.population_w1_student_t(df) == pytest.approx(empirical, abs=0.006)
    assert rc.population_w1_student_t(math.inf) == 0.0
    with pytest.raises(ValueError, match="df must be > 2"):
        rc.population_w1_student_t(2.0)


@pytest.mark.parametrize("w1", [0.025, 0.045, 0.055, 0.1])
def test_df_for_w1_inverts_the_distance(w1: float) -> None:
    df = rc.student_t_df_for_w1(w1)
    assert rc.population_w1_student_t(df) == pytest.approx(w1, abs=1e-9)
    assert rc.student_t_df_for_w1(0.0) == math.inf
    with pytest.raises(ValueError, match="w1 must lie"):
        rc.student_t_df_for_w1(0.9)


def test_kurtosis_of_student_t() -> None:
    assert rc.student_t_excess_kurtosis(10.0) == pytest.approx(stats.t(10).stats(moments="k"))
    assert rc.student_t_excess_kurtosis(4.0) == math.inf
    assert rc.student_t_excess_kurtosis(math.inf) == 0.0


def test_planted_samples_carry_the_stated_effect() -> None:
    sizes = rc.RuleSizes(n=20_000, levels=1, coordinates=2, n_paths=20_000, path_steps=2)
    rng = np.random.default_rng(1)
    (zm,) = rc.planted_samples("zero-mean", 2.0, sizes, rng)
    assert zm.errors.mean() == pytest.approx(0.2, abs=0.02)
    (ind,) = rc.planted_samples("independence", 2.0, sizes, rng)
    assert ind.paired
    r = np.corrcoef(ind.errors[0].ravel(), ind.errors[1].ravel())[0, 1]
    assert r == pytest.approx(0.2, abs=0.02)
    ref, other = rc.planted_samples("transfer", 2.0, sizes, rng)
    assert (other.errors**2).mean() / (ref.errors**2).mean() == pytest.approx(1.2, abs=0.03)
    (g,) = rc.planted_samples("gaussianity", 2.0, sizes, rng)
    assert g.errors.std() == pytest.approx(1.0, abs=0.03)  # unit variance
    assert stats.kurtosis(g.errors.ravel()) > 0.5  # heavy tails: df about 5.1
    with pytest.raises(ValueError, match="unknown rule"):
        rc.planted_samples("nope", 1.5, sizes, rng)
    with pytest.raises(ValueError, match="ratio"):
        rc.planted_samples("zero-mean", float("nan"), sizes, rng)


def test_rules_say_violated_far_outside_and_never_violated_when_exact() -> None:
    table = rc.calibrate_rules(
        rules=["zero-mean", "transfer", "independence"],
        ratios=[0.0, 4.0],
        replications=2,
        sizes=SMALL,
    )
    far, exact = table[table.ratio == 4.0], table[table.ratio == 0.0]
    assert (far.contradicted_rate >= 0.9).all(), far[["rule", "method", "contradicted_rate"]]
    assert (exact.contradicted_rate == 0.0).all()
    assert set(table.right) == {"supported", "contradicted"}
    rates = table[["supported_rate", "contradicted_rate", "inconclusive_rate"]].sum(axis=1)
    np.testing.assert_allclose(rates, 1.0)
    assert (table.verdicts == table.replications * table.family).all()


def test_gaussianity_rows_and_their_truths() -> None:
    table = rc.calibrate_rules(rules=["gaussianity"], ratios=[0.5], replications=1, sizes=SMALL)
    assert set(table.method) == {
        "dagostino k2",
        "anderson darling",
        "jarque bera",
        "shapiro wilk",
        "kurtosis",
    }
    kurt = table[table.method == "kurtosis"].iloc[0]
    df = rc.student_t_df_for_w1(0.025)
    assert kurt.true_effect == pytest.approx(6.0 / (df - 4.0))
    w1 = table[table.method == "dagostino k2"].iloc[0]
    assert w1.true_effect == pytest.approx(0.025) and w1.tolerance == 0.05


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown rule"):
        rc.calibrate_rules(rules=["zero_mean"])
    with pytest.raises(ValueError, match="not 1"):
        rc.calibrate_rules(ratios=[1.0])
    with pytest.raises(ValueError, match="replications"):
        rc.calibrate_rules(replications=0)
    with pytest.raises(ValueError, match="RuleSizes.n "):
        rc.RuleSizes(n=5)
    with pytest.raises(ValueError, match="ratios"):
        chapter.Params(ratios=[0.5, 1.0])
    with pytest.raises(ValueError, match="below 10"):
        chapter.Params(ratios=[12.0])
    with pytest.raises(ValueError, match="alpha"):
        chapter.Params(alpha=0.7)


def test_chapter_runs_and_summarises() -> None:
    params = chapter.Params(
        replications=1,
        ratios=[0.0, 2.0],
        n=300,
        levels=1,
        coordinates=3,
        n_paths=100,
        path_steps=3,
    )
    result = chapter.run(params)
    s = chapter.summary(result)
    assert 0.0 <= s.worst_wrong_rate <= 1.0
    assert s.family_gaussian == 3 and s.family_paths == 2
    assert s.kurtosis_at_w1_tolerance == pytest.approx(
        rc.student_t_excess_kurtosis(rc.student_t_df_for_w1(0.05))
    )
    assert "zero-mean" in s.far_outside_violated
    fig = chapter.figure(result)
    assert len([a for a in fig.axes if a.get_visible()]) == 4
    plt.close(fig)
    html = chapter.rates_table(result).to_html()
    assert "not settled" in html and "violated" in html


def test_minimum_effect_tests_against_scipy() -> None:
    """The "violated" tests: beyond_pvalue is the one-sided normal test against the nearer edge;
    beyond_margin_pvalue the one-sided t test of the mean against +-margin sd (scipy)."""
    from vrg_analysis.assumptions.gaussianity import beyond_margin_pvalue
    from vrg_analysis.assumptions.verdicts import beyond_pvalue

    assert beyond_pvalue(0.2, 0.05, (-0.1, 0.1)) == pytest.approx(stats.norm.sf(2.0))
    assert beyond_pvalue(-0.2, 0.05, (-0.1, 0.1)) == pytest.approx(stats.norm.sf(2.0))
    assert beyond_pvalue(0.1, 0.05, (-0.1, 0.1)) == pytest.approx(0.5)  # on the edge
    assert beyond_pvalue(0.3, 0.1, (-math.inf, 0.1)) == pytest.approx(stats.norm.sf(2.0))
    assert math.isnan(beyond_pvalue(0.3, 0.0, (-0.1, 0.1)))
    v = np.random.default_rng(3).normal(0.25, 1.0, 400)
    sd = float(np.std(v, ddof=1))
    want = stats.ttest_1samp(v, 0.1 * sd, alternative="greater").pvalue
    assert beyond_margin_pvalue(v, 0.1) == pytest.approx(want, rel=1e-9)
    assert beyond_margin_pvalue(-v, 0.1) == pytest.approx(want, rel=1e-9)
