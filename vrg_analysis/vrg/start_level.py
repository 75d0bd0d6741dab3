"""Start level or re-timing? Splitting a re-timed trajectory's CPE change into its two parts.

VRG moves every level of a trajectory, the noisiest one (the start level ``a_K``, where sampling
begins) included; the paper's penalty ``lambda (a_K - a_K_orig)^2`` is meant to hold the start
level near the baseline's. Because ``sigma = sqrt((1 - a) / a)`` is steep at small ``a``, a small
absolute move of ``a_K`` changes the first CPE term

    CPE = sum_{k=1..K} (sigma_k - sigma_{k-1})^2 w(a_k)                                   (Eq. 10)

a great deal. :func:`start_level_split` separates the two parts with two counterfactual
trajectories, scored on the same profile:

- *start only*: the baseline with only its start level moved to the re-timed one's;
- *start held*: the re-timed trajectory with its start level put back to the baseline's.

If the start-only trajectory gains as much as the re-timed one, the gain is the start level's,
not the re-timing's. (On the official CIFAR-10 files: baseline 0.5014, VRG 0.4239, start only
0.4227, start held 0.5027.)

For sampling, :class:`StartOnlyArm` is the *start only* counterfactual as an
:class:`~vrg_analysis.vrg.arms.Arm` of the paired comparison engine (the *start held* one is
:class:`~vrg_analysis.vrg.retime.VRGSetting` with ``keep_start=True``), so a study measures the
two parts of a VRG gain in FID, not only in CPE.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from vrg_analysis.core.cpe import cumulative_prediction_error
from vrg_analysis.core.profile import ErrorProfile
from vrg_analysis.core.trajectories import Trajectory
from vrg_analysis.vrg.arms import ArmContext, arm_summary
from vrg_analysis.vrg.retime import VRGSetting

__all__ = [
    "StartLevelSplit",
    "StartOnlyArm",
    "with_start_level",
    "stretched_to_start",
    "start_level_split",
]


def with_start_level(trajectory: Trajectory, start: float, name: str | None = None) -> Trajectory:
    """``trajectory`` with its noisiest level ``alpha_bar[0]`` replaced by ``start`` (every other
    level kept). Refused, naming the levels, when ``start`` would not stay below the next level
    (a trajectory must be strictly increasing in ``alpha_bar``)."""
    a = trajectory.alpha_bar.copy()
    if a.size < 2:
        raise ValueError("a trajectory of one level has no start level to move apart from itself")
    if not 0.0 < start < a[1]:
        raise ValueError(
            f"start level {start!r} must lie in (0, {float(a[1])!r}), below the trajectory's next "
            f"level, to keep {trajectory.name!r} strictly increasing"
        )
    a[0] = start
    return Trajectory(a, name=name or f"{trajectory.name} (start {start:.4g})")


def stretched_to_start(trajectory: Trajectory, start: float, name: str | None = None) -> Trajectory:
    """``trajectory`` stretched in log-SNR so that it starts at ``start`` and still ends at its
    last level: ``lambda_k' = lambda_end + (lambda_k - lambda_end) * (lambda_start' - lambda_end) /
    (lambda_start - lambda_end)`` with ``lambda = log(a / (1 - a))``; the relative log-SNR
    spacing of the steps is kept. The counterfactual "the baseline started at another level"
    where :func:`with_start_level` cannot apply (``start`` at or past the next level)."""
    a = trajectory.alpha_bar
    if a.size < 2:
        raise ValueError("a trajectory of one level has no start level to move apart from itself")
    if not 0.0 < start < a[-1]:
        raise ValueError(
            f"start level {start!r} must lie in (0, {float(a[-1])!r}), below the last level of "
            f"{trajectory.name!r}"
        )
    lam = np.log(a) - np.log1p(-a)
    new0 = math.log(start) - math.log1p(-start)
    scale = (lam[-1] - new0) / (lam[-1] - lam[0])
    lam_new = lam[-1] - (lam[-1] - lam) * scale
    out = 1.0 / (1.0 + np.exp(-lam_new))
    out[0], out[-1] = start, a[-1]  # exact at both ends
    return Trajectory(out, name=name or f"{trajectory.name} (stretched to start {start:.4g})")


@dataclass(frozen=True)
class StartOnlyArm:
    """The *start only* arm (an :class:`~vrg_analysis.vrg.arms.Arm`): the baseline with VRG's
    start level and nothing else of VRG's re-timing, for the VRG ``setting`` it shadows.

    VRG under ``setting`` is solved on the same profile; its start level ``a_K`` then replaces
    the baseline's (:func:`with_start_level`, every other level kept), the counterfactual of
    :func:`start_level_split`. When VRG's start lies at or past the baseline's next level (the
    penalty can let it move by thousands of percent), no single-level replacement keeps the
    trajectory increasing; the baseline is then stretched in log-SNR to start there
    (:func:`stretched_to_start`) and ``info["start_rule"]`` says ``"stretched"`` instead of
    ``"replaced"``. Either way the arm spends the baseline's number of model calls.
    """

    setting: VRGSetting

    @property
    def gamma(self) -> float:
        return self.setting.gamma

    @property
    def reg_lambda(self) -> float:
        return self.setting.reg_lambda

    @property
    def keep_start(self) -> bool:
        return False

    @property
    def label(self) -> str:
        s = self.setting
        return f"baseline, start of VRG(gamma={s.gamma:g}, lambda={s.reg_lambda:g})"

    def retime(
        self, trajectory: Trajectory, context: ArmContext
    ) -> tuple[Trajectory, dict[str, Any]]:
        vrg, vrg_info = self.setting.retime(trajectory, context)
        start = float(vrg.alpha_bar[0])
        name = f"{trajectory.name}+vrg-start"
        if start == float(trajectory.alpha_bar[0]):
            out, rule = trajectory.renamed(name), "unchanged"
        elif start < float(trajectory.alpha_bar[1]):
            out, rule = with_start_level(trajectory, start, name), "replaced"
        else:
            out, rule = stretched_to_start(trajectory, start, name), "stretched"
        info = arm_summary(
            trajectory,
            out,
            context.profile,
            converged=bool(vrg_info.get("converged", True)),
            start_rule=rule,
            vrg_cpe_reduction=float(vrg_info.get("cpe_reduction", math.nan)),
        )
        return out, info

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "vrg_start_only", "setting": self.setting.to_dict()}


@dataclass(frozen=True)
class StartLevelSplit:
    """CPE of a baseline, of its re-timed version and of the two counterfactuals
    (module docstring), with the two start levels."""

    baseline: Trajectory
    retimed: Trajectory
    start_only: Trajectory
    start_held: Trajectory
    cpe_baseline: float
    cpe_retimed: float
    cpe_start_only: float
    cpe_start_held: float

    @property
    def start_baseline(self) -> float:
        return float(self.baseline.alpha_bar[0])

    @property
    def start_retimed(self) -> float:
        return float(self.retimed.alpha_bar[0])

    @property
    def start_shift(self) -> float:
        """Relative move of the start level, ``a_K_retimed / a_K_baseline - 1``."""
        return self.start_retimed / self.start_baseline - 1.0

    @property
    def gain(self) -> float:
        """The re-timed trajectory's CPE reduction, ``1 - CPE_retimed / CPE_baseline``."""
        return 1.0 - self.cpe_retimed / self.cpe_baseline

    @property
    def gain_start_only(self) -> float:
        """The reduction from moving the start level alone."""
        return 1.0 - self.cpe_start_only / self.cpe_baseline

    @property
    def gain_start_held(self) -> float:
        """The reduction from the re-timing with the start level held (negative: worse)."""
        return 1.0 - self.cpe_start_held / self.cpe_baseline

    @property
    def verdict(self) -> str:
        """Is the gain the re-timing's? CPE is exact given the profile, so no interval: the
        claim is ``"contradicted"`` when moving the start level alone gains at least as much as
        the whole re-timed trajectory, ``"supported"`` when the re-timing with the start held
        keeps at least half of the gain while the start level alone gives less than half,
        ``"mixed"`` otherwise, and ``"inconclusive"`` when there is no gain to split."""
        if not self.gain > 0.0:
            return "inconclusive"
        if self.gain_start_only >= self.gain:
            return "contradicted"
        if self.gain_start_held >= 0.5 * self.gain and self.gain_start_only < 0.5 * self.gain:
            return "supported"
        return "mixed"


def start_level_split(
    baseline: Trajectory, retimed: Trajectory, profile: ErrorProfile
) -> StartLevelSplit:
    """Score ``baseline``, ``retimed`` (the same number of levels) and the two counterfactuals
    (module docstring) on ``profile`` with
    :func:`~vrg_analysis.core.cpe.cumulative_prediction_error` (Eq. 10)."""
    if baseline.K != retimed.K:
        raise ValueError(
            f"baseline has K = {baseline.K} levels but the re-timed trajectory K = {retimed.K}"
        )
    start_only = with_start_level(baseline, float(retimed.alpha_bar[0]), "baseline, start only")
    start_held = with_start_level(retimed, float(baseline.alpha_bar[0]), "re-timed, start held")

    def cpe(t: Trajectory) -> float:
        return cumulative_prediction_error(t, profile)

    return StartLevelSplit(
        baseline=baseline,
        retimed=retimed,
        start_only=start_only,
        start_held=start_held,
        cpe_baseline=cpe(baseline),
        cpe_retimed=cpe(retimed),
        cpe_start_only=cpe(start_only),
        cpe_start_held=cpe(start_held),
    )
