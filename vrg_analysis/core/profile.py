"""The prediction-error profile ``w(alpha_bar)``: what Algorithm 1 measures and CPE weights.

*Prediction error* at level ``a``: ``delta = eps_hat(x_t, t) - eps`` with
``x_t = sqrt(a) x_0 + sqrt(1 - a) eps`` (the design page). Algorithm 1 draws fresh ``eps`` for every
training sample and timestep and records statistics of ``delta``; the mean squared error averaged
over dimensions is the profile ``w(a)`` that VRG's objective weights each step with.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from vrg_analysis._checks import as_float_vector, frozen_array
from vrg_analysis.core.schedules import NoiseSchedule
from vrg_analysis.core.trajectories import Trajectory
from vrg_analysis.io import atomic_open, read_official_columns, sha256_file

__all__ = ["ErrorProfile", "Outside", "read_official_profile"]

log = logging.getLogger(__name__)
FloatArray = NDArray[np.float64]
Outside = Literal["error", "clamp", "linear"]
_OPTIONAL = ("mean", "variance", "skewness", "kurtosis", "count", "mse_sem", "timesteps")
_NON_NEGATIVE = ("variance", "count", "mse_sem", "timesteps")
# Optional per-level arrays with a second axis: per-dimension statistics [levels, d] and the
# reservoir of raw errors [levels, capacity] (NaN where a level saw fewer elements than capacity).
_OPTIONAL_2D = ("dim_mean", "dim_var", "reservoir")


@dataclass(frozen=True, eq=False)
class ErrorProfile:
    """Prediction-error statistics per noise level, sorted by increasing ``alpha_bar``.

    ``mse`` is ``E[delta^2]`` averaged over dimensions (the profile ``w``); ``mean``, ``variance``,
    ``skewness`` and ``kurtosis`` (excess) describe the pooled elements of ``delta``; ``mse_sem`` is
    the standard error of ``mse`` across samples and ``count`` the number of samples per level.
    Optional statistics are ``None`` where not measured (e.g. the official text format).

    From :func:`profile_prediction_error` also: ``dim_mean`` and ``dim_var`` (shape
    ``[levels, d]``, ``d`` the flattened data dimension) are the mean and (population) variance of
    each coordinate of ``delta`` across samples, and ``reservoir`` (shape ``[levels, capacity]``)
    is a uniform random sample without replacement of the pooled scalar elements of ``delta`` at
    each level, for distribution tests (NaN pads a level that saw fewer elements than capacity).
    """

    alpha_bar: FloatArray
    mse: FloatArray
    mean: FloatArray | None = None
    variance: FloatArray | None = None
    skewness: FloatArray | None = None
    kurtosis: FloatArray | None = None
    count: FloatArray | None = None
    mse_sem: FloatArray | None = None
    timesteps: FloatArray | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    dim_mean: FloatArray | None = None
    dim_var: FloatArray | None = None
    reservoir: FloatArray | None = None

    def __post_init__(self) -> None:
        a = as_float_vector(self.alpha_bar, "profile alpha_bar", min_len=2)
        bad = np.flatnonzero((a < 0.0) | (a >= 1.0))
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"profile alpha_bar[{i}] = {float(a[i])!r} is outside [0, 1)")
        mse = as_float_vector(self.mse, "profile mse", min_len=2)
        if mse.shape != a.shape:
            raise ValueError(f"profile mse has {mse.size} values but alpha_bar has {a.size}")
        neg = np.flatnonzero(mse < 0.0)
        if neg.size:
            i = int(neg[0])
            raise ValueError(f"profile mse[{i}] = {float(mse[i])!r} is negative")
        order = np.argsort(a, kind="stable")
        a = a[order]
        dup = np.flatnonzero(np.diff(a) <= 0.0)
        if dup.size:
            i = int(dup[0])
            raise ValueError(f"profile alpha_bar has the level {float(a[i])!r} twice")
        object.__setattr__(self, "alpha_bar", frozen_array(a))
        object.__setattr__(self, "mse", frozen_array(mse[order]))
        for name in _OPTIONAL:
            v = getattr(self, name)
            if v is None:
                continue
            arr = np.asarray(v, dtype=np.float64)
            if arr.shape != order.shape:
                raise ValueError(f"profile {name} has shape {arr.shape}, expected {order.shape}")
            bad = np.flatnonzero(~np.isfinite(arr))
            if bad.size:
                i = int(bad[0])
                raise ValueError(f"profile {name}[{i}] = {float(arr[i])!r} is not finite")
            if name in _NON_NEGATIVE:
                neg = np.flatnonzero(arr < 0.0)
                if neg.size:
                    i = int(neg[0])
                    raise ValueError(
                        f"profile {name}[{i}] = {float(arr[i])!r} is negative (a {name} is >= 0)"
                    )
            object.__setattr__(self, name, frozen_array(arr[order]))
        if self.timesteps is not None:
            _check_start_near_one(self.alpha_bar, self.timesteps, "profile")
            # alpha_bar must fall as the timestep rises (a schedule's cumulative product)
            by_t = np.argsort(self.timesteps, kind="stable")
            a_t, t_sorted = self.alpha_bar[by_t], self.timesteps[by_t]
            rises = np.flatnonzero(np.diff(a_t) >= 0.0)
            if rises.size:
                i = int(rises[0])
                raise ValueError(
                    f"profile alpha_bar must fall as the timestep rises, but alpha_bar "
                    f"{a_t[i]:.6g} at t = {t_sorted[i]:g} is followed by {a_t[i + 1]:.6g} at "
                    f"t = {t_sorted[i + 1]:g}: columns swapped, or a column that is not alpha_bar"
                )
        for name in _OPTIONAL_2D:
            v = getattr(self, name)
            if v is None:
                continue
            arr = np.asarray(v, dtype=np.float64)
            if arr.ndim != 2 or arr.shape[0] != order.size:
                raise ValueError(
                    f"profile {name} has shape {arr.shape}, expected ({order.size}, n)"
                )
            object.__setattr__(self, name, frozen_array(arr[order]))
        if self.dim_mean is not None and self.dim_var is not None:
            if self.dim_mean.shape != self.dim_var.shape:
                raise ValueError(
                    f"profile dim_mean has shape {self.dim_mean.shape} but dim_var has "
                    f"{self.dim_var.shape}"
                )

    # --------------------------------------------------------------- reading w(a)
    @property
    def alpha_bar_range(self) -> tuple[float, float]:
        return float(self.alpha_bar[0]), float(self.alpha_bar[-1])

    def w(self, alpha_bar: ArrayLike, *, outside: Outside = "error") -> FloatArray:
        """``w(alpha_bar)``: the MSE read by linear interpolation in ``alpha_bar``.

        ``outside`` decides what happens beyond the measured range: ``"error"`` (default) raises
        naming the level, ``"clamp"`` holds the end value, ``"linear"`` extends the end segments
        (what the official implementation does; an extension can fall to 0, which an optimiser
        can exploit, so :func:`~vrg_analysis.optimize.optimize_trajectory` clamps).
        """
        x = np.asarray(alpha_bar, dtype=np.float64)
        lo, hi = self.alpha_bar_range
        flat = x.reshape(-1)
        nan = np.flatnonzero(~np.isfinite(flat))
        if nan.size:
            i = int(nan[0])
            raise ValueError(f"alpha_bar[{i}] = {float(flat[i])!r} is not finite")
        if outside == "error":
            bad = np.flatnonzero((flat < lo) | (flat > hi))
            if bad.size:
                i = int(bad[0])
                raise ValueError(
                    f"the profile does not cover alpha_bar[{i}] = {float(flat[i])!r}: "
                    f"it was measured on [{lo:.6g}, {hi:.6g}]"
                )
        elif outside not in ("clamp", "linear"):
            raise ValueError(f"outside must be 'error', 'clamp' or 'linear', got {outside!r}")
        out = np.interp(x, self.alpha_bar, self.mse)
        if outside == "linear":
            a, m = self.alpha_bar, self.mse
            left_slope = (m[1] - m[0]) / (a[1] - a[0])
            right_slope = (m[-1] - m[-2]) / (a[-1] - a[-2])
            out = np.where(x < lo, m[0] + left_slope * (x - lo), out)
            out = np.where(x > hi, m[-1] + right_slope * (x - hi), out)
            out = np.maximum(out, 0.0)
        return out

    def covers(self, trajectory: Trajectory) -> bool:
        lo, hi = self.alpha_bar_range
        return bool(trajectory.alpha_bar[0] >= lo and trajectory.alpha_bar[-1] <= hi)

    def mse_confidence_interval(self, level: float = 0.95) -> tuple[FloatArray, FloatArray]:
        """Normal-approximation interval of ``mse`` per level from ``mse_sem``."""
        if self.mse_sem is None:
            raise ValueError("this profile has no mse_sem (standard errors were not measured)")
        from scipy.stats import norm

        z = float(norm.ppf(0.5 + level / 2.0))
        return self.mse - z * self.mse_sem, self.mse + z * self.mse_sem

    # --------------------------------------------------------------- persistence
    def save(self, path: str | Path) -> Path:
        """Save arrays and metadata as ``.npz`` atomically (temporary file, then rename)."""
        path = Path(path)
        arrays = {"alpha_bar": self.alpha_bar, "mse": self.mse}
        for name in (*_OPTIONAL, *_OPTIONAL_2D):
            v = getattr(self, name)
            if v is not None:
                arrays[name] = v
        meta = json.dumps(self.metadata, sort_keys=True, default=str)
        with atomic_open(path, "wb") as fh:
            np.savez(fh, metadata_json=np.array(meta), **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> ErrorProfile:
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except Exception as exc:  # noqa: BLE001 - truncated, bit-flipped, empty, not a zip...
            raise ValueError(
                f"{path}: not a readable profile archive ({type(exc).__name__}: {exc})"
            ) from exc
        for key in ("alpha_bar", "mse", "metadata_json"):
            if key not in data:
                raise ValueError(f"{path}: profile archive lacks the array {key!r}")
        unknown = sorted(
            set(data) - {"alpha_bar", "mse", "metadata_json", *_OPTIONAL, *_OPTIONAL_2D}
        )
        if unknown:
            raise ValueError(f"{path}: profile archive has unknown arrays {unknown}")
        try:
            meta = json.loads(str(data.pop("metadata_json")))
            return cls(metadata=meta, **data)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{path}: {exc}") from exc

    def __repr__(self) -> str:
        lo, hi = self.alpha_bar_range
        src = self.metadata.get("model", "?")
        return (
            f"ErrorProfile(levels={self.alpha_bar.size}, alpha_bar=[{lo:.3g}, {hi:.4g}], "
            f"model={src!r})"
        )


def read_official_profile(
    path: str | Path,
    second_column: Literal["alpha_bar", "one_minus_beta"] = "alpha_bar",
    schedule: NoiseSchedule | None = None,
) -> ErrorProfile:
    """Read the official ``ts  alpha_bar  MSE`` text format (e.g. ``MSE_vs_alpha_bar_cifar10.txt``).

    Rows are kept as written, including the official safeguard row (``alpha_bar = 0``, MSE 0),
    which makes ``w`` fall linearly to 0 below the noisiest measured level.

    The LSUN-Bedroom file's second column is ``1 - beta_t``, not alpha_bar, and it lists only some
    timesteps (0..50, then every 10th), so alpha_bar cannot be rebuilt as a product of its rows:
    pass ``second_column="one_minus_beta"`` with the ``schedule`` the model was trained on. The
    column is checked against that schedule's ``1 - beta_t`` (to the files' 6 decimals) and
    alpha_bar is read from the schedule at each ``ts``; the safeguard row keeps alpha_bar 0.
    """
    path = Path(path)
    rows, linenos = read_official_columns(path, 3)
    ts, col, mse = rows[:, 0], rows[:, 1], rows[:, 2]
    bad = np.flatnonzero(np.diff(ts) <= 0)
    if bad.size:
        i = int(bad[0]) + 1
        raise ValueError(
            f"{path}:{linenos[i]}: timesteps must increase, ts {ts[i]:g} follows {ts[i - 1]:g}"
        )
    if second_column == "one_minus_beta":
        alpha_bar = _alpha_bar_from_one_minus_beta(path, ts, col, mse, linenos, schedule)
    elif second_column == "alpha_bar":
        _check_alpha_bar_column(path, ts, col, mse, linenos)
        alpha_bar = col
    else:
        raise ValueError(
            f"second_column must be 'alpha_bar' or 'one_minus_beta', got {second_column!r}"
        )
    # The files round alpha_bar to 6 decimals, so two timesteps near alpha_bar = 4.6e-5 share a
    # level; such ties are merged (mean MSE, first timestep) to keep w(a) a function.
    levels, first, inverse, counts = np.unique(
        alpha_bar, return_index=True, return_inverse=True, return_counts=True
    )
    if levels.size < alpha_bar.size:
        log.info("%s: merged %d tied alpha_bar rows", path.name, alpha_bar.size - levels.size)
        mse = np.bincount(inverse, weights=mse) / counts
        ts, alpha_bar = ts[first], levels
    meta = {
        "source": "official VRG text format",
        "file": path.name,
        "sha256": sha256_file(path),
        "second_column": second_column,
        "schedule": None if schedule is None else schedule.name,
    }
    try:
        return ErrorProfile(alpha_bar=alpha_bar, mse=mse, timesteps=ts, metadata=meta)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc


#: alpha_bar at timestep 0 of every common schedule is above this (linear 0.9999, cosine 0.99996,
#: scaled-linear 0.99915): a profile whose timestep-0 level is lower is reading another column.
MIN_ALPHA_BAR_AT_T0 = 0.99


def _check_start_near_one(alpha_bar: FloatArray, timesteps: FloatArray, where: str) -> None:
    at0 = np.flatnonzero(np.asarray(timesteps) == 0)
    if at0.size and float(alpha_bar[int(at0[0])]) < MIN_ALPHA_BAR_AT_T0:
        raise ValueError(
            f"{where}: alpha_bar at timestep 0 is {float(alpha_bar[int(at0[0])]):.6g}, but a "
            f"diffusion schedule starts near 1 (>= {MIN_ALPHA_BAR_AT_T0}): is the column "
            "alpha_bar (columns swapped?)"
        )


def _check_alpha_bar_column(
    path: Path, ts: FloatArray, col: FloatArray, mse: FloatArray, linenos: NDArray[np.int64]
) -> None:
    """A second column read as alpha_bar must be one: in [0, 1), falling as the timestep rises
    (ties allowed: the files round to 6 decimals), and, when the file reaches the end of a
    schedule (a timestep >= 900), down to the noisy levels near 0. The LSUN-Bedroom file's
    column is ``1 - beta_t`` (all near 1): refused with the option that reads it."""
    rows = ~((col == 0.0) & (mse == 0.0))  # the official safeguard row
    c, t, lines = col[rows], ts[rows], linenos[rows]
    _check_start_near_one(c, t, str(path))
    bad = np.flatnonzero((c < 0.0) | (c >= 1.0))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"{path}:{lines[i]}: alpha_bar = {c[i]!r} is outside [0, 1)")
    rises = np.flatnonzero(np.diff(c) > 0.0)
    if rises.size:
        i = int(rises[0]) + 1
        raise ValueError(
            f"{path}:{lines[i]}: alpha_bar rises from {c[i - 1]:.6g} to {c[i]:.6g} as the "
            f"timestep rises to {t[i]:g}: the second column is not alpha_bar (columns swapped?)"
        )
    if c.size and float(t.max()) >= 900 and float(c.min()) > 0.5:
        raise ValueError(
            f"{path}: the second column stays in [{c.min():.6g}, {c.max():.6g}] up to timestep "
            f"{t.max():g}, so it cannot be alpha_bar (which falls towards 0 at the end of a "
            "schedule): it looks like 1 - beta_t (as in the LSUN-Bedroom file); read it with "
            "second_column='one_minus_beta' and the model's schedule (command line: "
            "--second-column one_minus_beta --schedule linear)"
        )


def _alpha_bar_from_one_minus_beta(
    path: Path,
    ts: FloatArray,
    col: FloatArray,
    mse: FloatArray,
    linenos: NDArray[np.int64],
    schedule: NoiseSchedule | None,
) -> FloatArray:
    if schedule is None:
        raise ValueError(
            f"{path}: a '1 - beta' column needs the schedule the model was trained on "
            "(pass schedule=NoiseSchedule...): the file lists only some timesteps"
        )
    safeguard = (col == 0.0) & (mse == 0.0)
    alpha_bar = np.zeros_like(col)
    a = schedule.alphas_cumprod
    one_minus_beta = np.concatenate([a[:1], a[1:] / a[:-1]])
    for i in np.flatnonzero(~safeguard):
        t = ts[i]
        if t != int(t) or not 0 <= t < schedule.num_timesteps:
            raise ValueError(f"{path}:{linenos[i]}: ts {t:g} is not a timestep of the schedule")
        expected = one_minus_beta[int(t)]
        if abs(col[i] - expected) > 5e-6:
            raise ValueError(
                f"{path}:{linenos[i]}: 1 - beta = {float(col[i])!r} at ts {t:g} does not match the "
                f"{schedule.name} schedule's {expected:.6f}: wrong schedule or wrong column"
            )
        alpha_bar[i] = a[int(t)]
    return alpha_bar
