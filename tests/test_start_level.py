"""Start level or re-timing (vrg.start_level): the split on cases with a known answer."""

from __future__ import annotations

import numpy as np
import pytest
from analytic import smooth_profile as analytic_profile

from vrg_analysis.core.cpe import cumulative_prediction_error
from vrg_analysis.core.trajectories import Trajectory
from vrg_analysis.vrg.start_level import start_level_split, with_start_level

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
