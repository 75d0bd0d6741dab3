import numpy as np
import pytest
import torch
from analytic import GaussianOracle

from vrg_analysis import profile_prediction_error


def _data(n=4000, d=4, c=0.5, seed=0):
    return c * torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_profile_of_the_optimal_predictor_is_the_posterior_variance():
    """MSE of eps* is Var(eps | x_t) = a c^2 / (a c^2 + 1 - a), known in closed form."""
    oracle = GaussianOracle(c=0.5)
    ts = [0, 100, 400, 700, 999]
    prof = profile_prediction_error(
        oracle, _data(), ts, generator=torch.Generator().manual_seed(1), progress=False
    )
    expected = oracle.posterior_variance(prof.alpha_bar)
    lo, hi = prof.mse_confidence_interval(0.999)
    assert np.all((expected >= lo) & (expected <= hi))
    np.testing.assert_allclose(prof.mse, expected, rtol=0.05)
    # delta is Gaussian with mean 0 here: skewness ~ 0, excess kurtosis ~ 0
    assert np.all(np.abs(prof.mean) < 5 * np.sqrt(prof.variance / prof.count / 4))
    assert np.all(np.abs(prof.skewness) < 0.1) and np.all(np.abs(prof.kurtosis) < 0.2)
    assert np.all(prof.count == 4000)
    assert prof.metadata["n_samples"] == 4000 and len(prof.metadata["data_sha256"]) == 64


def test_profiling_is_deterministic_given_a_generator():
    oracle = GaussianOracle()
    data = _data(n=300)
    runs = [
        profile_prediction_error(
            oracle,
            data,
            [5, 500],
            batch_size=128,
            progress=False,
            generator=torch.Generator().manual_seed(7),
        ).mse
        for _ in range(2)
    ]
    np.testing.assert_array_equal(runs[0], runs[1])
    other = profile_prediction_error(
        oracle,
        data,
        [5, 500],
        batch_size=128,
        progress=False,
        generator=torch.Generator().manual_seed(8),
    ).mse
    assert not np.array_equal(runs[0], other)


def test_batches_mix_timesteps():
    """One model call covers several timesteps: 2 levels x 300 samples in 600-pair batches."""
    oracle = GaussianOracle()
    profile_prediction_error(oracle, _data(n=300), [5, 500], batch_size=600, progress=False)
    assert oracle.calls == 1


def test_profiling_bad_inputs():
    oracle = GaussianOracle()
    with pytest.raises(ValueError, match=r"timestep t\[1\] = 1000.0 is outside"):
        profile_prediction_error(oracle, _data(n=10), [0, 1000], progress=False)
    with pytest.raises(ValueError, match="data contains non-finite"):
        bad = _data(n=10)
        bad[3, 1] = float("nan")
        profile_prediction_error(oracle, bad, [0], progress=False)
    with pytest.raises(TypeError, match="data must be a torch.Tensor"):
        profile_prediction_error(oracle, np.zeros((4, 2)), [0], progress=False)
