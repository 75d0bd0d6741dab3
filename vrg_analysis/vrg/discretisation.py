"""Discretisation (truncation) error of the DDIM step, and an objective that adds it to CPE.

VRG's objective (Eq. 10, :mod:`~vrg_analysis.cpe`) contains only the model's prediction error, so
without the learning-portion box its optimum is degenerate (:func:`optimize.global_optimum`).
This module measures the other error, that of taking finite steps, and adds a model of it::

    J(a) = CPE(a) + D(a),   D(a) = sum_{k=1..K} e_k(a)                                   (J)

where ``e_k`` is the mean squared local truncation error per dimension of DDIM step ``k`` in ``y = x
/ sqrt(alpha_bar)`` (the units of CPE: both are squared errors of ``y`` added over steps without
propagation, the design page), and a propagated form (J-prop, below) that weights each step by the
share of its error that reaches the clean sample.

**The DDIM step as an exponential integrator.** With ``lambda_ = -log(sigma)`` the
probability-flow ODE ``dy/dsigma = eps`` integrates to
``y_t - y_s = -int_{lambda_s}^{lambda_t} exp(-lambda) eps(lambda) dlambda``; DDIM freezes ``eps``
at ``lambda_s``, so its local error is ``-int exp(-lambda) (eps(lambda) - eps_s) dlambda``. If
``eps`` is linear in ``lambda_`` over the step, with slope ``g = d eps / d lambda``::

    LTE(s -> t) = -g sigma_s phi(h),  phi(h) = 1 - (1 + h) exp(-h),  h = lambda_t - lambda_s   (D1)

``sigma_s phi(h) = (sigma_s - sigma_t) - sigma_t h`` and, for the last step into the clean sample
(``sigma_t = 0``, ``h = inf``), ``sigma_s``. For small ``h`` this is the familiar Euler error
``(sigma_s - sigma_t)^2 / 2 * d^2y/dsigma^2``; for the large steps in ``lambda_`` that few-step
trajectories take at high noise it stays bounded where a power of ``sigma_s - sigma_t`` does not.
The error weights ``g`` by ``u exp(-u)`` over ``u = lambda - lambda_s in [0, h]``; its centroid
``kappa(h) = int u^2 exp(-u) du / int u exp(-u) du`` (``2h/3`` for small ``h``, 2 for the last
step) is where the step's slope is read.

**Estimating it (Richardson).** The local difference between a K-step and a 2K-step solve, taken
step by step from the K-step states: on the K-step DDIM path of ``n_probe`` starting noises, each
step ``s -> t`` is compared with two steps through a split level ``m`` (one extra model call per
step and sample). In ``sigma`` the two answers differ by ``(sigma_t - sigma_m)(eps_s - eps_m)``;
for an Euler step with a constant second derivative the one-step error is that difference divided
by ``2 theta (1 - theta)``, ``theta = (sigma_s - sigma_m) / (sigma_s - sigma_t)`` (2 at the
midpoint)::

    e_k = E || one - two ||^2 / d / (2 theta (1 - theta))^2                               (D2)

The split is the **lambda_ midpoint** ``sigma_m = sqrt(sigma_s sigma_t)`` (checked on the exact
testbed, where it matches the true local error better than the ``sigma`` midpoint for the
geometric steps of these trajectories), the ``sigma`` midpoint for the last step (``h = inf``),
and is moved to the schedule's least noisy level when the midpoint lies beyond it (a model cannot
be called there); a step whose ``theta`` is then below :data:`MIN_SPLIT_FRACTION` is not measured.

**A model of ``e`` that the optimiser can move.** From (D1), ``e = G^2(lambda_c) (sigma_s
phi(h))^2`` with ``G^2 = E||g||^2 / d``. Each measured step gives ``G_k^2 = e_k / (sigma_s
phi(h_k))^2`` at ``lambda_c = lambda_s + kappa(h_k)``; ``log G^2`` is interpolated linearly in
``lambda_`` between them and held flat beyond (:class:`LocalErrorModel`). ``lambda_`` rather than
``log alpha_bar`` because it resolves both ends (``log alpha_bar`` is ~ -1e-4 over the last steps).

**What D is and is not.** Adding the steps' squared errors treats them as independent; truncation
errors of one path are systematic, but the flow contracts errors made at high noise, and on the
exact testbed ``D`` of the baselines is above the measured global discretisation error (the
chapter *Beyond the paper* reports the ratio). ``D`` is a model for placing levels, not a
calibrated error bar.

**Propagation (J-prop).** CPE and D both charge an error made at level ``sigma`` at full size.
For Gaussian data ``N(mu, S)`` the flow is ``y(sigma) = mu + (S + sigma^2 I)^{1/2} c`` with ``c``
constant along a path, so a perturbation of ``y`` at ``sigma`` reaches the clean sample scaled by
``(S / (S + sigma^2))^{1/2}``. With ``psi(sigma) = mean_i v_i / (v_i + sigma^2)``, ``v_i`` the
eigenvalues of the data covariance (:func:`propagation_factor`)::

    J_prop = sum_k psi(sigma_{k-1}) [(sigma_k - sigma_{k-1})^2 w(a_k) + e_k]            (J-prop)

(step ``k`` lands at ``sigma_{k-1}``; ``psi(0) = 1``). At the linear schedule's start
(``sigma ~ 157``) ``psi`` is about ``4e-5`` for unit-variance data: the first terms of CPE, which
dominate it, overstate what reaches the sample by that factor, and they are what makes the
unconstrained optimum of CPE, and of CPE + D, degenerate.

:class:`DiscretisationAwareArm` is (J) / (J-prop) as an arm of the paired comparison engine: it
probes the model being sampled on the engine's validation noise and reports the probe's model
calls as its budget.

For a model whose error is random per call (:class:`~vrg_analysis.testbeds.PlantedErrorModel`),
the difference ``eps_s - eps_m`` also carries that noise, and (D2) counts it as truncation error;
trained networks are deterministic and (D2) then measures the curvature of the flow the sampler
integrates.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from torch import Tensor

from vrg_analysis._checks import frozen_array
from vrg_analysis.core.profile import ErrorProfile
from vrg_analysis.core.schedules import lambda_from_alpha_bar
from vrg_analysis.core.trajectories import Trajectory
from vrg_analysis.models import EpsModel, checked_eps, timestep_tensors
from vrg_analysis.models.analytic import GaussianMixture, reference_ode_endpoint
from vrg_analysis.samplers import StepRecord, sample_ddim
from vrg_analysis.vrg.arms import ArmContext, arm_summary
from vrg_analysis.vrg.objective import (
    BOX_MARGIN,
    KKT_TOL,
    VRGObjective,
    levels_moved,
    projected_gradient_norm,
    ratio_bounds,
    solve_start_held,
)

__all__ = [
    "MIN_SPLIT_FRACTION",
    "richardson_factor",
    "step_scale",
    "step_centroid",
    "LocalErrorProbe",
    "probe_local_error",
    "LocalErrorModel",
    "fit_local_error_model",
    "discretisation_error",
    "exact_local_error",
    "propagation_factor",
    "ObjectiveTerms",
    "objective_terms",
    "DiscretisationAwareResult",
    "optimize_discretisation_aware",
    "DiscretisationAwareArm",
]

log = logging.getLogger(__name__)
FloatArray = NDArray[np.float64]

#: Smallest split fraction ``theta`` for which (D2) is used: the factor ``1 / (2 theta (1 -
#: theta))`` grows without bound as the split level approaches an end of the step.
MIN_SPLIT_FRACTION = 0.02
# Below this lambda_-step the centroid kappa(h) uses its series (the closed form cancels).
_SMALL_H = 1e-2
# Floor on a measured local error before its logarithm is taken (an exactly linear flow).
_TINY = 1e-300


# --------------------------------------------------------------------------- step geometry
def richardson_factor(theta: float) -> float:
    """``1 / (2 theta (1 - theta))``: one-step local error of an Euler step per unit of the
    difference between one step and two steps split at fraction ``theta`` (D2).

    An Euler step of size ``H`` with constant second derivative ``c`` errs by ``c H^2 / 2``; two
    steps of ``theta H`` and ``(1 - theta) H`` err by ``c H^2 (theta^2 + (1 - theta)^2) / 2``, so
    their difference is ``c H^2 theta (1 - theta)``. At the midpoint the factor is 2.
    """
    th = float(theta)
    if not (math.isfinite(th) and 0.0 < th < 1.0):
        raise ValueError(f"theta (split fraction) must lie in (0, 1), got {theta!r}")
    return 1.0 / (2.0 * th * (1.0 - th))


def _sigma_tensor(alpha_bar: Tensor) -> Tensor:
    return torch.sqrt((1.0 - alpha_bar) / alpha_bar)


def _kappa(h: Tensor) -> Tensor:
    """Centroid ``kappa(h)`` of the weight ``u exp(-u)`` on ``[0, h]`` (finite ``h > 0``)."""
    big = h.clamp(min=_SMALL_H)  # both branches stay finite, so autograd through where() is safe
    num = 2.0 - torch.exp(-big) * (big * big + 2.0 * big + 2.0)
    phi = -torch.expm1(-big) - big * torch.exp(-big)
    small = h.clamp(max=_SMALL_H)
    series = (2.0 * small / 3.0) * (1.0 - small / 12.0)
    return torch.where(h < _SMALL_H, series, num / phi)


def _step_geometry(alpha_bar_from_clean: Tensor) -> tuple[Tensor, Tensor]:
    """``(sigma_s phi(h), lambda_c)`` of each step, clean end first (D1).

    Step ``k`` leaves level ``a_k`` (``sigma_s``) for ``a_{k-1}`` (``a_0 = 1``, ``sigma = 0``).
    """
    sigma = _sigma_tensor(alpha_bar_from_clean)  # sigma_1 < .. < sigma_K
    lam_s = -torch.log(sigma)
    scale_first = sigma[:1]  # last step into the clean sample: sigma_s phi(inf) = sigma_s
    centre_first = lam_s[:1] + 2.0  # kappa(inf) = 2
    if sigma.numel() == 1:
        return scale_first, centre_first
    s_from, s_to = sigma[1:], sigma[:-1]
    h = torch.log(s_from) - torch.log(s_to)  # lambda_t - lambda_s > 0
    scale = s_to * (torch.expm1(h) - h)  # = sigma_s phi(h), cancellation-free
    centre = lam_s[1:] + _kappa(h)
    return torch.cat([scale_first, scale]), torch.cat([centre_first, centre])


def step_scale(trajectory: Trajectory) -> FloatArray:
    """``sigma_s phi(h)`` of each step in sampling order (D1): the local error per unit slope."""
    a = torch.as_tensor(trajectory.alpha_bar_from_clean, dtype=torch.float64)
    scale, _ = _step_geometry(a)
    return scale.numpy()[::-1].copy()


def step_centroid(trajectory: Trajectory) -> FloatArray:
    """``lambda_c = lambda_s + kappa(h)`` of each step in sampling order: where (D1) reads the
    slope of ``eps``."""
    a = torch.as_tensor(trajectory.alpha_bar_from_clean, dtype=torch.float64)
    _, centre = _step_geometry(a)
    return centre.numpy()[::-1].copy()


# --------------------------------------------------------------------------- probing
@dataclass(frozen=True, eq=False)
class LocalErrorProbe:
    """Richardson estimates (D2) of DDIM's local error on the steps of one trajectory.

    Arrays are per step in sampling order (noisiest first); ``local_error`` is the mean over the
    probe samples of ``||LTE||^2 / d`` in ``y`` units, NaN where a step was not measured.
    ``model_calls`` counts single-sample network evaluations: ``n_probe`` times (K path calls plus
    one per measured step).
    """

    trajectory: Trajectory
    alpha_bar_split: FloatArray
    theta: FloatArray
    local_error: FloatArray
    local_error_sem: FloatArray
    n_probe: int
    model_calls: int
    states: Tensor  # [K, n_probe, ...] the path's state at each level (float64)
    endpoint: Tensor  # the K-step DDIM sample

    @property
    def measured(self) -> NDArray[np.bool_]:
        return np.isfinite(self.local_error)

    @property
    def total(self) -> float:
        """Sum of the measured steps' ``e_k`` (``D`` of the probed trajectory itself)."""
        return float(np.nansum(self.local_error))


