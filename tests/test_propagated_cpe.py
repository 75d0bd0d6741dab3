"""The propagated CPE (samplers.propagation), VRG on it (vrg.propagated) and its chapter, on cases
with a known answer: DDIM's gains are CPE's coefficients, so for DDIM both objectives agree."""

from __future__ import annotations

import numpy as np
import pytest
from analytic import smooth_profile

from vrg_analysis.core.cpe import cumulative_prediction_error, step_increments
from vrg_analysis.core.schedules import NoiseSchedule
from vrg_analysis.core.trajectories import logsnr_uniform, time_uniform
from vrg_analysis.samplers import SAMPLERS
from vrg_analysis.samplers.propagation import error_gains, propagated_cpe
from vrg_analysis.studies import propagated_cpe as chapter
from vrg_analysis.vrg.propagated import retime_propagated
from vrg_analysis.vrg.retime import VRGSetting, vrg_retime

SCHEDULE = NoiseSchedule.linear()


@pytest.mark.parametrize("traj", [time_uniform(SCHEDULE, 10), logsnr_uniform(SCHEDULE, 7)])
def test_ddim_gains_are_the_cpe_coefficients(traj) -> None:
    g = error_gains("ddim", traj, SCHEDULE)
    np.testing.assert_allclose(g.gains, step_increments(traj.alpha_bar), rtol=1e-10)
    np.testing.assert_allclose(g.alpha_bar, traj.alpha_bar, rtol=1e-9)
    p = smooth_profile(SCHEDULE)
    assert propagated_cpe("ddim", traj, p, SCHEDULE) == pytest.approx(
        cumulative_prediction_error(traj, p, outside="clamp"), rel=1e-10
    )


def test_every_deterministic_sampler_carries_a_constant_error_in_full() -> None:
    """An error that is the same at every call is a shift of eps_hat: every consistent sampler
    integrates it exactly, so the gains sum to the total sigma change (DDIM's)."""
    traj = time_uniform(SCHEDULE, 10)
    total = step_increments(traj.alpha_bar).sum()
    for name, spec in SAMPLERS.items():
        if spec.stochastic or traj.K < spec.min_levels:
            continue
        g = error_gains(name, traj, SCHEDULE)
        assert g.gains.size == spec.nfe(traj.K), name
        assert g.gains.sum() == pytest.approx(total, rel=1e-8), name


def test_a_stochastic_sampler_is_refused() -> None:
    stochastic = next(n for n, s in SAMPLERS.items() if s.stochastic)
    with pytest.raises(ValueError, match="is stochastic"):
        error_gains(stochastic, time_uniform(SCHEDULE, 5), SCHEDULE)


def test_vrg_on_the_propagated_cpe_of_ddim_is_vrg() -> None:
    traj, p = time_uniform(SCHEDULE, 10), smooth_profile(SCHEDULE)
    setting = VRGSetting(0.1, 1e4)
    vrg, _ = vrg_retime(traj, p, SCHEDULE, setting)
    best, info = retime_propagated(traj, p, SCHEDULE, "ddim", setting)
    exact = cumulative_prediction_error(vrg, p, outside="clamp")
    assert info["pcpe"] == pytest.approx(exact, rel=1e-3)
    assert info["pcpe"] < info["pcpe_initial"] and info["converged"]
    assert np.all(best.alpha_bar >= SCHEDULE.alpha_bar_min)
    assert np.all(best.alpha_bar <= SCHEDULE.alpha_bar_max)
    same, info0 = retime_propagated(traj, p, SCHEDULE, "ddim", VRGSetting(0.0, 1e4))
    np.testing.assert_array_equal(same.alpha_bar, traj.alpha_bar)
    with pytest.raises(ValueError, match="keep_start"):
        retime_propagated(traj, p, SCHEDULE, "ddim", VRGSetting(0.1, 1e4, keep_start=True))


@pytest.mark.parametrize(
    ("eff", "reach", "expected"),
    [
        (0.95, 0.1, "supported"),
        (0.9, 0.1, "supported"),
        (0.5, 0.1, "contradicted"),
        (float("nan"), 0.0, "inconclusive"),
        (1.0, 0.0, "inconclusive"),
    ],
)
def test_efficiency_verdict(eff: float, reach: float, expected: str) -> None:
    assert chapter.efficiency_verdict(eff, reach, 0.9) == expected


def test_a_tiny_chapter_run(one_torch_thread) -> None:
    p = chapter.Params(
        samplers=["ddim", "dpm_solver_2"], steps=[5], profile_samples=32, profile_stride=50
    )
    r = chapter.run(p)
    t = r.table
    assert list(t.sampler) == ["ddim", "dpm_solver_2"]
    ddim = t[t.sampler == "ddim"].iloc[0]
    assert ddim.pcpe_ratio == pytest.approx(1.0, rel=1e-9)
    assert ddim.efficiency == pytest.approx(1.0, abs=2e-3) and ddim.verdict == "supported"
    assert (t.gain_best >= t.gain_vrg - 1e-12).all()
    assert set(r.samplers.verdict) <= {"supported", "contradicted", "mixed", "inconclusive"}
    assert "efficiency" in chapter.configurations_table(r).to_html()
    assert "order-1 CPE is right" in chapter.samplers_table(r).to_html()
    assert len(chapter.figure_efficiency(r).axes) == 2
    assert chapter.summary(r).n_configs == 2
    with pytest.raises(ValueError, match="stochastic"):
        chapter.Params(samplers=[next(n for n, s in SAMPLERS.items() if s.stochastic)])
