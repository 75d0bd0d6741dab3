"""Samplers that walk any :class:`~vrg_analysis.trajectories.Trajectory` (continuous levels).

Contract (k-diffusion style): ``sampler(model, x_T, trajectory, *, callback=None, generator=None)``
returns the clean sample; ``callback`` receives one :class:`StepRecord` per step.

DDIM (Song et al. 2021, eq. 12 with eta = 0) in ``y = x / sqrt(alpha_bar)`` coordinates is Euler's
method on the probability-flow ODE ``dy/dsigma = eps(x)``:

    y_next = y + (sigma_next - sigma) * eps_hat                              (DDIM)

with ``sigma_next = 0`` after the last level, where ``y = x``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .models import EpsModel, checked_eps, timestep_tensors
from .trajectories import Trajectory

__all__ = ["StepRecord", "ddim", "ddim_step", "ddim_coefficients", "predicted_x0"]


@dataclass(frozen=True)
class StepRecord:
    """What one sampler step saw: its index, levels, state and the model's predictions."""

    step: int
    alpha_bar: float
    alpha_bar_next: float  # 1.0 for the final step to the clean sample
    t: float
    x: Tensor
    eps_hat: Tensor
    x0_hat: Tensor
    nfe: int


Callback = Callable[[StepRecord], None]


def ddim_coefficients(alpha_bar: float, alpha_bar_next: float) -> tuple[float, float]:
    """``(c_x, c_eps)`` with ``x_next = c_x * x + c_eps * eps_hat`` for one DDIM step.

    Substituting ``x0_hat = (x - sqrt(1 - a) eps_hat) / sqrt(a)`` into
    ``x_next = sqrt(a_next) x0_hat + sqrt(1 - a_next) eps_hat`` (Song et al. 2021, eq. 12,
    eta = 0) gives ``c_x = sqrt(a_next / a)`` and
    ``c_eps = sqrt(1 - a_next) - sqrt(a_next) sqrt(1 - a) / sqrt(a)``; in ``y`` coordinates this
    is (DDIM). Computed in float64 once per step, outside the model loop.
    """
    a, a_next = float(alpha_bar), float(alpha_bar_next)
    c_x = math.sqrt(a_next / a)
    c_eps = math.sqrt(1.0 - a_next) - math.sqrt(a_next) * math.sqrt(1.0 - a) / math.sqrt(a)
    return c_x, c_eps


def ddim_step(x: Tensor, eps_hat: Tensor, alpha_bar: float, alpha_bar_next: float) -> Tensor:
    """One deterministic DDIM step from level ``alpha_bar`` to ``alpha_bar_next`` (eq. DDIM)."""
    c_x, c_eps = ddim_coefficients(alpha_bar, alpha_bar_next)
    return torch.add(x * c_x, eps_hat, alpha=c_eps)


def predicted_x0(x: Tensor, eps_hat: Tensor, alpha_bar: float) -> Tensor:
    """``x0_hat = (x - sqrt(1 - a) eps_hat) / sqrt(a)`` (DDPM eq. 15)."""
    return (x - math.sqrt(1.0 - alpha_bar) * eps_hat) / math.sqrt(alpha_bar)


def ddim(
    model: EpsModel,
    x_T: Tensor,  # noqa: N803 - the paper's symbol
    trajectory: Trajectory,
    *,
    callback: Callback | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Deterministic DDIM over every level of ``trajectory`` (K model calls).

    ``generator`` is accepted for the common sampler signature; deterministic DDIM draws nothing.
    """
    del generator
    if not isinstance(x_T, Tensor):
        raise TypeError(f"x_T must be a torch.Tensor, got {type(x_T).__name__}")
    if not torch.isfinite(x_T).all():
        raise ValueError("x_T contains non-finite values")
    levels = [float(v) for v in trajectory.alpha_bar] + [1.0]
    # 1. every level's training timestep, once (continuous levels -> fractional t)
    t_all = timestep_tensors(model.schedule, trajectory.alpha_bar, x_T)
    x = x_T
    with torch.no_grad():
        for k in range(trajectory.K):
            a, a_next = levels[k], levels[k + 1]
            eps_hat = checked_eps(model, x, t_all[k])  # 2. eps_theta(x_t, t)
            x_next = ddim_step(x, eps_hat, a, a_next)  # 3. (DDIM)
            if callback is not None:
                x0_hat = predicted_x0(x, eps_hat, a)
                callback(StepRecord(k, a, a_next, float(t_all[k][0]), x, eps_hat, x0_hat, k + 1))
            x = x_next
    return x
