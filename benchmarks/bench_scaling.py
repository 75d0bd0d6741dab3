"""Algorithm 1 across processes: throughput of ``python -m vrg_analysis profile`` alone and under
``torchrun`` (gloo), side by side on this machine (issue 17, part 5).

Three arms run the same fixed-N profile (``--draws N`` at every timestep of a grid) of one model:
one process on one torch thread, one process on two threads, and two processes of one thread
each under ``torchrun --nproc-per-node 2`` (the draws shared out in chunks, merged bit for bit).
Each arm is a fresh command, so its wall time includes the interpreter's start, the model's load
and, under torchrun, the process group's rendezvous. To take those out, every arm runs at two
sizes (``N`` and ``2N`` draws) and the throughput is the *marginal* one, the extra model calls
over the extra wall time; the fixed cost is the intercept. The arms alternate in every repeat (a,
b, c, then c, b, a), so slow drift of the machine hits them alike; the ratios of marginal
throughputs against one process of one thread are the result.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import REPO_ROOT, machine_info, write_result

log = logging.getLogger("bench_scaling")

ARMS: dict[str, tuple[int, int]] = {  # name -> (processes, threads per process)
    "1 process x 1 thread": (1, 1),
    "1 process x 2 threads": (1, 2),
    "2 processes x 1 thread": (2, 1),
}


def _command(processes: int, args: list[str]) -> list[str]:
    head = [sys.executable, "-m"]
    if processes > 1:
        torchrun = Path(sys.executable).with_name("torchrun")
        head = [str(torchrun), "--standalone", f"--nproc-per-node={processes}", "-m"]
    return [*head, "vrg_analysis", "profile", *args]


def run_arm(processes: int, threads: int, model: str, grid: str, draws: int, out: Path) -> float:
    """Wall seconds of one ``profile --draws`` command (fails loudly)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    args = ["--model", model, "--timesteps", grid, "--draws", str(draws), "--out", str(out)]
    t0 = time.perf_counter()
    cmd = _command(processes, args)
    done = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{cmd} failed:\n{done.stderr[-3000:]}")
    return wall


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="digits", help="a testbed name (default digits)")
    ap.add_argument("--levels", type=int, default=50, help="timesteps of the grid (default 50)")
    ap.add_argument("--draws", type=int, default=1024, help="N: draws a timestep (and 2N)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--name", default="scaling", help="result name")
    ap.add_argument("--results-dir", default=None, help="output folder (default: results/)")
    args = ap.parse_args(argv)
    if args.levels < 2 or args.draws < 2 or args.repeat < 1:
        raise SystemExit("--levels and --draws must be >= 2, --repeat >= 1")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    step = 999 / (args.levels - 1)
    grid = ",".join(str(round(i * step)) for i in range(args.levels))
    sizes = (args.draws, 2 * args.draws)
    walls: dict[str, dict[int, list[float]]] = {a: {n: [] for n in sizes} for a in ARMS}
    order = list(ARMS.items())
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):
            for name, (procs, threads) in order if i % 2 == 0 else order[::-1]:
                for n in sizes:
                    wall = run_arm(procs, threads, args.model, grid, n, Path(tmp) / "p.npz")
                    walls[name][n].append(wall)
                    log.info("%s, %d draws: %.1f s", name, n, wall)
    cases: dict[str, Any] = {}
    for name, (procs, threads) in ARMS.items():
        small, large = (statistics.median(walls[name][n]) for n in sizes)
        extra_calls = (sizes[1] - sizes[0]) * args.levels
        cases[name] = {
            "processes": procs,
            "threads_per_process": threads,
            "wall_s": {str(n): walls[name][n] for n in sizes},
            "marginal_calls_per_s": extra_calls / (large - small),
            "fixed_cost_s": small - (large - small),
        }
    peer = cases["1 process x 1 thread"]["marginal_calls_per_s"]
    for c in cases.values():
        c["ratio_over_one_process_one_thread"] = c["marginal_calls_per_s"] / peer
    payload = {
        "machine": machine_info(),
        "config": {
            "model": args.model,
            "levels": args.levels,
            "draws": list(sizes),
            "repeat": args.repeat,
            "command": "python -m vrg_analysis profile --draws N (torchrun for 2 processes)",
        },
        "cases": cases,
    }
    path = write_result(args.name, payload, Path(args.results_dir) if args.results_dir else None)
    log.info("wrote %s", path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