def _check_probe_inputs(model: Any, x_T: Any, trajectory: Trajectory) -> None:  # noqa: N803
    if not isinstance(trajectory, Trajectory):
        raise TypeError(f"trajectory must be a Trajectory, got {type(trajectory).__name__}")
    if not callable(model) or not hasattr(model, "schedule"):
        raise TypeError(f"model must be an EpsModel (callable with .schedule), got {model!r}")
    if not isinstance(x_T, Tensor):
        raise TypeError(f"x_T must be a torch.Tensor, got {type(x_T).__name__}")
    if x_T.ndim < 2 or x_T.shape[0] < 2:
        raise ValueError(f"x_T needs shape [n_probe >= 2, ...], got {tuple(x_T.shape)}")


def probe_local_error(
    model: EpsModel,
    x_T: Tensor,  # noqa: N803 - the paper's symbol
    trajectory: Trajectory,
    *,
    model_kwargs: Mapping[str, Any] | None = None,
) -> LocalErrorProbe:
    """Estimate DDIM's local truncation error on every step of ``trajectory`` (D2).

    1. DDIM (:func:`~vrg_analysis.samplers.sample_ddim`) walks the K levels from ``x_T``
       (``[n_probe, ...]``) with ``model``, recording each state ``x_k`` and ``eps_k``;
    2. for step ``s -> t``, the half step to the split level ``m`` gives ``y_m``, one model call
       gives ``eps_m``, and ``one - two = (sigma_t - sigma_m)(eps_k - eps_m)`` in ``y``;
    3. ``e_k = mean ||one - two||^2 / d * richardson_factor(theta)^2``.
    """
    _check_probe_inputs(model, x_T, trajectory)
    sched = model.schedule
    records: list[StepRecord] = []
    with torch.no_grad():  # the model sees x_T's dtype; the differences are taken in float64
        endpoint = sample_ddim(
            model, x_T, trajectory, callback=records.append, model_kwargs=model_kwargs
        )
    levels = [float(a) for a in trajectory.alpha_bar] + [1.0]
    a_cap = float(sched.alpha_bar_max)
    k_steps, n = trajectory.K, x_T.shape[0]
    split = np.full(k_steps, np.nan)
    theta = np.full(k_steps, np.nan)
    err = np.full(k_steps, np.nan)
    sem = np.full(k_steps, np.nan)
    extra = 0
    for rec in records:
        k = rec.step
        a_s, a_t = levels[k], levels[k + 1]
        s_s = math.sqrt((1.0 - a_s) / a_s)
        s_t = math.sqrt((1.0 - a_t) / a_t)
        # 1. split: lambda_ midpoint (sigma midpoint into the clean sample), inside the schedule
        s_m = 0.5 * s_s if a_t == 1.0 else math.sqrt(s_s * s_t)
        a_m = min(1.0 / (1.0 + s_m * s_m), a_cap)
        s_m = math.sqrt((1.0 - a_m) / a_m)
        th = (s_s - s_m) / (s_s - s_t)
        split[k], theta[k] = a_m, th
        if not MIN_SPLIT_FRACTION <= th <= 1.0 - MIN_SPLIT_FRACTION:
            log.info("step %d: split fraction %.3g out of range; not measured", k, th)
            continue
        # 2. half step to m, one model call there
        y_s = rec.x.to(torch.float64) / math.sqrt(a_s)
        eps_s = rec.eps_hat.to(torch.float64)
        y_m = y_s + (s_m - s_s) * eps_s
        x_m = (math.sqrt(a_m) * y_m).to(x_T.dtype)
        t_m = timestep_tensors(sched, np.array([a_m]), x_m)[0]
        with torch.no_grad():
            eps_m = checked_eps(model, x_m, t_m, **dict(model_kwargs or {})).to(torch.float64)
        extra += 1
        diff = (s_t - s_m) * (eps_s - eps_m)  # one step minus two steps, in y
        # 3. (D2)
        per_sample = (
            diff.reshape(n, -1).pow(2).mean(dim=1).cpu().numpy() * richardson_factor(th) ** 2
        )
        err[k] = float(per_sample.mean())
        sem[k] = float(per_sample.std(ddof=1) / math.sqrt(n))
    if not np.isfinite(err).any():
        raise ValueError(
            "no step of the trajectory could be measured (every split level falls outside the "
            "model's schedule)"
        )
    states = torch.stack([rec.x.to(torch.float64) for rec in records])
    return LocalErrorProbe(
        trajectory=trajectory,
        alpha_bar_split=frozen_array(split),
        theta=frozen_array(theta),
        local_error=frozen_array(err),
        local_error_sem=frozen_array(sem),
        n_probe=int(n),
        model_calls=int(n * (k_steps + extra)),
        states=states.cpu(),
        endpoint=endpoint.to(torch.float64).cpu(),
    )


