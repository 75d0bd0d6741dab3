"""Anisotropy of the error: spectra, effective ranks, the isotropy audit, and CPE's blindness.

Known answers: isotropic Gaussian errors (effective rank d, verdict holds), a single dominant
direction (effective rank 1, violated), spherical heavy-tailed errors (the spatial-sign test stays
calibrated), and CPE unchanged by per-step rotations or equal-trace anisotropy when the steps are
independent, while the accumulated error's shape does change.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy import stats

from vrg_analysis.assumptions import (
    ErrorSample,
    accumulated_error_anisotropy,
    anisotropy_audit,
    entropy_rank,
    error_spectrum,
    participation_ratio,
    spatial_sign_sphericity_test,
)
from vrg_analysis.core.cpe import cumulative_prediction_error
from vrg_analysis.core.profile import ErrorProfile
from vrg_analysis.core.trajectories import Trajectory

LEVELS = np.array([0.1, 0.5, 0.9])


def _sample(e: np.ndarray, levels=LEVELS, paired: bool = False) -> ErrorSample:
    return ErrorSample(e, levels, "synthetic", "eps* (exact predictor)", paired=paired)


def _rotation(d: int, rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def test_effective_ranks_of_known_spectra():
    assert participation_ratio(np.ones(5)) == pytest.approx(5.0)
    assert entropy_rank(np.ones(5)) == pytest.approx(5.0)
    assert participation_ratio([2.0, 0.0, 0.0]) == pytest.approx(1.0)
    assert entropy_rank([2.0, 0.0, 0.0]) == pytest.approx(1.0)
    assert participation_ratio([3.0, 1.0]) == pytest.approx(16.0 / 10.0)
    p = np.array([0.75, 0.25])
    assert entropy_rank([3.0, 1.0]) == pytest.approx(math.exp(-np.sum(p * np.log(p))))
    with pytest.raises(ValueError, match="constant"):
        participation_ratio(np.zeros(3))


def test_isotropic_errors_have_full_rank_and_hold():
    rng = np.random.default_rng(0)
    d = 4
    e = rng.standard_normal((3, 20_000, d)) * np.array([0.5, 1.0, 2.0])[:, None, None]
    spec = error_spectrum(_sample(e))
    assert np.all(spec.participation_ratio > 3.9) and np.all(spec.entropy_rank > 3.95)
    np.testing.assert_allclose(spec.top_share, 0.25, atol=0.01)
    np.testing.assert_allclose(spec.trace / d, _sample(e).mse(), rtol=1e-12)  # tr M / d = w
    assert np.all(np.diff(spec.eigenvalues, axis=1) <= 0)  # descending
    rows = anisotropy_audit(_sample(e), bootstrap=100)
    assert [r.verdict for r in rows] == ["supported"] * 3
    for r in rows:
        assert r.audit == "isotropy" and r.tolerance == 1.5
        assert 1.0 <= r.effect_size < 1.1
        assert r.p_adjusted > 0.01  # spherical: the sign test does not reject


def test_one_dominant_direction_is_violated():
    rng = np.random.default_rng(1)
    d, n = 6, 3000
    u = rng.standard_normal(d)
    u /= np.linalg.norm(u)
    z = rng.standard_normal((3, n, 1))
    e = 5.0 * z * u + 0.1 * rng.standard_normal((3, n, d))
    spec = error_spectrum(_sample(e))
    assert np.all(spec.participation_ratio < 1.05) and np.all(spec.entropy_rank < 1.2)
    np.testing.assert_allclose(np.abs(spec.top_direction @ u), 1.0, atol=1e-3)
    np.testing.assert_allclose(spec.anisotropy_ratio, d, rtol=0.01)
    rows = anisotropy_audit(_sample(e), bootstrap=100)
    assert [r.verdict for r in rows] == ["contradicted"] * 3
    assert all(r.effect_size > 5.5 for r in rows)


def test_moderate_anisotropy_within_tolerance_holds_but_is_detected():
    rng = np.random.default_rng(2)
    sd = np.sqrt([1.2, 1.0, 0.9, 0.9])  # rho = 4 * 1.2 / 4 = 1.2
    e = rng.standard_normal((3, 20_000, 4)) * sd
    rows = anisotropy_audit(_sample(e), bootstrap=100)
    assert [r.verdict for r in rows] == ["supported"] * 3
    assert all(r.p_adjusted < 1e-6 and "detected" in r.note for r in rows)
    assert all(abs(r.effect_size - 1.2) < 0.05 for r in rows)


def test_sign_test_is_calibrated_and_ignores_heavy_tails():
    rng = np.random.default_rng(3)
    d, n = 3, 300
    q, p, df = spatial_sign_sphericity_test(rng.standard_normal((n, d)))
    assert df == (d - 1) * (d + 2) // 2 and p == pytest.approx(stats.chi2.sf(q, df))
    p_gauss = [spatial_sign_sphericity_test(rng.standard_normal((n, d)))[1] for _ in range(300)]
    assert 0.02 <= np.mean(np.array(p_gauss) < 0.05) <= 0.09
    # multivariate t (df 3): spherical but heavy-tailed; the squared norm has kurtosis to spare
    radius = np.sqrt(3.0 / rng.chisquare(3.0, (300, n, 1)))
    p_t = [
        spatial_sign_sphericity_test(rng.standard_normal((n, d)) * radius[i])[1] for i in range(300)
    ]
    assert 0.02 <= np.mean(np.array(p_t) < 0.05) <= 0.09
    e = rng.standard_normal((3, 4000, 3)) * np.sqrt(3.0 / rng.chisquare(3.0, (3, 4000, 1)))
    assert all(r.verdict != "contradicted" for r in anisotropy_audit(_sample(e), bootstrap=60))


def test_small_samples_are_inconclusive_with_a_sample_size_note():
    rng = np.random.default_rng(4)
    e = rng.standard_normal((3, 40, 8))  # isotropic, but n = 5 d: the plug-in rho is ~ 2
    rows = anisotropy_audit(_sample(e), bootstrap=100)
    assert all(r.verdict == "inconclusive" for r in rows)
    assert all("samples needed" in r.note or "not significant" in r.note for r in rows)


def _trajectory_sample(e: np.ndarray) -> tuple[ErrorSample, Trajectory]:
    traj = Trajectory([0.05, 0.3, 0.7, 0.95])
    return _sample(e, traj.alpha_bar, paired=True), traj


def test_cpe_is_blind_to_rotation_and_equal_trace_anisotropy():
    rng = np.random.default_rng(5)
    k, n, d = 4, 20_000, 3
    w = np.array([0.3, 0.2, 0.1, 0.05])
    iso = rng.standard_normal((k, n, d)) * np.sqrt(w)[:, None, None]
    sample, traj = _trajectory_sample(iso)
    base = accumulated_error_anisotropy(sample, trajectory=traj)
    # cross-check c_k and the sum against vrg_analysis.cpe with the sample's own w profile
    profile = ErrorProfile(traj.alpha_bar, sample.mse())
    assert base.cpe_independent == pytest.approx(cumulative_prediction_error(traj, profile))
    # 1. rotate each step by its own orthogonal matrix: traces, hence CPE, exactly unchanged
    rotated = np.stack([iso[j] @ _rotation(d, rng).T for j in range(k)])
    rot = accumulated_error_anisotropy(_sample(rotated, traj.alpha_bar, paired=True))
    assert rot.cpe_independent == pytest.approx(base.cpe_independent, rel=1e-12)
    # 2. equal-trace anisotropy (variances 2.4 : 0.3 : 0.3 of w): CPE unchanged ...
    shape = np.sqrt(np.array([2.4, 0.3, 0.3]))
    aniso = rng.standard_normal((k, n, d)) * np.sqrt(w)[:, None, None] * shape
    an = accumulated_error_anisotropy(_sample(aniso, traj.alpha_bar, paired=True))
    assert an.cpe_independent == pytest.approx(base.cpe_independent, rel=0.03)
    assert an.cpe_observed == pytest.approx(base.cpe_observed, rel=0.03)
    # ... while the shape VRG cannot see changes: rho 1 -> 2.4
    assert base.independent_ratio < 1.05 and base.observed_ratio < 1.05
    assert an.independent_ratio == pytest.approx(2.4, rel=0.03)
    assert an.observed_ratio == pytest.approx(2.4, rel=0.03)
    assert np.all(an.step_ratio > 2.2)


def test_coherent_steps_concentrate_the_accumulated_error():
    rng = np.random.default_rng(6)
    k, n, d = 4, 5000, 3
    # each step's error points the same way along the path (a different random direction per
    # path), so per step it is isotropic but the accumulated error adds up coherently
    direction = rng.standard_normal((n, d))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    e = np.broadcast_to(direction * np.sqrt(d), (k, n, d)).copy()
    sample, traj = _trajectory_sample(e)
    acc = accumulated_error_anisotropy(sample, trajectory=traj)
    assert np.all(acc.step_ratio < 1.1)
    c = acc.coefficients
    assert acc.cpe_independent == pytest.approx(np.sum(c**2), rel=1e-12)
    assert acc.cpe_observed == pytest.approx(np.sum(c) ** 2, rel=1e-12)  # fully coherent
    # and a single shared direction: the accumulated error is rank one
    u = np.array([1.0, 0.0, 0.0]) * np.sqrt(d)
    one = (rng.choice([-1.0, 1.0], size=(1, n, 1)) * u).repeat(k, axis=0)
    acc1 = accumulated_error_anisotropy(_sample(one, traj.alpha_bar, paired=True))
    assert acc1.observed_ratio == pytest.approx(d) and acc1.observed_participation == 1.0
    unpaired = accumulated_error_anisotropy(_sample(one, traj.alpha_bar, paired=False))
    assert math.isnan(unpaired.cpe_observed) and unpaired.independent_ratio == pytest.approx(d)


def test_validation():
    rng = np.random.default_rng(7)
    e = rng.standard_normal((3, 30, 4))
    with pytest.raises(ValueError, match="at least 20 samples"):
        anisotropy_audit(_sample(e[:, :10]))
    with pytest.raises(ValueError, match=r"at least 60 samples per level .* got n = 30"):
        anisotropy_audit(_sample(rng.standard_normal((3, 30, 30))))
    with pytest.raises(ValueError, match="d >= 2"):
        anisotropy_audit(_sample(rng.standard_normal((3, 50, 1))))
    with pytest.raises(ValueError, match="tolerance must be a number > 1"):
        anisotropy_audit(_sample(e), tolerance=1.0)
    zero = np.array(e)
    zero[1] = 0.0
    with pytest.raises(ValueError, match=r"level 1 \(alpha_bar=0.5\) are constant"):
        error_spectrum(_sample(zero))
    with pytest.raises(ValueError, match="trajectory has 4 levels but the sample has 3"):
        accumulated_error_anisotropy(_sample(e), trajectory=Trajectory([0.1, 0.2, 0.5, 0.9]))
    with pytest.raises(ValueError, match=r"trajectory alpha_bar\[2\] = 0.8"):
        accumulated_error_anisotropy(_sample(e), trajectory=Trajectory([0.1, 0.5, 0.8]))
    with pytest.raises(ValueError, match="sampling order"):
        accumulated_error_anisotropy(_sample(e, np.array([0.9, 0.5, 0.1])))
    spec = error_spectrum(_sample(e))
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.dim = 2  # type: ignore[misc]
    with pytest.raises(ValueError):
        spec.eigenvalues[0, 0] = 1.0
