import re

import numpy as np
import pytest
from official_excerpt import TIME_QUADRATIC_10

from vrg_analysis import (
    NoiseSchedule,
    Trajectory,
    baseline,
    dpm_solver_levels,
    karras,
    logsnr_uniform,
    read_official_trajectory,
    time_quadratic,
)
from vrg_analysis.core.cpe import cumulative_prediction_error
from vrg_analysis.core.profile import read_official_profile
from vrg_analysis.core.trajectories import time_uniform, time_uniform_offset

SCHED = NoiseSchedule.linear()
# The files print 8 decimals; at alpha_bar ~ 4e-5 that rounding alone is ~1.2e-4 relative, so the
# comparison allows half a unit of the last printed digit as well as the 1e-4 relative tolerance.
RTOL, ATOL = 1e-4, 5e-9


def test_time_quadratic_matches_embedded_official_values():
    ref = Trajectory.from_clean_order(TIME_QUADRATIC_10[1:])
    np.testing.assert_allclose(time_quadratic(SCHED, 10).alpha_bar, ref.alpha_bar, RTOL, ATOL)


def test_every_official_file_is_reproduced(official_dir):
    names = {
        "time_uniform": "time_uniform",
        "time_quadratic": "time_quadratic",
        "logSNR": "logsnr_uniform",
    }
    checked = 0
    for path in sorted((official_dir / "trajectories").glob("dpm_alphaBar_*.txt")):
        order, steps, skip = re.match(r"dpm_alphaBar_(\d)-(\d+)-(.+)\.txt", path.name).groups()
        # Higher-order logSNR files hold DPM-Solver's intermediate levels, not K uniform ones.
        ref = read_official_trajectory(path)
        mine = dpm_solver_levels(SCHED, int(steps), int(order), names[skip])
        if order == "1" or skip != "logSNR":
            np.testing.assert_array_equal(
                mine.alpha_bar, baseline(names[skip], SCHED, int(steps)).alpha_bar
            )
        assert mine.K == ref.K == int(steps)
        np.testing.assert_allclose(mine.alpha_bar, ref.alpha_bar, RTOL, ATOL, err_msg=path.name)
        checked += 1
    assert checked == 54  # every official DPM-Solver trajectory file


def test_sampling_order_and_indexing():
    tr = time_quadratic(SCHED, 10)
    assert tr.K == 10 and np.all(np.diff(tr.alpha_bar) > 0)
    assert tr.alpha_bar[0] == pytest.approx(SCHED.alpha_bar(999), rel=1e-12)
    np.testing.assert_array_equal(tr.alpha_bar_from_clean, tr.alpha_bar[::-1])
    assert np.all(np.diff(tr.sigma) < 0)


def test_logsnr_is_uniform_in_lambda_and_karras_in_sigma_rho():
    lam = logsnr_uniform(SCHED, 12).lambda_
    full = np.append(lam, float(SCHED.lambda_(0)))
    np.testing.assert_allclose(np.diff(full), np.diff(full)[0], rtol=1e-9)
    sig = karras(SCHED, 8).sigma
    np.testing.assert_allclose(np.diff(sig ** (1 / 7)), np.diff(sig ** (1 / 7))[0], rtol=1e-9)
    assert sig[0] == pytest.approx(float(SCHED.sigma(999)), rel=1e-9)
    assert sig[-1] == pytest.approx(float(SCHED.sigma(0)), rel=1e-9)


def test_json_round_trip(tmp_path):
    tr = logsnr_uniform(SCHED, 7)
    again = Trajectory.from_json(tr.to_json())
    np.testing.assert_array_equal(again.alpha_bar, tr.alpha_bar)
    assert again.name == tr.name
    path = tr.save(tmp_path / "t.json")
    np.testing.assert_array_equal(Trajectory.load(path).alpha_bar, tr.alpha_bar)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([0.1, 0.5, 0.4], r"strictly increasing: .*\[1\] = 0.5 >= .*\[2\] = 0.4"),
        ([0.1, float("nan")], r"alpha_bar\[1\] = nan is not finite"),
        ([0.0, 0.5], r"alpha_bar\[0\] = 0.0 is outside the open interval"),
        ([0.2, 1.0], r"alpha_bar\[1\] = 1.0 is outside"),
        ([[0.1, 0.2]], "one-dimensional"),
        ([], "at least 1"),
    ],
)
def test_invalid_trajectories(values, message):
    with pytest.raises(ValueError, match=message):
        Trajectory(np.asarray(values, dtype=float))


