"""The exact-testbed study, now the chapter module on the one comparison engine: the assertions
that tested the old hand-written loop, on the engine-based result."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from vrg_analysis import NoiseSchedule, baseline, optimize_trajectory
from vrg_analysis.studies import exact_testbed as chapter
from vrg_analysis.studies.engine import paired_comparison, run_comparison

SMALL = chapter.Params(
    baselines=("time_uniform",), steps=(4, 16), n_train=128, profile_stride=50, n_samples=64
)
VARIANTS = ("baseline", "vrg", "vrg_keep_start")


@pytest.fixture(scope="module")
def study() -> chapter.Result:
    torch.set_num_threads(1)
    return chapter.run(SMALL)


def _arm(study: chapter.Result, k: int, variant: str):
    labels = {v: label for label, v in chapter.variant_names(study.comparison).items()}
    return study.comparison.arm("ddim", "time_uniform", k, labels[variant], SMALL.seed)


def test_study_runs_every_variant_at_equal_model_calls(study):
    assert len(study.comparison.arms) == 1 * 2 * 3
    for k in SMALL.steps:
        assert {_arm(study, k, v).nfe for v in VARIANTS} == {k}
    rows = study.arms
    assert set(rows.variant) == set(VARIANTS)
    assert np.isfinite(rows.endpoint_mse).all()
    assert (rows.nfe == rows.K).all()


def test_errors_decompose_and_shrink_with_steps(study):
    """Discretisation error (DDIM with eps*) falls with K; the total is at most its parts' sum."""
    coarse = _arm(study, 4, "baseline").per_sample["discretisation_error"]
    fine = _arm(study, 16, "baseline").per_sample["discretisation_error"]
    assert fine.mean() < 0.5 * coarse.mean()
    # triangle inequality per sample: |a - b| <= |a - c| + |c - b|
    for a in study.comparison.arms:
        total = np.sqrt(a.per_sample["exact_error"])
        disc = np.sqrt(a.per_sample["discretisation_error"])
        prop = np.sqrt(a.per_sample["propagated_error"])
        assert np.all(total <= disc + prop + 1e-9)


def test_keep_start_variant_keeps_the_start_level(study):
    for k in SMALL.steps:
        base = _arm(study, k, "baseline").alpha_bar
        keep = _arm(study, k, "vrg_keep_start").alpha_bar
        assert keep[0] == base[0]


def test_paired_difference_is_consistent(study):
    label = study.comparison.config.arm_labels[0]
    c = paired_comparison(study.comparison, "ddim", "time_uniform", 4, label, "exact_error")
    a = _arm(study, 4, "baseline").per_sample["exact_error"].mean()
    b = _arm(study, 4, "vrg").per_sample["exact_error"].mean()
    assert c.delta == pytest.approx(b - a) and c.ci_low < c.delta < c.ci_high
    row = study.paired[(study.paired.K == 4) & (study.paired.variant == "vrg")].iloc[0]
    assert row.difference == pytest.approx(b - a)
    assert row["relative change %"] == pytest.approx(100 * (b - a) / a)


def test_deterministic_given_seed(study):
    again = run_comparison(SMALL.config(), use_cache=False)
    first = study.comparison.arms[0]
    np.testing.assert_array_equal(
        again.arms[0].per_sample["exact_error"], first.per_sample["exact_error"]
    )


def test_planted_error_is_recovered_by_the_paired_decomposition():
    """With 'relative' planting the model's error is planted_size x spread at every level."""
    pp = chapter.planted_profiles(
        chapter.Params(n_train=1024, profile_stride=100, planted_size=0.25)
    )
    ratio = pp.model_error_profile.mse / pp.spread_profile.mse
    assert np.median(ratio) == pytest.approx(0.25, abs=0.03)


def test_optimiser_converges_on_a_measured_profile():
    """A measured profile is flat beyond its last level, a kink where the baselines start; the
    L-BFGS-B line search fails there on such profiles, and the SLSQP continuation must still
    converge without making the objective worse."""
    pp = chapter.planted_profiles(chapter.Params())
    sched = NoiseSchedule.linear()
    messages = []
    for name in ("time_uniform", "time_quadratic", "logsnr_uniform"):
        for k in (5, 10, 20):
            for keep in (False, True):
                res = optimize_trajectory(
                    baseline(name, sched, k),
                    pp.profile,
                    keep_start=keep,
                    alpha_bar_max=sched.alpha_bar_max,
                )
                assert res.converged, (name, k, keep, res.message)
                assert res.objective_final <= res.objective_initial + 1e-12
                assert res.optimized.alpha_bar[-1] <= sched.alpha_bar_max
                messages.append(res.message)
    assert any("then SLSQP" in m for m in messages)  # the fallback was exercised


def test_config_round_trip_and_validation():
    cfg = chapter.Params(steps=(3, 7), planted_error="constant")
    assert chapter.Params(**json.loads(json.dumps(dataclasses.asdict(cfg)))) == cfg
    assert cfg.config().planted_error == "constant" and cfg.config().steps == (3, 7)
    with pytest.raises(ValueError, match="unknown value 'gaussian'"):
        chapter.Params(planted_error="gaussian")
    with pytest.raises(ValueError, match="unknown value 'uniform'"):
        chapter.Params(baselines=("uniform",))
    with pytest.raises(ValueError, match="steps must be positive"):
        chapter.Params(steps=(0,))


def test_study_reports_the_planted_truth(study):
    """The paired difference of the profiles estimates the planted variance it is shown beside."""
    est = study.profiles.model_error_profile.mse
    truth = study.profiles.planted_error_variance
    assert truth.shape == est.shape and np.all(truth >= 0)
    assert np.median(est / np.maximum(truth, 1e-300)) == pytest.approx(1.0, abs=0.25)
