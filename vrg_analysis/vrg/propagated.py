"""VRG with the sampler's own error propagation: the (VRG) objective with the propagated CPE.

:mod:`vrg_analysis.vrg.objective` minimises ``CPE(a(r)) + reg_lambda (a_K(r) - a_K_orig)^2`` over
the per-step ratios ``r`` in the gamma box. Order-1 CPE is DDIM's accumulated error; a
higher-order sampler carries each call's error to the sample with other gains
(:mod:`vrg_analysis.samplers.propagation`). :func:`retime_propagated` minimises the same objective
with the sampler's propagated CPE in place of CPE,

    L_S(r) = PCPE_S(a(r)) + reg_lambda (a_K(r) - a_K_orig)^2                          (VRG-S)

in the same gamma box (:func:`~vrg_analysis.vrg.objective.ratio_bounds`), by L-BFGS-B with
finite-difference gradients (scipy): PCPE runs the sampler once per evaluation, on one
one-dimensional row per model call, so no closed-form gradient is needed. For DDIM, PCPE is CPE
and (VRG-S) is (VRG): the two optima agree (tested against the exact solver).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import minimize

from vrg_analysis.core.profile import ErrorProfile
from vrg_analysis.core.schedules import NoiseSchedule
from vrg_analysis.core.trajectories import Trajectory
from vrg_analysis.samplers.propagation import error_gains
from vrg_analysis.vrg.objective import ratio_bounds, ratios_to_trajectory
from vrg_analysis.vrg.retime import VRGSetting

__all__ = ["retime_propagated"]


def retime_propagated(
    trajectory: Trajectory,
    profile: ErrorProfile,
    schedule: NoiseSchedule,
    sampler: str,
    setting: VRGSetting,
    *,
    max_iterations: int = 200,
) -> tuple[Trajectory, dict[str, Any]]:
    """Minimise (VRG-S) from ``trajectory`` in the gamma box of ``setting`` (its penalty
    included; the start level is free, as in the paper); returns the trajectory and a summary
    (``converged``, ``pcpe_initial``, ``pcpe``, ``iterations``)."""
    if setting.keep_start:
        raise ValueError("retime_propagated keeps the paper's penalty; keep_start is not supported")
    if setting.gamma == 0.0:
        pc = error_gains(sampler, trajectory, schedule).propagated_cpe(profile)
        info0 = {"converged": True, "pcpe_initial": pc, "pcpe": pc, "iterations": 0}
        return trajectory.renamed(f"{trajectory.name}+vrg-{sampler}"), info0
    r0, lo, hi = ratio_bounds(trajectory, setting.gamma)
    # every level stays inside the schedule's range, as in vrg_retime: the cleanest level is the
    # first ratio (bounded here), the noisiest the product of all (a penalty below)
    hi[0] = min(hi[0], float(schedule.alpha_bar_max))
    lo[0] = min(lo[0], hi[0])
    a_min = float(schedule.alpha_bar_min)
    a_k_orig = float(trajectory.alpha_bar[0])
    name = f"{trajectory.name}+vrg-{sampler}"
    scale = error_gains(sampler, trajectory, schedule).propagated_cpe(profile)

    def objective(r: np.ndarray) -> float:
        rr = np.clip(r, lo, hi)
        short = max(0.0, a_min / float(np.prod(rr)) - 1.0)  # the start below the range
        if short > 0.0:
            rr = rr.copy()
            rr[-1] *= 1.0 + short
        traj = ratios_to_trajectory(rr, name)
        pc = error_gains(sampler, traj, schedule).propagated_cpe(profile)
        penalty = setting.reg_lambda * (float(traj.alpha_bar[0]) - a_k_orig) ** 2
        return (pc + penalty) / scale + 1e6 * short**2

    res = minimize(
        objective,
        r0,
        method="L-BFGS-B",
        bounds=list(zip(lo, hi, strict=True)),
        options={"maxiter": int(max_iterations), "eps": 1e-9},
    )
    best = ratios_to_trajectory(np.clip(res.x, lo, hi), name)
    pc = error_gains(sampler, best, schedule).propagated_cpe(profile)
    return best, {
        "converged": bool(res.success),
        "pcpe_initial": scale,
        "pcpe": pc,
        "iterations": int(res.nit),
    }
