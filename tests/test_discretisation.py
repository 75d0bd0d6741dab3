"""Discretisation error of the DDIM step and the discretisation-aware objective (J).

Analytic cases: a model whose ``eps`` depends on ``sigma`` only makes the probability-flow ODE a
quadrature, so DDIM's local error is known in closed form; the exact Gaussian-mixture testbed gives
the true local error through the high-accuracy reference ODE.
"""

import itertools
import math

import numpy as np
import pytest
import torch
from analytic import smooth_profile

from vrg_analysis import NoiseSchedule, Trajectory, baseline
from vrg_analysis.core.cpe import cumulative_prediction_error
from vrg_analysis.core.schedules import alpha_bar_from_lambda, lambda_from_alpha_bar
from vrg_analysis.samplers import initial_noise
from vrg_analysis.testbeds import make_testbed
from vrg_analysis.vrg.arms import ArmContext
from vrg_analysis.vrg.discretisation import (
    MIN_SPLIT_FRACTION,
    DiscretisationAwareArm,
    LocalErrorModel,
    exact_local_error,
    fit_local_error_model,
    objective_terms,
    optimize_discretisation_aware,
    probe_local_error,
    propagation_factor,
    richardson_factor,
    step_centroid,
    step_scale,
)

SCHED = NoiseSchedule.linear()


class SigmaOnlyModel:
    """``eps(x, t) = f(sigma(t))`` in every coordinate: ``dy/dsigma = f(sigma)`` is a quadrature."""

    def __init__(self, f, dim=2):
        self.schedule = SCHED
        self.f = f
        self.dim = dim

    def __call__(self, x, t):
        a = SCHED.alpha_bar(t.detach().double().numpy().reshape(-1))
        sigma = np.sqrt((1 - a) / a)
        val = torch.as_tensor(self.f(sigma), dtype=x.dtype)
        return val.reshape(-1, *([1] * (x.ndim - 1))).expand_as(x).clone()


@pytest.fixture(scope="module")
def mixture():
    torch.set_num_threads(1)
    return make_testbed("mixture-2d")


# --------------------------------------------------------------------------- step geometry
def test_richardson_factor_is_two_at_the_midpoint_and_rejects_bad_splits():
    assert richardson_factor(0.5) == pytest.approx(2.0)
    assert richardson_factor(0.25) == pytest.approx(1 / (2 * 0.25 * 0.75))
    for bad in (0.0, 1.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="theta"):
            richardson_factor(bad)


def test_step_scale_is_sigma_phi_and_the_last_step_is_sigma_1():
    traj = baseline("logsnr_uniform", SCHED, 6)
    sig = np.append(traj.sigma, 0.0)
    expected = []
    for s, t in itertools.pairwise(sig):
        if t == 0.0:
            expected.append(s)
        else:
            h = math.log(s / t)
            expected.append(s * (1 - (1 + h) * math.exp(-h)))
    np.testing.assert_allclose(step_scale(traj), expected, rtol=1e-10)


def test_centroid_is_continuous_across_the_series_switch():
    # two-level trajectories whose first step has h just below / above the switch at 1e-2
    lam0 = -1.0
    out = []
    for h in (1e-2 * (1 - 1e-9), 1e-2 * (1 + 1e-9)):
        a = alpha_bar_from_lambda(np.array([lam0, lam0 + h]))
        out.append(step_centroid(Trajectory(a))[0] - lam0)
    assert out[0] == pytest.approx(out[1], rel=1e-6)
    assert out[0] == pytest.approx(2 * 1e-2 / 3, rel=1e-2)  # kappa(h) ~ 2h/3 for small h


# --------------------------------------------------------------------------- probing
def test_richardson_is_exact_when_the_second_derivative_is_constant():
    # eps = c sigma: y'' = c, so the Euler error is c h^2 / 2 per step, exactly, for any split
    c = 0.3
    model = SigmaOnlyModel(lambda s: c * s)
    traj = Trajectory(SCHED.alpha_bar(np.array([900.0, 600.0, 300.0, 120.0])))
    x = initial_noise((4, 2), 0, dtype=torch.float64)
    pr = probe_local_error(model, x, traj)
    sig = np.append(traj.sigma, 0.0)
    truth = (c * np.diff(sig) ** 2 / 2) ** 2
    np.testing.assert_allclose(pr.local_error, truth, rtol=1e-9)
    assert pr.model_calls == 4 * (traj.K + int(pr.measured.sum()))
    assert np.all(pr.theta > 0.5)  # lambda midpoints lie above the sigma midpoints


