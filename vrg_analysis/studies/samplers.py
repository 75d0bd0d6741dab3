"""The sampler chapter: measured orders, error at equal model calls, agreement with diffusers.

VRG changes *where* a sampler evaluates the model, never *how* it steps, so the book's samplers
(:mod:`vrg_analysis.samplers`) must be right before any VRG result means anything. This chapter
checks them on an exact testbed, where the closed-form optimal predictor ``eps*`` has no model
error and only the sampler's own discretisation error is left (float64 throughout):

* **the registry**: every sampler's nominal order and its cost in model calls, checked against a
  counted run (:func:`nfe_check`), and the per-sample seeding (:func:`seeding_check`: a sample's
  starting noise and a DDPM sample's step noise do not depend on the batch it is drawn in);
* **measured order of convergence** (:func:`convergence_errors`, :func:`order_fit`): the state at
  the least noisy of ``K`` levels between two fixed levels against the probability-flow ODE
  ``dy/dsigma = eps*(x)`` (DDIM paper, eq. 14, in ``y = x / sqrt(alpha_bar)`` and
  ``sigma = sqrt((1 - alpha_bar) / alpha_bar)``) solved from the same ``x_T``. A method of global
  order ``p`` has ``error ~ C h^p`` with ``h ~ 1 / (K - 1)``, so the order is minus the slope of
  ``log(error)`` against ``log(K - 1)``: an ordinary least-squares fit
  (:func:`~vrg_analysis.evaluation.stats.log_log_fit`) with the Student-t interval of the slope
  on ``n - 2`` degrees of freedom. The claim "the measured order is within 0.25 of the nominal
  order" is judged for each sampler and grid by the book's one rule
  (:func:`~vrg_analysis.evaluation.stats.decide`, ``claim="within"``), Holm-corrected over the
  table (:func:`judge_orders`);
* **error at the clean sample at equal model calls** (:func:`endpoint_errors`) on a baseline
  trajectory, with its floor (:func:`final_step_floor`): the first-order step into ``alpha_bar = 1``
  from the exact state at the schedule's least noisy level (the DDIM update, DDIM paper eq. 12
  with ``eta = 0`` and ``alpha_bar_next = 1``);
* **agreement with diffusers' schedulers** on their own integer grids (:func:`diffusers_agreement`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from numpy.typing import ArrayLike
from torch import Tensor

from vrg_analysis import samplers as smp
from vrg_analysis.core.schedules import (
    NoiseSchedule,
    alpha_bar_from_lambda,
    lambda_from_alpha_bar,
)
from vrg_analysis.core.trajectories import BASELINES, Trajectory, baseline
from vrg_analysis.evaluation.stats import Interval, adjust_pvalues, aggregate, decide, log_log_fit
from vrg_analysis.models.analytic import OptimalEpsModel, reference_ode_endpoint
from vrg_analysis.params import as_choice, as_float, as_int, as_tuple, check_seeds
from vrg_analysis.report import colour, panel_size, styled
from vrg_analysis.testbeds import Testbed, known_testbeds, make_testbed

__all__ = [
    "Params",
    "Result",
    "Summary",
    "OrderFit",
    "GRIDS",
    "FAMILIES",
    "DDIM_TWINS",
    "ORDER_TOLERANCE",
    "ODE_TOL",
    "ROUNDING",
    "rms_error",
    "order_fit",
    "last_doubling",
    "fixed_grid",
    "registry_frame",
    "nfe_check",
    "seeding_check",
    "convergence_errors",
    "judge_orders",
    "endpoint_errors",
    "final_step_floor",
    "order_groups",
    "diffusers_checks",
    "compare_with_diffusers",
    "diffusers_agreement",
    "known_cause",
    "run",
    "registry_table",
    "order_table",
    "figure_convergence",
    "endpoint_table",
    "figure_endpoint",
    "diffusers_table",
    "summary",
]

CHAPTER = "samplers"
#: The two grids of the convergence study: uniform in half log-SNR lambda, uniform in time t.
GRIDS: tuple[str, ...] = ("lambda-uniform", "time-uniform")
_GRID_SHORT = {"lambda-uniform": "lambda", "time-uniform": "time"}
#: rtol = atol of the reference probability-flow ODE solves (DOP853).
ODE_TOL = 1e-10
#: The band of the order claim: the measured order within this of the nominal one.
ORDER_TOLERANCE = 0.25
#: DPM-Solver-1 and DEIS tAB1 are DDIM (checked, drawn once).
DDIM_TWINS: tuple[str, ...] = ("dpm_solver_1", "deis_tab1")
#: Differences of the float64 diffusers runs up to this are rounding.
ROUNDING = 1e-10
#: What "about 2" means for the PNDM family's last doubling.
_PNDM = ("f_pndm", "plms", "ipndm")


def _deterministic() -> list[str]:
    return [n for n, s in smp.SAMPLERS.items() if not s.stochastic]


def _stochastic() -> list[str]:
    return [n for n, s in smp.SAMPLERS.items() if s.stochastic]


def _families() -> dict[str, list[str]]:
    det = _deterministic()
    return {
        "DPM-Solver": [n for n in det if n.startswith("dpm_solver") and n not in DDIM_TWINS],
        "PNDM": [n for n in det if n in ("f_pndm", "s_pndm", "plms", "ipndm")],
        "DEIS": [n for n in det if n.startswith("deis") and n not in DDIM_TWINS],
    }


#: The panels of the figures: sampler families (DDIM is drawn in each).
FAMILIES: dict[str, list[str]] = _families()


@dataclass(frozen=True)
class Params:
    """The chapter's parameters (the notebook's ``parameters`` cell; CI-sized defaults)."""

    testbed: str = "mixture-2d"
    n_samples: int = 64
    seed: int = 0
    alpha_bar_start: float = 0.05
    alpha_bar_end: float = 0.9
    convergence_steps: tuple[int, ...] = (10, 19, 37, 73, 145)
    table_levels: int = 10
    endpoint_baseline: str = "logsnr_uniform"
    nfe_budgets: tuple[int, ...] = (10, 15, 20, 30, 40, 60, 80)
    diffusers_steps: tuple[int, ...] = (10, 20)

    def __post_init__(self) -> None:
        s = object.__setattr__
        s(self, "testbed", as_choice(self.testbed, "testbed", known_testbeds()))
        # samples 3 to 7 are redrawn alone in the seeding check
        s(self, "n_samples", as_int(self.n_samples, "n_samples", minimum=8))
        s(self, "seed", check_seeds([self.seed], "seed")[0])
        for name in ("alpha_bar_start", "alpha_bar_end"):
            s(
                self,
                name,
                as_float(
                    getattr(self, name),
                    name,
                    minimum=0.0,
                    maximum=1.0,
                    open_low=True,
                    open_high=True,
                ),
            )
        if not self.alpha_bar_start < self.alpha_bar_end:
            raise ValueError(
                "parameter alpha_bar_start must be below alpha_bar_end (noisiest level first), "
                f"got {self.alpha_bar_start} and {self.alpha_bar_end}"
            )
        least = max(spec.min_levels for spec in smp.SAMPLERS.values())
        steps = tuple(sorted(set(as_tuple(self.convergence_steps, "convergence_steps", int))))
        if len(steps) < 3 or steps[0] < least:
            raise ValueError(
                f"parameter convergence_steps needs at least 3 distinct values >= {least} (a "
                f"slope with an interval needs 3 points), got {list(steps)}"
            )
        s(self, "convergence_steps", steps)
        s(self, "table_levels", as_int(self.table_levels, "table_levels", minimum=least))
        s(
            self,
            "endpoint_baseline",
            as_choice(self.endpoint_baseline, "endpoint_baseline", sorted(BASELINES)),
        )
        budgets = tuple(sorted(set(as_tuple(self.nfe_budgets, "nfe_budgets", int))))
        if budgets[0] < least:
            raise ValueError(f"parameter nfe_budgets must be >= {least}, got {list(budgets)}")
        s(self, "nfe_budgets", budgets)
        d_steps = tuple(sorted(set(as_tuple(self.diffusers_steps, "diffusers_steps", int))))
        if d_steps[0] < 2:
            raise ValueError(f"parameter diffusers_steps must be >= 2, got {list(d_steps)}")
        s(self, "diffusers_steps", d_steps)


# ===================================================================== estimators
def rms_error(x: Tensor, ref: Tensor) -> float:
    """Root mean square over the samples (rows) of the Euclidean distance of ``x`` to ``ref``."""
    if x.shape != ref.shape:
        raise ValueError(f"shapes differ: {tuple(x.shape)} and {tuple(ref.shape)}")
    return float((x - ref).pow(2).sum(dim=1).mean().sqrt())


@dataclass(frozen=True)
class OrderFit:
    """The measured order of convergence: minus the least-squares slope of ``log(error)`` against
    ``log(K - 1)``, its Student-t interval, and the two-sided p-value of "the order is
    ``nominal``" (the slope's t test on ``n - 2`` degrees of freedom)."""

    order: Interval
    stderr: float
    p_nominal: float
    n: int