# --------------------------------------------------------------------------- the model of e
@dataclass(frozen=True, eq=False)
class LocalErrorModel:
    """``e(step) = G^2(lambda_c) (sigma_s phi(h))^2`` with ``log G^2`` piecewise linear in
    ``lambda_`` through the probed steps and flat beyond them (module docstring, D1)."""

    lambda_: FloatArray  # nodes, increasing
    log_g2: FloatArray
    n_probe: int = 0
    model_calls: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        lam = np.asarray(self.lambda_, dtype=np.float64).reshape(-1)
        lg = np.asarray(self.log_g2, dtype=np.float64).reshape(-1)
        if lam.size < 1 or lam.shape != lg.shape:
            raise ValueError(
                f"lambda_ and log_g2 need the same non-zero length, got {lam.size} and {lg.size}"
            )
        if not (np.isfinite(lam).all() and np.isfinite(lg).all()):
            raise ValueError("lambda_ and log_g2 must be finite")
        if np.any(np.diff(lam) <= 0):
            raise ValueError(f"lambda_ nodes must be strictly increasing, got {lam.tolist()!r}")
        object.__setattr__(self, "lambda_", frozen_array(lam))
        object.__setattr__(self, "log_g2", frozen_array(lg))

    def g2(self, lambda_: Tensor) -> Tensor:
        """``G^2`` at ``lambda_`` (float64 tensor, differentiable)."""
        xp = torch.tensor(np.array(self.lambda_), dtype=torch.float64)
        fp = torch.tensor(np.array(self.log_g2), dtype=torch.float64)
        if xp.numel() == 1:
            return torch.exp(fp[0]).expand_as(lambda_)
        x = lambda_.clamp(float(xp[0]), float(xp[-1]))
        idx = torch.searchsorted(xp, x.detach()).clamp(1, xp.numel() - 1)
        x0, x1, f0, f1 = xp[idx - 1], xp[idx], fp[idx - 1], fp[idx]
        return torch.exp(f0 + (f1 - f0) * (x - x0) / (x1 - x0))

    def step_errors_from_clean(self, alpha_bar_from_clean: Tensor) -> Tensor:
        """Predicted ``e_k``, clean end first, for levels ``a_1 < .. `` (tensor, differentiable)."""
        scale, centre = _step_geometry(alpha_bar_from_clean)
        return self.g2(centre) * scale**2

    def step_errors(self, trajectory: Trajectory) -> FloatArray:
        """Predicted ``e_k`` of each step of ``trajectory``, sampling order."""
        a = torch.as_tensor(trajectory.alpha_bar_from_clean, dtype=torch.float64)
        return self.step_errors_from_clean(a).numpy()[::-1].copy()

    def total(self, trajectory: Trajectory) -> float:
        """``D`` of ``trajectory`` (J)."""
        return float(self.step_errors(trajectory).sum())

    @property
    def lambda_range(self) -> tuple[float, float]:
        return float(self.lambda_[0]), float(self.lambda_[-1])


