"""Start level or re-timing (vrg.start_level): the split on cases with a known answer."""

from __future__ import annotations

import numpy as np
import pytest
from analytic import smooth_profile as analytic_profile

from vrg_analysis.core.cpe import cumulative_prediction_error
from vrg_analysis.core.trajectories import Trajectory
from vrg_analysis.vrg.arms import ArmContext
from vrg_analysis.vrg.retime import VRGSetting
from vrg_analysis.vrg.start_level import (
    StartOnlyArm,
    start_level_split,
    stretched_to_start,
    with_start_level,
)

BASE = Trajectory(np.array([0.01, 0.1, 0.3, 0.6, 0.9]), name="base")


def test_with_start_level_moves_only_the_first_level() -> None:
    moved = with_start_level(BASE, 0.02)
    np.testing.assert_array_equal(moved.alpha_bar[1:], BASE.alpha_bar[1:])
    assert moved.alpha_bar[0] == 0.02
    with pytest.raises(ValueError, match=r"must lie in \(0, 0.1\)"):
        with_start_level(BASE, 0.2)
    with pytest.raises(ValueError, match="one level"):
        with_start_level(Trajectory(np.array([0.5])), 0.1)


def test_a_pure_start_move_is_all_start_level() -> None:
    p = analytic_profile()
    retimed = with_start_level(BASE, 0.03)
    sp = start_level_split(BASE, retimed, p)
    assert sp.cpe_start_only == sp.cpe_retimed  # the same trajectory
    assert sp.cpe_start_held == sp.cpe_baseline
    assert sp.gain > 0 and sp.gain_start_only == sp.gain and sp.gain_start_held == 0.0
    assert sp.verdict == "contradicted"
    assert sp.start_shift == pytest.approx(2.0)


def test_a_pure_retiming_is_all_retiming() -> None:
    p = analytic_profile()
    retimed = Trajectory(np.array([0.01, 0.2, 0.45, 0.7, 0.9]), name="retimed")
    sp = start_level_split(BASE, retimed, p)
    assert sp.cpe_start_only == sp.cpe_baseline and sp.cpe_start_held == sp.cpe_retimed
    assert sp.cpe_retimed == cumulative_prediction_error(retimed, p)
    assert sp.gain_start_only == 0.0 and sp.gain_start_held == sp.gain
    assert sp.verdict == ("supported" if sp.gain > 0 else "inconclusive")


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="K = 5 levels but the re-timed trajectory K = 3"):
        start_level_split(BASE, Trajectory(np.array([0.1, 0.5, 0.9])), analytic_profile())


def _logsnr(a: np.ndarray) -> np.ndarray:
    return np.log(a / (1 - a))


def test_stretched_to_start_keeps_the_log_snr_spacing() -> None:
    out = stretched_to_start(BASE, 0.2)
    assert out.alpha_bar[0] == pytest.approx(0.2, rel=1e-14)
    assert out.alpha_bar[-1] == BASE.alpha_bar[-1]
    lam0, lam1 = _logsnr(BASE.alpha_bar), _logsnr(out.alpha_bar)
    # every step's share of the log-SNR range is kept
    np.testing.assert_allclose(
        np.diff(lam1) / (lam1[-1] - lam1[0]), np.diff(lam0) / (lam0[-1] - lam0[0]), rtol=1e-12
    )
    assert np.all(np.diff(out.alpha_bar) > 0)
    # a start at the baseline's own start gives the baseline back
    np.testing.assert_allclose(stretched_to_start(BASE, 0.01).alpha_bar, BASE.alpha_bar, rtol=1e-12)
    with pytest.raises(ValueError, match=r"must lie in \(0, 0.9\)"):
        stretched_to_start(BASE, 0.95)


@pytest.mark.parametrize("reg_lambda", [0.0, 1e6])
def test_the_start_only_arm_takes_vrg_start_and_nothing_else(reg_lambda: float) -> None:
    p = analytic_profile()
    ctx = ArmContext(profile=p, schedule=None)
    setting = VRGSetting(0.3, reg_lambda)
    vrg, _ = setting.retime(BASE, ctx)
    arm = StartOnlyArm(setting)
    out, info = arm.retime(BASE, ctx)
    assert out.alpha_bar[0] == pytest.approx(vrg.alpha_bar[0], rel=1e-12)
    assert info["start_rule"] in {"replaced", "stretched", "unchanged"}
    if info["start_rule"] == "replaced":
        np.testing.assert_array_equal(out.alpha_bar[1:], BASE.alpha_bar[1:])
    elif info["start_rule"] == "stretched":
        assert vrg.alpha_bar[0] >= BASE.alpha_bar[1]
    else:
        np.testing.assert_array_equal(out.alpha_bar, BASE.alpha_bar)
    assert info["start_shift"] == pytest.approx(vrg.alpha_bar[0] / BASE.alpha_bar[0] - 1)
    assert info["cpe_reduction"] == pytest.approx(
        1
        - cumulative_prediction_error(out, p, outside="clamp")
        / cumulative_prediction_error(BASE, p, outside="clamp")
    )
    assert arm.gamma == 0.3 and arm.reg_lambda == reg_lambda and not arm.keep_start
    assert arm.to_dict() == {"kind": "vrg_start_only", "setting": setting.to_dict()}
    assert "start of VRG(gamma=0.3" in arm.label


def test_the_start_only_arm_of_gamma_zero_is_the_baseline() -> None:
    ctx = ArmContext(profile=analytic_profile(), schedule=None)
    out, info = StartOnlyArm(VRGSetting(0.0, 100.0)).retime(BASE, ctx)
    np.testing.assert_array_equal(out.alpha_bar, BASE.alpha_bar)
    assert info["start_rule"] == "unchanged" and info["cpe_reduction"] == 0.0
