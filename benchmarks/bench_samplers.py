"""Every sampler's overhead per model call, and our DDIM / DPM-Solver++(2M) against diffusers.

Issue 4's goal: a sampler's own work costs at most 5 % of the model's time, and our loops are no
slower than diffusers' scheduler loops on the same model and timesteps.

(a) **Overhead per model call.** For each model below and each registered sampler
    (``samplers.SAMPLERS``; ``ddpm`` draws its noise from a generator seeded afresh each run), on
    a K-level time-quadratic trajectory, time in turn

    * ``forward``: the NFE bare ``module(x, t)`` calls under ``torch.no_grad()`` on the very states
      and timesteps the sampler gives the model (recorded once beforehand, Runge-Kutta half-steps
      included);
    * ``sampler``: the registered sampler (input checks, the level -> timestep map, the output
      check of every call, the updates, plus the same NFE model calls);

    and report ``overhead``: the median over repeats of the paired ratio ``sampler_i / forward_i
    - 1`` of process CPU times, with its quartiles. CPU time, not wall time, is the headline
    because the work is single-threaded and this project's machines are shared: a run that waits
    for a core inflates its wall time, not its CPU time (a core shared with other work can still
    slow both); the wall-time figures are kept too
    (``overhead_wall_paired``, ``overhead_wall_medians``), with ``wall_over_cpu`` (about 1 on a
    quiet machine) saying how busy the machine was. NFE is counted three ways and must agree: the
    calls recorded, ``samplers.sample(...).nfe`` and ``spec.nfe(K)``. All pairs of one model are
    timed in one interleaved run (f1, s1, f2, s2, ..., then the reverse order). For a hint of where
    any overhead goes, each sampler is also timed alone on a *null model* that returns a
    precomputed output (``null_per_call_us``: the sampler's own work per model call, CPU time, the
    model's cost removed).

(b) **Ours against diffusers' loop.** Same model, same integer timesteps, same ``x_T``, float32:
    ``samplers.sample_ddim`` against a ``DDIMScheduler(clip_sample=False, set_alpha_to_one=True)``
    loop, and ``samplers.sample_dpm_solver_pp_2m`` against a ``DPMSolverMultistepScheduler(
    solver_order=2, algorithm_type="dpmsolver++", final_sigmas_type="zero")`` loop (diffusers'
    default timestep spacings: "leading" for DDIM, "linspace" for DPM-Solver). Our schedule is the
    scheduler's own ``alphas_cumprod`` and our trajectory its timesteps' levels; the diffusers loop
    is a pipeline's (``set_timesteps``, then ``scale_model_input``, the model, ``step`` per
    timestep) and is timed with ``set_timesteps`` included, as our run includes its set-up. The
    two outputs are compared (max abs difference, and relative to the output's largest value;
    ``agree``: below ``1e-4 * max(1, max |x|)``, ``agree_abs_1e-4``: below ``1e-4``); the four
    loops of one model are timed in one interleaved run (``--repeat-diffusers`` repeats, 25 by
    default: they are cheap). ``ratio`` = ours / diffusers, the median of the paired CPU-time
    ratios (wall-time figures kept as above).

Models (``mlp_small`` and ``conv_small`` are ``bench_ddim_overhead.py``'s untrained networks, only
their cost matters; their untrained outputs make samples of magnitude ~10^2-10^3, so agreement is
judged relative to that scale):

* ``mlp_small``    MLP 3 x 128 (SiLU), d = 2, batch 4096 (random weights);
* ``conv_small``   three 3 x 3 convolutions, 32 channels, 1 x 8 x 8, batch 256 (random weights);
* ``digits_unet``  the shipped trained ``digits-unet`` (0.41 M parameters), 1 x 8 x 8, batch 64.

    .venv/bin/python benchmarks/bench_samplers.py            # ~3 min, 1 thread
    .venv/bin/python benchmarks/bench_samplers.py --quick    # smoke run -> samplers_quick.json

Writes ``benchmarks/results/samplers.json``.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from _common import Timing, machine_info, set_threads, time_callable, time_interleaved, write_result
from bench_ddim_overhead import CASES as DDIM_CASES
from torch import Tensor, nn

from vrg_analysis import NoiseSchedule, TorchEpsModel, Trajectory, samplers, time_quadratic

GOAL_OVERHEAD = 0.05  # sampler's own work <= 5 % of the model's time
GOAL_RATIO = 1.0  # ours / diffusers: no slower
NAN = float("nan")


@dataclass(frozen=True)
class Case:
    name: str
    description: str
    shape: tuple[int, ...]  # batch first
    trained: bool
    build: Callable[[int], nn.Module]  # num_timesteps -> module in eval mode


def _trained(name: str) -> Callable[[int], nn.Module]:
    def build(_num_timesteps: int) -> nn.Module:
        from vrg_analysis.models.checkpoints import load_trained

        return load_trained(name)

    return build


_DDIM = {c.name: c for c in DDIM_CASES}
CASES: tuple[Case, ...] = (
    Case(
        "mlp_small",
        _DDIM["mlp_small"].description + " (random weights)",
        _DDIM["mlp_small"].shape,
        False,
        _DDIM["mlp_small"].build,
    ),
    Case(
        "conv_small",
        _DDIM["conv_small"].description + " (random weights)",
        _DDIM["conv_small"].shape,
        False,
        _DDIM["conv_small"].build,
    ),
    Case(
        "digits_unet",
        "trained digits-unet (DigitsUNet ch 32), 1 x 8 x 8, batch 64",
        (64, 1, 8, 8),
        True,
        _trained("digits-unet"),
    ),
)


class Recorder:
    """An EpsModel that records every ``(x, t)`` it is called on and forwards to ``model``."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.schedule = model.schedule
        self.calls: list[tuple[Tensor, Tensor]] = []

    def __call__(self, x: Tensor, t: Tensor, **kwargs: Any) -> Tensor:
        self.calls.append((x.clone(), t.clone()))
        return self.model(x, t, **kwargs)


