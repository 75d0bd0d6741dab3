"""The exact Gaussian-mixture testbed: densities, the optimal predictor, the planted-error model,
the reference probability-flow ODE, and the acceptance test (DDIM with eps* reproduces the data).

Statistical assertions state their tolerance as k standard errors of a Monte-Carlo estimate; all
draws come from fixed seeds, so each test is deterministic.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from vrg_analysis.core.schedules import NoiseSchedule
from vrg_analysis.core.trajectories import logsnr_uniform
from vrg_analysis.evaluation.metrics import mixture_reference, mixture_sample_quality
from vrg_analysis.models import EpsModel
from vrg_analysis.models.analytic import (
    GaussianMixture,
    OptimalEpsModel,
    PlantedErrorModel,
    reference_ode_endpoint,
)
from vrg_analysis.profiling import profile_prediction_error
from vrg_analysis.samplers import sample_ddim
from vrg_analysis.testbeds import MIXTURES, MixtureTestbed, make_testbed

K_SE = 4.0  # tolerance of statistical assertions, in standard errors


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _random_spd(rng: np.random.Generator, d: int, lo: float = 0.05, hi: float = 0.5) -> np.ndarray:
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return (q * rng.uniform(lo, hi, size=d)) @ q.T


@pytest.fixture(scope="module")
def mix8() -> GaussianMixture:
    return GaussianMixture.random(8, 8, seed=0)


@pytest.fixture(scope="module")
def ring() -> GaussianMixture:
    return GaussianMixture.ring_2d()


# ===================================================================== the mixture
def test_validation_names_the_offending_component() -> None:
    eye = np.eye(2)
    good_means = np.zeros((2, 2))
    with pytest.raises(ValueError, match=r"sum to 1, got sum 0\.9"):
        GaussianMixture(np.array([0.5, 0.4]), good_means, np.stack([eye, eye]))
    with pytest.raises(ValueError, match=r"weights\[1\] = -0\.5"):
        GaussianMixture(np.array([1.5, -0.5]), good_means, np.stack([eye, eye]))
    bad = np.array([[1.0, 0.0], [0.0, -1.0]])
    with pytest.raises(ValueError, match=r"covs\[1\] is not positive definite"):
        GaussianMixture(np.array([0.5, 0.5]), good_means, np.stack([eye, bad]))
    asym = np.array([[1.0, 0.5], [0.0, 1.0]])
    with pytest.raises(ValueError, match=r"covs\[0\] is not symmetric"):
        GaussianMixture(np.array([0.5, 0.5]), good_means, np.stack([asym, eye]))
    with pytest.raises(ValueError, match=r"means\[1\] = .*nan"):
        GaussianMixture(np.array([0.5, 0.5]), np.array([[0, 0], [0, np.nan]]), np.stack([eye, eye]))
    with pytest.raises(ValueError, match=r"covs must have shape \[m=2, d=2, d=2\]"):
        GaussianMixture(np.array([0.5, 0.5]), good_means, np.stack([np.eye(3), np.eye(3)]))


def test_json_round_trip(mix8: GaussianMixture) -> None:
    back = GaussianMixture.from_dict(json.loads(json.dumps(mix8.to_dict())))
    for name in ("weights", "means", "covs"):
        np.testing.assert_array_equal(getattr(back, name), getattr(mix8, name))
    with pytest.raises(ValueError, match=r"needs \['covs'\]"):
        GaussianMixture.from_dict({"weights": [1.0], "means": [[0.0]]})


def test_mixture_is_immutable(ring: GaussianMixture) -> None:
    with pytest.raises(ValueError):
        ring.means[0, 0] = 5.0
    with pytest.raises(AttributeError):
        ring.weights = np.ones(8) / 8  # type: ignore[misc]


def test_log_prob_matches_scipy_and_normalises(
    mix8: GaussianMixture, ring: GaussianMixture
) -> None:
    x, _ = mix8.sample(500, _gen(0))
    ours = mix8.log_prob(x).numpy()
    dens = sum(
        w * multivariate_normal(m, c).pdf(x.numpy())
        for w, m, c in zip(mix8.weights, mix8.means, mix8.covs, strict=True)
    )
    np.testing.assert_allclose(ours, np.log(dens), rtol=1e-10, atol=1e-10)
    # 2-D density integrates to one on a grid covering the ring
    g = np.linspace(-2.0, 2.0, 401)
    xx, yy = np.meshgrid(g, g)
    pts = torch.as_tensor(np.stack([xx.ravel(), yy.ravel()], axis=1))
    mass = float(ring.log_prob(pts).exp().sum()) * (g[1] - g[0]) ** 2
    assert mass == pytest.approx(1.0, abs=1e-6)


def test_sample_moments_and_labels(mix8: GaussianMixture) -> None:
    n = 100_000
    x, labels = mix8.sample(n, _gen(1))
    assert x.dtype == torch.float64 and x.shape == (n, 8)
    frac = np.bincount(labels.numpy(), minlength=8) / n
    se = np.sqrt(mix8.weights * (1 - mix8.weights) / n)
    assert np.all(np.abs(frac - mix8.weights) < K_SE * se)
    mean = x.mean(0).numpy()
    se_mean = np.sqrt(np.diag(mix8.covariance()) / n)
    assert np.all(np.abs(mean - mix8.mean()) < K_SE * se_mean)
    cov = np.cov(x.numpy(), rowvar=False)
    # each covariance entry's standard error is below sqrt(E[x_i^2 x_j^2] / n) <~ 3 max var / sqrt n
    assert np.abs(cov - mix8.covariance()).max() < K_SE * 3 * np.diag(cov).max() / math.sqrt(n)
    # same generator seed -> same numbers
    x2, labels2 = mix8.sample(n, _gen(1))
    assert torch.equal(x, x2) and torch.equal(labels, labels2)


@pytest.mark.parametrize("a", [0.02, 0.3, 0.9])
def test_noisy_marginal_moments_match_monte_carlo(mix8: GaussianMixture, a: float) -> None:
    noisy = mix8.noisy(a)
    # exact relations (T1)
    np.testing.assert_allclose(noisy.mean(), math.sqrt(a) * mix8.mean(), atol=1e-14)
    np.testing.assert_allclose(
        noisy.covariance(), a * mix8.covariance() + (1 - a) * np.eye(8), atol=1e-13
    )
    # Monte Carlo of sqrt(a) x0 + sqrt(1 - a) eps
    n = 100_000
    gen = _gen(2)
    x0, _ = mix8.sample(n, gen)
    x_t = math.sqrt(a) * x0 + math.sqrt(1 - a) * torch.randn(
        x0.shape, generator=gen, dtype=x0.dtype
    )
    mean_se = np.sqrt(np.diag(noisy.covariance()) / n)
    assert np.all(np.abs(x_t.mean(0).numpy() - noisy.mean()) < K_SE * mean_se)
    cov = np.cov(x_t.numpy(), rowvar=False)
    assert np.abs(cov - noisy.covariance()).max() < K_SE * 3 * np.diag(cov).max() / math.sqrt(n)
    # and its density is the density of that sum: compare mean log-likelihoods of x_t
    assert float(noisy.log_prob(x_t).mean()) > float(
        mix8.noisy(min(a * 1.5, 1.0)).log_prob(x_t).mean()
    )


# ===================================================================== eps*
@pytest.mark.parametrize("a", [1e-4, 0.1, 0.5, 0.99, 0.9999])
def test_optimal_eps_is_scaled_score(mix8: GaussianMixture, a: float) -> None:
    """(T2): eps* = -sqrt(1 - a) grad log p_a, by autograd of the noisy density."""
    gen = _gen(3)
    x0, _ = mix8.sample(300, gen)
    x = math.sqrt(a) * x0 + math.sqrt(1 - a) * torch.randn(x0.shape, generator=gen, dtype=x0.dtype)
    x.requires_grad_(True)
    (grad,) = torch.autograd.grad(mix8.noisy(a).log_prob(x).sum(), x)
    expected = -math.sqrt(1 - a) * grad
    got = mix8.optimal_eps(x.detach(), a)
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-9)


def test_optimal_eps_per_row_levels(mix8: GaussianMixture) -> None:
    x, _ = mix8.sample(40, _gen(4))
    a = torch.linspace(0.01, 0.99, 40, dtype=torch.float64)
    rowwise = mix8.optimal_eps(x, a)
    for i in (0, 17, 39):
        torch.testing.assert_close(rowwise[i], mix8.optimal_eps(x[i : i + 1], float(a[i]))[0])


def test_optimal_eps_single_gaussian_closed_form() -> None:
    rng = np.random.default_rng(5)
    d = 4
    s, mu = _random_spd(rng, d), rng.normal(size=d)
    mix = GaussianMixture(np.ones(1), mu[None], s[None])
    x = rng.normal(size=(50, d))
    for a in (0.05, 0.5, 0.95):
        c = a * s + (1 - a) * np.eye(d)
        expected = math.sqrt(1 - a) * np.linalg.solve(c, (x - math.sqrt(a) * mu).T).T
        np.testing.assert_allclose(mix.optimal_eps(x, a).numpy(), expected, rtol=1e-11, atol=1e-12)


def test_far_out_points_are_stable(mix8: GaussianMixture, ring: GaussianMixture) -> None:
    rng = np.random.default_rng(6)
    for mix in (mix8, ring):
        u = rng.normal(size=(64, mix.dim))
        x = torch.as_tensor(1e3 * u / np.linalg.norm(u, axis=1, keepdims=True))
        for a in (1e-4, 0.5, 0.9999, 1.0):
            r = mix.responsibilities(x, a)
            assert torch.isfinite(r).all()
            torch.testing.assert_close(r.sum(1), torch.ones(64, dtype=torch.float64))
            assert torch.isfinite(mix.optimal_eps(x, a)).all()
        lp = mix.log_prob(x)
        assert torch.isfinite(lp).all() and (lp < -1e4).all()
    # on a single Gaussian, far out eps* still equals the closed form (no softmax under/overflow)
    one = GaussianMixture(np.ones(1), np.zeros((1, 2)), (0.01 * np.eye(2))[None])
    x = torch.tensor([[1e3, -1e3]], dtype=torch.float64)
    a = 0.9
    expected = math.sqrt(1 - a) * x / (a * 0.01 + 1 - a)
    torch.testing.assert_close(one.optimal_eps(x, a), expected)


def test_optimal_eps_rejects_bad_levels(ring: GaussianMixture) -> None:
    x = torch.zeros(3, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"alpha_bar\[1\] = 1\.5"):
        ring.optimal_eps(x, torch.tensor([0.5, 1.5, 0.5]))
    with pytest.raises(ValueError, match=r"shape \[n, d=2\]"):
        ring.optimal_eps(torch.zeros(3, 3), 0.5)
    with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
        ring.noisy(-0.1)


def test_oracle_model_follows_the_schedule(mix8: GaussianMixture) -> None:
    sched = NoiseSchedule.linear()
    model = OptimalEpsModel(mix8, sched)
    assert isinstance(model, EpsModel)
    x, _ = mix8.sample(16, _gen(7))
    t = torch.linspace(0.0, 999.0, 16, dtype=torch.float64) * 0.9973  # fractional timesteps
    expected = mix8.optimal_eps(x, torch.as_tensor(sched.alpha_bar(t.numpy())))
    torch.testing.assert_close(model(x, t), expected, rtol=1e-14, atol=1e-14)
    out32 = model(x.float(), t.float())
    assert out32.dtype == torch.float32
    torch.testing.assert_close(out32, expected.float(), rtol=1e-4, atol=1e-5)


# ===================================================================== irreducible spread
def test_spread_single_gaussian_is_exact_and_limits() -> None:
    rng = np.random.default_rng(8)
    s = _random_spd(rng, 3)
    mix = GaussianMixture(np.ones(1), rng.normal(size=(1, 3)), s[None])
    levels = np.array([1e-4, 0.3, 0.9999])
    est = mix.optimal_eps_variance(levels, 64, _gen(8))
    # one component: Var(eps | x_t) = I - (1 - a) C^{-1} does not depend on x_t
    for a, v, se in zip(levels, est.mse, est.sem, strict=True):
        c = a * s + (1 - a) * np.eye(3)
        assert v == pytest.approx(np.trace(np.eye(3) - (1 - a) * np.linalg.inv(c)) / 3, rel=1e-10)
        assert se < 1e-12
    assert est.mse[0] < 1e-3 and est.mse[-1] > 0.99  # eps is known at high noise, not at low


def test_spread_matches_direct_monte_carlo(mix8: GaussianMixture) -> None:
    """(T3) Rao-Blackwellised spread vs. the plain average of ||eps - eps*||^2 / d."""
    a, n = 0.3, 40_000
    est = mix8.optimal_eps_variance(a, 4000, _gen(9))
    gen = _gen(10)
    x0, _ = mix8.sample(n, gen)
    eps = torch.randn(x0.shape, generator=gen, dtype=x0.dtype)
    x_t = math.sqrt(a) * x0 + math.sqrt(1 - a) * eps
    per = ((eps - mix8.optimal_eps(x_t, a)) ** 2).mean(1)
    direct, direct_se = float(per.mean()), float(per.std() / math.sqrt(n))
    assert abs(est.mse[0] - direct) < K_SE * math.hypot(est.sem[0], direct_se)
    assert est.sem[0] < direct_se  # conditioning on x_t lowers the variance even with 10x fewer


# ===================================================================== planted errors
def test_profiled_error_is_spread_plus_planted(mix8: GaussianMixture) -> None:
    """(P2): the profiled MSE = irreducible spread + std^2 + mean(bias^2), within sampling error."""
    sched = NoiseSchedule.linear()
    oracle = OptimalEpsModel(mix8, sched)
    bias = np.linspace(-0.2, 0.2, 8)

    def std(a: np.ndarray) -> np.ndarray:
        return 0.2 + 0.3 * (1 - a)

    planted = PlantedErrorModel(oracle, std=std, bias=bias, seed=3)
    data, _ = mix8.sample(3000, _gen(11))
    ts = [0, 100, 400, 700, 999]
    prof = profile_prediction_error(planted, data, ts, generator=_gen(12), progress=False)
    spread = mix8.optimal_eps_variance(prof.alpha_bar, 20_000, _gen(13))
    expected = spread.mse + planted.known_error_variance(prof.alpha_bar)
    z = (prof.mse - expected) / np.hypot(prof.mse_sem, spread.sem)
    assert np.all(np.abs(z) < K_SE), z
    # the planted part is not negligible: without it the check would fail at every level
    assert np.all(np.abs(prof.mse - spread.mse) / np.hypot(prof.mse_sem, spread.sem) > K_SE)
    # and the oracle alone reproduces the spread
    prof0 = profile_prediction_error(oracle, data, ts, generator=_gen(12), progress=False)
    assert np.all(np.abs(prof0.mse - spread.mse) < K_SE * np.hypot(prof0.mse_sem, spread.sem))


@pytest.mark.parametrize("rho", [0.0, 0.6, -0.4])
def test_planted_noise_is_ar1_across_calls(mix8: GaussianMixture, rho: float) -> None:
    sched = NoiseSchedule.linear()
    oracle = OptimalEpsModel(mix8, sched)
    model = PlantedErrorModel(oracle, std=0.5, step_correlation=rho, seed=1)
    x, _ = mix8.sample(4000, _gen(14))
    t = torch.full((4000,), 500.0, dtype=torch.float64)
    base = oracle(x, t)
    errs = [(model(x, t) - base) / 0.5 for _ in range(3)]
    e0, e1, e2 = (e.reshape(-1) for e in errs)
    n = e0.numel()
    se = 1 / math.sqrt(n)
    assert float(e0.var()) == pytest.approx(1.0, abs=K_SE * math.sqrt(2 / n))
    assert abs(float(torch.corrcoef(torch.stack([e0, e1]))[0, 1]) - rho) < K_SE * se
    assert abs(float(torch.corrcoef(torch.stack([e0, e2]))[0, 1]) - rho**2) < K_SE * se
    # a batch shape change restarts the chain: the next call is independent of the first
    model(x[:10], t[:10])
    e3 = ((model(x, t) - base) / 0.5).reshape(-1)
    assert abs(float(torch.corrcoef(torch.stack([e0, e3]))[0, 1])) < K_SE * se


def test_planted_reset_reproduces(mix8: GaussianMixture) -> None:
    oracle = OptimalEpsModel(mix8, NoiseSchedule.linear())
    model = PlantedErrorModel(oracle, std=0.2, bias=0.1, step_correlation=0.5, seed=4)
    x, _ = mix8.sample(32, _gen(15))
    t = torch.full((32,), 300.0, dtype=torch.float64)
    first = [model(x, t) for _ in range(3)]
    model.reset()
    again = [model(x, t) for _ in range(3)]
    for u, v in zip(first, again, strict=True):
        assert torch.equal(u, v)
    model.reset(seed=5)
    other = model(x, t)
    assert not torch.allclose(other, first[0])
    model.reset(seed=5)
    assert torch.equal(model(x, t), other)
    # the bias is what is added on average: 200 calls x 32 rows, AR(1) with rho = 0.5 inflates
    # the variance of the mean by (1 + rho) / (1 - rho) = 3: se = 0.2 * sqrt(3 / 6400)
    model.reset()
    mean_err = torch.stack([model(x, t) - oracle(x, t) for _ in range(200)]).mean((0, 1))
    se = 0.2 * math.sqrt(3 / 6400)
    assert torch.all((mean_err - 0.1).abs() < K_SE * se), mean_err


def test_planted_validation(mix8: GaussianMixture) -> None:
    oracle = OptimalEpsModel(mix8, NoiseSchedule.linear())
    with pytest.raises(ValueError, match=r"std must be .* got -0\.5"):
        PlantedErrorModel(oracle, std=-0.5)
    with pytest.raises(ValueError, match=r"got nan"):
        PlantedErrorModel(oracle, std=float("nan"))
    with pytest.raises(ValueError, match=r"\|rho\| < 1, got 1\.0"):
        PlantedErrorModel(oracle, step_correlation=1.0)
    with pytest.raises(ValueError, match=r"bias must be finite, got .*inf"):
        PlantedErrorModel(oracle, bias=[0.0, float("inf")])
    bad_std = PlantedErrorModel(oracle, std=lambda a: a - 0.5)
    x = torch.zeros(4, 8, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"std\(4\.0.*e-05\) = -0\.4999"):
        bad_std(x, torch.full((4,), 999.0, dtype=torch.float64))
    wrong_d = PlantedErrorModel(oracle, bias=np.zeros(3))
    with pytest.raises(ValueError, match=r"bias has 3 entries"):
        wrong_d(x, torch.zeros(4, dtype=torch.float64))
    np.testing.assert_allclose(
        PlantedErrorModel(oracle, std=0.3, bias=[0.1, 0.3]).known_error_variance([0.2, 0.7]),
        0.09 + 0.05,
    )


# ===================================================================== reference ODE
def test_reference_ode_matches_gaussian_flow_map() -> None:
    """(T4) for one component the flow is linear:
    y(sigma) = mu + (S + sigma^2)^{1/2} (S + sigma_T^2)^{-1/2} (y_T - mu)."""
    rng = np.random.default_rng(16)
    d = 3
    s, mu = _random_spd(rng, d, 0.01, 0.3), rng.normal(size=d)
    mix = GaussianMixture(np.ones(1), mu[None], s[None])
    a_t = NoiseSchedule.linear().alpha_bar_min
    sigma_t2 = (1 - a_t) / a_t
    x_t = rng.normal(size=(20, d))
    got = reference_ode_endpoint(mix, torch.as_tensor(x_t), a_t).numpy()

    def sqrtm_spd(m: np.ndarray) -> np.ndarray:
        vals, vecs = np.linalg.eigh(m)
        return (vecs * np.sqrt(vals)) @ vecs.T

    flow = sqrtm_spd(s) @ np.linalg.inv(sqrtm_spd(s + sigma_t2 * np.eye(d)))
    expected = mu + (x_t / math.sqrt(a_t) - mu) @ flow.T
    np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)


def test_ddim_converges_to_reference_at_first_order(ring: GaussianMixture) -> None:
    bed = make_testbed("mixture-2d")
    a_t = bed.schedule.alpha_bar_min
    x_t = torch.randn(64, 2, generator=_gen(17), dtype=torch.float64)
    ref = reference_ode_endpoint(bed.mixture, x_t, a_t)
    errs = []
    for k in (25, 50, 100, 200):
        traj = logsnr_uniform(bed.schedule, k)
        assert traj.alpha_bar[0] == pytest.approx(a_t, rel=1e-12)
        errs.append(float((sample_ddim(bed.oracle, x_t, traj) - ref).norm(dim=1).mean()))
    ratios = np.array(errs[:-1]) / np.array(errs[1:])
    # Euler in sigma (DDIM) is first order: halving the step roughly halves the error
    assert np.all((ratios > 1.7) & (ratios < 2.3)), (errs, ratios)


def test_reference_ode_validation(ring: GaussianMixture) -> None:
    x = torch.zeros(2, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"alpha_bar_T = 1\.0"):
        reference_ode_endpoint(ring, x, 1.0)
    with pytest.raises(ValueError, match=r"shape \[n, d=2\]"):
        reference_ode_endpoint(ring, torch.zeros(2, 3), 0.5)
    with pytest.raises(ValueError, match=r"rtol must be a positive number, got 0"):
        reference_ode_endpoint(ring, x, 0.5, rtol=0)


# ===================================================================== acceptance test
@pytest.mark.parametrize("name", ["mixture-2d", "mixture-8d"])
def test_ddim_with_optimal_eps_reproduces_mixture(name: str) -> None:
    """Acceptance: DDIM (K = 200, logSNR-uniform, linear schedule) with eps* from x_T ~ N(0, I)
    reproduces the mixture. Tolerance: |mean log p(samples) - E_p[log p]| < 4 combined standard
    errors; mode counts pass a chi-square test at the 0.1% level; mode TV below 0.05.

    Known floor (not a failure at this n): the last DDIM step jumps from the schedule's least
    noisy level (sigma = 0.01) to sigma = 0 in one Euler step, which over-contracts components of
    std s by ~ sigma^2 / s^2; on mixture-8d (smallest std 0.05) this sharpens the samples by about
    +0.04 nats, about one standard error at n = 3000, for any K.
    """
    bed = make_testbed(name)
    ref = mixture_reference(bed.mixture, 100_000, _gen(18))
    x_t = torch.randn(3000, bed.dim, generator=_gen(19), dtype=torch.float64)
    samples = sample_ddim(bed.oracle, x_t, logsnr_uniform(bed.schedule, 200))
    q = mixture_sample_quality(samples, bed.mixture, reference=ref)
    assert abs(q.gap_z) < K_SE, q.summary()
    assert q.mode_chi2_pvalue > 1e-3 and q.mode_tv < 0.05, q.summary()
    # negative control: the same check rejects a coarse sampler (K = 10)
    coarse = sample_ddim(bed.oracle, x_t, logsnr_uniform(bed.schedule, 10))
    qc = mixture_sample_quality(coarse, bed.mixture, reference=ref)
    assert abs(qc.gap_z) > K_SE, qc.summary()


def test_reference_ode_from_prior_reproduces_ring() -> None:
    bed = make_testbed("mixture-2d")
    x_t = torch.randn(1000, 2, generator=_gen(20), dtype=torch.float64)
    samples = reference_ode_endpoint(bed.mixture, x_t, bed.schedule.alpha_bar_min)
    q = mixture_sample_quality(samples, bed.mixture, n_reference=100_000, generator=_gen(21))
    assert abs(q.gap_z) < K_SE and q.mode_chi2_pvalue > 1e-3, q.summary()


# ===================================================================== registry
def test_registry() -> None:
    assert set(MIXTURES) == {"mixture-2d", "mixture-8d"}
    for name in MIXTURES:
        bed = make_testbed(name)
        assert isinstance(bed, MixtureTestbed) and bed.name == name
        assert isinstance(bed.oracle, EpsModel) and bed.oracle.schedule is bed.schedule
        assert bed.schedule.name == "linear"
    assert make_testbed("mixture-8d").dim == 8 and make_testbed("mixture-2d").dim == 2
    a = make_testbed("mixture-8d", seed=1).mixture.means
    assert np.array_equal(a, make_testbed("mixture-8d", seed=1).mixture.means)
    assert not np.array_equal(a, make_testbed("mixture-8d", seed=2).mixture.means)
    with pytest.raises(ValueError, match=r"'nope'.*mixture-2d.*mixture-8d"):
        make_testbed("nope")


def test_random_mixture_properties() -> None:
    mix = GaussianMixture.random(8, 8, seed=0)
    gaps = np.linalg.norm(mix.means[:, None] - mix.means[None], axis=-1)
    assert gaps[np.triu_indices(8, 1)].min() >= 1.0
    eig = np.linalg.eigvalsh(mix.covs)
    cond = eig[:, -1] / eig[:, 0]
    assert np.all(cond > 2.0)  # anisotropic
    assert mix.weights.min() > 0.5 / 8
    ring = GaussianMixture.ring_2d()
    assert np.abs(ring.sample(10_000, _gen(22))[0].numpy()).max() < 1.6


def test_empirical_optimal_predictor_matches_brute_force_and_conditions_on_labels():
    from vrg_analysis.models.analytic import EmpiricalOptimalEpsModel

    sched = NoiseSchedule.linear()
    g = torch.Generator().manual_seed(0)
    pts = torch.randn(9, 3, generator=g, dtype=torch.float64)
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2])
    ref = EmpiricalOptimalEpsModel(pts, sched, labels=labels, null_label=7, chunk_rows=2)
    x = torch.randn(5, 3, generator=g, dtype=torch.float64)
    t = torch.full((5,), 400.0, dtype=torch.float64)
    a = float(sched.alpha_bar(400.0))

    def brute(rows):
        logits = -((x[:, None] - math.sqrt(a) * pts[rows][None]) ** 2).sum(-1) / (2 * (1 - a))
        post = torch.softmax(logits, dim=1)
        return (x - math.sqrt(a) * post @ pts[rows]) / math.sqrt(1 - a)

    torch.testing.assert_close(ref(x, t), brute(slice(None)))
    y = torch.tensor([1, 1, 1, 1, 7])  # 7: no such class (a "no label" token): all rows
    out = ref(x, t, y=y)
    torch.testing.assert_close(out[:4], brute(slice(3, 6))[:4])
    torch.testing.assert_close(out[4:], brute(slice(None))[4:])
    with pytest.raises(ValueError, match="has no labels: build it with labels="):
        EmpiricalOptimalEpsModel(pts, sched)(x, t, y=y)


def test_empirical_optimal_predictor_refuses_unknown_labels_and_keywords():
    from vrg_analysis.models.analytic import EmpiricalOptimalEpsModel

    sched = NoiseSchedule.linear()
    pts = torch.randn(4, 2, dtype=torch.float64)
    ref = EmpiricalOptimalEpsModel(pts, sched, labels=torch.tensor([0, 0, 1, 1]), null_label=9)
    x, t = torch.zeros(2, 2, dtype=torch.float64), torch.full((2,), 100.0)
    with pytest.raises(ValueError, match=r"label 5 has no data rows \(known labels \[0, 1\]"):
        ref(x, t, y=torch.tensor([0, 5]))
    torch.testing.assert_close(
        ref(x, t, class_labels=torch.tensor([1, 9])), ref(x, t, y=torch.tensor([1, 9]))
    )
    with pytest.raises(TypeError):
        ref(x, t, labels=torch.tensor([0, 1]))
