"""Discrete variance-preserving noise schedules and every map between their coordinates.

A discrete VP schedule is the sequence ``alpha_bar[n] = prod_{i<=n} (1 - beta_i)`` for training
timesteps ``n = 0 .. N-1`` (DDPM, Ho et al. 2020, eq. 4). As in dpm-solver's discrete
``NoiseScheduleVP``, ``log alpha_bar`` is interpolated *linearly* between integer timesteps, so a
fractional timestep ``t`` is meaningful and the maps below are exact inverses of one another.

Coordinates (the design page, "Notation"):

* ``alpha_bar``: signal variance, in (0, 1).
* ``sigma = sqrt((1 - alpha_bar) / alpha_bar)``: noise level of ``y = x / sqrt(alpha_bar)``.
* ``lambda_ = -log(sigma)``: half log-SNR.
* ``t``: training timestep as a float in ``[0, N-1]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from vrg_analysis._checks import (
    as_float_vector,
    check_open_unit_interval,
    check_strictly_decreasing,
    frozen_array,
)

__all__ = [
    "NoiseSchedule",
    "SCHEDULE_NAMES",
    "sigma_from_alpha_bar",
    "alpha_bar_from_sigma",
    "lambda_from_alpha_bar",
    "alpha_bar_from_lambda",
]

ScheduleName = Literal["linear", "cosine", "scaled_linear"]
SCHEDULE_NAMES: tuple[str, ...] = ("linear", "cosine", "scaled_linear")

FloatArray = NDArray[np.float64]


def sigma_from_alpha_bar(alpha_bar: ArrayLike) -> FloatArray:
    """``sigma = sqrt((1 - alpha_bar) / alpha_bar)`` (the design page, noise level)."""
    a = np.asarray(alpha_bar, dtype=np.float64)
    return np.sqrt((1.0 - a) / a)


def alpha_bar_from_sigma(sigma: ArrayLike) -> FloatArray:
    """Inverse of :func:`sigma_from_alpha_bar`: ``alpha_bar = 1 / (1 + sigma^2)``."""
    s = np.asarray(sigma, dtype=np.float64)
    return 1.0 / (1.0 + s * s)


def lambda_from_alpha_bar(alpha_bar: ArrayLike) -> FloatArray:
    """Half log-SNR ``lambda_ = 0.5 * (log alpha_bar - log(1 - alpha_bar)) = -log sigma``."""
    a = np.asarray(alpha_bar, dtype=np.float64)
    return 0.5 * (np.log(a) - np.log1p(-a))


def alpha_bar_from_lambda(lambda_: ArrayLike) -> FloatArray:
    """Inverse of :func:`lambda_from_alpha_bar`: ``alpha_bar = sigmoid(2 lambda_)``."""
    lam = np.asarray(lambda_, dtype=np.float64)
    return np.exp(-np.logaddexp(0.0, -2.0 * lam))


@dataclass(frozen=True, eq=False)
class NoiseSchedule:
    """A discrete VP schedule: ``alpha_bar`` at the integer training timesteps ``0 .. N-1``.

    Build one with :meth:`linear`, :meth:`cosine`, :meth:`scaled_linear`, :meth:`from_name` or
    :meth:`from_betas`. All maps accept scalars or arrays and return float64 arrays.
    """

    alphas_cumprod: FloatArray
    name: str = "custom"
    _log_alpha_bar: FloatArray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        a = as_float_vector(self.alphas_cumprod, "alphas_cumprod", min_len=2)
        check_open_unit_interval(a, "alphas_cumprod")
        check_strictly_decreasing(a, "alphas_cumprod", " in t")
        object.__setattr__(self, "alphas_cumprod", frozen_array(a))
        object.__setattr__(self, "_log_alpha_bar", frozen_array(np.log(a)))

    # ----------------------------------------------------------------- constructors
    @classmethod
    def from_betas(cls, betas: ArrayLike, name: str = "custom") -> NoiseSchedule:
        """``alpha_bar[n] = prod_{i<=n} (1 - beta_i)`` (DDPM eq. 4)."""
        b = as_float_vector(betas, "betas", min_len=2)
        check_open_unit_interval(b, "betas")
        return cls(np.cumprod(1.0 - b), name=name)

    @classmethod
    def linear(
        cls, num_timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02
    ) -> NoiseSchedule:
        """DDPM's linear beta schedule (Ho et al. 2020, sec. 4): 1e-4 .. 0.02 over 1000 steps."""
        return cls.from_betas(
            np.linspace(beta_start, beta_end, int(num_timesteps), dtype=np.float64), "linear"
        )

    @classmethod
    def scaled_linear(
        cls, num_timesteps: int = 1000, beta_start: float = 0.00085, beta_end: float = 0.012
    ) -> NoiseSchedule:
        """Stable Diffusion's schedule: linear in ``sqrt(beta)`` (diffusers ``scaled_linear``)."""
        betas = np.linspace(beta_start**0.5, beta_end**0.5, int(num_timesteps)) ** 2
        return cls.from_betas(betas, "scaled_linear")

    @classmethod
    def cosine(
        cls, num_timesteps: int = 1000, s: float = 0.008, max_beta: float = 0.999
    ) -> NoiseSchedule:
        """Nichol & Dhariwal (2021) eq. 17, betas clipped at ``max_beta`` (as diffusers)."""
        n = int(num_timesteps)

        def f(u: FloatArray) -> FloatArray:
            return np.cos((u / n + s) / (1.0 + s) * np.pi / 2.0) ** 2

        steps = np.arange(n, dtype=np.float64)
        betas = np.minimum(1.0 - f(steps + 1.0) / f(steps), max_beta)
        return cls.from_betas(betas, "cosine")

    @classmethod
    def from_name(cls, name: str, num_timesteps: int = 1000) -> NoiseSchedule:
        """One of :data:`SCHEDULE_NAMES` with its standard parameters."""
        makers = {"linear": cls.linear, "cosine": cls.cosine, "scaled_linear": cls.scaled_linear}
        if name not in makers:
            raise ValueError(f"unknown schedule name {name!r}; expected one of {SCHEDULE_NAMES}")
        return makers[name](num_timesteps)

    # ----------------------------------------------------------------- properties
    @property
    def num_timesteps(self) -> int:
        """N, the number of training timesteps."""
        return int(self.alphas_cumprod.size)

    @property
    def t_max(self) -> float:
        """The noisiest training timestep, ``N - 1``."""
        return float(self.num_timesteps - 1)

    @property
    def alpha_bar_min(self) -> float:
        return float(self.alphas_cumprod[-1])

    @property
    def alpha_bar_max(self) -> float:
        return float(self.alphas_cumprod[0])

    # ----------------------------------------------------------------- t -> *
    def _check_t(self, t: ArrayLike) -> FloatArray:
        arr = np.asarray(t, dtype=np.float64)
        flat = arr.reshape(-1)
        bad = np.flatnonzero(~np.isfinite(flat) | (flat < 0.0) | (flat > self.t_max))
        if bad.size:
            i = int(bad[0])
            raise ValueError(
                f"timestep t[{i}] = {float(flat[i])!r} is outside [0, {self.t_max:g}] "
                "of this schedule"
            )
        return arr

    def log_alpha_bar(self, t: ArrayLike) -> FloatArray:
        """``log alpha_bar(t)``, linear between integer timesteps (dpm-solver's discrete VP)."""
        arr = self._check_t(t)
        grid = np.arange(self.num_timesteps, dtype=np.float64)
        return np.interp(arr, grid, self._log_alpha_bar)

    def alpha_bar(self, t: ArrayLike) -> FloatArray:
        """``alpha_bar(t)`` for a (fractional) training timestep."""
        return np.exp(self.log_alpha_bar(t))

    def sigma(self, t: ArrayLike) -> FloatArray:
        return sigma_from_alpha_bar(self.alpha_bar(t))

    def lambda_(self, t: ArrayLike) -> FloatArray:
        return lambda_from_alpha_bar(self.alpha_bar(t))

    # ----------------------------------------------------------------- * -> t
    def t_from_alpha_bar(self, alpha_bar: ArrayLike) -> FloatArray:
        """Inverse of :meth:`alpha_bar`; raises for levels outside the schedule's range."""
        a = np.asarray(alpha_bar, dtype=np.float64)
        flat = a.reshape(-1)
        lo, hi = self.alpha_bar_min, self.alpha_bar_max
        tol = 1e-12
        bad = np.flatnonzero(~np.isfinite(flat) | (flat < lo * (1 - tol)) | (flat > hi * (1 + tol)))
        if bad.size:
            i = int(bad[0])
            raise ValueError(
                f"alpha_bar[{i}] = {float(flat[i])!r} is outside this schedule's range "
                f"[{lo:.6g}, {hi:.6g}]"
            )
        grid = np.arange(self.num_timesteps, dtype=np.float64)
        log_a = np.log(np.clip(a, lo, hi))
        # np.interp needs increasing x: log alpha_bar decreases in t, so flip both.
        return np.interp(log_a, self._log_alpha_bar[::-1], grid[::-1])

    def t_from_sigma(self, sigma: ArrayLike) -> FloatArray:
        return self.t_from_alpha_bar(alpha_bar_from_sigma(sigma))

    def t_from_lambda(self, lambda_: ArrayLike) -> FloatArray:
        return self.t_from_alpha_bar(alpha_bar_from_lambda(lambda_))

    # ----------------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "alphas_cumprod": self.alphas_cumprod.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> NoiseSchedule:
        return cls(np.asarray(data["alphas_cumprod"], dtype=np.float64), name=str(data["name"]))

    def __repr__(self) -> str:
        return (
            f"NoiseSchedule(name={self.name!r}, N={self.num_timesteps}, "
            f"alpha_bar=[{self.alpha_bar_max:.6g} .. {self.alpha_bar_min:.6g}])"
        )
