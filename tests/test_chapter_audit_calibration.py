"""The calibration chapter on tiny parameters: it runs every test under every scenario, writes
the rows the scorecard reads, and its reference computations (binomial resolution, the power of
the mean test) give known answers."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from scipy import stats

from vrg_analysis.assumptions import calibration as cal
from vrg_analysis.assumptions.chapters import calibration as chapter

TINY = dict(replications=10, n=200, n_paths=20, seed=1)


@pytest.fixture(scope="module")
def result() -> chapter.Result:
    return chapter.run(chapter.Params(**TINY))


def test_every_test_under_every_scenario(result: chapter.Result) -> None:
    t = result.table
    assert len(t) == len(cal.TESTS) * len(cal.SCENARIOS)
    assert (t.replications == 10).all()
    assert ((t.ci_low <= t.rate + 1e-12) & (t.rate <= t.ci_high + 1e-12)).all()
    assert (t.rate == t.rejections / t.replications).all()
    assert len(result.null) == len(cal.TESTS)
    assert len(result.aimed) == sum(len(v) for v in cal.AIMED.values())
    assert result.null.passed.notna().all()


def test_summary_counts_add_up(result: chapter.Result, tmp_path) -> None:
    full = tmp_path / "full.yaml"
    full.write_text("replications: 777\n")
    s = chapter.summary(result, full)
    assert s.full_replications == 777
    assert chapter.summary(result, tmp_path / "missing.yaml").full_replications == 500
    assert s.n_null_pass + s.n_null_fail == s.n_tests == len(cal.TESTS)
    assert s.n_met + s.n_missed == s.n_targets == s.n_tests + s.n_aimed
    assert s.n_null_fail_covers <= s.n_null_fail
    assert s.weakest_lo <= s.weakest_rate <= s.weakest_hi
    assert s.replications == 10 and s.n_used == 200 and s.shapiro_size == 200
    assert s.run_note.startswith("This is a quick run")
    assert s.doc_replications == 500 and s.doc_n == 5000 and s.doc_n_paths == 300


def test_rows_written_where_the_scorecard_reads_them(result: chapter.Result, tmp_path) -> None:
    path = chapter.write_calibration(result, tmp_path / "book" / "verdicts")
    assert path == tmp_path / "book" / "calibration.csv"
    back = pd.read_csv(path, keep_default_na=False)  # "null" is a scenario
    assert {"test", "scenario", "target", "passed", "rate", "ci_low", "ci_high"} <= set(back)
    assert set(back.scenario) == set(cal.SCENARIOS) and (back.alpha == 0.05).all()


def test_tables_and_figure_render(result: chapter.Result) -> None:
    html = chapter.rates_table(result).to_html()
    assert "background-color" in html and "<small>" in html
    assert "i.i.d. zero-mean Gaussian" in chapter.scenario_table().to_html()
    fig = chapter.figure(result)
    assert len(fig.axes) == 2


def test_resolution_is_the_binomial_one() -> None:
    res = chapter.resolution(150, 0.05)
    # a calibrated test rejects Binomial(150, 0.05) times; inside [0.03, 0.07] is 5 <= k <= 10
    inside = stats.binom.cdf(10, 150, 0.05) - stats.binom.cdf(4, 150, 0.05)
    assert res.p_outside == pytest.approx(1.0 - inside)
    assert res.expected_outside == pytest.approx(len(cal.TESTS) * (1.0 - inside))
    wilson = stats.binomtest(8, 150, 0.05).proportion_ci(0.95, method="wilson")
    assert res.null_half_width == pytest.approx((wilson.high - wilson.low) / 2)
    assert res.band_half_width == pytest.approx(0.02)
    assert chapter.resolution(2000, 0.05).p_outside < res.p_outside  # more replications, finer


def test_mean_test_power_known_values() -> None:
    assert chapter.mean_test_power(0.0, 100, 0.05) == pytest.approx(0.05)
    assert chapter.mean_test_power(1.0, 100, 0.05) == pytest.approx(1.0)
    # 0.05 sd at n = 5000: shift = 3.536 standard errors
    shift = 0.05 * math.sqrt(5000)
    expected = stats.norm.sf(1.959964 - shift) + stats.norm.cdf(-1.959964 - shift)
    assert chapter.mean_test_power(0.05, 5000, 0.05) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"replications": 5}, "replications must be >= 10"),
        ({"n": "many"}, "n must be an integer"),
        ({"n_paths": 6000}, "n_paths must be <= n"),
        ({"alpha": 0.7}, "alpha must be a number in"),
        ({"seed": True}, "seed must be an integer"),
    ],
)
def test_bad_parameters_are_named(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        chapter.Params(**kw)
