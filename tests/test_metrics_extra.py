"""Sliced Wasserstein distance (analytic shift, exact 1-D identities, invariances) and per-mode
coverage of the Gaussian-mixture testbed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vrg_analysis.evaluation.metrics import ModeCoverage, mode_coverage, sliced_wasserstein
from vrg_analysis.models.analytic import GaussianMixture


def _directions(seed: int, n_proj: int, d: int) -> np.ndarray:
    g = np.random.default_rng(seed).standard_normal((n_proj, d))
    return g / np.linalg.norm(g, axis=1, keepdims=True)


# ===================================================================== sliced Wasserstein
def test_shift_is_exact_per_direction() -> None:
    # y = x + c u: every projection is shifted by c (theta . u), so W2^2 = c^2 (theta . u)^2
    # exactly, and SW_2^2 = c^2 mean_theta (theta . u)^2 with the same directions.
    rng = np.random.default_rng(1)
    d, c = 6, 2.5
    x = rng.standard_normal((500, d))
    u = rng.standard_normal(d)
    u /= np.linalg.norm(u)
    sw = sliced_wasserstein(x, x + c * u, 300, np.random.default_rng(7))
    expected = c * np.sqrt(np.mean((_directions(7, 300, d) @ u) ** 2))
    assert sw == pytest.approx(expected, rel=1e-12)


def test_shift_matches_analytic_expectation() -> None:
    # Two independent Gaussians N(0, I) and N(c u, I): each direction's W2^2 tends to
    # c^2 (theta . u)^2, whose average over the sphere is c^2 / d. Against the same directions
    # the only error is the finite-sample error of the 1-D distances (measured +0.6% at
    # n = 5000); against c^2 / d the Monte Carlo error over directions adds:
    # (theta.u)^2 ~ Beta(1/2, (d-1)/2), sd 0.23 at d = 4, so 4% relative over 400 (measured
    # +2.7%).
    gen = torch.Generator().manual_seed(3)
    d, c, n, n_proj = 4, 3.0, 5000, 400
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    u = torch.tensor([1.0, 2.0, -1.0, 0.5], dtype=torch.float64)
    u /= u.norm()
    y = torch.randn(n, d, generator=gen, dtype=torch.float64) + c * u
    sw = sliced_wasserstein(x, y, n_proj, torch.Generator().manual_seed(0))
    g = torch.randn(n_proj, d, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    theta = g / g.norm(dim=1, keepdim=True)
    same_directions = c**2 * float(((theta @ u) ** 2).mean())
    assert sw**2 == pytest.approx(same_directions, rel=0.02)
    assert sw**2 == pytest.approx(c**2 / d, rel=0.16)  # 4 standard errors


def test_unequal_sizes_duplicated_sample() -> None:
    # Repeating every point of y twice leaves its empirical distribution unchanged.
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(40, 3)), rng.normal(1.0, 2.0, size=(40, 3))
    a = sliced_wasserstein(x, y, 64, np.random.default_rng(5))
    b = sliced_wasserstein(x, np.repeat(y, 2, axis=0), 64, np.random.default_rng(5))
    assert b == pytest.approx(a, rel=1e-12)


def test_unequal_sizes_against_quantile_integral() -> None:
    # 1-D: SW is W2 itself; compare with a midpoint rule on a fine quantile grid.
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(7, 1)), rng.exponential(size=(11, 1))
    u = (np.arange(770_000) + 0.5) / 770_000
    qx = np.sort(x[:, 0])[np.minimum((u * 7).astype(int), 6)]
    qy = np.sort(y[:, 0])[np.minimum((u * 11).astype(int), 10)]
    w2 = np.sqrt(np.mean((qx - qy) ** 2))
    assert sliced_wasserstein(x, y, 3) == pytest.approx(w2, rel=1e-9)


def test_invariances_and_zero() -> None:
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(100, 5)), rng.normal(size=(80, 5)) + 0.3
    g = lambda: np.random.default_rng(11)  # noqa: E731
    assert sliced_wasserstein(x, x, 50, g()) == 0.0
    assert sliced_wasserstein(x, y, 50, g()) == pytest.approx(sliced_wasserstein(y, x, 50, g()))
    assert sliced_wasserstein(3 * x, 3 * y, 50, g()) == pytest.approx(
        3 * sliced_wasserstein(x, y, 50, g())
    )
    # permuting the rows changes nothing; same generator seed gives the same value
    perm = rng.permutation(100)
    assert sliced_wasserstein(x[perm], y, 50, g()) == pytest.approx(
        sliced_wasserstein(x, y, 50, g()), rel=1e-12
    )


@pytest.mark.parametrize(
    ("x", "y", "kwargs", "match"),
    [
        (np.zeros((5, 2)), np.zeros((5, 3)), {}, "dimension"),
        (np.zeros(5), np.zeros((5, 1)), {}, "shape"),
        (np.zeros((5, 2)), np.zeros((5, 2)), {"n_projections": 0}, "n_projections"),
        (np.full((5, 2), np.nan), np.zeros((5, 2)), {}, "not finite"),
    ],
)
def test_sliced_wasserstein_bad_input(x, y, kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        sliced_wasserstein(x, y, **kwargs)


def test_sliced_wasserstein_bad_generator() -> None:
    with pytest.raises(TypeError, match="generator"):
        sliced_wasserstein(np.zeros((3, 2)), np.zeros((3, 2)), 4, generator=42)  # type: ignore[arg-type]


# ===================================================================== mode coverage
def test_mode_coverage_drops_missing_modes() -> None:
    mix = GaussianMixture.ring_2d(num_modes=8, radius=1.0, std=0.05)
    x, labels = mix.sample(4000, torch.Generator().manual_seed(0))
    full = mode_coverage(x, mix)
    assert isinstance(full, ModeCoverage)
    assert full.coverage == 1.0 and full.covered.all()
    assert full.mode_fractions.sum() == pytest.approx(1.0)
    kept = x[labels < 6]
    part = mode_coverage(kept, mix)
    assert part.coverage == pytest.approx(6 / 8)
    assert part.covered.tolist() == [True] * 6 + [False] * 2


def test_mode_coverage_threshold() -> None:
    # 8 equal modes: a mode holding 1/20 of the samples is covered at relative threshold 0.3
    # (needs 0.3 / 8 = 0.0375) but not at 0.5 (needs 0.0625), nor at absolute 0.1.
    mix = GaussianMixture.ring_2d(num_modes=8, radius=1.0, std=0.05)
    means = mix.means
    counts = [19, 19, 19, 19, 19, 19, 19, 7]  # 140 samples; mode 7 holds 1/20
    x = np.concatenate([np.repeat(means[i : i + 1], c, axis=0) for i, c in enumerate(counts)])
    assert mode_coverage(x, mix, threshold=0.3).coverage == 1.0
    assert mode_coverage(x, mix, threshold=0.5).coverage == pytest.approx(7 / 8)
    assert mode_coverage(x, mix, threshold=0.1, relative=False).coverage == pytest.approx(7 / 8)


def test_mode_coverage_bad_input() -> None:
    mix = GaussianMixture.ring_2d(num_modes=4)
    with pytest.raises(ValueError, match="threshold"):
        mode_coverage(np.zeros((3, 2)), mix, threshold=0.0)
    with pytest.raises(ValueError, match="shape"):
        mode_coverage(np.zeros((3, 3)), mix)
    with pytest.raises(TypeError, match="GaussianMixture"):
        mode_coverage(np.zeros((3, 2)), "ring")  # type: ignore[arg-type]
