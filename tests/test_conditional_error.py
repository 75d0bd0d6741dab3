"""Does the error depend on x_t beyond the noise level? (assumptions.conditional_error): the
spread estimator, the verdict rule and the data collection on cases with a known answer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from analytic import GaussianOracle

from vrg_analysis.assumptions import conditional_error as ce
from vrg_analysis.core.trajectories import time_uniform


def _data(errors: np.ndarray, labels: np.ndarray | None, levels=(0.2, 0.6)) -> ce.ConditionalData:
    rng = np.random.default_rng(5)
    shape = errors.shape
    return ce.ConditionalData(
        errors, rng.random(shape), rng.random(shape), labels, np.asarray(levels), "planted"
    )


def test_relative_spread_recovers_planted_group_means() -> None:
    rng = np.random.default_rng(0)
    means = np.array([0.8, 1.0, 1.0, 1.2])
    g = np.repeat(np.arange(4), 20000)
    e = rng.exponential(means[g])
    truth = float(np.sqrt(np.mean((means / means.mean() - 1) ** 2)))  # 0.1414
    assert ce.relative_spread(e, g) == pytest.approx(truth, rel=0.05)
    keys, r = ce.group_means(e, g)
    np.testing.assert_array_equal(keys, np.arange(4))
    np.testing.assert_allclose(r, means / means.mean(), rtol=0.03)


def test_relative_spread_removes_the_noise_of_the_group_means() -> None:
    """Ten groups of 50 exponential errors, no effect: the undebiased spread sits near
    sqrt(1/50) = 0.14 in every replication; the debiased one is below the 0.1 tolerance in
    most of them."""
    rng = np.random.default_rng(1)
    g = np.repeat(np.arange(10), 50)
    raw, debiased = [], []
    for _ in range(200):
        e = rng.exponential(1.0, g.size)
        _, r = ce.group_means(e, g)
        raw.append(np.sqrt(np.mean((r - 1) ** 2)))
        debiased.append(ce.relative_spread(e, g))
    assert np.median(raw) == pytest.approx(np.sqrt(1 / 50), rel=0.2)
    assert np.mean(np.asarray(debiased) < 0.1) > 0.75
    assert np.median(debiased) < 0.5 * np.median(raw)


def test_relative_spread_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="group 1 has 1 row"):
        ce.relative_spread([1.0, 2.0, 3.0], [0, 0, 1])
    with pytest.raises(ValueError, match="3 errors but 2 group labels"):
        ce.relative_spread([1.0, 2.0, 3.0], [0, 1])
    with pytest.raises(ValueError, match="mean error must be positive"):
        ce.relative_spread([0.0, 0.0, 0.0, 0.0], [0, 0, 1, 1])


def test_quantile_groups_have_equal_counts_in_order() -> None:
    x = np.random.default_rng(2).standard_normal(103)
    g = ce.quantile_groups(x, 5)
    counts = np.bincount(g)
    assert counts.sum() == 103 and counts.max() - counts.min() <= 1
    for k in range(4):  # every value of a lower bin is below every value of the next
        assert x[g == k].max() <= x[g == k + 1].min()
    with pytest.raises(ValueError, match="bins must be an integer in"):
        ce.quantile_groups(x, 1)


def test_the_audit_says_violated_for_a_planted_class_effect_and_holds_without_one() -> None:
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(4), 2000)
    strong = np.array([0.6, 1.0, 1.0, 1.4])[labels]  # spread 0.28, well past 0.1
    errors = np.stack([rng.exponential(strong), rng.exponential(1.0, labels.size)])
    audit = ce.dependence_audit(_data(errors, labels), covariates=["class"], n_boot=100)
    res = audit.results
    assert [r.verdict for r in res] == ["contradicted", "supported"]
    assert list(audit.table.verdict) == ["contradicted", "supported"]
    t = audit.table
    assert (t.low <= t.spread).all() and (t.spread <= t.high).all()
    np.testing.assert_allclose(t.p_holm, [r.p_adjusted for r in res])
    assert res[0].effect_size == pytest.approx(0.2828, rel=0.1)
    assert res[0].audit == ce.AUDIT and res[0].correction == "holm"
    assert all(r.p_adjusted >= r.p_value for r in res)


def test_the_audit_is_not_settled_near_the_tolerance_with_few_samples() -> None:
    rng = np.random.default_rng(4)
    labels = np.repeat(np.arange(2), 60)
    errors = rng.exponential(np.array([0.9, 1.1])[labels])[None, :]  # spread 0.1, n small
    (r,) = ce.dependence_audit(
        _data(errors, labels, (0.5,)), covariates=["class"], n_boot=100
    ).results
    assert r.verdict == "inconclusive"


def test_the_audit_refuses_unknown_covariates_and_class_without_labels() -> None:
    errors = np.random.default_rng(5).exponential(1.0, (1, 100))
    data = _data(errors, None, (0.5,))
    assert data.covariates() == ["norm", "distance"]
    with pytest.raises(ValueError, match="unknown covariate 'colour'"):
        ce.dependence_audit(data, covariates=["colour"])
    with pytest.raises(ValueError, match="needs labels"):
        ce.dependence_audit(data, covariates=["class"], n_boot=20)


def test_conditional_data_refuses_nan_and_mismatched_shapes() -> None:
    e = np.ones((2, 10))
    with pytest.raises(ValueError, match="errors contain NaN"):
        _data(np.where(np.eye(2, 10) > 0, np.nan, e), None)
    with pytest.raises(ValueError, match=r"labels have shape \(9,\)"):
        _data(e, np.zeros(9, dtype=int))


def test_conditional_errors_of_the_exact_predictor_of_a_gaussian() -> None:
    """Data N(0, c^2 I), the exact predictor: the per-sample error averages the posterior
    variance at every level and does not depend on the state (its conditional mean is the same
    everywhere), so the audit finds no spread beyond the tolerance."""
    torch.manual_seed(0)
    oracle = GaussianOracle(c=0.5)
    x0 = 0.5 * torch.randn(4000, 16, dtype=torch.float64)
    ref = 0.5 * torch.randn(500, 16, dtype=torch.float64)
    levels = np.array([0.1, 0.5, 0.9])
    data = ce.conditional_errors(oracle, x0, levels, ref, seed=1, source="gaussian")
    np.testing.assert_allclose(data.w, oracle.posterior_variance(levels), rtol=0.05)
    # the normalised distance of a state to reference rows it was not drawn from is near 1
    assert np.all(np.median(data.distance, axis=1) > 0.5)
    res = ce.dependence_audit(data, n_boot=100).results
    assert {r.verdict for r in res} <= {"supported", "inconclusive"}
    assert sum(r.verdict == "supported" for r in res) >= 4
    with pytest.raises(ValueError, match="alpha_bar must be levels in"):
        ce.conditional_errors(oracle, x0, [0.0, 0.5], ref)
    with pytest.raises(ValueError, match="5 labels for 4000 rows"):
        ce.conditional_errors(oracle, x0, levels, ref, labels=np.zeros(5))


def test_class_cpe_ratios_scale_with_the_class_error() -> None:
    labels = np.repeat(np.arange(2), 50)
    per_level = np.where(labels == 0, 1.0, 3.0)  # class means 1 and 3, overall 2
    levels = np.array([0.01, 0.3, 0.7, 0.99])
    data = _data(np.tile(per_level, (4, 1)), labels, levels)
    traj = time_uniform(GaussianOracle().schedule, 5)
    ratios = ce.class_cpe_ratios(data, traj)
    assert ratios == pytest.approx({0: 0.5, 1: 1.5}, rel=1e-12)
    with pytest.raises(ValueError, match="need labels"):
        ce.class_cpe_ratios(_data(np.ones((2, 4)), None), traj)
