"""The one re-timing rule: a baseline trajectory and its VRG re-timing under a setting.

Every study that compares a baseline with VRG re-times through :func:`vrg_retime`: it minimises
(VRG) of :mod:`vrg_analysis.vrg.objective` inside the gamma box with the exact solver, keeping every
level inside the schedule's timestep range (the least noisy level capped at ``alpha_bar(0)``, the
noisiest at or above ``alpha_bar(T)``, so every level is a timestep the model knows).
``gamma = 0`` is the control arm: the baseline comes back unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from vrg_analysis.core.profile import ErrorProfile
from vrg_analysis.core.schedules import NoiseSchedule
from vrg_analysis.core.trajectories import Trajectory
from vrg_analysis.vrg.optimize import optimize_trajectory

__all__ = ["VRGSetting", "PUBLISHED_VRG", "vrg_retime"]


@dataclass(frozen=True)
class VRGSetting:
    """One VRG configuration: learning portion ``gamma`` in [0, 1) (0: the baseline unchanged)
    and regulariser ``reg_lambda``; ``keep_start`` holds the noisiest level exactly."""

    gamma: float
    reg_lambda: float
    keep_start: bool = False

    def __post_init__(self) -> None:
        if not (math.isfinite(self.gamma) and 0.0 <= self.gamma < 1.0):
            raise ValueError(f"gamma must lie in [0, 1), got {self.gamma!r}")
        if not (math.isfinite(self.reg_lambda) and self.reg_lambda >= 0.0):
            raise ValueError(f"reg_lambda must be a finite number >= 0, got {self.reg_lambda!r}")

    @property
    def label(self) -> str:
        hold = ", start held" if self.keep_start else ""
        return f"VRG(gamma={self.gamma:g}, lambda={self.reg_lambda:g}{hold})"


#: The official implementation's defaults: the "VRG as published" arm.
PUBLISHED_VRG = VRGSetting(gamma=0.01, reg_lambda=100.0)


def vrg_retime(
    trajectory: Trajectory, profile: ErrorProfile, schedule: NoiseSchedule, setting: VRGSetting
) -> tuple[Trajectory, dict[str, Any]]:
    """VRG's re-timing of ``trajectory`` under ``setting``, with every level kept inside the
    schedule's timestep range; returns the trajectory and a summary of the optimisation.

    ``gamma = 0`` is an empty box: no ratio may move, so the baseline comes back unchanged (the
    ablation's control arm); the solver, which needs gamma in (0, 1), is not called.
    """
    if setting.gamma == 0.0:
        info0 = {"converged": True, "moved": False, "start_shift": 0.0, "cpe_reduction": 0.0}
        return trajectory.renamed(f"{trajectory.name}+vrg"), info0
    res = optimize_trajectory(
        trajectory,
        profile,
        gamma=setting.gamma,
        reg_lambda=setting.reg_lambda,
        keep_start=setting.keep_start,
        alpha_bar_max=float(schedule.alpha_bar_max),
        alpha_bar_min=None if setting.keep_start else float(schedule.alpha_bar_min),
    )
    info = {
        "converged": bool(res.converged),
        "moved": bool(res.moved),
        "start_shift": res.start_level_shift,
        "cpe_reduction": res.cpe_reduction,
    }
    return res.optimized.renamed(f"{trajectory.name}+vrg"), info
