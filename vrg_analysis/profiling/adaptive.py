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

import hashlib
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from scipy import stats
from torch import Tensor

from vrg_analysis._checks import as_float_vector
from vrg_analysis.core.cpe import step_coefficients
from vrg_analysis.core.profile import ErrorProfile
from vrg_analysis.core.schedules import NoiseSchedule
from vrg_analysis.core.trajectories import Trajectory
from vrg_analysis.io import atomic_write_text, sha256_array
from vrg_analysis.models.protocol import EpsModel, checked_eps, model_identity

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
    "leave_distributed",
    "interpolation_gap",
    "profile_to_precision",
]

FloatArray = NDArray[np.float64]
#: The profile grid the book's chapters use: every 10th training timestep and the last.
DEFAULT_GRID: tuple[int, ...] = (*range(0, 1000, 10), 999)


# ===================================================================== the functional
def cpe_weights(trajectory: Trajectory, grid_alpha_bar: ArrayLike) -> FloatArray:
    """``beta`` with ``CPE(trajectory) = beta @ w`` for a profile on ``grid_alpha_bar``
    (increasing): each level's ``c_k^2`` (:func:`~vrg_analysis.core.cpe.step_coefficients`) split
    between the two grid points around it as :meth:`ErrorProfile.w` interpolates (a level on a
    grid point puts its whole weight there). Raises naming the level a grid does not cover."""
    grid = as_float_vector(grid_alpha_bar, "grid alpha_bar", min_len=2)
    if np.any(np.diff(grid) <= 0.0):
        raise ValueError("grid alpha_bar must be strictly increasing")
    levels = trajectory.alpha_bar_from_clean  # clean end first, as step_coefficients
    c2 = step_coefficients(trajectory)
    beta = np.zeros(grid.size)
    for k, (a, w) in enumerate(zip(levels, c2, strict=True)):
        if not grid[0] <= a <= grid[-1]:
            raise ValueError(
                f"trajectory {trajectory.name!r}: level {k} (alpha_bar = {a:.6g}) lies outside "
                f"the profiled range [{grid[0]:.6g}, {grid[-1]:.6g}]"
            )
        i = int(np.searchsorted(grid, a, side="right")) - 1
        if i >= grid.size - 1:
            beta[-1] += w
            continue
        lam = (a - grid[i]) / (grid[i + 1] - grid[i])
        beta[i] += w * (1.0 - lam)
        beta[i + 1] += w * lam
    return beta


def _z(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}")
    return float(stats.norm.ppf(0.5 + confidence / 2.0))


def stratified_half_width(
    beta: ArrayLike, sd: ArrayLike, n: ArrayLike, confidence: float = 0.95
) -> float:
    """Half-width of the normal interval of ``sum_g beta_g w_g``: ``z sqrt(sum beta^2 s^2 / n)``
    over the grid points with ``beta != 0`` (Var above; each needs ``n_g >= 1``; ``sd`` and ``n``
    may be scalars, the same at every point)."""
    b = np.asarray(beta, dtype=np.float64)
    s, m = (np.broadcast_to(np.asarray(v, dtype=np.float64), b.shape) for v in (sd, n))
    used = b != 0.0
    if np.any(m[used] < 1):
        raise ValueError("every grid point with weight needs at least one draw")
    return _z(confidence) * float(np.sqrt(np.sum(b[used] ** 2 * s[used] ** 2 / m[used])))


def neyman_allocation(beta: ArrayLike, sd: ArrayLike, variance: float) -> FloatArray:
    """Real-valued draws per grid point with the fewest total that give ``sum beta^2 s^2 / n =
    variance`` (Neyman above): ``n_g = |beta_g| s_g sum_h |beta_h| s_h / variance``."""
    if not (math.isfinite(variance) and variance > 0.0):
        raise ValueError(f"variance must be finite and > 0, got {variance!r}")
    b = np.abs(np.asarray(beta, dtype=np.float64))
    s = np.asarray(sd, dtype=np.float64)
    if np.any(s < 0.0) or not np.all(np.isfinite(s)):
        raise ValueError("standard deviations must be finite and >= 0")
    return b * s * float(np.sum(b * s)) / variance


