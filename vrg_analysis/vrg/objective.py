"""The VRG objective (the paper's Eq. 10 plus its start-level penalty) on per-step ratios.

Write a trajectory as per-step ratios from the clean end, ``r_1 = a_1``, ``r_k = a_k / a_{k-1}``
(so ``a_k = prod_{j<=k} r_j``). Each ratio may move by at most
``gamma_k = min(gamma, r_k, 1 - r_k)`` (the paper's *learning portion* ``gamma``). VRG minimises

    L(r) = CPE(a(r)) + reg_lambda * (a_K(r) - a_K_orig)^2                              (VRG)

with ``CPE = sum_k (sigma_k - sigma_{k-1})^2 w(a_k)`` (Eq. 10; the book's "How this toolkit is
built" page). This module is the objective's one home: :class:`VRGObjective` evaluates (VRG) and
its gradient, :func:`ratio_bounds` gives the gamma box, :func:`solve_start_held` the hard-constraint
solver, :func:`projected_gradient_norm` the first-order optimality test every solver reports. The
solvers live in :mod:`vrg_analysis.vrg.optimize` and :mod:`vrg_analysis.vrg.discretisation`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from numpy.typing import NDArray
from scipy.optimize import minimize

from vrg_analysis.core.profile import ErrorProfile
from vrg_analysis.core.trajectories import Trajectory

__all__ = [
    "BOX_MARGIN",
    "KKT_TOL",
    "VRGObjective",
    "levels_moved",
    "ratio_bounds",
    "ratios_to_trajectory",
    "projected_gradient_norm",
    "hold_start_level",
    "solve_start_held",
]

FloatArray = NDArray[np.float64]


# Bounds are shrunk by this relative margin so that no ratio reaches 0 or 1 exactly (the paper's
# tanh parameterisation keeps them in the open box too).
BOX_MARGIN = 1e-9


def levels_moved(initial: Trajectory, final: Trajectory) -> bool:
    """Whether any level of ``final`` differs from ``initial``'s by more than 1e-9 relative."""
    a0, a1 = initial.alpha_bar, final.alpha_bar
    return bool(np.max(np.abs(a1 - a0) / a0) > 1e-9)


