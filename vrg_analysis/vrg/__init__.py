"""Variance-Reduction Guidance itself: the objective, its solvers and the re-timing rule.

* :mod:`.objective`: (VRG) = CPE + the start-level penalty on per-step ratios, the gamma box;
* :mod:`.optimize`: :func:`optimize_trajectory` (exact bounded solver, or the paper's MLP + SGD);
* :mod:`.global_optimum`: CPE's exact minimum without the box (dynamic programming);
* :mod:`.retime`: :class:`VRGSetting` and :func:`vrg_retime`, the one rule every study re-times by;
* :mod:`.discretisation`: a discretisation-aware objective (beyond the paper);
* :mod:`.gamma_selection`: choosing gamma on a validation budget (beyond the paper).
"""

from __future__ import annotations

from vrg_analysis.vrg.global_optimum import GlobalOptimum, global_optimum
from vrg_analysis.vrg.objective import VRGObjective, levels_moved, ratio_bounds
from vrg_analysis.vrg.optimize import (
    METHODS,
    MLPSGDConfig,
    OptimizationResult,
    optimize_trajectory,
)
from vrg_analysis.vrg.retime import PUBLISHED_VRG, VRGSetting, vrg_retime

__all__ = [
    "VRGObjective",
    "ratio_bounds",
    "levels_moved",
    "optimize_trajectory",
    "OptimizationResult",
    "MLPSGDConfig",
    "METHODS",
    "GlobalOptimum",
    "global_optimum",
    "VRGSetting",
    "PUBLISHED_VRG",
    "vrg_retime",
]
