"""The method's mathematics, numpy only: noise schedules, trajectories, the error profile and CPE.

* :mod:`.schedules`: :class:`NoiseSchedule` and every map between ``t``, ``alpha_bar``, ``sigma``
  and ``lambda_``;
* :mod:`.trajectories`: :class:`Trajectory` and the baselines;
* :mod:`.profile`: :class:`ErrorProfile`, the measured ``w(alpha_bar)``;
* :mod:`.cpe`: the cumulative prediction error (Eq. 10).
"""

from __future__ import annotations

from vrg_analysis.core.cpe import (
    cpe_terms,
    cumulative_prediction_error,
    step_coefficients,
    step_increments,
)
from vrg_analysis.core.profile import ErrorProfile, read_official_profile
from vrg_analysis.core.schedules import NoiseSchedule
from vrg_analysis.core.trajectories import BASELINES, Trajectory, baseline

__all__ = [
    "NoiseSchedule",
    "Trajectory",
    "BASELINES",
    "baseline",
    "ErrorProfile",
    "read_official_profile",
    "cumulative_prediction_error",
    "cpe_terms",
    "step_coefficients",
    "step_increments",
]
