"""The exact global minimum of CPE alone over a grid of levels, by dynamic programming.

Without the gamma box and the start-level penalty, CPE (Eq. 10) has a degenerate optimum: the
objective ignores discretisation error. :func:`global_optimum` computes that optimum exactly, so
the book can show what an unconstrained VRG would do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from vrg_analysis._checks import as_float_vector
from vrg_analysis.core.profile import ErrorProfile
from vrg_analysis.core.schedules import (
    alpha_bar_from_lambda,
    lambda_from_alpha_bar,
    sigma_from_alpha_bar,
)
from vrg_analysis.core.trajectories import Trajectory

__all__ = ["GlobalOptimum", "global_optimum"]


@dataclass(frozen=True)
class GlobalOptimum:
    """The exact minimum of CPE alone over trajectories drawn from a grid of levels."""

    trajectory: Trajectory
    cpe: float
    grid_size: int
    start_alpha_bar: float | None  # the fixed noisiest level, or None (free)


def global_optimum(
    profile: ErrorProfile,
    num_steps: int,
    *,
    start_alpha_bar: float | None = None,
    grid: ArrayLike | None = None,
    grid_size: int = 2000,
) -> GlobalOptimum:
    """The global minimum of (CPE) with no learning-portion box and no penalty, by dynamic
    programming (Bellman's principle) over K levels chosen from a grid.

    Index the levels from the clean end (``sigma_0 = 0 < sigma_1 < .. < sigma_K``). With
    ``C_1(j) = sigma_j^2 w_j`` and ``C_k(j) = min_{i: sigma_i < sigma_j} C_{k-1}(i) +
    (sigma_j - sigma_i)^2 w_j``, the optimum is ``min_j C_K(j)``, or ``C_K(start)`` when the
    noisiest level is fixed at ``start_alpha_bar`` (added to the grid). The grid defaults to
    ``grid_size`` levels uniform in ``lambda_`` over the profile's measured levels inside (0, 1)
    (an official file's safeguard row at ``alpha_bar = 0`` is left out); the cost is
    ``O(K G^2)`` in float64 numpy. Without a fixed start the optimum is degenerate (every level
    crowds the clean end, CPE -> 0): the objective ignores discretisation error, which is why the
    paper keeps VRG inside a box around a baseline.
    """
    k_steps = int(num_steps)
    if isinstance(num_steps, bool) or k_steps != num_steps or k_steps < 1:
        raise ValueError(f"num_steps must be a positive integer, got {num_steps!r}")
    measured = np.asarray(profile.alpha_bar, dtype=np.float64)
    inside = measured[(measured > 0.0) & (measured < 1.0)]  # e.g. no safeguard row at 0
    if inside.size < 2:
        raise ValueError("the profile needs at least 2 measured levels inside (0, 1)")
    lo, hi = float(inside.min()), float(inside.max())
    if grid is None:
        if isinstance(grid_size, bool) or int(grid_size) < 2:
            raise ValueError(f"grid_size must be an integer >= 2, got {grid_size!r}")
        lam = np.linspace(
            float(lambda_from_alpha_bar(lo)), float(lambda_from_alpha_bar(hi)), int(grid_size)
        )
        levels = alpha_bar_from_lambda(lam)
    else:
        levels = as_float_vector(grid, "grid")
    if start_alpha_bar is not None:
        levels = np.append(levels, float(start_alpha_bar))
    levels = np.unique(levels)
    w = profile.w(levels)  # raises, naming the level, outside the measured range
    sigma = sigma_from_alpha_bar(levels)  # increasing alpha_bar -> decreasing sigma
    order = np.argsort(sigma)
    sigma, w, levels = sigma[order], w[order], levels[order]
    g = sigma.size
    if k_steps > g:
        raise ValueError(f"num_steps = {k_steps} exceeds the {g} grid levels")
    cost = sigma**2 * w  # C_1
    back = np.zeros((k_steps, g), dtype=np.int64)
    upper = np.triu(np.ones((g, g), dtype=bool), k=1)  # i < j: sigma_i < sigma_j
    for k in range(1, k_steps):
        step = cost[:, None] + (sigma[None, :] - sigma[:, None]) ** 2 * w[None, :]
        step = np.where(upper, step, np.inf)
        back[k] = np.argmin(step, axis=0)
        cost = step[back[k], np.arange(g)]
    if start_alpha_bar is None:
        end = int(np.argmin(cost))
    else:
        end = int(np.flatnonzero(levels == float(start_alpha_bar))[0])
    if not np.isfinite(cost[end]):
        raise ValueError(f"no {k_steps}-level trajectory on this grid ends at the start level")
    path = [end]
    for k in range(k_steps - 1, 0, -1):
        path.append(int(back[k][path[-1]]))
    chosen = levels[path]  # noisiest first: sampling order
    return GlobalOptimum(
        trajectory=Trajectory(chosen, name=f"global_optimum(K={k_steps})"),
        cpe=float(cost[end]),
        grid_size=g,
        start_alpha_bar=None if start_alpha_bar is None else float(start_alpha_bar),
    )
