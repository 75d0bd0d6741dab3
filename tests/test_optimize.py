import math

import numpy as np
import pytest
import torch
from official_excerpt import CPE_OPTIMIZED

from vrg_analysis import (
    ErrorProfile,
    MLPSGDConfig,
    NoiseSchedule,
    Trajectory,
    baseline,
    cumulative_prediction_error,
    optimize_trajectory,
    read_official_profile,
    read_official_trajectory,
    time_quadratic,
)
from vrg_analysis.vrg.objective import ratio_bounds

SCHED = NoiseSchedule.linear()


def _smooth_profile() -> ErrorProfile:
    """A synthetic profile shaped like the official CIFAR-10 one (decays with noise level)."""
    t = np.arange(1000)
    a = SCHED.alpha_bar(t)
    return ErrorProfile(alpha_bar=a, mse=0.5 * a**3 + 0.02 * a + 1e-5, timesteps=t)


@pytest.fixture(scope="module")
def official(official_dir):
    profile = read_official_profile(official_dir / "MSE_vs_alpha_bar_cifar10.txt")
    traj = read_official_trajectory(
        official_dir / "trajectories" / "dpm_alphaBar_1-010-time_quadratic.txt"
    )
    return profile, traj


def test_acceptance_on_official_profile(official):
    profile, traj = official
    res = optimize_trajectory(traj, profile, gamma=0.01, reg_lambda=100.0)
    assert res.cpe_final <= 0.4190
    assert res.cpe_final < CPE_OPTIMIZED  # beats the official optimiser's 0.423855
    assert res.regularizer_final <= 1e-6
    assert res.iterations < 500  # the solver's work (its wall time is a benchmark's business)
    assert res.converged and res.moved
    assert res.optimized.K == traj.K
    assert res.cpe_final == pytest.approx(cumulative_prediction_error(res.optimized, profile))
    _, lo, hi = ratio_bounds(traj, 0.01)
    r_new, _, _ = ratio_bounds(res.optimized, 0.01)
    assert np.all(r_new >= lo - 1e-12) and np.all(r_new <= hi + 1e-12)


def test_keep_start_holds_the_noisiest_level(official):
    profile, traj = official
    res = optimize_trajectory(traj, profile, keep_start=True)
    assert res.optimized.alpha_bar[0] == pytest.approx(traj.alpha_bar[0], rel=1e-9)
    assert res.converged
    assert res.cpe_final < res.cpe_initial
    assert res.regularizer_final == 0.0 and res.reg_lambda == 0.0
    assert "residual" in res.message


def test_exact_never_worse_than_start_and_respects_box():
    prof = _smooth_profile()
    for k in (5, 10, 20):
        traj = time_quadratic(SCHED, k)
        res = optimize_trajectory(traj, prof, gamma=0.05)
        assert res.objective_final <= res.objective_initial + 1e-15
        r0, lo, hi = ratio_bounds(traj, 0.05)
        r1, _, _ = ratio_bounds(res.optimized, 0.05)
        assert np.all(r1 >= lo - 1e-12) and np.all(r1 <= hi + 1e-12)
        assert res.optimized.K == k


def test_exact_is_a_local_minimum():
    """Perturbing the optimum inside the box never lowers the objective (KKT in practice)."""
    prof = _smooth_profile()
    traj = time_quadratic(SCHED, 8)
    res = optimize_trajectory(traj, prof, gamma=0.02, reg_lambda=100.0)
    from vrg_analysis.vrg.objective import VRGObjective

    obj = VRGObjective(prof, float(traj.alpha_bar[0]), 100.0)
    r_opt, _, _ = ratio_bounds(res.optimized, 0.02)
    _, lo, hi = ratio_bounds(traj, 0.02)
    f_opt, _ = obj.numpy_value_and_grad(r_opt)
    rng = np.random.default_rng(0)
    for _ in range(200):
        r = np.clip(r_opt + rng.normal(scale=1e-4, size=r_opt.size), lo, hi)
        assert obj.numpy_value_and_grad(r)[0] >= f_opt - 1e-10


