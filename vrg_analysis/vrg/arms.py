"""Arms: the trajectory rules a paired comparison sets against its baseline.

An *arm* turns a baseline trajectory into the trajectory it samples with, given what the study
knows (:class:`ArmContext`: the measured error profile, the schedule, the model). The paired
comparison engine (:mod:`vrg_analysis.studies.engine`) runs every arm from the same starting noise
at the same number of model calls as its baseline, so a study is a list of arms, not a new loop.

* :class:`~vrg_analysis.vrg.retime.VRGSetting`: VRG itself (the exact solver, or the paper's
  MLP + SGD), with the paper's penalty or the start level held;
* :class:`GlobalOptimumArm`: CPE's exact minimum without the gamma box (degenerate without a fixed
  start level: the objective ignores discretisation error).

Chapters may define further arms (any object with ``label``, ``retime`` and ``to_dict``); the
``to_dict`` form is part of every cache key, so it must name everything the trajectory depends on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from vrg_analysis.core.cpe import cumulative_prediction_error
from vrg_analysis.core.profile import ErrorProfile
from vrg_analysis.core.schedules import NoiseSchedule
from vrg_analysis.core.trajectories import Trajectory
from vrg_analysis.vrg.global_optimum import global_optimum
from vrg_analysis.vrg.objective import levels_moved

__all__ = ["Arm", "ArmContext", "GlobalOptimumArm", "arm_summary"]

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class ArmContext:
    """What an arm may use to choose its trajectory.

    ``profile``: the error profile Algorithm 1 measured (the one VRG optimises); ``schedule``: the
    model's; ``model``: the model being sampled (for arms that spend model calls, e.g. probing the
    discretisation error); ``oracle``: the exact predictor where the testbed has one;
    ``model_kwargs``: its conditioning; ``validation_noise(n)``: starting
    noise independent of every evaluation seed, for arms that choose on a validation budget;
    ``extra``: chapter-specific inputs (e.g. a second profile).
    """

    profile: ErrorProfile
    schedule: NoiseSchedule
    model: Any = None
    oracle: Any = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    validation_noise: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Arm(Protocol):
    """A trajectory rule: ``retime(baseline, context) -> (trajectory, info)``.

    ``info`` reports what the rule did (``converged``, ``moved``, ``start_shift``,
    ``cpe_reduction``, and ``model_calls`` when it spent any); ``to_dict`` identifies the rule.
    """

    @property
    def label(self) -> str: ...

    def retime(
        self, trajectory: Trajectory, context: ArmContext
    ) -> tuple[Trajectory, dict[str, Any]]: ...

    def to_dict(self) -> dict[str, Any]: ...


def arm_summary(
    initial: Trajectory,
    final: Trajectory,
    profile: ErrorProfile,
    *,
    converged: bool,
    **more: Any,
) -> dict[str, Any]:
    """The ``info`` every arm reports: whether it converged and moved, how far the start level
    moved (``a_K_new / a_K - 1``) and how much it cut CPE under ``profile`` (``1 - new / old``)."""
    cpe0 = cumulative_prediction_error(initial, profile, outside="clamp")
    cpe1 = cumulative_prediction_error(final, profile, outside="clamp")
    return {
        "converged": bool(converged),
        "moved": levels_moved(initial, final),
        "start_shift": float(final.alpha_bar[0] / initial.alpha_bar[0] - 1.0),
        "cpe_reduction": float(1.0 - cpe1 / cpe0) if cpe0 > 0 else 0.0,
        **more,
    }


@dataclass(frozen=True)
class GlobalOptimumArm:
    """CPE's exact minimum over ``K``-level trajectories on a grid (dynamic programming,
    :func:`~vrg_analysis.vrg.global_optimum.global_optimum`), with the start level held at the
    baseline's (``start_held``) or free."""

    start_held: bool = True
    grid_size: int = 2000

    @property
    def label(self) -> str:
        return f"CPE global optimum (start {'held' if self.start_held else 'free'})"

    def retime(
        self, trajectory: Trajectory, context: ArmContext
    ) -> tuple[Trajectory, dict[str, Any]]:
        start = float(trajectory.alpha_bar[0]) if self.start_held else None
        opt = global_optimum(
            context.profile, trajectory.K, start_alpha_bar=start, grid_size=self.grid_size
        )
        traj = opt.trajectory.renamed(f"{trajectory.name}+global")
        return traj, arm_summary(trajectory, traj, context.profile, converged=True)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "global_optimum", "start_held": self.start_held, "grid": self.grid_size}
