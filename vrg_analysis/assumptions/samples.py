"""Error samples the audits read: ``delta = eps_hat - reference`` at a set of noise levels.

:class:`ErrorSample` holds ``errors[L, n, d]``: for each of ``L`` levels, ``n`` independent
samples of the ``d``-dimensional error (images are flattened). What ``reference`` is matters and
is recorded: the true noise ``eps`` on training data (the profiled error of Algorithm 1, which
includes the irreducible spread of ``eps`` given ``x_t``), or the exact predictor ``eps*`` of an
analytic testbed (the model's own error). Along a sampler's path, ``errors[k]`` is step ``k`` of
``n`` trajectories, so the same row index links the steps of one trajectory.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from torch import Tensor

from vrg_analysis._checks import frozen_array
from vrg_analysis.core.trajectories import Trajectory
from vrg_analysis.models import EpsModel, checked_eps, timestep_tensors
from vrg_analysis.samplers import get_sampler
from vrg_analysis.samplers.core import StepRecord

__all__ = ["ErrorSample", "errors_on_data", "errors_along_path", "check_same_levels"]

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class ErrorSample:
    """``errors[L, n, d]`` at levels ``alpha_bar[L]``, with what they were measured against.

    ``paired=True`` means row ``i`` is the same trajectory at every level (errors recorded along
    a sampler's path); the independence audit needs it. ``against_noise=True`` means the errors
    were measured against the true noise ``eps`` (they include its irreducible spread), not
    against a predictor; the transfer audit refuses to compare the two kinds.
    """

    errors: FloatArray
    alpha_bar: FloatArray
    source: str
    reference: str
    paired: bool = False
    against_noise: bool = False  # reference is the true noise eps (error includes the spread)

    def __post_init__(self) -> None:
        e = np.asarray(self.errors, dtype=np.float64)
        if e.ndim == 2:
            e = e[:, :, None]
        if e.ndim != 3:
            raise ValueError(f"errors must have shape [levels, n, d], got {np.shape(self.errors)}")
        a = np.asarray(self.alpha_bar, dtype=np.float64).reshape(-1)
        if a.size != e.shape[0]:
            raise ValueError(f"{a.size} levels given for errors of shape {e.shape} (first axis)")
        bad = np.flatnonzero(~np.isfinite(a) | (a <= 0.0) | (a >= 1.0))
        if bad.size:
            raise ValueError(f"alpha_bar[{int(bad[0])}] = {float(a[bad[0]])!r} is outside (0, 1)")
        finite = np.isfinite(e).all(axis=(1, 2))
        if not finite.all():
            i = int(np.flatnonzero(~finite)[0])
            raise ValueError(
                f"errors at level {i} (alpha_bar = {a[i]:.4g}) contain NaN or infinite values"
            )
        if e.shape[1] < 2:
            raise ValueError(f"need at least 2 samples per level, got n = {e.shape[1]}")
        object.__setattr__(self, "errors", frozen_array(e))
        object.__setattr__(self, "alpha_bar", frozen_array(a))

    @property
    def num_levels(self) -> int:
        return int(self.errors.shape[0])

    @property
    def n(self) -> int:
        return int(self.errors.shape[1])

    @property
    def dim(self) -> int:
        return int(self.errors.shape[2])

    @classmethod
    def from_arrays(
        cls,
        errors: ArrayLike,
        alpha_bar: ArrayLike,
        source: str,
        reference: str,
        paired: bool = False,
        against_noise: bool = False,
    ) -> ErrorSample:
        return cls(
            np.asarray(errors, dtype=np.float64),
            np.asarray(alpha_bar),
            source,
            reference,
            paired,
            against_noise,
        )

    def mse(self) -> FloatArray:
        """Per-level MSE averaged over dimensions: the profile ``w(a)`` of these samples."""
        return np.mean(self.errors**2, axis=(1, 2))

    def level_label(self, i: int) -> str:
        return f"alpha_bar={self.alpha_bar[i]:.4g}"


def check_same_levels(
    a: ArrayLike, b: ArrayLike, first: str, second: str, prefix: str = ""
) -> None:
    """``ValueError`` naming the first position where two level lists (of equal length) differ
    beyond ``rtol = 1e-9``: ``"{first} alpha_bar[i] = .. but {second} alpha_bar[i] = .."``."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    bad = np.flatnonzero(~np.isclose(x, y, rtol=1e-9, atol=0.0))
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"{prefix}{first} alpha_bar[{i}] = {float(x[i])!r} but {second} alpha_bar[{i}] = "
            f"{float(y[i])!r}"
        )


