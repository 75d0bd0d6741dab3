"""How many profiling samples are enough (studies.profile_precision): the arm that brings its own
profile, the trajectory distance, the per-size rule and a tiny end-to-end run."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from analytic import smooth_profile

from vrg_analysis.core.trajectories import Trajectory
from vrg_analysis.studies import profile_precision as chapter
from vrg_analysis.vrg.arms import ArmContext
from vrg_analysis.vrg.retime import VRGSetting

BASE = Trajectory(np.array([0.01, 0.1, 0.3, 0.6, 0.9]), name="base")
TINY = dict(
    sizes=[8, 16],
    repeats=2,
    reference_rows=64,
    profile_stride=50,
    seeds=[0, 1],
    n_samples=16,
    n_boot=40,
)


def test_the_arm_optimises_on_its_own_profile() -> None:
    own = smooth_profile()
    other = dataclasses.replace(own, mse=own.mse * np.linspace(0.5, 2.0, own.mse.size))
    setting = VRGSetting(0.2, 1e4)
    arm = chapter.ProfiledVRG(setting, other, rows=8, draw=1)
    ctx = ArmContext(profile=own, schedule=None)
    mine, _ = arm.retime(BASE, ctx)
    theirs, _ = setting.retime(BASE, ArmContext(profile=other, schedule=None))
    np.testing.assert_array_equal(mine.alpha_bar, theirs.alpha_bar)
    same = chapter.ProfiledVRG(setting, own, rows=8, draw=1)
    assert arm.to_dict()["profile"] != same.to_dict()["profile"]  # the key names the profile
    assert arm.to_dict()["profile"] == chapter.profile_sha(other)
    assert arm.label == "VRG on 8 rows, draw 1"


def test_log_snr_shift_is_the_largest_level_move() -> None:
    moved = Trajectory(np.array([0.01, 0.2, 0.3, 0.6, 0.9]))
    expected = abs(np.log(0.2 / 0.8) - np.log(0.1 / 0.9))
    assert chapter.log_snr_shift(BASE, moved) == pytest.approx(expected, rel=1e-12)
    assert chapter.log_snr_shift(BASE, BASE) == 0.0
    with pytest.raises(ValueError, match="K = 5 and K = 2"):
        chapter.log_snr_shift(BASE, Trajectory(np.array([0.1, 0.5])))


@pytest.mark.parametrize(
    ("verdicts", "expected"),
    [
        (["supported", "supported"], "supported"),
        (["supported", "inconclusive"], "inconclusive"),
        (["supported", "contradicted"], "contradicted"),
        (["inconclusive", "inconclusive"], "inconclusive"),
    ],
)
def test_a_size_is_enough_only_when_every_draw_is(verdicts: list[str], expected: str) -> None:
    assert chapter._enough(verdicts) == expected


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="reference_rows \\(16\\) must exceed the largest size"):
        chapter.Params(sizes=[8, 16], reference_rows=16)
    with pytest.raises(ValueError, match="parameter baseline: unknown value 'x'"):
        chapter.Params(baseline="x")
    with pytest.raises(ValueError, match="repeats"):
        chapter.Params(repeats=1)


@pytest.fixture(scope="module")
def result(one_torch_thread) -> chapter.Result:
    return chapter.run(chapter.Params(**TINY))


def test_a_tiny_run_has_one_row_per_draw_and_judges_each(result: chapter.Result) -> None:
    t = result.table
    assert list(zip(t["rows"], t.draw, strict=True)) == [(8, 0), (8, 1), (16, 0), (16, 1)]
    assert result.profile_error.shape == (4, result.levels_t.size)
    assert set(t.verdict) <= {"supported", "contradicted", "inconclusive"}
    assert (t.p_holm >= t.p - 1e-12).all()
    assert (t.vs_ref_lo <= t.vs_ref).all() and (t.vs_ref <= t.vs_ref_hi).all()
    # a draw whose trajectory is VRG's on the reference samples the same: no FID difference
    same = t[t["shift"] == 0.0]
    assert (same.vs_ref == 0.0).all()
    assert list(result.sizes["rows"]) == [8, 16]
    s = chapter.summary(result)
    assert s.n_pooled == 32 and s.tolerance_fid == pytest.approx(0.02 * s.fid_base)
    for fig in (chapter.figure_precision(result),):
        assert len(fig.axes) == 3
    assert "as good as the reference" in chapter.draws_table(result).to_html()
    assert "enough" in chapter.sizes_table(result).to_html()