def test_a_split_beyond_the_schedule_is_moved_inside_it():
    # the last level one grid step above the schedule's end: its sigma midpoint is beyond it
    a1 = SCHED.alpha_bar(np.array([1.0]))[0]
    traj = Trajectory(np.array([SCHED.alpha_bar(np.array([50.0]))[0], a1]))
    model = SigmaOnlyModel(lambda s: 0.1 * s)
    pr = probe_local_error(model, initial_noise((3, 2), 1, dtype=torch.float64), traj)
    assert pr.alpha_bar_split[-1] <= SCHED.alpha_bar_max
    th = pr.theta[-1]
    assert th < 0.5
    if th < MIN_SPLIT_FRACTION:
        assert np.isnan(pr.local_error[-1])
    else:
        truth = (0.1 * traj.sigma[-1] ** 2 / 2) ** 2
        assert pr.local_error[-1] == pytest.approx(truth, rel=1e-9)


def test_probe_matches_the_true_local_error_on_the_exact_testbed(mixture):
    traj = baseline("logsnr_uniform", mixture.schedule, 10)
    x = initial_noise((32, 2), 3, dtype=torch.float64)
    pr = probe_local_error(mixture.oracle, x, traj)
    levels = [*traj.alpha_bar, 1.0]
    true = np.array(
        [
            exact_local_error(mixture.mixture, pr.states[k], levels[k], levels[k + 1]).mean()
            for k in range(traj.K)
        ]
    )
    ratio = pr.local_error / true
    assert np.median(np.abs(np.log(ratio))) < math.log(1.25)
    assert np.max(np.abs(np.log(ratio))) < math.log(3.5)


def test_the_step_model_is_exact_for_eps_linear_in_lambda():
    # eps = c lambda: (D1) holds exactly with G^2 = c^2, on any trajectory
    c = 0.2
    local = LocalErrorModel(lambda_=np.array([0.0]), log_g2=np.array([2 * math.log(c)]))
    traj = baseline("time_uniform", SCHED, 7)
    sig = np.append(traj.sigma, 0.0)
    true = []
    for s, t in itertools.pairwise(sig):
        # int_s^t -c log(u) du = -c [u log u - u], DDIM takes (t - s) (-c log s)
        def anti(u):
            return 0.0 if u == 0.0 else -c * (u * math.log(u) - u)

        true.append((anti(t) - anti(s) - (t - s) * (-c * math.log(s))) ** 2)
    np.testing.assert_allclose(local.step_errors(traj), true, rtol=1e-9)


def test_the_fitted_model_reproduces_its_own_probe(mixture):
    traj = baseline("time_uniform", mixture.schedule, 8)
    pr = probe_local_error(mixture.oracle, initial_noise((8, 2), 5, dtype=torch.float64), traj)
    lm = fit_local_error_model(pr)
    np.testing.assert_allclose(lm.step_errors(traj), pr.local_error, rtol=1e-9)
    assert lm.model_calls == pr.model_calls
    assert lm.total(traj) == pytest.approx(pr.total)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="strictly increasing"):
        LocalErrorModel(lambda_=np.array([1.0, 0.0]), log_g2=np.array([0.0, 0.0]))
    with pytest.raises(ValueError, match="same non-zero length"):
        LocalErrorModel(lambda_=np.array([1.0]), log_g2=np.array([0.0, 0.0]))
    with pytest.raises(ValueError, match="data_variance"):
        propagation_factor(1.0, -0.5)
    model = SigmaOnlyModel(lambda s: s)
    with pytest.raises(ValueError, match="n_probe >= 2"):
        probe_local_error(model, torch.zeros(1, 2), baseline("time_uniform", SCHED, 3))
    with pytest.raises(TypeError, match="Trajectory"):
        probe_local_error(model, torch.zeros(3, 2), [0.1, 0.5])


# --------------------------------------------------------------------------- the objective
def test_propagation_factor_shrinks_with_noise_and_is_one_at_the_data():
    sig = np.array([0.0, 0.1, 1.0, 10.0, 100.0])
    psi = propagation_factor(sig, [0.5, 0.5])
    assert psi[0] == pytest.approx(1.0)
    assert np.all(np.diff(psi) < 0)
    np.testing.assert_allclose(psi, propagation_factor(sig, 0.5))  # isotropic = scalar
    assert psi[-1] == pytest.approx(0.5 / (0.5 + 1e4))


@pytest.fixture(scope="module")
def exact_local(mixture):
    traj = baseline("time_uniform", mixture.schedule, 6)
    x = initial_noise((16, 2), 11, dtype=torch.float64)
    return traj, fit_local_error_model(probe_local_error(mixture.oracle, x, traj))


def test_objective_terms_add_cpe_and_d(exact_local):
    traj, lm = exact_local
    profile = smooth_profile(SCHED)
    terms = objective_terms(traj, profile, lm)
    assert terms.cpe == pytest.approx(
        cumulative_prediction_error(traj, profile, outside="clamp"), rel=1e-10
    )
    assert terms.disc == pytest.approx(lm.total(traj), rel=1e-10)
    assert terms.objective == pytest.approx(terms.cpe + terms.disc, rel=1e-12)
    prop = objective_terms(traj, profile, lm, data_variance=0.5)
    assert prop.propagated and prop.objective < terms.objective


