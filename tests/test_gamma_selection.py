"""Choosing gamma from a validation budget (gamma_selection)."""

import math

import numpy as np
import pytest
import torch
from analytic import smooth_profile

from vrg_analysis import NoiseSchedule, baseline, optimize_trajectory
from vrg_analysis.core.schedules import lambda_from_alpha_bar
from vrg_analysis.models.analytic import reference_ode_endpoint
from vrg_analysis.samplers import initial_noise, sample_ddim
from vrg_analysis.testbeds import make_testbed
from vrg_analysis.vrg.arms import ArmContext
from vrg_analysis.vrg.gamma_selection import (
    DEFAULT_GAMMAS,
    GammaSelectedArm,
    endpoint_deviation,
    fine_reference,
    fine_reference_trajectory,
    select_gamma,
    vrg_candidates,
)

SCHED = NoiseSchedule.linear()


@pytest.fixture(scope="module")
def setup():
    torch.set_num_threads(1)
    bed = make_testbed("mixture-2d")
    base = baseline("time_uniform", bed.schedule, 5)
    profile = smooth_profile(SCHED)
    gammas = (0.0, 0.01, 0.2)
    bounds = dict(alpha_bar_max=SCHED.alpha_bar_max, alpha_bar_min=SCHED.alpha_bar_min)
    cands = vrg_candidates(base, profile, gammas, **bounds)
    x_val = initial_noise((16, 2), 10_000, dtype=torch.float64)
    return bed, base, profile, gammas, bounds, cands, x_val


def test_candidates_are_vrg_at_each_gamma(setup):
    bed, base, profile, gammas, bounds, cands, _ = setup
    assert cands[0] is base  # gamma = 0: the baseline itself
    direct = optimize_trajectory(base, profile, gamma=0.2, reg_lambda=100.0, **bounds).optimized
    np.testing.assert_allclose(cands[2].alpha_bar, direct.alpha_bar, rtol=1e-12)


def test_fine_reference_trajectory_is_uniform_in_lambda():
    traj = fine_reference_trajectory(SCHED.alpha_bar_min, SCHED.alpha_bar_max, 50)
    assert traj.K == 50
    assert traj.alpha_bar[0] == SCHED.alpha_bar_min and traj.alpha_bar[-1] == SCHED.alpha_bar_max
    np.testing.assert_allclose(np.diff(lambda_from_alpha_bar(traj.alpha_bar)).std(), 0, atol=1e-9)
    with pytest.raises(ValueError, match="steps"):
        fine_reference_trajectory(0.1, 0.9, 1)
    with pytest.raises(ValueError, match="start_alpha_bar"):
        fine_reference_trajectory(0.9, 0.1, 10)


def test_scores_are_the_mean_deviation_from_the_fine_solve(setup):
    bed, base, profile, gammas, bounds, cands, x_val = setup
    sel = select_gamma(
        base, profile, bed.oracle, x_val, gammas=gammas, candidates=cands, reference_steps=60
    )
    ref = fine_reference(bed.oracle, x_val, float(base.alpha_bar[0]), steps=60)
    for g, traj, score in zip(sel.gammas, sel.trajectories, sel.scores, strict=True):
        dev = endpoint_deviation(sample_ddim(bed.oracle, x_val, traj), ref)
        assert score == pytest.approx(dev.mean(), rel=1e-12), g
    assert sel.chosen_index == int(np.argmin(sel.scores))
    assert sel.trajectory is sel.trajectories[sel.chosen_index]
    # the budget: 60 reference steps plus each candidate's K, per validation sample
    assert sel.reference_calls == 16 * 60
    assert sel.candidate_calls == 16 * sum(t.K for t in cands)
    assert sel.model_calls == sel.reference_calls + sel.candidate_calls
    assert len(sel.rows()) == len(gammas) and sum(r["chosen"] for r in sel.rows()) == 1
    assert sel.to_dict()["chosen_gamma"] == sel.chosen_gamma


def test_ties_go_to_the_smaller_gamma(setup):
    bed, base, profile, _, _, cands, x_val = setup
    # one trajectory at two gammas, scored against its own samples: both score 0 and tie
    ref = sample_ddim(bed.oracle, x_val, cands[2])
    sel = select_gamma(
        base,
        profile,
        bed.oracle,
        x_val,
        gammas=(0.3, 0.1, 0.0),  # sorted inside: candidates are given for 0.0, 0.1, 0.3
        candidates=(cands[0], cands[2], cands[2]),
        references=ref,
    )
    np.testing.assert_allclose(sel.gammas, [0.0, 0.1, 0.3])
    assert sel.scores[1] == sel.scores[2] == 0.0 < sel.scores[0]
    assert sel.chosen_gamma == 0.1


