"""Algorithm 1's draws in strata: one timestep each, in chunks, shared over processes.

A *stratum* is one profiled timestep. Its draws are cut into chunks of :data:`CHUNK` rows; a
chunk's data rows (a seeded sequence of permutations per timestep) and its noise (a generator
seeded by the seed, the timestep, the round and the chunk) follow from the arguments alone, and
each chunk is one model batch. So a chunk's moments of the per-sample MSE are the same whoever
computes them, and with a ``torch.distributed`` process group (``torchrun``; gloo on CPUs, NCCL
on GPUs) every process computes its share of the chunks and ``all_gather_object`` merges them on
every process in chunk order: the same result, bit for bit, with any number of processes (on the
same kind of machine and thread count). Each process keeps its finished chunks in a checkpoint
folder; a rerun reads them. :func:`profile_fixed` is fixed-N Algorithm 1 on this machinery;
:func:`~vrg_analysis.profiling.adaptive.profile_to_precision` allocates the draws.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from torch import Tensor

from vrg_analysis._checks import as_float_vector
from vrg_analysis.core.profile import ErrorProfile
from vrg_analysis.core.schedules import NoiseSchedule
from vrg_analysis.io import atomic_write_text, sha256_array
from vrg_analysis.models.protocol import EpsModel, checked_eps, model_identity, resolve_device
from vrg_analysis.profiling.allocation import merge_moments

__all__ = [
    "DEFAULT_GRID",
    "CHUNK",
    "chunk_generator",
    "stratum_moments",
    "merge_chunks",
    "profile_fixed",
    "launched_processes",
    "rank_and_world",
    "distributed_from_env",
    "leave_distributed",
    "profile_grid",
    "Strata",
]

FloatArray = NDArray[np.float64]
#: The profile grid the book's chapters use: every 10th training timestep and the last.
DEFAULT_GRID: tuple[int, ...] = (*range(0, 1000, 10), 999)


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
    device: torch.device,
) -> tuple[int, float, float]:
    tdtype = torch.float64 if x0.dtype == torch.float64 else torch.float32
    per_sample: list[Tensor] = []
    with torch.no_grad():
        for start in range(0, x0.shape[0], batch_size):
            x = x0[start : start + batch_size]
            eps = torch.randn(x.shape, generator=generator, dtype=x.dtype)
            x_t = math.sqrt(alpha_bar) * x + math.sqrt(1.0 - alpha_bar) * eps  # DDPM eq. 4
            t = torch.full((x.shape[0],), float(timestep), dtype=tdtype, device=device)
            kw = {k: v[start : start + batch_size].to(device) for k, v in kw_all.items()}
            eps_hat = checked_eps(model, x_t.to(device), t, **kw).detach().cpu().to(torch.float64)
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
    device: str | torch.device = "cpu",
) -> dict[int, tuple[int, float, float]]:
    """Algorithm 1's draw at one timestep, per chunk of :data:`CHUNK` rows: for each row of
    ``x0``, fresh ``eps ~ N(0, I)``, ``x_t = sqrt(a) x_0 + sqrt(1 - a) eps`` (DDPM eq. 4) and the
    per-sample MSE ``m = ||eps_hat(x_t, t) - eps||^2 / d``; returns ``{chunk: (count, mean,
    variance (ddof = 1))}`` of ``m``. Chunk ``c`` holds rows ``c CHUNK .. (c + 1) CHUNK`` and draws
    its noise from ``generators[c]`` (default: seed ``c``), so only the ``chunks`` asked for need
    computing (a shard's share) and each chunk's numbers are the same whoever computes it;
    :func:`merge_moments` in chunk order gives the stratum's ``w`` and the variance the allocation
    needs. ``batch_size`` (at most a chunk) bounds each model call. ``device``: where the model
    runs; the rows and the noise stay on the CPU (the same numbers on every device) and each
    batch moves there, as in Algorithm 1's fixed implementation."""
    dev = resolve_device(device)
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
        out[c] = _chunk_moments(
            model, data[rows], timestep, a, gens[c], min(batch_size, CHUNK), kw, dev
        )
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


def rank_and_world() -> tuple[int, int]:
    """``(rank, world size)`` of the torch.distributed process group, ``(0, 1)`` without one."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return int(dist.get_rank()), int(dist.get_world_size())
    return 0, 1


def launched_processes() -> int:
    """The number of processes ``torchrun`` launched (``$WORLD_SIZE``; 1 when unset or empty),
    whether or not their process group is joined yet; ``ValueError`` when it is not an integer."""
    raw = os.environ.get("WORLD_SIZE", "").strip() or "1"
    try:
        return max(int(raw), 1)
    except ValueError:
        raise ValueError(f"WORLD_SIZE must be an integer, got {raw!r}") from None


def distributed_from_env(device: str = "cpu") -> tuple[int, int, str]:
    """Join the process group ``torchrun`` describes (``WORLD_SIZE > 1`` in the environment;
    gloo on CPUs, NCCL on GPUs, each process on GPU ``LOCAL_RANK``) and return ``(rank, world
    size, device)``; ``(0, 1, device)`` when run alone. Call :func:`leave_distributed` at the
    end."""
    world = launched_processes()
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


def profile_grid(
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


class Strata:
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
        device: str | torch.device = "cpu",
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
        # not in the fingerprint: each process of an NCCL run has its own GPU, and a chunk's
        # numbers agree across devices to float tolerance (its counts exactly)
        self.device = resolve_device(device)
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
        self.rank, self.world = rank_and_world()
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
                    device=self.device,
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
            metadata={
                **metadata,
                "model_calls": int(self.n.sum()),
                "processes": self.world,
                "device": str(self.device),
            },
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
    device: str | torch.device = "cpu",
) -> ErrorProfile:
    """Fixed-N Algorithm 1 on the stratum machinery: ``n`` draws at every timestep of the grid
    (default :data:`DEFAULT_GRID`), each timestep with its own rows and noise (so the levels are
    independent, unlike :func:`~vrg_analysis.profiling.algorithm1.profile_prediction_error`, which
    reuses its rows), shared out over the torch.distributed processes when a process group is
    initialised and resumable with ``checkpoint_dir``. The profile carries ``mse``, ``mse_sem``
    and ``count`` (the statistics CPE needs; Algorithm 1's higher moments, per-dimension
    statistics and reservoir are the fixed implementation's). ``device``: where the model runs
    (:func:`stratum_moments`)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an integer >= 2, got {n!r}")
    sched = schedule or model.schedule
    grid_t, grid_a = profile_grid(timesteps, sched)
    strata = Strata(
        model,
        data,
        grid_t,
        schedule=sched,
        seed=seed,
        batch_size=batch_size,
        row_kwargs=row_kwargs,
        checkpoint_dir=checkpoint_dir,
        key={"fixed_n": n},
        device=device,
    )
    strata.draw(np.full(grid_t.size, n, dtype=np.int64), 0)
    meta = {"model": model_name, "data": data_name, "algorithm": "fixed-N Algorithm 1 (strata)"}
    return strata.profile(grid_a, {**meta, "seed": int(seed)})