def order_fit(
    levels: ArrayLike, errors: ArrayLike, nominal: float, confidence: float = 0.95
) -> OrderFit:
    """Fit ``log(error) = c - p log(K - 1)`` over the given numbers of levels ``K``
    (:func:`~vrg_analysis.evaluation.stats.log_log_fit`): the order ``p``, its t interval
    ``p +- t_{n-2} * stderr`` and the p-value of ``p = nominal``. With an exact power law the
    interval has zero width."""
    k = np.asarray(levels, dtype=np.float64).reshape(-1)
    e = np.asarray(errors, dtype=np.float64).reshape(-1)
    if k.size != e.size or k.size < 3:
        raise ValueError(f"need >= 3 (K, error) pairs of equal length, got {k.size} and {e.size}")
    if np.any(k < 2) or np.any(e <= 0) or not np.all(np.isfinite(e)):
        raise ValueError("need K >= 2 and finite positive errors to fit a log-log slope")
    fit = log_log_fit(k - 1.0, e, confidence)
    iv = Interval(
        -fit.slope, -fit.slope_high, -fit.slope_low, fit.confidence, "t (regression slope)"
    )
    return OrderFit(order=iv, stderr=fit.stderr, p_nominal=fit.p_value(-nominal), n=fit.n)


def last_doubling(levels: ArrayLike, errors: ArrayLike) -> float:
    """The order over the last two points alone (where the slope is heading); a two-point slope
    has no interval."""
    k = np.asarray(levels, dtype=np.float64)
    e = np.asarray(errors, dtype=np.float64)
    return float(-(np.log(e[-1]) - np.log(e[-2])) / (np.log(k[-1] - 1) - np.log(k[-2] - 1)))


def fixed_grid(
    schedule: NoiseSchedule, kind: str, alpha_bar_start: float, alpha_bar_end: float, k: int
) -> Trajectory:
    """``k`` levels from ``alpha_bar_start`` to ``alpha_bar_end``, uniform in the half log-SNR
    ``lambda`` (``"lambda-uniform"``) or in the schedule's training time (``"time-uniform"``)."""
    if kind == "lambda-uniform":
        lam_0, lam_1 = lambda_from_alpha_bar([alpha_bar_start, alpha_bar_end])
        return Trajectory(alpha_bar_from_lambda(np.linspace(lam_0, lam_1, k)))
    if kind == "time-uniform":
        t_0, t_1 = schedule.t_from_alpha_bar([alpha_bar_start, alpha_bar_end])
        return Trajectory(schedule.alpha_bar(np.linspace(t_0, t_1, k)))
    raise ValueError(f"unknown grid {kind!r}; expected one of {GRIDS}")