def fit_local_error_model(probes: LocalErrorProbe | list[LocalErrorProbe]) -> LocalErrorModel:
    """Fit :class:`LocalErrorModel` to one or more probes: ``G_k^2 = e_k / (sigma_s phi(h_k))^2``
    at ``lambda_c``; where several probes give a node at the same ``lambda_c`` their ``log G^2``
    is averaged."""
    plist = [probes] if isinstance(probes, LocalErrorProbe) else list(probes)
    if not plist or not all(isinstance(p, LocalErrorProbe) for p in plist):
        raise TypeError("probes must be a LocalErrorProbe or a non-empty list of them")
    lam, lg = [], []
    for p in plist:
        ok = p.measured
        scale = step_scale(p.trajectory)[ok]
        centre = step_centroid(p.trajectory)[ok]
        g2 = np.maximum(p.local_error[ok], _TINY) / scale**2
        lam.append(centre)
        lg.append(np.log(g2))
    lam_all, lg_all = np.concatenate(lam), np.concatenate(lg)
    uniq, inv = np.unique(lam_all, return_inverse=True)
    log_g2 = np.bincount(inv, weights=lg_all) / np.bincount(inv)
    return LocalErrorModel(
        lambda_=uniq,
        log_g2=log_g2,
        n_probe=sum(p.n_probe for p in plist),
        model_calls=sum(p.model_calls for p in plist),
        metadata={"probed": [p.trajectory.to_dict() for p in plist]},
    )


