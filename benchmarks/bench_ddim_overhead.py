"""DDIM's per-step overhead against the model's forward pass alone.

For each model below, on the same inputs and the same K timesteps, time

(a) ``forward``: K calls of the bare ``torch.nn.Module`` under ``torch.no_grad()``, on the very
                 states and timesteps the sampler passes it (recorded once beforehand);
(b) ``ddim``:    ``vrg_analysis.samplers.ddim`` over a K-step time-quadratic trajectory
                 (the adapter ``TorchEpsModel``, the level -> timestep map, the output check
                 and the DDIM update, plus the same K forward calls);

and report per-step times and the relative overhead ``(b - a) / a``. The two are timed in turn
(a, b, b, a, a, b, ...) after a warm-up and summarised by their medians, so drift on a busy
machine hits both alike; the median of the paired ratios ``b_i / a_i - 1`` is reported too. The
sampler's own pieces (level -> timestep, output check, DDIM update) are timed separately, each on
its own, to show how much of any overhead is time spent in them.

Models (untrained, random weights: only their cost matters):

* ``mlp_small``  2-d points, batch 4096, MLP 3 x 128 (SiLU), time as an input feature;
* ``mlp_wide``   2-d points, batch 4096, MLP 3 x 512;
* ``conv_small`` 1 x 8 x 8 images, batch 256, three 3 x 3 convolutions with 32 channels.

    .venv/bin/python benchmarks/bench_ddim_overhead.py            # ~30 s, 1 thread
    .venv/bin/python benchmarks/bench_ddim_overhead.py --repeat 3 # smoke run

Writes ``benchmarks/results/ddim_overhead.json``.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from _common import machine_info, set_threads, time_callable, time_interleaved, write_result
from torch import Tensor, nn

from vrg_analysis import NoiseSchedule, TorchEpsModel, samplers, time_quadratic
from vrg_analysis.models import checked_eps, timestep_tensors
from vrg_analysis.samplers import ddim_step


class TimeMLP(nn.Module):
    """``eps(x, t)`` for flat data: the timestep (scaled to [0, 1]) is one more input feature."""

    def __init__(self, dim: int, hidden: int, depth: int, num_timesteps: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Linear(dim + 1, hidden), nn.SiLU()]
        for _ in range(depth - 1):
            layers += [nn.Linear(hidden, hidden), nn.SiLU()]
        layers.append(nn.Linear(hidden, dim))
        self.net = nn.Sequential(*layers)
        self.scale = 1.0 / num_timesteps

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return self.net(torch.cat([x, (t * self.scale).to(x.dtype)[:, None]], dim=1))


class TinyConvNet(nn.Module):
    """``eps(x, t)`` for 1-channel images: the timestep enters as a constant extra channel."""

    def __init__(self, channels: int, num_timesteps: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(2, channels, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(channels, 1, 3, padding=1),
        )
        self.scale = 1.0 / num_timesteps

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        tc = (t * self.scale).to(x.dtype)[:, None, None, None].expand(-1, 1, *x.shape[2:])
        return self.net(torch.cat([x, tc], dim=1))


@dataclass(frozen=True)
class Case:
    name: str
    description: str
    shape: tuple[int, ...]  # batch first
    build: Callable[[int], nn.Module]


CASES: tuple[Case, ...] = (
    Case("mlp_small", "MLP 3 x 128, d = 2, batch 4096", (4096, 2), lambda n: TimeMLP(2, 128, 3, n)),
    Case("mlp_wide", "MLP 3 x 512, d = 2, batch 4096", (4096, 2), lambda n: TimeMLP(2, 512, 3, n)),
    Case(
        "conv_small",
        "3 conv 3x3, 32 channels, 1 x 8 x 8, batch 256",
        (256, 1, 8, 8),
        lambda n: TinyConvNet(32, n),
    ),
)


def run_case(case: Case, steps: int, repeat: int, warmup: int, seed: int) -> dict[str, Any]:
    schedule = NoiseSchedule.linear()
    traj = time_quadratic(schedule, steps)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # nn.Module initialisation draws from the global generator
    module = case.build(schedule.num_timesteps).eval()
    model = TorchEpsModel(module, schedule, name=case.name)
    x = torch.randn(case.shape, generator=gen)
    levels = [float(a) for a in traj.alpha_bar] + [1.0]
    ts = list(timestep_tensors(schedule, traj.alpha_bar, x))  # what ddim feeds, step by step
    records: list[samplers.StepRecord] = []
    samplers.sample_ddim(model, x, traj, callback=records.append)
    states = [r.x for r in records]  # the very inputs the sampler gives the model
    eps = records[0].eps_hat

    def forward() -> None:
        with torch.no_grad():
            for xk, t in zip(states, ts, strict=True):
                module(xk, t)

    def sampler() -> None:
        samplers.sample_ddim(model, x, traj)

    main = time_interleaved({"forward": forward, "ddim": sampler}, repeat=repeat, warmup=warmup)
    fwd, smp = main["forward"], main["ddim"]
    paired = [b / a - 1.0 for a, b in zip(fwd.times_s, smp.times_s, strict=True)]
    quartiles = statistics.quantiles(paired, n=4) if len(paired) > 1 else [paired[0]] * 3

    # Where the difference goes: the sampler's own pieces, each K times (per sampling run).
    def level_to_t() -> None:
        timestep_tensors(schedule, traj.alpha_bar, x)  # once per sampling run

    def output_check() -> None:
        for t in ts:
            checked_eps(lambda _x, _t: eps, x, t)  # the check only, on a precomputed output

    def update() -> None:
        for k in range(steps):
            ddim_step(x, eps, levels[k], levels[k + 1])

    parts = {
        "level_to_timestep": level_to_t,
        "output_check": output_check,
        "ddim_update": update,
    }
    components = {
        name: time_callable(fn, repeat=repeat, warmup=warmup).median_s / steps * 1e6
        for name, fn in parts.items()
    }
    return {
        "name": case.name,
        "description": case.description,
        "input_shape": list(case.shape),
        "parameters": sum(p.numel() for p in module.parameters()),
        "dtype": str(x.dtype).removeprefix("torch."),
        "forward": fwd.to_dict(),
        "ddim": smp.to_dict(),
        "forward_per_step_ms": fwd.median_s / steps * 1e3,
        "ddim_per_step_ms": smp.median_s / steps * 1e3,
        "overhead_per_step_us": (smp.median_s - fwd.median_s) / steps * 1e6,
        "overhead": (smp.median_s - fwd.median_s) / fwd.median_s,
        "overhead_paired_median": statistics.median(paired),
        "overhead_paired_quartiles": [q for i, q in enumerate(quartiles) if i != 1],
        "components_per_step_us": components,
        "components_sum_per_step_us": sum(components.values()),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=10, help="K, sampling steps (default 10)")
    ap.add_argument("--repeat", type=int, default=21, help="interleaved timed repeats")
    ap.add_argument("--warmup", type=int, default=3, help="untimed warm-up rounds")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cases", nargs="+", choices=[c.name for c in CASES], default=None)
    ap.add_argument("--name", default="ddim_overhead", help="result name")
    ap.add_argument("--results-dir", default=None, help="output folder (default: results/)")
    args = ap.parse_args(argv)
    if args.steps < 1 or args.repeat < 1 or args.warmup < 0:
        ap.error("--steps and --repeat must be >= 1, --warmup >= 0")

    # Sets torch's and BLAS's threads; run as a script, restarts once with the environment set.
    threads = set_threads(args.threads, reexec=argv is None)
    machine = machine_info()  # before the runs: the load average at start
    chosen = [c for c in CASES if args.cases is None or c.name in args.cases]
    rows = []
    for case in chosen:
        row = run_case(case, args.steps, args.repeat, args.warmup, args.seed)
        rows.append(row)
        print(
            f"{row['name']:11s} forward {row['forward_per_step_ms']:8.3f} ms/step  "
            f"ddim {row['ddim_per_step_ms']:8.3f} ms/step  overhead {row['overhead']:+7.1%} "
            f"({row['overhead_per_step_us']:+.0f} us/step)"
        )
    payload = {
        "machine": machine,
        "config": {
            "steps": args.steps,
            "repeat": args.repeat,
            "warmup": args.warmup,
            "threads": threads,
            "seed": args.seed,
            "trajectory": "time_quadratic on the linear DDPM schedule (1e-4..0.02, T = 1000)",
            "timing": (
                "forward and ddim timed in turn (a, b, a, b, ...) with perf_counter; "
                "medians; overhead = (ddim - forward) / forward"
            ),
        },
        "cases": rows,
    }
    out_dir = Path(args.results_dir) if args.results_dir else None
    print(f"wrote {write_result(args.name, payload, out_dir)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