# ===================================================================== the checks
def registry_frame(table_levels: int) -> pd.DataFrame:
    """Every registered sampler: what it implements, nominal order, NFE at ``table_levels``."""
    return pd.DataFrame(
        [
            {
                "sampler": name,
                "implements": spec.reference,
                "nominal order": spec.order,
                f"NFE for K={table_levels}": spec.nfe(table_levels),
                "fewest levels": spec.min_levels,
                "stochastic": "yes" if spec.stochastic else "",
            }
            for name, spec in smp.SAMPLERS.items()
        ]
    )


def nfe_check(model: Any, x_T: Tensor, trajectory: Trajectory, seed: int) -> dict[str, bool]:
    """Whether ``spec.nfe(K)`` equals the model calls a counted run makes, per sampler."""
    gens = smp.sample_generators(seed, x_T.shape[0])
    out = {}
    for name, spec in smp.SAMPLERS.items():
        res = smp.sample(name, model, x_T, trajectory, generator=gens)
        out[name] = res.nfe == spec.nfe(trajectory.K)
    return out


def seeding_check(
    model: Any,
    trajectory: Trajectory,
    shape: tuple[int, ...],
    seed: int,
    *,
    rows: tuple[int, int] = (3, 8),
) -> tuple[bool, float]:
    """Per-sample seeding: the starting noise of samples ``rows`` drawn alone equals theirs in
    the full batch (first value), and their DDPM samples, drawn with per-sample generators, differ
    from the batch's by the returned largest absolute difference (0 when batch-invariant)."""
    lo, hi = rows
    x_all = smp.initial_noise(shape, seed, dtype=torch.float64)
    part = smp.initial_noise((hi - lo, *shape[1:]), seed, start=lo, dtype=torch.float64)
    same = bool(torch.equal(part, x_all[lo:hi]))
    gen_all = smp.sample_generators(seed + 1, shape[0])
    gen_part = smp.sample_generators(seed + 1, hi - lo, start=lo)
    ddpm_all = smp.sample("ddpm", model, x_all, trajectory, generator=gen_all).x
    ddpm_part = smp.sample("ddpm", model, part, trajectory, generator=gen_part).x
    return same, float((ddpm_all[lo:hi] - ddpm_part).abs().max())


def _state_at_last_level(name: str, model: Any, x_T: Tensor, trajectory: Trajectory) -> Tensor:
    records: list[smp.StepRecord] = []
    smp.get_sampler(name)(model, x_T, trajectory, callback=records.append)
    last = records[-1]
    if last.step != trajectory.K - 1 or last.alpha_bar_next != 1.0:
        raise RuntimeError(f"{name}: the last record is not the step into the clean sample")
    return last.x


def convergence_errors(bed: Testbed, x_T: Tensor, params: Params) -> pd.DataFrame:
    """The RMS error at the least noisy level of every deterministic sampler, per grid and K,
    against the exact ODE solved from the same ``x_T`` to that level (DOP853, :data:`ODE_TOL`)."""
    ref = reference_ode_endpoint(
        bed.mixture,
        x_T,
        params.alpha_bar_start,
        rtol=ODE_TOL,
        atol=ODE_TOL,
        alpha_bar_end=params.alpha_bar_end,
    )
    rows = []
    for kind in GRIDS:
        for k in params.convergence_steps:
            traj = fixed_grid(bed.schedule, kind, params.alpha_bar_start, params.alpha_bar_end, k)
            for name in _deterministic():
                x = _state_at_last_level(name, bed.oracle, x_T, traj)
                rows.append({"grid": kind, "sampler": name, "K": k, "error": rms_error(x, ref)})
    return pd.DataFrame(rows)


def judge_orders(errors: pd.DataFrame, tolerance: float = ORDER_TOLERANCE) -> pd.DataFrame:
    """One row per sampler and grid: the fitted order with its t interval, the last doubling, and
    the verdict on "the measured order is within ``tolerance`` of the nominal order" by the one
    rule (``claim="within"``, band ``(-tolerance, tolerance)`` on measured - nominal), the
    p-values of "order = nominal" Holm-corrected over the whole table."""
    rows = []
    for (sampler, grid), g in errors.groupby(["sampler", "grid"], sort=False):
        g = g.sort_values("K")
        nominal = smp.get_sampler(sampler).order
        fit = order_fit(g["K"], g["error"], nominal)
        rows.append(
            {
                "sampler": sampler,
                "grid": grid,
                "nominal order": nominal,
                "fitted": fit.order.estimate,
                "ci_low": fit.order.low,
                "ci_high": fit.order.high,
                "last doubling": last_doubling(g["K"], g["error"]),
                "p": fit.p_nominal,
            }
        )
    t = pd.DataFrame(rows)
    t["p (Holm)"] = adjust_pvalues(t["p"].to_numpy(), "holm")
    t["verdict"] = [
        decide(
            r.fitted - r["nominal order"],
            r["p (Holm)"],
            claim="within",
            band=(-tolerance, tolerance),
            interval=(r.ci_low - r["nominal order"], r.ci_high - r["nominal order"]),
        ).verdict
        for _, r in t.iterrows()
    ]
    return t


def endpoint_errors(bed: Testbed, x_T: Tensor, params: Params) -> tuple[pd.DataFrame, dict]:
    """Every deterministic sampler on the ``endpoint_baseline`` trajectory with the ``K`` whose
    model calls equal each budget (skipped below its fewest levels), against the exact clean
    endpoint from the same ``x_T``; returns the errors and the reference endpoints by start
    level."""
    refs: dict[float, Tensor] = {}
    rows = []
    for budget in params.nfe_budgets:
        for name in _deterministic():
            spec = smp.get_sampler(name)
            k = budget - spec.extra_calls
            if k < spec.min_levels or spec.nfe(k) != budget:
                continue
            traj = baseline(params.endpoint_baseline, bed.schedule, k)
            a_T = float(traj.alpha_bar[0])
            if a_T not in refs:
                refs[a_T] = reference_ode_endpoint(
                    bed.mixture, x_T, a_T, rtol=ODE_TOL, atol=ODE_TOL
                )
            res = smp.sample(name, bed.oracle, x_T, traj)
            if res.nfe != budget:
                raise RuntimeError(f"{name}: {res.nfe} model calls for a budget of {budget}")
            rows.append(
                {"sampler": name, "NFE": budget, "K": k, "error": rms_error(res.x, refs[a_T])}
            )
    return pd.DataFrame(rows), refs


