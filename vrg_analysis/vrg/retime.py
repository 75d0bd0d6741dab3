"""The one re-timing rule: a baseline trajectory and its VRG re-timing under a setting.

Every study that compares a baseline with VRG re-times through :func:`vrg_retime`: it minimises
(VRG) of :mod:`vrg_analysis.vrg.objective` inside the gamma box, keeping every level inside the
schedule's timestep range (the least noisy level capped at ``alpha_bar(0)``, the noisiest at or
above ``alpha_bar(T)``, so every level is a timestep the model knows). ``gamma = 0`` is the
control arm: the baseline comes back unchanged.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from vrg_analysis.core.profile import ErrorProfile
from vrg_analysis.core.schedules import NoiseSchedule
from vrg_analysis.core.trajectories import Trajectory
from vrg_analysis.vrg.arms import ArmContext
from vrg_analysis.vrg.optimize import METHODS, MLPSGDConfig, optimize_trajectory

__all__ = ["VRGSetting", "PUBLISHED_VRG", "vrg_retime"]


@dataclass(frozen=True)
class VRGSetting:
    """One VRG configuration (an :class:`~vrg_analysis.vrg.arms.Arm`): learning portion
    ``gamma`` in [0, 1) (0: the baseline unchanged), regulariser ``reg_lambda``; ``keep_start``
    holds the noisiest level exactly; ``method`` is the exact bounded solver or the paper's
    ``"mlp_sgd"`` (``mlp_epochs`` SGD epochs)."""

    gamma: float
    reg_lambda: float
    keep_start: bool = False
    method: str = "exact"
    mlp_epochs: int = 3000

    def __post_init__(self) -> None:
        if not (math.isfinite(self.gamma) and 0.0 <= self.gamma < 1.0):
            raise ValueError(f"gamma must lie in [0, 1), got {self.gamma!r}")
        if not (math.isfinite(self.reg_lambda) and self.reg_lambda >= 0.0):
            raise ValueError(f"reg_lambda must be a finite number >= 0, got {self.reg_lambda!r}")
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if isinstance(self.mlp_epochs, bool) or int(self.mlp_epochs) < 1:
            raise ValueError(f"mlp_epochs must be a positive integer, got {self.mlp_epochs!r}")

    @property
    def label(self) -> str:
        hold = ", start held" if self.keep_start else ""
        how = f", MLP+SGD {self.mlp_epochs} epochs" if self.method == "mlp_sgd" else ""
        return f"VRG(gamma={self.gamma:g}, lambda={self.reg_lambda:g}{hold}{how})"

    def retime(
        self, trajectory: Trajectory, context: ArmContext
    ) -> tuple[Trajectory, dict[str, Any]]:
        return vrg_retime(trajectory, context.profile, context.schedule, self)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "vrg", **asdict(self)}


#: The official implementation's defaults: the "VRG as published" arm.
PUBLISHED_VRG = VRGSetting(gamma=0.01, reg_lambda=100.0)


def vrg_retime(
    trajectory: Trajectory,
    profile: ErrorProfile,
    schedule: NoiseSchedule | None,
    setting: VRGSetting,
    *,
    alpha_bar_max: float | None = None,
    alpha_bar_min: float | None = None,
) -> tuple[Trajectory, dict[str, Any]]:
    """VRG's re-timing of ``trajectory`` under ``setting``; returns the trajectory and a summary
    of the optimisation (converged, moved, start shift, CPE reduction).

    Every level is kept inside ``[alpha_bar_min, alpha_bar_max]``: by default the ``schedule``'s
    timestep range (none without a schedule); the lower bound does not apply when the start is
    held. ``gamma = 0`` is an empty box: no ratio may move, so the baseline comes back unchanged
    (the ablation's control arm); the solver, which needs gamma in (0, 1), is not called.
    """
    name = f"{trajectory.name}+vrg"
    if setting.gamma == 0.0:
        info0 = {"converged": True, "moved": False, "start_shift": 0.0, "cpe_reduction": 0.0}
        return trajectory.renamed(name), info0
    hi = (
        alpha_bar_max
        if alpha_bar_max is not None
        else (None if schedule is None else float(schedule.alpha_bar_max))
    )
    lo = (
        alpha_bar_min
        if alpha_bar_min is not None
        else (None if schedule is None else float(schedule.alpha_bar_min))
    )
    if setting.keep_start and setting.method != "exact":
        raise ValueError("keep_start needs the exact solver (method='exact')")
    res = optimize_trajectory(
        trajectory,
        profile,
        gamma=setting.gamma,
        reg_lambda=setting.reg_lambda,
        keep_start=setting.keep_start,
        method=setting.method,
        mlp=MLPSGDConfig(epochs=int(setting.mlp_epochs)) if setting.method == "mlp_sgd" else None,
        alpha_bar_max=hi,
        alpha_bar_min=None if setting.keep_start or setting.method != "exact" else lo,
    )
    info = {
        "converged": bool(res.converged),
        "moved": bool(res.moved),
        "start_shift": res.start_level_shift,
        "cpe_reduction": res.cpe_reduction,
    }
    return res.optimized.renamed(name), info
