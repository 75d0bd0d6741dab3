"""Samplers that walk any :class:`~vrg_analysis.trajectories.Trajectory` (continuous levels).

Contract (k-diffusion style): ``sampler(model, x_T, trajectory, *, callback=None, generator=None)``
returns the clean sample; ``callback`` receives one :class:`StepRecord` per step.

DDIM (Song et al. 2021, eq. 12 with eta = 0) in ``y = x / sqrt(alpha_bar)`` coordinates is Euler's
method on the probability-flow ODE ``dy/dsigma = eps(x)``:

    y_next = y + (sigma_next - sigma) * eps_hat                              (DDIM)

with ``sigma_next = 0`` after the last level, where ``y = x``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .models import EpsModel, checked_eps, timestep_tensor
from .trajectories import Trajectory

__all__ = ["StepRecord", "ddim", "ddim_step"]


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


def ddim_step(x: Tensor, eps_hat: Tensor, alpha_bar: float, alpha_bar_next: float) -> Tensor:
    """One deterministic DDIM step from level ``alpha_bar`` to ``alpha_bar_next`` (eq. DDIM).

    In ``x`` coordinates: ``x_next = sqrt(a_next) * (x0_hat) + sqrt(1 - a_next) * eps_hat`` with
    ``x0_hat = (x - sqrt(1 - a) eps_hat) / sqrt(a)``, the same update as (DDIM).
    """
    a = torch.as_tensor(alpha_bar, dtype=torch.float64)
    a_next = torch.as_tensor(alpha_bar_next, dtype=torch.float64)
    x0_hat = (x - (1.0 - a).sqrt().to(x.dtype) * eps_hat) / a.sqrt().to(x.dtype)
    return a_next.sqrt().to(x.dtype) * x0_hat + (1.0 - a_next).sqrt().to(x.dtype) * eps_hat


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
    x = x_T
    batch = x.shape[0]
    with torch.no_grad():
        for k in range(trajectory.K):
            a, a_next = levels[k], levels[k + 1]
            t = timestep_tensor(model.schedule, a, batch, x)  # 1. level -> training timestep
            eps_hat = checked_eps(model, x, t)  # 2. eps_theta(x_t, t)
            x_next = ddim_step(x, eps_hat, a, a_next)  # 3. (DDIM)
            if callback is not None:
                x0_hat = (x - (1.0 - a) ** 0.5 * eps_hat) / a**0.5
                callback(StepRecord(k, a, a_next, float(t[0]), x, eps_hat, x0_hat, k + 1))
            x = x_next
    return x