def final_step_floor(bed: Testbed, x_T: Tensor, params: Params, refs: dict) -> tuple[float, float]:
    """The floor of the error at the clean sample: one first-order (DDIM) step into
    ``alpha_bar = 1`` from the exact state at the schedule's least noisy level. Returns the error
    and that level."""
    a_T = float(
        baseline(params.endpoint_baseline, bed.schedule, max(params.nfe_budgets)).alpha_bar[0]
    )
    a_last = float(bed.schedule.alpha_bar_max)
    if a_T not in refs:
        refs[a_T] = reference_ode_endpoint(bed.mixture, x_T, a_T, rtol=ODE_TOL, atol=ODE_TOL)
    exact_last = reference_ode_endpoint(
        bed.mixture, x_T, a_T, rtol=ODE_TOL, atol=ODE_TOL, alpha_bar_end=a_last
    )
    x = smp.sample_ddim(bed.oracle, exact_last, Trajectory([a_last]))
    return rms_error(x, refs[a_T]), a_last


# ===================================================================== diffusers
def order_groups(order_list: Sequence[int]) -> list[int]:
    """diffusers' per-step orders ``[1, 2, 3, 1, 2, ..]`` as singlestep group sizes: each run
    ``1, 2, .., p`` is one group of size ``p``."""
    groups: list[int] = []
    for o in order_list:
        if o == 1 or not groups:
            groups.append(1)
        else:
            groups[-1] += 1
    return groups


def _schedule_in_float64(sched: Any, schedule: NoiseSchedule) -> None:
    """diffusers keeps its schedule in float32: recompute it in float64 from the same
    ``alphas_cumprod``."""
    if hasattr(sched, "sigmas"):  # DPM-Solver, DEIS: sigma per timestep, then the final one
        t = sched.timesteps.numpy().astype(float)
        final = 0.0 if float(sched.sigmas[-1]) == 0.0 else float(schedule.sigma(0.0))
        sched.sigmas = torch.from_numpy(np.append(schedule.sigma(t), final))
    else:  # DDIM, PNDM read alphas_cumprod directly
        sched.alphas_cumprod = sched.alphas_cumprod.double()
        sched.final_alpha_cumprod = sched.final_alpha_cumprod.double()


def _import_diffusers() -> Any:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm, via diffusers
        try:
            import diffusers
        except ImportError:
            return None
    return diffusers


def diffusers_checks(d: Any) -> list[dict[str, Any]]:
    """The scheduler-against-sampler pairs: ``make`` builds diffusers' scheduler, ``ours`` names
    (or is) our sampler; ``eta`` for a stochastic pair, ``groups`` to pass diffusers' singlestep
    groups, ``grid``: ``"timesteps"`` (default), ``"unique"`` (PNDM's ``_timesteps``) or
    ``"to_t0"`` (DEIS stops at ``alpha_bar(t=0)``; our state at that level is compared)."""
    dpm = {"algorithm_type": "dpmsolver++", "final_sigmas_type": "zero"}
    checks: list[dict[str, Any]] = [
        {
            "diffusers": "DDIM, eta=0",
            "make": partial(d.DDIMScheduler, clip_sample=False, set_alpha_to_one=True),
            "ours": "ddim",
        },
        {
            "diffusers": "DDIM, eta=1",
            "make": partial(d.DDIMScheduler, clip_sample=False, set_alpha_to_one=True),
            "ours": "ddpm",
            "eta": 1.0,
        },
        {
            "diffusers": "DPMSolverMultistep, 2",
            "make": partial(d.DPMSolverMultistepScheduler, solver_order=2, **dpm),
            "ours": "dpm_solver_pp_2m",
        },
        {
            "diffusers": "DPMSolverSinglestep, 2",
            "make": partial(
                d.DPMSolverSinglestepScheduler, solver_order=2, lower_order_final=True, **dpm
            ),
            "ours": "dpm_solver_pp_2s",
            "groups": True,
        },
        {
            "diffusers": "DPMSolverSinglestep, 3",
            "make": partial(
                d.DPMSolverSinglestepScheduler, solver_order=3, lower_order_final=True, **dpm
            ),
            "ours": partial(smp.sample_dpm_solver, order=3, algorithm="dpmsolver++"),
            "label": "sample_dpm_solver, 3, ++",
            "groups": True,
        },
        {
            "diffusers": "PNDM, PRK + PLMS",
            "make": partial(d.PNDMScheduler, set_alpha_to_one=True, skip_prk_steps=False),
            "ours": "f_pndm",
            "grid": "unique",
        },
        {
            "diffusers": "PNDM, skip_prk_steps",
            "make": partial(d.PNDMScheduler, set_alpha_to_one=True, skip_prk_steps=True),
            "ours": "plms",
            "grid": "unique",
        },
    ]
    for order in (2, 3):
        checks.append(
            {
                "diffusers": f"DEISMultistep, {order}",
                "make": partial(
                    d.DEISMultistepScheduler, solver_order=order, lower_order_final=False
                ),
                "ours": partial(smp.sample_deis, order=order, basis="logrho"),
                "label": f"sample_deis, {order}, logrho",
                "grid": "to_t0",
            }
        )
    return checks


