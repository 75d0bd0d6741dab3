"""Algorithm 1 at scale: the library's batched profiling against a naive per-timestep loop.

Same model, same data, same timesteps, timed in turn (library, naive, naive, library, ...):

(a) ``library``: :func:`vrg_analysis.profile_prediction_error`: (timestep, sample) pairs batched
                 across timesteps (``--batch-size`` pairs per model call), streaming float64
                 statistics per level (MSE, mean, variance, 3rd/4th moments, MSE standard error,
                 per-dimension mean/variance) and a 256-element reservoir per level;
(b) ``naive``:   what a first implementation of Algorithm 1 does: for each timestep, one model
                 call on the N data samples, then MSE/mean/variance appended to Python lists
                 (fewer statistics than (a)).

Reported per case: throughput in (timestep, sample) pairs per second, the ratio (a) / (b)
(goal >= 10x) and the share of each run's wall time spent inside the model's forward pass
(the ``nn.Module`` is wrapped with a timer; goal >= 90% for the library).

Models: the project's own testbed architectures (``vrg_analysis.networks``), randomly
initialised (only their cost matters):

* ``mlp2d_n{16,64,256}``  ``MixtureMLP(dim=2, hidden=128, depth=3)`` (sinusoidal time embedding,
  3 x 128 SiLU) on 2-d points, all 1000 timesteps x N samples per timestep, library batch 4096;
* ``unet8x8_n16``         ``DigitsUNet(ch=32)`` on 1 x 8 x 8 images, every 4th timestep (250)
  x 16 samples per timestep, library batch 256.

The ratio is a property of N, the samples per timestep: a per-timestep loop can only batch N
samples, so it gains nothing from the library when N already fills the machine and most when N
is small (or the device is fast, where every call pays a launch latency: see gpu_profiling.py).

    .venv/bin/python benchmarks/bench_profiling.py             # ~1-2 minutes, 1 thread
    .venv/bin/python benchmarks/bench_profiling.py --repeat 1  # smoke run

Writes ``benchmarks/results/profiling.json``.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from _common import Timing, machine_info, set_threads, write_result
from torch import Tensor, nn

from vrg_analysis import NoiseSchedule, TorchEpsModel, profile_prediction_error
from vrg_analysis.models.networks import DigitsUNet, MixtureMLP

log = logging.getLogger("bench_profiling")


class TimedModule:
    """Call an ``nn.Module`` and add the wall time of each call to ``seconds``."""

    def __init__(self, net: nn.Module) -> None:
        self.net = net
        self.seconds = 0.0
        self.calls = 0

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        t0 = time.perf_counter()
        out = self.net(x, t)
        self.seconds += time.perf_counter() - t0
        self.calls += 1
        return out


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[], nn.Module]
    shape: tuple[int, ...]
    n_samples: int
    timestep_stride: int
    batch_size: int
    model: str


CASES = [
    *(
        Case(
            f"mlp2d_n{n}",
            lambda: MixtureMLP(dim=2, hidden=128, depth=3),
            (2,),
            n,
            1,
            4096,
            "MixtureMLP(dim=2, hidden=128, depth=3): the mixture testbeds' network",
        )
        for n in (16, 64, 256)
    ),
    Case(
        "unet8x8_n16",
        lambda: DigitsUNet(ch=32),
        (1, 8, 8),
        16,
        4,
        256,
        "DigitsUNet(ch=32) on 1 x 8 x 8: the digits testbed's network",
    ),
]


def naive_profile(
    model: Callable[[Tensor, Tensor], Tensor],
    data: Tensor,
    timesteps: np.ndarray,
    schedule: NoiseSchedule,
    generator: torch.Generator,
) -> dict[str, list[float]]:
    """The peer: one model call per timestep on the data, statistics in Python lists."""
    out: dict[str, list[float]] = {"mse": [], "mean": [], "variance": []}
    n = data.shape[0]
    with torch.no_grad():
        for t in timesteps:
            a = float(schedule.alpha_bar(np.array([t]))[0])
            eps = torch.randn(data.shape, generator=generator, dtype=data.dtype)
            x_t = a**0.5 * data + (1.0 - a) ** 0.5 * eps
            delta = (model(x_t, torch.full((n,), float(t))) - eps).double()
            out["mse"].append(float(delta.pow(2).mean()))
            out["mean"].append(float(delta.mean()))
            out["variance"].append(float(delta.var(unbiased=False)))
    return out


def run_case(case: Case, *, repeat: int, warmup: int, seed: int) -> dict[str, Any]:
    torch.manual_seed(seed)
    net = case.make().eval()
    sched = NoiseSchedule.linear()
    timesteps = np.arange(0, sched.num_timesteps, case.timestep_stride)
    data = torch.randn(case.n_samples, *case.shape, generator=torch.Generator().manual_seed(seed))
    pairs = case.n_samples * timesteps.size
    timer = TimedModule(net)
    model = TorchEpsModel(timer, sched, name=case.name)
    last: dict[str, Any] = {}

    def library() -> None:
        last["library"] = profile_prediction_error(
            model,
            data,
            timesteps,
            batch_size=case.batch_size,
            generator=torch.Generator().manual_seed(seed + 1),
            progress=False,
            model_name=case.name,
        )

    def naive() -> None:
        last["naive"] = naive_profile(
            timer, data, timesteps, sched, torch.Generator().manual_seed(seed + 1)
        )

    fns = {"library": library, "naive": naive}
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    wall: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    share: dict[str, list[float]] = {k: [] for k in fns}
    calls: dict[str, int] = {}
    order = list(fns.items())
    for i in range(repeat):
        for name, fn in order if i % 2 == 0 else order[::-1]:
            timer.seconds, timer.calls = 0.0, 0
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            dt = time.perf_counter() - t0
            wall[name].append(dt)
            cpu[name].append(time.process_time() - c0)
            share[name].append(timer.seconds / dt)
            calls[name] = timer.calls
    timing = {k: Timing.of(wall[k], cpu[k]) for k in fns}
    prof = last["library"]
    naive_mse = np.asarray(last["naive"]["mse"])[::-1]  # profile rows: increasing alpha_bar
    z = (naive_mse - prof.mse) / (np.sqrt(2.0) * prof.mse_sem)
    result = {
        "model": case.model,
        "data_shape": list(case.shape),
        "n_samples_per_timestep": case.n_samples,
        "n_timesteps": int(timesteps.size),
        "pairs": pairs,
        "library_batch_size": case.batch_size,
        "model_calls": calls,
        "timing": {k: v.to_dict() for k, v in timing.items()},
        "throughput_pairs_per_s": {k: pairs / v.median_s for k, v in timing.items()},
        "ratio_library_over_naive": timing["naive"].median_s / timing["library"].median_s,
        "paired_ratios": [b / a for a, b in zip(wall["library"], wall["naive"], strict=True)],
        "model_time_share": {k: statistics.median(v) for k, v in share.items()},
        "model_time_share_runs": share,
        # Agreement of the two MSE profiles (same generator seed). torch's CPU normal stream
        # gives one [B, ...] draw the same numbers as consecutive per-timestep draws here, so the
        # runs see the same noise and differ by the model's float32 round-off at other batch
        # sizes; the z-score (difference over its standard error) is the check that holds even
        # where the draws differ.
        "mse_max_rel_diff_vs_naive": float(np.max(np.abs(naive_mse - prof.mse) / prof.mse)),
        "mse_agreement_max_abs_z": float(np.max(np.abs(z))),
    }
    log.info(
        "%s: library %.0f pairs/s, naive %.0f pairs/s, ratio %.2f, model share %.1f%% / %.1f%%",
        case.name,
        result["throughput_pairs_per_s"]["library"],
        result["throughput_pairs_per_s"]["naive"],
        result["ratio_library_over_naive"],
        100 * result["model_time_share"]["library"],
        100 * result["model_time_share"]["naive"],
    )
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=5, help="interleaved timed repeats")
    ap.add_argument("--warmup", type=int, default=1, help="untimed warm-up rounds")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cases", nargs="+", choices=[c.name for c in CASES], default=None)
    ap.add_argument("--name", default="profiling", help="result name")
    ap.add_argument("--results-dir", default=None, help="output folder (default: results/)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    threads = set_threads(args.threads, reexec=argv is None)
    machine = machine_info()
    cases = [c for c in CASES if args.cases is None or c.name in args.cases]
    results = {
        c.name: run_case(c, repeat=args.repeat, warmup=args.warmup, seed=args.seed) for c in cases
    }
    payload = {
        "machine": machine,
        "config": {
            "repeat": args.repeat,
            "warmup": args.warmup,
            "threads": threads,
            "seed": args.seed,
            "library_options": {"dim_stats": True, "reservoir_size": 256},
            "goals": {"ratio_library_over_naive": 10.0, "library_model_time_share": 0.9},
        },
        "cases": results,
    }
    path = write_result(args.name, payload, args.results_dir)
    log.info("wrote %s", path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
