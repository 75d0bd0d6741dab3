"""Pseudo numerical methods (Liu et al. 2022, "PNDM") and iPNDM (Zhang & Chen 2023, DEIS paper).

PNDM splits a step into a *transfer* part, the DDIM step ``phi(x, e, t, t')`` (PNDM eq. 9 and 11,
:func:`~.ddim.ddim_coefficients`), and a *gradient* part, the noise estimate ``e'`` it is fed:

- pseudo linear multistep (eq. 12): ``e' = (55 e_k - 59 e_{k-1} + 37 e_{k-2} - 9 e_{k-3}) / 24``
  (Adams-Bashforth of order 4; orders 1-3 use (1), (3, -1)/2, (23, -16, 5)/12), ``e_j`` the model
  outputs at the states actually visited;
- pseudo Runge-Kutta (eq. 13), 4 model calls: ``e1 = eps(x, t)``,
  ``e2 = eps(phi(x, e1, t, t_mid), t_mid)``, ``e3 = eps(phi(x, e2, t, t_mid), t_mid)``,
  ``e4 = eps(phi(x, e3, t, t'), t')``, ``e' = (e1 + 2 e2 + 2 e3 + e4) / 6``;
- pseudo improved Euler (S-PNDM's first step), 2 calls:
  ``e' = (e1 + eps(phi(x, e1, t, t'), t')) / 2``.

Variants (``warmup``, ``order``): F-PNDM = (``"rk4"``, 4): three Runge-Kutta steps, then the
fourth-order multistep (diffusers' ``PNDMScheduler``); S-PNDM = (``"heun"``, 2); diffusers' PLMS
(``skip_prk_steps=True``) = (``"heun"``, 4); iPNDM = (``"euler"``, 4): the multistep method with
its order raised step by step from 1, no extra calls.

The multistep coefficients are those of equal steps, as in PNDM and iPNDM, whatever the spacing of
the trajectory: the combined estimate then carries an ``O(h^3)`` local error on any grid that is not
uniform in ``sigma``, so the nominal fourth order is asymptotically second order (measured in the
sampler chapter). The Runge-Kutta half-step level is the midpoint in training time,
``t_mid = (t_k + t_{k+1}) / 2`` (PNDM's ``t - delta/2``; diffusers' integer half-step
``t - (N_train // N) // 2`` is the same level only when ``N_train // N`` is even).
NFE: K (iPNDM), K + 1 (improved-Euler start), K + 3 (order - 1) (Runge-Kutta start).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch
from torch import Tensor

from vrg_analysis.core.trajectories import Trajectory
from vrg_analysis.models import EpsModel
from vrg_analysis.samplers.core import Callback, SamplingRun, linear_combination
from vrg_analysis.samplers.ddim import ddim_coefficients
from vrg_analysis.samplers.noise import NoiseSource

__all__ = [
    "Warmup",
    "ADAMS_BASHFORTH",
    "PNDM_VARIANTS",
    "pndm_extra_calls",
    "pndm_min_levels",
    "sample_pndm",
]

Warmup = Literal["euler", "heun", "rk4"]

#: Adams-Bashforth weights on ``e_k, e_{k-1}, ...`` for equal steps (PNDM eq. 12 and its
#: lower orders, as in diffusers' ``step_plms`` and iPNDM).
ADAMS_BASHFORTH: dict[int, tuple[float, ...]] = {
    1: (1.0,),
    2: (3 / 2, -1 / 2),
    3: (23 / 12, -16 / 12, 5 / 12),
    4: (55 / 24, -59 / 24, 37 / 24, -9 / 24),
}

#: Named variants: ``(warmup, order)``.
PNDM_VARIANTS: dict[str, tuple[Warmup, int]] = {
    "f_pndm": ("rk4", 4),
    "s_pndm": ("heun", 2),
    "plms": ("heun", 4),
    "ipndm": ("euler", 4),
}


def _warmup_steps(warmup: Warmup, order: int) -> int:
    return {"euler": 0, "heun": 1, "rk4": order - 1}[warmup]


def pndm_min_levels(warmup: Warmup, order: int) -> int:
    """Fewest levels: the warm-up steps must end before the clean level."""
    return _warmup_steps(warmup, order) + 1


def pndm_extra_calls(warmup: Warmup, order: int) -> int:
    """Model calls beyond one per level: 1 for the improved-Euler start, 3 per Runge-Kutta step."""
    return {"euler": 0, "heun": 1, "rk4": 3 * (order - 1)}[warmup]


def sample_pndm(
    model: EpsModel,
    x_T: Tensor,  # noqa: N803 - the paper's symbol
    trajectory: Trajectory,
    *,
    callback: Callback | None = None,
    generator: NoiseSource = None,
    model_kwargs: Mapping[str, Any] | None = None,
    warmup: Warmup = "rk4",
    order: int = 4,
) -> Tensor:
    """PNDM over ``trajectory`` (defaults: F-PNDM). ``generator`` is unused (deterministic).

    The warm-up steps must end before the clean level: ``"rk4"`` needs ``K >= order`` (its
    half-steps need a noise level on both sides), ``"heun"`` needs ``K >= 2``.
    """
    del generator
    if order not in ADAMS_BASHFORTH:
        raise ValueError(f"unknown PNDM order {order!r}; expected one of {sorted(ADAMS_BASHFORTH)}")
    if warmup not in ("euler", "heun", "rk4"):
        raise ValueError(f"unknown warmup {warmup!r}; expected 'euler', 'heun' or 'rk4'")
    n_warm = _warmup_steps(warmup, order)
    run = SamplingRun(
        f"PNDM ({warmup}, order {order})",
        model,
        x_T,
        trajectory,
        callback=callback,
        model_kwargs=model_kwargs,
        min_levels=pndm_min_levels(warmup, order),
    )
    schedule = model.schedule
    history: list[Tensor] = []  # model outputs at the visited states, newest last
    x = x_T
    with torch.no_grad():
        for k in range(run.K):
            a, a_next = run.levels[k], run.levels[k + 1]
            e1 = run.eps(k, x)
            history = (history + [e1])[-order:]
            c_x, c_eps = ddim_coefficients(a, a_next)  # the transfer phi(x, ., t, t')
            if k < n_warm and warmup == "rk4":
                # 1a. pseudo Runge-Kutta (PNDM eq. 13), half-steps at the training-time midpoint
                a_mid = float(schedule.alpha_bar(0.5 * (run.t_of(k) + run.t_of(k + 1))))
                cm_x, cm_eps = ddim_coefficients(a, a_mid)
                e2 = run.eps_at(a_mid, linear_combination(x, cm_x, (cm_eps,), (e1,)))
                e3 = run.eps_at(a_mid, linear_combination(x, cm_x, (cm_eps,), (e2,)))
                e4 = run.eps_at(a_next, linear_combination(x, c_x, (c_eps,), (e3,)))
                coeffs, terms, step_order = (1 / 6, 1 / 3, 1 / 3, 1 / 6), (e1, e2, e3, e4), 4
            elif k < n_warm:
                # 1b. pseudo improved Euler (S-PNDM's first step)
                e2 = run.eps(k + 1, linear_combination(x, c_x, (c_eps,), (e1,)))
                coeffs, terms, step_order = (0.5, 0.5), (e1, e2), 2
            else:
                # 2. pseudo linear multistep (PNDM eq. 12), order raised as history fills
                step_order = len(history)
                coeffs, terms = ADAMS_BASHFORTH[step_order], tuple(reversed(history))
            # 3. the transfer with the combined noise estimate e': x' = c_x x + c_eps e'
            x_next = linear_combination(x, c_x, [c_eps * c for c in coeffs], terms)
            run.record(k, x, e1, order=step_order)
            x = x_next
    return x
