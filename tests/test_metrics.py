"""Frechet distance (analytic cases, the scipy ``sqrtm`` formula, invariances) and the exact
sample-quality metrics of the Gaussian-mixture testbed."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.linalg import sqrtm

from vrg_analysis.evaluation.metrics import (
    MixtureReference,
    frechet_distance,
    frechet_distance_from_samples,
    gaussian_moments,
    mixture_reference,
    mixture_sample_quality,
)
from vrg_analysis.models.analytic import GaussianMixture

K_SE = 4.0


def _spd(rng: np.random.Generator, d: int, cond: float = 50.0) -> np.ndarray:
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return (q * np.geomspace(1.0, 1.0 / cond, d) * rng.uniform(0.5, 2.0)) @ q.T


def _fd_sqrtm(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    """pytorch-fid's ``calculate_frechet_distance``: tr sqrtm(S1 S2) with scipy (reference)."""
    covmean = sqrtm(s1 @ s2)
    covmean = np.real(covmean)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))


# ===================================================================== Frechet distance
def test_diagonal_closed_form() -> None:
    """Diagonal covariances commute: FD = ||dmu||^2 + sum_k (sqrt(s1_k) - sqrt(s2_k))^2."""
    rng = np.random.default_rng(0)
    d = 6
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = rng.uniform(0.1, 3.0, size=d), rng.uniform(0.1, 3.0, size=d)
    expected = float(((mu1 - mu2) ** 2).sum() + ((np.sqrt(s1) - np.sqrt(s2)) ** 2).sum())
    got = frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2))
    assert got == pytest.approx(expected, rel=1e-12)
    # one-dimensional textbook case: W2^2(N(0, 1), N(1, 4)) = 1 + (1 - 2)^2
    assert frechet_distance([0.0], [[1.0]], [1.0], [[4.0]]) == pytest.approx(2.0, rel=1e-14)


def test_commuting_scaled_covariance() -> None:
    """S2 = c S1: FD = (1 - sqrt(c))^2 tr S1."""
    rng = np.random.default_rng(1)
    s = _spd(rng, 5)
    mu = rng.normal(size=5)
    assert frechet_distance(mu, s, mu, 4.0 * s) == pytest.approx(np.trace(s), rel=1e-10)


@pytest.mark.parametrize("d", [2, 5, 20])
def test_matches_scipy_sqrtm_formula(d: int) -> None:
    rng = np.random.default_rng(d)
    for _ in range(5):
        mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
        s1, s2 = _spd(rng, d), _spd(rng, d)
        assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(
            _fd_sqrtm(mu1, s1, mu2, s2), rel=1e-8, abs=1e-8
        )


def test_symmetric_and_zero_for_identical() -> None:
    rng = np.random.default_rng(2)
    mu1, mu2 = rng.normal(size=7), rng.normal(size=7)
    s1, s2 = _spd(rng, 7, cond=1e4), _spd(rng, 7)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(
        frechet_distance(mu2, s2, mu1, s1), rel=1e-10
    )
    assert frechet_distance(mu1, s1, mu1, s1) < 1e-10 * np.trace(s1)
    assert frechet_distance(mu1, s1, mu2, s2) > 0.0


def test_singular_covariances() -> None:
    """PSD (rank-deficient) covariances are allowed; the result stays finite and matches the
    closed form of a point mass vs. a Gaussian: ||dmu||^2 + tr S."""
    rng = np.random.default_rng(3)
    s = _spd(rng, 4)
    mu1, mu2 = rng.normal(size=4), rng.normal(size=4)
    zero = np.zeros((4, 4))
    expected = float(((mu1 - mu2) ** 2).sum() + np.trace(s))
    assert frechet_distance(mu1, zero, mu2, s) == pytest.approx(expected, rel=1e-12)
    v = rng.normal(size=(4, 1))
    rank1 = v @ v.T
    assert frechet_distance(mu1, rank1, mu1, rank1) < 1e-12 * np.trace(rank1)


def test_validation_names_the_value() -> None:
    eye = np.eye(3)
    with pytest.raises(ValueError, match=r"mu2 has shape \(2,\), expected \(3,\)"):
        frechet_distance(np.zeros(3), eye, np.zeros(2), eye)
    with pytest.raises(ValueError, match=r"cov2 has shape \(2, 2\)"):
        frechet_distance(np.zeros(3), eye, np.zeros(3), np.eye(2))
    with pytest.raises(ValueError, match=r"mu1\[1\] = nan is not finite"):
        frechet_distance(np.array([0.0, np.nan, 0.0]), eye, np.zeros(3), eye)
    with pytest.raises(ValueError, match=r"cov1 is not positive semi-definite"):
        frechet_distance(np.zeros(3), -eye, np.zeros(3), eye)
    with pytest.raises(ValueError, match=r"cov2 is not symmetric"):
        frechet_distance(np.zeros(3), eye, np.zeros(3), np.triu(np.ones((3, 3))))
    with pytest.raises(ValueError, match=r"shape \[n >= 2, d\]"):
        gaussian_moments(np.zeros(5))
    with pytest.raises(ValueError, match=r"dimension 3 but y has dimension 2"):
        frechet_distance_from_samples(np.zeros((4, 3)), np.zeros((4, 2)))


