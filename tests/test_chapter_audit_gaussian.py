"""The Gaussianity audit chapter and its bias-sensitivity study on tiny parameters: they run, judge
by the one rule with Holm per family, write the verdict table and figures the audit command reads,
and their estimators give known answers."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from vrg_analysis.assumptions.chapters import gaussian as chapter
from vrg_analysis.assumptions.samples import ErrorSample
from vrg_analysis.assumptions.verdicts import results_from_csv
from vrg_analysis.core.schedules import NoiseSchedule
from vrg_analysis.evaluation.stats import VERDICTS
from vrg_analysis.studies import bias_sensitivity as bias_study
from vrg_analysis.testbeds import make_testbed

TINY = dict(n_samples=60, num_levels=3, max_coordinates=2, bootstrap=20)
TINY_BIAS = dict(
    n_samples=60,
    num_levels=3,
    max_coordinates=2,
    bias_size=0.5,
    bias_steps=[3, 5],
    bias_seeds=2,
    bias_n_samples=24,
    n_boot=20,
)


@pytest.fixture(scope="module")
def result(one_torch_thread) -> chapter.Result:
    return chapter.run(chapter.Params(**TINY))


@pytest.fixture(scope="module")
def bias(one_torch_thread) -> bias_study.Result:
    return bias_study.run(bias_study.Params(**TINY_BIAS))


# ===================================================================== the audit chapter
def test_every_level_coordinate_and_test_is_judged_once(result: chapter.Result) -> None:
    df = result.frame
    # the mixture has an exact predictor: both kinds of error, 7 tests x 3 levels x 2 coordinates
    assert set(result.samples) == {"eps", "eps*"}
    assert len(result.results) == len(df) == 2 * 7 * 3 * 2
    assert set(df.test) == set(chapter.TESTS.values())
    assert set(df.verdict) <= set(VERDICTS)
    for _, g in df.groupby(["key", "test"]):
        assert len(g) == 3 * 2
        assert g.correction.eq("holm").all()
        assert (g.p_adjusted >= g.p_value - 1e-12).all()  # Holm never lowers a p-value
        bad = g[g.verdict == "contradicted"]
        assert (bad.p_adjusted < 0.05).all()
        assert (bad.effect_size.abs() > bad.tolerance).all()  # beyond the tolerance, not just p
    assert all(r.source.endswith(("vs eps", "vs eps*")) for r in result.results)


def test_verdict_counts_and_summary_add_up(result: chapter.Result) -> None:
    counts = chapter.verdict_counts(result)
    assert len(counts) == 14
    assert (counts[list(VERDICTS)].sum(axis=1) == counts["tests"]).all()
    assert set(counts.verdict) <= {"supported", "contradicted", "inconclusive", "mixed"}
    assert (counts[counts.contradicted > 0].verdict == "contradicted").all()  # a conjunction
    s = chapter.summary(result)
    assert s.n_tests == s.n_supported + s.n_contradicted + s.n_inconclusive == len(result.frame)
    assert (s.n_levels, s.n_coords, s.dim, s.n_used) == (3, 2, 2, 60)
    assert s.sigma_min < s.sigma_max
    assert 0.0 <= s.bias_share_median <= s.bias_share_max <= 100.0
    assert s.csv_name == "audit_gaussian.csv"
    md = chapter.findings_markdown(result)
    assert md.count("\n* ") == 3 and "eps\\*" in md  # four bullets, the star escaped
    assert "violated" not in md and "holds" not in md


def test_outputs_are_what_the_audit_command_reads(result: chapter.Result, tmp_path: Path) -> None:
    figs = chapter.figures(result)
    assert set(figs) == set(chapter.FIGURES)
    for fig in figs.values():
        assert max(ax.get_subplotspec().colspan.stop for ax in fig.axes) <= 3  # wraps
    csv, md = chapter.write_outputs(result, tmp_path / "verdicts", tmp_path / "figures", figs)
    assert csv.name == "audit_gaussian.csv" and md.is_file()
    back = results_from_csv(csv.read_text())
    assert [r.verdict for r in back] == [r.verdict for r in result.results]
    pngs = sorted(p.name for p in (tmp_path / "figures").glob("*.png"))
    assert pngs == ["audit_gaussian_fig_effects.png", "audit_gaussian_fig_qq.png"]
    html = chapter.verdict_table(result).to_html()
    assert "background-color" in html and "contradicted" in html


def test_the_committed_result_keeps_what_the_page_draws(result: chapter.Result, tmp_path) -> None:
    """A committed full-size run leaves out the raw errors (hundreds of MB on the 28x28 model):
    the page's numbers, findings and figures are the same from what it keeps, and it round-trips
    through the artifact codec."""
    from vrg_analysis.studies import artifacts

    small = chapter.artifact_result(result)
    assert small.samples == {} and set(result.samples) == {"eps", "eps*"}
    assert chapter.summary(small) == chapter.summary(result)
    assert chapter.findings_markdown(small) == chapter.findings_markdown(result)
    for name, fig in chapter.figures(small).items():
        full = chapter.figures(result)[name]
        for a, b in zip(fig.axes, full.axes, strict=True):
            assert [ln.get_ydata().tolist() for ln in a.lines] == [
                ln.get_ydata().tolist() for ln in b.lines
            ]
    # the QQ curves: each audited coordinate at three levels, both extremes of each kept
    qq = result.qq
    assert set(qq.level) == set(chapter.qq_levels(3)) and set(qq.key) == {"eps", "eps*"}
    e = result.samples["eps"].errors[0, :, result.coordinates[0]]
    z = (e - e.mean()) / e.std(ddof=1)
    first = qq[(qq.key == "eps") & (qq.level == 0) & (qq.dim == result.coordinates[0])]
    assert np.isclose(first.z.min(), z.min()) and np.isclose(first.z.max(), z.max())
    assert len(first) == min(60, chapter.QQ_POINTS)
    path = artifacts.save_artifact(
        chapter, result.params, result, wall_time_s=1.0, params_set="quick", directory=tmp_path
    )
    back = artifacts.read_artifact(path).result()
    assert back.samples == {} and chapter.summary(back) == chapter.summary(result)
    assert artifacts.read_artifact(path).reduced_by


# ===================================================================== estimators
def test_bias_share_known_answer() -> None:
    rng = np.random.default_rng(0)
    n, b = 200_000, 0.5
    e = rng.standard_normal((2, n, 3))
    e[1] += b  # level 1: a bias of b on every coordinate of unit-variance noise
    share = chapter.bias_share(ErrorSample(e, [0.9, 0.5], "test", "eps"))
    assert share[0] == pytest.approx(0.0, abs=2e-4)  # corrected for the sampling bias var / n
    assert share[1] == pytest.approx(b**2 / (1 + b**2), rel=0.02)


def test_effect_intervals_cover_known_values() -> None:
    rng = np.random.default_rng(1)
    n = 4000
    e = np.stack([0.5 + rng.standard_normal(n), rng.exponential(size=n) - 1.0])[:, :, None]
    iv = chapter.effect_intervals(
        ErrorSample(e, [0.9, 0.5], "test", "eps"), [0], bootstrap=200, seed=0
    )
    shifted, expo = iv.iloc[0], iv.iloc[1]
    assert shifted.d_low < 0.5 < shifted.d_high  # standardized mean of N(0.5, 1)
    assert expo.skewness_low < 2.0 < expo.skewness_high  # the exponential's skewness is 2
    assert abs(shifted.skewness) < 0.2 and shifted.skewness_low < 0.0 < shifted.skewness_high


def test_audit_levels_and_sigma_list() -> None:
    levels = chapter.audit_levels(NoiseSchedule.linear(), 6)
    assert levels.size == 6 and np.all(np.diff(levels) < 0)  # decreasing alpha_bar
    assert chapter.audit_levels(NoiseSchedule.linear(1000), 3000).size == 1000  # duplicates
    assert chapter.sigma_list([0.0100001, 0.01, 157.4]) == "0.01, 157"
    assert chapter.sigma_list(np.arange(1, 9), most=2) == "1, 2 and 6 more"


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"margin": 0.0}, "parameter margin must be > 0"),
        ({"n_samples": 5}, "n_samples must be >= 20"),
        ({"quick": "maybe"}, "quick must be true or false"),
        ({"max_coordinates": 0}, "max_coordinates must be >= 1"),
        ({"model": ""}, "model must be"),
    ],
)
def test_bad_parameters_are_named(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        chapter.Params(**kw)


def test_sizes_default_by_quick() -> None:
    assert (chapter.Params().n_samples, chapter.Params().num_levels) == (1000, 6)
    full = chapter.Params(quick="false")
    assert (full.n_samples, full.num_levels) == (5000, 20)
    assert chapter.Params(quick=False, n_samples=300).n_samples == 300


# ===================================================================== the bias study
def test_bias_study_judges_every_model_metric_and_k(bias: bias_study.Result) -> None:
    t = bias.table
    assert len(t) == 2 * 3 * 2  # models x metrics x K
    assert set(t.model) == set(bias_study.MODELS) and set(t.K) == {3, 5}
    assert set(t.verdict) <= set(VERDICTS)
    for _, g in t.groupby(["model", "metric"]):  # Holm over the K of one model and measure
        assert (g[g.verdict != "inconclusive"]["p (Holm)"] < 0.05).all()
        assert (g["seeds"] == 2).all() and (g["seeds improved"] <= 2).all()
    # the bias enters the profile as bias^2 on top of the control's w (P2), up to the cross term
    # 2 bias mean(error), which vanishes where the error is small (high noise)
    gap = bias.profiles["biased"].mse - bias.profiles["control"].mse
    assert np.median(gap) == pytest.approx(0.5**2, rel=0.02)
    assert np.allclose(gap[bias.profiles["control"].mse < 1e-2], 0.5**2, rtol=0.01)
    # a large bias is found at high noise; the control has none to find
    found = {m: sum(r.verdict == "contradicted" for r in rs) for m, rs in bias.audits.items()}
    assert found["biased"] > 0 and found["control"] == 0


def test_planted_models_share_the_error_scale(bias: bias_study.Result) -> None:
    bed = make_testbed("mixture-2d")
    models = bias_study.planted_models(bed, bias.spread, bias.params)
    a = np.array([0.9, 0.5, 0.01])
    gap = models["biased"].known_error_variance(a) - models["control"].known_error_variance(a)
    assert np.allclose(gap, 0.5**2)


def test_bias_summary_and_rendering(bias: bias_study.Result) -> None:
    s = bias_study.summary(bias)
    assert s.bias_seeds == 2 and s.bias_n == 24 and s.bias_size == 0.5
    assert s.audit["bias_zm_tests_control"] == s.audit["bias_zm_tests_biased"] == 3 * 2
    assert s.audit["bias_zm_where_control"] == "at no level"
    assert s.audit["bias_zm_where_biased"].startswith("at σ = ")
    for m in bias_study.MODELS:
        words = s.tallies[f"vrg_tally_{m}"].split()
        counts = [int(words[i + 2].rstrip(",")) for i, w in enumerate(words) if w in VERDICTS]
        assert sum(counts) == int(words[words.index("of") + 1]) == 4
    assert math.isfinite(s.bias_cpe_reduction) and math.isfinite(s.control_start_moved)
    assert bias_study.vrg_list_markdown(bias).count("\n") == 3  # one bullet per model and K
    for fig in bias_study.figures(bias).values():
        assert max(ax.get_subplotspec().colspan.stop for ax in fig.axes) <= 3
    assert "background-color" in bias_study.table(bias).to_html()


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"bias_steps": "5, 10"}, "must be a list"),
        ({"bias_steps": [1, 5]}, "integers >= 2"),
        ({"bias_baseline": "cosine"}, "unknown value 'cosine'"),
        ({"gamma": 1.0}, "gamma must be <"),
        ({"n_boot": 5}, "n_boot must be >= 20"),
    ],
)
def test_bias_study_bad_parameters_are_named(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        bias_study.Params(**kw)


def test_bias_study_sizes_and_seeds() -> None:
    quick, full = bias_study.Params(seed=3), bias_study.Params(quick=False)
    assert quick.bias_steps == (5, 10) and quick.seeds == (13, 14)
    assert (full.bias_steps, full.bias_seeds, full.bias_n_samples) == ((5, 10, 20), 5, 4096)
    cfg = quick.config()
    assert cfg.predictor == "planted" and cfg.exact_reference and cfg.samplers == ("ddim",)
    assert bias_study.Params(bias_steps="[10, 5]").bias_steps == (5, 10)
