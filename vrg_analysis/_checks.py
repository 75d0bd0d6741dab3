"""Input validation shared by the public API: every error names the offending value and position."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray


def frozen_array(values: ArrayLike, dtype: type = np.float64) -> NDArray:
    """A read-only copy of ``values`` (default float64): frozen dataclasses keep their arrays."""
    out = np.array(values, dtype=dtype, copy=True)
    out.setflags(write=False)
    return out


def as_float_vector(values: ArrayLike, name: str, *, min_len: int = 1) -> NDArray[np.float64]:
    """Return ``values`` as a 1-D float64 array, or raise naming the first bad entry."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a sequence of numbers, got {values!r}") from exc
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size < min_len:
        raise ValueError(f"{name} needs at least {min_len} value(s), got {arr.size}")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"{name}[{i}] = {float(arr[i])!r} is not finite")
    return arr


def check_open_unit_interval(arr: NDArray[np.float64], name: str) -> None:
    """Raise unless every entry lies strictly inside (0, 1)."""
    bad = np.flatnonzero((arr <= 0.0) | (arr >= 1.0))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"{name}[{i}] = {float(arr[i])!r} is outside the open interval (0, 1)")


def check_strictly_increasing(arr: NDArray[np.float64], name: str) -> None:
    """Raise unless ``arr`` is strictly increasing, naming the first pair that is not."""
    bad = np.flatnonzero(np.diff(arr) <= 0.0)
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"{name} must be strictly increasing: {name}[{i}] = {float(arr[i])!r} "
            f">= {name}[{i + 1}] = {float(arr[i + 1])!r}"
        )


def check_strictly_decreasing(arr: NDArray[np.float64], name: str, context: str = "") -> None:
    """Raise unless ``arr`` is strictly decreasing, naming the first pair that is not."""
    bad = np.flatnonzero(np.diff(arr) >= 0.0)
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"{name} must be strictly decreasing{context}: {name}[{i}] = {float(arr[i])!r} "
            f"<= {name}[{i + 1}] = {float(arr[i + 1])!r}"
        )
