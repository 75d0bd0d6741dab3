"""VRG trajectory optimisation: minimise the cumulative prediction error inside the gamma box.

Write a trajectory as per-step ratios from the clean end, ``r_1 = a_1``, ``r_k = a_k / a_{k-1}``
(so ``a_k = prod_{j<=k} r_j``). Each ratio may move by at most
``gamma_k = min(gamma, r_k, 1 - r_k)`` (the paper's *learning portion* ``gamma``). VRG minimises

    L(r) = CPE(a(r)) + reg_lambda * (a_K(r) - a_K_orig)^2                              (VRG)

where the penalty keeps the starting noise level (:mod:`vrg_analysis.vrg.objective`). Two solvers:

* ``method="exact"`` (default): L-BFGS-B on the ratios with the gamma box as bounds and the
  analytic gradient (autograd in float64). With ``keep_start=True`` the penalty is replaced by the
  hard constraint ``a_K = a_K_orig`` (SLSQP, constraint ``sum log r_k = log a_K_orig``).
* ``method="mlp_sgd"``: the paper's approach re-implemented: an MLP with a constant input maps to K
  outputs, ``r = r_orig + tanh(out) * gamma_k``, trained with SGD + momentum (weight gradients
  squashed by ``tanh``, as the official code), the lowest loss seen is kept.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field
from numbers import Real
from typing import Any, Literal

import numpy as np
import torch
from numpy.typing import NDArray
from scipy.optimize import minimize
from tqdm import tqdm

from vrg_analysis.core.cpe import cumulative_prediction_error
from vrg_analysis.core.profile import ErrorProfile
from vrg_analysis.core.trajectories import Trajectory
from vrg_analysis.threads import limit_threads
from vrg_analysis.vrg.objective import (
    KKT_TOL,
    VRGObjective,
    levels_moved,
    projected_gradient_norm,
    ratio_bounds,
    ratios_to_trajectory,
    solve_start_held,
)

__all__ = [
    "OptimizationResult",
    "MLPSGDConfig",
    "optimize_trajectory",
    "METHODS",
]

log = logging.getLogger(__name__)
Method = Literal["exact", "mlp_sgd"]
METHODS: tuple[str, ...] = ("exact", "mlp_sgd")
FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class MLPSGDConfig:
    """Hyper-parameters of the paper's optimiser (official defaults: 3000 epochs, lr 2e-4)."""

    epochs: int = 3000
    lr: float = 2e-4
    momentum: float = 0.9
    input_dim: int = 1000
    hidden_dim: int = 2000
    input_value: float = 0.5


@dataclass(frozen=True)
class OptimizationResult:
    """Outcome of :func:`optimize_trajectory`: both trajectories and what the solver did."""

    initial: Trajectory
    optimized: Trajectory
    method: str
    gamma: float
    reg_lambda: float
    keep_start: bool
    objective_initial: float
    objective_final: float
    cpe_initial: float
    cpe_final: float
    regularizer_final: float
    iterations: int
    converged: bool
    message: str
    wall_time_s: float
    extrapolated: bool = False
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def moved(self) -> bool:
        """Whether any level changed by more than 1e-9 relative (a solver can stop at once)."""
        return levels_moved(self.initial, self.optimized)

    @property
    def start_level_shift(self) -> float:
        """Relative move of the noisiest level, ``a_K_new / a_K_orig - 1``."""
        return float(self.optimized.alpha_bar[0] / self.initial.alpha_bar[0] - 1.0)

    @property
    def cpe_reduction(self) -> float:
        """``1 - CPE_final / CPE_initial`` (0 when there is no error to reduce: CPE_initial = 0)."""
        if self.cpe_initial == 0.0:
            return 0.0
        return 1.0 - self.cpe_final / self.cpe_initial

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k not in ("initial", "optimized")}
        d["initial"] = self.initial.to_dict()
        d["optimized"] = self.optimized.to_dict()
        d["moved"] = self.moved
        d["start_level_shift"] = self.start_level_shift
        return d


