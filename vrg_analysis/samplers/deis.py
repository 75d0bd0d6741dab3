"""DEIS multistep exponential integrators (Zhang & Chen 2023, "Fast Sampling of Diffusion Models
with Exponential Integrator"): tAB, rhoAB and diffusers' log-rho variant, orders 1-3.

In ``y = x / alpha`` and ``rho = sigma`` the probability-flow ODE is ``dy/drho = eps`` (the
exponential integrator's linear part is absorbed, DEIS eq. 11-12), so one step is exactly

    y_{k+1} = y_k + int_{rho_k}^{rho_{k+1}} eps(rho) drho.

DEIS-AB of order p replaces ``eps`` by the Lagrange polynomial through the last p model outputs
``eps_k, eps_{k-1}, ..`` in a basis variable ``u`` and integrates it exactly (DEIS eq. 14-15):

    y_{k+1} = y_k + sum_j C_kj eps_{k-j},   C_kj = int_{rho_k}^{rho_{k+1}} l_j(u(rho)) drho,
    l_j(u) = prod_{m != j} (u - u_{k-m}) / (u_{k-j} - u_{k-m}).

``basis="t"`` (tAB, the paper's recommended variant): ``u`` is the model's training time, the
continuous ``t`` of :class:`~vrg_analysis.schedules.NoiseSchedule`. ``"rho"`` (rhoAB): ``u = rho``.
``"logrho"``: ``u = log rho``, what diffusers' ``DEISMultistepScheduler`` implements.

The coefficients are computed per step in float64 by composite Gauss-Legendre quadrature in
``v = log rho`` (16 nodes a piece): the integral is split where the integrand is not analytic
and into pieces at most :data:`PIECE_WIDTH` wide in ``v``. For rhoAB and log-rhoAB the integrand
``l_j(u(e^v)) e^v`` is analytic everywhere; for tAB the map ``t(rho)`` of a discrete schedule is
linear in ``log alpha_bar = -log(1 + rho^2)`` between two training steps and has a kink at each
(:meth:`~vrg_analysis.core.schedules.NoiseSchedule.log_alpha_bar`), so the integral is also
split at every training level the step crosses. On each piece the integrand is then a polynomial
of degree ``p - 1`` in ``log(1 + e^{2v})`` times ``e^v``: the quadrature is exact to rounding
(relative weight error below 1e-12 against a 30-digit ``mpmath`` integration in the tests; a
single 32-point rule over the whole step left up to 3e-5 at the kinks). Order 1 is DDIM for
every basis.

Label convention: this module's ``order`` (and the registry's ``deis_tab{p}``) counts the model
outputs the polynomial passes through, ``p``, so the polynomial has degree ``p - 1`` and the
method's nominal order is ``p``; diffusers' ``DEISMultistepScheduler(solver_order=p)`` counts the
same way. The DEIS paper's eq. 14 and the official code (``ab_order=r``, github.com/qsh-zh/deis)
count the degree ``r`` instead, through ``r + 1`` outputs: ``deis_tab{p}`` is the official
``t_ab`` with ``ab_order = p - 1`` (``deis_tab1`` is DDIM, ``ab_order = 0``; ``ab_order = 3`` has
no counterpart here).

The order rises from 1 over the first steps (no history yet; for order 3 this first-order start
caps the asymptotic order at 2), and the step into the clean sample is first order, as for the
DPM-Solver family (:mod:`.dpm_solver`). NFE = K. The cross-check with diffusers is on
``basis="logrho"`` (the only basis diffusers implements); the bases share every line of code but
the map ``u(rho)``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from vrg_analysis.core.schedules import NoiseSchedule
from vrg_analysis.core.trajectories import Trajectory
from vrg_analysis.models import EpsModel
from vrg_analysis.samplers.core import (
    Callback,
    SamplingRun,
    linear_combination,
    min_levels_for_order,
    rho_of,
    y_update_to_x,
)
from vrg_analysis.samplers.noise import NoiseSource

__all__ = [
    "Basis",
    "DEIS_ORDERS",
    "DEIS_BASES",
    "PIECE_WIDTH",
    "deis_weights",
    "basis_kinks",
    "sample_deis",
]

Basis = Literal["t", "rho", "logrho"]
DEIS_ORDERS: tuple[int, ...] = (1, 2, 3)
DEIS_BASES: tuple[str, ...] = ("t", "rho", "logrho")
_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(16)
#: The widest quadrature piece, in ``log rho``.
PIECE_WIDTH = 0.25


def _basis_map(basis: Basis, schedule: NoiseSchedule) -> Callable[[np.ndarray], np.ndarray]:
    if basis == "rho":
        return lambda rho: rho
    if basis == "logrho":
        return np.log
    if basis == "t":
        return lambda rho: schedule.t_from_alpha_bar(1.0 / (1.0 + rho * rho))
    raise ValueError(f"unknown DEIS basis {basis!r}; expected one of {list(DEIS_BASES)}")


def basis_kinks(basis: Basis, schedule: NoiseSchedule) -> np.ndarray:
    """``rho`` at the points where the basis map ``u(rho)`` is not analytic, increasing: every
    training level of the schedule for ``basis="t"`` (``t(rho)`` is piecewise linear in
    ``log alpha_bar`` with a kink at each), none for ``"rho"`` and ``"logrho"``."""
    if basis == "t":
        return np.sqrt(np.expm1(-np.log(schedule.alphas_cumprod)))  # rho_n, increasing in n
    _basis_map(basis, schedule)  # validates basis
    return np.empty(0)


def _pieces(v0: float, v1: float, kinks_v: np.ndarray) -> np.ndarray:
    """Ends of the quadrature pieces from ``v0`` down to ``v1`` (``v0 > v1``): every kink between
    them, and each piece cut into equal parts at most :data:`PIECE_WIDTH` wide."""
    inner = kinks_v[(kinks_v < v0) & (kinks_v > v1)]
    cuts = np.concatenate(([v0], inner[::-1], [v1]))
    ends = [cuts[:1]]
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        n = max(1, math.ceil((a - b) / PIECE_WIDTH))
        ends.append(np.linspace(a, b, n + 1)[1:])
    return np.concatenate(ends)


def deis_weights(
    rho_nodes: Sequence[float],
    rho_to: float,
    u: Callable[[np.ndarray], np.ndarray],
    kinks: Sequence[float] | np.ndarray = (),
) -> np.ndarray:
    """``C_kj`` (module docstring, DEIS eq. 15): the weights on the model outputs at
    ``rho_nodes`` (``rho_nodes[0]`` the current level, then older ones) for the step to
    ``rho_to``, by composite Gauss-Legendre quadrature in ``v = log rho`` split at ``kinks`` (the
    ``rho`` where ``u`` is not analytic, :func:`basis_kinks`) and into pieces at most
    :data:`PIECE_WIDTH` wide."""
    rho_s = float(rho_nodes[0])
    if len(rho_nodes) == 1:
        return np.array([rho_to - rho_s])  # int drho: DDIM
    if not rho_s > rho_to > 0.0:
        raise ValueError(
            f"a multistep DEIS step needs rho_s > rho_to > 0, got {rho_s!r} -> {rho_to!r}"
        )
    # int_{rho_s}^{rho_to} f(rho) drho = int f(e^v) e^v dv over v = log rho: smooth in v on each
    # piece even when the step spans decades of rho
    kinks_v = np.log(np.asarray(kinks, dtype=np.float64))
    ends = _pieces(math.log(rho_s), math.log(rho_to), kinks_v)
    half = 0.5 * np.diff(ends)[:, None]  # negative: the integral runs from rho_s down
    v_q = (ends[:-1, None] + half * (_NODES[None, :] + 1.0)).ravel()
    rho_q = np.exp(v_q)
    jac = (half * _WEIGHTS[None, :]).ravel() * rho_q
    u_q = u(rho_q)
    u_n = u(np.asarray(rho_nodes, dtype=np.float64))
    w = np.empty(len(u_n))
    for j in range(len(u_n)):
        lag = np.ones_like(u_q)
        for m in range(len(u_n)):
            if m != j:
                lag *= (u_q - u_n[m]) / (u_n[j] - u_n[m])
        w[j] = float(np.dot(jac, lag))
    return w


@functools.lru_cache(maxsize=128)
def _step_coefficients(
    levels: tuple[float, ...], order: int, basis: Basis, schedule: NoiseSchedule
) -> tuple[tuple[float, tuple[float, ...]], ...]:
    """``(c_x, c)`` of every step (order rising from 1, first order into the clean sample)."""
    u = _basis_map(basis, schedule)
    kinks = basis_kinks(basis, schedule)
    rho = [rho_of(a) for a in levels]
    out = []
    for k in range(len(levels) - 1):
        p = 1 if k == len(levels) - 2 else min(order, k + 1)
        w = deis_weights([rho[k - j] for j in range(p)], rho[k + 1], u, kinks)
        c_x, c = y_update_to_x(levels[k], levels[k + 1], 1.0, w)
        out.append((c_x, tuple(c)))
    return tuple(out)


def sample_deis(
    model: EpsModel,
    x_T: Tensor,  # noqa: N803 - the paper's symbol
    trajectory: Trajectory,
    *,
    callback: Callback | None = None,
    generator: NoiseSource = None,
    model_kwargs: Mapping[str, Any] | None = None,
    order: int = 2,
    basis: Basis = "t",
) -> Tensor:
    """DEIS-AB of ``order`` (1-3) in ``basis`` over ``trajectory`` (default: tAB2): K model calls.

    Order p needs ``K >= p + 1`` so that one step has its full order. ``generator`` is unused.
    """
    del generator
    if order not in DEIS_ORDERS:
        raise ValueError(f"unknown DEIS order {order!r}; expected one of {list(DEIS_ORDERS)}")
    _basis_map(basis, model.schedule)  # validates basis
    run = SamplingRun(
        f"DEIS {basis}AB{order}",
        model,
        x_T,
        trajectory,
        callback=callback,
        model_kwargs=model_kwargs,
        min_levels=min_levels_for_order(order),
    )
    # 1. C_kj = int l_j(u(rho)) drho for every step (DEIS eq. 15), applied in x: they depend only
    #    on the levels, so they are computed once per trajectory (cached across runs)
    steps = _step_coefficients(tuple(run.levels), order, basis, model.schedule)
    history: list[Tensor] = []  # eps at the visited levels, newest first
    x = x_T
    with torch.no_grad():
        for k in range(run.K):
            eps_hat = run.eps(k, x)
            history = [eps_hat, *history][:order]
            c_x, c = steps[k]
            # 2. y_{k+1} = y_k + sum_j C_kj eps_{k-j}
            x_next = linear_combination(x, c_x, c, history[: len(c)])
            run.record(k, x, eps_hat, order=len(c))
            x = x_next
    return x