def test_mlp_sgd_moves_toward_the_optimum_and_is_seeded():
    prof = _smooth_profile()
    traj = time_quadratic(SCHED, 10)
    cfg = MLPSGDConfig(epochs=150, hidden_dim=64, input_dim=32, lr=2e-3)
    a = optimize_trajectory(
        traj, prof, method="mlp_sgd", mlp=cfg, generator=torch.Generator().manual_seed(1)
    )
    b = optimize_trajectory(
        traj, prof, method="mlp_sgd", mlp=cfg, generator=torch.Generator().manual_seed(1)
    )
    exact = optimize_trajectory(traj, prof)
    np.testing.assert_array_equal(a.optimized.alpha_bar, b.optimized.alpha_bar)
    assert a.objective_final < a.objective_initial
    assert exact.objective_final <= a.objective_final + 1e-12
    assert a.config["mlp"]["epochs"] == 150
    # 150 epochs do not reach a first-order optimum, and the result says so
    assert not a.converged and "projected gradient" in a.message
    assert exact.converged


@pytest.mark.parametrize("gamma", [0.0, 1.0, -0.1, float("nan"), 2])
def test_gamma_out_of_range(gamma):
    with pytest.raises(ValueError, match="gamma .* must lie in \\(0, 1\\)"):
        optimize_trajectory(time_quadratic(SCHED, 5), _smooth_profile(), gamma=gamma)


def test_other_bad_inputs():
    prof = _smooth_profile()
    traj = time_quadratic(SCHED, 5)
    with pytest.raises(ValueError, match="unknown optimisation method 'adam'"):
        optimize_trajectory(traj, prof, method="adam")
    with pytest.raises(ValueError, match="reg_lambda must be a finite number >= 0"):
        optimize_trajectory(traj, prof, reg_lambda=-1.0)
    narrow = ErrorProfile(alpha_bar=[0.5, 0.9], mse=[0.1, 0.2])
    with pytest.raises(ValueError, match="does not cover"):
        optimize_trajectory(traj, narrow)
    with pytest.raises(ValueError, match="keep_start=True is only available"):
        optimize_trajectory(traj, prof, method="mlp_sgd", keep_start=True)


def test_result_serialises():
    res = optimize_trajectory(time_quadratic(SCHED, 5), _smooth_profile())
    d = res.to_dict()
    assert d["optimized"]["alpha_bar"] == list(res.optimized.alpha_bar)
    assert Trajectory.from_dict(d["optimized"]).K == 5
    assert d["moved"] is True


def test_torch_objective_agrees_with_the_numpy_cpe():
    """The optimiser's autograd objective and cumulative_prediction_error are one formula."""
    from vrg_analysis.vrg.objective import VRGObjective

    prof = _smooth_profile()
    for k in (3, 10, 40):
        traj = time_quadratic(SCHED, k)
        r, _, _ = ratio_bounds(traj, 0.01)
        cpe, reg = VRGObjective(prof, float(traj.alpha_bar[0]), 100.0).terms(torch.tensor(r))
        assert float(cpe) == pytest.approx(cumulative_prediction_error(traj, prof), rel=1e-12)
        assert float(reg) == pytest.approx(0.0, abs=1e-20)


def test_alpha_bar_min_holds_the_noisiest_level_inside_the_schedule():
    """A profile that falls fast towards high noise rewards a noisier start: without a bound the
    penalised optimum leaves the schedule; with ``alpha_bar_min`` the bound is active and held."""
    sched = NoiseSchedule.linear()
    a = np.geomspace(sched.alpha_bar_min, sched.alpha_bar_max, 400)
    profile = ErrorProfile(alpha_bar=a, mse=a**2)
    base = time_quadratic(sched, 8)
    free = optimize_trajectory(base, profile, gamma=0.3, reg_lambda=0.0)
    assert free.optimized.alpha_bar[0] < sched.alpha_bar_min  # the failure being guarded
    held = optimize_trajectory(
        base, profile, gamma=0.3, reg_lambda=0.0, alpha_bar_min=sched.alpha_bar_min
    )
    assert held.optimized.alpha_bar[0] == sched.alpha_bar_min
    assert held.config["start_level_bound_active"] and held.converged
    assert held.cpe_final < held.cpe_initial and held.cpe_final >= free.cpe_final
    sched.t_from_alpha_bar(held.optimized.alpha_bar)  # every level is a valid timestep
    with pytest.raises(ValueError, match="alpha_bar_min is only available with method='exact'"):
        optimize_trajectory(base, profile, method="mlp_sgd", alpha_bar_min=1e-4)
    with pytest.raises(ValueError, match=r"alpha_bar_min = 0.5 must lie in \(0, a_K"):
        optimize_trajectory(base, profile, alpha_bar_min=0.5)


