"""Sampling trajectories: K noise levels in sampling order, and the baselines VRG starts from.

A :class:`Trajectory` holds ``alpha_bar`` in **sampling order**: noisiest first, strictly
increasing, inside (0, 1). The sampler walks the levels in that order and its last step goes from
the least noisy level to the clean sample (``sigma = 0``). VRG's formulas index the same levels
from the clean end (``a_1`` least noisy, ``a_K`` noisiest, ``a_0 = 1``);
:attr:`Trajectory.alpha_bar_from_clean` gives that order.

The baselines follow DPM-Solver's skip types for a discrete-time model (Lu et al. 2022,
``get_time_steps``): continuous time ``s = (t + 1) / N`` runs from ``s_T = 1`` down to ``s_0 = 1/N``
in K intervals, uniformly in ``s`` (``time_uniform``), in ``sqrt(s)`` (``time_quadratic``) or in
half log-SNR ``lambda_`` (``logsnr_uniform``); the K+1 grid points are mapped through the schedule
and the endpoint ``s_0`` (timestep 0) is dropped, since VRG's last step ends at the clean sample.
``karras`` is EDM's rho-spacing (Karras et al. 2022, eq. 5) in ``sigma``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray

from vrg_analysis._checks import (
    as_float_vector,
    check_open_unit_interval,
    check_strictly_decreasing,
    check_strictly_increasing,
    frozen_array,
)
from vrg_analysis.core.schedules import (
    NoiseSchedule,
    alpha_bar_from_lambda,
    alpha_bar_from_sigma,
    lambda_from_alpha_bar,
    sigma_from_alpha_bar,
)
from vrg_analysis.io import atomic_write_text, read_official_trajectory_values

__all__ = [
    "Trajectory",
    "BASELINES",
    "baseline",
    "time_uniform",
    "time_uniform_offset",
    "time_quadratic",
    "logsnr_uniform",
    "karras",
    "dpm_solver_levels",
    "read_official_trajectory",
]

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class Trajectory:
    """K noise levels in sampling order (noisiest first), validated on construction.

    Parameters
    ----------
    alpha_bar:
        The levels, strictly increasing, each inside (0, 1).
    name:
        A label (``"time_quadratic"``, ``"vrg(time_quadratic)"``, ...) used in tables and plots.
    """

    alpha_bar: FloatArray
    name: str = "custom"

    def __post_init__(self) -> None:
        a = as_float_vector(self.alpha_bar, "alpha_bar")
        check_open_unit_interval(a, "alpha_bar")
        check_strictly_increasing(a, "alpha_bar (sampling order, noisiest first)")
        object.__setattr__(self, "alpha_bar", frozen_array(a))

    @property
    def K(self) -> int:  # noqa: N802 - the paper's symbol
        """Number of levels, which is the number of DDIM steps."""
        return int(self.alpha_bar.size)

    def __len__(self) -> int:
        return self.K

    @property
    def sigma(self) -> FloatArray:
        """``sigma`` at each level, sampling order (decreasing)."""
        return sigma_from_alpha_bar(self.alpha_bar)

    @property
    def lambda_(self) -> FloatArray:
        return lambda_from_alpha_bar(self.alpha_bar)

    @property
    def alpha_bar_from_clean(self) -> FloatArray:
        """``a_1 .. a_K``: least noisy first, VRG's indexing (the design page, CPE)."""
        return self.alpha_bar[::-1].copy()

    @classmethod
    def from_clean_order(cls, alpha_bar: ArrayLike, name: str = "custom") -> Trajectory:
        """Build from levels listed least noisy first (the official files' order).

        Validated in the given order, so an error names the position the caller wrote.
        """
        a = as_float_vector(alpha_bar, "alpha_bar (least noisy first)")
        check_open_unit_interval(a, "alpha_bar (least noisy first)")
        check_strictly_decreasing(a, "alpha_bar", " when listed least noisy first")
        return cls(a[::-1], name=name)

    def timesteps(self, schedule: NoiseSchedule) -> FloatArray:
        """Fractional training timesteps of the levels under ``schedule``."""
        return schedule.t_from_alpha_bar(self.alpha_bar)

    def renamed(self, name: str) -> Trajectory:
        return Trajectory(self.alpha_bar, name=name)

    # ----------------------------------------------------------------- JSON
    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "alpha_bar": [float(v) for v in self.alpha_bar]}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Trajectory:
        if not isinstance(data, dict) or "alpha_bar" not in data:
            raise ValueError(f"a trajectory record needs an 'alpha_bar' list, got {data!r}")
        return cls(data["alpha_bar"], name=str(data.get("name", "custom")))  # type: ignore[arg-type]

    def to_json(self) -> str:
        # repr() of a float round-trips exactly, so JSON keeps every bit.
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> Trajectory:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"trajectory JSON is malformed: {exc}") from exc
        return cls.from_dict(data)

    def save(self, path: str | Path) -> Path:
        """Write JSON atomically (temporary file, then rename)."""
        return atomic_write_text(Path(path), self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Trajectory:
        return cls.from_json(Path(path).read_text())

    def __repr__(self) -> str:
        a = self.alpha_bar
        return f"Trajectory(name={self.name!r}, K={self.K}, alpha_bar=[{a[0]:.4g} .. {a[-1]:.4g}])"


# --------------------------------------------------------------------- baselines
def _check_steps(num_steps: int) -> int:
    if isinstance(num_steps, bool) or int(num_steps) != num_steps or int(num_steps) < 1:
        raise ValueError(f"num_steps must be a positive integer, got {num_steps!r}")
    return int(num_steps)


def _from_continuous_time(schedule: NoiseSchedule, s: FloatArray, name: str) -> Trajectory:
    """Map DPM-Solver's continuous time ``s = (t + 1) / N`` to levels, dropping the ``s_0`` end."""
    n = schedule.num_timesteps
    t = np.clip(s * n - 1.0, 0.0, schedule.t_max)
    return Trajectory(schedule.alpha_bar(t[:-1]), name=name)


def time_uniform(schedule: NoiseSchedule, num_steps: int) -> Trajectory:
    """K levels uniform in continuous time from ``s_T = 1`` to ``s_0 = 1/N`` (excluded)."""
    k = _check_steps(num_steps)
    n = schedule.num_timesteps
    return _from_continuous_time(schedule, np.linspace(1.0, 1.0 / n, k + 1), "time_uniform")


def time_uniform_offset(schedule: NoiseSchedule, num_steps: int) -> Trajectory:
    """K levels at the centres of K equal blocks of the N training timesteps, on the integer grid:
    ``t_k = floor((k + 1/2) N / K) - 1`` for ``k = K-1 .. 0`` (N = 1000, K = 10: t = 949, 849, ...,
    49), i.e. the time-uniform grid shifted by half a step towards less noise.

    The paper's uniform K = 10 baseline CPE, 0.327 (its published check of the optimiser, Sec. 4),
    belongs to this trajectory: on the official CIFAR-10 profile it gives 0.32715, while the
    official time-uniform file (:func:`time_uniform`, which starts at t = 999) gives 0.430. Needs
    ``K <= N``.
    """
    k = _check_steps(num_steps)
    n = schedule.num_timesteps
    if k > n:
        raise ValueError(f"time_uniform_offset needs num_steps <= {n} timesteps, got {k}")
    t = np.floor((np.arange(k - 1, -1, -1) + 0.5) * n / k) - 1.0
    return Trajectory(
        schedule.alpha_bar(np.clip(t, 0.0, schedule.t_max)), name="time_uniform_offset"
    )


def time_quadratic(schedule: NoiseSchedule, num_steps: int) -> Trajectory:
    """K levels uniform in ``sqrt(s)`` (DPM-Solver's ``time_quadratic``, t_order = 2)."""
    k = _check_steps(num_steps)
    n = schedule.num_timesteps
    s = np.linspace(1.0, np.sqrt(1.0 / n), k + 1) ** 2
    return _from_continuous_time(schedule, s, "time_quadratic")


def logsnr_uniform(schedule: NoiseSchedule, num_steps: int) -> Trajectory:
    """K levels uniform in half log-SNR between the schedule's ends (DPM-Solver's ``logSNR``)."""
    k = _check_steps(num_steps)
    lam_t = float(lambda_from_alpha_bar(schedule.alpha_bar_min))
    lam_0 = float(lambda_from_alpha_bar(schedule.alpha_bar_max))
    lam = np.linspace(lam_t, lam_0, k + 1)
    return Trajectory(alpha_bar_from_lambda(lam[:-1]), name="logsnr_uniform")


def karras(
    schedule: NoiseSchedule,
    num_steps: int,
    rho: float = 7.0,
    sigma_min: float | None = None,
    sigma_max: float | None = None,
) -> Trajectory:
    """EDM's levels (Karras et al. 2022, eq. 5): ``sigma_i`` uniform in ``sigma^(1/rho)``.

    ``sigma_min`` / ``sigma_max`` default to the schedule's ends; all K levels are sampling steps
    (the final step to ``sigma = 0`` follows the last one). Unlike the DPM-Solver baselines, whose
    grid endpoint at timestep 0 is dropped, EDM's ``sigma_min`` (here the timestep-0 level) is a
    sampling step, as in EDM.
    """
    k = _check_steps(num_steps)
    if not np.isfinite(rho) or rho <= 0:
        raise ValueError(f"rho must be a positive number, got {rho!r}")
    s_min = float(sigma_from_alpha_bar(schedule.alpha_bar_max)) if sigma_min is None else sigma_min
    s_max = float(sigma_from_alpha_bar(schedule.alpha_bar_min)) if sigma_max is None else sigma_max
    if not 0 < s_min < s_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got {s_min!r} and {s_max!r}")
    ramp = np.linspace(0.0, 1.0, k) if k > 1 else np.zeros(1)
    inv = 1.0 / rho
    sig = (s_max**inv + ramp * (s_min**inv - s_max**inv)) ** rho
    return Trajectory(alpha_bar_from_sigma(sig), name="karras")


BASELINES: dict[str, Callable[[NoiseSchedule, int], Trajectory]] = {
    "time_uniform": time_uniform,
    "time_quadratic": time_quadratic,
    "logsnr_uniform": logsnr_uniform,
    "karras": karras,
    "time_uniform_offset": time_uniform_offset,
}


def baseline(name: str, schedule: NoiseSchedule, num_steps: int) -> Trajectory:
    """A baseline trajectory by name: one of :data:`BASELINES`."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; expected one of {sorted(BASELINES)}")
    return BASELINES[name](schedule, num_steps)


def _singlestep_plan(num_steps: int, order: int) -> list[int]:
    """DPM-Solver's outer-step orders for ``num_steps`` model calls (Lu et al. 2022a,
    ``get_orders_and_timesteps_for_singlestep_solver``)."""
    n = num_steps
    if order == 3:
        k = n // 3 + 1
        if n % 3 == 0:
            return [3] * (k - 2) + [2, 1]
        return [3] * (k - 1) + ([1] if n % 3 == 1 else [2])
    if order == 2:
        return [2] * (n // 2) if n % 2 == 0 else [2] * (n // 2) + [1]
    return [1] * n


def dpm_solver_levels(
    schedule: NoiseSchedule, num_steps: int, order: int, skip_type: str = "logsnr_uniform"
) -> Trajectory:
    """Every level at which DPM-Solver's singlestep solver of ``order`` calls the model, for a
    budget of ``num_steps`` calls: K = ``num_steps`` levels, one per model call.

    ``time_uniform`` / ``time_quadratic``: DPM-Solver evaluates on the ``num_steps``-step grid,
    so this is :func:`time_uniform` / :func:`time_quadratic`. ``logsnr_uniform``: outer steps
    uniform in ``lambda_`` with the orders of DPM-Solver's plan (order 3 and 10 calls:
    ``[3, 3, 3, 1]``), and inside an outer step of order ``p`` the intermediate levels at
    ``lambda_s + h j / p`` (DPM-Solver's ``r1 = 1/2``; ``r1 = 1/3, r2 = 2/3``). These are the
    levels of the official VRG trajectory files. :func:`vrg_analysis.samplers.sample_dpm_solver`
    reads its intermediate levels from a trajectory; its default groups end with a first-order
    step into the clean sample, so they match this plan when ``num_steps = order * m + 1``
    (e.g. 10 calls at order 3); otherwise pass the plan's groups as ``orders=``, ending in 1.
    """
    k = _check_steps(num_steps)
    if order not in (1, 2, 3):
        raise ValueError(f"unknown DPM-Solver order {order!r}; expected 1, 2 or 3")
    if skip_type in ("time_uniform", "time_quadratic"):
        return BASELINES[skip_type](schedule, k)
    if skip_type != "logsnr_uniform":
        raise ValueError(
            f"unknown skip_type {skip_type!r}; expected 'logsnr_uniform', 'time_uniform' or "
            "'time_quadratic'"
        )
    plan = _singlestep_plan(k, order)
    lam_t = float(lambda_from_alpha_bar(schedule.alpha_bar_min))
    lam_0 = float(lambda_from_alpha_bar(schedule.alpha_bar_max))
    outer = np.linspace(lam_t, lam_0, len(plan) + 1)
    lam = [
        outer[i] + (outer[i + 1] - outer[i]) * j / p for i, p in enumerate(plan) for j in range(p)
    ]
    return Trajectory(alpha_bar_from_lambda(np.array(lam)), name=f"dpm_solver_{order}_logsnr")


def read_official_trajectory(
    path: str | Path, name: str | None = None, *, first_is_t0: bool | None = None
) -> Trajectory:
    """Read an official VRG / DPM-Solver trajectory file (alpha_bar, least noisy first).

    The DPM-Solver files start with the value of timestep 0, which is not a sampling step and is
    dropped; the optimiser's detailed output lists steps only. A file of bare values without a
    ``steps`` header is refused unless ``first_is_t0`` says whether its first value is that
    timestep-0 entry (:func:`~vrg_analysis.io.read_official_trajectory_values`).
    """
    values, has_t0, linenos = read_official_trajectory_values(path, first_is_t0)
    if has_t0:
        values, linenos = values[1:], linenos[1:]
    if values.size < 1:
        raise ValueError(f"{path}: holds no sampling step after the timestep-0 value")
    for v, line in zip(values, linenos, strict=True):
        if not 0.0 < v < 1.0:
            raise ValueError(
                f"{path}:{line}: alpha_bar = {float(v)!r} is outside the open interval (0, 1)"
            )
    bad = np.flatnonzero(np.diff(values) >= 0.0)
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"{path}:{linenos[i + 1]}: alpha_bar = {float(values[i + 1])!r} is not below the "
            f"previous line's {float(values[i])!r} (levels are listed least noisy first, "
            "strictly decreasing)"
        )
    return Trajectory.from_clean_order(values, name=name or Path(path).stem)
