"""Analytic models: Gaussian-mixture data, its exact noise predictor, planted errors, the exact ODE.

For data ``x_0 ~ sum_i pi_i N(mu_i, S_i)`` every quantity VRG depends on is available in closed
form (the design page, "The exact testbed"):

* the noisy marginal at level ``a`` (``x_t = sqrt(a) x_0 + sqrt(1 - a) eps``)::

      p_a(x) = sum_i pi_i N(x; sqrt(a) mu_i, C_i),   C_i = a S_i + (1 - a) I        (T1)

* the optimal (posterior-mean) noise predictor, ``eps*(x) = E[eps | x_t = x]``::

      eps*(x) = -sqrt(1 - a) grad log p_a(x)
              = sqrt(1 - a) sum_i r_i(x) C_i^{-1} (x - sqrt(a) mu_i)                (T2)

  with the posterior responsibilities ``r_i(x) = pi_i N_i(x) / sum_j pi_j N_j(x)`` (log-sum-exp);

* the irreducible spread ``E||eps - eps*(x_t)||^2 / d``: given ``x_t`` and component ``i``,
  ``eps`` is Gaussian with mean ``m_i = sqrt(1 - a) C_i^{-1} (x - sqrt(a) mu_i)`` and covariance
  ``I - (1 - a) C_i^{-1}``, so::

      E[||eps - eps*||^2 | x_t] = sum_i r_i [tr(I - (1 - a) C_i^{-1}) + ||m_i - eps*||^2]  (T3)

* the probability-flow ODE in ``y = x / sqrt(a)``, ``sigma = sqrt((1 - a) / a)``::

      dy/dsigma = eps*(x),   x = y / sqrt(1 + sigma^2),   a = 1 / (1 + sigma^2)      (T4)

  whose high-accuracy solution (:func:`reference_ode_endpoint`) is the endpoint a sampler would
  reach without discretisation error.

All covariances are handled through their eigendecompositions ``S_i = U_i diag(l_i) U_i^T``: then
``C_i = U_i diag(a l_i + 1 - a) U_i^T`` for *every* level ``a`` at once, so inverses and
log-determinants at per-row levels cost one rotation and no factorisation. Everything is float64.

:class:`PlantedErrorModel` adds a known error (bias, noise of chosen size, AR(1)-correlated across
sampling steps) on top of any model, so that an audit's estimate can be compared with the truth.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from torch import Tensor

from vrg_analysis._checks import frozen_array
from vrg_analysis.core.schedules import NoiseSchedule
from vrg_analysis.io import sha256_array
from vrg_analysis.models.protocol import EpsModel, identity_of, model_identity

__all__ = [
    "GaussianMixture",
    "SpreadEstimate",
    "OptimalEpsModel",
    "EmpiricalOptimalEpsModel",
    "PlantedErrorModel",
    "reference_ode_endpoint",
]

log = logging.getLogger(__name__)
FloatArray = NDArray[np.float64]

_LOG_2PI = math.log(2.0 * math.pi)
# Rows per chunk are chosen so that one [rows, m, d] float64 work array stays near this size.
_CHUNK_ELEMENTS = 1 << 22


def _as_float64_tensor(x: Tensor | ArrayLike, name: str) -> Tensor:
    """``x`` as a float64 tensor (keeping the device and autograd graph of a tensor)."""
    if isinstance(x, Tensor):
        return x.to(torch.float64)
    try:
        return torch.tensor(np.asarray(x, dtype=np.float64))  # a copy: inputs may be read-only
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a tensor or array of numbers, got {x!r}") from exc


# ===================================================================== the mixture
@dataclass(frozen=True, eq=False)
class GaussianMixture:
    """A Gaussian mixture ``sum_i pi_i N(mu_i, S_i)`` in ``d`` dimensions (float64).

    Parameters
    ----------
    weights:
        ``[m]`` mixture weights ``pi_i``, positive, summing to 1 (renormalised to remove round-off).
    means:
        ``[m, d]`` component means ``mu_i``.
    covs:
        ``[m, d, d]`` component covariances ``S_i``, symmetric positive definite.

    Build one with :meth:`ring_2d` (pictures) or :meth:`random` (higher dimensions).
    """

    weights: FloatArray
    means: FloatArray
    covs: FloatArray
    _eigvals: FloatArray = field(init=False, repr=False)
    _eigvecs: FloatArray = field(init=False, repr=False)
    _torch: dict[str, Tensor] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        w = np.asarray(self.weights, dtype=np.float64)
        mu = np.asarray(self.means, dtype=np.float64)
        cov = np.asarray(self.covs, dtype=np.float64)
        # 1. shapes
        if w.ndim != 1 or w.size < 1:
            raise ValueError(f"weights must be a non-empty 1-D array, got shape {w.shape}")
        m = w.size
        if mu.ndim != 2 or mu.shape[0] != m or mu.shape[1] < 1:
            raise ValueError(f"means must have shape [m={m}, d], got {mu.shape}")
        d = mu.shape[1]
        if cov.shape != (m, d, d):
            raise ValueError(f"covs must have shape [m={m}, d={d}, d={d}], got {cov.shape}")
        # 2. weights: finite, positive, summing to one
        for i in range(m):
            if not np.isfinite(w[i]) or w[i] <= 0.0:
                raise ValueError(f"weights[{i}] = {float(w[i])!r} must be a positive finite number")
        if abs(w.sum() - 1.0) > 1e-8:
            raise ValueError(f"weights must sum to 1, got sum {float(w.sum())!r}")
        w = w / w.sum()
        # 3. means finite; covariances finite, symmetric, positive definite (component named)
        for i in range(m):
            if not np.all(np.isfinite(mu[i])):
                raise ValueError(f"means[{i}] = {mu[i].tolist()!r} is not finite")
            if not np.all(np.isfinite(cov[i])):
                raise ValueError(f"covs[{i}] contains non-finite values")
            scale = max(float(np.abs(cov[i]).max()), np.finfo(np.float64).tiny)
            asym = float(np.abs(cov[i] - cov[i].T).max())
            if asym > 1e-10 * scale:
                raise ValueError(
                    f"covs[{i}] is not symmetric: max |S - S^T| = {asym:.3g} (scale {scale:.3g})"
                )
        cov = 0.5 * (cov + np.swapaxes(cov, 1, 2))
        eigvals, eigvecs = np.linalg.eigh(cov)
        for i in range(m):
            lo = float(eigvals[i, 0])
            if lo <= 1e-12 * float(eigvals[i, -1]) or lo <= 0.0:
                raise ValueError(
                    f"covs[{i}] is not positive definite: smallest eigenvalue {lo!r}, "
                    f"largest {float(eigvals[i, -1])!r}"
                )
        object.__setattr__(self, "weights", frozen_array(w))
        object.__setattr__(self, "means", frozen_array(mu))
        object.__setattr__(self, "covs", frozen_array(cov))
        object.__setattr__(self, "_eigvals", frozen_array(eigvals))
        object.__setattr__(self, "_eigvecs", frozen_array(eigvecs))
        tensors = {
            "log_weights": torch.tensor(np.log(w)),
            "means": torch.tensor(mu),
            "eigvals": torch.tensor(eigvals),
            "eigvecs": torch.tensor(eigvecs),
            "chol": torch.tensor(np.linalg.cholesky(cov)),
        }
        object.__setattr__(self, "_torch", tensors)

    # ----------------------------------------------------------------- constructors
    @classmethod
    def ring_2d(cls, num_modes: int = 8, radius: float = 1.0, std: float = 0.1) -> GaussianMixture:
        """``num_modes`` equal-weight isotropic components evenly spaced on a circle (2-D).

        The defaults put the data in about ``[-1.3, 1.3]^2``, modes ``2 sin(pi / 8) = 0.77`` apart
        (7.7 component standard deviations): separated when clean, merged by moderate noise.
        """
        if isinstance(num_modes, bool) or int(num_modes) != num_modes or num_modes < 1:
            raise ValueError(f"num_modes must be a positive integer, got {num_modes!r}")
        if not np.isfinite(radius) or radius < 0.0:
            raise ValueError(f"radius must be a finite number >= 0, got {radius!r}")
        if not np.isfinite(std) or std <= 0.0:
            raise ValueError(f"std must be a positive finite number, got {std!r}")
        m = int(num_modes)
        angle = 2.0 * np.pi * np.arange(m) / m
        means = radius * np.stack([np.cos(angle), np.sin(angle)], axis=1)
        covs = np.broadcast_to(std**2 * np.eye(2), (m, 2, 2))
        return cls(np.full(m, 1.0 / m), means, covs)

    @classmethod
    def random(
        cls,
        dim: int,
        num_modes: int = 8,
        seed: int = 0,
        *,
        mean_scale: float = 0.5,
        std_range: tuple[float, float] = (0.05, 0.3),
        min_separation: float = 1.0,
    ) -> GaussianMixture:
        """A random anisotropic mixture in ``dim`` dimensions, deterministic given ``seed``.

        1. means ``mu_i ~ N(0, mean_scale^2 I)``, redrawn until every pair is at least
           ``min_separation`` apart (typical distance ``mean_scale * sqrt(2 dim)``);
        2. covariances ``S_i = Q_i diag(s_i^2) Q_i^T`` with a random rotation ``Q_i`` and standard
           deviations ``s_i`` log-uniform in ``std_range``: elongated, differently oriented
           components, well separated when clean and overlapping once ``sqrt(1 - a)`` is
           comparable to the separation;
        3. weights ``0.5 / m + 0.5 * Dirichlet(4)``: unequal but none tiny.
        """
        for name, val in (("dim", dim), ("num_modes", num_modes)):
            if isinstance(val, bool) or int(val) != val or val < 1:
                raise ValueError(f"{name} must be a positive integer, got {val!r}")
        lo, hi = (float(v) for v in std_range)
        if not (np.isfinite(lo) and np.isfinite(hi) and 0.0 < lo <= hi):
            raise ValueError(f"std_range must satisfy 0 < low <= high, got {std_range!r}")
        if not np.isfinite(mean_scale) or mean_scale <= 0.0:
            raise ValueError(f"mean_scale must be a positive finite number, got {mean_scale!r}")
        d, m = int(dim), int(num_modes)
        rng = np.random.default_rng(seed)
        # 1. separated means (rejection; bounded number of tries)
        for _ in range(1000):
            means = rng.normal(scale=mean_scale, size=(m, d))
            gaps = np.linalg.norm(means[:, None, :] - means[None, :, :], axis=-1)
            if m == 1 or gaps[np.triu_indices(m, 1)].min() >= min_separation:
                break
        else:
            raise ValueError(
                f"could not place {m} means at least min_separation = {min_separation!r} apart "
                f"with mean_scale = {mean_scale!r} in {d} dimensions; lower min_separation"
            )
        # 2. anisotropic, randomly rotated covariances
        covs = np.empty((m, d, d))
        for i in range(m):
            q, r = np.linalg.qr(rng.normal(size=(d, d)))
            q = q * np.sign(np.diag(r))  # Haar-distributed rotation
            stds = np.exp(rng.uniform(np.log(lo), np.log(hi), size=d))
            covs[i] = (q * stds**2) @ q.T
        # 3. weights
        weights = 0.5 / m + 0.5 * rng.dirichlet(np.full(m, 4.0))
        return cls(weights / weights.sum(), means, covs)

    # ----------------------------------------------------------------- basic properties
    @property
    def dim(self) -> int:
        """``d``, the data dimension."""
        return int(self.means.shape[1])

    @property
    def num_modes(self) -> int:
        """``m``, the number of components."""
        return int(self.weights.size)

    def mean(self) -> FloatArray:
        """Exact mean ``sum_i pi_i mu_i``."""
        return self.weights @ self.means

    def covariance(self) -> FloatArray:
        """Exact covariance ``sum_i pi_i (S_i + mu_i mu_i^T) - mean mean^T``."""
        mean = self.mean()
        second = np.einsum("i,ijk->jk", self.weights, self.covs)
        second += np.einsum("i,ij,ik->jk", self.weights, self.means, self.means)
        cov = second - np.outer(mean, mean)
        return 0.5 * (cov + cov.T)

    def noisy(self, alpha_bar: float) -> GaussianMixture:
        """The noisy marginal ``p_a = sum_i pi_i N(sqrt(a) mu_i, a S_i + (1 - a) I)`` (T1)."""
        a = _check_level(alpha_bar)
        covs = a * self.covs + (1.0 - a) * np.eye(self.dim)
        return GaussianMixture(self.weights, math.sqrt(a) * self.means, covs)

    # ----------------------------------------------------------------- sampling
    def sample(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Draw ``n`` samples: ``(x0 [n, d] float64, component labels [n] int64)``.

        Labels come from ``torch.multinomial(weights)``, then ``x0 = mu_i + L_i z`` with
        ``L_i`` the Cholesky factor of ``S_i`` and ``z ~ N(0, I)``; both draws use ``generator``.
        """
        if isinstance(n, bool) or int(n) != n or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        n = int(n)
        t = self._torch
        labels = torch.multinomial(t["log_weights"].exp(), n, replacement=True, generator=generator)
        z = torch.randn((n, self.dim), generator=generator, dtype=torch.float64)
        x0 = t["means"][labels] + torch.einsum("nij,nj->ni", t["chol"][labels], z)
        return x0, labels

    # ----------------------------------------------------------------- densities
    def _terms(self, x: Tensor, a: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Per-component quantities at per-row levels ``a`` for rows ``x`` (float64).

        Returns ``log(pi_i N(x; sqrt(a) mu_i, C_i))`` ``[n, m]``, the rotated residuals
        ``z_i = U_i^T (x - sqrt(a) mu_i)`` ``[n, m, d]`` and the eigenvalues of ``C_i``,
        ``a l_i + 1 - a`` ``[n, m, d]`` (T1).
        """
        t = {k: v.to(x.device) for k, v in self._torch.items()}
        # 1. residuals x - sqrt(a) mu_i, rotated into the eigenbasis of S_i
        diff = x[:, None, :] - a.sqrt()[:, None, None] * t["means"][None]
        z = torch.einsum("mdk,nmd->nmk", t["eigvecs"], diff)
        # 2. eigenvalues of C_i = a S_i + (1 - a) I
        lam = a[:, None, None] * t["eigvals"][None] + (1.0 - a)[:, None, None]
        # 3. log pi_i + log N(x; sqrt(a) mu_i, C_i)
        quad = (z * z / lam).sum(-1)
        log_det = lam.log().sum(-1)
        log_joint = t["log_weights"][None] - 0.5 * (quad + log_det + self.dim * _LOG_2PI)
        return log_joint, z, lam

    def _rows(
        self, x: Tensor | ArrayLike, alpha_bar: float | ArrayLike | Tensor
    ) -> tuple[Tensor, Tensor]:
        xt = _as_float64_tensor(x, "x")
        if xt.ndim != 2 or xt.shape[1] != self.dim:
            raise ValueError(f"x must have shape [n, d={self.dim}], got {tuple(xt.shape)}")
        a = _as_float64_tensor(alpha_bar, "alpha_bar").to(xt.device)
        if a.ndim == 0:
            a = a.expand(xt.shape[0])
        a = a.reshape(-1)
        if a.shape[0] != xt.shape[0]:
            raise ValueError(
                f"alpha_bar must be a scalar or have one value per row ({xt.shape[0]}), "
                f"got {a.shape[0]} values"
            )
        bad = ~torch.isfinite(a) | (a < 0.0) | (a > 1.0)
        if bool(bad.any()):
            i = int(torch.nonzero(bad)[0, 0])
            raise ValueError(f"alpha_bar[{i}] = {float(a[i])!r} is outside [0, 1]")
        return xt, a

    def _chunk_size(self) -> int:
        return max(1, _CHUNK_ELEMENTS // max(1, self.num_modes * self.dim))

    def log_prob(self, x: Tensor | ArrayLike) -> Tensor:
        """Exact log-density ``log sum_i pi_i N(x; mu_i, S_i)`` of rows ``x`` ``[n, d]`` (float64).

        Differentiable with torch autograd (log-sum-exp over components).
        """
        xt, a = self._rows(x, 1.0)
        c = self._chunk_size()
        parts = [
            torch.logsumexp(self._terms(xt[s : s + c], a[s : s + c])[0], dim=1)
            for s in range(0, xt.shape[0], c)
        ]
        return torch.cat(parts) if parts else xt.new_zeros(0)

    def responsibilities(
        self, x: Tensor | ArrayLike, alpha_bar: float | ArrayLike | Tensor = 1.0
    ) -> Tensor:
        """Posterior component probabilities ``r_i(x)`` under ``p_a`` (T1), ``[n, m]`` float64."""
        xt, a = self._rows(x, alpha_bar)
        c = self._chunk_size()
        parts = [
            torch.softmax(self._terms(xt[s : s + c], a[s : s + c])[0], dim=1)
            for s in range(0, xt.shape[0], c)
        ]
        return torch.cat(parts) if parts else xt.new_zeros((0, self.num_modes))

    def optimal_eps(self, x: Tensor | ArrayLike, alpha_bar: float | ArrayLike | Tensor) -> Tensor:
        """The optimal noise predictor ``eps*(x) = E[eps | x_t = x]`` at ``alpha_bar`` (T2).

        ``alpha_bar`` is a scalar or one level per row. Batched, float64; the responsibilities use
        log-sum-exp (softmax), so rows far from every mode (``|x| = 1e3``) stay finite.
        """
        xt, a = self._rows(x, alpha_bar)
        c = self._chunk_size()
        parts = []
        for s in range(0, xt.shape[0], c):
            parts.append(self._optimal_eps_chunk(xt[s : s + c], a[s : s + c])[0])
        return torch.cat(parts) if parts else xt.new_zeros((0, self.dim))

    def _optimal_eps_chunk(self, x: Tensor, a: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """eps* of a chunk, plus ``r`` [n, m], the per-component means ``m_i`` in each eigenbasis
        (``sqrt(1 - a) C_i^{-1}(x - sqrt(a) mu_i)``, rotated) [n, m, d] and ``lam`` [n, m, d]."""
        log_joint, z, lam = self._terms(x, a)
        # 1. responsibilities r_i(x) by log-sum-exp
        r = torch.softmax(log_joint, dim=1)
        # 2. m_i = sqrt(1 - a) C_i^{-1} (x - sqrt(a) mu_i), still in the eigenbasis of S_i
        m_rot = (1.0 - a).sqrt()[:, None, None] * z / lam
        # 3. eps* = sum_i r_i U_i m_i   (T2)
        eigvecs = self._torch["eigvecs"].to(x.device)
        eps = torch.einsum("nm,mdk,nmk->nd", r, eigvecs, m_rot)
        return eps, r, m_rot, lam

    def optimal_eps_variance(
        self,
        alpha_bar: float | ArrayLike,
        n: int,
        generator: torch.Generator,
    ) -> SpreadEstimate:
        """Monte-Carlo estimate of the irreducible spread ``E||eps - eps*(x_t)||^2 / d`` per level.

        This is the MSE of the *optimal* predictor: the part of a profiled MSE no model can remove
        (the design page, "the profiled MSE mixes the irreducible spread ... with the model's own
        error"). For each level, draw ``n`` pairs ``x_t = sqrt(a) x_0 + sqrt(1 - a) eps`` and
        average the exact conditional expectation (T3) over ``x_t`` (Rao-Blackwellised: lower
        variance than averaging ``||eps - eps*||^2`` itself). ``sem`` is the standard error.
        """
        levels = np.atleast_1d(np.asarray(alpha_bar, dtype=np.float64))
        if levels.ndim != 1:
            raise ValueError(f"alpha_bar must be a scalar or 1-D, got shape {levels.shape}")
        for i, lv in enumerate(levels):
            _check_level(float(lv), f"alpha_bar[{i}]")
        if isinstance(n, bool) or int(n) != n or n < 2:
            raise ValueError(f"n must be an integer >= 2, got {n!r}")
        n = int(n)
        values, sems = np.empty(levels.size), np.empty(levels.size)
        c = self._chunk_size()
        for j, lv in enumerate(levels):
            x0, _ = self.sample(n, generator)
            eps = torch.randn(x0.shape, generator=generator, dtype=torch.float64)
            x_t = math.sqrt(lv) * x0 + math.sqrt(1.0 - lv) * eps
            per_row = []
            for s in range(0, n, c):
                xs = x_t[s : s + c]
                a = torch.full((xs.shape[0],), lv, dtype=torch.float64)
                eps_star, r, m_rot, lam = self._optimal_eps_chunk(xs, a)
                # tr Cov(eps | x_t, i) = tr(I - (1 - a) C_i^{-1}) = sum_k a l_ik / lam_ik
                within = (a[:, None, None] * self._torch["eigvals"][None] / lam).sum(-1)
                # ||m_i - eps*||^2, rotating eps* into each eigenbasis (U_i orthogonal)
                eps_rot = torch.einsum("mdk,nd->nmk", self._torch["eigvecs"], eps_star)
                between = ((m_rot - eps_rot) ** 2).sum(-1)
                per_row.append((r * (within + between)).sum(1) / self.dim)  # (T3)
            v = torch.cat(per_row).numpy()
            values[j] = float(v.mean())
            sems[j] = float(v.std(ddof=1) / math.sqrt(n))
        return SpreadEstimate(alpha_bar=levels, mse=values, sem=sems, n=n)

    # ----------------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, list[Any]]:
        """JSON-ready parameters (``repr`` of a float round-trips, so no bit is lost)."""
        return {
            "weights": self.weights.tolist(),
            "means": self.means.tolist(),
            "covs": self.covs.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GaussianMixture:
        missing = [k for k in ("weights", "means", "covs") if k not in data]
        if missing:
            raise ValueError(f"a mixture record needs {missing}, got keys {sorted(data)}")
        return cls(np.asarray(data["weights"]), np.asarray(data["means"]), np.asarray(data["covs"]))

    def __repr__(self) -> str:
        return f"GaussianMixture(num_modes={self.num_modes}, dim={self.dim})"


def _check_level(alpha_bar: float, name: str = "alpha_bar") -> float:
    try:
        a = float(alpha_bar)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a number, got {alpha_bar!r}") from exc
    if not np.isfinite(a) or not 0.0 <= a <= 1.0:
        raise ValueError(f"{name} = {alpha_bar!r} is outside [0, 1]")
    return a


@dataclass(frozen=True, eq=False)
class SpreadEstimate:
    """Irreducible spread ``E||eps - eps*(x_t)||^2 / d`` per level, with its standard error."""

    alpha_bar: FloatArray
    mse: FloatArray
    sem: FloatArray
    n: int

    def __post_init__(self) -> None:
        for name in ("alpha_bar", "mse", "sem"):
            object.__setattr__(self, name, frozen_array(getattr(self, name)))


# ===================================================================== models
def _alpha_bar_of_t(schedule: NoiseSchedule, t: Tensor, batch: int) -> FloatArray:
    """Per-row ``alpha_bar`` of fractional training timesteps ``t`` (scalar or ``[B]``)."""
    t_np = np.asarray(t.detach().to("cpu", torch.float64).numpy(), dtype=np.float64).reshape(-1)
    if t_np.size == 1:
        t_np = np.full(batch, t_np[0])
    if t_np.size != batch:
        raise ValueError(
            f"t must be a scalar or have one timestep per row ({batch}), got {t_np.size}"
        )
    return schedule.alpha_bar(t_np)


class OptimalEpsModel:
    """The oracle :class:`~vrg_analysis.models.EpsModel` of a Gaussian mixture: ``eps*`` (T2).

    ``model(x, t)`` maps the fractional training timesteps ``t`` to levels with
    ``schedule.alpha_bar`` and returns ``mixture.optimal_eps`` computed in float64, cast to
    ``x``'s dtype and device.
    """

    def __init__(self, mixture: GaussianMixture, schedule: NoiseSchedule) -> None:
        if not isinstance(mixture, GaussianMixture):
            raise TypeError(f"mixture must be a GaussianMixture, got {type(mixture).__name__}")
        if not isinstance(schedule, NoiseSchedule):
            raise TypeError(f"schedule must be a NoiseSchedule, got {type(schedule).__name__}")
        self.mixture = mixture
        self.schedule = schedule

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        if x.ndim != 2 or x.shape[1] != self.mixture.dim:
            raise ValueError(f"x must have shape [B, d={self.mixture.dim}], got {tuple(x.shape)}")
        a = _alpha_bar_of_t(self.schedule, t, x.shape[0])  # 1. t -> alpha_bar(t)
        a_t = torch.as_tensor(a, dtype=torch.float64, device=x.device)
        eps = self.mixture.optimal_eps(x.detach().to(torch.float64), a_t)  # 2. eps* (T2)
        return eps.to(x.dtype)

    @property
    def identity(self) -> str:
        """The mixture's parameters and the schedule: all ``eps*`` depends on."""
        return identity_of("OptimalEpsModel", self.mixture.to_dict(), self.schedule.to_dict())

    def __repr__(self) -> str:
        return f"OptimalEpsModel({self.mixture!r}, schedule={self.schedule.name!r})"


StdSpec = float | Callable[[FloatArray], ArrayLike]


class EmpiricalOptimalEpsModel:
    """The optimal noise predictor of an *empirical* data set (the training-loss minimiser).

    For data ``x0_1 .. x0_N`` taken as equally weighted points, ``x_t = sqrt(a) x0 + sqrt(1-a) eps``
    has the posterior ``p(i | x_t)`` = softmax of ``-||x_t - sqrt(a) x0_i||^2 / (2 (1 - a))`` and

        eps*(x_t) = (x_t - sqrt(a) sum_i p(i | x_t) x0_i) / sqrt(1 - a)                  (E1)

    (the mixture formula T2 with zero component covariances). A model trained on these data
    minimises its error against (E1); it is the best available reference where no analytic
    ``eps*`` exists, with one known limit: at low noise (E1) reproduces training points, which a
    model that generalises does not, so the error against it there includes generalisation.
    Cost per call: ``batch x N`` distances in ``d`` dimensions (chunked by ``chunk_rows``).
    """

    def __init__(
        self,
        data: Tensor,
        schedule: NoiseSchedule,
        *,
        labels: Tensor | None = None,
        null_label: int | None = None,
        chunk_rows: int = 256,
        name: str = "data",
    ) -> None:
        if not isinstance(data, Tensor) or data.ndim < 2 or data.shape[0] < 1:
            raise ValueError("data must be a tensor [N >= 1, ...] of clean samples")
        if not bool(torch.isfinite(data).all()):
            raise ValueError("data contains NaN or infinite values")
        if labels is not None and (labels.ndim != 1 or labels.shape[0] != data.shape[0]):
            raise ValueError(
                f"labels must be one integer per data row ({data.shape[0]}), "
                f"got shape {tuple(labels.shape)}"
            )
        self.data = data.detach().reshape(data.shape[0], -1).to(torch.float64)
        self.labels = None if labels is None else labels.detach().long().cpu()
        self.null_label = None if null_label is None else int(null_label)
        self.sample_shape = tuple(data.shape[1:])
        self.schedule = schedule
        self.chunk_rows = int(chunk_rows)
        self.name = name

    def __call__(
        self,
        x: Tensor,
        t: Tensor,
        y: Tensor | None = None,
        *,
        class_labels: Tensor | None = None,
    ) -> Tensor:
        """(E1) over all data rows; with class labels ``y`` (or diffusers' ``class_labels``), one
        per row of ``x``, and a reference built with ``labels``: over the rows of each row's class.
        ``null_label`` (the "no label" token of classifier-free guidance) means all rows; any
        other label without data rows is an error."""
        if y is not None and class_labels is not None:
            raise ValueError("pass the labels as y or as class_labels, not both")
        y = class_labels if y is None else y
        if tuple(x.shape[1:]) != self.sample_shape:
            raise ValueError(f"x has shape {tuple(x.shape)}; the data are {self.sample_shape}")
        if y is not None and self.labels is None:
            raise ValueError(
                f"{self!r} has no labels: build it with labels= to be the reference of a "
                "class-conditional model"
            )
        a = torch.as_tensor(_alpha_bar_of_t(self.schedule, t, x.shape[0]), dtype=torch.float64)
        data = self.data.to(x.device)
        mask = None
        if y is not None and self.labels is not None:
            y = torch.as_tensor(y).long().reshape(-1).cpu()
            if y.shape[0] != x.shape[0]:
                raise ValueError(f"{y.shape[0]} labels for {x.shape[0]} rows")
            known = torch.isin(y, self.labels)
            null = y == self.null_label if self.null_label is not None else torch.zeros_like(known)
            bad = ~known & ~null
            if bool(bad.any()):
                raise ValueError(
                    f"label {int(y[bad][0])} has no data rows (known labels "
                    f"{sorted(set(self.labels.tolist()))}, null label {self.null_label})"
                )
            # rows of another class get -inf in the softmax; the null label keeps every row
            mask = (self.labels[None, :] != y[:, None]) & known[:, None]
            mask = mask.to(x.device)
        flat = x.detach().reshape(x.shape[0], -1).to(torch.float64)
        out = torch.empty_like(flat)
        for s in range(0, flat.shape[0], self.chunk_rows):
            rows = slice(s, s + self.chunk_rows)
            sa = a[rows].sqrt().to(x.device)[:, None]
            var = (1.0 - a[rows]).to(x.device)[:, None]
            # 1. log p(i | x_t) up to a constant, (E1)
            d2 = (
                (flat[rows] ** 2).sum(1, keepdim=True)
                - 2.0 * sa * (flat[rows] @ data.T)
                + sa**2 * (data**2).sum(1)[None, :]
            )
            logits = -d2 / (2.0 * var)
            if mask is not None:
                logits = logits.masked_fill(mask[rows], -math.inf)
            w = torch.softmax(logits, dim=1)
            # 2. eps* = (x_t - sqrt(a) E[x0 | x_t]) / sqrt(1 - a)
            out[rows] = (flat[rows] - sa * (w @ data)) / var.sqrt()
        return out.reshape(x.shape).to(x.dtype)

    @property
    def identity(self) -> str:
        """The data rows, their labels and the schedule: all (E1) depends on."""
        return identity_of(
            "EmpiricalOptimalEpsModel",
            sha256_array(self.data.numpy()),
            None if self.labels is None else sha256_array(self.labels.numpy()),
            self.null_label,
            self.schedule.to_dict(),
        )

    def __repr__(self) -> str:
        return f"EmpiricalOptimalEpsModel({self.name!r}, N={self.data.shape[0]})"


class PlantedErrorModel:
    """A model with a known error: ``eps_hat = base(x, t) + bias + std(a) * z``.

    ``z ~ N(0, I)`` is i.i.d. across rows and dimensions. Across consecutive *calls* (consecutive
    sampling steps) it follows an AR(1) chain::

        z_k = rho * z_{k-1} + sqrt(1 - rho^2) * n_k,   n_k ~ N(0, I)                    (P1)

    so successive steps' errors have correlation ``rho = step_correlation`` while each ``z_k``
    stays standard normal. The chain's state is kept for one batch shape; a call with another
    shape restarts it (``z = n``). The noise comes from a private ``torch.Generator`` seeded with
    ``seed``; :meth:`reset` restarts it, so call it before each sampling run to make runs
    reproducible and independent of what was called before.

    What a profile measures: with ``base`` the oracle ``eps*`` and ``eps`` the true noise,
    ``eps - eps*`` has mean zero given ``x_t`` and ``z`` is independent of both, so Algorithm 1's
    per-dimension MSE is::

        w(a) = spread(a) + std(a)^2 + mean(bias^2)                                        (P2)

    with ``spread(a)`` the irreducible part (:meth:`GaussianMixture.optimal_eps_variance`) and
    ``std(a)^2 + mean(bias^2)`` the model's own error (:meth:`known_error_variance`).

    Parameters
    ----------
    base:
        Any :class:`~vrg_analysis.models.EpsModel`; its ``schedule`` is reused.
    std:
        A number ``>= 0`` or a callable mapping an ``alpha_bar`` array to standard deviations.
    bias:
        A number or a ``[d]`` vector added to every prediction.
    step_correlation:
        ``rho`` in (P1), ``|rho| < 1``.
    seed:
        Seed of the noise stream.
    df:
        ``None`` for Gaussian ``n_k``; an integer ``> 2`` draws ``n_k`` from Student's t with ``df``
        degrees of freedom scaled to unit variance (``t * sqrt((df - 2) / df)``): a heavy-tailed
        error of the same size, the alternative the Gaussianity audit must detect.
    """

    def __init__(
        self,
        base: EpsModel,
        *,
        std: StdSpec = 0.0,
        bias: float | ArrayLike = 0.0,
        step_correlation: float = 0.0,
        seed: int = 0,
        df: int | None = None,
        identity: str | None = None,
    ) -> None:
        if not callable(base) or not hasattr(base, "schedule"):
            raise TypeError(f"base must be an EpsModel (callable with .schedule), got {base!r}")
        if not callable(std):
            s = float(std)
            if not np.isfinite(s) or s < 0.0:
                raise ValueError(f"std must be a finite number >= 0, got {std!r}")
            std = s
        b = np.asarray(bias, dtype=np.float64)
        if b.ndim > 1:
            raise ValueError(f"bias must be a number or a 1-D vector, got shape {b.shape}")
        bad = np.flatnonzero(~np.isfinite(b.reshape(-1)))
        if bad.size:
            raise ValueError(f"bias must be finite, got {bias!r}")
        rho = float(step_correlation)
        if not np.isfinite(rho) or abs(rho) >= 1.0:
            raise ValueError(f"step_correlation must satisfy |rho| < 1, got {step_correlation!r}")
        if isinstance(seed, bool) or int(seed) != seed:
            raise ValueError(f"seed must be an integer, got {seed!r}")
        if df is not None and (isinstance(df, bool) or int(df) != df or int(df) <= 2):
            raise ValueError(f"df must be an integer > 2 (finite variance) or None, got {df!r}")
        self.df = None if df is None else float(df)
        self._identity = identity
        self.base = base
        self.schedule: NoiseSchedule = base.schedule
        self.std = std
        self.bias: FloatArray = frozen_array(b)
        self.step_correlation = rho
        self.seed = int(seed)
        self._generator = torch.Generator()
        self._state: Tensor | None = None
        self.reset()

    @property
    def identity(self) -> str | None:
        """The base model's identity and every parameter of the planted error; ``None`` when
        ``std`` is a function that declares no ``identity`` and none was given (then a result
        made with this model cannot be keyed: pass ``identity=``)."""
        if self._identity is not None:
            return self._identity
        base = model_identity(self.base)
        std = self.std if not callable(self.std) else model_identity(self.std)
        if base is None or std is None:
            return None
        return identity_of(
            "PlantedErrorModel",
            base,
            std,
            self.bias.tolist(),
            self.step_correlation,
            self.seed,
            self.df,
        )

    # ----------------------------------------------------------------- noise stream
    def reset(self, seed: int | None = None) -> None:
        """Restart the noise stream at ``seed`` (default: the constructor's) and clear (P1)."""
        s = self.seed if seed is None else seed
        if isinstance(s, bool) or int(s) != s:
            raise ValueError(f"seed must be an integer, got {seed!r}")
        self._generator.manual_seed(int(s))
        self._state = None

    def _next_noise(self, shape: torch.Size) -> Tensor:
        # (P1): fresh draw, then the AR(1) recursion if the previous call had the same shape
        fresh = torch.randn(shape, generator=self._generator, dtype=torch.float64)
        if self.df is not None:  # Student's t = N / sqrt(chi2_df / df), scaled to unit variance
            df = int(self.df)
            normals = torch.randn((df, *shape), generator=self._generator, dtype=torch.float64)
            chi2 = normals.pow(2).sum(dim=0)  # chi-square with df degrees of freedom
            fresh = fresh / torch.sqrt(chi2 / df) * math.sqrt((df - 2) / df)
        rho = self.step_correlation
        if self._state is not None and self._state.shape == shape and rho != 0.0:
            z = rho * self._state + math.sqrt(1.0 - rho * rho) * fresh
        else:
            z = fresh
        self._state = z
        return z

    # ----------------------------------------------------------------- error sizes
    def std_at(self, alpha_bar: ArrayLike) -> FloatArray:
        """``std(a)`` at the given levels, validated (finite, ``>= 0``)."""
        a = np.asarray(alpha_bar, dtype=np.float64)
        if callable(self.std):
            s = np.broadcast_to(np.asarray(self.std(a), dtype=np.float64), a.shape).copy()
        else:
            s = np.full(a.shape, self.std)
        flat = s.reshape(-1)
        bad = np.flatnonzero(~np.isfinite(flat) | (flat < 0.0))
        if bad.size:
            i = int(bad[0])
            raise ValueError(
                f"std({float(a.reshape(-1)[i])!r}) = {float(flat[i])!r}: "
                "the planted std must be finite and >= 0"
            )
        return s

    def known_error_variance(self, alpha_bar: ArrayLike) -> FloatArray:
        """The model's own per-dimension error ``std(a)^2 + mean(bias^2)`` (P2)."""
        return self.std_at(alpha_bar) ** 2 + float(np.mean(self.bias**2))

    # ----------------------------------------------------------------- the model
    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        base = self.base(x, t)  # 1. eps of the base model
        a = _alpha_bar_of_t(self.schedule, t, x.shape[0])
        std = torch.as_tensor(self.std_at(a), dtype=torch.float64)
        if self.bias.ndim == 1 and (x.ndim != 2 or x.shape[1] != self.bias.size):
            raise ValueError(f"bias has {self.bias.size} entries but x has shape {tuple(x.shape)}")
        z = self._next_noise(x.shape)  # 2. AR(1) noise (P1)
        noise = std.reshape(-1, *([1] * (x.ndim - 1))) * z
        err = noise + torch.tensor(self.bias)  # 3. bias + std(a) z
        return (base.to(torch.float64) + err.to(base.device)).to(x.dtype)

    def __repr__(self) -> str:
        std = "callable" if callable(self.std) else f"{self.std:g}"
        return (
            f"PlantedErrorModel(std={std}, bias_rms={float(np.sqrt(np.mean(self.bias**2))):g}, "
            f"step_correlation={self.step_correlation:g}, seed={self.seed}"
            + ("" if self.df is None else f", df={self.df:g}")
            + ")"
        )


# ===================================================================== reference ODE
def reference_ode_endpoint(
    mixture: GaussianMixture,
    x_T: Tensor | ArrayLike,  # noqa: N803 - the paper's symbol
    alpha_bar_T: float,  # noqa: N803
    *,
    rtol: float = 1e-8,
    atol: float = 1e-8,
    chunk_size: int = 1024,
    alpha_bar_end: float = 1.0,
) -> Tensor:
    """High-accuracy clean endpoint of the probability-flow ODE (T4) started at ``x_T``.

    ``x_T`` ``[n, d]`` is ``x`` at level ``alpha_bar_T``, so ``y_T = x_T / sqrt(alpha_bar_T)``;
    the ODE ``dy/dsigma = eps*(x)`` is integrated from ``sigma_T`` down to ``sigma = 0``, where
    ``y = x`` is the clean sample (returned ``[n, d]`` float64). With ``alpha_bar_end < 1`` the
    solve stops at that level instead and returns ``x = sqrt(alpha_bar_end) y`` there (used to
    measure a sampler's order at its last noisy level).

    Why plain ``sigma``: for a Gaussian mixture the flow is analytic in ``sigma`` on
    ``[0, inf)`` (``C_i = (S_i + sigma^2 I) / (1 + sigma^2)``; for one component
    ``y(sigma) = mu + (S + sigma^2 I)^{1/2} c`` exactly). At large ``sigma`` the solution is nearly
    linear, so an adaptive high-order solver takes a few long steps there and small ones where the
    modes separate; no change of variable or special last step is needed.

    Solver: ``scipy.integrate.solve_ivp`` with DOP853 on chunks of ``chunk_size`` rows. scipy's
    error norm is the RMS over all components of the flattened chunk, which would let one row's
    error grow by ``sqrt(size)``; the tolerances are divided by ``sqrt(size)`` so each row meets
    ``rtol``/``atol`` (in ``y``) on its own.
    """
    from scipy.integrate import solve_ivp

    x = _as_float64_tensor(x_T, "x_T").detach().cpu()
    if x.ndim != 2 or x.shape[1] != mixture.dim:
        raise ValueError(f"x_T must have shape [n, d={mixture.dim}], got {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("x_T contains non-finite values")
    a_t = float(alpha_bar_T)
    if not np.isfinite(a_t) or not 0.0 < a_t < 1.0:
        raise ValueError(f"alpha_bar_T = {alpha_bar_T!r} is outside the open interval (0, 1)")
    a_end = float(alpha_bar_end)
    if not np.isfinite(a_end) or not a_t < a_end <= 1.0:
        raise ValueError(f"alpha_bar_end = {alpha_bar_end!r} must lie in (alpha_bar_T, 1]")
    for name, tol in (("rtol", rtol), ("atol", atol)):
        if not np.isfinite(tol) or tol <= 0.0:
            raise ValueError(f"{name} must be a positive number, got {tol!r}")
    if isinstance(chunk_size, bool) or int(chunk_size) != chunk_size or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")

    d = mixture.dim
    sigma_t = math.sqrt((1.0 - a_t) / a_t)
    sigma_end = math.sqrt((1.0 - a_end) / a_end)
    out = torch.empty_like(x)
    n_eval = 0
    for s in range(0, x.shape[0], int(chunk_size)):
        chunk = x[s : s + int(chunk_size)]
        rows = chunk.shape[0]

        def rhs(sigma: float, y_flat: NDArray[np.float64], rows: int = rows) -> FloatArray:
            # (T4): a = 1 / (1 + sigma^2), x = sqrt(a) y, dy/dsigma = eps*(x)
            a = 1.0 / (1.0 + sigma * sigma)
            y = torch.from_numpy(y_flat.reshape(rows, d))
            eps = mixture.optimal_eps(math.sqrt(a) * y, a)
            return eps.numpy().reshape(-1)

        # 1. y_T = x_T / sqrt(alpha_bar_T)
        y0 = (chunk / math.sqrt(a_t)).numpy().reshape(-1)
        # 2. per-row tolerances (see docstring), kept above what float64 can deliver
        scale = math.sqrt(y0.size)
        sol = solve_ivp(
            rhs,
            (sigma_t, sigma_end),
            y0,
            method="DOP853",
            rtol=max(rtol / scale, 1e-13),
            atol=atol / scale,
        )
        if not sol.success:
            raise RuntimeError(f"reference ODE solve failed on rows {s}..{s + rows}: {sol.message}")
        n_eval += int(sol.nfev)
        # 3. at sigma = 0, y = x: the clean endpoint (else x = sqrt(alpha_bar_end) y)
        y_end = torch.from_numpy(sol.y[:, -1].reshape(rows, d).copy())
        out[s : s + rows] = y_end * math.sqrt(a_end) if a_end < 1.0 else y_end
    log.debug("reference ODE: %d rows, %d right-hand-side evaluations", x.shape[0], n_eval)
    return out