def compare_with_diffusers(
    check: dict[str, Any],
    n_steps: int,
    mixture: Any,
    x_T: Tensor,
    *,
    seed: int = 0,
    float64: bool = False,
) -> tuple[float, int, int, int]:
    """Run diffusers' stepping loop and our sampler from the same ``x_T`` on the scheduler's own
    grid, with ``eps*`` built on the scheduler's ``alphas_cumprod``. Returns the largest absolute
    difference, diffusers' and our model calls, and the scheduler's training timesteps."""
    sched = check["make"]()
    sched.set_timesteps(n_steps)
    schedule = NoiseSchedule(sched.alphas_cumprod.double().numpy())
    model = OptimalEpsModel(mixture, schedule)
    grid = check.get("grid", "timesteps")
    t_grid = sched._timesteps[::-1] if grid == "unique" else sched.timesteps.numpy()
    if grid == "to_t0":
        t_grid = np.append(t_grid, 0)
    trajectory = Trajectory(schedule.alpha_bar(np.asarray(t_grid, dtype=float)))
    options = {"orders": order_groups(sched.order_list)} if check.get("groups") else {}
    if float64:
        _schedule_in_float64(sched, schedule)
    eta = check.get("eta")
    # stochastic: the same seeded generator on both sides, drawn in the same order
    step_kw = {} if eta is None else {"eta": eta, "generator": torch.Generator().manual_seed(seed)}
    x = x_T.clone()
    n = x.shape[0]
    for t in sched.timesteps:
        eps = model(x, torch.full((n,), float(t), dtype=x.dtype))
        x = sched.step(eps, t, x, **step_kw).prev_sample
    ours = check["ours"]
    fn: Callable[..., Tensor] = smp.get_sampler(ours) if isinstance(ours, str) else ours
    records: list[smp.StepRecord] = []
    gen = None if eta is None else torch.Generator().manual_seed(seed)
    y = fn(model, x_T, trajectory, callback=records.append, generator=gen, **options)
    mine = records[-1].x if grid == "to_t0" else y
    diff = float((mine - x).abs().max())
    return diff, len(sched.timesteps), records[-1].nfe, int(sched.config.num_train_timesteps)


def known_cause(row: pd.Series) -> str:
    """Why a float64 run still differs, where the cause is known: ``"multistep"`` (diffusers'
    multistep DPM-Solver casts the sample to float32), ``"pndm_half_step"`` (F-PNDM on an odd
    step ratio: diffusers puts the Runge-Kutta half step on an integer timestep), else
    ``"unexplained"``."""
    if row["diffusers"].startswith("DPMSolverMultistep"):
        return "multistep"
    if row["ours"] == "f_pndm" and row["step ratio"] % 2 == 1:
        return "pndm_half_step"
    return "unexplained"


def diffusers_agreement(
    mixture: Any,
    x_T: Tensor,
    steps: Sequence[int],
    seed: int,
    d: Any = None,
) -> pd.DataFrame | None:
    """Every check of :func:`diffusers_checks` at every number of inference steps, with
    diffusers' schedule in float32 (as shipped) and recomputed in float64; ``None`` without
    diffusers."""
    d = d if d is not None else _import_diffusers()
    if d is None:
        return None
    rows = []
    with warnings.catch_warnings():
        # diffusers' own numpy-on-tensor calls and deprecation notices
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        for check in diffusers_checks(d):
            for n in steps:
                d32, calls_ref, calls_ours, n_train = compare_with_diffusers(
                    check, n, mixture, x_T, seed=seed
                )
                d64 = compare_with_diffusers(check, n, mixture, x_T, seed=seed, float64=True)[0]
                rows.append(
                    {
                        "diffusers": check["diffusers"],
                        "ours": check.get("label", check["ours"]),
                        "steps": n,
                        "calls": f"{calls_ref} / {calls_ours}",
                        "max |diff|": d32,
                        "max |diff|, float64": d64,
                        "step ratio": n_train // n,
                    }
                )
    frame = pd.DataFrame(rows)
    frame.attrs["diffusers_version"] = d.__version__
    return frame


# ===================================================================== the chapter
@dataclass(frozen=True, eq=False)
class Result:
    """Everything the chapter shows."""

    params: Params
    registry: pd.DataFrame = field(repr=False)
    nfe_agree: dict[str, bool]
    seed_same: bool
    ddpm_diff: float
    convergence: pd.DataFrame = field(repr=False)
    orders: pd.DataFrame = field(repr=False)
    endpoint: pd.DataFrame = field(repr=False)
    final_step_err: float
    last_level: float
    mode_std: float
    diffusers: pd.DataFrame | None = field(repr=False)
    diffusers_version: str = ""


def run(params: Params, *, diffusers: bool = True) -> Result:
    """Run every check of the chapter on ``params.testbed``'s exact predictor (``diffusers=False``
    skips the comparison with diffusers)."""
    bed = make_testbed(params.testbed)
    if bed.oracle is None or bed.mixture is None:
        raise ValueError(
            f"parameter testbed: {params.testbed!r} has no exact predictor; the sampler chapter "
            "needs an exact testbed (a mixture)"
        )
    x_T = smp.initial_noise((params.n_samples, bed.dim), params.seed, dtype=torch.float64)
    check_traj = baseline(params.endpoint_baseline, bed.schedule, params.table_levels)
    nfe_ok = nfe_check(bed.oracle, x_T, check_traj, params.seed + 1)
    same, ddpm_diff = seeding_check(bed.oracle, check_traj, tuple(x_T.shape), params.seed)
    conv = convergence_errors(bed, x_T, params)
    end, refs = endpoint_errors(bed, x_T, params)
    floor, a_last = final_step_floor(bed, x_T, params, refs)
    covs = np.asarray(bed.mixture.covs)
    xdf = (
        diffusers_agreement(bed.mixture, x_T, params.diffusers_steps, params.seed)
        if diffusers
        else None
    )
    return Result(
        params=params,
        registry=registry_frame(params.table_levels),
        nfe_agree=nfe_ok,
        seed_same=same,
        ddpm_diff=ddpm_diff,
        convergence=conv,
        orders=judge_orders(conv),
        endpoint=end,
        final_step_err=floor,
        last_level=a_last,
        mode_std=float(np.sqrt(np.linalg.eigvalsh(covs).min())),
        diffusers=xdf,
        diffusers_version=xdf.attrs.get("diffusers_version", "") if xdf is not None else "",
    )


# ===================================================================== rendering
def registry_table(result: Result) -> Any:
    """The registered samplers."""
    return styled(
        result.registry,
        caption="The registered samplers: nominal order and model calls (NFE)",
    )