class NullModel:
    """An EpsModel that costs (almost) nothing: always the same precomputed output."""

    def __init__(self, out: Tensor, schedule: NoiseSchedule) -> None:
        self.out = out
        self.schedule = schedule

    def __call__(self, x: Tensor, t: Tensor, **kwargs: Any) -> Tensor:
        return self.out


def _paired(a: Timing, b: Timing, *, cpu: bool = True) -> tuple[float, list[float]]:
    """Median and (lower, upper) quartiles of the paired ratios ``b_i / a_i - 1`` of CPU times
    (``cpu=False``: wall times)."""
    xs, ys = (a.cpu_times_s, b.cpu_times_s) if cpu else (a.times_s, b.times_s)
    assert xs is not None and ys is not None
    r = [y / x - 1.0 for x, y in zip(xs, ys, strict=True)]
    q = statistics.quantiles(r, n=4) if len(r) > 1 else [r[0]] * 3
    return statistics.median(r), [q[0], q[2]]


def _wall_over_cpu(*timings: Timing) -> float:
    """Median of wall / CPU time over the runs: about 1 when the run never waited for a core."""
    return statistics.median(
        w / c for t in timings for w, c in zip(t.times_s, t.cpu_times_s or [], strict=True)
    )


def _setup(case: Case, seed: int) -> tuple[nn.Module, Any, Tensor]:
    schedule = NoiseSchedule.linear()
    torch.manual_seed(seed)  # nn.Module initialisation draws from the global generator
    module = case.build(schedule.num_timesteps).eval()
    # a trained network carries its schedule and is itself an EpsModel; wrap the others
    model = module if case.trained else TorchEpsModel(module, schedule, name=case.name)
    x = torch.randn(case.shape, generator=torch.Generator().manual_seed(seed))
    return module, model, x


