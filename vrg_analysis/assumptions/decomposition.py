"""What the profiled MSE is made of: irreducible spread, the model's own error, and a cross term.

Algorithm 1 profiles ``w(a) = E||eps_hat(x_t) - eps||^2 / d`` against the *true* noise ``eps``.
Writing ``eps_hat - eps = (eps_hat - eps*) + (eps* - eps)`` with ``eps*(x_t) = E[eps | x_t]`` the
exact predictor of an analytic testbed (the design page, T2), per sample::

    ||eps_hat - eps||^2 / d = ||eps - eps*||^2 / d                     spread  S(a)
                            + ||eps_hat - eps*||^2 / d                 model   M(a)
                            + 2 <eps_hat - eps*, eps* - eps> / d       cross   C(a)      (D1)

exactly. In expectation ``C(a) = 0``: given ``x_t``, ``eps_hat - eps*`` is fixed (or independent
noise) and ``E[eps* - eps | x_t] = 0``. So ``w(a) = S(a) + M(a)``: ``S`` is the error of the
*optimal* predictor, which no model can remove; only ``M`` is the model's.

Why it matters for VRG: its objective ``CPE = sum_k c_k^2 w(a_k)`` (``c_k = sigma_k -
sigma_{k-1}``, :mod:`vrg_analysis.cpe`) weights the steps with ``w``, i.e. mostly with ``S`` where
the spread dominates. But a deterministic sampler driven by ``eps*`` makes no prediction error at
all (only discretisation error): the spread is not an error the sampler carries to the clean
sample. :func:`cpe_shares` splits CPE into the spread and model parts on a trajectory, i.e. says
which part VRG's objective is really weighting.

All three terms of (D1) are computed from the *same* draws ``(x_0, eps)``, so ``total = spread +
model + cross`` holds per sample (to rounding) and their standard errors are comparable. The
spread could be estimated with less noise by the Rao-Blackwellised
:meth:`~vrg_analysis.testbeds.GaussianMixture.optimal_eps_variance` (an independent check).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from torch import Tensor

from vrg_analysis._checks import as_float_vector, check_open_unit_interval, frozen_array
from vrg_analysis.core.cpe import step_coefficients
from vrg_analysis.core.profile import ErrorProfile
from vrg_analysis.core.trajectories import Trajectory
from vrg_analysis.models import EpsModel, checked_eps, timestep_tensors
from vrg_analysis.models.analytic import GaussianMixture

__all__ = [
    "ProfileDecomposition",
    "decompose_profile",
    "CPEShares",
    "cpe_shares",
    "PARTS",
]

FloatArray = NDArray[np.float64]
Part = Literal["total", "spread", "model_error", "cross"]
#: The parts of (D1), by field name.
PARTS: tuple[str, ...] = ("total", "spread", "model_error", "cross")


@dataclass(frozen=True, eq=False)
class ProfileDecomposition:
    """(D1) per level: ``total = spread + model_error + cross``, each a mean over the same ``n``
    draws, with standard errors ``*_se`` (sd over draws / sqrt(n))."""

    alpha_bar: FloatArray
    total: FloatArray
    spread: FloatArray
    model_error: FloatArray
    cross: FloatArray
    total_se: FloatArray
    spread_se: FloatArray
    model_error_se: FloatArray
    cross_se: FloatArray
    n: int
    source: str = ""

    def __post_init__(self) -> None:
        for name in (*PARTS, *(f"{p}_se" for p in PARTS), "alpha_bar"):
            object.__setattr__(self, name, frozen_array(getattr(self, name)))

    @property
    def num_levels(self) -> int:
        return int(self.alpha_bar.size)

    @property
    def model_share(self) -> FloatArray:
        """``M / (S + M)`` per level: the part of ``w`` a better model could remove."""
        return self.model_error / (self.spread + self.model_error)

    @property
    def cross_z(self) -> FloatArray:
        """``C / se(C)`` per level: |z| > 3 flags a cross term that is not zero (a bug, or a
        reference that is not ``E[eps | x_t]``)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.cross_se > 0, self.cross / self.cross_se, 0.0)

    def as_profile(self, part: Part = "total") -> ErrorProfile:
        """One part as an :class:`~vrg_analysis.profiling.ErrorProfile` (e.g. ``"model_error"``
        to optimise a trajectory for the model's own error only); needs at least 2 levels."""
        if part not in PARTS:
            raise ValueError(f"unknown part {part!r}; expected one of {PARTS}")
        mse = np.asarray(getattr(self, part))
        if part == "cross":
            raise ValueError("the cross term is not a profile (it can be negative)")
        return ErrorProfile(
            self.alpha_bar,
            mse,
            mse_sem=getattr(self, f"{part}_se"),
            count=np.full(self.num_levels, float(self.n)),
            metadata={"source": self.source, "part": part},
        )