def order_table(result: Result) -> Any:
    """The measured orders per sampler and grid, with the t interval of the fitted slope, the last
    doubling and the verdict on "within 0.25 of the nominal order" (Holm over the table)."""
    t = result.orders.copy()
    t["interval"] = [f"[{lo:.2f}, {hi:.2f}]" for lo, hi in zip(t.ci_low, t.ci_high, strict=True)]
    order = {n: i for i, n in enumerate(_deterministic())}
    t = t.sort_values(["sampler", "grid"], key=lambda c: c.map(order) if c.name == "sampler" else c)
    cols = [
        "sampler",
        "grid",
        "nominal order",
        "fitted",
        "interval",
        "last doubling",
        "p (Holm)",
        "verdict",
    ]
    return styled(
        t[cols],
        formats={"fitted": "{:.2f}", "last doubling": "{:.2f}", "p (Holm)": "{:.2g}"},
        caption=(
            f"Measured order (minus the slope of log error against log(K - 1), 95% t interval); "
            f"claim judged: the measured order is within {ORDER_TOLERANCE} of the nominal order"
        ),
    )


def _family_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with a ``family`` column; DDIM's rows repeated in every family."""
    parts = []
    for family, names in FAMILIES.items():
        parts.append(frame[frame.sampler.isin(["ddim", *names])].assign(family=family))
    return pd.concat(parts, ignore_index=True)


def _legend(fig: Any, axes: Any, title: str) -> None:
    """One legend for all panels, below them (saved with a tight bounding box)."""
    seen: dict[str, Any] = {}
    for ax in np.ravel(axes):
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(lab, h)
    fig.legend(
        list(seen.values()),
        list(seen.keys()),
        loc="upper center",
        ncol=4,
        frameon=False,
        bbox_to_anchor=(0.5, 0.0),
        title=title,
        fontsize=8,
        title_fontsize=8,
    )


def _draw(ax: Any, sub: pd.DataFrame, x: str, labels: dict[str, str]) -> None:
    others = 0
    for name, g in sub.groupby("sampler", sort=False):
        g = g.sort_values(x)
        if name == "ddim":
            ax.plot(g[x], g["error"], color="0.55", ls="--", lw=2, label=labels["ddim"])
            continue
        marker = "os^vD"[others % 5]
        others += 1
        ax.plot(g[x], g["error"], marker=marker, ms=4, color=colour(name), label=labels[name])


def figure_convergence(result: Result) -> Any:
    """Error at the least noisy level against the number of levels, one row per grid and one
    panel per sampler family (DDIM dashed in each), log-log."""
    conv = _family_frame(result.convergence)
    conv["steps"] = conv["K"] - 1
    labels = {n: f"{n} ({smp.get_sampler(n).order})" for n in conv.sampler.unique()}
    height, aspect = panel_size(3, aspect=1.1)
    grid = sns.FacetGrid(
        conv,
        row="grid",
        col="family",
        row_order=list(GRIDS),
        col_order=list(FAMILIES),
        height=height,
        aspect=aspect,
        sharey=True,
        despine=False,
    )
    for (i, j, _), sub in grid.facet_data():
        if not sub.empty:
            _draw(grid.facet_axis(i, j), sub, "steps", labels)
    ks = result.params.convergence_steps
    for ax in grid.axes.flat:
        ax.set(xscale="log", yscale="log")
        ax.set_xticks([k - 1 for k in ks], [str(k) for k in ks])
        ax.xaxis.set_minor_formatter(plt.NullFormatter())
    grid.set_titles("{col_name}, {row_name}")
    grid.set_axis_labels("K (levels; log K - 1)", "RMS error at last level")
    grid.figure.tight_layout()
    _legend(grid.figure, grid.axes, "sampler (nominal order)")
    plt.close(grid.figure)
    return grid


def endpoint_table(result: Result) -> Any:
    """Error at the clean sample (x 1000) per sampler and model-call budget."""
    t = 1e3 * result.endpoint.pivot(index="sampler", columns="NFE", values="error")
    t = t.reindex([n for n in _deterministic() if n in t.index])
    t.columns = [f"NFE {c}" for c in t.columns]
    return styled(
        t.reset_index(),
        formats={c: "{:.3g}" for c in t.columns},
        caption=(
            f"RMS error at the clean sample x 1000, on the {result.params.endpoint_baseline} "
            "trajectory, at equal model calls"
        ),
    )


def figure_endpoint(result: Result) -> Any:
    """Error at the clean sample against model calls, one panel per family, with the floor."""
    end = _family_frame(result.endpoint)
    labels = {n: n for n in end.sampler.unique()}
    height, aspect = panel_size(3, aspect=1.1)
    grid = sns.FacetGrid(
        end,
        col="family",
        col_order=list(FAMILIES),
        height=height,
        aspect=aspect,
        sharey=True,
        despine=False,
    )
    for (i, j, _), sub in grid.facet_data():
        if not sub.empty:
            _draw(grid.facet_axis(i, j), sub, "NFE", labels)
    budgets = result.params.nfe_budgets
    for ax in grid.axes.flat:
        ax.axhline(result.final_step_err, color="k", ls=":", lw=1, label="floor (K to infinity)")
        ax.set(xscale="log", yscale="log")
        ax.set_xticks(list(budgets), [str(b) for b in budgets])
        ax.xaxis.set_minor_formatter(plt.NullFormatter())
    grid.set_titles("{col_name}")
    grid.set_axis_labels("model calls (NFE)", "RMS error at clean sample")
    grid.figure.tight_layout()
    _legend(grid.figure, grid.axes, "sampler")
    plt.close(grid.figure)
    return grid


def diffusers_table(result: Result) -> Any:
    """diffusers against ours: model calls and the largest absolute difference (float32 schedule
    as shipped, and recomputed in float64)."""
    if result.diffusers is None:
        return styled(pd.DataFrame({"note": ["diffusers is not installed here"]}))
    x = result.diffusers.copy()
    x["diffusers vs ours"] = x["diffusers"] + " vs " + x["ours"].astype(str)
    cols = ["diffusers vs ours", "steps", "calls", "max |diff|", "max |diff|, float64"]
    return styled(
        x[cols],
        formats={"max |diff|": "{:.1e}", "max |diff|, float64": "{:.1e}"},
        caption="Agreement with diffusers' schedulers on their own grids",
    )