def run_overhead(
    case: Case, steps: int, repeat: int, warmup: int, seed: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    module, model, x = _setup(case, seed)
    traj = time_quadratic(model.schedule, steps)

    def gen() -> torch.Generator:
        return torch.Generator().manual_seed(seed + 1)

    fns: dict[str, Callable[[], Any]] = {}
    info: dict[str, dict[str, Any]] = {}
    null = NullModel(torch.randn(case.shape, generator=gen()), model.schedule)
    null_us: dict[str, float] = {}
    for name, spec in samplers.SAMPLERS.items():
        rec = Recorder(model)
        spec(rec, x, traj, generator=gen())
        counted = samplers.sample(name, model, x, traj, generator=gen()).nfe
        nfe = spec.nfe(steps)
        if not (len(rec.calls) == counted == nfe):
            raise AssertionError(
                f"{name}: NFE disagree: recorded {len(rec.calls)}, sample() {counted}, "
                f"spec.nfe({steps}) {nfe}"
            )
        calls = rec.calls

        def forward(calls: list[tuple[Tensor, Tensor]] = calls) -> None:
            with torch.no_grad():
                for xk, t in calls:
                    module(xk, t)

        def sampler(spec: samplers.SamplerSpec = spec) -> None:
            spec(model, x, traj, generator=gen())

        fns[f"forward:{name}"] = forward
        fns[f"sampler:{name}"] = sampler
        info[name] = {"nfe": nfe, "spec": spec}

        def on_null(spec: samplers.SamplerSpec = spec) -> None:
            spec(null, x, traj, generator=gen())

        null_t = time_callable(on_null, repeat=max(5, repeat), warmup=max(1, warmup))
        null_us[name] = (null_t.cpu_median_s or null_t.median_s) / nfe * 1e6

    timings = time_interleaved(fns, repeat=repeat, warmup=warmup)
    rows = []
    for name, d in info.items():
        fwd, smp = timings[f"forward:{name}"], timings[f"sampler:{name}"]
        nfe, spec = d["nfe"], d["spec"]
        paired, quart = _paired(fwd, smp)
        wall_paired, wall_quart = _paired(fwd, smp, cpu=False)
        fwd_cpu, smp_cpu = fwd.cpu_median_s or NAN, smp.cpu_median_s or NAN
        rows.append(
            {
                "model": case.name,
                "sampler": name,
                "order": spec.order,
                "stochastic": spec.stochastic,
                "nfe": nfe,
                "forward": fwd.to_dict(),
                "sampler_timing": smp.to_dict(),
                "forward_per_call_ms": fwd.median_s / nfe * 1e3,
                "sampler_per_call_ms": smp.median_s / nfe * 1e3,
                "forward_cpu_per_call_ms": fwd_cpu / nfe * 1e3,
                "sampler_cpu_per_call_ms": smp_cpu / nfe * 1e3,
                "overhead": paired,
                "overhead_quartiles": quart,
                "overhead_cpu_per_call_us": (smp_cpu - fwd_cpu) / nfe * 1e6,
                "overhead_wall_paired": wall_paired,
                "overhead_wall_paired_quartiles": wall_quart,
                "overhead_wall_medians": (smp.median_s - fwd.median_s) / fwd.median_s,
                "wall_over_cpu": _wall_over_cpu(fwd, smp),
                "null_per_call_us": null_us[name],
            }
        )
    model_info = {
        "name": case.name,
        "description": case.description,
        "input_shape": list(case.shape),
        "parameters": sum(p.numel() for p in module.parameters()),
        "trained": case.trained,
        "dtype": str(x.dtype).removeprefix("torch."),
        "forward_per_call_ms": statistics.median(r["forward_per_call_ms"] for r in rows),
        "forward_cpu_per_call_ms": statistics.median(r["forward_cpu_per_call_ms"] for r in rows),
        "wall_over_cpu": _wall_over_cpu(*timings.values()),
    }
    return model_info, rows


def _schedulers(steps: int) -> dict[str, tuple[str, Any, Callable[..., Tensor]]]:
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

    return {
        "ddim": (
            'DDIMScheduler(clip_sample=False, set_alpha_to_one=True), timestep_spacing="leading"',
            DDIMScheduler(clip_sample=False, set_alpha_to_one=True),
            samplers.sample_ddim,
        ),
        "dpm_solver_pp_2m": (
            'DPMSolverMultistepScheduler(solver_order=2, algorithm_type="dpmsolver++", '
            'final_sigmas_type="zero"), timestep_spacing="linspace"',
            DPMSolverMultistepScheduler(
                solver_order=2, algorithm_type="dpmsolver++", final_sigmas_type="zero"
            ),
            samplers.sample_dpm_solver_pp_2m,
        ),
    }


def run_diffusers(
    case: Case, steps: int, repeat: int, warmup: int, seed: int
) -> list[dict[str, Any]]:
    module, _, x_T = _setup(case, seed)
    fns: dict[str, Callable[[], Tensor]] = {}
    meta: dict[str, dict[str, Any]] = {}
    for name, (label, sched, ours_fn) in _schedulers(steps).items():
        sched.set_timesteps(steps)
        timesteps = sched.timesteps.clone()
        schedule = NoiseSchedule(sched.alphas_cumprod.double().numpy(), name="diffusers")
        traj = Trajectory(schedule.alpha_bar(timesteps.numpy().astype(float)), name="diffusers")
        model = TorchEpsModel(module, schedule, name=case.name)

        def ours(fn: Callable[..., Tensor] = ours_fn, model: Any = model, traj=traj) -> Tensor:
            return fn(model, x_T, traj)

        def theirs(sched: Any = sched) -> Tensor:
            sched.set_timesteps(steps)
            x = x_T
            batch = x.shape[0]
            with torch.no_grad():
                for t in sched.timesteps:
                    x_in = sched.scale_model_input(x, t)
                    eps = module(x_in, t.to(torch.float32).expand(batch))
                    x = sched.step(eps, t, x).prev_sample
            return x

        a, b = ours(), theirs()
        diff = float((a - b).abs().max())
        scale = float(b.abs().max())
        fns[f"ours:{name}"] = ours
        fns[f"diffusers:{name}"] = theirs
        meta[name] = {
            "scheduler": label,
            "timesteps": [int(t) for t in timesteps],
            "max_abs_diff": diff,
            "max_abs_output": scale,
            "max_rel_diff": diff / max(scale, 1e-30),
            "dtype": str(a.dtype).removeprefix("torch."),
        }
    timings = time_interleaved(fns, repeat=repeat, warmup=warmup)
    rows = []
    for name, m in meta.items():
        ours_t, theirs_t = timings[f"ours:{name}"], timings[f"diffusers:{name}"]
        paired, quart = _paired(theirs_t, ours_t)
        wall_paired, wall_quart = _paired(theirs_t, ours_t, cpu=False)
        rows.append(
            {
                "model": case.name,
                "sampler": name,
                **m,
                # 1e-4 absolute on outputs of order one; relative to the output's scale beyond
                "agree": m["max_abs_diff"] < 1e-4 * max(1.0, m["max_abs_output"]),
                "agree_abs_1e-4": m["max_abs_diff"] < 1e-4,
                "ours": ours_t.to_dict(),
                "diffusers": theirs_t.to_dict(),
                "ours_per_step_ms": ours_t.median_s / steps * 1e3,
                "diffusers_per_step_ms": theirs_t.median_s / steps * 1e3,
                "ours_cpu_per_step_ms": (ours_t.cpu_median_s or NAN) / steps * 1e3,
                "diffusers_cpu_per_step_ms": (theirs_t.cpu_median_s or NAN) / steps * 1e3,
                "ratio": paired + 1.0,
                "ratio_quartiles": [q + 1.0 for q in quart],
                "ratio_wall_paired": wall_paired + 1.0,
                "ratio_wall_paired_quartiles": [q + 1.0 for q in wall_quart],
                "ratio_wall_medians": ours_t.median_s / theirs_t.median_s,
                "wall_over_cpu": _wall_over_cpu(ours_t, theirs_t),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=10, help="K, trajectory levels (default 10)")
    ap.add_argument("--repeat", type=int, default=None, help="interleaved timed repeats (15)")
    ap.add_argument(
        "--repeat-diffusers",
        type=int,
        default=None,
        help="interleaved timed repeats of the diffusers comparison (25; cheap, so more)",
    )
    ap.add_argument("--warmup", type=int, default=None, help="untimed warm-up rounds (2)")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cases", nargs="+", choices=[c.name for c in CASES], default=None)
    ap.add_argument(
        "--quick", action="store_true", help="smoke run: 3 repeats, 1 warm-up, -> samplers_quick"
    )
    ap.add_argument("--name", default=None, help="result name (default samplers)")
    ap.add_argument("--results-dir", default=None, help="output folder (default: results/)")
    args = ap.parse_args(argv)
    repeat = args.repeat if args.repeat is not None else (3 if args.quick else 15)
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    repeat_vs = args.repeat_diffusers
    if repeat_vs is None:
        repeat_vs = repeat if args.quick else 25
    name = args.name or ("samplers_quick" if args.quick else "samplers")
    if args.steps < 4 or repeat < 1 or repeat_vs < 1 or warmup < 0:
        ap.error(
            "--steps must be >= 4 (every sampler's minimum), --repeat and --repeat-diffusers "
            ">= 1, --warmup >= 0"
        )

    threads = set_threads(args.threads, reexec=argv is None)
    machine = machine_info()  # before the runs: the load average at start
    import diffusers

    machine["versions"]["diffusers"] = diffusers.__version__
    chosen = [c for c in CASES if args.cases is None or c.name in args.cases]
    models, overhead, versus = [], [], []
    for case in chosen:
        info, rows = run_overhead(case, args.steps, repeat, warmup, args.seed)
        models.append(info)
        overhead += rows
        print(
            f"{case.name}: forward {info['forward_cpu_per_call_ms']:.3f} ms/call (CPU), "
            f"wall / CPU {info['wall_over_cpu']:.2f}"
        )
        for r in rows:
            print(
                f"  {r['sampler']:17s} NFE {r['nfe']:2d}  overhead {r['overhead']:+7.1%} "
                f"(wall {r['overhead_wall_paired']:+6.1%}, "
                f"{r['overhead_cpu_per_call_us']:+6.0f} us/call; null model "
                f"{r['null_per_call_us']:5.0f} us/call)"
            )
        for r in run_diffusers(case, args.steps, repeat_vs, warmup, args.seed):
            versus.append(r)
            print(
                f"  vs diffusers {r['sampler']:17s} ours/diffusers {r['ratio']:.3f} "
                f"(wall {r['ratio_wall_paired']:.3f})  max |diff| {r['max_abs_diff']:.1e} "
                f"(rel {r['max_rel_diff']:.1e})"
            )
    payload = {
        "machine": machine,
        "config": {
            "steps": args.steps,
            "repeat": repeat,
            "repeat_diffusers": repeat_vs,
            "warmup": warmup,
            "threads": threads,
            "seed": args.seed,
            "quick": args.quick,
            "goal_overhead": GOAL_OVERHEAD,
            "goal_ratio": GOAL_RATIO,
            "trajectory": (
                "overhead: time_quadratic on the linear DDPM schedule (T = 1000); diffusers: the "
                "scheduler's own timesteps and alphas_cumprod"
            ),
            "timing": (
                "per model, all (forward, sampler) pairs timed in turn (a, b, c, d, ..., then "
                "reversed), wall (perf_counter) and process CPU time; overhead = median over "
                "repeats of sampler_cpu / forward_cpu - 1; ratio = median of ours_cpu / "
                "diffusers_cpu; wall-time figures kept alongside"
            ),
        },
        "models": models,
        "overhead": overhead,
        "diffusers": versus,
    }
    out_dir = Path(args.results_dir) if args.results_dir else None
    print(f"wrote {write_result(name, payload, out_dir)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
