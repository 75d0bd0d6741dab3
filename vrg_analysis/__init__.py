"""vrg_analysis: audit and reproduce Variance-Reduction Guidance (VRG) for diffusion samplers."""

from __future__ import annotations

__version__ = "0.1.0"

from . import samplers  # noqa: E402
from .cpe import cpe_terms, cumulative_prediction_error, step_coefficients  # noqa: E402
from .models import EpsModel, TorchEpsModel  # noqa: E402
from .optimize import MLPSGDConfig, OptimizationResult, optimize_trajectory  # noqa: E402
from .profiling import ErrorProfile, profile_prediction_error, read_official_profile  # noqa: E402
from .schedules import NoiseSchedule  # noqa: E402
from .trajectories import (  # noqa: E402
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