def discretisation_error(trajectory: Trajectory, model: LocalErrorModel) -> float:
    """``D`` of (J): the sum over the trajectory's steps of the modelled local error."""
    if not isinstance(model, LocalErrorModel):
        raise TypeError(f"model must be a LocalErrorModel, got {type(model).__name__}")
    return model.total(trajectory)


def exact_local_error(
    mixture: GaussianMixture,
    x: Tensor,
    alpha_bar: float,
    alpha_bar_next: float,
    *,
    tolerance: float = 1e-9,
) -> Tensor:
    """True local error of one DDIM step with the exact predictor ``eps*`` on a Gaussian mixture:
    per-sample ``||y_DDIM - y_exact||^2 / d`` in ``y`` units, the exact flow from
    :func:`~vrg_analysis.testbeds.reference_ode_endpoint` (``alpha_bar_next = 1``: the clean end).
    """
    a_s, a_t = float(alpha_bar), float(alpha_bar_next)
    if not (0.0 < a_s < a_t <= 1.0):
        raise ValueError(f"need 0 < alpha_bar < alpha_bar_next <= 1, got {a_s!r}, {a_t!r}")
    x64 = x.to(torch.float64)
    s_s, s_t = math.sqrt((1.0 - a_s) / a_s), math.sqrt((1.0 - a_t) / a_t)
    y_s = x64 / math.sqrt(a_s)
    y_one = y_s + (s_t - s_s) * mixture.optimal_eps(x64, a_s)
    x_ref = reference_ode_endpoint(
        mixture, x64, a_s, rtol=tolerance, atol=tolerance, alpha_bar_end=a_t
    )
    y_ref = x_ref / math.sqrt(a_t)
    return (y_one - y_ref).reshape(x64.shape[0], -1).pow(2).mean(dim=1)


# --------------------------------------------------------------------------- optimisation
def propagation_factor(sigma: ArrayLike, data_variance: float | ArrayLike) -> FloatArray:
    """``psi(sigma) = mean_i v_i / (v_i + sigma^2)`` (J-prop): the share of a squared error in
    ``y`` made at level ``sigma`` that reaches the clean sample, for Gaussian data with covariance
    eigenvalues ``v_i`` (a scalar: isotropic). Its flow is ``y(sigma) = mu + (S + sigma^2 I)^{1/2}
    c`` with ``c`` constant along a path, so a perturbation of ``y`` is scaled by ``(S / (S +
    sigma^2))^{1/2}`` on its way to ``sigma = 0``; ``psi(0) = 1``."""
    v = _check_variance(data_variance)
    sig = np.asarray(sigma, dtype=np.float64)
    return np.mean(v / (v + sig[..., None] ** 2), axis=-1)


def _check_variance(data_variance: float | ArrayLike) -> FloatArray:
    v = np.atleast_1d(np.asarray(data_variance, dtype=np.float64)).reshape(-1)
    if v.size < 1 or not np.all(np.isfinite(v)) or np.any(v <= 0):
        raise ValueError(
            "data_variance must be a positive number or positive eigenvalues, got "
            f"{data_variance!r}"
        )
    return v


