"""vrg_analysis: audit and reproduce Variance-Reduction Guidance (VRG) for diffusion samplers."""

from __future__ import annotations

from vrg_analysis import samplers
from vrg_analysis._version import __version__
from vrg_analysis.core.cpe import cpe_terms, cumulative_prediction_error, step_coefficients
from vrg_analysis.core.profile import ErrorProfile, read_official_profile
from vrg_analysis.core.schedules import NoiseSchedule
from vrg_analysis.core.trajectories import (
    BASELINES,
    Trajectory,
    baseline,
    dpm_solver_levels,
    karras,
    logsnr_uniform,
    read_official_trajectory,
    time_quadratic,
    time_uniform,
)
from vrg_analysis.models import EpsModel, TorchEpsModel
from vrg_analysis.profiling import profile_prediction_error
from vrg_analysis.vrg.optimize import MLPSGDConfig, OptimizationResult, optimize_trajectory

__all__ = [
    "__version__",
    "samplers",
    "NoiseSchedule",
    "Trajectory",
    "BASELINES",
    "baseline",
    "time_uniform",
    "time_quadratic",
    "logsnr_uniform",
    "karras",
    "dpm_solver_levels",
    "read_official_trajectory",
    "ErrorProfile",
    "read_official_profile",
    "profile_prediction_error",
    "cumulative_prediction_error",
    "cpe_terms",
    "step_coefficients",
    "optimize_trajectory",
    "OptimizationResult",
    "MLPSGDConfig",
    "EpsModel",
    "TorchEpsModel",
]
