"""CPE as a linear functional of a profile, and the stratified-sampling arithmetic of its estimate.

VRG reads a profile only through ``CPE = sum_k c_k^2 w(a_k)`` (the paper's Eq. 10), with ``w``
read off the profiled grid by linear interpolation in ``alpha_bar``
(:meth:`~vrg_analysis.core.profile.ErrorProfile.w`), so ``CPE = sum_g beta_g w_g``
(:func:`cpe_weights`). With each ``w_g`` the mean of ``n_g`` independent per-sample MSEs of
variance ``s_g^2``:

    Var(CPE_hat) = sum_g beta_g^2 s_g^2 / n_g                (stratified sampling)

whose normal interval is :func:`stratified_half_width`, and the fewest draws that bring it to
``V`` are Neyman's allocation (Neyman 1934; Cochran, *Sampling Techniques*, 3rd ed., eq. 5.26,
unit cost per draw):

    n_g = |beta_g| s_g (sum_h |beta_h| s_h) / V               (Neyman)

(:func:`neyman_allocation`); fixed-N Algorithm 1 needs :func:`fixed_n_for_precision` at every
grid point for the same. Stratum moments pool with Chan, Golub & LeVeque's update
(:func:`merge_moments`). statsmodels has no stratified-total interval or allocation, so these
are written here and tested against scipy's optimiser, numpy and Monte Carlo coverage
(``tests/test_profiling_adaptive.py``).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats

from vrg_analysis._checks import as_float_vector
from vrg_analysis.core.cpe import step_coefficients
from vrg_analysis.core.profile import ErrorProfile
from vrg_analysis.core.trajectories import Trajectory

__all__ = [
    "cpe_weights",
    "normal_quantile",
    "stratified_half_width",
    "neyman_allocation",
    "fixed_n_for_precision",
    "merge_moments",
    "interpolation_gap",
]

FloatArray = NDArray[np.float64]


# ===================================================================== the functional
def cpe_weights(trajectory: Trajectory, grid_alpha_bar: ArrayLike) -> FloatArray:
    """``beta`` with ``CPE(trajectory) = beta @ w`` for a profile on ``grid_alpha_bar``
    (increasing): each level's ``c_k^2`` (:func:`~vrg_analysis.core.cpe.step_coefficients`) split
    between the two grid points around it as :meth:`ErrorProfile.w` interpolates (a level on a
    grid point puts its whole weight there). Raises naming the level a grid does not cover."""
    grid = as_float_vector(grid_alpha_bar, "grid alpha_bar", min_len=2)
    if np.any(np.diff(grid) <= 0.0):
        raise ValueError("grid alpha_bar must be strictly increasing")
    levels = trajectory.alpha_bar_from_clean  # clean end first, as step_coefficients
    c2 = step_coefficients(trajectory)
    beta = np.zeros(grid.size)
    for k, (a, w) in enumerate(zip(levels, c2, strict=True)):
        if not grid[0] <= a <= grid[-1]:
            raise ValueError(
                f"trajectory {trajectory.name!r}: level {k} (alpha_bar = {a:.6g}) lies outside "
                f"the profiled range [{grid[0]:.6g}, {grid[-1]:.6g}]"
            )
        i = int(np.searchsorted(grid, a, side="right")) - 1
        if i >= grid.size - 1:
            beta[-1] += w
            continue
        lam = (a - grid[i]) / (grid[i + 1] - grid[i])
        beta[i] += w * (1.0 - lam)
        beta[i + 1] += w * lam
    return beta


def normal_quantile(confidence: float) -> float:
    """``z = Phi^-1((1 + confidence) / 2)``: the two-sided normal quantile (scipy)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}")
    return float(stats.norm.ppf(0.5 + confidence / 2.0))


