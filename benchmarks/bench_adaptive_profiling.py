"""Algorithm 1 to a stated precision: adaptive allocation against fixed-N, same model and grid.

Goal (issue 17): the CPE of a set of trajectories known to +-1% (95%) with at least 10x fewer
model calls than fixed-N Algorithm 1 reaching the same precision.

Per model (the project's trained testbed models), in one process, one after the other:

(a) ``adaptive``: :func:`vrg_analysis.profiling.adaptive.profile_to_precision` on the book's
    profile grid (every 10th timestep and 999) for the trajectory set time-quadratic,
    logSNR-uniform and time-uniform at K = 10, target 1%: the model calls it made, its wall time,
    its rounds and the CPE with its interval;
(b) ``fixed``: fixed-N Algorithm 1 (:func:`vrg_analysis.profile_prediction_error`, the same ``n``
    at every grid timestep). The ``n`` that reaches the same precision is computed from the
    per-timestep variances (a) measured (:func:`~vrg_analysis.profiling.adaptive.
    fixed_n_for_precision`; with independent levels: fixed-N shares its rows across levels, which
    can only widen its interval, so the ``n`` is a lower bound and the ratio conservative). The
    run is made at that ``n`` when its calls fit ``--max-fixed-calls``; otherwise at the ``n``
    that fits, and its wall time for the full ``n`` is projected from the throughput it
    measured (the JSON says which). Its CPE is compared with (a)'s.

The ratio of model calls is the goal's measure; the wall-time ratio (measured side by side, or
projected) shows what the calls cost on this machine.

    .venv/bin/python benchmarks/bench_adaptive_profiling.py                     # mixture, digits
    .venv/bin/python benchmarks/bench_adaptive_profiling.py --models mixture-2d digits fashion \
        --cap fashion=20000     # the 28x28 UNet too, its fixed-N run capped (projected)

Writes ``benchmarks/results/adaptive_profiling.json`` (``--name`` to change).
"""

from __future__ import annotations

import argparse
import logging
import math
import time
from typing import Any

import numpy as np
import torch
from _common import machine_info, set_threads, write_result

from vrg_analysis import profile_prediction_error
from vrg_analysis.core.cpe import cumulative_prediction_error
from vrg_analysis.core.trajectories import baseline
from vrg_analysis.profiling import adaptive
from vrg_analysis.testbeds import make_testbed

log = logging.getLogger("bench_adaptive_profiling")
TRAJECTORIES = ("time_quadratic", "logsnr_uniform", "time_uniform")
MODELS = ("mixture-2d", "digits", "fashion")