class _JObjective(VRGObjective):
    """(J) as a float64 torch function of the ratios: ``terms`` returns ``(J, 0)``, so the exact
    solvers of :mod:`~vrg_analysis.optimize` minimise ``J`` unchanged. The profile's ``w`` is
    read by the parent's interpolation (as the CPE of ``optimize_trajectory``)."""

    def __init__(
        self,
        profile: ErrorProfile,
        local: LocalErrorModel,
        a_k_orig: float,
        data_variance: FloatArray | None,
    ) -> None:
        super().__init__(profile, a_k_orig, 0.0)
        self.local = local
        self.v = None if data_variance is None else torch.as_tensor(data_variance)

    def step_parts(self, r: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Per step, clean end first: the CPE summand, ``e_k`` and the weight ``psi``."""
        a = torch.cumprod(r, dim=0)  # a_k = prod_{j<=k} r_j
        sigma = torch.sqrt((1.0 - a) / a)
        prev = torch.cat([sigma.new_zeros(1), sigma[:-1]])  # where step k lands
        cpe = (sigma - prev) ** 2 * self.w(a)  # (CPE), Eq. 10
        e = self.local.step_errors_from_clean(a)  # (D1)
        if self.v is None:
            psi = torch.ones_like(prev)
        else:
            psi = (self.v[None, :] / (self.v[None, :] + prev[:, None] ** 2)).mean(dim=1)
        return cpe, e, psi

    def parts(self, r: Tensor) -> tuple[Tensor, Tensor]:
        """``(CPE, D)``, both unweighted."""
        cpe, e, _ = self.step_parts(r)
        return cpe.sum(), e.sum()

    def terms(self, r: Tensor) -> tuple[Tensor, Tensor]:
        cpe, e, psi = self.step_parts(r)
        return torch.sum(psi * (cpe + e)), r.new_zeros(())


@dataclass(frozen=True)
class ObjectiveTerms:
    """The terms of (J) for one trajectory: ``cpe`` (Eq. 10) and ``disc`` (D) as plain sums,
    ``objective`` as minimised (with the propagation weights when ``propagated``)."""

    cpe: float
    disc: float
    objective: float
    propagated: bool


def _ratios(trajectory: Trajectory) -> Tensor:
    return torch.as_tensor(ratio_bounds(trajectory, 0.5)[0], dtype=torch.float64)


def objective_terms(
    trajectory: Trajectory,
    profile: ErrorProfile,
    local_model: LocalErrorModel,
    *,
    data_variance: float | ArrayLike | None = None,
) -> ObjectiveTerms:
    """(J) and its terms for ``trajectory`` (``w`` read as :mod:`~vrg_analysis.optimize` reads it:
    linear in alpha_bar, flat beyond the measured range)."""
    if not isinstance(trajectory, Trajectory):
        raise TypeError(f"trajectory must be a Trajectory, got {type(trajectory).__name__}")
    v = None if data_variance is None else _check_variance(data_variance)
    obj = _JObjective(profile, local_model, float(trajectory.alpha_bar[0]), v)
    r = _ratios(trajectory)
    cpe, d = obj.parts(r)
    return ObjectiveTerms(float(cpe), float(d), float(obj.terms(r)[0]), v is not None)


@dataclass(frozen=True, eq=False)
class DiscretisationAwareResult:
    """Outcome of :func:`optimize_discretisation_aware`.

    ``cpe_*`` is Eq. 10 and ``disc_*`` is D, both as sums without propagation; ``objective_*`` is
    (J) as minimised (with the propagation weights when ``propagated``). ``grid_optimum`` is the
    global minimum of (J) over K-level trajectories on the grid (dynamic programming);
    ``optimized`` is the better of that and the ratio solver's polish of it.
    """

    initial: Trajectory
    optimized: Trajectory
    grid_optimum: Trajectory
    local_model: LocalErrorModel
    propagated: bool
    cpe_initial: float
    cpe_final: float
    disc_initial: float
    disc_final: float
    objective_initial: float
    objective_final: float
    objective_grid: float
    iterations: int
    converged: bool
    projected_gradient: float
    message: str
    wall_time_s: float
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def moved(self) -> bool:
        return levels_moved(self.initial, self.optimized)

    @property
    def max_ratio_move(self) -> float:
        """Largest ``|r_new - r_orig|`` over the ratios: how far beyond a gamma box it went."""
        r0 = ratio_bounds(self.initial, 0.5)[0]
        r1 = ratio_bounds(self.optimized, 0.5)[0]
        return float(np.max(np.abs(r1 - r0)))

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in _RESULT_SCALARS}
        for k in ("initial", "optimized", "grid_optimum"):
            out[k] = getattr(self, k).to_dict()
        out["moved"] = self.moved
        out["max_ratio_move"] = self.max_ratio_move
        out["config"] = dict(self.config)
        return out


_RESULT_SCALARS = (
    "propagated",
    "cpe_initial",
    "cpe_final",
    "disc_initial",
    "disc_final",
    "objective_initial",
    "objective_final",
    "objective_grid",
    "iterations",
    "converged",
    "projected_gradient",
    "message",
    "wall_time_s",
)


def _grid_minimum(
    obj: _JObjective, num_steps: int, start: float, end: float, grid_size: int
) -> tuple[Trajectory, float]:
    """Global minimum of (J) over K levels from a grid uniform in ``lambda_`` on
    ``[lambda(start), lambda(end)]``, the noisiest level held at ``start`` (dynamic programming).

    Index levels from the clean end; ``C_1(i)`` is the cost of the last step, from level ``i`` to
    the clean sample, and ``C_k(j) = min_{i less noisy than j} C_{k-1}(i) + psi(sigma_i)
    [(sigma_j - sigma_i)^2 w_j + e(j -> i)]``; the answer is ``C_K(start)``. J adds over steps,
    as CPE does, so Bellman's principle holds (as in :func:`optimize.global_optimum`).
    """
    lam = np.linspace(
        float(lambda_from_alpha_bar(start)), float(lambda_from_alpha_bar(end)), grid_size
    )[::-1].copy()  # least noisy first: sigma increasing along the grid
    lam_t = torch.as_tensor(lam, dtype=torch.float64)
    sigma_t = torch.exp(-lam_t)
    levels = 1.0 / (1.0 + sigma_t**2)
    sigma = sigma_t.numpy()
    w = obj.w(levels).numpy()
    if obj.v is None:
        psi = np.ones_like(sigma)
    else:
        v = obj.v.numpy()
        psi = np.mean(v / (v + sigma[:, None] ** 2), axis=1)
    # step from level j (noisier) to level i (less noisy): h = lambda_i - lambda_j > 0
    h = lam_t[:, None] - lam_t[None, :]  # [i, j]
    upper = (h > 0).numpy()
    hh = h.clamp(min=1e-12)
    scale = sigma_t[:, None] * (torch.expm1(hh) - hh)  # sigma_s phi(h), (D1)
    e = (obj.local.g2(lam_t[None, :] + _kappa(hh)) * scale**2).numpy()
    cpe = (sigma[None, :] - sigma[:, None]) ** 2 * w[None, :]
    step = np.where(upper, psi[:, None] * (cpe + e), np.inf)
    cost = sigma**2 * w + (obj.local.g2(lam_t + 2.0) * sigma_t**2).numpy()  # C_1, psi(0) = 1
    back = np.zeros((num_steps, grid_size), dtype=np.int64)
    for k in range(1, num_steps):
        total = cost[:, None] + step
        back[k] = np.argmin(total, axis=0)
        cost = total[back[k], np.arange(grid_size)]
    end_idx = grid_size - 1  # the start level, the noisiest on the grid
    if not np.isfinite(cost[end_idx]):
        raise ValueError(f"grid_size = {grid_size} is too small for {num_steps} steps")
    path = [end_idx]
    for k in range(num_steps - 1, 0, -1):
        path.append(int(back[k][path[-1]]))
    chosen = levels.numpy()[path].copy()  # noisiest first
    chosen[0] = start
    return Trajectory(chosen, name="grid"), float(cost[end_idx])


def optimize_discretisation_aware(
    trajectory: Trajectory,
    profile: ErrorProfile,
    local_model: LocalErrorModel,
    *,
    data_variance: float | ArrayLike | None = None,
    alpha_bar_max: float | None = None,
    grid_size: int = 1000,
    polish: bool = True,
    polish_iterations: int = 300,
) -> DiscretisationAwareResult:
    """Minimise (J) with **no gamma box**: the noisiest level held exactly at the trajectory's
    (``keep_start``), the least noisy at most ``alpha_bar_max``, K kept::

        J = sum_k psi(sigma_{k-1}) [(sigma_k - sigma_{k-1})^2 w(a_k) + e_k]            (J-prop)

    ``psi = 1`` without ``data_variance`` (then ``J = CPE + D``, the paper's convention that an
    error reaches the clean sample unchanged); with it, :func:`propagation_factor`.

    1. the global minimum over K-level trajectories on ``grid_size`` levels uniform in
       ``lambda_`` (dynamic programming, ``O(K G^2)``);
    2. with ``polish``, SLSQP on the ratios ``r_k`` in ``(a_K, 1)`` with ``sum log r = log a_K``
       (the parameterisation and hard start constraint of
       :func:`~vrg_analysis.optimize.optimize_trajectory` with ``keep_start=True``) continues from
       it off the grid for at most ``polish_iterations``; the better of the two is kept.

    ``converged`` needs the polish's success and a projected gradient below ``1e-6`` relative to
    J; the profile is piecewise linear, so J has kinks, and a point on one can be optimal while
    the gradient there does not vanish: read ``projected_gradient`` and compare the grid optimum.
    """
    if not isinstance(trajectory, Trajectory):
        raise TypeError(f"trajectory must be a Trajectory, got {type(trajectory).__name__}")
    if not isinstance(profile, ErrorProfile):
        raise TypeError(f"profile must be an ErrorProfile, got {type(profile).__name__}")
    if not isinstance(local_model, LocalErrorModel):
        raise TypeError(f"local_model must be a LocalErrorModel, got {type(local_model).__name__}")
    if isinstance(grid_size, bool) or int(grid_size) != grid_size or grid_size <= trajectory.K:
        raise ValueError(f"grid_size must be an integer > K = {trajectory.K}, got {grid_size!r}")
    v = None if data_variance is None else _check_variance(data_variance)
    profile.w(trajectory.alpha_bar)  # raises, naming the level, if the profile does not cover it
    r0, _, _ = ratio_bounds(trajectory, 0.5)  # the ratios only; no box is used
    a_k = float(trajectory.alpha_bar[0])
    cap = 1.0 - 1e-6 if alpha_bar_max is None else float(alpha_bar_max)
    if not (math.isfinite(cap) and r0[0] <= cap < 1.0):
        raise ValueError(
            f"alpha_bar_max = {alpha_bar_max!r} must lie in [a_1 = {float(r0[0])!r}, 1)"
        )
    lo = np.full_like(r0, a_k)  # a_k = prod r_j >= a_K for every k: no ratio is below a_K
    hi = np.full_like(r0, 1.0 - BOX_MARGIN)
    hi[0] = cap
    obj = _JObjective(profile, local_model, a_k, v)

    ratios = _ratios

    def j_of(traj: Trajectory) -> float:
        return float(obj.terms(ratios(traj))[0])

    start = time.perf_counter()
    # 1. global minimum on the grid
    grid, _ = _grid_minimum(obj, trajectory.K, a_k, cap, int(grid_size))
    grid = grid.renamed(f"disc_aware_grid({trajectory.name})")
    best, iterations, ok, message = grid, 0, False, "grid optimum (no polish)"
    # 2. polish off the grid: SLSQP on the ratios with the start level held
    if polish:
        r, iterations, ok, message = solve_start_held(
            obj, ratios(grid).numpy(), lo, hi, a_k, polish_iterations
        )
        a = np.cumprod(r)
        a[-1] = a_k  # the hard constraint holds to round-off: make it exact
        try:
            polished: Trajectory | None = Trajectory.from_clean_order(a, name="polished")
        except ValueError as exc:  # levels merged in floating point: keep the grid optimum
            polished, message = None, f"{message}; polish rejected ({exc})"
        if polished is not None and j_of(polished) <= j_of(grid):
            best = polished
        else:
            message += "; the grid optimum is kept"
    wall = time.perf_counter() - start
    r_final = ratios(best).numpy()
    j_final = j_of(best)
    kkt = projected_gradient_norm(obj, r_final, lo, hi, True)
    converged = ok and kkt <= KKT_TOL * max(1.0, abs(j_final))
    c0, d0 = (float(t) for t in obj.parts(ratios(trajectory)))
    c1, d1 = (float(t) for t in obj.parts(ratios(best)))
    result = DiscretisationAwareResult(
        initial=trajectory,
        optimized=best.renamed(f"disc_aware({trajectory.name})"),
        grid_optimum=grid,
        local_model=local_model,
        propagated=v is not None,
        cpe_initial=c0,
        cpe_final=c1,
        disc_initial=d0,
        disc_final=d1,
        objective_initial=j_of(trajectory),
        objective_final=j_final,
        objective_grid=j_of(grid),
        iterations=iterations,
        converged=bool(converged),
        projected_gradient=kkt,
        message=message,
        wall_time_s=wall,
        config={
            "alpha_bar_max": alpha_bar_max,
            "keep_start": True,
            "box": None,
            "grid_size": int(grid_size),
            "polish": bool(polish),
            "polish_iterations": int(polish_iterations),
            "data_variance": None if v is None else v.tolist(),
        },
    )
    log.info(
        "discretisation-aware: J %.6g -> %.6g (CPE %.4g -> %.4g, D %.4g -> %.4g) in %.3fs",
        result.objective_initial,
        j_final,
        c0,
        c1,
        d0,
        d1,
        wall,
    )
    return result


# --------------------------------------------------------------------------- as an arm
@dataclass(frozen=True)
class DiscretisationAwareArm:
    """(J) (or (J-prop) with ``data_variance``) as an :class:`~vrg_analysis.vrg.arms.Arm` of the
    paired comparison engine: no gamma box, the start level held, K kept.

    ``retime`` spends model calls before sampling, and reports them: it probes the local error
    (D2) of the baseline's own K steps with the model being sampled (``context.model``) on
    ``n_probe`` starting noises from ``context.validation_noise`` (independent of every evaluation
    seed), fits :class:`LocalErrorModel` to the probe and minimises (J) with
    :func:`optimize_discretisation_aware` (grid optimum, then ``polish_iterations`` of SLSQP; 0:
    the grid optimum). ``info["model_calls"]`` is the probe's budget (``n_probe`` times K path
    calls plus one per measured step); ``info["details"]`` holds the fitted model (``lambda_``,
    ``log_g2``), the terms of (J) before and after, and how far the ratios moved.
    """

    n_probe: int = 32
    data_variance: tuple[float, ...] | None = None
    grid_size: int = 1000
    polish_iterations: int = 300

    def __post_init__(self) -> None:
        for name, least in (("n_probe", 2), ("grid_size", 2), ("polish_iterations", 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or int(v) != v or v < least:
                raise ValueError(f"{name} must be an integer >= {least}, got {v!r}")
        if self.data_variance is not None:
            v = _check_variance(self.data_variance)
            object.__setattr__(self, "data_variance", tuple(float(x) for x in v))

    @property
    def propagated(self) -> bool:
        return self.data_variance is not None

    @property
    def label(self) -> str:
        what = "J-prop" if self.propagated else "CPE + D"
        return f"{what} (probed, no box)"

    def retime(
        self, trajectory: Trajectory, context: ArmContext
    ) -> tuple[Trajectory, dict[str, Any]]:
        if context.model is None or context.validation_noise is None:
            raise ValueError(
                "the discretisation-aware arm probes the model: the context needs model and "
                "validation_noise"
            )
        x_probe = context.validation_noise(int(self.n_probe))
        probe = probe_local_error(
            context.model, x_probe, trajectory, model_kwargs=context.model_kwargs or None
        )
        local = fit_local_error_model(probe)
        hi = None if context.schedule is None else float(context.schedule.alpha_bar_max)
        res = optimize_discretisation_aware(
            trajectory,
            context.profile,
            local,
            data_variance=self.data_variance,
            alpha_bar_max=hi,
            grid_size=int(self.grid_size),
            polish=self.polish_iterations > 0,
            polish_iterations=max(int(self.polish_iterations), 1),
        )
        traj = res.optimized.renamed(f"{trajectory.name}+{'jprop' if self.propagated else 'cpe_d'}")
        details = {
            "lambda_": local.lambda_.tolist(),
            "log_g2": local.log_g2.tolist(),
            "probe_local_error": probe.local_error.tolist(),
            "cpe_initial": res.cpe_initial,
            "cpe_final": res.cpe_final,
            "disc_initial": res.disc_initial,
            "disc_final": res.disc_final,
            "objective_initial": res.objective_initial,
            "objective_final": res.objective_final,
            "objective_grid": res.objective_grid,
            "max_ratio_move": res.max_ratio_move,
            "message": res.message,
        }
        info = arm_summary(
            trajectory,
            traj,
            context.profile,
            converged=res.converged,
            model_calls=int(probe.model_calls),
            wall_time_s=float(res.wall_time_s),
            details=details,
        )
        return traj, info

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "discretisation_aware",
            "n_probe": int(self.n_probe),
            "data_variance": None if self.data_variance is None else list(self.data_variance),
            "grid_size": int(self.grid_size),
            "polish_iterations": int(self.polish_iterations),
        }
