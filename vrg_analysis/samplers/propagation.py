"""How a sampler carries each model call's error to the sample: the propagated CPE.

CPE (Eq. 10) is the variance that independent prediction errors add to the clean sample *for
DDIM*: an error ``delta_k`` at level ``a_k`` reaches it as ``(sigma_{k-1} - sigma_k) delta_k``
(:func:`~vrg_analysis.core.cpe.step_increments`). A higher-order sampler calls the model at other
points (the midpoints of a singlestep DPM-Solver, the Runge-Kutta warm-up of PNDM) and reuses each
call's output in several updates with its own weights, so the same error reaches the sample with
another gain. Under CPE's own assumption (the errors reach the sample unchanged: the model's
dependence on ``x`` is left out) every deterministic sampler here is linear in its model outputs,
and the gain of call ``j`` is exact:

    g_j = d x_final / d delta_j,   computed by running the sampler from x_T = 0 with a predictor
                                   that returns 0, plus 1 on row j at call j (one row per call)

and the **propagated CPE** of sampler ``S`` on a trajectory is

    PCPE_S = sum_j g_j^2 w(a_j)                                                       (PCPE)

over its model calls ``j`` at levels ``a_j`` (``w`` the profile, clamped outside its range). For
DDIM, ``g_j = sigma_{k+1} - sigma_k`` at the trajectory's own levels and PCPE is CPE exactly (a
test checks it); for the other samplers it is the objective that weights each step by the
sampler's own error propagation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from vrg_analysis.core.profile import ErrorProfile
from vrg_analysis.core.schedules import NoiseSchedule
from vrg_analysis.core.trajectories import Trajectory
from vrg_analysis.samplers.registry import get_sampler, sample

__all__ = ["ErrorGains", "error_gains", "propagated_cpe"]

FloatArray = NDArray[np.float64]


class _UnitErrors:
    """A predictor that ignores its input: 0 everywhere, plus 1 on row ``j`` at its ``j``-th
    call; records the timestep of every call."""

    def __init__(self, schedule: NoiseSchedule) -> None:
        self.schedule = schedule
        self.calls = 0
        self.timesteps: list[float] = []

    def __call__(self, x: torch.Tensor, t: torch.Tensor, **_: Any) -> torch.Tensor:
        out = torch.zeros_like(x)
        if self.calls < x.shape[0]:
            out[self.calls] = 1.0
        self.calls += 1
        self.timesteps.append(float(torch.as_tensor(t).reshape(-1)[0]))
        return out


@dataclass(frozen=True)
class ErrorGains:
    """The gain ``g_j`` of every model call of ``sampler`` on a trajectory and the level
    ``alpha_bar[j]`` it was made at (in call order)."""

    sampler: str
    gains: FloatArray
    alpha_bar: FloatArray

    def propagated_cpe(self, profile: ErrorProfile) -> float:
        """(PCPE) under ``profile`` (clamped outside its levels)."""
        w = profile.w(self.alpha_bar, outside="clamp")
        return float(np.sum(self.gains**2 * w))


def error_gains(sampler: str, trajectory: Trajectory, schedule: NoiseSchedule) -> ErrorGains:
    """The gains of (PCPE) for a deterministic registered ``sampler`` (module docstring)."""
    spec = get_sampler(sampler)
    if spec.stochastic:
        raise ValueError(
            f"sampler {sampler!r} is stochastic: its sample is not a linear function of the model "
            "outputs alone"
        )
    calls = spec.nfe(trajectory.K)
    model = _UnitErrors(schedule)
    x_t = torch.zeros(calls, 1, dtype=torch.float64)
    with torch.no_grad():
        out = sample(sampler, model, x_t, trajectory).x
    if model.calls != calls:
        raise RuntimeError(f"{sampler} made {model.calls} model calls, its spec says {calls}")
    a = schedule.alpha_bar(np.asarray(model.timesteps, dtype=np.float64))
    return ErrorGains(sampler, out.double().reshape(-1).numpy().copy(), np.asarray(a))


def propagated_cpe(
    sampler: str, trajectory: Trajectory, profile: ErrorProfile, schedule: NoiseSchedule
) -> float:
    """(PCPE) of ``sampler`` on ``trajectory``: :func:`error_gains` under ``profile``."""
    return error_gains(sampler, trajectory, schedule).propagated_cpe(profile)
