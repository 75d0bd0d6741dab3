"""Sampler fidelity to the reference implementations users run (issue 16).

* DPM-Solver++(2M) with the official DPM-Solver's ``lower_order_final`` on and off, ending where
  the official ``sample`` ends (``t_end = 1/N``, no denoising step), against the official file in
  ``../shared/reference/dpm-solver-official`` (skipped where that folder is absent), and against
  diffusers' ``DPMSolverMultistepScheduler`` with ``final_sigmas_type="sigma_min"``;
* DEIS tAB weights against a 30-digit ``mpmath`` integration split at the schedule's kinks, and
  rhoAB weights against their closed form.

The model is the exact predictor of a 2-D Gaussian mixture in float64 (nonlinear, deterministic).
"""

from __future__ import annotations

import importlib.util
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from vrg_analysis import NoiseSchedule, Trajectory, samplers
from vrg_analysis.core.trajectories import time_quadratic
from vrg_analysis.models.analytic import GaussianMixture, OptimalEpsModel
from vrg_analysis.samplers import deis
from vrg_analysis.samplers.core import rho_of

MIXTURE = GaussianMixture.ring_2d()
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")
SCHEDULE = NoiseSchedule.linear()


def _official_module():
    folder = Path(
        os.environ.get(
            "DPM_SOLVER_OFFICIAL_DIR",
            Path(__file__).resolve().parents[2] / "shared" / "reference" / "dpm-solver-official",
        )
    )
    path = folder / "dpm_solver_pytorch.py"
    if not path.is_file():
        pytest.skip(f"the official DPM-Solver file is not at {path} (set DPM_SOLVER_OFFICIAL_DIR)")
    spec = importlib.util.spec_from_file_location("dpm_solver_official", path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def _x_T(n: int = 16) -> torch.Tensor:  # noqa: N802
    return samplers.initial_noise((n, 2), 3, dtype=torch.float64)


# ============================================================ DPM-Solver++(2M), lower_order_final
@pytest.fixture
def float64_default():
    """The official file makes its time grid with ``torch.linspace`` in the default dtype."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


@pytest.mark.parametrize("steps", [5, 8, 12])
@pytest.mark.parametrize("lower_order_final", [True, False])
@pytest.mark.usefixtures("float64_default")
def test_dpm_solver_pp_2m_matches_the_official_sample(steps: int, lower_order_final: bool) -> None:
    official = _official_module()
    model = OptimalEpsModel(MIXTURE, SCHEDULE)
    n = SCHEDULE.num_timesteps
    ns = official.NoiseScheduleVP(
        "discrete",
        alphas_cumprod=torch.tensor(SCHEDULE.alphas_cumprod, dtype=torch.float64),
        dtype=torch.float64,
    )
    # the official discrete time t in [1/N, 1] is our fractional timestep N t - 1
    wrapped = official.model_wrapper(
        lambda x, t: model(x, t.to(torch.float64)), ns, model_type="noise"
    )
    solver = official.DPM_Solver(wrapped, ns, algorithm_type="dpmsolver++")
    ref = solver.sample(
        _x_T(),
        steps=steps,
        order=2,
        skip_type="time_uniform",
        method="multistep",
        lower_order_final=lower_order_final,
    )
    times = solver.get_time_steps("time_uniform", 1.0, 1.0 / n, steps, "cpu").double().numpy()
    traj = Trajectory(SCHEDULE.alpha_bar(n * times[:-1] - 1.0))
    mine = samplers.sample_dpm_solver_pp_2m(
        model,
        _x_T(),
        traj,
        final_alpha_bar=float(SCHEDULE.alpha_bar(n * times[-1] - 1.0)),
        lower_order_final=lower_order_final,
    )
    torch.testing.assert_close(mine, ref, rtol=1e-10, atol=1e-10)
    if steps < 10:  # the option matters below the official threshold (and only there)
        other = samplers.sample_dpm_solver_pp_2m(
            model,
            _x_T(),
            traj,
            final_alpha_bar=float(SCHEDULE.alpha_bar(n * times[-1] - 1.0)),
            lower_order_final=not lower_order_final,
        )
        assert float((other - ref).abs().max()) > 1e-3


def test_lower_order_final_changes_only_below_its_threshold() -> None:
    model = OptimalEpsModel(MIXTURE, SCHEDULE)
    traj = time_quadratic(SCHEDULE, 12)
    end = SCHEDULE.alpha_bar_max
    kw = {"final_alpha_bar": end}
    plain = samplers.sample_dpm_solver_pp_2m(model, _x_T(), traj, **kw)
    official = samplers.sample_dpm_solver_pp_2m(model, _x_T(), traj, lower_order_final=True, **kw)
    diffusers_rule = samplers.sample_dpm_solver_pp_2m(
        model, _x_T(), traj, lower_order_final=True, lower_order_final_below=15, **kw
    )
    assert torch.equal(plain, official)  # 12 steps: not below the official 10
    assert float((diffusers_rule - plain).abs().max()) > 1e-3  # below diffusers' 15
    # into the clean sample the last step is first order whatever the option says
    clean = samplers.sample_dpm_solver_pp_2m(model, _x_T(), traj)
    clean_lof = samplers.sample_dpm_solver_pp_2m(
        model, _x_T(), traj, lower_order_final=True, lower_order_final_below=15
    )
    assert torch.equal(clean, clean_lof)


@pytest.mark.parametrize("n", [6, 10])
@pytest.mark.parametrize("lower_order_final", [True, False])
def test_dpm_solver_pp_2m_matches_diffusers_sigma_min(n: int, lower_order_final: bool) -> None:
    diffusers = pytest.importorskip("diffusers")
    sched = diffusers.DPMSolverMultistepScheduler(
        solver_order=2,
        algorithm_type="dpmsolver++",
        final_sigmas_type="sigma_min",
        lower_order_final=lower_order_final,
    )
    sched.set_timesteps(n)
    ours = NoiseSchedule(sched.alphas_cumprod.double().numpy())
    model = OptimalEpsModel(MIXTURE, ours)
    x = _x_T()
    for t in sched.timesteps:
        eps = model(x, torch.full((x.shape[0],), float(t), dtype=x.dtype))
        x = sched.step(eps, t, x).prev_sample
    traj = Trajectory(ours.alpha_bar(sched.timesteps.double().numpy()))
    mine = samplers.sample_dpm_solver_pp_2m(
        model,
        _x_T(),
        traj,
        final_alpha_bar=ours.alpha_bar_max,  # diffusers' sigma_min: training step 0
        lower_order_final=lower_order_final,
        lower_order_final_below=15,
    )
    # diffusers forms its coefficients from float32 sigmas (tests/test_samplers_diffusers.py)
    torch.testing.assert_close(mine, x, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"final_alpha_bar": 1.5}, r"final_alpha_bar must lie in"),
        ({"final_alpha_bar": 0.01}, r"final_alpha_bar must lie in"),
        ({"final_alpha_bar": float("nan")}, r"final_alpha_bar must lie in"),
        ({"lower_order_final": 1}, r"lower_order_final must be a bool"),
        ({"lower_order_final_below": 9.5}, r"lower_order_final_below must be an int"),
    ],
)
def test_fidelity_options_are_checked(options: dict, message: str) -> None:
    model = OptimalEpsModel(MIXTURE, SCHEDULE)
    with pytest.raises((TypeError, ValueError), match=message):
        samplers.sample_dpm_solver_pp_2m(model, _x_T(), time_quadratic(SCHEDULE, 5), **options)


# ============================================================ DEIS weights
def _mp_weights(nodes: list[float], rho_to: float) -> np.ndarray:
    """tAB weights by mpmath (30 digits, Gauss-Legendre to its own error estimate), the
    integral split at every training level it crosses."""
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 30
    log_a = [mp.log(mp.mpf(float(a))) for a in SCHEDULE.alphas_cumprod]

    def t_of(r):  # the schedule's t(rho): linear in log alpha_bar between training steps
        la = -mp.log(1 + r * r)
        i = int(np.searchsorted(-np.asarray(SCHEDULE.alphas_cumprod), -float(mp.e**la))) - 1
        i = min(max(i, 0), len(log_a) - 2)
        return i + (la - log_a[i]) / (log_a[i + 1] - log_a[i])

    a, b = mp.mpf(rho_to), mp.mpf(nodes[0])
    kinks = [mp.sqrt(mp.e ** (-x) - 1) for x in log_a]
    points = [a, *[k for k in kinks if a < k < b], b]
    u_n = [t_of(mp.mpf(r)) for r in nodes]
    out = []
    for j in range(len(nodes)):

        def lagrange(r, j=j):
            u = t_of(r)
            v = mp.mpf(1)
            for m in range(len(nodes)):
                if m != j:
                    v *= (u - u_n[m]) / (u_n[j] - u_n[m])
            return v

        out.append(float(-mp.quad(lagrange, points, method="gauss-legendre")))
    return np.array(out)


@pytest.mark.parametrize(
    "levels",
    [
        pytest.param(time_quadratic(SCHEDULE, 20).alpha_bar, id="time_quadratic(20)"),
        pytest.param(np.array([0.05, 0.3, 0.62, 0.9, 0.99]), id="fixed"),
    ],
)
def test_deis_tab_weights_match_an_exact_integration(levels: np.ndarray) -> None:
    rho = [rho_of(float(a)) for a in levels]
    u = deis._basis_map("t", SCHEDULE)
    kinks = deis.basis_kinks("t", SCHEDULE)
    worst = 0.0
    # second- and third-order steps (the first and the last step are first order, exact)
    for k in (1, 2, len(rho) // 2, len(rho) - 2):
        for p in (2, 3):
            nodes = [rho[k - j] for j in range(min(p, k + 1))]
            w = deis.deis_weights(nodes, rho[k + 1], u, kinks)
            ref = _mp_weights(nodes, rho[k + 1])
            worst = max(worst, float(np.max(np.abs(w - ref) / np.abs(ref))))
    assert worst <= 1e-12, worst  # measured 8.4e-15 (a single 16-point rule: 3.4e-4)


def test_deis_rho_weights_match_the_closed_form() -> None:
    """rhoAB: the Lagrange polynomials are polynomials in rho, integrated exactly by numpy."""
    rho = [rho_of(float(a)) for a in time_quadratic(SCHEDULE, 20).alpha_bar]
    for k in range(2, len(rho) - 1):
        nodes = [rho[k], rho[k - 1], rho[k - 2]]
        w = deis.deis_weights(nodes, rho[k + 1], lambda r: r)
        for j in range(3):
            roots = [nodes[m] for m in range(3) if m != j]
            poly = np.polynomial.Polynomial.fromroots(roots) / math.prod(
                nodes[j] - r for r in roots
            )
            exact = poly.integ()(rho[k + 1]) - poly.integ()(nodes[0])
            assert abs(w[j] - exact) <= 1e-12 * max(1.0, abs(exact))


def test_deis_kinks_are_the_training_levels() -> None:
    kinks = deis.basis_kinks("t", SCHEDULE)
    assert kinks.shape == (SCHEDULE.num_timesteps,)
    np.testing.assert_allclose(
        kinks, np.sqrt((1 - SCHEDULE.alphas_cumprod) / SCHEDULE.alphas_cumprod), rtol=1e-13
    )
    assert deis.basis_kinks("logrho", SCHEDULE).size == 0