def test_from_clean_order_names_the_callers_position():
    with pytest.raises(ValueError, match=r"alpha_bar\[1\] = 0.5 <= alpha_bar\[2\] = 0.7"):
        Trajectory.from_clean_order([0.9, 0.5, 0.7])


def test_unknown_baseline_and_bad_steps():
    with pytest.raises(ValueError, match="unknown baseline 'time_cubic'"):
        baseline("time_cubic", SCHED, 10)
    with pytest.raises(ValueError, match="num_steps must be a positive integer, got 0"):
        time_quadratic(SCHED, 0)


def test_official_reader_errors(tmp_path):
    good = "# order : 1\n# steps : 3\n# skip_type : time_uniform\n0.9999\n0.9\n0.5\n0.1\n"
    p = tmp_path / "t.txt"
    p.write_text(good)
    assert read_official_trajectory(p).K == 3
    p.write_text(good.replace("0.5\n0.1\n", "0.5\n"))  # truncated
    with pytest.raises(ValueError, match="header says 3 steps, so 4 values, but found 3"):
        read_official_trajectory(p)
    p.write_text(good.replace("0.5", "0.5x"))
    with pytest.raises(ValueError, match=r"t.txt:6: not an alpha_bar value: '0.5x'"):
        read_official_trajectory(p)
    p.write_text(good.replace("0.5", "0.95"))  # not monotone
    with pytest.raises(ValueError, match=r"t.txt:6: alpha_bar = 0.95 is not below the previous"):
        read_official_trajectory(p)
    p.write_text(good.replace("0.1\n", "1.5\n"))
    with pytest.raises(ValueError, match=r"t.txt:7: alpha_bar = 1.5 is outside the open interval"):
        read_official_trajectory(p)
    p.write_text("\n" + good.replace("0.5\n0.1\n", "0.5\n"))  # blank first line, truncated
    with pytest.raises(ValueError, match="header says 3 steps"):
        read_official_trajectory(p)
    p.write_text("# nothing\n")
    with pytest.raises(ValueError, match="no alpha_bar values"):
        read_official_trajectory(p)


def test_dpm_solver_levels_checks_its_arguments_and_groups_like_the_sampler():
    from vrg_analysis import samplers

    with pytest.raises(ValueError, match="unknown DPM-Solver order 4"):
        dpm_solver_levels(SCHED, 10, 4)
    with pytest.raises(ValueError, match="unknown skip_type 'karras'"):
        dpm_solver_levels(SCHED, 10, 2, "karras")
    levels = dpm_solver_levels(SCHED, 10, 3)
    # outer steps of 3 levels, uniform in lambda_ inside each: the sampler's default groups agree
    assert samplers.singlestep_groups(levels.K, 3) == [3, 3, 3, 1]
    lam = levels.lambda_
    np.testing.assert_allclose(np.diff(lam[:9]), np.diff(lam[:9])[0], rtol=1e-9)


def test_time_uniform_offset_is_the_half_step_shifted_integer_grid():
    traj = time_uniform_offset(SCHED, 10)
    t = np.arange(949, 0, -100)  # 949, 849, ..., 49
    np.testing.assert_allclose(traj.alpha_bar, np.asarray(SCHED.alphas_cumprod)[t], rtol=1e-12)
    assert traj.name == "time_uniform_offset"
    np.testing.assert_array_equal(
        baseline("time_uniform_offset", SCHED, 10).alpha_bar, traj.alpha_bar
    )
    # the centres of the K blocks also when K does not divide N: 1000 / 3 -> 165, 499, 832
    np.testing.assert_allclose(
        time_uniform_offset(SCHED, 3).alpha_bar,
        np.asarray(SCHED.alphas_cumprod)[[832, 499, 165]],
        rtol=1e-12,
    )
    with pytest.raises(ValueError, match="needs num_steps <= 1000"):
        time_uniform_offset(SCHED, 1001)


def test_the_papers_uniform_baseline_cpe_is_the_offset_grids(official_dir):
    """The paper's uniform K = 10 CPE 0.327 is the half-step-offset grid's on the official
    profile (0.32715); the official time-uniform file's is 0.430."""
    prof = read_official_profile(official_dir / "MSE_vs_alpha_bar_cifar10.txt")
    offset = cumulative_prediction_error(time_uniform_offset(SCHED, 10), prof, outside="clamp")
    uniform = cumulative_prediction_error(time_uniform(SCHED, 10), prof, outside="clamp")
    assert round(offset, 5) == 0.32715 and round(offset, 3) == 0.327
    assert round(uniform, 3) == 0.430
