import numpy as np
import pytest

from vrg_analysis import NoiseSchedule
from vrg_analysis.core.schedules import (
    alpha_bar_from_lambda,
    alpha_bar_from_sigma,
    lambda_from_alpha_bar,
    sigma_from_alpha_bar,
)


@pytest.mark.parametrize("name", ["linear", "cosine", "scaled_linear"])
def test_schedules_match_diffusers(name):
    """Cross-check with diffusers' DDPMScheduler alphas_cumprod (a test extra)."""
    diffusers = pytest.importorskip("diffusers")
    beta_schedule = {"cosine": "squaredcos_cap_v2"}.get(name, name)
    kw = {} if name != "scaled_linear" else {"beta_start": 0.00085, "beta_end": 0.012}
    ref = diffusers.DDPMScheduler(num_train_timesteps=1000, beta_schedule=beta_schedule, **kw)
    mine = NoiseSchedule.from_name(name)
    # diffusers computes in float32: agreement to float32 precision.
    np.testing.assert_allclose(mine.alphas_cumprod, ref.alphas_cumprod.double().numpy(), rtol=2e-5)


def test_linear_endpoints_ddpm():
    s = NoiseSchedule.linear()
    assert s.num_timesteps == 1000
    assert s.alpha_bar(0) == pytest.approx(1 - 1e-4, rel=1e-12)
    # alpha_bar at t=999 for DDPM's linear schedule, as printed in the official files: 0.00004036
    assert s.alpha_bar(999) == pytest.approx(4.036e-5, rel=2e-3)


def test_fractional_t_interpolates_log_alpha_bar():
    s = NoiseSchedule.linear()
    lo, hi = np.log(s.alpha_bar(10)), np.log(s.alpha_bar(11))
    assert np.log(s.alpha_bar(10.25)) == pytest.approx(0.75 * lo + 0.25 * hi, rel=1e-12)


@pytest.mark.parametrize("name", ["linear", "cosine", "scaled_linear"])
def test_round_trips(name):
    s = NoiseSchedule.from_name(name)
    t = np.linspace(0, s.t_max, 777)
    np.testing.assert_allclose(s.t_from_alpha_bar(s.alpha_bar(t)), t, atol=1e-8)
    np.testing.assert_allclose(s.t_from_sigma(s.sigma(t)), t, atol=1e-8)
    np.testing.assert_allclose(s.t_from_lambda(s.lambda_(t)), t, atol=1e-8)
    a = s.alpha_bar(t)
    np.testing.assert_allclose(alpha_bar_from_sigma(sigma_from_alpha_bar(a)), a, rtol=1e-12)
    np.testing.assert_allclose(alpha_bar_from_lambda(lambda_from_alpha_bar(a)), a, rtol=1e-12)
    np.testing.assert_allclose(s.lambda_(t), -np.log(s.sigma(t)), rtol=1e-10, atol=1e-12)


def test_bad_inputs_name_the_value():
    s = NoiseSchedule.linear()
    with pytest.raises(ValueError, match=r"t\[1\] = 1000.0"):
        s.alpha_bar([3.0, 1000.0])
    with pytest.raises(ValueError, match="nan"):
        s.alpha_bar(np.nan)
    with pytest.raises(ValueError, match="outside this schedule's range"):
        s.t_from_alpha_bar(0.99999)
    with pytest.raises(ValueError, match="unknown schedule name 'quadratic'"):
        NoiseSchedule.from_name("quadratic")
    with pytest.raises(ValueError, match="strictly decreasing"):
        NoiseSchedule(np.array([0.9, 0.95, 0.5]))
    with pytest.raises(ValueError, match=r"betas\[1\] = 1.5"):
        NoiseSchedule.from_betas([0.1, 1.5, 0.2])