# ===================================================================== the prose's numbers
@dataclass(frozen=True)
class Summary:
    """Every number and phrase the chapter's prose cites (glued by field name)."""

    testbed_name: str
    table_levels: int
    n_samplers: int
    nfe_agree: int
    seed_check: str
    n_samples_used: int
    ddpm_batch_check: str
    a_start: float
    a_end: float
    ode_tol: float
    k_list: str
    stochastic_names: str
    groups_note: str
    ddim_twin_diff: float
    order_tolerance: float
    n_order_fits: int
    order_supported: str
    order_contradicted: str
    order_inconclusive: str
    order_contradicted_names: str
    order_inconclusive_names: str
    pndm_lambda: str
    pndm_time: str
    pndm_lambda_last: str
    pndm_time_last: str
    pndm_verdict: str
    endpoint_baseline_name: str
    nfe_small: int
    nfe_large: int
    best_small_name: str
    best_small_err: float
    worst_small_name: str
    worst_small_err: float
    order_clause: str
    best_large_name: str
    best_large_err: float
    ddim_large_err: float
    final_step_err: float
    floor_ratio_lo: float
    floor_ratio_hi: float
    last_level: float
    last_sigma: float
    mode_std: float
    xcheck_summary: str
    xcheck_bullet: str
    #: per-sampler fits cited in the prose: ``{prefix}_{lambda|time}[_last|_lo|_hi]`` and
    #: ``{prefix}_verdict`` for DEIS tAB3 (``deis3``) and DPM-Solver-3 (``dpm3``)
    families: dict[str, Any] = field(default_factory=dict)


def _fmt_range(values: Sequence[float]) -> str:
    lo, hi = float(np.min(values)), float(np.max(values))
    return f"{lo:.2f}" if round(lo, 2) == round(hi, 2) else f"{lo:.2f} to {hi:.2f}"


def _fit(result: Result, sampler: str, grid: str) -> pd.Series:
    o = result.orders
    return o[(o.sampler == sampler) & (o.grid == grid)].iloc[0]


def family_verdict(result: Result, sampler: str) -> str:
    """The verdicts on one sampler's order claim on both grids, with the fitted order, its
    interval and the last doubling, in a sentence."""
    parts = []
    for g in GRIDS:
        r = _fit(result, sampler, g)
        parts.append(
            f"on the {g} grid the fitted order is {r.fitted:.2f} [{r.ci_low:.2f}, "
            f"{r.ci_high:.2f}] and the claim is {r.verdict} "
            f"(last doubling {r['last doubling']:.2f})"
        )
    nominal = smp.get_sampler(sampler).order
    text = (
        f"The claim that the measured order is within {ORDER_TOLERANCE} of the nominal {nominal}: "
        + "; ".join(parts)
        + "."
    )
    return text