def fixed_n_for_precision(
    beta: ArrayLike, sd: ArrayLike, target: float, cpe: float, confidence: float = 0.95
) -> int:
    """Draws per timestep that fixed-N Algorithm 1 (the same ``n`` at every grid point) needs for
    a relative half-width ``target`` of ``cpe``: ``n = z^2 sum beta^2 s^2 / (target cpe)^2``."""
    b, s = np.asarray(beta, dtype=np.float64), np.asarray(sd, dtype=np.float64)
    v = (target * cpe / _z(confidence)) ** 2
    return max(1, math.ceil(float(np.sum(b**2 * s**2)) / v))


def merge_moments(
    n_a: ArrayLike,
    mean_a: ArrayLike,
    var_a: ArrayLike,
    n_b: ArrayLike,
    mean_b: ArrayLike,
    var_b: ArrayLike,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Count, mean and sample variance (``ddof = 1``) of two independent samples pooled
    (Chan, Golub & LeVeque 1979: ``M2 = M2_a + M2_b + delta^2 n_a n_b / n``), elementwise."""
    na, nb = np.asarray(n_a, np.float64), np.asarray(n_b, np.float64)
    ma, mb = np.asarray(mean_a, np.float64), np.asarray(mean_b, np.float64)
    m2 = np.asarray(var_a, np.float64) * np.maximum(na - 1, 0) + np.asarray(
        var_b, np.float64
    ) * np.maximum(nb - 1, 0)
    n = na + nb
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, (na * ma + nb * mb) / np.maximum(n, 1), 0.0)
        m2 = m2 + (mb - ma) ** 2 * na * nb / np.maximum(n, 1)
        var = np.where(n > 1, m2 / np.maximum(n - 1, 1), 0.0)
    return n, mean, var


def interpolation_gap(
    trajectory: Trajectory, fine: ErrorProfile, coarse_alpha_bar: ArrayLike
) -> float:
    """Relative change of ``trajectory``'s CPE when ``fine``'s values are read only at
    ``coarse_alpha_bar`` (a subset of its grid) and interpolated: how much a coarser grid would
    move CPE, for choosing a grid (the sampling error is :func:`profile_to_precision`'s)."""
    coarse = np.asarray(coarse_alpha_bar, dtype=np.float64)
    fine_beta = cpe_weights(trajectory, fine.alpha_bar)
    on_fine = float(fine_beta @ fine.mse)
    on_coarse = float(cpe_weights(trajectory, coarse) @ fine.w(coarse))
    return abs(on_coarse - on_fine) / on_fine


#: Rows per chunk of a stratum: the unit of noise seeding, of batching and of sharding, so a
#: stratum's numbers do not depend on how many processes share it.
CHUNK = 256


def chunk_generator(seed: int, g: int, round_: int, chunk: int) -> torch.Generator:
    """The noise generator of chunk ``chunk`` of grid timestep ``g`` in round ``round_``."""
    return torch.Generator().manual_seed(_seed(seed, g, 1_000 + round_, chunk))


def _chunk_moments(
    model: EpsModel,
    x0: Tensor,
    timestep: float,
    alpha_bar: float,
    generator: torch.Generator,
    batch_size: int,
    kw_all: Mapping[str, Tensor],
) -> tuple[int, float, float]:
    tdtype = torch.float64 if x0.dtype == torch.float64 else torch.float32
    per_sample: list[Tensor] = []
    with torch.no_grad():
        for start in range(0, x0.shape[0], batch_size):
            x = x0[start : start + batch_size]
            eps = torch.randn(x.shape, generator=generator, dtype=x.dtype)
            x_t = math.sqrt(alpha_bar) * x + math.sqrt(1.0 - alpha_bar) * eps  # DDPM eq. 4
            t = torch.full((x.shape[0],), float(timestep), dtype=tdtype)
            kw = {k: v[start : start + batch_size] for k, v in kw_all.items()}
            eps_hat = checked_eps(model, x_t, t, **kw).detach().cpu().to(torch.float64)
            delta = eps_hat - eps.to(torch.float64)
            per_sample.append(delta.reshape(delta.shape[0], -1).pow(2).mean(dim=1))
    m = torch.cat(per_sample).numpy()
    return int(m.size), float(m.mean()), float(m.var(ddof=1)) if m.size > 1 else 0.0


def stratum_moments(
    model: EpsModel,
    x0: Tensor,
    timestep: float,
    *,
    schedule: NoiseSchedule | None = None,
    generators: Sequence[torch.Generator] | None = None,
    chunks: Sequence[int] | None = None,
    batch_size: int = CHUNK,
    row_kwargs: Mapping[str, Tensor] | None = None,
) -> dict[int, tuple[int, float, float]]:
    """Algorithm 1's draw at one timestep, per chunk of :data:`CHUNK` rows: for each row of
    ``x0``, fresh ``eps ~ N(0, I)``, ``x_t = sqrt(a) x_0 + sqrt(1 - a) eps`` (DDPM eq. 4) and the
    per-sample MSE ``m = ||eps_hat(x_t, t) - eps||^2 / d``; returns ``{chunk: (count, mean,
    variance (ddof = 1))}`` of ``m``. Chunk ``c`` holds rows ``c CHUNK .. (c + 1) CHUNK`` and draws
    its noise from ``generators[c]`` (default: seed ``c``), so only the ``chunks`` asked for need
    computing (a shard's share) and each chunk's numbers are the same whoever computes it;
    :func:`merge_moments` in chunk order gives the stratum's ``w`` and the variance the allocation
    needs. ``batch_size`` (at most a chunk) bounds each model call."""
    sched = schedule or model.schedule
    if not isinstance(x0, Tensor) or x0.ndim < 2 or x0.shape[0] < 1:
        raise ValueError("x0 must be a tensor of clean samples with shape [n >= 1, ...]")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    n_chunks = -(-x0.shape[0] // CHUNK)
    todo = range(n_chunks) if chunks is None else [int(c) for c in chunks]
    if any(not 0 <= c < n_chunks for c in todo):
        raise ValueError(f"chunks must lie in 0..{n_chunks - 1}, got {list(todo)}")
    gens = (
        list(generators)
        if generators is not None
        else [torch.Generator().manual_seed(c) for c in range(n_chunks)]
    )
    if len(gens) != n_chunks:
        raise ValueError(f"{len(gens)} generators for {n_chunks} chunks of {CHUNK} rows")
    a = float(sched.alpha_bar(np.array([timestep], dtype=np.float64))[0])
    data = x0.detach().cpu()
    kw_all = {k: torch.as_tensor(v) for k, v in (row_kwargs or {}).items()}
    out = {}
    for c in todo:
        rows = slice(c * CHUNK, (c + 1) * CHUNK)
        kw = {k: v[rows] for k, v in kw_all.items()}
        out[c] = _chunk_moments(model, data[rows], timestep, a, gens[c], min(batch_size, CHUNK), kw)
    return out


def merge_chunks(parts: Mapping[int, tuple[int, float, float]]) -> tuple[int, float, float]:
    """One stratum's ``(count, mean, variance)`` from its chunks' (:func:`merge_moments` in chunk
    order: the same bits however the chunks were shared out)."""
    n, mean, var = 0.0, 0.0, 0.0
    for c in sorted(parts):
        n, mean, var = (float(v) for v in merge_moments(n, mean, var, *parts[c]))
    return int(n), mean, var


def _read_shard(
    path: Path, fingerprint: str, chunks: Sequence[int], rows: tuple[int, int]
) -> dict[int, tuple[int, float, float]] | None:
    """A finished shard's chunk moments from an earlier run with the same arguments and the
    same rows (``(first, count)`` of the stratum's row sequence), else ``None``; a file from
    other arguments, for other chunks or other rows is refused, naming it."""
    if not path.is_file():
        return None
    try:
        rec = json.loads(path.read_text())
        found = rec["fingerprint"]
        got = {int(c): (int(v[0]), float(v[1]), float(v[2])) for c, v in rec["chunks"].items()}
        found_rows = (int(rec["rows"][0]), int(rec["rows"][1]))
    except (OSError, ValueError, KeyError, TypeError, IndexError) as err:
        raise ValueError(f"{path}: not a shard record of profile_to_precision ({err})") from err
    if found != fingerprint or sorted(got) != sorted(chunks) or found_rows != rows:
        raise ValueError(
            f"{path}: written by a run with other arguments (model, data, grid, trajectories, "
            "target or seed); use another checkpoint_dir or delete it"
        )
    return got


def _world() -> tuple[int, int]:
    """``(rank, world size)`` of the torch.distributed process group, ``(0, 1)`` without one."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return int(dist.get_rank()), int(dist.get_world_size())
    return 0, 1


def distributed_from_env(device: str = "cpu") -> tuple[int, int, str]:
    """Join the process group ``torchrun`` describes (``WORLD_SIZE > 1`` in the environment;
    gloo on CPUs, NCCL on GPUs, each process on GPU ``LOCAL_RANK``) and return ``(rank, world
    size, device)``; ``(0, 1, device)`` when run alone. Call :func:`leave_distributed` at the
    end."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, device
    dist = torch.distributed
    if not dist.is_available():
        raise ValueError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    cuda = device.startswith("cuda")
    if cuda:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        torch.cuda.set_device(torch.device(device))
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return int(dist.get_rank()), int(dist.get_world_size()), device


def leave_distributed(*, ok: bool = True) -> None:
    """Leave the process group :func:`distributed_from_env` joined (nothing when run alone):
    after a barrier when every process finished (``ok``); at once after a failure, so a process
    that raised never waits for the others (they then fail in their next collective, and
    torchrun stops the group)."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        if ok:
            dist.barrier()
        dist.destroy_process_group()


def _gather(
    part: dict[int, tuple[int, float, float]], world: int
) -> dict[int, tuple[int, float, float]]:
    """Every shard's chunk moments on every process (``all_gather_object``)."""
    if world == 1:
        return part
    parts: list[Any] = [None] * world
    torch.distributed.all_gather_object(parts, part)
    return {c: v for p in parts for c, v in p.items()}


# ===================================================================== the sequential run
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


def _seed(*parts: int) -> int:
    digest = hashlib.sha256(" ".join(str(int(p)) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def _rows(n_data: int, seed: int, g: int, start: int, count: int) -> Tensor:
    """Rows ``start .. start + count`` of timestep ``g``'s own sequence of data rows: seeded
    permutations of all rows, one after another (no row twice before every row was used)."""
    out: list[Tensor] = []
    pos = start
    while count > 0:
        block, offset = divmod(pos, n_data)
        perm = torch.randperm(
            n_data, generator=torch.Generator().manual_seed(_seed(seed, g, block))
        )
        take = min(count, n_data - offset)
        out.append(perm[offset : offset + take])
        pos, count = pos + take, count - take
    return torch.cat(out)


def _check_target(target: float, confidence: float) -> None:
    if not (isinstance(target, int | float) and math.isfinite(target) and 0.0 < target < 1.0):
        raise ValueError(f"target (a relative half-width) must lie in (0, 1), got {target!r}")
    _z(confidence)


def _grid(
    timesteps: Sequence[int] | ArrayLike | None, sched: NoiseSchedule
) -> tuple[FloatArray, FloatArray]:
    """The profile grid's timesteps and levels, by increasing ``alpha_bar`` (as ErrorProfile)."""
    grid_t = as_float_vector(
        np.asarray(DEFAULT_GRID if timesteps is None else timesteps, dtype=np.float64),
        "timesteps",
        min_len=2,
    )
    if np.unique(grid_t).size != grid_t.size:
        raise ValueError("timesteps contain duplicates")
    grid_t = grid_t[np.argsort(sched.alpha_bar(grid_t))]
    return grid_t, sched.alpha_bar(grid_t)


class _Strata:
    """The profiled grid timesteps' running moments of the per-sample MSE, and the draws that
    add to them: each stratum's rows and noise come from the seed alone, its chunks are shared
    out over the torch.distributed processes (``all_gather_object`` merges them, in chunk order),
    and with a checkpoint folder every shard's finished chunks are kept for a rerun."""

    def __init__(
        self,
        model: EpsModel,
        data: Tensor,
        timesteps: FloatArray,
        *,
        schedule: NoiseSchedule,
        seed: int,
        batch_size: int,
        row_kwargs: Mapping[str, Tensor] | None,
        checkpoint_dir: str | Path | None,
        key: Mapping[str, Any],
    ) -> None:
        if not isinstance(data, Tensor) or data.ndim < 2 or data.shape[0] < 2:
            raise ValueError("data must be a tensor of clean samples with shape [n >= 2, ...]")
        if (
            isinstance(batch_size, bool)
            or not isinstance(batch_size, int)
            or not 1 <= batch_size <= CHUNK
        ):
            raise ValueError(
                f"batch_size must be an integer in 1..{CHUNK} (a chunk is the unit of noise "
                f"seeding and sharing), got {batch_size!r}"
            )
        self.model, self.data, self.timesteps = model, data, timesteps
        self.schedule, self.seed, self.batch_size = schedule, int(seed), batch_size
        self.rows_kw = {k: torch.as_tensor(v) for k, v in (row_kwargs or {}).items()}
        for k, v in self.rows_kw.items():
            if v.shape[:1] != data.shape[:1]:
                raise ValueError(f"row_kwargs[{k!r}] needs one entry per data row")
        self.dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        full_key = {
            **key,
            "model": model_identity(model),
            "data_sha256": sha256_array(data.detach().cpu().numpy()),
            "row_kwargs_sha256": {
                k: sha256_array(v.detach().cpu().numpy()) for k, v in sorted(self.rows_kw.items())
            },
            "schedule_sha256": sha256_array(np.asarray(schedule.alphas_cumprod)),
            "grid_sha256": sha256_array(np.asarray(timesteps)),
            "seed": self.seed,
        }
        if self.dir is not None:
            if full_key["model"] is None:
                raise ValueError(
                    f"{model!r} declares no identity, so its checkpoints could be resumed with "
                    "another model: give it one (TorchEpsModel(..., identity=...)) or run "
                    "without checkpoint_dir"
                )
            self.dir.mkdir(parents=True, exist_ok=True)
        self.fingerprint = hashlib.sha256(
            json.dumps(full_key, sort_keys=True, default=str).encode()
        ).hexdigest()
        self.n = np.zeros(timesteps.size)
        self.mean = np.zeros(timesteps.size)
        self.var = np.zeros(timesteps.size)
        self.rank, self.world = _world()
        if self.world > 1:  # every process must profile the same thing, or the merge is wrong
            prints: list[Any] = [None] * self.world
            torch.distributed.all_gather_object(prints, self.fingerprint)
            if len(set(prints)) > 1:
                raise ValueError(
                    "the processes were given different models, data or arguments "
                    f"(fingerprints {sorted(set(prints))}); every process must profile the same"
                )

    def draw(self, add: NDArray[np.int64], round_: int) -> None:
        """Add ``add[j]`` fresh draws to stratum ``j``."""
        for j in np.flatnonzero(add > 0):
            t = float(self.timesteps[j])
            tkey = round(1000 * t)  # rows and noise are keyed by the timestep, not its index
            rows = _rows(self.data.shape[0], self.seed, tkey, int(self.n[j]), int(add[j]))
            n_chunks = -(-rows.numel() // CHUNK)
            mine = list(range(self.rank, n_chunks, self.world))  # this shard's chunks
            path = None
            if self.dir is not None:
                path = self.dir / f"round{round_:02d}_t{t:g}.shard{self.rank}of{self.world}.json"
            span = (int(self.n[j]), int(add[j]))
            part = _read_shard(path, self.fingerprint, mine, span) if path is not None else None
            if part is None:
                part = stratum_moments(
                    self.model,
                    self.data[rows],
                    t,
                    schedule=self.schedule,
                    generators=[
                        chunk_generator(self.seed, tkey, round_, c) for c in range(n_chunks)
                    ],
                    chunks=mine,
                    batch_size=self.batch_size,
                    row_kwargs={k: v[rows] for k, v in self.rows_kw.items()},
                )
                if path is not None:
                    record = {"fingerprint": self.fingerprint, "rows": span, "chunks": part}
                    atomic_write_text(path, json.dumps(record))
            merged = merge_moments(
                self.n[j], self.mean[j], self.var[j], *merge_chunks(_gather(part, self.world))
            )
            self.n[j], self.mean[j], self.var[j] = (float(v) for v in merged)

    def profile(self, alpha_bar: FloatArray, metadata: Mapping[str, Any]) -> ErrorProfile:
        """The strata as an :class:`ErrorProfile` (``mse``, ``mse_sem``, ``count``)."""
        return ErrorProfile(
            alpha_bar=alpha_bar,
            mse=self.mean.copy(),
            mse_sem=np.sqrt(self.var / np.maximum(self.n, 1)),
            count=self.n.copy(),
            timesteps=self.timesteps.copy(),
            metadata={**metadata, "model_calls": int(self.n.sum()), "processes": self.world},
        )


def profile_fixed(
    model: EpsModel,
    data: Tensor,
    n: int,
    *,
    timesteps: Sequence[int] | ArrayLike | None = None,
    schedule: NoiseSchedule | None = None,
    batch_size: int = CHUNK,
    seed: int = 0,
    row_kwargs: Mapping[str, Tensor] | None = None,
    checkpoint_dir: str | Path | None = None,
    model_name: str = "model",
    data_name: str = "data",
) -> ErrorProfile:
    """Fixed-N Algorithm 1 on the stratum machinery: ``n`` draws at every timestep of the grid
    (default :data:`DEFAULT_GRID`), each timestep with its own rows and noise (so the levels are
    independent, unlike :func:`~vrg_analysis.profiling.algorithm1.profile_prediction_error`, which
    reuses its rows), shared out over the torch.distributed processes when a process group is
    initialised and resumable with ``checkpoint_dir``. The profile carries ``mse``, ``mse_sem``
    and ``count`` (the statistics CPE needs; Algorithm 1's higher moments, per-dimension
    statistics and reservoir are the fixed implementation's)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an integer >= 2, got {n!r}")
    sched = schedule or model.schedule
    grid_t, grid_a = _grid(timesteps, sched)
    strata = _Strata(
        model,
        data,
        grid_t,
        schedule=sched,
        seed=seed,
        batch_size=batch_size,
        row_kwargs=row_kwargs,
        checkpoint_dir=checkpoint_dir,
        key={"fixed_n": n},
    )
    strata.draw(np.full(grid_t.size, n, dtype=np.int64), 0)
    meta = {"model": model_name, "data": data_name, "algorithm": "fixed-N Algorithm 1 (strata)"}
    return strata.profile(grid_a, {**meta, "seed": int(seed)})


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
    grid_t, grid_a = _grid(timesteps, sched)
    beta = np.stack([cpe_weights(t, grid_a) for t in trajs])  # [T, G]
    used = np.flatnonzero(np.any(beta != 0.0, axis=0))
    b = beta[:, used]
    z = _z(confidence)
    strata = _Strata(
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
