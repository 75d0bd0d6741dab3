"""The "VRG on an exact testbed" chapter on tiny parameters: it runs through the engine, judges by
the one rule with Holm over the table, and its summary is what the prose reads; the shared
helpers (intervals over seeds, Holm over a column) on cases with a known answer."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats as sps

from vrg_analysis.studies import exact_testbed as chapter

TINY = dict(
    baselines=["time_uniform", "logsnr_uniform"],
    steps=[3, 6],
    n_train=64,
    profile_stride=50,
    n_samples=48,
    n_boot=20,
)


@pytest.fixture(scope="module")
def result() -> chapter.Result:
    torch.set_num_threads(1)
    return chapter.run(chapter.Params(**TINY))


def test_one_engine_run_with_the_planted_predictor(result: chapter.Result) -> None:
    cfg = result.comparison.config
    assert cfg.predictor == "planted" and cfg.decompose and cfg.spread and cfg.profile_per_seed
    assert cfg.samplers == ("ddim",) and cfg.seeds == (0,)
    assert [a.keep_start for a in cfg.arms] == [False, True]
    assert len(result.arms) == 2 * 2 * 3  # baselines x K x (baseline + 2 arms)
    assert len(result.quality) == len(result.arms)
    assert set(result.quality.variant) == set(chapter.VARIANTS)


def test_paired_table_is_judged_with_holm(result: chapter.Result) -> None:
    t = result.paired
    assert len(t) == 2 * 2 * 2  # baselines x K x arms
    assert set(t.verdict) <= {"supported", "inconclusive", "contradicted"}
    assert (t["p (Holm)"] >= t["p"] - 1e-15).all()
    decided = t[t.verdict != "inconclusive"]
    assert (decided["p (Holm)"] < 0.05).all()
    assert ((decided.verdict == "supported") == (decided.difference < 0)).all()
    assert (t.ci_low <= t.ci_high).all()


def test_summary_counts_add_up(result: chapter.Result) -> None:
    s = chapter.summary(result)
    assert s.n_configs == 4 == s.n_supported + s.n_contradicted + s.n_inconclusive
    assert s.n_supported_keep + s.n_contradicted_keep + s.n_inconclusive_keep == 4
    assert s.best_rel_change <= s.median_rel_change <= s.worst_rel_change
    assert 0 < s.spread_share < 100 and -1 <= s.spearman_rho <= 1
    assert s.seed_used == 0 and s.planted_error == "relative"
    # with the start held, the start level does not move; VRG's penalty moves it
    keep = result.arms[result.arms.variant == "vrg_keep_start"]
    assert (keep.opt_start_shift == 0).all()


def test_figures_wrap_and_tables_render(result: chapter.Result) -> None:
    for make in (
        chapter.figure_profile,
        chapter.figure_predicted_vs_measured,
        chapter.figure_endpoint,
        chapter.figure_samples,
    ):
        fig = make(result)
        assert fig.axes
        assert max(ax.get_subplotspec().colspan.stop for ax in fig.axes) <= 3
    html = chapter.paired_table(result).to_html()
    assert "verdict" in html and "background-color" in html
    assert "Frechet" in chapter.quality_table(result).to_html()
    assert "CPE reduction VRG %" in chapter.cpe_table(result).to_html()


def test_panel_grid_wraps_at_three() -> None:
    fig, axes = chapter.panel_grid(4)
    assert len(axes) == 4 and len(fig.axes) == 4
    assert max(ax.get_subplotspec().colspan.stop for ax in fig.axes) <= 3


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"steps": "5, 10"}, "must be a list"),
        ({"steps": [0, 5]}, "positive"),
        ({"planted_error": "gaussian"}, "unknown value 'gaussian'"),
        ({"planted_size": -0.1}, "planted_size must be >= 0"),
        ({"baselines": ["uniform"]}, "unknown value 'uniform'"),
        ({"n_boot": 5}, "n_boot must be >= 20"),
        ({"gamma": 1.0}, "gamma must be <"),
        ({"seed": -1}, "seed must be >= 0"),
    ],
)
def test_bad_parameters_are_named(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        chapter.Params(**kw)


def test_list_parameters_given_as_text_are_read() -> None:
    assert chapter.Params(steps="[10, 5]").steps == (5, 10)


def test_seed_interval_is_the_student_t_interval() -> None:
    x = np.array([1.0, 2.0, 4.0, 7.0])
    m, lo, hi = chapter.seed_interval(x)
    half = sps.t.ppf(0.975, 3) * x.std(ddof=1) / 2.0
    assert m == pytest.approx(3.5) and lo == pytest.approx(3.5 - half)
    assert hi == pytest.approx(3.5 + half)
    m, lo, hi = chapter.seed_interval([1.0, math.nan])
    assert math.isnan(lo) and math.isnan(hi)


def test_summarise_and_judge_column_apply_holm() -> None:
    runs = pd.DataFrame(
        {
            "g": ["a"] * 4 + ["b"] * 4,
            "seed": [0, 1, 2, 3] * 2,
            "benefit": [-5.0, -5.1, -4.9, -5.2, 1.0, -1.0, 2.0, -2.0],
        }
    )
    t = chapter.summarise_over_seeds(runs, ["g"], ["benefit"])
    p_a = sps.ttest_1samp([-5.0, -5.1, -4.9, -5.2], 0.0).pvalue
    assert t.benefit_p.iloc[0] == pytest.approx(p_a)
    judged = chapter.judge_column(t, "benefit")
    # Holm over two: the smaller p doubles, the larger is at least that
    assert judged.p_adj.iloc[0] == pytest.approx(min(1.0, 2 * p_a))
    assert list(judged.verdict) == ["supported", "inconclusive"]
    worse = chapter.judge_column(t.assign(benefit=-t.benefit), "benefit")
    assert worse.verdict.iloc[0] == "contradicted"
    higher = chapter.judge_column(t, "benefit", better_sign=+1, prefix="x_")
    assert higher.x_verdict.iloc[0] == "contradicted"


def test_planted_truth_is_the_planted_variance(result: chapter.Result) -> None:
    spread = result.profiles.spread_profile
    truth = chapter.planted_truth("mixture-2d", "relative", 0.25, spread)
    np.testing.assert_allclose(truth, 0.25 * spread.mse, rtol=1e-12)
    const = chapter.planted_truth("mixture-2d", "constant", 0.1, spread)
    np.testing.assert_allclose(const, 0.01)