def _family_fields(result: Result, sampler: str, prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for g in GRIDS:
        r = _fit(result, sampler, g)
        key = f"{prefix}_{_GRID_SHORT[g]}"
        out[key] = float(r.fitted)
        out[f"{key}_lo"] = float(r.ci_low)
        out[f"{key}_hi"] = float(r.ci_high)
        out[f"{key}_last"] = float(r["last doubling"])
        out[f"{key}_verdict"] = str(r.verdict)
    out[f"{prefix}_verdict"] = family_verdict(result, sampler)
    return out


def _pndm_verdict(result: Result) -> str:
    o = result.orders[result.orders.sampler.isin(_PNDM)]
    verdict = aggregate(o.verdict)
    nominal = smp.get_sampler(_PNDM[0]).order
    text = [
        f"The claim that their measured order is within {ORDER_TOLERANCE} of the nominal "
        f"{nominal} is {verdict} over the {len(o)} fits (fitted orders "
        f"{o.fitted.min():.2f} to {o.fitted.max():.2f})"
    ]
    for g in GRIDS:
        sub = o[o.grid == g]
        last, fitted = sub["last doubling"], sub["fitted"]
        if last.max() < fitted.min() and last.max() < 2 + ORDER_TOLERANCE:
            text.append(f"on the {g} grid the last doubling is already at about 2")
        elif last.max() < fitted.min():
            text.append(f"on the {g} grid the slope is still falling")
        else:
            text.append(f"on the {g} grid the last doubling is not below the fit")
    return "; ".join(text) + "."


def _xcheck(result: Result) -> tuple[str, str]:
    xdf = result.diffusers
    if xdf is None:
        return (
            "diffusers is not installed here, so this check was skipped.",
            "The comparison with diffusers was skipped here.",
        )
    p = result.params
    c32, c64 = "max |diff|", "max |diff|, float64"
    left = xdf[xdf[c64] > ROUNDING]
    worst = xdf.loc[xdf[c32].idxmax()]
    agree = xdf.loc[xdf[c64] <= ROUNDING, c64]
    text = (
        f"Over {len(xdf)} runs (diffusers {result.diffusers_version}, "
        f"{', '.join(str(n) for n in p.diffusers_steps)} inference steps, {p.n_samples} samples "
        f"of coordinates of order 1) the largest difference is {worst[c32]:.1e} "
        f"({worst['diffusers']}, {worst['steps']} steps), the median {xdf[c32].median():.1e}. "
        "diffusers keeps its schedule in float32. Recomputed in float64 from the same "
        f"alphas_cumprod, {len(xdf) - len(left)} of the {len(xdf)} runs agree to "
        f"{agree.max() if len(agree) else math.nan:.0e}, which is rounding."
    )
    notes = []
    causes = left.apply(known_cause, axis=1) if len(left) else pd.Series(dtype=str)
    for cause, rows in left.groupby(causes):
        if cause == "multistep":
            notes.append(
                "DPMSolverMultistepScheduler's step() casts the sample itself to float32 "
                "(sample.to(torch.float32)), so its runs stay at float32 resolution (up to "
                f"{rows[c64].max():.0e})"
            )
        elif cause == "pndm_half_step":
            for _, r in rows.iterrows():
                ratio = r["step ratio"]
                notes.append(
                    f"F-PNDM with {r['steps']} steps, where a step spans an odd {ratio} training "
                    f"timesteps: diffusers puts the Runge-Kutta half-step at the integer timestep "
                    f"{ratio // 2} above the lower level and we put it at the exact midpoint in "
                    f"training time (difference {r[c64]:.0e})"
                )
        else:
            names = ", ".join(f"{r['diffusers']} ({r['steps']} steps)" for _, r in rows.iterrows())
            notes.append(f"unexplained: {names} (up to {rows[c64].max():.0e})")
    if notes:
        text += " The rest: " + "; ".join(notes) + "."
    bullet = (
        f"Run on their own grids, diffusers' schedulers and ours differ by at most "
        f"{xdf[c32].max():.0e}; with diffusers' schedule in float64, {len(xdf) - len(left)} of "
        f"{len(xdf)} runs agree to rounding" + (" (the rest: see above)." if len(left) else ".")
    )
    return text, bullet


def summary(result: Result) -> Summary:
    """The numbers and phrases the prose cites."""
    p = result.params
    conv = result.convergence
    ddim_err = conv[conv.sampler == "ddim"].set_index(["grid", "K"])["error"]
    twin = max(
        float(
            (conv[conv.sampler == n].set_index(["grid", "K"])["error"] / ddim_err - 1).abs().max()
        )
        for n in DDIM_TWINS
    )
    incomplete = [
        f"DPM-Solver-{q} at K = {k}"
        for q in (2, 3)
        for k in p.convergence_steps
        if any(g != q for g in smp.singlestep_groups(k, q)[:-1])
    ]
    o = result.orders
    det = [n for n in _deterministic() if n in set(o.sampler)]
    by = {n: o[o.sampler == n] for n in det}
    supported = [n for n in det if (by[n].verdict == "supported").all()]
    contradicted = [n for n in det if (by[n].verdict == "contradicted").any()]
    inconclusive = [n for n in det if n not in supported and n not in contradicted]

    def described(names: list[str]) -> str:
        return "; ".join(
            f"{n} (nominal {smp.get_sampler(n).order}; "
            + ", ".join(f"{g} {_fit(result, n, g).fitted:.2f}" for g in GRIDS)
            + ")"
            for n in names
        )

    pn = o[o.sampler.isin(_PNDM)]
    end = result.endpoint
    small, large = min(p.nfe_budgets), max(p.nfe_budgets)
    at_small = end[end.NFE == small].set_index("sampler")["error"]
    at_large = end[end.NFE == large].set_index("sampler")["error"]
    order_of = {n: smp.get_sampler(n).order for n in _deterministic()}
    higher = at_large[[n for n in at_large.index if order_of[n] >= 2]] / result.final_step_err
    families = {
        **_family_fields(result, "deis_tab3", "deis3"),
        **_family_fields(result, "dpm_solver_3", "dpm3"),
    }
    xtext, xbullet = _xcheck(result)
    return Summary(
        testbed_name=f"the {p.testbed} testbed (exact eps*)",
        table_levels=p.table_levels,
        n_samplers=len(smp.SAMPLERS),
        nfe_agree=int(sum(result.nfe_agree.values())),
        seed_check="the same" if result.seed_same else "NOT the same",
        n_samples_used=p.n_samples,
        ddpm_batch_check=(
            "are identical bit for bit"
            if result.ddpm_diff == 0.0
            else f"differ by up to {result.ddpm_diff:.1e}"
        ),
        a_start=p.alpha_bar_start,
        a_end=p.alpha_bar_end,
        ode_tol=ODE_TOL,
        k_list=", ".join(str(k) for k in p.convergence_steps),
        stochastic_names=", ".join(_stochastic()) or "none",
        groups_note=(
            "every singlestep group before the last level has its full order"
            + (f", except for {', '.join(incomplete)}" if incomplete else "")
        ),
        ddim_twin_diff=twin,
        order_tolerance=ORDER_TOLERANCE,
        n_order_fits=int(len(o)),
        order_supported=", ".join(supported) or "none",
        order_contradicted=described(contradicted) or "none",
        order_inconclusive=described(inconclusive) or "none",
        order_contradicted_names=", ".join(contradicted) or "none",
        order_inconclusive_names=", ".join(inconclusive) or "none",
        pndm_lambda=_fmt_range(pn[pn.grid == GRIDS[0]].fitted),
        pndm_time=_fmt_range(pn[pn.grid == GRIDS[1]].fitted),
        pndm_lambda_last=_fmt_range(pn[pn.grid == GRIDS[0]]["last doubling"]),
        pndm_time_last=_fmt_range(pn[pn.grid == GRIDS[1]]["last doubling"]),
        pndm_verdict=_pndm_verdict(result),
        endpoint_baseline_name=p.endpoint_baseline,
        nfe_small=small,
        nfe_large=large,
        best_small_name=str(at_small.idxmin()),
        best_small_err=float(at_small.min()),
        worst_small_name=str(at_small.idxmax()),
        worst_small_err=float(at_small.max()),
        order_clause=(
            ": a higher nominal order does not pay with long steps"
            if order_of[at_small.idxmax()] > order_of[at_small.idxmin()]
            else ""
        ),
        best_large_name=str(at_large.idxmin()),
        best_large_err=float(at_large.min()),
        ddim_large_err=float(at_large["ddim"]),
        final_step_err=result.final_step_err,
        floor_ratio_lo=float(higher.min()),
        floor_ratio_hi=float(higher.max()),
        last_level=result.last_level,
        last_sigma=float(np.sqrt((1 - result.last_level) / result.last_level)),
        mode_std=result.mode_std,
        xcheck_summary=xtext,
        xcheck_bullet=xbullet,
        families=families,
    )
