"""What every sampler shares: the per-step record, the checked and counted model call, the
linear update ``x_next = c_x x + sum_j c_j m_j`` and the level bookkeeping.

Coordinates (the design page's notation). At level ``a`` (``alpha_bar``) write ``alpha = sqrt(a)``,
``rho = sigma = sqrt((1 - a) / a)`` and ``y = x / alpha``. The probability-flow ODE is
``dy/drho = eps(x)`` and the half log-SNR is ``lambda_ = -log(rho)``. Every update in this package
is first written in ``y`` as ``y_next = A y + sum_j w_j m_j`` (``m_j`` a noise or a clean-sample
prediction) and applied in ``x`` as ``x_next = (alpha_next / alpha) A x + alpha_next sum_j w_j m_j``
by :func:`y_update_to_x`: float64 scalars per step, one fused tensor pass per update.

A trajectory of K levels is walked noisiest first; level K is the clean sample (``a = 1``,
``rho = 0``, ``lambda_ = +inf``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from vrg_analysis.core.trajectories import Trajectory
from vrg_analysis.models import EpsModel, checked_eps, timestep_tensors

__all__ = [
    "StepRecord",
    "Callback",
    "SamplingRun",
    "predicted_x0",
    "y_update_to_x",
    "linear_combination",
    "rho_of",
    "min_levels_for_order",
]


@dataclass(frozen=True)
class StepRecord:
    """What one sampler step saw at trajectory level ``step``.

    ``x`` is the state the model was evaluated on at that level (for a singlestep solver's inner
    levels, the solver's intermediate state), ``eps_hat`` / ``x0_hat`` the model's predictions
    there, ``order`` the order of the update that left the level, ``nfe`` the number of model calls
    made so far, including any extra evaluations of this step (Runge-Kutta stages, a Heun
    corrector).
    """

    step: int
    alpha_bar: float
    alpha_bar_next: float  # 1.0 for the final step to the clean sample
    t: float
    x: Tensor
    eps_hat: Tensor
    x0_hat: Tensor
    nfe: int
    order: int = 1


Callback = Callable[[StepRecord], None]


def min_levels_for_order(order: int) -> int:
    """Fewest levels for one step of full ``order``: it needs ``order`` levels and a level after
    them that is not the clean one (the step into the clean sample is first order)."""
    return 1 if order == 1 else order + 1


def rho_of(alpha_bar: float) -> float:
    """``rho = sigma = sqrt((1 - a) / a)``; 0 at the clean level ``a = 1``."""
    return math.sqrt((1.0 - alpha_bar) / alpha_bar)


def predicted_x0(x: Tensor, eps_hat: Tensor, alpha_bar: float) -> Tensor:
    """``x0_hat = (x - sqrt(1 - a) eps_hat) / sqrt(a)`` (DDPM, Ho et al. 2020, eq. 15)."""
    return (x - math.sqrt(1.0 - alpha_bar) * eps_hat) / math.sqrt(alpha_bar)


def y_update_to_x(
    alpha_bar: float, alpha_bar_next: float, a_y: float, w_y: Sequence[float]
) -> tuple[float, list[float]]:
    """``(c_x, c)`` of ``x_next = c_x x + sum_j c_j m_j`` for the ``y``-space update
    ``y_next = a_y y + sum_j w_y[j] m_j`` (``y = x / sqrt(alpha_bar)``)."""
    scale = math.sqrt(alpha_bar_next)
    return scale * a_y / math.sqrt(alpha_bar), [scale * float(w) for w in w_y]


def linear_combination(
    x: Tensor, c_x: float, coeffs: Sequence[float], terms: Sequence[Tensor]
) -> Tensor:
    """``c_x x + sum_j coeffs[j] terms[j]`` with zero coefficients skipped (one new tensor)."""
    out = x * c_x
    for c, m in zip(coeffs, terms, strict=True):
        if c != 0.0:
            out.add_(m, alpha=c)
    return out


class SamplingRun:
    """One sampling run: the validated inputs, the levels, and every model call checked, counted
    and (with ``callback``) recorded.

    ``levels[k]`` is the level of step ``k`` (``levels[K] = final_alpha_bar``, default 1.0, the
    clean sample; a sampler that stops short of it passes a lower level). A sampler
    calls :meth:`eps` to evaluate the model at trajectory level ``k`` (its timestep row is computed
    once) or :meth:`eps_at` at any other level (PNDM's half-steps), then :meth:`record` once per
    level.
    """

    def __init__(
        self,
        name: str,
        model: EpsModel,
        x_T: Tensor,  # noqa: N803 - the paper's symbol
        trajectory: Trajectory,
        *,
        callback: Callback | None,
        model_kwargs: Mapping[str, Any] | None,
        min_levels: int = 1,
        final_alpha_bar: float = 1.0,
    ) -> None:
        if not isinstance(trajectory, Trajectory):
            raise TypeError(
                f"{name}: trajectory must be a Trajectory, got {type(trajectory).__name__}"
            )
        if not isinstance(x_T, Tensor):
            raise TypeError(f"{name}: x_T must be a torch.Tensor, got {type(x_T).__name__}")
        if x_T.ndim < 1 or x_T.shape[0] < 1:
            raise ValueError(
                f"{name}: x_T must have a non-empty batch dimension, got {tuple(x_T.shape)}"
            )
        if not x_T.is_floating_point():
            raise TypeError(f"{name}: x_T must be a floating-point tensor, got {x_T.dtype}")
        if not bool(torch.isfinite(x_T).all()):
            raise ValueError(f"{name}: x_T contains non-finite values")
        if trajectory.K < min_levels:
            raise ValueError(
                f"{name} needs a trajectory of at least {min_levels} levels, got K={trajectory.K}"
            )
        if model_kwargs is not None and not isinstance(model_kwargs, Mapping):
            raise TypeError(
                f"{name}: model_kwargs must be a mapping, got {type(model_kwargs).__name__}"
            )
        self.name = name
        self.model = model
        self.x_T = x_T
        self.trajectory = trajectory
        self.K = trajectory.K
        last = float(trajectory.alpha_bar[-1])
        bad = isinstance(final_alpha_bar, bool) or not isinstance(final_alpha_bar, int | float)
        if bad or not last < final_alpha_bar <= 1.0:
            raise ValueError(
                f"{name}: final_alpha_bar must lie in ({last:.6g}, 1] (above the trajectory's "
                f"last level), got {final_alpha_bar!r}"
            )
        self.levels: list[float] = [float(a) for a in trajectory.alpha_bar] + [
            float(final_alpha_bar)
        ]
        self.rho: list[float] = [rho_of(a) for a in self.levels]
        self.callback = callback
        self.model_kwargs = dict(model_kwargs or {})
        # every level's training timestep, once (continuous levels -> fractional t), [K, batch]
        self.t = timestep_tensors(model.schedule, trajectory.alpha_bar, x_T)
        self.nfe = 0

    def _call(self, x: Tensor, t: Tensor) -> Tensor:
        self.nfe += 1
        return checked_eps(self.model, x, t, **self.model_kwargs)

    def eps(self, k: int, x: Tensor) -> Tensor:
        """``eps_theta(x, t_k)`` at trajectory level ``k`` (one model call)."""
        return self._call(x, self.t[k])

    def eps_at(self, alpha_bar: float, x: Tensor) -> Tensor:
        """``eps_theta(x, t(alpha_bar))`` at a level off the trajectory (one model call)."""
        return self._call(x, timestep_tensors(self.model.schedule, np.array([alpha_bar]), x)[0])

    def t_of(self, k: int) -> float:
        return float(self.t[k][0])

    def record(self, k: int, x: Tensor, eps_hat: Tensor, order: int = 1) -> None:
        """Pass a :class:`StepRecord` for level ``k`` to the callback (nothing without one)."""
        if self.callback is None:
            return
        a = self.levels[k]
        self.callback(
            StepRecord(
                step=k,
                alpha_bar=a,
                alpha_bar_next=self.levels[k + 1],
                t=self.t_of(k),
                x=x,
                eps_hat=eps_hat,
                x0_hat=predicted_x0(x, eps_hat, a),
                nfe=self.nfe,
                order=order,
            )
        )