@pytest.mark.parametrize("variance", [None, 0.5])
def test_grid_optimum_is_the_brute_force_minimum(exact_local, mixture, variance):
    traj, lm = exact_local
    traj3 = Trajectory(traj.alpha_bar[[0, 2, 4]])  # K = 3 from the same start level
    profile = smooth_profile(SCHED)
    cap = mixture.schedule.alpha_bar_max
    g = 25
    res = optimize_discretisation_aware(
        traj3, profile, lm, data_variance=variance, alpha_bar_max=cap, grid_size=g, polish=False
    )
    lam = np.linspace(
        float(lambda_from_alpha_bar(traj3.alpha_bar[0])), float(lambda_from_alpha_bar(cap)), g
    )
    levels = alpha_bar_from_lambda(lam)
    best = math.inf
    for i, j in itertools.combinations(range(1, g), 2):
        cand = Trajectory(np.array([traj3.alpha_bar[0], levels[i], levels[j]]))
        best = min(best, objective_terms(cand, profile, lm, data_variance=variance).objective)
    assert res.objective_grid == pytest.approx(best, rel=1e-9)
    assert res.optimized.alpha_bar[0] == traj3.alpha_bar[0]  # the start level is held exactly


def test_optimum_holds_the_start_lowers_j_and_leaves_the_box(exact_local, mixture):
    traj, lm = exact_local
    profile = smooth_profile(SCHED)
    res = optimize_discretisation_aware(
        traj,
        profile,
        lm,
        data_variance=0.5,
        alpha_bar_max=mixture.schedule.alpha_bar_max,
        grid_size=300,
        polish_iterations=20,
    )
    assert res.optimized.K == traj.K
    assert res.optimized.alpha_bar[0] == traj.alpha_bar[0]
    assert res.optimized.alpha_bar[-1] <= mixture.schedule.alpha_bar_max
    assert res.objective_final <= res.objective_grid + 1e-15
    assert res.objective_final < res.objective_initial
    assert res.moved and res.max_ratio_move > 0.01  # beyond the published gamma box
    d = res.to_dict()
    assert d["optimized"]["alpha_bar"][0] == traj.alpha_bar[0] and d["propagated"]


def test_optimiser_validates_its_inputs(exact_local):
    traj, lm = exact_local
    profile = smooth_profile(SCHED)
    with pytest.raises(ValueError, match="grid_size"):
        optimize_discretisation_aware(traj, profile, lm, grid_size=traj.K)
    with pytest.raises(ValueError, match="alpha_bar_max"):
        optimize_discretisation_aware(traj, profile, lm, alpha_bar_max=0.5 * traj.alpha_bar[-1])
    with pytest.raises(TypeError, match="LocalErrorModel"):
        optimize_discretisation_aware(traj, profile, object())
    with pytest.raises(ValueError, match="data_variance"):
        optimize_discretisation_aware(traj, profile, lm, data_variance=float("nan"))


# --------------------------------------------------------------------------- as an arm
def test_arm_probes_the_context_model_and_reports_its_budget(mixture):

    profile = smooth_profile(SCHED)
    traj = baseline("time_uniform", SCHED, 5)
    ctx = ArmContext(
        profile=profile,
        schedule=SCHED,
        model=mixture.oracle,
        validation_noise=lambda n: initial_noise((n, 2), 2**31 - 1, dtype=torch.float64),
    )
    arm = DiscretisationAwareArm(n_probe=8, grid_size=150, polish_iterations=5)
    out, info = arm.retime(traj, ctx)
    # the same probe and optimiser by hand
    probe = probe_local_error(mixture.oracle, ctx.validation_noise(8), traj)
    ref = optimize_discretisation_aware(
        traj,
        profile,
        fit_local_error_model(probe),
        alpha_bar_max=SCHED.alpha_bar_max,
        grid_size=150,
        polish_iterations=5,
    )
    np.testing.assert_allclose(out.alpha_bar, ref.optimized.alpha_bar, rtol=1e-12)
    assert info["model_calls"] == probe.model_calls == 8 * (5 + int(probe.measured.sum()))
    assert out.alpha_bar[0] == traj.alpha_bar[0] and info["start_shift"] == 0.0
    assert info["details"]["objective_final"] <= info["details"]["objective_initial"]
    prop = DiscretisationAwareArm(n_probe=8, data_variance=(0.5, 0.2), grid_size=150)
    assert prop.label != arm.label and prop.to_dict()["data_variance"] == [0.5, 0.2]
    with pytest.raises(ValueError, match="validation_noise"):
        arm.retime(traj, ArmContext(profile=profile, schedule=SCHED))
    with pytest.raises(ValueError, match="n_probe"):
        DiscretisationAwareArm(n_probe=1)
    with pytest.raises(ValueError, match="data_variance"):
        DiscretisationAwareArm(data_variance=(1.0, -1.0))
