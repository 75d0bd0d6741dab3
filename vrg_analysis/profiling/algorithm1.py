"""Algorithm 1 of the paper: profile a model's prediction error on training data.

*Prediction error* at level ``a``: ``delta = eps_hat(x_t, t) - eps`` with
``x_t = sqrt(a) x_0 + sqrt(1 - a) eps`` (the design page). Algorithm 1 draws fresh ``eps`` for every
training sample and timestep and records statistics of ``delta``; the mean squared error averaged
over dimensions is the profile ``w(a)`` that VRG's objective weights each step with.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from torch import Tensor
from tqdm import tqdm

from vrg_analysis._checks import as_float_vector, check_open_unit_interval
from vrg_analysis.core.profile import ErrorProfile
from vrg_analysis.core.schedules import NoiseSchedule
from vrg_analysis.io import atomic_open, provenance, sha256_array
from vrg_analysis.models.protocol import EpsModel, checked_eps, model_identity, resolve_device

__all__ = ["profile_prediction_error"]

log = logging.getLogger(__name__)
FloatArray = NDArray[np.float64]
Outside = Literal["error", "clamp", "linear"]
_OPTIONAL = ("mean", "variance", "skewness", "kurtosis", "count", "mse_sem", "timesteps")
# Optional per-level arrays with a second axis: per-dimension statistics [levels, d] and the
# reservoir of raw errors [levels, capacity] (NaN where a level saw fewer elements than capacity).
_OPTIONAL_2D = ("dim_mean", "dim_var", "reservoir")


# ------------------------------------------------------------------- Algorithm 1
# Columns of the per-level sums (float64): pooled sums of delta^1..4 over elements, the number of
# elements and of samples, and sums of the per-sample MSE and of its square (for mse_sem).
_S1, _S2, _S3, _S4, _N_ELEM, _N_SAMP, _M1, _M2 = range(8)
_CHECKPOINT_VERSION = 1


class _Reservoir:
    """Uniform samples without replacement of a stream of scalars, one reservoir per level.

    Li's Algorithm L (ACM TOMS 20(4), 1994): once the reservoir of ``capacity`` elements is full,
    the gap to the next accepted element is drawn directly, ``floor(log(v) / log(1 - W)) + 1``,
    with ``W <- W * u^(1/capacity)`` after each acceptance, so the cost is
    ``O(capacity * (1 + log(n / capacity)))`` draws per level, not one per element. The draws for
    a run of acceptances are made in vectorised blocks (positions by cumulative sums); draws past
    the end of a chunk are discarded, which keeps them independent of what is kept. They come
    from a numpy PCG64 generator whose state is checkpointed with the sums.
    """

    block_factor = 1.25  # block size: block_factor x the expected acceptances + block_extra
    block_extra = 8

    def __init__(self, n_levels: int, capacity: int, rng: np.random.Generator) -> None:
        self.capacity = capacity
        self.rng = rng
        self.values = np.full((n_levels, capacity), np.nan)
        self.seen = np.zeros(n_levels, dtype=np.int64)  # elements streamed so far
        self.next = np.zeros(n_levels, dtype=np.int64)  # stream index of the next accepted one
        self.w = np.full(n_levels, np.nan)  # Algorithm L's W (NaN until the reservoir is full)

    def add_batch(
        self,
        levels: NDArray[np.int64],
        starts: NDArray[np.int64],
        stops: NDArray[np.int64],
        flat: FloatArray,
    ) -> None:
        """Stream ``flat[starts[i]:stops[i]]`` into the reservoir of ``levels[i]`` (distinct)."""
        k = self.capacity
        seen = self.seen[levels]
        end = seen + (stops - starts)
        # 1. filling phase, all levels at once: stream position p < k goes to slot p
        take = np.clip(k - seen, 0, stops - starts)
        if take.any():
            off = np.arange(int(take.sum())) - np.repeat(np.cumsum(take) - take, take)
            rows = np.repeat(levels, take)
            self.values[rows, np.repeat(seen, take) + off] = flat[np.repeat(starts, take) + off]
        full = (seen < k) & (end >= k)  # full now: draw W and the first accepted position
        if full.any():
            lv = levels[full]
            u, v = 1.0 - self.rng.random((2, lv.size))  # in (0, 1]: finite logs
            self.w[lv] = np.exp(np.log(u) / k)
            self.next[lv] = k + np.floor(np.log(v) / np.log1p(-self.w[lv])).astype(np.int64)
        self.seen[levels] = end
        # 2. after filling: only levels whose next accepted position falls in this chunk
        todo = np.flatnonzero((end > k) & (self.next[levels] < end))
        while todo.size:
            todo = self._accept(levels, starts, seen, end, flat, todo)

    def _accept(
        self,
        levels: NDArray[np.int64],
        starts: NDArray[np.int64],
        seen: NDArray[np.int64],
        end: NDArray[np.int64],
        flat: FloatArray,
        todo: NDArray[np.int64],
    ) -> NDArray[np.int64]:
        """One block of acceptances for the chunks ``todo``, vectorised across them; returns
        the chunks whose block ran out before their end (rare: blocks are sized generously)."""
        k = self.capacity
        lv = levels[todo]
        nxt, stop = self.next[lv], end[todo]
        # block size per chunk: from the expected number of acceptances, k log(end / next)
        expected = k * np.log(np.maximum(stop, 2) / np.maximum(nxt, 1))
        size = np.minimum(4096, self.block_extra + self.block_factor * expected).astype(np.int64)
        first = np.cumsum(size) - size
        seg = np.repeat(np.arange(lv.size), size)

        def seg_cumsum(x: NDArray[Any]) -> NDArray[Any]:  # cumulative sums within each chunk
            c = np.cumsum(x)
            return c - np.concatenate([[0], c])[first][seg]

        u, v = 1.0 - self.rng.random((2, int(size.sum())))  # in (0, 1]: finite logs
        slots = self.rng.integers(k, size=u.size)
        # 1. accepted positions pos_0 = next < pos_1 < ...: pos_{j+1} = pos_j + gap_j with
        #    W_{j+1} = W_j u_j^(1/k) and gap_j = floor(log(v_j) / log(1 - W_{j+1})) + 1
        log_w = np.log(self.w[lv])[seg] + seg_cumsum(np.log(u) / k)
        gaps = np.minimum(np.floor(np.log(v) / np.log1p(-np.exp(log_w))), 2.0**62) + 1
        after = nxt[seg] + seg_cumsum(gaps.astype(np.int64))  # pos_{j+1}
        pos = after - gaps.astype(np.int64)  # pos_j
        ok = pos < stop[seg]  # a prefix of each chunk's block (positions increase)
        taken = np.add.reduceat(ok.astype(np.int64), first)
        # 2. accepted element j replaces slot_j; where a slot is drawn twice the later one wins
        #    (ufunc.at is unbuffered and in order, so the maximum index is the last)
        win = np.full(lv.size * k, -1, dtype=np.int64)
        idx = np.flatnonzero(ok)
        np.maximum.at(win, seg[idx] * k + slots[idx], idx)
        hit = np.flatnonzero(win >= 0)
        src = win[hit]
        c = seg[src]
        self.values[lv[c], hit % k] = flat[starts[todo][c] + pos[src] - seen[todo][c]]
        last = first + taken - 1  # taken >= 1: every chunk in todo has next < end
        self.w[lv] = np.exp(log_w[last])
        self.next[lv] = after[last]
        return todo[self.next[lv] < stop]


class _Accumulator:
    """Streaming sums per level in float64 on the CPU (Algorithm 1's statistics of ``delta``).

    ``sums[l]`` holds the pooled power sums and per-sample MSE moments (columns ``_S1.._M2``);
    ``dims[l]`` (``[2, d]``) the per-coordinate sums of ``delta`` and ``delta^2``. Each batch
    costs a few whole-batch tensor operations (power sums over the coordinates as one matrix
    product, then two ``index_add_`` by level), whatever the number of levels in it. Every update
    is a deterministic CPU reduction in a fixed order, so the same batches give the same bits.
    """

    def __init__(
        self, n_levels: int, dim: int, dim_stats: bool, reservoir: _Reservoir | None
    ) -> None:
        f64 = torch.float64
        self.dim = dim
        self.sums = torch.zeros(n_levels, 8, dtype=f64)
        self.dims = torch.zeros(n_levels, 2 * dim, dtype=f64) if dim_stats else None
        self.ones = torch.ones(dim, dtype=f64)
        self.reservoir = reservoir

    def add(
        self, level: Tensor, delta: Tensor, levels: NDArray[np.int64], first: NDArray[np.int64]
    ) -> None:
        """Add ``delta`` (``[B, ...]``) whose row ``i`` belongs to ``level[i]``; the rows are
        ordered by level, ``levels`` are the distinct ones and ``first`` their first rows."""
        d = delta.detach().to("cpu", torch.float64).reshape(delta.shape[0], -1)
        d2 = d * d
        # per-sample sums of delta^1..4 over the coordinates, as one matrix product
        powers = torch.stack([d, d2, d2 * d, d2 * d2], dim=1) @ self.ones
        per_sample = powers[:, 1] / self.dim  # the sample's MSE
        cols = [
            powers,
            torch.full_like(per_sample, float(self.dim))[:, None],
            torch.ones_like(per_sample)[:, None],
            per_sample[:, None],
            (per_sample * per_sample)[:, None],
        ]
        self.sums.index_add_(0, level, torch.cat(cols, dim=1))
        if self.dims is not None:
            self.dims.index_add_(0, level, torch.cat([d, d2], dim=1))
        if self.reservoir is not None:
            per = d.shape[1]
            stops = np.append(first[1:], d.shape[0]) * per
            self.reservoir.add_batch(levels, first * per, stops, d.numpy().reshape(-1))

    def finish(self) -> dict[str, FloatArray | None]:
        s = self.sums.numpy()
        n = s[:, _N_ELEM]
        mean = s[:, _S1] / n
        mse = s[:, _S2] / n
        var = np.maximum(mse - mean**2, 0.0)
        # central moments from raw ones
        c3 = s[:, _S3] / n - 3 * mean * s[:, _S2] / n + 2 * mean**3
        c4 = s[:, _S4] / n - 4 * mean * s[:, _S3] / n + 6 * mean**2 * s[:, _S2] / n - 3 * mean**4
        ns = s[:, _N_SAMP]
        with np.errstate(divide="ignore", invalid="ignore"):
            skew = np.where(var > 0, c3 / var**1.5, 0.0)
            kurt = np.where(var > 0, c4 / var**2 - 3.0, 0.0)
            m_var = np.maximum(s[:, _M2] / ns - (s[:, _M1] / ns) ** 2, 0.0)
            m_var = m_var * ns / np.maximum(ns - 1, 1)
            sem = np.sqrt(m_var / ns)
        out: dict[str, FloatArray | None] = {
            "mse": mse,
            "mean": mean,
            "variance": var,
            "skewness": skew,
            "kurtosis": kurt,
            "count": ns.copy(),
            "mse_sem": sem,
            "dim_mean": None,
            "dim_var": None,
            "reservoir": None,
        }
        if self.dims is not None:
            dims = self.dims.numpy()
            dm = dims[:, : self.dim] / ns[:, None]
            out["dim_mean"] = dm
            out["dim_var"] = np.maximum(dims[:, self.dim :] / ns[:, None] - dm**2, 0.0)
        if self.reservoir is not None:
            out["reservoir"] = self.reservoir.values.copy()
        return out

    # -------------------------------------------------------------- checkpoint state
    def state(self) -> dict[str, NDArray[Any]]:
        st: dict[str, NDArray[Any]] = {"sums": self.sums.numpy()}
        if self.dims is not None:
            st["dims"] = self.dims.numpy()
        if self.reservoir is not None:
            r = self.reservoir
            st.update(res_values=r.values, res_seen=r.seen, res_next=r.next, res_w=r.w)
        return st

    def restore(self, st: dict[str, NDArray[Any]]) -> None:
        self.sums.copy_(torch.from_numpy(st["sums"]))
        if self.dims is not None:
            self.dims.copy_(torch.from_numpy(st["dims"]))
        if self.reservoir is not None:
            r = self.reservoir
            r.values[...] = st["res_values"]
            r.seen[...] = st["res_seen"]
            r.next[...] = st["res_next"]
            r.w[...] = st["res_w"]


def _int_at_least(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool | float) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


def _save_checkpoint(
    path: Path,
    fingerprint: dict[str, Any],
    next_batch: int,
    acc: _Accumulator,
    gen: torch.Generator,
    rng: np.random.Generator,
) -> None:
    meta = {
        "version": _CHECKPOINT_VERSION,
        "fingerprint": fingerprint,
        "next_batch": next_batch,
        "numpy_rng": rng.bit_generator.state,
    }
    with atomic_open(path, "wb") as fh:
        np.savez(
            fh,
            meta_json=np.array(json.dumps(meta, sort_keys=True)),
            torch_rng=gen.get_state().numpy(),
            **acc.state(),
        )


def _load_checkpoint(
    path: Path,
    fingerprint: dict[str, Any],
    acc: _Accumulator,
    gen: torch.Generator,
    rng: np.random.Generator,
) -> int:
    """Restore sums and both RNG states from ``path``; return the next batch index."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(str(arrays.pop("meta_json")))
    except Exception as exc:  # noqa: BLE001 - truncated, bit-flipped or empty: zip, EOF, JSON...
        raise ValueError(
            f"checkpoint {str(path)!r} is not a readable profiling checkpoint "
            f"({type(exc).__name__}: {exc}): delete it to start afresh"
        ) from exc
    if meta.get("version") != _CHECKPOINT_VERSION:
        raise ValueError(
            f"checkpoint {str(path)!r} has format version {meta.get('version')!r}, "
            f"expected {_CHECKPOINT_VERSION}: delete it to start afresh"
        )
    saved = meta["fingerprint"]
    if saved != fingerprint:
        diffs = [
            f"{k}: {saved.get(k)!r} in the checkpoint, {fingerprint.get(k)!r} now"
            for k in sorted(set(saved) | set(fingerprint))
            if saved.get(k) != fingerprint.get(k)
        ]
        raise ValueError(
            f"checkpoint {str(path)!r} was made by a run with other arguments "
            f"({'; '.join(diffs)}): pass the same arguments, or another checkpoint_path, "
            "or delete the file"
        )
    acc.restore(arrays)
    gen.set_state(torch.from_numpy(arrays["torch_rng"]))
    rng.bit_generator.state = meta["numpy_rng"]
    return int(meta["next_batch"])


def profile_prediction_error(
    model: EpsModel,
    data: Tensor,
    timesteps: Sequence[int] | ArrayLike | None = None,
    *,
    schedule: NoiseSchedule | None = None,
    batch_size: int = 1024,
    generator: torch.Generator | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
    model_name: str = "model",
    data_name: str = "data",
    dim_stats: bool = True,
    reservoir_size: int = 256,
    checkpoint_path: str | Path | None = None,
    checkpoint_every: int = 50,
    row_kwargs: Mapping[str, Tensor] | None = None,
) -> ErrorProfile:
    """Algorithm 1: profile ``delta = eps_hat(x_t, t) - eps`` on training data.

    For every training timestep in ``timesteps`` (default: all of the schedule's) and every row
    of ``data``, draw a fresh ``eps ~ N(0, I)``, form ``x_t = sqrt(a_t) x_0 + sqrt(1 - a_t) eps``
    (DDPM eq. 4) and record ``delta``. The ``levels x n`` (timestep, sample) pairs are taken in
    level-major order and cut into batches of ``batch_size`` pairs, so one model call covers
    many timesteps.

    Statistics stream per level in float64 on the CPU (the model runs on ``device``): pooled
    mean, variance, skewness, excess kurtosis and MSE ``w(a)`` of the elements of ``delta``,
    the standard error of the MSE across samples, and, with ``dim_stats``, the mean and variance
    of every coordinate (``dim_mean``, ``dim_var``, ``[levels, d]``; the accumulators take
    ``16 * levels * d`` bytes, 49 MB for 1000 levels of CIFAR-10 images). ``reservoir_size > 0``
    keeps a uniform random sample of that many scalar elements of ``delta`` per level (pooled
    over samples and coordinates; two kept elements may come from the same sample, which matters
    for independence tests only when ``n * d`` is not much larger than the capacity).

    Determinism: ``eps`` is drawn on the CPU from ``generator`` (default: seed 0) in batch order,
    so the same arguments give the same numbers on any device; the reservoir's draws come from a
    separate numpy generator seeded from the starting state of ``generator``, so turning the
    reservoir on or off leaves the noise and all other statistics unchanged.

    Conditioning: ``row_kwargs`` maps a model keyword to one value per data row (e.g.
    ``{"label": train_y}`` for a class-conditional or guided model); each batch passes the rows'
    own values, so the profile is that of the conditional predictor on its training pairs.

    Resuming: with ``checkpoint_path``, the sums, both generator states and the position are written
    atomically every ``checkpoint_every`` batches and at the end. A run with the same arguments (the
    model's identity (:func:`~vrg_analysis.models.protocol.model_identity`: a model that declares
    none cannot be checkpointed), model name, data sha256, timesteps, schedule, generator starting
    state, batch size, statistics options) continues from that file and returns bitwise the same
    profile as an uninterrupted run (on the same machine and torch thread count, where the model's
    and the sums' reductions repeat exactly); a checkpoint written with other arguments is refused
    with a ``ValueError`` that names the differences. The finished checkpoint is kept (a rerun
    returns at once).
    """
    sched = schedule or model.schedule
    if not isinstance(data, Tensor):
        raise TypeError(f"data must be a torch.Tensor of clean samples, got {type(data).__name__}")
    if data.ndim < 2 or data.shape[0] < 2:
        raise ValueError(f"data needs shape [n >= 2, ...], got {tuple(data.shape)}")
    data = data.detach().cpu()  # eps is drawn on the CPU: the same numbers on every device
    if not torch.isfinite(data).all():
        raise ValueError("data contains non-finite values")
    rows_kw: dict[str, Tensor] = {}
    for key, value in (row_kwargs or {}).items():
        v = torch.as_tensor(value).detach().cpu()
        if v.ndim < 1 or v.shape[0] != data.shape[0]:
            raise ValueError(
                f"row_kwargs[{key!r}] must have one entry per data row ({data.shape[0]}), "
                f"got shape {tuple(v.shape)}"
            )
        rows_kw[key] = v
    batch_size = _int_at_least(batch_size, "batch_size", 1)
    reservoir_size = _int_at_least(reservoir_size, "reservoir_size", 0)
    checkpoint_every = _int_at_least(checkpoint_every, "checkpoint_every", 1)
    ts = np.arange(sched.num_timesteps) if timesteps is None else np.asarray(timesteps)
    ts = as_float_vector(ts, "timesteps")
    alpha_bar = sched.alpha_bar(ts)  # validates the range, naming a bad timestep
    if np.unique(ts).size != ts.size:
        raise ValueError("timesteps contain duplicates")
    check_open_unit_interval(alpha_bar, "alpha_bar of timesteps")
    dev = resolve_device(device)

    n = int(data.shape[0])
    dim = int(np.prod(data.shape[1:]))
    n_pairs = n * ts.size
    n_batches = -(-n_pairs // batch_size)
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    start_state = gen.get_state()
    gen_state_sha = sha256_array(start_state.numpy())
    # the reservoir's own generator, seeded from the noise generator's starting state
    rng = np.random.Generator(np.random.PCG64(int(gen_state_sha[:16], 16)))
    data_sha = sha256_array(data.numpy())
    fingerprint = {
        "model": model_name,
        "data_sha256": data_sha,
        "data_shape": list(data.shape),
        "data_dtype": str(data.dtype),
        "timesteps_sha256": sha256_array(ts),
        "schedule": sched.name,
        "schedule_sha256": sha256_array(np.asarray(sched.alphas_cumprod)),
        "model_sha256": model_identity(model),
        "generator_state_sha256": gen_state_sha,
        "batch_size": batch_size,
        "dim_stats": bool(dim_stats),
        "reservoir_size": reservoir_size,
    }
    if rows_kw:  # only when given, so fingerprints of unconditional runs are unchanged
        fingerprint["row_kwargs_sha256"] = {
            k: sha256_array(v.numpy()) for k, v in sorted(rows_kw.items())
        }
    if checkpoint_path is not None and fingerprint["model_sha256"] is None:
        raise ValueError(
            f"{model!r} declares no identity (a plain function, or a wrapper around one), so a "
            "checkpoint could be resumed with another model: wrap it as TorchEpsModel(fn, "
            "schedule, identity='a key naming the model and its parameters'), or profile "
            "without checkpoint_path"
        )
    reservoir = _Reservoir(ts.size, reservoir_size, rng) if reservoir_size > 0 else None
    acc = _Accumulator(ts.size, dim, dim_stats, reservoir)
    ckpt = Path(checkpoint_path) if checkpoint_path is not None else None
    first_batch = 0
    if ckpt is not None and ckpt.exists():
        first_batch = _load_checkpoint(ckpt, fingerprint, acc, gen, rng)
        log.info("resuming %s at batch %d of %d", ckpt, first_batch, n_batches)

    a_all = torch.as_tensor(alpha_bar, dtype=data.dtype)
    t_all = torch.as_tensor(
        ts, dtype=torch.float32 if data.dtype != torch.float64 else torch.float64
    )
    bar = tqdm(
        total=n_pairs,
        initial=min(first_batch * batch_size, n_pairs),
        desc="profiling",
        disable=not progress,
        unit="pair",
    )
    with torch.no_grad():
        for b in range(first_batch, n_batches):
            start, stop = b * batch_size, min((b + 1) * batch_size, n_pairs)
            idx = torch.arange(start, stop)
            level, row = idx // n, idx % n  # pairs in level-major order
            levels = np.arange(start // n, (stop - 1) // n + 1)
            first = np.maximum(levels * n, start) - start  # first row of each level
            x0 = data[row]
            eps = torch.randn(x0.shape, generator=gen, dtype=x0.dtype)
            a = a_all[level].reshape(-1, *([1] * (x0.ndim - 1)))
            x_t = a.sqrt() * x0 + (1.0 - a).sqrt() * eps  # DDPM eq. 4
            kw = {k: v[row].to(dev) for k, v in rows_kw.items()}
            eps_hat = checked_eps(model, x_t.to(dev), t_all[level].to(dev), **kw)
            delta = eps_hat.to("cpu", x0.dtype) - eps
            acc.add(level, delta, levels, first)  # accumulated on the CPU in float64
            bar.update(stop - start)
            if ckpt is not None and ((b + 1) % checkpoint_every == 0 or b + 1 == n_batches):
                _save_checkpoint(ckpt, fingerprint, b + 1, acc, gen, rng)
    bar.close()
    stats = acc.finish()
    meta = {
        "model": model_name,
        "data": data_name,
        "data_sha256": data_sha,
        "n_samples": n,
        "schedule": sched.name,
        "generator_seed": int(gen.initial_seed()),
        "generator_state_sha256": gen_state_sha,
        "batch_size": batch_size,
        "device": str(dev),
        "dim_stats": bool(dim_stats),
        "reservoir_size": reservoir_size,
        "resumed_at_batch": first_batch,
        "versions": provenance(),
    }
    log.info("profiled %d timesteps x %d samples", ts.size, n)
    return ErrorProfile(alpha_bar=alpha_bar, timesteps=ts, metadata=meta, **stats)