def stratified_half_width(
    beta: ArrayLike, sd: ArrayLike, n: ArrayLike, confidence: float = 0.95
) -> float:
    """Half-width of the normal interval of ``sum_g beta_g w_g``: ``z sqrt(sum beta^2 s^2 / n)``
    over the grid points with ``beta != 0`` (Var above; each needs ``n_g >= 1``; ``sd`` and ``n``
    may be scalars, the same at every point)."""
    b = np.asarray(beta, dtype=np.float64)
    s, m = (np.broadcast_to(np.asarray(v, dtype=np.float64), b.shape) for v in (sd, n))
    used = b != 0.0
    if np.any(m[used] < 1):
        raise ValueError("every grid point with weight needs at least one draw")
    return normal_quantile(confidence) * float(
        np.sqrt(np.sum(b[used] ** 2 * s[used] ** 2 / m[used]))
    )


def neyman_allocation(beta: ArrayLike, sd: ArrayLike, variance: float) -> FloatArray:
    """Real-valued draws per grid point with the fewest total that give ``sum beta^2 s^2 / n =
    variance`` (Neyman above): ``n_g = |beta_g| s_g sum_h |beta_h| s_h / variance``."""
    if not (math.isfinite(variance) and variance > 0.0):
        raise ValueError(f"variance must be finite and > 0, got {variance!r}")
    b = np.abs(np.asarray(beta, dtype=np.float64))
    s = np.asarray(sd, dtype=np.float64)
    if np.any(s < 0.0) or not np.all(np.isfinite(s)):
        raise ValueError("standard deviations must be finite and >= 0")
    return b * s * float(np.sum(b * s)) / variance


def fixed_n_for_precision(
    beta: ArrayLike, sd: ArrayLike, target: float, cpe: float, confidence: float = 0.95
) -> int:
    """Draws per timestep that fixed-N Algorithm 1 (the same ``n`` at every grid point) needs for
    a relative half-width ``target`` of ``cpe``: ``n = z^2 sum beta^2 s^2 / (target cpe)^2``."""
    b, s = np.asarray(beta, dtype=np.float64), np.asarray(sd, dtype=np.float64)
    v = (target * cpe / normal_quantile(confidence)) ** 2
    return max(1, math.ceil(float(np.sum(b**2 * s**2)) / v))


def merge_moments(
    n_a: ArrayLike,
    mean_a: ArrayLike,
    var_a: ArrayLike,
    n_b: ArrayLike,
    mean_b: ArrayLike,
    var_b: ArrayLike,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Count, mean and sample variance (``ddof = 1``) of two independent samples pooled
    (Chan, Golub & LeVeque 1979: ``M2 = M2_a + M2_b + delta^2 n_a n_b / n``), elementwise."""
    na, nb = np.asarray(n_a, np.float64), np.asarray(n_b, np.float64)
    ma, mb = np.asarray(mean_a, np.float64), np.asarray(mean_b, np.float64)
    m2 = np.asarray(var_a, np.float64) * np.maximum(na - 1, 0) + np.asarray(
        var_b, np.float64
    ) * np.maximum(nb - 1, 0)
    n = na + nb
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, (na * ma + nb * mb) / np.maximum(n, 1), 0.0)
        m2 = m2 + (mb - ma) ** 2 * na * nb / np.maximum(n, 1)
        var = np.where(n > 1, m2 / np.maximum(n - 1, 1), 0.0)
    return n, mean, var


def interpolation_gap(
    trajectory: Trajectory, fine: ErrorProfile, coarse_alpha_bar: ArrayLike
) -> float:
    """Relative change of ``trajectory``'s CPE when ``fine``'s values are read only at
    ``coarse_alpha_bar`` (a subset of its grid) and interpolated: how much a coarser grid would
    move CPE, for choosing a grid (the sampling error is :func:`profile_to_precision`'s)."""
    coarse = np.asarray(coarse_alpha_bar, dtype=np.float64)
    fine_beta = cpe_weights(trajectory, fine.alpha_bar)
    on_fine = float(fine_beta @ fine.mse)
    on_coarse = float(cpe_weights(trajectory, coarse) @ fine.w(coarse))
    return abs(on_coarse - on_fine) / on_fine
