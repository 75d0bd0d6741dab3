"""A one-Gaussian data distribution whose optimal noise predictor and flow map are closed-form."""

from __future__ import annotations

import numpy as np
import torch

from vrg_analysis import ErrorProfile, NoiseSchedule


class GaussianOracle:
    """Data ``x0 ~ N(0, c^2 I)``: ``eps*(x, a) = sqrt(1 - a) x / (a c^2 + 1 - a)``."""

    def __init__(self, c: float = 0.5, schedule: NoiseSchedule | None = None) -> None:
        self.c = c
        self.schedule = schedule or NoiseSchedule.linear()
        self.calls = 0

    @property
    def identity(self) -> str:
        """What this oracle is (its parameter and schedule), so a checkpoint can be keyed."""
        return f"GaussianOracle(c={self.c!r}, schedule={self.schedule.name})"

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        a = torch.as_tensor(self.schedule.alpha_bar(t.double().numpy()), dtype=x.dtype)
        a = a.reshape(-1, *([1] * (x.ndim - 1)))
        return (1 - a).sqrt() * x / (a * self.c**2 + 1 - a)

    def posterior_variance(self, a: np.ndarray) -> np.ndarray:
        """``Var(eps | x_t)`` per dimension: the MSE of the optimal predictor."""
        return a * self.c**2 / (a * self.c**2 + 1 - a)

    def flow(self, y: torch.Tensor, sigma_from: float, sigma_to: float) -> torch.Tensor:
        """Exact probability-flow map in ``y = x / sqrt(a)``: ``y ~ N(0, c^2 + sigma^2)``."""
        return y * np.sqrt((self.c**2 + sigma_to**2) / (self.c**2 + sigma_from**2))


def smooth_profile(schedule: NoiseSchedule | None = None) -> ErrorProfile:
    """A smooth, increasing error profile on every 10th timestep (and the last) of ``schedule``."""
    sched = schedule or NoiseSchedule.linear()
    a = sched.alpha_bar(np.r_[np.arange(0, 1000, 10), 999])
    return ErrorProfile(alpha_bar=a, mse=0.5 * a**3 + 0.02 * a + 1e-5)
