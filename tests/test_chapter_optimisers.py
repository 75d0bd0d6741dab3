"""The optimisers chapter on tiny parameters: the optimiser tables, the two sampling comparisons
through the engine (trajectories re-timed on the trained MLP's profile for both predictors), the
judged table (Holm over it), the "cheap" rule and the figures."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from vrg_analysis.core.profile import read_official_profile
from vrg_analysis.core.schedules import NoiseSchedule
from vrg_analysis.core.trajectories import read_official_trajectory
from vrg_analysis.studies import optimisers as chapter
from vrg_analysis.studies.engine import paired_comparison

TINY = dict(
    num_steps=4,
    mlp_epochs=10,
    mlp_hidden=16,
    n_train=64,
    profile_stride=50,
    grid_size=120,
    n_seeds=2,
    n_samples=48,
    reference_dir=None,
)
VERDICTS = {"supported", "inconclusive", "contradicted"}


@pytest.fixture(scope="module")
def result() -> chapter.Result:
    torch.set_num_threads(1)
    return chapter.run(chapter.Params(**TINY))


def test_optimiser_table_on_the_testbed(result: chapter.Result) -> None:
    t = result.testbed_table
    assert list(t.index) == list(chapter.KEYS)
    assert t.loc["exact_keep_start", "start moved %"] == pytest.approx(0.0, abs=1e-9)
    assert t.loc["global_fixed", "start moved %"] == pytest.approx(0.0, abs=1e-9)
    # the penalty variants minimise CPE + penalty, the others CPE alone
    for key in ("mlp_sgd", "exact_penalty"):
        assert t.loc[key, "objective"] == pytest.approx(
            t.loc[key, "CPE"] + t.loc[key, "penalty term"], rel=1e-9
        )
    assert (t.loc[["exact_keep_start", "global_fixed", "global_free"], "penalty term"] == 0).all()
    # without the box CPE falls far: the degenerate optima
    assert t.loc["global_free", "CPE"] < t.loc["global_fixed", "CPE"] < t.loc["baseline", "CPE"]
    assert t.loc["global_free", "start moved %"] > 100.0
    assert np.allclose(
        t["CPE reduction %"], 100 * (1 - t["CPE"] / t.loc["baseline", "CPE"]), rtol=1e-12
    )


def test_both_predictors_sample_the_table_trajectories(result: chapter.Result) -> None:
    p = result.params
    for predictor, res in result.comparisons.items():
        assert res.config.predictor == predictor
        for key in chapter.KEYS:
            a = res.arm("ddim", p.baseline_name, p.num_steps, result.labels[key], p.seeds[0])
            np.testing.assert_allclose(a.alpha_bar, result.trajectories[key].alpha_bar, rtol=1e-12)
            assert a.nfe == p.num_steps
    # the same starting noise in both comparisons: the baseline's exact error is the same target
    q = result.quality
    assert len(q) == len(chapter.PREDICTORS) * len(chapter.KEYS) * p.n_seeds
    base = q[q.key == "baseline"]
    assert np.allclose(base.error_own, base.error_common)


def test_paired_table_is_one_holm_family(result: chapter.Result) -> None:
    t = result.paired
    assert len(t) == len(chapter.PREDICTORS) * len(chapter.KINDS) * len(chapter.PAIRED_METRICS)
    assert set(t.verdict) <= VERDICTS
    assert (t[t.verdict != "inconclusive"]["p (Holm)"] < 0.05).all()
    assert (t.ci_low <= t.difference).all() and (t.difference <= t.ci_high).all()
    # the degenerate optimum collapses the samples: a far lower log-likelihood for both models
    ll = t[(t.key == "global_fixed") & (t.metric == chapter.METRICS["ll_gap"])]
    assert (ll.verdict == "contradicted").all() and (ll.difference < -1.0).all()


def test_one_arm_is_paired_with_another(result: chapter.Result) -> None:
    p = result.params
    res = result.comparisons["trained"]
    held, pen = result.labels["exact_keep_start"], result.labels["exact_penalty"]
    c = paired_comparison(
        res, "ddim", p.baseline_name, p.num_steps, pen, "log_likelihood", reference=held
    )
    ll = {
        v: np.concatenate(
            [
                res.arm("ddim", p.baseline_name, p.num_steps, v, s).per_sample["log_likelihood"]
                for s in p.seeds
            ]  # fmt: skip
        )
        for v in (held, pen)
    }
    assert c.delta == pytest.approx(ll[pen].mean() - ll[held].mean(), rel=1e-12)
    assert result.penalty_vs_held.delta == pytest.approx(c.delta, rel=1e-12)
    with pytest.raises(KeyError, match="nonsense"):
        paired_comparison(res, "ddim", p.baseline_name, p.num_steps, pen, reference="nonsense")


@pytest.mark.parametrize(
    ("solver", "batch", "batches", "verdict"),
    [
        (0.5, 1.0, 5, "supported"),
        (1.0, 1.0, 5, "supported"),
        (3.0, 1.0, 5, "mixed"),
        (5.0, 1.0, 5, "mixed"),
        (5.1, 1.0, 5, "contradicted"),
    ],  # fmt: skip
)
def test_cheap_rule(solver: float, batch: float, batches: int, verdict: str) -> None:
    assert chapter.cheap_verdict(solver, batch, batches) == verdict


def test_cheap_rule_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="batch_seconds > 0"):
        chapter.cheap_verdict(1.0, 0.0, 3)


def test_summary_and_findings(result: chapter.Result) -> None:
    s = chapter.summary(result)
    assert s.n_global_comparisons == 8 and 0 <= s.n_global_worse <= 8
    assert s.n_paired == 20
    assert s.solver_batch_ratio == pytest.approx(
        s.bed["bed_wall_exact_penalty"] / s.batch_s, rel=1e-12
    )
    assert s.cheap_verdict == chapter.cheap_verdict(
        s.bed["bed_wall_exact_penalty"], s.batch_s, result.params.n_seeds
    )
    assert s.paired["v_mlp_global_fixed_ll"] == "contradicted"
    assert s.scores["s_exact_baseline_ll_gap_lo"] <= s.scores["s_exact_baseline_ll_gap"]
    assert "not found" in s.cifar_summary
    (f,) = chapter.findings(result)
    assert f.claim == "cheap" and f.chapter == "optimisers" and f.verdict == s.cheap_verdict
    # the scope: the testbed whose profile was optimised, the timed batch's size, the set
    p = result.params
    assert f.model.startswith(f"{p.testbed} (mixture-2d-mlp: ")
    assert f"{p.n_train} training rows" in f.model
    assert f"a DDIM batch of {p.n_samples} samples" in f.size and f.size.startswith("K=4, ")
    assert f.size.endswith("custom parameters")


def test_figures_and_tables_render(result: chapter.Result) -> None:
    for fig in (
        chapter.figure_trajectories(result),
        chapter.figure_sample_quality(result),
        chapter.figure_samples(result),
    ):
        cols = max(ax.get_subplotspec().colspan.stop for ax in fig.axes)
        assert cols <= 3
    html = chapter.table_paired(result).to_html()
    assert "verdict" in html and "background-color" in html
    assert "CPE" in chapter.table_quality(result).to_html()
    with pytest.raises(ValueError, match="CIFAR-10"):
        chapter.table_optimisers(result, "cifar")


def test_level_grid_stays_inside_the_schedule(result: chapter.Result) -> None:
    sched = NoiseSchedule.linear()
    g = chapter.level_grid(result.comparisons["trained"].profile, sched, 50)
    assert g.size == 50 and g.min() >= sched.alpha_bar_min * (1 - 1e-12)
    assert g.max() <= sched.alpha_bar_max * (1 + 1e-12)
    assert np.all(np.diff(np.log(g / (1 - g))) > 0)  # uniform in log-SNR: increasing


def test_cifar_profile_table(official_dir) -> None:
    torch.set_num_threads(1)
    profile = read_official_profile(official_dir / "MSE_vs_alpha_bar_cifar10.txt")
    base = read_official_trajectory(
        official_dir / "trajectories" / "dpm_alphaBar_1-010-time_quadratic.txt"
    )
    arms = chapter.Params(mlp_epochs=5, mlp_hidden=8, grid_size=200).arms()
    t, trajs = chapter.optimiser_table(profile, base, NoiseSchedule.linear(), arms)
    # the official README: CPE 0.501388 for this baseline on this profile
    assert t.loc["baseline", "CPE"] == pytest.approx(0.501388, rel=2e-3)
    assert t.loc["exact_penalty", "CPE"] < t.loc["baseline", "CPE"]
    assert set(trajs) == set(chapter.KEYS)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"baseline_name": "euler"}, "unknown value 'euler'"),
        ({"n_seeds": 1}, "n_seeds must be >= 2"),
        ({"gamma": 0.0}, "gamma must be >"),
        ({"grid_size": 5}, "grid_size must be >= 11"),
        ({"mlp_epochs": "many"}, "mlp_epochs must be an integer"),
    ],
)
def test_bad_parameters_are_named(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        chapter.Params(**kw)


def test_arm_identity_names_its_profile(result: chapter.Result) -> None:
    prof = result.comparisons["trained"].profile
    plain, pinned = (
        chapter.OptimiserArm("exact_penalty"),
        chapter.OptimiserArm("exact_penalty", profile=prof),
    )
    assert plain.to_dict()["profile"] is None and len(pinned.to_dict()["profile"]) == 64
    assert plain.label == pinned.label
    with pytest.raises(ValueError, match="kind must be one of"):
        chapter.OptimiserArm("adam")
    assert math.isfinite(result.batch_seconds) and result.batch_seconds > 0


def test_the_full_parameter_file_is_valid() -> None:
    path = Path(__file__).resolve().parents[1] / "notebooks/params/full/optimisers.yaml"
    p = chapter.Params(**yaml.safe_load(path.read_text()))
    assert p.mlp_epochs == 3000 and p.mlp_hidden == 2000 and len(p.seeds) == p.n_seeds
