"""DDIM (Song, Meng & Ermon 2021), deterministic (eta = 0) and stochastic (eta > 0).

Eq. 12 of the DDIM paper, with ``a = alpha_bar_t``, ``a' = alpha_bar_{t-1}`` (the next level):

    x' = sqrt(a') x0_hat + sqrt(1 - a' - s^2) eps_hat + s z,        z ~ N(0, I)
    s  = eta sqrt((1 - a') / (1 - a)) sqrt(1 - a / a')                  (eq. 16)

With eta = 0 this is Euler's method on the probability-flow ODE in ``y = x / sqrt(a)``:
``y' = y + (sigma' - sigma) eps_hat`` (the design page); eta = 1 is DDPM's ancestral step. The last
step lands on ``a' = 1``, where ``s = 0`` and ``x' = x0_hat``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from vrg_analysis.core.trajectories import Trajectory
from vrg_analysis.models import EpsModel
from vrg_analysis.samplers.core import Callback, SamplingRun, linear_combination, predicted_x0
from vrg_analysis.samplers.noise import NoiseSource, draw_noise

__all__ = ["sample_ddim", "ddim_coefficients", "ddim_step", "ddim_noise_std"]


def ddim_coefficients(alpha_bar: float, alpha_bar_next: float) -> tuple[float, float]:
    """``(c_x, c_eps)`` with ``x_next = c_x x + c_eps eps_hat`` for one deterministic DDIM step.

    Substituting ``x0_hat`` (DDPM eq. 15) into DDIM eq. 12 (eta = 0) gives ``c_x = sqrt(a' / a)``
    and ``c_eps = sqrt(1 - a') - sqrt(a') sqrt(1 - a) / sqrt(a)``, written here in PNDM's
    cancellation-free form (Liu et al. 2022, eq. 9):
    ``c_eps = -(a' - a) / (sqrt(a) (sqrt(a (1 - a')) + sqrt(a' (1 - a))))``.
    """
    a, a_next = float(alpha_bar), float(alpha_bar_next)
    c_x = math.sqrt(a_next / a)
    c_eps = -(a_next - a) / (
        math.sqrt(a) * (math.sqrt(a * (1.0 - a_next)) + math.sqrt(a_next * (1.0 - a)))
    )
    return c_x, c_eps


def ddim_step(x: Tensor, eps_hat: Tensor, alpha_bar: float, alpha_bar_next: float) -> Tensor:
    """One deterministic DDIM step from ``alpha_bar`` to ``alpha_bar_next`` (eq. 12, eta 0)."""
    c_x, c_eps = ddim_coefficients(alpha_bar, alpha_bar_next)
    return linear_combination(x, c_x, (c_eps,), (eps_hat,))


def ddim_noise_std(alpha_bar: float, alpha_bar_next: float, eta: float) -> float:
    """``s`` of DDIM eq. 16: the standard deviation of the noise added by a step with ``eta``."""
    a, a_next = float(alpha_bar), float(alpha_bar_next)
    return eta * math.sqrt((1.0 - a_next) / (1.0 - a)) * math.sqrt(max(0.0, 1.0 - a / a_next))


def sample_ddim(
    model: EpsModel,
    x_T: Tensor,  # noqa: N803 - the paper's symbol
    trajectory: Trajectory,
    *,
    callback: Callback | None = None,
    generator: NoiseSource = None,
    model_kwargs: Mapping[str, Any] | None = None,
    eta: float = 0.0,
) -> Tensor:
    """DDIM over every level of ``trajectory``: K model calls.

    ``eta = 0`` is deterministic (``generator`` unused); ``eta > 0`` draws one ``z`` per step from
    ``generator`` (one generator per sample makes the samples batch-invariant, see
    :mod:`~vrg_analysis.samplers.noise`). ``eta`` must lie in [0, 1].
    """
    eta = float(eta)
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must lie in [0, 1], got {eta!r}")
    run = SamplingRun("ddim", model, x_T, trajectory, callback=callback, model_kwargs=model_kwargs)
    x = x_T
    with torch.no_grad():
        for k in range(run.K):
            a, a_next = run.levels[k], run.levels[k + 1]
            eps_hat = run.eps(k, x)  # 1. eps_theta(x_t, t)
            s = ddim_noise_std(a, a_next, eta) if eta > 0.0 else 0.0
            if s == 0.0:
                x_next = ddim_step(x, eps_hat, a, a_next)  # 2. eq. 12 with eta = 0
            else:
                # 2. eq. 12: sqrt(a') x0_hat + sqrt(1 - a' - s^2) eps_hat + s z
                x0_hat = predicted_x0(x, eps_hat, a)
                z = draw_noise(x.shape, generator, dtype=x.dtype, device=x.device)
                c_dir = math.sqrt(max(0.0, 1.0 - a_next - s * s))
                x_next = linear_combination(x0_hat, math.sqrt(a_next), (c_dir, s), (eps_hat, z))
            run.record(k, x, eps_hat)
            x = x_next
    return x
