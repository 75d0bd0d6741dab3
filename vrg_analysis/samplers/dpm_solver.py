"""The DPM-Solver family on any trajectory: singlestep DPM-Solver-1/2/3 and multistep
DPM-Solver++(2M).

Exponential integrators of the probability-flow ODE in the half log-SNR ``lambda_`` (Lu et al.
2022a, "DPM-Solver", eq. 3.4 and Algorithms 1-2; Lu et al. 2022b, "DPM-Solver++", eq. 9 and
Algorithm 2). With ``h = lambda_t - lambda_s``, ``q = exp(-h) = rho_t / rho_s`` and
``y = x / alpha`` (see :mod:`.core`), one step of order p is

    noise prediction ("dpmsolver"):    y_t = y_s + c0 D0 + c1 D1 + c2 D2
        c0 = -(rho_s - rho_t),  c1 = -((rho_s - rho_t) / h - rho_t),
        c2 = -((rho_s - rho_t - h rho_t) / h^2 - rho_t / 2)
    data prediction ("dpmsolver++"):   y_t = q y_s + c0 D0 + c1 D1 + c2 D2
        c0 = 1 - q,  c1 = 1 - (1 - q) / h,  c2 = -((h - (1 - q)) / h^2 - 1/2)

which are the expressions of DPM-Solver eq. 3.4 / DPM-Solver++ eq. 9 divided by ``alpha_t``
(``sigma_t (e^h - 1) / alpha_t = rho_s - rho_t`` and so on): finite at the clean level
(``rho_t = 0``). ``D0`` is the model output at the start, ``D1``/``D2`` its divided differences in
``lambda_`` (times ``h``); "midpoint" and "heun" are diffusers' two ways to use them.

**Singlestep** (the trajectory holds every evaluation level). A group of p consecutive levels
``s, s_1, .., s_{p-1}`` is one DPM-Solver-p step from ``s`` to the level after the group; the
intermediate states at ``s_i`` come from the lower-order updates from ``s``, and
``r_i = (lambda_{s_i} - lambda_s) / h`` is read from the levels rather than fixed at 1/2 or 1/3,
as in diffusers' ``DPMSolverSinglestepScheduler`` and the official VRG code, so that VRG moves
intermediate levels too. Every level costs one model call (NFE = K).

**Multistep** (Lu et al. 2022b, Algorithm 2): ``D1 = (m_k - m_{k-1}) / r`` with
``r = h_{k-1} / h_k`` from the previous step; the first step has no history (order 1).

The step into the clean sample (``h = inf``) is always first order: a higher-order divided
difference over an infinite ``lambda_`` interval diverges. It is DDIM's last step,
``x = x0_hat``, as in k-diffusion and diffusers with ``final_sigmas_type="zero"``.

**Fidelity options of the multistep solver** (what users of the two reference implementations
run): ``final_alpha_bar < 1`` ends the walk at that level instead of the clean sample, without a
model call there (the official DPM-Solver's ``sample`` with ``denoise_to_zero=False`` ends at
``t_end = 1/N``, the level ``alpha_bar`` of training step 0; diffusers'
``final_sigmas_type="sigma_min"`` likewise), and ``lower_order_final`` lowers the order of the
last steps when ``K < lower_order_final_below``: step ``k`` of ``K`` takes order
``min(order, K - k)``, the official multistep rule ``min(order, steps + 1 - step)`` (its default,
``lower_order_final=True``, below 10 steps; diffusers' ``DPMSolverMultistepScheduler`` uses
15). For 2M only the last step changes, and a step into the clean sample is first order anyway:
diffusers' default (``final_sigmas_type="zero"``, ``lower_order_final=True``) is this module's
default, and the official default is ``final_alpha_bar=schedule.alpha_bar_max,
lower_order_final=True``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from vrg_analysis.core.trajectories import Trajectory
from vrg_analysis.models import EpsModel
from vrg_analysis.samplers.core import (
    Callback,
    SamplingRun,
    linear_combination,
    min_levels_for_order,
    predicted_x0,
    y_update_to_x,
)
from vrg_analysis.samplers.noise import NoiseSource

__all__ = [
    "Algorithm",
    "SolverType",
    "SINGLESTEP_ORDERS",
    "singlestep_groups",
    "exponential_coefficients",
    "singlestep_weights",
    "multistep_weights",
    "sample_dpm_solver",
    "sample_dpm_solver_multistep",
    "sample_dpm_solver_pp_2m",
]

Algorithm = Literal["dpmsolver", "dpmsolver++"]
SolverType = Literal["midpoint", "heun"]
SINGLESTEP_ORDERS: tuple[int, ...] = (1, 2, 3)
MULTISTEP_ORDERS: tuple[int, ...] = (1, 2)


def _check_choice(label: str, value: object, allowed: Sequence[object]) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {label} {value!r}; expected one of {list(allowed)}")


def exponential_coefficients(
    rho_s: float, rho_t: float, algorithm: Algorithm
) -> tuple[float, float, float, float]:
    """``(A, c0, c1, c2)`` of the ``y``-space step from ``rho_s`` to ``rho_t`` (module docstring).

    ``c1`` and ``c2`` are only used when ``rho_t > 0`` (the step into the clean sample is first
    order); there they are returned as 0.
    """
    if not rho_s > rho_t >= 0.0:
        raise ValueError(f"a step must reduce the noise level: rho {rho_s!r} -> {rho_t!r}")
    if rho_t == 0.0:
        return (1.0, -rho_s, 0.0, 0.0) if algorithm == "dpmsolver" else (0.0, 1.0, 0.0, 0.0)
    h = math.log(rho_s / rho_t)
    em1 = -math.expm1(-h)  # 1 - q, without cancellation for small h
    if algorithm == "dpmsolver":
        d = rho_s * em1  # rho_s - rho_t
        return 1.0, -d, -(d / h - rho_t), -((d - h * rho_t) / h**2 - 0.5 * rho_t)
    return 1.0 - em1, em1, 1.0 - em1 / h, -((h - em1) / h**2 - 0.5)


def _h(rho_from: float, rho_to: float) -> float:
    return math.inf if rho_to == 0.0 else math.log(rho_from / rho_to)


def singlestep_weights(
    rho: Sequence[float],
    rho_to: float,
    *,
    algorithm: Algorithm = "dpmsolver",
    solver_type: SolverType = "midpoint",
) -> tuple[float, np.ndarray]:
    """``(A, w)`` with ``y_to = A y_s + sum_j w[j] m_j`` for one singlestep update of order
    ``p = len(rho)`` from ``rho[0]``, using model outputs ``m_j`` at ``rho[0] > .. > rho[p-1]``.

    p = 1: DDIM / DPM-Solver-1 (eq. 3.7). p = 2, midpoint: DPM-Solver-2 (Algorithm 1, general
    ``r1``); heun: its ``phi_2`` form. p = 3, midpoint: the last line of DPM-Solver-3
    (Algorithm 2, ``D1 = (m_2 - m_0) / r2``); heun: the full third-order expansion with ``D1`` and
    ``D2`` (diffusers' ``solver_type="heun"``).
    """
    p = len(rho)
    _check_choice("order", p, SINGLESTEP_ORDERS)
    a_y, c0, c1, c2 = exponential_coefficients(rho[0], rho_to, algorithm)
    w = np.zeros(p)
    w[0] = c0
    if p == 1:
        return a_y, w
    if rho_to == 0.0:
        raise ValueError("the step into the clean sample (rho = 0) must be first order")
    h = _h(rho[0], rho_to)
    r = [_h(rho[0], rho[j]) / h for j in range(1, p)]
    if p == 2:
        d1 = np.array([-1.0, 1.0]) / r[0]  # D1 = (m_1 - m_0) / r1
        return a_y, w + (0.5 * c0 if solver_type == "midpoint" else c1) * d1
    r1, r2 = r
    d1_0 = np.array([-1.0, 1.0, 0.0]) / r1  # (m_1 - m_0) / r1
    d1_1 = np.array([-1.0, 0.0, 1.0]) / r2  # (m_2 - m_0) / r2
    if solver_type == "midpoint":
        return a_y, w + c1 * d1_1
    d1 = (r2 * d1_0 - r1 * d1_1) / (r2 - r1)
    d2 = 2.0 * (d1_1 - d1_0) / (r2 - r1)
    return a_y, w + c1 * d1 + c2 * d2


def multistep_weights(
    rho_prev: float,
    rho_s: float,
    rho_to: float,
    *,
    algorithm: Algorithm = "dpmsolver++",
    solver_type: SolverType = "midpoint",
) -> tuple[float, np.ndarray]:
    """``(A, w)`` with ``y_to = A y_s + w[0] m_s + w[1] m_prev`` for one second-order multistep
    step (DPM-Solver++(2M), Lu et al. 2022b, Algorithm 2): ``D1 = (m_s - m_prev) / r``,
    ``r = h_prev / h``."""
    a_y, c0, c1, _ = exponential_coefficients(rho_s, rho_to, algorithm)
    if rho_to == 0.0:
        raise ValueError("the step into the clean sample (rho = 0) must be first order")
    r = _h(rho_prev, rho_s) / _h(rho_s, rho_to)
    d1 = np.array([1.0, -1.0]) / r
    return a_y, np.array([c0, 0.0]) + (0.5 * c0 if solver_type == "midpoint" else c1) * d1


def singlestep_groups(num_levels: int, order: int) -> list[int]:
    """Group sizes (each a singlestep update's order) covering ``num_levels`` levels.

    Groups of ``order``, the step into the clean sample first order, and shorter groups before it
    where the levels do not divide evenly. Order 2: ``[2, .., 2, 1]`` for odd K,
    ``[2, .., 2, 1, 1]`` for even K; order 3: ``[3, .., 3, 1]``, ``[3, .., 3, 2, 1]`` or
    ``[3, .., 3, 2, 2, 1]``. This is diffusers' ``get_order_list`` (``lower_order_final``, final
    sigma zero) except for ``K = 3m + 2``, where diffusers ends ``[.., 3, 1, 1]``: a first-order
    step before the last one has local error ``O(h^2)`` and costs DPM-Solver-3 its third order.
    """
    _check_choice("DPM-Solver order", order, SINGLESTEP_ORDERS)
    k = int(num_levels)
    if order == 1:
        return [1] * k
    if order == 2:
        return [2] * (k // 2 - 1) + [1, 1] if k % 2 == 0 else [2] * (k // 2) + [1]
    if k % 3 == 0:
        return [3] * (k // 3 - 1) + [2, 1]
    if k % 3 == 1:
        return [3] * (k // 3) + [1]
    return [3] * (k // 3 - 1) + [2, 2, 1] if k > 2 else [1, 1]


def _check_groups(groups: Sequence[int], num_levels: int) -> list[int]:
    out = [int(g) for g in groups]
    if any(g not in SINGLESTEP_ORDERS for g in out):
        raise ValueError(f"orders must each be one of {list(SINGLESTEP_ORDERS)}, got {out}")
    if sum(out) != num_levels:
        raise ValueError(f"orders {out} cover {sum(out)} levels, the trajectory has {num_levels}")
    if out[-1] != 1:
        raise ValueError(
            f"the step into the clean sample must be first order; orders end with {out[-1]}"
        )
    return out


def _model_output(algorithm: Algorithm, x: Tensor, eps_hat: Tensor, alpha_bar: float) -> Tensor:
    return eps_hat if algorithm == "dpmsolver" else predicted_x0(x, eps_hat, alpha_bar)


def sample_dpm_solver(
    model: EpsModel,
    x_T: Tensor,  # noqa: N803 - the paper's symbol
    trajectory: Trajectory,
    *,
    callback: Callback | None = None,
    generator: NoiseSource = None,
    model_kwargs: Mapping[str, Any] | None = None,
    order: int = 2,
    orders: Sequence[int] | None = None,
    algorithm: Algorithm = "dpmsolver",
    solver_type: SolverType = "midpoint",
    intermediate: Literal["paper", "diffusers"] = "paper",
) -> Tensor:
    """Singlestep DPM-Solver-``order`` (1, 2 or 3) over ``trajectory``: K model calls.

    The levels are grouped by :func:`singlestep_groups` (or the explicit group sizes ``orders``);
    ``algorithm="dpmsolver++"`` gives DPM-Solver++(2S)/(3S). Needs ``K >= order + 1`` so that at
    least one group has the requested order. ``generator`` is unused (deterministic).

    ``intermediate`` sets how a third-order group forms its second intermediate state ``u2``:
    ``"paper"`` with the ``phi_2`` coefficient of DPM-Solver-3 (Lu et al. 2022a, Algorithm 2, the
    official implementation), ``"diffusers"`` with ``solver_type``'s second-order form (for
    ``"midpoint"``, the ``(e^h - 1) / 2`` form of ``DPMSolverSinglestepScheduler``). With
    ``solver_type="heun"`` both are the same.
    """
    del generator
    _check_choice("DPM-Solver order", order, SINGLESTEP_ORDERS)
    _check_choice("algorithm", algorithm, ("dpmsolver", "dpmsolver++"))
    _check_choice("solver_type", solver_type, ("midpoint", "heun"))
    _check_choice("intermediate", intermediate, ("paper", "diffusers"))
    name = f"DPM-Solver-{order} (singlestep)"
    min_levels = min_levels_for_order(order)
    run = SamplingRun(
        name,
        model,
        x_T,
        trajectory,
        callback=callback,
        model_kwargs=model_kwargs,
        min_levels=min_levels,
    )
    groups = _check_groups(orders, run.K) if orders is not None else singlestep_groups(run.K, order)
    x = x_T
    k = 0
    with torch.no_grad():
        for p in groups:
            x_start, outputs = x, []
            for i in range(p):  # evaluations at the group's levels k .. k+p-1
                eps_hat = run.eps(k + i, x)
                outputs.append(_model_output(algorithm, x, eps_hat, run.levels[k + i]))
                # 1. to level k+i+1: the order-(i+1) update from the group's start (eq. 3.4);
                #    u2 of a third-order group in Algorithm 2's phi_2 form unless "diffusers"
                inner_u2 = p == 3 and i == 1 and intermediate == "paper"
                a_y, w = singlestep_weights(
                    run.rho[k : k + i + 1],
                    run.rho[k + i + 1],
                    algorithm=algorithm,
                    solver_type="heun" if inner_u2 else solver_type,
                )
                c_x, c = y_update_to_x(run.levels[k], run.levels[k + i + 1], a_y, w)
                x_next = linear_combination(x_start, c_x, c, outputs)
                run.record(k + i, x, eps_hat, order=i + 1)
                x = x_next
            k += p
    return x


def sample_dpm_solver_multistep(
    model: EpsModel,
    x_T: Tensor,  # noqa: N803 - the paper's symbol
    trajectory: Trajectory,
    *,
    callback: Callback | None = None,
    generator: NoiseSource = None,
    model_kwargs: Mapping[str, Any] | None = None,
    order: int = 2,
    algorithm: Algorithm = "dpmsolver++",
    solver_type: SolverType = "midpoint",
    final_alpha_bar: float = 1.0,
    lower_order_final: bool = False,
    lower_order_final_below: int = 10,
) -> Tensor:
    """Multistep DPM-Solver(++) of ``order`` 1 or 2 over ``trajectory``: K model calls.

    The first step and the step into the clean sample are first order; every other step uses the
    previous level's model output (Lu et al. 2022b, Algorithm 2), so order 2 needs ``K >= 3``.
    ``generator`` is unused (deterministic). ``final_alpha_bar`` (default 1, the clean sample)
    is the level the walk ends at; ``lower_order_final`` with ``K < lower_order_final_below``
    gives step ``k`` the order ``min(order, K - k)`` (the official DPM-Solver's rule; see the
    module docstring for both reference implementations' defaults).
    """
    del generator
    _check_choice("multistep order", order, MULTISTEP_ORDERS)
    _check_choice("algorithm", algorithm, ("dpmsolver", "dpmsolver++"))
    _check_choice("solver_type", solver_type, ("midpoint", "heun"))
    if not isinstance(lower_order_final, bool):
        raise TypeError(f"lower_order_final must be a bool, got {lower_order_final!r}")
    if isinstance(lower_order_final_below, bool) or not isinstance(lower_order_final_below, int):
        raise TypeError(
            f"lower_order_final_below must be an int, got {type(lower_order_final_below).__name__}"
        )
    name = "DPM-Solver++(2M)" if algorithm == "dpmsolver++" else "DPM-Solver(2M)"
    # a second-order step needs a previous level and a level after it that is not the clean one
    run = SamplingRun(
        name,
        model,
        x_T,
        trajectory,
        callback=callback,
        model_kwargs=model_kwargs,
        min_levels=min_levels_for_order(order),
        final_alpha_bar=final_alpha_bar,
    )
    lower = lower_order_final and run.K < lower_order_final_below
    x = x_T
    prev: Tensor | None = None
    with torch.no_grad():
        for k in range(run.K):
            eps_hat = run.eps(k, x)
            m = _model_output(algorithm, x, eps_hat, run.levels[k])
            # min(order, K - k) < order only at the last step for order <= 2
            into_clean = k == run.K - 1 and run.levels[-1] == 1.0
            if order == 1 or prev is None or into_clean or (lower and k == run.K - 1):
                # 1. first order: DDIM (eq. 3.7 / DPM-Solver++ eq. 9 with D1 = 0)
                a_y, w = singlestep_weights(run.rho[k : k + 1], run.rho[k + 1], algorithm=algorithm)
                terms, step_order = [m], 1
            else:
                # 2. second order with the previous output (DPM-Solver++ Algorithm 2)
                a_y, w = multistep_weights(
                    run.rho[k - 1],
                    run.rho[k],
                    run.rho[k + 1],
                    algorithm=algorithm,
                    solver_type=solver_type,
                )
                terms, step_order = [m, prev], 2
            c_x, c = y_update_to_x(run.levels[k], run.levels[k + 1], a_y, w)
            x_next = linear_combination(x, c_x, c, terms)
            run.record(k, x, eps_hat, order=step_order)
            prev, x = m, x_next
    return x


def sample_dpm_solver_pp_2m(
    model: EpsModel,
    x_T: Tensor,  # noqa: N803 - the paper's symbol
    trajectory: Trajectory,
    *,
    callback: Callback | None = None,
    generator: NoiseSource = None,
    model_kwargs: Mapping[str, Any] | None = None,
    solver_type: SolverType = "midpoint",
    final_alpha_bar: float = 1.0,
    lower_order_final: bool = False,
    lower_order_final_below: int = 10,
) -> Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022b, Algorithm 2): data prediction, multistep, order 2;
    the fidelity options as in :func:`sample_dpm_solver_multistep`."""
    return sample_dpm_solver_multistep(
        model,
        x_T,
        trajectory,
        callback=callback,
        generator=generator,
        model_kwargs=model_kwargs,
        order=2,
        algorithm="dpmsolver++",
        solver_type=solver_type,
        final_alpha_bar=final_alpha_bar,
        lower_order_final=lower_order_final,
        lower_order_final_below=lower_order_final_below,
    )
