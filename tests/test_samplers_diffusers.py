"""Cross-checks against diffusers' schedulers on their own integer timesteps.

The model is the exact predictor of a 2-D Gaussian mixture (nonlinear in x, deterministic) on the
scheduler's own ``alphas_cumprod``; both loops start from the same float64 ``x_T``.

Tolerance, unless stated: ``atol = rtol = 2e-5``. diffusers keeps ``alphas_cumprod`` and its sigmas
in float32 and forms its step coefficients from them (relative rounding ~6e-8 per coefficient);
over 10-20 steps on states of size ~1 whose eps reaches ~10 near the modes, the two loops differ
by up to 7e-6 (measured), while a wrong coefficient or a wrong order changes the result by 1e-3 or
more (last test).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers_orders import singlestep_groups

from vrg_analysis import NoiseSchedule, Trajectory, samplers
from vrg_analysis.models.analytic import GaussianMixture, OptimalEpsModel

diffusers = pytest.importorskip("diffusers")
# diffusers' own numpy-on-tensor calls and its "dpmsolver" deprecation notice
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")

TOL = {"rtol": 2e-5, "atol": 2e-5}
MIXTURE = GaussianMixture.ring_2d()


def _x_T() -> torch.Tensor:  # noqa: N802
    return samplers.initial_noise((16, 2), 0, dtype=torch.float64)


def _setup(scheduler, n: int) -> tuple[NoiseSchedule, OptimalEpsModel]:
    scheduler.set_timesteps(n)
    ours = NoiseSchedule(scheduler.alphas_cumprod.double().numpy())
    return ours, OptimalEpsModel(MIXTURE, ours)


def _diffusers_loop(scheduler, model, x: torch.Tensor, noises=None) -> torch.Tensor:
    for i, t in enumerate(scheduler.timesteps):
        eps = model(x, torch.full((x.shape[0],), float(t), dtype=x.dtype))
        kw = {} if noises is None else {"eta": 0.7, "variance_noise": noises[i]}
        x = scheduler.step(eps, t, x, **kw).prev_sample
    return x


def _levels(schedule: NoiseSchedule, timesteps) -> Trajectory:
    return Trajectory(schedule.alpha_bar(np.asarray(timesteps, dtype=np.float64)))


def _last_level_state(fn, model, x, traj, **kw) -> torch.Tensor:
    records: list[samplers.StepRecord] = []
    fn(model, x, traj, callback=records.append, **kw)
    return records[-1].x


@pytest.mark.parametrize("n", [10, 11, 20])
def test_ddim_with_eta_matches_ddimscheduler(n: int) -> None:
    sched = diffusers.DDIMScheduler(clip_sample=False, set_alpha_to_one=True)
    ours, model = _setup(sched, n)
    zs = torch.randn(n, 16, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    ref = _diffusers_loop(sched, model, _x_T(), noises=zs)

    class Replay:  # hands our sampler diffusers' per-step noise, in order
        def __init__(self) -> None:
            self.i = 0

    replay = Replay()

    def feed(shape, generator, **kw):
        replay.i += 1
        return zs[replay.i - 1]

    mp = pytest.MonkeyPatch()
    mp.setattr(samplers.ddim, "draw_noise", feed)
    try:
        mine = samplers.sample_ddim(model, _x_T(), _levels(ours, sched.timesteps), eta=0.7)
    finally:
        mp.undo()
    assert replay.i == n - 1  # no noise on the last step (s = 0 at alpha_bar = 1)
    torch.testing.assert_close(mine, ref, **TOL)


@pytest.mark.parametrize("n", [10, 11, 20])
def test_dpm_solver_pp_2m_matches_multistep_scheduler(n: int) -> None:
    sched = diffusers.DPMSolverMultistepScheduler(
        solver_order=2, algorithm_type="dpmsolver++", final_sigmas_type="zero"
    )
    ours, model = _setup(sched, n)
    ref = _diffusers_loop(sched, model, _x_T())
    mine = samplers.sample_dpm_solver_pp_2m(model, _x_T(), _levels(ours, sched.timesteps))
    torch.testing.assert_close(mine, ref, **TOL)


@pytest.mark.parametrize("n", [10, 11, 12])
@pytest.mark.parametrize("order", [2, 3])
@pytest.mark.parametrize("solver_type", ["midpoint", "heun"])
@pytest.mark.parametrize("algorithm", ["dpmsolver", "dpmsolver++"])
def test_singlestep_dpm_solver_matches_singlestep_scheduler(
    n: int, order: int, solver_type: str, algorithm: str
) -> None:
    # diffusers refuses a clean final level with noise prediction ("dpmsolver"); it then stops at
    # alpha_bar(t = 0), so our trajectory gets that level appended and is compared there.
    final = "zero" if algorithm == "dpmsolver++" else "sigma_min"
    sched = diffusers.DPMSolverSinglestepScheduler(
        solver_order=order,
        algorithm_type=algorithm,
        solver_type=solver_type,
        final_sigmas_type=final,
        lower_order_final=True,
    )
    ours, model = _setup(sched, n)
    ref = _diffusers_loop(sched, model, _x_T())
    groups = singlestep_groups(sched.order_list)
    # diffusers forms a third-order group's u2 with its solver_type's second-order update
    kw = {
        "order": order,
        "algorithm": algorithm,
        "solver_type": solver_type,
        "intermediate": "diffusers",
    }
    if final == "zero":
        traj = _levels(ours, sched.timesteps)
        mine = samplers.sample_dpm_solver(model, _x_T(), traj, orders=groups, **kw)
    else:
        traj = _levels(ours, [*sched.timesteps.tolist(), 0])
        mine = _last_level_state(
            samplers.sample_dpm_solver, model, _x_T(), traj, orders=[*groups, 1], **kw
        )
    torch.testing.assert_close(mine, ref, **TOL)


@pytest.mark.parametrize("n", [10, 12, 20])
@pytest.mark.parametrize(("skip_prk", "name"), [(False, "f_pndm"), (True, "plms")])
def test_pndm_matches_pndmscheduler(n: int, skip_prk: bool, name: str) -> None:
    sched = diffusers.PNDMScheduler(set_alpha_to_one=True, skip_prk_steps=skip_prk)
    ours, model = _setup(sched, n)
    ref = _diffusers_loop(sched, model, _x_T())
    traj = _levels(ours, sched._timesteps[::-1])  # the grid, without PRK's repeated timesteps
    spec = samplers.get_sampler(name)
    assert spec.nfe(n) == len(sched.timesteps)  # equal model calls: K + 9 (F-PNDM), K + 1 (PLMS)
    torch.testing.assert_close(spec(model, _x_T(), traj), ref, **TOL)


@pytest.mark.parametrize("n", [10, 12, 20])
@pytest.mark.parametrize("order", [2, 3])
def test_deis_logrho_matches_deis_scheduler(n: int, order: int) -> None:
    # diffusers' DEIS stops at alpha_bar(t = 0): compare our state at that (appended) level.
    # lower_order_final=False: diffusers would otherwise drop to first order on that step.
    sched = diffusers.DEISMultistepScheduler(solver_order=order, lower_order_final=False)
    ours, model = _setup(sched, n)
    ref = _diffusers_loop(sched, model, _x_T())
    traj = _levels(ours, [*sched.timesteps.tolist(), 0])
    mine = _last_level_state(samplers.sample_deis, model, _x_T(), traj, order=order, basis="logrho")
    # order 3: diffusers evaluates its closed-form coefficients (differences of O(1) log terms) in
    # float32, 1e-7 relative each; measured difference up to 1.8e-5
    tol = TOL if order == 2 else {"rtol": 1e-4, "atol": 1e-4}
    torch.testing.assert_close(mine, ref, **tol)


def test_a_wrong_order_is_caught_by_these_tolerances() -> None:
    """The tolerance separates: DPM-Solver++ first order vs diffusers' 2M differs far beyond it."""
    sched = diffusers.DPMSolverMultistepScheduler(
        solver_order=2, algorithm_type="dpmsolver++", final_sigmas_type="zero"
    )
    ours, model = _setup(sched, 10)
    ref = _diffusers_loop(sched, model, _x_T())
    wrong = samplers.sample_dpm_solver_multistep(
        model, _x_T(), _levels(ours, sched.timesteps), order=1
    )
    assert float((wrong - ref).abs().max()) > 100 * TOL["atol"]
