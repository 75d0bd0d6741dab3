"""Profile decomposition on the exact testbed: w = spread + model error + cross (D1).

Known answers: a planted model ``eps* + std z`` has model error ``std^2`` (P2) and a planted bias
``b`` has model error ``mean(b^2)`` exactly; the spread matches the Rao-Blackwellised
``optimal_eps_variance`` (an independent estimator); the exact model has no model error; the
parts add up per sample; CPE's split agrees with :mod:`vrg_analysis.cpe`.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from vrg_analysis.assumptions import (
    CPEShares,
    ProfileDecomposition,
    cpe_shares,
    decompose_profile,
)
from vrg_analysis.core.cpe import cumulative_prediction_error, step_coefficients
from vrg_analysis.core.trajectories import Trajectory, time_quadratic
from vrg_analysis.models.analytic import PlantedErrorModel
from vrg_analysis.testbeds import make_testbed

LEVELS = np.array([0.02, 0.3, 0.8, 0.97])
N = 20_000


# tiny batched float64 work: thread overhead dominates on a shared CPU
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def bed(one_torch_thread):
    return make_testbed("mixture-2d")


@pytest.fixture(scope="module")
def planted(bed) -> ProfileDecomposition:
    model = PlantedErrorModel(bed.oracle, std=0.2, seed=5)
    return decompose_profile(model, bed, LEVELS, n=N, generator=torch.Generator().manual_seed(1))


def test_parts_add_up_per_level(planted):
    np.testing.assert_allclose(
        planted.total, planted.spread + planted.model_error + planted.cross, rtol=1e-12
    )
    assert planted.n == N and planted.num_levels == len(LEVELS)
    np.testing.assert_array_equal(planted.alpha_bar, LEVELS)


def test_planted_model_error_is_known(planted):
    # (P2): the planted error std * z is the model's whole error: E||std z||^2 / d = std^2
    assert np.all(np.abs(planted.model_error - 0.04) < 5 * planted.model_error_se)
    np.testing.assert_allclose(planted.model_error, 0.04, rtol=0.05)
    # the cross term vanishes in expectation (E[eps* - eps | x_t] = 0, z independent)
    assert np.all(np.abs(planted.cross_z) < 5)
    assert np.all(planted.cross_se > 0)


def test_spread_matches_the_rao_blackwellised_estimate(bed, planted):
    ref = bed.mixture.optimal_eps_variance(LEVELS, N, torch.Generator().manual_seed(9))
    se = np.sqrt(planted.spread_se**2 + ref.sem**2)
    assert np.all(np.abs(planted.spread - ref.mse) < 5 * se)
    # the spread rises with alpha_bar at first: nothing to predict at pure noise (eps* = x)
    assert planted.spread[0] < planted.spread[1]


def test_exact_model_has_no_model_error(bed):
    dec = decompose_profile(
        bed.oracle, bed.mixture, LEVELS, n=2000, generator=torch.Generator().manual_seed(2)
    )
    assert np.all(dec.model_error < 1e-20)
    np.testing.assert_allclose(dec.total, dec.spread, rtol=1e-9)
    assert np.all(dec.spread > 0)
    np.testing.assert_allclose(dec.model_share, 0.0, atol=1e-18)


def test_planted_bias_gives_exactly_its_mean_square(bed):
    bias = np.array([0.1, -0.2])
    model = PlantedErrorModel(bed.oracle, bias=bias)
    dec = decompose_profile(model, bed, LEVELS, n=500, generator=torch.Generator().manual_seed(3))
    np.testing.assert_allclose(dec.model_error, np.mean(bias**2), rtol=1e-9)
    np.testing.assert_allclose(dec.model_error_se, 0.0, atol=1e-12)


def test_same_generator_seed_same_numbers(bed):
    a, b = (
        decompose_profile(bed.oracle, bed, [0.5], n=300, generator=torch.Generator().manual_seed(4))
        for _ in range(2)
    )
    np.testing.assert_array_equal(a.total, b.total)


def test_cpe_shares_agree_with_the_cpe_module(bed):
    traj = time_quadratic(bed.schedule, 5)
    std = 0.1
    model = PlantedErrorModel(bed.oracle, std=std, seed=0)
    dec = decompose_profile(
        model, bed, traj.alpha_bar, n=5000, generator=torch.Generator().manual_seed(5)
    )
    sh = cpe_shares(dec, traj)
    assert isinstance(sh, CPEShares)
    c2 = step_coefficients(traj)
    np.testing.assert_allclose(sh.weights, c2)
    np.testing.assert_array_equal(sh.alpha_bar, traj.alpha_bar_from_clean)
    # the total part is VRG's CPE under the decomposition's own profile w = total
    expected = cumulative_prediction_error(traj, dec.as_profile("total"))
    np.testing.assert_allclose(sh.cpe_total, expected, rtol=1e-12)
    np.testing.assert_allclose(
        sh.cpe_spread, cumulative_prediction_error(traj, dec.as_profile("spread")), rtol=1e-12
    )
    np.testing.assert_allclose(sh.spread_share + sh.model_share + sh.cross_share, 1.0)
    # known model part: std^2 sum_k c_k^2
    assert abs(sh.cpe_model - std**2 * c2.sum()) < 5 * sh.cpe_model_se
    # the first (noisiest) step dominates: (sigma_K - sigma_{K-1})^2 ~ 1 / a_K
    assert sh.model_terms[-1] > 0.9 * sh.cpe_model
    # a decomposition measured at a superset of the levels is accepted, in any order
    wider = decompose_profile(
        model,
        bed,
        np.r_[0.5, traj.alpha_bar[::-1]],
        n=200,
        generator=torch.Generator().manual_seed(6),
    )
    assert cpe_shares(wider, traj).weights.shape == (5,)


def test_exact_model_cpe_is_all_spread(bed):
    traj = time_quadratic(bed.schedule, 4)
    dec = decompose_profile(
        bed.oracle, bed, traj.alpha_bar, n=500, generator=torch.Generator().manual_seed(7)
    )
    sh = cpe_shares(dec, traj)
    assert sh.spread_share == pytest.approx(1.0, abs=1e-12)
    assert sh.model_share == pytest.approx(0.0, abs=1e-12)
    assert sh.cpe_total > 0


def test_validation(bed, planted):
    traj = Trajectory([0.1, 0.6])
    with pytest.raises(ValueError, match=r"trajectory level 0 \(alpha_bar = 0.1\)"):
        cpe_shares(planted, traj)
    with pytest.raises(ValueError, match=r"alpha_bar\[1\] = 1.2"):
        decompose_profile(bed.oracle, bed, [0.5, 1.2], n=10)
    with pytest.raises(ValueError, match="n must be an integer >= 2"):
        decompose_profile(bed.oracle, bed, [0.5], n=1)
    with pytest.raises(TypeError, match="GaussianMixture"):
        decompose_profile(bed.oracle, make_testbed, [0.5], n=10)
    with pytest.raises(TypeError, match="Trajectory"):
        cpe_shares(planted, [0.1, 0.6])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown part"):
        planted.as_profile("bias")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="model returned shape"):

        def wrong(x, t):
            return x[:, :1]

        wrong.schedule = bed.schedule  # type: ignore[attr-defined]
        decompose_profile(wrong, bed, [0.5], n=10)
    with pytest.raises(dataclasses.FrozenInstanceError):
        planted.n = 3  # type: ignore[misc]
    with pytest.raises(ValueError):
        planted.total[0] = 0.0