def _validate(
    gamma: float, reg_lambda: float, method: str, profile: ErrorProfile, trajectory: Trajectory
) -> None:
    if not isinstance(trajectory, Trajectory):
        raise TypeError(f"trajectory must be a Trajectory, got {type(trajectory).__name__}")
    if not isinstance(profile, ErrorProfile):
        raise TypeError(f"profile must be an ErrorProfile, got {type(profile).__name__}")
    if not (isinstance(gamma, Real) and math.isfinite(gamma) and 0.0 < gamma < 1.0):
        raise ValueError(f"gamma (learning portion) must lie in (0, 1), got {gamma!r}")
    if not (isinstance(reg_lambda, Real) and math.isfinite(reg_lambda) and reg_lambda >= 0):
        raise ValueError(f"reg_lambda must be a finite number >= 0, got {reg_lambda!r}")
    if method not in METHODS:
        raise ValueError(f"unknown optimisation method {method!r}; expected one of {METHODS}")
    profile.w(trajectory.alpha_bar)  # raises, naming the level, if the profile does not cover it


def optimize_trajectory(
    trajectory: Trajectory,
    profile: ErrorProfile,
    *,
    gamma: float = 0.01,
    reg_lambda: float = 100.0,
    method: Method = "exact",
    keep_start: bool = False,
    alpha_bar_max: float | None = None,
    alpha_bar_min: float | None = None,
    mlp: MLPSGDConfig | None = None,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> OptimizationResult:
    """Minimise (VRG) over the trajectory's ratios inside the gamma box; K is kept.

    ``keep_start=True`` (exact method only) holds the noisiest level fixed exactly instead of the
    paper's penalty, which on the raw alpha_bar scale barely holds it (the design page, pitfalls).
    The exact method is a local solver: on a noisy profile measured at every timestep the
    objective is piecewise smooth and not convex, and it can stop at a local minimum
    (``converged`` then means first-order stationary, not global; the optimiser chapter shows a
    case where the paper's MLP + SGD reaches a lower objective).
    ``alpha_bar_max`` caps the least noisy level (pass the model schedule's ``alpha_bar(0)`` so
    that no level needs a timestep below 0). ``alpha_bar_min`` (exact method) keeps the noisiest
    level at or above the schedule's ``alpha_bar(T)``: the penalty alone can push it just past the
    last timestep, where no model can be evaluated; when the penalised optimum does that, the
    problem is solved again with the noisiest level held at ``alpha_bar_min`` (the active bound),
    and ``config["start_level_bound_active"]`` says so. ``generator`` seeds the MLP's initial
    weights.
    """
    _validate(gamma, reg_lambda, method, profile, trajectory)
    if keep_start and method != "exact":
        raise ValueError("keep_start=True is only available with method='exact'")
    if alpha_bar_min is not None:
        if method != "exact":
            raise ValueError("alpha_bar_min is only available with method='exact'")
        a_k = float(trajectory.alpha_bar[0])
        # 1e-12 relative: a schedule's alpha_bar(T) read through exp(log) may differ by an ulp
        if not 0.0 < alpha_bar_min <= a_k * (1.0 + 1e-12):
            raise ValueError(f"alpha_bar_min = {alpha_bar_min!r} must lie in (0, a_K = {a_k!r}]")
        alpha_bar_min = min(alpha_bar_min, a_k)
    r0, lo, hi = ratio_bounds(trajectory, gamma)
    if alpha_bar_max is not None:
        if not r0[0] <= alpha_bar_max < 1.0:
            raise ValueError(
                f"alpha_bar_max = {alpha_bar_max!r} must lie in [a_1 = {float(r0[0])!r}, 1)"
            )
        hi[0] = min(hi[0], alpha_bar_max)
    a_k_orig = float(trajectory.alpha_bar[0])
    cpe0 = cumulative_prediction_error(trajectory, profile, outside="clamp")
    # the solvers see (VRG) / CPE_initial: the same minimiser, relative tolerances (scale-free)
    obj = VRGObjective(
        profile, a_k_orig, 0.0 if keep_start else float(reg_lambda), scale=cpe0 if cpe0 > 0 else 1.0
    )
    f0 = obj.value(r0)
    start = time.perf_counter()
    config: dict[str, Any] = {
        "gamma": gamma,
        "reg_lambda": reg_lambda,
        "method": method,
        "keep_start": keep_start,
        "alpha_bar_max": alpha_bar_max,
        "alpha_bar_min": alpha_bar_min,
        "start_level_bound_active": False,
    }
    held = a_k_orig if keep_start else None
    with limit_threads(1):  # same bits at any OMP_NUM_THREADS
        r, iterations, converged, message, held = _solve(
            obj,
            r0,
            lo,
            hi,
            keep_start,
            a_k_orig,
            alpha_bar_min,
            method,
            mlp,
            generator,
            progress,
            config,
        )
    wall = time.perf_counter() - start
    optimized = ratios_to_trajectory(r, f"vrg({trajectory.name})", held)
    # 4. score the trajectory actually returned, and check what the solver claims
    r_final, _, _ = ratio_bounds(optimized, gamma)
    cpe_t, reg_t = obj.terms(torch.as_tensor(r_final, dtype=torch.float64))
    with limit_threads(1):  # same bits at any OMP_NUM_THREADS
        kkt = projected_gradient_norm(obj, r_final, lo, hi, held is not None)
    if method == "mlp_sgd":
        converged = kkt <= KKT_TOL
        message += f"; projected gradient {kkt:.2e} (relative)"
    extrapolated = not profile.covers(optimized)
    result = OptimizationResult(
        initial=trajectory,
        optimized=optimized,
        method=method,
        gamma=float(gamma),
        reg_lambda=0.0 if keep_start else float(reg_lambda),
        keep_start=keep_start,
        objective_initial=f0,
        objective_final=float(cpe_t + reg_t),
        cpe_initial=cumulative_prediction_error(trajectory, profile),
        cpe_final=cumulative_prediction_error(
            optimized, profile, outside="clamp" if extrapolated else "error"
        ),
        regularizer_final=float(reg_t),
        iterations=iterations,
        converged=converged,
        message=message,
        wall_time_s=wall,
        extrapolated=extrapolated,
        config=config,
    )
    if not result.moved:
        log.warning("VRG optimisation returned the input unchanged (%s)", message)
    log.info(
        "VRG %s: CPE %.6f -> %.6f in %.3fs", method, result.cpe_initial, result.cpe_final, wall
    )
    return result


def _solve(
    obj: VRGObjective,
    r0: FloatArray,
    lo: FloatArray,
    hi: FloatArray,
    keep_start: bool,
    a_k_orig: float,
    alpha_bar_min: float | None,
    method: str,
    mlp: MLPSGDConfig | None,
    generator: torch.Generator | None,
    progress: bool,
    config: dict[str, Any],
) -> tuple[FloatArray, int, bool, str, float | None]:
    """Run the chosen solver; returns the ratios, iterations, convergence, message and the
    start level held exactly (or ``None``)."""
    held = a_k_orig if keep_start else None
    if method == "exact":
        r, iterations, converged, message = _solve_exact(obj, r0, lo, hi, keep_start, a_k_orig)
        if not keep_start:
            # A piecewise-linear profile makes the objective kinked at every measured level, and
            # a local solver can stop at a kink above a point it could reach: the start-held
            # optimum is feasible here too (penalty 0). Solve from there as well; keep the best.
            r_held, it2, ok2, msg2 = _solve_exact(obj, r0, lo, hi, True, a_k_orig)
            r_alt, it3, ok3, msg3 = _solve_exact(obj, r_held, lo, hi, False, a_k_orig)
            iterations += it2 + it3
            if obj.numpy_value_and_grad(r_alt)[0] < obj.numpy_value_and_grad(r)[0]:
                r, converged = r_alt, ok3
                message = f"{msg3} (second start: the start-held optimum; first: {message})"
        if alpha_bar_min is not None and not keep_start and float(np.prod(r)) < alpha_bar_min:
            # the penalised optimum left the schedule: the bound is active, hold it exactly
            r, it2, converged, msg2 = _solve_exact(obj, r, lo, hi, True, alpha_bar_min)
            iterations += it2
            message += f"; noisiest level held at alpha_bar_min: {msg2}"
            config["start_level_bound_active"] = True
            held = alpha_bar_min
    else:
        cfg = mlp or MLPSGDConfig()
        config["mlp"] = asdict(cfg)
        r, iterations, converged, message = _solve_mlp_sgd(
            obj, r0, hi - r0, cfg, generator, progress
        )
    return r, iterations, converged, message, held


def _solve_exact(
    obj: VRGObjective,
    r0: FloatArray,
    lo: FloatArray,
    hi: FloatArray,
    keep_start: bool,
    a_k_orig: float,
) -> tuple[FloatArray, int, bool, str]:
    """L-BFGS-B on the box (penalty form) or SLSQP with ``sum log r = log a_K`` (hard form).

    The profile is flat beyond its measured range, so the objective has a kink where the
    baselines start; a quasi-Newton line search can fail there at once (the design page, pitfalls).
    When L-BFGS-B does not report convergence, SLSQP continues from where it stopped.
    """
    bounds = list(zip(lo, hi, strict=True))
    if keep_start:
        return solve_start_held(obj, r0, lo, hi, a_k_orig)
    res = minimize(
        obj.numpy_value_and_grad,
        r0,
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": 20000, "ftol": 1e-15, "gtol": 1e-12, "maxcor": 30},
    )
    message, nit = f"L-BFGS-B: {res.message}", int(res.nit)
    # L-BFGS-B can stop on its relative-reduction test (the objective is badly scaled: the
    # noisiest ratio's gradient dwarfs the others) while reporting success: continue with SLSQP
    # unless the projected gradient is already ~0
    kkt = projected_gradient_norm(obj, np.clip(res.x, lo, hi), lo, hi, False)
    if not res.success or kkt > KKT_TOL:
        log.info("L-BFGS-B stopped (%s); continuing with SLSQP", res.message)
        first = res
        res = minimize(
            obj.numpy_value_and_grad,
            np.clip(res.x, lo, hi),
            jac=True,
            method="SLSQP",
            bounds=bounds,
            options={"maxiter": 2000, "ftol": 1e-15},
        )
        message += f"; then SLSQP: {res.message}"
        nit += int(res.nit)
        if first.fun < res.fun:  # keep the better point
            res.x = first.x
    return np.clip(res.x, lo, hi), nit, bool(res.success), message


def _solve_mlp_sgd(
    obj: VRGObjective,
    r0: FloatArray,
    portion: FloatArray,
    cfg: MLPSGDConfig,
    generator: torch.Generator | None,
    progress: bool,
) -> tuple[FloatArray, int, bool, str]:
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    dims = [cfg.input_dim, cfg.hidden_dim, cfg.hidden_dim, r0.size]
    layers = []
    for fan_in, fan_out in zip(dims[:-1], dims[1:], strict=True):
        lin = torch.nn.Linear(fan_in, fan_out, dtype=torch.float64)
        # torch's default Linear initialisation, drawn from our generator.
        torch.nn.init.kaiming_uniform_(lin.weight, a=math.sqrt(5), generator=gen)
        torch.nn.init.uniform_(
            lin.bias, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in), generator=gen
        )
        layers.append(lin)
    net = torch.nn.Sequential(*layers)  # linear layers, no activation: as the paper's code
    seed = torch.full((cfg.input_dim,), cfg.input_value, dtype=torch.float64)
    base = torch.as_tensor(r0, dtype=torch.float64)
    lp = torch.as_tensor(portion, dtype=torch.float64)
    opt = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    best_loss, best_r = math.inf, r0.copy()
    for _ in tqdm(range(cfg.epochs), desc="VRG mlp_sgd", disable=not progress):
        opt.zero_grad()
        r = base + torch.tanh(net(seed)) * lp  # r = r_orig + tanh(out) * gamma_k
        cpe, reg = obj.terms(r)
        loss = cpe + reg
        if loss.item() < best_loss:
            best_loss, best_r = loss.item(), r.detach().numpy().copy()
        loss.backward()
        for lin in layers:  # the official "gradient clip": weight gradients squashed by tanh
            assert lin.weight.grad is not None
            lin.weight.grad = torch.tanh(torch.tanh(lin.weight.grad))
        opt.step()
    with torch.no_grad():
        r = base + torch.tanh(net(seed)) * lp
        cpe, reg = obj.terms(r)
        if float(cpe + reg) < best_loss:
            best_r = r.numpy().copy()
    # Convergence is judged by the caller from the projected gradient at the returned point.
    return best_r, cfg.epochs, False, f"{cfg.epochs} SGD epochs (lowest loss kept)"