def test_global_optimum_is_the_brute_force_minimum_and_beats_every_feasible_trajectory():
    import itertools

    from vrg_analysis.vrg.global_optimum import global_optimum

    profile = _smooth_profile()
    grid = np.geomspace(2e-3, 0.95, 12)
    for start in (None, float(grid[1])):
        best = math.inf
        for combo in itertools.combinations(sorted(grid), 3):  # every 3-level trajectory
            if start is not None and combo[0] != start:
                continue
            best = min(best, cumulative_prediction_error(Trajectory(combo), profile))
        res = global_optimum(profile, 3, grid=grid, start_alpha_bar=start)
        assert res.cpe == pytest.approx(best, rel=1e-12)
        assert cumulative_prediction_error(res.trajectory, profile) == pytest.approx(res.cpe)
        if start is not None:
            assert res.trajectory.alpha_bar[0] == start
    # on a grid holding the baseline's levels, the optimum is at least as good as the baseline
    # and as VRG's box optimum from the same start
    base = time_quadratic(SCHED, 6)
    a_lo, a_hi = profile.alpha_bar_range
    grid = np.union1d(np.geomspace(a_lo, a_hi, 400), base.alpha_bar)
    res = global_optimum(profile, 6, grid=grid, start_alpha_bar=float(base.alpha_bar[0]))
    vrg = optimize_trajectory(base, profile, keep_start=True)
    assert res.cpe <= cumulative_prediction_error(base, profile)
    assert res.cpe <= vrg.cpe_final * (1 + 1e-3)
    # without a fixed start the optimum is degenerate: everything crowds the clean end
    free = global_optimum(profile, 6)
    assert free.cpe < 0.01 * res.cpe and free.trajectory.alpha_bar[0] > 0.9
    with pytest.raises(ValueError, match="num_steps = 20 exceeds the 12 grid levels"):
        global_optimum(profile, 20, grid=np.geomspace(2e-3, 0.95, 12))
    with pytest.raises(ValueError, match="does not cover alpha_bar"):
        global_optimum(profile, 3, grid=[1e-9, 0.5, 0.9])


def test_penalty_optimum_is_never_worse_than_holding_the_start_level(one_torch_thread):
    """The start-held optimum is feasible for the penalty form (penalty 0), so the penalty solve
    must reach at least its objective. On a measured profile (piecewise linear, a node at every
    timestep) a local solver stopped above it and still reported convergence: the planted
    mixture-2d profile below, time_quadratic K = 10, gave CPE unchanged under the penalty while
    holding the start level gained about 1%."""
    from vrg_analysis.studies.exact_testbed import Params, planted_profiles

    pp = planted_profiles(Params(planted_size=0.2, n_train=512, profile_stride=1, seed=0))
    sched = pp.model.schedule
    for name, k in (("time_quadratic", 10), ("time_quadratic", 5), ("time_uniform", 10)):
        base = baseline(name, sched, k)
        pen = optimize_trajectory(base, pp.profile, alpha_bar_max=sched.alpha_bar_max)
        held = optimize_trajectory(
            base, pp.profile, keep_start=True, alpha_bar_max=sched.alpha_bar_max
        )
        assert pen.objective_final <= held.cpe_final * (1 + 1e-9), (name, k)


def test_global_optimum_default_grid_skips_a_safeguard_row_at_zero():
    from vrg_analysis.vrg.global_optimum import global_optimum

    a = np.r_[0.0, np.geomspace(1e-4, 0.999, 50)]  # the official files' row at alpha_bar = 0
    profile = ErrorProfile(alpha_bar=a, mse=0.1 + a)
    res = global_optimum(profile, 4, grid_size=200, start_alpha_bar=1e-3)
    assert res.trajectory.K == 4 and res.trajectory.alpha_bar[0] == 1e-3 and np.isfinite(res.cpe)