def _mixture_of(mixture_or_testbed: Any) -> GaussianMixture:
    if isinstance(mixture_or_testbed, GaussianMixture):
        return mixture_or_testbed
    mix = getattr(mixture_or_testbed, "mixture", None)
    if isinstance(mix, GaussianMixture):
        return mix
    raise TypeError(
        "mixture_or_testbed must be a GaussianMixture or an exact testbed with .mixture "
        f"(make_testbed('mixture-2d')), got {type(mixture_or_testbed).__name__}: the "
        "decomposition needs the exact predictor eps*"
    )


def _input_dtype(model: EpsModel) -> torch.dtype:
    """The dtype the model computes in: a torch module's parameter dtype, else float64."""
    params = getattr(model, "parameters", None)
    if callable(params):
        for p in params():
            if p.is_floating_point():
                return p.dtype
    return torch.float64


def decompose_profile(
    model: EpsModel,
    mixture_or_testbed: Any,
    alpha_bar: ArrayLike,
    *,
    n: int,
    generator: torch.Generator | None = None,
    batch_size: int = 8192,
) -> ProfileDecomposition:
    """(D1) at each level of ``alpha_bar`` from ``n`` fresh draws of ``(x_0, eps)``.

    ``x_0`` from the testbed's mixture, ``x_t = sqrt(a) x_0 + sqrt(1 - a) eps`` (DDPM eq. 4),
    ``eps_hat = model(x_t, t(a))`` at the fractional timestep of ``a`` under ``model.schedule``,
    ``eps* = mixture.optimal_eps(x_t, a)`` (T2). ``x_t`` is given to the model in its own dtype
    (float32 for a trained network); ``eps*`` is computed in float64 at the float64 ``x_t``.
    """
    mix = _mixture_of(mixture_or_testbed)
    levels = as_float_vector(alpha_bar, "alpha_bar")
    check_open_unit_interval(levels, "alpha_bar")
    if isinstance(n, bool) or int(n) != n or int(n) < 2:
        raise ValueError(f"n must be an integer >= 2, got {n!r}")
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or int(batch_size) < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not callable(model) or not hasattr(model, "schedule"):
        raise TypeError(f"model must be an EpsModel (callable with .schedule), got {model!r}")
    n, bs = int(n), int(batch_size)
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    dtype = _input_dtype(model)
    d = mix.dim
    means = {p: np.empty(levels.size) for p in PARTS}
    ses = {p: np.empty(levels.size) for p in PARTS}
    with torch.no_grad():
        for j, a in enumerate(levels):
            x0, _ = mix.sample(n, gen)
            eps = torch.randn(x0.shape, generator=gen, dtype=torch.float64)
            x_t = math.sqrt(a) * x0 + math.sqrt(1.0 - a) * eps  # 1. forward process
            per: dict[str, list[Tensor]] = {p: [] for p in PARTS}
            for s in range(0, n, bs):
                xs, es = x_t[s : s + bs], eps[s : s + bs]
                x_in = xs.to(dtype)
                t = timestep_tensors(model.schedule, [a], x_in)[0]
                eps_hat = checked_eps(model, x_in, t).to(torch.float64)  # 2. the model
                eps_star = mix.optimal_eps(xs, float(a))  # 3. E[eps | x_t] (T2)
                m_err, spread = eps_hat - eps_star, eps_star - es
                # 4. (D1): total = spread + model + cross, per sample
                per["total"].append(((eps_hat - es) ** 2).sum(1) / d)
                per["spread"].append((spread**2).sum(1) / d)
                per["model_error"].append((m_err**2).sum(1) / d)
                per["cross"].append(2.0 * (m_err * spread).sum(1) / d)
            for p in PARTS:
                v = torch.cat(per[p]).numpy()
                means[p][j] = float(v.mean())
                ses[p][j] = float(v.std(ddof=1) / math.sqrt(n))
    return ProfileDecomposition(
        alpha_bar=levels,
        **means,
        **{f"{p}_se": ses[p] for p in PARTS},
        n=n,
        source=repr(model),
    )


