"""Cumulative prediction error (CPE), the variance VRG minimises.

Index the levels from the clean end, ``a_1`` least noisy .. ``a_K`` noisiest, with ``a_0 = 1``
(``sigma_0 = 0``). A DDIM step in ``y = x / sqrt(alpha_bar)`` coordinates is
``y_{k-1} = y_k + (sigma_{k-1} - sigma_k) eps_hat``, so a prediction error ``delta_k`` at level
``a_k`` reaches the clean sample as ``(sigma_{k-1} - sigma_k) delta_k``; with independent errors of
per-dimension variance ``w(a_k)`` the variances add (the design page):

    CPE = sum_{k=1..K} (sigma_k - sigma_{k-1})^2 * w(a_k)                       (CPE)

Reference value: the official CIFAR-10 profile with the order-1, 10-step time-quadratic trajectory
gives CPE = 0.501388.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from vrg_analysis.core.profile import ErrorProfile, Outside
from vrg_analysis.core.schedules import sigma_from_alpha_bar
from vrg_analysis.core.trajectories import Trajectory

__all__ = ["cumulative_prediction_error", "cpe_terms", "step_coefficients", "step_increments"]


def step_increments(alpha_bar: ArrayLike) -> NDArray[np.float64]:
    """``c_k = sigma_{k+1} - sigma_k`` for levels in sampling order (noisiest first), the last
    step ending at ``sigma = 0``: the DDIM update ``y_next = y + c_k eps_hat`` carries the error
    ``c_k delta_k`` (the design page), so the accumulated error is ``sum_k c_k delta_k``."""
    sigma = sigma_from_alpha_bar(np.asarray(alpha_bar, dtype=np.float64))
    return np.diff(np.append(sigma, 0.0))


def step_coefficients(trajectory: Trajectory) -> NDArray[np.float64]:
    """``(sigma_k - sigma_{k-1})^2`` for ``k = 1..K`` (clean end first): ``c_k^2`` of
    :func:`step_increments`, reversed."""
    return step_increments(trajectory.alpha_bar)[::-1] ** 2


def cpe_terms(
    trajectory: Trajectory, profile: ErrorProfile, *, outside: Outside = "error"
) -> NDArray[np.float64]:
    """The K summands of (CPE), clean end first; raises if the profile does not cover a level."""
    # Read w in sampling order, so an uncovered level is reported at its trajectory index.
    w = profile.w(trajectory.alpha_bar, outside=outside)[::-1]
    return step_coefficients(trajectory) * w


def cumulative_prediction_error(
    trajectory: Trajectory, profile: ErrorProfile, *, outside: Outside = "error"
) -> float:
    """CPE of ``trajectory`` under ``profile`` (eq. CPE above)."""
    return float(np.sum(cpe_terms(trajectory, profile, outside=outside)))