def test_given_references_cost_no_calls_and_are_checked(setup):
    bed, base, profile, gammas, _, cands, x_val = setup
    ref = torch.zeros_like(x_val)
    sel = select_gamma(
        base, profile, bed.oracle, x_val, gammas=gammas, candidates=cands, references=ref
    )
    assert sel.reference_calls == 0
    x = sample_ddim(bed.oracle, x_val, cands[0])
    assert sel.scores[0] == pytest.approx(float(x.pow(2).mean()), rel=1e-12)
    with pytest.raises(ValueError, match="references"):
        select_gamma(
            base, profile, bed.oracle, x_val, gammas=gammas, candidates=cands, references=ref[:3]
        )


def test_before_run_is_called_before_every_run(setup):
    bed, base, profile, gammas, _, cands, x_val = setup
    calls = []
    select_gamma(
        base,
        profile,
        bed.oracle,
        x_val,
        gammas=gammas,
        candidates=cands,
        reference_steps=20,
        before_run=lambda: calls.append(1),
    )
    assert len(calls) == 1 + len(gammas)


@pytest.mark.parametrize(
    "gammas, match",
    [
        ((), "at least one"),
        ((0.1, -0.1), r"gammas\[1\]"),
        ((0.1, 1.0), r"gammas\[1\]"),
        ((0.1, math.nan), r"gammas\[1\]"),
        ((0.1, 0.1), "duplicates"),
    ],
)
def test_bad_gammas_are_refused(setup, gammas, match):
    bed, base, profile, _, _, _, x_val = setup
    with pytest.raises(ValueError, match=match):
        select_gamma(base, profile, bed.oracle, x_val, gammas=gammas)


def test_other_bad_inputs(setup):
    bed, base, profile, gammas, _, cands, x_val = setup
    with pytest.raises(ValueError, match="candidates"):
        select_gamma(base, profile, bed.oracle, x_val, gammas=gammas, candidates=cands[:2])
    with pytest.raises(ValueError, match="x_val"):
        select_gamma(base, profile, bed.oracle, x_val[:1], gammas=gammas, candidates=cands)
    with pytest.raises(ValueError, match="differ in shape"):
        endpoint_deviation(x_val, x_val[:3])
    assert DEFAULT_GAMMAS[0] == 0.0 and 0.01 in DEFAULT_GAMMAS


def test_arm_selects_on_the_context_noise_and_reports_its_budget(setup):

    bed, base, profile, gammas, bounds, cands, x_val = setup
    ctx = ArmContext(
        profile=profile, schedule=SCHED, model=bed.oracle, validation_noise=lambda n: x_val[:n]
    )
    arm = GammaSelectedArm(gammas=gammas, n_validation=16, reference_steps=20)
    traj, info = arm.retime(base, ctx)
    ref = select_gamma(
        base, profile, bed.oracle, x_val, gammas=gammas, candidates=cands, reference_steps=20
    )
    assert info["chosen_gamma"] == ref.chosen_gamma
    np.testing.assert_allclose(traj.alpha_bar, ref.trajectory.alpha_bar, rtol=1e-12)
    assert info["model_calls"] == 16 * (20 + len(gammas) * base.K) == ref.model_calls
    assert info["details"]["scores"] == pytest.approx(list(ref.scores), rel=1e-12)
    # the oracle twin scores against the exact ODE: no reference calls
    oracle = GammaSelectedArm(gammas=gammas, n_validation=16, exact=bed.mixture, tolerance=1e-7)
    _, oinfo = oracle.retime(base, ctx)
    exact = reference_ode_endpoint(
        bed.mixture, x_val, float(base.alpha_bar[0]), rtol=1e-7, atol=1e-7
    )
    want = select_gamma(
        base, profile, bed.oracle, x_val, gammas=gammas, candidates=cands, references=exact
    )
    assert oinfo["model_calls"] == 16 * len(gammas) * base.K
    assert oinfo["chosen_gamma"] == want.chosen_gamma
    assert oracle.label != arm.label and oracle.to_dict()["exact"] == bed.mixture.to_dict()
    with pytest.raises(ValueError, match="validation_noise"):
        arm.retime(base, ArmContext(profile=profile, schedule=SCHED))
    with pytest.raises(ValueError, match="n_validation"):
        GammaSelectedArm(n_validation=1)
