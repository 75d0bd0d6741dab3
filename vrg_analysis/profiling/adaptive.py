"""Algorithm 1 to a stated precision: sample allocation across timesteps for VRG's objective.

Algorithm 1 as published runs the model on every training row at every timestep. VRG reads the
profile only through

    CPE(trajectory) = sum_k c_k^2 w(a_k)                     (CPE; c_k = sigma_k - sigma_{k-1})

with ``w`` read off the profiled timesteps by linear interpolation in ``alpha_bar``
(:meth:`~vrg_analysis.core.profile.ErrorProfile.w`). So CPE is a *linear functional* of the
profiled values: ``CPE = sum_g beta_g w_g`` over the profiled grid, with ``beta_g`` the
interpolation weights of the trajectory's levels times ``c_k^2`` (:func:`cpe_weights`). Each
``w_g`` is the mean of the per-sample MSE ``m_i = ||delta_i||^2 / d`` over ``n_g`` independent
(row, noise) draws, so with ``s_g^2`` the variance of ``m`` at ``g`` the estimate's variance is

    Var(CPE_hat) = sum_g beta_g^2 s_g^2 / n_g                (stratified sampling)

and the fewest model calls ``sum_g n_g`` that bring it to a target ``V`` are Neyman's allocation
(Neyman 1934; Cochran, *Sampling Techniques*, 3rd ed., eq. 5.26, with unit cost per call):

    n_g = |beta_g| s_g (sum_h |beta_h| s_h) / V.             (Neyman)

Grid timesteps that no trajectory level touches carry ``beta_g = 0`` and are not profiled at all;
the noisiest levels, whose ``c_k^2`` is largest, get most of the calls.

:func:`profile_to_precision` runs this sequentially: a pilot of ``pilot`` draws at every weighted
timestep, then rounds that estimate each ``s_g``, allocate by (Neyman) for every trajectory of the
set (the largest ``n_g`` any trajectory asks for), draw the missing ones (:func:`stratum_moments`:
Algorithm 1's draw, ``x_t = sqrt(a) x_0 + sqrt(1 - a) eps`` (DDPM eq. 4) and ``delta = eps_hat -
eps``, at one timestep, keeping the count, mean and variance of the per-sample MSE) and merge
(:func:`merge_moments`), until every trajectory's CPE has a relative half-width at most
``target`` (normal interval at ``confidence``) or the call budget is spent. Each timestep has its
own data rows and noise, so the strata are independent and the variance above is exact (fixed-N
Algorithm 1 reuses one set of rows at every timestep, which correlates the levels). Each
stratum's moments are written under ``checkpoint_dir`` as they are finished, and the plan of a
round is a deterministic function of the rounds before it, so an interrupted run resumes where
it stopped.

**Across processes and GPUs** (``torchrun``; gloo on CPUs, NCCL on GPUs): with a
``torch.distributed`` process group initialised, each stratum's draws are cut into chunks of
:data:`CHUNK` rows whose rows and noise follow from the seed alone, every process computes its
share of the chunks, and ``all_gather_object`` merges every chunk's moments on every process in
chunk order, so the result is the same, bit for bit, with any number of processes (on the same
kind of machine and thread count). Each process keeps its own finished chunks under
``checkpoint_dir``. :func:`profile_fixed` is fixed-N Algorithm 1 on the same machinery.

The interval is the normal one of a stratified mean with estimated stratum variances (the design
used by survey statistics; statsmodels has no stratified-total interval, so it is written here and
tested against Monte Carlo coverage and against a numerical optimiser for the allocation). The
allocation and the stopping rule use the estimates themselves (the variances, and the CPE the
target is relative to), which biases the result slightly; each round adds fresh draws to every
stratum it touches, and the coverage test (95% intervals over 40 seeds) bounds the effect.

What the returned profile is good for: the CPE of the trajectories it was made for. It holds only
the grid timesteps next to their levels; read elsewhere (another trajectory, or VRG's optimiser
moving the levels) it interpolates across timesteps it never measured. Its metadata names the
trajectories; profile the whole grid (:func:`profile_fixed`) for an optimiser.

What it estimates is the CPE under the grid-interpolated profile: the value fixed-N Algorithm 1 on
the same grid converges to. How far that is from a profile at every one of the schedule's
timesteps is an interpolation question the grid answers (:func:`interpolation_gap`), not a
sampling one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from torch import Tensor

from vrg_analysis.core.profile import ErrorProfile
from vrg_analysis.core.schedules import NoiseSchedule
from vrg_analysis.core.trajectories import Trajectory
from vrg_analysis.io import sha256_array
from vrg_analysis.models.protocol import EpsModel
from vrg_analysis.profiling.allocation import (
    cpe_weights,
    fixed_n_for_precision,
    interpolation_gap,
    merge_moments,
    neyman_allocation,
    normal_quantile,
    stratified_half_width,
)
from vrg_analysis.profiling.strata import (
    CHUNK,
    DEFAULT_GRID,
    Strata,
    chunk_generator,
    distributed_from_env,
    launched_processes,
    leave_distributed,
    merge_chunks,
    profile_fixed,
    profile_grid,
    stratum_moments,
)

__all__ = [
    "DEFAULT_GRID",
    "Round",
    "AdaptiveProfile",
    "cpe_weights",
    "stratified_half_width",
    "neyman_allocation",
    "fixed_n_for_precision",
    "merge_moments",
    "CHUNK",
    "chunk_generator",
    "stratum_moments",
    "merge_chunks",
    "profile_fixed",
    "distributed_from_env",
    "launched_processes",
    "leave_distributed",
    "interpolation_gap",
    "profile_to_precision",
]

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class Round:
    """One round: the draws it added, the total so far and the worst relative half-width after
    it (over the trajectories)."""

    index: int
    added: int
    total: int
    worst_relative_half_width: float


@dataclass(frozen=True, eq=False)
class AdaptiveProfile:
    """What :func:`profile_to_precision` measured.

    ``profile`` holds the profiled timesteps only (``mse``, ``mse_sem``, ``count``,
    ``timesteps``); ``cpe`` and ``half_width`` (absolute, at ``confidence``) are per trajectory;
    ``model_calls`` counts model evaluations of one sample; ``fixed_calls`` is what fixed-N
    Algorithm 1 on the whole grid needs for the same precision, from the same variance estimates
    (:func:`fixed_n_for_precision` times the grid size)."""

    profile: ErrorProfile
    trajectories: tuple[Trajectory, ...]
    grid_timesteps: FloatArray
    cpe: FloatArray
    half_width: FloatArray
    target: float
    confidence: float
    reached: bool
    model_calls: int
    fixed_n: int
    fixed_calls: int
    rounds: tuple[Round, ...] = field(repr=False)

    @property
    def relative_half_width(self) -> FloatArray:
        return self.half_width / self.cpe

    @property
    def saving(self) -> float:
        """``fixed_calls / model_calls``: how many times fewer calls than fixed-N Algorithm 1."""
        return self.fixed_calls / self.model_calls


def _check_target(target: float, confidence: float) -> None:
    if not (isinstance(target, int | float) and math.isfinite(target) and 0.0 < target < 1.0):
        raise ValueError(f"target (a relative half-width) must lie in (0, 1), got {target!r}")
    normal_quantile(confidence)


def profile_to_precision(
    model: EpsModel,
    data: Tensor,
    trajectories: Sequence[Trajectory],
    *,
    target: float = 0.01,
    confidence: float = 0.95,
    timesteps: Sequence[int] | ArrayLike | None = None,
    schedule: NoiseSchedule | None = None,
    pilot: int = 64,
    max_calls: int | None = None,
    max_rounds: int = 10,
    growth: float = 8.0,
    batch_size: int = CHUNK,
    seed: int = 0,
    row_kwargs: Mapping[str, Tensor] | None = None,
    checkpoint_dir: str | Path | None = None,
    model_name: str = "model",
    data_name: str = "data",
    device: str | torch.device = "cpu",
) -> AdaptiveProfile:
    """Algorithm 1 with as few model calls as reach ``target``: the CPE of every trajectory in
    ``trajectories`` known to a relative half-width ``target`` at ``confidence`` (the module
    docstring: the functional, the variance, Neyman's allocation, the rounds).

    ``timesteps`` is the profile grid (default :data:`DEFAULT_GRID`); only the grid points next to
    a trajectory level are profiled. ``pilot`` draws each first; a round then adds at most
    ``growth`` times the draws made so far; the run stops when the target is reached, after
    ``max_rounds`` rounds or when the next round would pass ``max_calls`` (``reached`` is then
    False; ``rounds`` shows how far it got; ``max_calls`` must cover the pilot). ``row_kwargs``
    conditions each data row (as Algorithm 1's); with ``checkpoint_dir`` every finished chunk is
    kept and a rerun resumes (the model must declare an identity; a folder written with other
    arguments is refused). The rows and noise of a timestep's draws follow from ``seed``, the
    timestep, the round and the chunk: the result depends on the arguments only, not on the
    number of processes (module docstring). ``batch_size`` is at most :data:`CHUNK`.
    ``device``: where the model runs (the draws stay on the CPU, the same on every device).
    """
    _check_target(target, confidence)
    trajs = tuple(trajectories)
    if not trajs or not all(isinstance(t, Trajectory) for t in trajs):
        raise ValueError("trajectories must be a non-empty sequence of Trajectory")
    for name, value, least in (("pilot", pilot, 2), ("max_rounds", max_rounds, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
    if not (isinstance(growth, int | float) and math.isfinite(growth) and growth >= 1.0):
        raise ValueError(f"growth must be a finite number >= 1, got {growth!r}")
    if max_calls is not None and (isinstance(max_calls, bool) or not isinstance(max_calls, int)):
        raise ValueError(f"max_calls must be an integer or None, got {max_calls!r}")
    sched = schedule or model.schedule
    grid_t, grid_a = profile_grid(timesteps, sched)
    beta = np.stack([cpe_weights(t, grid_a) for t in trajs])  # [T, G]
    used = np.flatnonzero(np.any(beta != 0.0, axis=0))
    b = beta[:, used]
    z = normal_quantile(confidence)
    strata = Strata(
        model,
        data,
        grid_t[used],
        schedule=sched,
        seed=seed,
        batch_size=batch_size,
        row_kwargs=row_kwargs,
        checkpoint_dir=checkpoint_dir,
        key={
            "trajectories": [sha256_array(t.alpha_bar) for t in trajs],
            "full_grid_sha256": sha256_array(grid_t),
            "target": float(target),
            "confidence": float(confidence),
            "pilot": pilot,
            "growth": float(growth),
        },
        device=device,
    )
    n, mean, var = strata.n, strata.mean, strata.var  # updated in place by strata.draw
    draw = strata.draw
    if max_calls is not None and max_calls < pilot * used.size:
        raise ValueError(
            f"max_calls = {max_calls} is below the pilot's {pilot} draws at each of the "
            f"{used.size} timesteps the trajectories need ({pilot * used.size})"
        )

    def precision() -> tuple[FloatArray, FloatArray]:
        cpe = b @ mean
        hw = np.array([stratified_half_width(bt, np.sqrt(var), n, confidence) for bt in b])
        return cpe, hw

    rounds: list[Round] = []
    draw(np.full(used.size, pilot, dtype=np.int64), 0)
    cpe, hw = precision()
    if np.any(cpe <= 0.0):
        raise ValueError(
            "the pilot measured CPE = 0 for a trajectory (a model without error at every level "
            "it needs): a relative precision of 0 means nothing"
        )
    rounds.append(Round(0, int(n.sum()), int(n.sum()), float(np.max(hw / cpe))))
    reached = bool(np.all(hw <= target * cpe))
    for r in range(1, max_rounds + 1):
        if reached:
            break
        sd = np.sqrt(var)
        want = np.zeros(used.size)
        for bt, c in zip(b, cpe, strict=True):
            want = np.maximum(want, neyman_allocation(bt, sd, (target * c / z) ** 2))
        add = np.maximum(np.ceil(want) - n, 0.0)
        cap = growth * n.sum()
        if add.sum() > cap:  # a noisy early variance estimate must not commit the whole budget
            add = np.floor(add * cap / add.sum())
        add = np.maximum(add, 0).astype(np.int64)
        if add.sum() == 0:  # rounding left the target just out of reach: one more draw each
            add = np.where(b.any(axis=0), 1, 0).astype(np.int64)
        if max_calls is not None and n.sum() + add.sum() > max_calls:
            break
        draw(add, r)
        cpe, hw = precision()
        rounds.append(Round(r, int(add.sum()), int(n.sum()), float(np.max(hw / cpe))))
        reached = bool(np.all(hw <= target * cpe))

    sd = np.sqrt(var)
    fixed_n = max(
        fixed_n_for_precision(bt, sd, target, float(c), confidence)
        for bt, c in zip(b, cpe, strict=True)
    )
    profile = strata.profile(
        grid_a[used],
        {
            "model": model_name,
            "data": data_name,
            "algorithm": "adaptive Algorithm 1 (Neyman allocation for CPE)",
            "target_relative_half_width": float(target),
            "confidence": float(confidence),
            "seed": int(seed),
            "grid_size": int(grid_t.size),
            "valid_for": [t.name for t in trajs],
            "note": "only the grid timesteps next to these trajectories' levels are profiled",
        },
    )
    return AdaptiveProfile(
        profile=profile,
        trajectories=trajs,
        grid_timesteps=grid_t,
        cpe=cpe,
        half_width=hw,
        target=float(target),
        confidence=float(confidence),
        reached=reached,
        model_calls=int(n.sum()),
        fixed_n=fixed_n,
        fixed_calls=fixed_n * int(grid_t.size),
        rounds=tuple(rounds),
    )