def test_gaussian_moments_matches_numpy() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(500, 6)) @ rng.normal(size=(6, 6))
    mean, cov = gaussian_moments(x)
    np.testing.assert_allclose(mean, x.mean(0), rtol=1e-13)
    np.testing.assert_allclose(cov, np.cov(x, rowvar=False), rtol=1e-12, atol=1e-13)
    # tensors (float32 too) give the same moments as float64 arrays
    m32, c32 = gaussian_moments(torch.as_tensor(x, dtype=torch.float32))
    np.testing.assert_allclose(c32, cov, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(m32, mean, rtol=1e-5, atol=1e-5)


def test_sample_invariances() -> None:
    """Invariant to sample order, to a common translation and to a common rotation."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(800, 5)) * rng.uniform(0.5, 2.0, size=5)
    y = rng.normal(size=(600, 5)) @ rng.normal(size=(5, 5)) + 0.3
    base = frechet_distance_from_samples(x, y)
    assert frechet_distance_from_samples(x[rng.permutation(800)], y[::-1]) == pytest.approx(
        base, rel=1e-10
    )
    shift = rng.normal(size=5)
    assert frechet_distance_from_samples(x + shift, y + shift) == pytest.approx(base, rel=1e-9)
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    assert frechet_distance_from_samples(x @ q.T, y @ q.T) == pytest.approx(base, rel=1e-9)
    # scaling both sets by c scales FD by c^2
    assert frechet_distance_from_samples(3 * x, 3 * y) == pytest.approx(9 * base, rel=1e-9)


def test_same_distribution_gives_small_distance() -> None:
    """Two large samples of one Gaussian: FD ~ O(d^2 / n) bias; different ones: clearly larger."""
    rng = np.random.default_rng(6)
    a = rng.normal(size=(20_000, 4))
    b = rng.normal(size=(20_000, 4))
    same = frechet_distance_from_samples(a, b)
    assert same < 5e-3
    assert frechet_distance_from_samples(a, 1.2 * b) > 10 * same


# ===================================================================== exact testbed metrics
@pytest.fixture(scope="module")
def mix() -> GaussianMixture:
    return GaussianMixture.random(4, 5, seed=3)


@pytest.fixture(scope="module")
def reference(mix: GaussianMixture) -> MixtureReference:
    return mixture_reference(mix, 100_000, torch.Generator().manual_seed(0))


def test_reference_log_likelihood_is_minus_entropy() -> None:
    """One Gaussian: E[log p] = -0.5 (d log(2 pi e) + log det S), exactly."""
    rng = np.random.default_rng(7)
    s = _spd(rng, 3, cond=10)
    one = GaussianMixture(np.ones(1), rng.normal(size=(1, 3)), s[None])
    ref = mixture_reference(one, 50_000, torch.Generator().manual_seed(1))
    exact = -0.5 * (3 * math.log(2 * math.pi * math.e) + np.linalg.slogdet(s)[1])
    assert abs(ref.log_likelihood - exact) < K_SE * ref.log_likelihood_sem
    np.testing.assert_array_equal(ref.mode_fractions, [1.0])


def test_true_samples_score_as_true(mix: GaussianMixture, reference: MixtureReference) -> None:
    x, _ = mix.sample(5000, torch.Generator().manual_seed(2))
    q = mixture_sample_quality(x, mix, reference=reference)
    assert abs(q.gap_z) < K_SE
    assert q.mode_chi2_pvalue > 1e-3
    # TV of 5000 multinomial draws: E ~ 0.5 sum sqrt(2 w (1 - w) / (pi n)) ~ 0.02
    assert q.mode_tv < 0.04
    # Frechet to the exact moments: sampling noise only, O(tr(Cov) / n)-ish
    assert q.frechet < 20 * np.trace(mix.covariance()) / 5000
    np.testing.assert_array_equal(q.mode_weights, mix.weights)
    assert q.n == 5000 and set(q.summary()) >= {"log_likelihood_gap", "frechet", "mode_tv"}
    # float32 tensors and numpy arrays give the same answer
    q32 = mixture_sample_quality(x.float().numpy(), mix, reference=reference)
    assert q32.log_likelihood == pytest.approx(q.log_likelihood, abs=1e-4)


def test_blurred_and_collapsed_samples_are_flagged(
    mix: GaussianMixture,
    reference: MixtureReference,
) -> None:
    gen = torch.Generator().manual_seed(3)
    x, labels = mix.sample(5000, gen)
    # blur: add noise -> samples in low-density regions, negative gap
    blurred = x + 0.1 * torch.randn(x.shape, generator=gen, dtype=x.dtype)
    qb = mixture_sample_quality(blurred, mix, reference=reference)
    assert qb.gap_z < -K_SE and qb.log_likelihood_gap < 0
    # collapse onto the means: positive gap
    sharp = torch.tensor(mix.means)[labels] + 0.3 * (x - torch.tensor(mix.means)[labels])
    qs = mixture_sample_quality(sharp, mix, reference=reference)
    assert qs.gap_z > K_SE
    # mode dropping: keep only two modes -> large TV, chi-square rejects, Frechet grows
    keep = x[labels < 2]
    qd = mixture_sample_quality(keep, mix, reference=reference)
    assert qd.mode_tv > 0.3 and qd.mode_chi2_pvalue < 1e-6
    q_true = mixture_sample_quality(x, mix, reference=reference)
    assert qd.frechet > 10 * q_true.frechet


def test_sample_quality_validation(mix: GaussianMixture, reference: MixtureReference) -> None:
    with pytest.raises(ValueError, match=r"samples must have shape \[n >= 2, d=4\]"):
        mixture_sample_quality(np.zeros((10, 3)), mix, reference=reference)
    bad = np.zeros((10, 4))
    bad[3, 2] = np.inf
    with pytest.raises(ValueError, match=r"samples\[3, 2\] = inf"):
        mixture_sample_quality(bad, mix, reference=reference)
    with pytest.raises(ValueError, match=r"n must be an integer >= 2, got 1"):
        mixture_reference(mix, 1)