def run_model(
    name: str, *, target: float, k: int, seed: int, max_fixed_calls: int, batch_size: int
) -> dict[str, Any]:
    bed = make_testbed(name)
    trajs = [baseline(t, bed.schedule, k) for t in TRAJECTORIES]
    c0, t0 = time.process_time(), time.perf_counter()
    res = adaptive.profile_to_precision(
        bed.model, bed.train_x, trajs, target=target, seed=seed, batch_size=batch_size
    )
    wall_a, cpu_a = time.perf_counter() - t0, time.process_time() - c0
    grid = np.asarray(res.grid_timesteps)
    n_full = res.fixed_n
    n_run = min(n_full, max(2, max_fixed_calls // grid.size))
    rows = torch.arange(n_run) % bed.train_x.shape[0]  # cycled rows, fresh noise per pair
    c0, t0 = time.process_time(), time.perf_counter()
    fixed = profile_prediction_error(
        bed.model,
        bed.train_x[rows],
        grid,
        batch_size=batch_size,
        generator=torch.Generator().manual_seed(seed + 11),
        progress=False,
        dim_stats=False,
        reservoir_size=0,
    )
    wall_f, cpu_f = time.perf_counter() - t0, time.process_time() - c0
    calls_run = n_run * grid.size
    per_call = wall_f / calls_run
    wall_f_full = per_call * res.fixed_calls
    comparison = []
    for t, c, h in zip(trajs, res.cpe, res.half_width, strict=True):
        beta = adaptive.cpe_weights(t, np.sort(fixed.alpha_bar))
        assert fixed.mse_sem is not None
        hw_f = adaptive.stratified_half_width(beta, fixed.mse_sem * math.sqrt(n_run), n_run)
        cf = cumulative_prediction_error(t, fixed)
        comparison.append(
            {
                "trajectory": t.name,
                "adaptive_cpe": float(c),
                "adaptive_half_width": float(h),
                "fixed_cpe": cf,
                "fixed_half_width_independent_levels": hw_f,
                "difference_over_combined_half_width": abs(cf - float(c)) / math.hypot(h, hw_f),
            }
        )
    out = {
        "model": bed.model_name,
        "data_rows": int(bed.train_x.shape[0]),
        "grid_timesteps": int(grid.size),
        "profiled_timesteps": int(res.profile.alpha_bar.size),
        "trajectories": [t.name for t in trajs],
        "K": k,
        "target_relative_half_width": target,
        "reached": res.reached,
        "adaptive": {
            "model_calls": res.model_calls,
            "wall_s": wall_a,
            "cpu_s": cpu_a,
            "rounds": [r.__dict__ for r in res.rounds],
            "relative_half_width": res.relative_half_width.tolist(),
        },
        "fixed": {
            "n_per_timestep_needed": n_full,
            "model_calls_needed": res.fixed_calls,
            "n_per_timestep_run": n_run,
            "model_calls_run": calls_run,
            "wall_s_run": wall_f,
            "cpu_s_run": cpu_f,
            "wall_s_needed": wall_f_full,
            "wall_measured": n_run == n_full,
        },
        "calls_ratio_fixed_over_adaptive": res.fixed_calls / res.model_calls,
        "wall_ratio_fixed_over_adaptive": wall_f_full / wall_a,
        "cpe_comparison": comparison,
    }
    log.info(
        "%s: adaptive %d calls (%.1f s), fixed-N %d calls (%s %.1f s): %.1fx fewer calls",
        name,
        res.model_calls,
        wall_a,
        res.fixed_calls,
        "measured" if n_run == n_full else "projected",
        wall_f_full,
        out["calls_ratio_fixed_over_adaptive"],
    )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", choices=MODELS, default=["mixture-2d", "digits"])
    ap.add_argument("--target", type=float, default=0.01, help="relative half-width (95%%)")
    ap.add_argument("--steps", type=int, default=10, help="K of the trajectories")
    ap.add_argument("--max-fixed-calls", type=int, default=1_000_000)
    ap.add_argument(
        "--cap",
        action="append",
        default=[],
        metavar="MODEL=CALLS",
        help="--max-fixed-calls for one model (repeatable): e.g. fashion=20000",
    )
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", default="adaptive_profiling", help="result name")
    ap.add_argument("--results-dir", default=None, help="output folder (default: results/)")
    args = ap.parse_args(argv)
    caps = {m: args.max_fixed_calls for m in args.models}
    for item in args.cap:
        model, _, calls = item.partition("=")
        if model not in caps or not calls.isdigit() or int(calls) < 2:
            ap.error(f"--cap {item!r}: expected MODEL=CALLS with MODEL one of {args.models}")
        caps[model] = int(calls)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    threads = set_threads(args.threads, reexec=argv is None)
    machine = machine_info()
    results = {
        m: run_model(
            m,
            target=args.target,
            k=args.steps,
            seed=args.seed,
            max_fixed_calls=caps[m],
            batch_size=args.batch_size,
        )
        for m in args.models
    }
    payload = {
        "machine": machine,
        "config": {
            "threads": threads,
            "seed": args.seed,
            "target": args.target,
            "steps": args.steps,
            "batch_size": args.batch_size,
            "max_fixed_calls": caps,
            "goals": {"calls_ratio_fixed_over_adaptive": 10.0},
        },
        "cases": results,
    }
    path = write_result(args.name, payload, args.results_dir)
    log.info("wrote %s", path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