def ratio_bounds(trajectory: Trajectory, gamma: float) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Ratios ``r`` (clean end first) and their box ``r_k -+ gamma_k``, ``gamma_k = min(gamma, r_k,
    1 - r_k)``."""
    a = trajectory.alpha_bar_from_clean
    r = np.concatenate([a[:1], a[1:] / a[:-1]])
    g = np.minimum(np.minimum(gamma, r), 1.0 - r) * (1.0 - BOX_MARGIN)
    return r, r - g, r + g


class VRGObjective:
    """(VRG) as a float64 torch function of the ratios, shared by both solvers.

    :meth:`terms` gives CPE and the penalty in their own units; :meth:`numpy_value_and_grad`, what
    the solvers see, divides both by ``scale`` (the initial CPE, by :func:`~vrg_analysis.vrg.
    optimize.optimize_trajectory`): the minimiser is the same, but the solvers' tolerances and the
    first-order test (:func:`projected_gradient_norm`) become relative, so a profile measured in
    other units (a profile times 1e-8) gives the same trajectory instead of stopping at once.
    """

    def __init__(
        self, profile: ErrorProfile, a_k_orig: float, reg_lambda: float, scale: float = 1.0
    ) -> None:
        if not (math.isfinite(scale) and scale > 0.0):
            raise ValueError(f"scale must be a finite number > 0, got {scale!r}")
        self.xp = torch.tensor(np.array(profile.alpha_bar), dtype=torch.float64)
        self.fp = torch.tensor(np.array(profile.mse), dtype=torch.float64)
        self.lo, self.hi = profile.alpha_bar_range
        self.a_k_orig = a_k_orig
        self.reg_lambda = reg_lambda
        self.scale = float(scale)

    def w(self, a: torch.Tensor) -> torch.Tensor:
        """Linear interpolation in alpha_bar, held flat beyond the measured range.

        The official implementation extends the end segments instead; on a measured profile that
        falls towards high noise the extension reaches 0, and the optimiser then pushes the start
        level to where the profile was never measured (seen on the exact testbed). Profiles with
        the official safeguard row (alpha_bar 0, MSE 0) cover everything, so both agree there.
        """
        x = a.clamp(self.lo, self.hi)
        idx = torch.searchsorted(self.xp, x.detach()).clamp(1, self.xp.numel() - 1)
        x0, x1 = self.xp[idx - 1], self.xp[idx]
        f0, f1 = self.fp[idx - 1], self.fp[idx]
        return f0 + (f1 - f0) * (x - x0) / (x1 - x0)

    def terms(self, r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = torch.cumprod(r, dim=0)  # a_k = prod_{j<=k} r_j
        sigma = torch.sqrt((1.0 - a) / a)
        prev = torch.cat([sigma.new_zeros(1), sigma[:-1]])
        cpe = torch.sum((sigma - prev) ** 2 * self.w(a))  # (CPE)
        reg = self.reg_lambda * (a[-1] - self.a_k_orig) ** 2
        return cpe, reg

    def numpy_value_and_grad(
        self, r: FloatArray, with_reg: bool = True
    ) -> tuple[float, FloatArray]:
        rt = torch.tensor(r, dtype=torch.float64, requires_grad=True)
        cpe, reg = self.terms(rt)
        loss = (cpe + reg if with_reg else cpe) / self.scale
        loss.backward()
        assert rt.grad is not None
        return loss.item(), rt.grad.numpy().copy()

    def value(self, r: FloatArray, with_reg: bool = True) -> float:
        """(VRG) at ``r`` in its own units (not divided by ``scale``)."""
        cpe, reg = self.terms(torch.as_tensor(r, dtype=torch.float64))
        return float(cpe + reg) if with_reg else float(cpe)


def ratios_to_trajectory(r: FloatArray, name: str, a_k: float | None = None) -> Trajectory:
    a = np.cumprod(r)
    if a_k is not None:  # the hard constraint holds to round-off: make it exact
        a[-1] = a_k
    return Trajectory.from_clean_order(a, name=name)


# A solution counts as converged when the gradient, projected on the box (and, with keep_start,
# on the constraint's tangent space), is below this in the infinity norm.
KKT_TOL = 1e-6


def projected_gradient_norm(
    obj: VRGObjective, r: FloatArray, lo: FloatArray, hi: FloatArray, keep_start: bool
) -> float:
    """Infinity norm of the projected gradient at ``r``: 0 at a first-order optimum."""
    _, g = obj.numpy_value_and_grad(r, with_reg=not keep_start)
    if keep_start:  # remove the component along the constraint normal d(sum log r)/dr = 1 / r
        n = 1.0 / r
        g = g - n * (g @ n) / (n @ n)
    span = hi - lo
    at_lo = r <= lo + 1e-9 * span
    at_hi = r >= hi - 1e-9 * span
    g = np.where(at_lo & (g > 0), 0.0, g)
    g = np.where(at_hi & (g < 0), 0.0, g)
    return float(np.max(np.abs(g)))


def hold_start_level(r: FloatArray, lo: FloatArray, hi: FloatArray, a_k: float) -> FloatArray:
    """Ratios inside ``[lo, hi]`` whose product is ``a_k``: a solver that stopped short of its
    constraint (``sum log r != log a_k``) leaves a residual; it is spread over the ratios in
    proportion to the room each has in the needed direction, so no ratio leaves its box. Where
    the box has too little room the residual stays (the caller reports no convergence)."""
    r = np.asarray(r, dtype=np.float64).copy()
    log_ak = math.log(a_k)
    for _ in range(4):
        delta = log_ak - float(np.sum(np.log(r)))
        if abs(delta) < 1e-15:
            break
        room = np.log(hi / r) if delta > 0 else np.log(lo / r)
        total = float(np.sum(room))
        if total == 0.0 or abs(total) < abs(delta):
            break
        r = np.clip(r * np.exp(room * (delta / total)), lo, hi)
    return r


def solve_start_held(
    obj: VRGObjective,
    r0: FloatArray,
    lo: FloatArray,
    hi: FloatArray,
    a_k: float,
    max_iterations: int = 2000,
) -> tuple[FloatArray, int, bool, str]:
    """SLSQP on the ratios inside ``[lo, hi]`` with the start level held exactly,
    ``sum_k log r_k = log a_K`` (the hard form of VRG's penalty); ``obj`` without its penalty.

    Returns the ratios, the iterations, whether SLSQP converged with the constraint met to 1e-9,
    and a message.
    """
    log_ak = math.log(a_k)
    constraint = {
        "type": "eq",
        "fun": lambda r: np.sum(np.log(r)) - log_ak,
        "jac": lambda r: 1.0 / r,
    }
    res = minimize(
        lambda r: obj.numpy_value_and_grad(r, with_reg=False),
        np.clip(r0, lo, hi),
        jac=True,
        method="SLSQP",
        bounds=list(zip(lo, hi, strict=True)),
        constraints=[constraint],
        options={"maxiter": int(max_iterations), "ftol": 1e-14},
    )
    r = hold_start_level(np.clip(res.x, lo, hi), lo, hi, a_k)
    residual = abs(float(np.sum(np.log(r))) - log_ak)
    ok = bool(res.success) and residual < 1e-9
    return r, int(res.nit), ok, f"SLSQP: {res.message}; start-level residual {residual:.1e}"
