import math

import numpy as np
import pytest

from vrg_analysis import NoiseSchedule, baseline, optimize_trajectory
from vrg_analysis.studies.exact_testbed import (
    ExactStudyConfig,
    profile_planted_testbed,
    run_exact_testbed_study,
)

SMALL = ExactStudyConfig(
    baselines=("time_uniform",), steps=(4, 16), n_train=128, profile_stride=50, n_samples=64
)


@pytest.fixture(scope="module")
def study():
    return run_exact_testbed_study(SMALL)


def test_study_runs_every_variant_at_equal_model_calls(study):
    assert len(study.records) == 1 * 2 * 3
    for k in SMALL.steps:
        nfes = {
            study.record("time_uniform", k, v).nfe for v in ("baseline", "vrg", "vrg_keep_start")
        }
        assert nfes == {k}
    rows = study.rows()
    assert {r["variant"] for r in rows} == {"baseline", "vrg", "vrg_keep_start"}
    assert all(math.isfinite(r["endpoint_mse"]) for r in rows)


def test_errors_decompose_and_shrink_with_steps(study):
    """Discretisation error (DDIM with eps*) falls with K; the total is at least its parts' gap."""
    coarse = study.record("time_uniform", 4, "baseline")
    fine = study.record("time_uniform", 16, "baseline")
    assert fine.discretisation_errors.mean() < 0.5 * coarse.discretisation_errors.mean()
    # triangle inequality per sample: |a - b| <= |a - c| + |c - b|
    for r in study.records:
        total = np.sqrt(r.endpoint_errors)
        assert np.all(
            total <= np.sqrt(r.discretisation_errors) + np.sqrt(r.propagated_errors) + 1e-9
        )


def test_keep_start_variant_keeps_the_start_level(study):
    for k in SMALL.steps:
        base = study.record("time_uniform", k, "baseline").trajectory
        keep = study.record("time_uniform", k, "vrg_keep_start").trajectory
        assert keep.alpha_bar[0] == base.alpha_bar[0]


def test_paired_difference_is_consistent(study):
    d, lo, hi = study.paired_difference("time_uniform", 4, "vrg")
    a = study.record("time_uniform", 4, "baseline").endpoint_errors.mean()
    b = study.record("time_uniform", 4, "vrg").endpoint_errors.mean()
    assert d == pytest.approx(b - a) and lo < d < hi


def test_deterministic_given_seed(study):
    again = run_exact_testbed_study(SMALL)
    np.testing.assert_array_equal(
        again.records[0].endpoint_errors, study.records[0].endpoint_errors
    )


def test_planted_error_is_recovered_by_the_paired_decomposition():
    """With 'relative' planting the model's error is planted_size x spread at every level."""
    cfg = ExactStudyConfig(n_train=1024, profile_stride=100, planted_size=0.25)
    pp = profile_planted_testbed(cfg)
    ratio = pp.model_error_profile.mse / pp.spread_profile.mse
    assert np.median(ratio) == pytest.approx(0.25, abs=0.03)


def test_optimiser_converges_on_a_measured_profile():
    """A measured profile is flat beyond its last level, a kink where the baselines start; the
    L-BFGS-B line search fails there on this profile (time_quadratic, K=5), and the SLSQP
    continuation must still converge without making the objective worse."""
    pp = profile_planted_testbed(ExactStudyConfig())
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
    cfg = ExactStudyConfig(steps=(3, 7), planted_error="constant")
    assert ExactStudyConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(ValueError, match="unknown planted_error 'gaussian'"):
        ExactStudyConfig(planted_error="gaussian")
    with pytest.raises(ValueError, match="unknown baseline 'uniform'"):
        ExactStudyConfig(baselines=("uniform",))
    with pytest.raises(ValueError, match="steps must be positive"):
        ExactStudyConfig(steps=(0,))


def test_study_reports_the_planted_truth(study):
    """The paired difference of the profiles estimates the planted variance it is shown beside."""
    est = study.model_error_profile.mse
    truth = study.planted_error_variance
    assert truth.shape == est.shape and np.all(truth >= 0)
    assert np.median(est / np.maximum(truth, 1e-300)) == pytest.approx(1.0, abs=0.25)