@dataclass(frozen=True, eq=False)
class CPEShares:
    """CPE on one trajectory split by (D1). Per-step arrays are clean end first (``a_1 .. a_K``,
    as :func:`vrg_analysis.cpe.cpe_terms`); ``weights`` are ``(sigma_k - sigma_{k-1})^2``."""

    trajectory_name: str
    alpha_bar: FloatArray
    weights: FloatArray
    spread_terms: FloatArray
    model_terms: FloatArray
    cross_terms: FloatArray
    cpe_total: float
    cpe_spread: float
    cpe_model: float
    cpe_cross: float
    cpe_total_se: float
    cpe_spread_se: float
    cpe_model_se: float
    cpe_cross_se: float

    def __post_init__(self) -> None:
        for name in ("alpha_bar", "weights", "spread_terms", "model_terms", "cross_terms"):
            object.__setattr__(self, name, frozen_array(getattr(self, name)))

    @property
    def spread_share(self) -> float:
        """Share of CPE from the irreducible spread: what the objective weights that no model,
        and no sampler error, is made of."""
        return self.cpe_spread / self.cpe_total

    @property
    def model_share(self) -> float:
        """Share of CPE from the model's own error."""
        return self.cpe_model / self.cpe_total

    @property
    def cross_share(self) -> float:
        return self.cpe_cross / self.cpe_total

    def to_dict(self) -> dict[str, object]:
        return {
            "trajectory": self.trajectory_name,
            "cpe_total": self.cpe_total,
            "cpe_spread": self.cpe_spread,
            "cpe_model": self.cpe_model,
            "cpe_cross": self.cpe_cross,
            "spread_share": self.spread_share,
            "model_share": self.model_share,
            "cross_share": self.cross_share,
            "cpe_total_se": self.cpe_total_se,
            "cpe_spread_se": self.cpe_spread_se,
            "cpe_model_se": self.cpe_model_se,
            "cpe_cross_se": self.cpe_cross_se,
        }


def _level_index(decomposition: ProfileDecomposition, trajectory: Trajectory) -> NDArray[np.intp]:
    """Position of each trajectory level (sampling order) in the decomposition's levels."""
    idx = np.empty(trajectory.K, dtype=np.intp)
    for k, a in enumerate(trajectory.alpha_bar):
        hit = np.flatnonzero(np.isclose(decomposition.alpha_bar, a, rtol=1e-9, atol=0.0))
        if not hit.size:
            raise ValueError(
                f"the decomposition was not evaluated at trajectory level {k} "
                f"(alpha_bar = {float(a)!r}); call decompose_profile(..., trajectory.alpha_bar)"
            )
        idx[k] = hit[0]
    return idx


def cpe_shares(decomposition: ProfileDecomposition, trajectory: Trajectory) -> CPEShares:
    """Split ``CPE = sum_k c_k^2 w(a_k)`` into ``sum_k c_k^2 S(a_k)``, ``sum_k c_k^2 M(a_k)`` and
    the cross part (D1); ``c_k^2`` from :func:`vrg_analysis.cpe.step_coefficients`.

    ``decomposition`` must have been evaluated at every level of ``trajectory`` (no interpolation:
    ``w`` between measured levels would mix the parts' shapes). Levels are independent draws, so
    ``se(sum_k c_k^2 X_k)^2 = sum_k c_k^4 se(X_k)^2``.
    """
    if not isinstance(trajectory, Trajectory):
        raise TypeError(f"trajectory must be a Trajectory, got {type(trajectory).__name__}")
    if not isinstance(decomposition, ProfileDecomposition):
        raise TypeError(
            f"decomposition must be a ProfileDecomposition, got {type(decomposition).__name__}"
        )
    idx = _level_index(decomposition, trajectory)[::-1]  # clean end first, as step_coefficients
    c2 = step_coefficients(trajectory)
    terms = {p: c2 * np.asarray(getattr(decomposition, p))[idx] for p in PARTS}
    se = {
        p: float(np.sqrt(np.sum(c2**2 * np.asarray(getattr(decomposition, f"{p}_se"))[idx] ** 2)))
        for p in PARTS
    }
    total = float(terms["total"].sum())
    if not total > 0.0:
        raise ValueError(f"CPE of the decomposition on {trajectory.name!r} is {total!r}, not > 0")
    return CPEShares(
        trajectory_name=trajectory.name,
        alpha_bar=trajectory.alpha_bar_from_clean,
        weights=c2,
        spread_terms=terms["spread"],
        model_terms=terms["model_error"],
        cross_terms=terms["cross"],
        cpe_total=total,
        cpe_spread=float(terms["spread"].sum()),
        cpe_model=float(terms["model_error"].sum()),
        cpe_cross=float(terms["cross"].sum()),
        cpe_total_se=se["total"],
        cpe_spread_se=se["spread"],
        cpe_model_se=se["model_error"],
        cpe_cross_se=se["cross"],
    )