# --------------------------------------------------------------------------- collection
def errors_on_data(
    model: EpsModel,
    data: Tensor,
    alpha_bar: ArrayLike,
    *,
    reference: EpsModel | None = None,
    generator: torch.Generator | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
    source: str = "data",
    batch_size: int = 4096,
    reference_name: str | None = None,
) -> ErrorSample:
    """Errors on ``data`` (rows are clean samples) at each level, one fresh ``eps`` per row:
    ``x_t = sqrt(a) x_0 + sqrt(1 - a) eps`` (DDPM eq. 4), ``delta = eps_hat(x_t) - eps`` (Algorithm
    1's error), or ``eps_hat(x_t) - eps*(x_t)`` when an exact ``reference`` predictor is given (the
    model's own error, without the irreducible spread). ``model_kwargs`` (a class label per row)
    reach both models."""
    levels = np.asarray(alpha_bar, dtype=np.float64).reshape(-1)
    if not isinstance(data, Tensor) or data.ndim < 2 or data.shape[0] < 2:
        raise ValueError("data must be a tensor [n >= 2, ...] of clean samples")
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    kw = dict(model_kwargs or {})
    x0 = data.to(torch.float64) if data.dtype == torch.float64 else data.float()
    out = np.empty((levels.size, x0.shape[0], int(np.prod(x0.shape[1:]))))
    with torch.no_grad():
        for i, a in enumerate(levels):
            t = timestep_tensors(model.schedule, [a], x0)[0]
            for s in range(0, x0.shape[0], batch_size):
                rows = slice(s, s + batch_size)
                part = {
                    k: (v[rows] if isinstance(v, Tensor) and v.ndim else v) for k, v in kw.items()
                }
                eps = torch.randn(x0[rows].shape, generator=gen, dtype=torch.float64).to(x0.dtype)
                x_t = math.sqrt(a) * x0[rows] + math.sqrt(1.0 - a) * eps
                eps_hat = checked_eps(model, x_t, t[rows], **part)
                ref = eps if reference is None else checked_eps(reference, x_t, t[rows], **part)
                out[i, rows] = (eps_hat - ref).reshape(eps.shape[0], -1).double().cpu().numpy()
    if reference is None:
        ref_name = "eps (the true noise)"
    else:
        ref_name = reference_name or "eps* (exact predictor)"
    return ErrorSample(out, levels, source, ref_name, against_noise=reference is None)


def errors_along_path(
    model: EpsModel,
    reference: EpsModel,
    x_T: Tensor,  # noqa: N803 - the paper's symbol
    trajectory: Trajectory,
    *,
    sampler: str = "ddim",
    generator: Any = None,
    model_kwargs: Mapping[str, Any] | None = None,
    reference_name: str = "eps* (exact predictor)",
) -> ErrorSample:
    """Errors ``eps_hat(x_k) - reference(x_k)`` at the states ``x_k`` the sampler visits: row ``i``
    is trajectory ``i`` at every step (``paired=True``). ``reference`` is the best available
    predictor (on an analytic testbed, the exact ``eps*``)."""
    kw = dict(model_kwargs or {})
    rows: list[np.ndarray] = []

    def observe(r: StepRecord) -> None:
        t = timestep_tensors(model.schedule, [r.alpha_bar], r.x)[0]
        ref = checked_eps(reference, r.x, t, **kw)
        rows.append((r.eps_hat - ref).reshape(r.x.shape[0], -1).double().cpu().numpy())

    with torch.no_grad():
        get_sampler(sampler)(
            model, x_T, trajectory, callback=observe, generator=generator, model_kwargs=kw
        )
    return ErrorSample(
        np.stack(rows), trajectory.alpha_bar, f"{sampler} path", reference_name, paired=True
    )
