"""The performance appendix: what the toolkit's hot paths cost, read from the benchmarks' JSON.

Nothing is timed here. The scripts in ``benchmarks/`` time a method side by side with a peer in
the same run and write one JSON file each into ``benchmarks/results/`` (every raw time, the
machine, the configuration); this module reads them (:func:`load_benchmarks`), turns them into
the appendix's tables, figures and numbers, and judges the benchmarks' goals by the book's one
rule:

* **a sampler's overhead** over the model's bare forward calls, per repeat
  ``o_i = sampler_i / forward_i - 1`` (the two timed in turn, so repeat ``i`` is a pair;
  :func:`paired_overheads`), against a goal ``g`` (5 % of the model's time): the claim "the
  overhead is at most ``g``" is ``decide(mean(o) - g, p, claim="within", band=(-inf, 0),
  interval=t interval - g)`` with ``p`` the paired t test of ``mean(o) = g``, Holm-corrected over
  the table (:func:`judge_goal`). The same for DDIM's overhead per model, and for the time ratio
  of our sampling loops to diffusers' (goal: no slower, ``ratio - 1 <= 0``);
* the medians the benchmarks report (the headline numbers) are shown beside the mean and its
  Student-t interval that the rule judges.

The VRG optimiser benchmark measures the paper's objective, the cumulative prediction error
(CPE, the paper's Eq. 10, plus its penalty on the start level), before and after the exact solver
and the paper's MLP + SGD optimiser (re-implemented).
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from numpy.typing import ArrayLike, NDArray

from vrg_analysis.evaluation.stats import (
    adjust_pvalues,
    aggregate,
    decide,
    one_sample_t,
    t_interval,
)
from vrg_analysis.params import as_folder
from vrg_analysis.report import PAGE_WIDTH, colour, styled
from vrg_analysis.resources import benchmark_results_dir

__all__ = [
    "Params",
    "Benchmarks",
    "Result",
    "Summary",
    "BENCHMARKS",
    "load_benchmarks",
    "describe_machine",
    "paired_overheads",
    "judge_goal",
    "machine_frame",
    "optimizer_frame",
    "ddim_frame",
    "sampler_models_frame",
    "sampler_overhead_frame",
    "versus_frame",
    "profiling_frame",
    "frechet_frame",
    "gpu_sampler_frame",
    "run",
    "machine_table",
    "optimizer_table",
    "ddim_table",
    "sampler_models_table",
    "sampler_overhead_table",
    "versus_table",
    "profiling_table",
    "frechet_table",
    "gpu_sampler_table",
    "figure_optimisers",
    "figure_samplers",
    "adaptive_frame",
    "adaptive_table",
    "scaling_frame",
    "scaling_table",
    "paper_size_frame",
    "paper_size_table",
    "PAPER_TRAINING_IMAGES",
    "PAPER_TIMESTEPS",
    "summary",
]

NAN = math.nan
#: file stem -> (fallback stems, label): the first file found is read
BENCHMARKS: dict[str, tuple[tuple[str, ...], str]] = {
    "optimizers": (("optimizers", "optimizers_smoke"), "VRG optimisers"),
    "ddim_overhead": (("ddim_overhead",), "DDIM overhead"),
    "samplers": (("samplers", "samplers_quick"), "Samplers"),
    "profiling": (("profiling",), "Profiling"),
    "adaptive_profiling": (("adaptive_profiling",), "Adaptive profiling"),
    "scaling": (("scaling",), "Algorithm 1 across processes"),
    "frechet": (("frechet",), "Frechet distance"),
    "profiling_gpu": (("profiling_gpu",), "Profiling on a GPU"),
    "study_gpu": (("study_gpu",), "Study engine on a GPU"),
}
#: Algorithm 1 as published on CIFAR-10: every training image at every timestep
PAPER_TRAINING_IMAGES = 50_000
PAPER_TIMESTEPS = 1_000
#: the CPU benchmarks of the machine table
CPU_BENCHMARKS: tuple[str, ...] = (
    "optimizers",
    "ddim_overhead",
    "samplers",
    "profiling",
    "frechet",
)
#: DDIM's overhead is "small" under this share of the forward time
DDIM_GOAL = 0.05
#: the optimiser labels
OPTIMISERS: dict[str, str] = {
    "exact": "exact (L-BFGS-B, penalty)",
    "exact_keep_start": "exact, start level kept (SLSQP)",
    "mlp_sgd": "MLP + SGD (paper, re-implemented)",
}
_OPT_COLOURS = {"exact": "vrg", "exact_keep_start": "vrg start held", "mlp_sgd": "mlp_sgd"}


@dataclass(frozen=True)
class Params:
    """The appendix's one parameter: the folder of the benchmarks' JSON files."""

    results_dir: str = ""  # empty: the project's benchmarks/results

    def __post_init__(self) -> None:
        folder = self.results_dir or benchmark_results_dir()
        object.__setattr__(self, "results_dir", str(as_folder(folder, "results_dir")))


@dataclass(frozen=True)
class Benchmarks:
    """The benchmarks' JSON documents (``None`` where the file is missing) and what was missing
    or substituted, in words."""

    docs: dict[str, dict[str, Any] | None]
    notes: tuple[str, ...] = ()

    def __getitem__(self, key: str) -> dict[str, Any] | None:
        return self.docs.get(key)


def load_benchmarks(folder: str | Path) -> Benchmarks:
    """Read every benchmark of :data:`BENCHMARKS` from ``folder``: the first of its file stems
    found; a fallback (a smoke run) and a missing file are noted."""
    root = Path(folder)
    docs: dict[str, dict[str, Any] | None] = {}
    notes: list[str] = []
    for key, (stems, _) in BENCHMARKS.items():
        docs[key] = None
        for stem in stems:
            path = root / f"{stem}.json"
            if path.is_file():
                docs[key] = json.loads(path.read_text())
                if stem != stems[0]:
                    notes.append(f"{stems[0]}.json is missing; showing {path.name} instead.")
                break
        else:
            notes.append(
                f"Results file {stems[0]}.json is missing from {root.resolve()}: run the benchmark "
                "(see benchmarks/README.md) to fill its section."
            )
    return Benchmarks(docs=docs, notes=tuple(notes))


def describe_machine(machine: Mapping[str, Any] | None) -> str:
    """One line on a CPU benchmark's machine."""
    if not machine:
        return "n/a"
    return (
        f"{machine['cpu_model']}, {machine['cpu_usable']} usable CPU core(s), no GPU used, "
        f"{machine['platform']}, Python {machine['python']}, torch {machine['versions']['torch']}"
    )


# ===================================================================== the goals, judged
def paired_overheads(base_times: ArrayLike, other_times: ArrayLike) -> NDArray[np.float64]:
    """Per repeat ``other_i / base_i - 1``: the two were timed in turn, so repeat ``i`` is a
    pair."""
    a = np.asarray(base_times, dtype=np.float64)
    b = np.asarray(other_times, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size < 2:
        raise ValueError(f"need two equally long series of >= 2 times, got {a.shape}, {b.shape}")
    if np.any(a <= 0):
        raise ValueError("base times must be positive")
    return b / a - 1.0


def judge_goal(samples: Sequence[ArrayLike], goal: float) -> pd.DataFrame:
    """The claim "the mean is at most ``goal``" for each series of paired values, by the one rule:
    the t interval of the mean, the paired t test of ``mean = goal`` Holm-corrected over the
    series, and ``decide(mean - goal, p_holm, claim="within", band=(-inf, 0), interval=...)``.
    Returns one row per series: ``mean``, ``ci_low``, ``ci_high``, ``p``, ``p (Holm)``,
    ``verdict``."""
    rows = []
    for x in samples:
        iv = t_interval(x)
        rows.append(
            {
                "mean": iv.estimate,
                "ci_low": iv.low,
                "ci_high": iv.high,
                "p": one_sample_t(x, goal)[1],
            }
        )
    t = pd.DataFrame(rows, columns=["mean", "ci_low", "ci_high", "p"])
    t["p (Holm)"] = adjust_pvalues(t["p"].to_numpy(), "holm") if len(t) else []
    t["verdict"] = [
        decide(
            r["mean"] - goal,
            r["p (Holm)"],
            claim="within",
            band=(-math.inf, 0.0),
            interval=(r.ci_low - goal, r.ci_high - goal),
        ).verdict
        for _, r in t.iterrows()
    ]
    return t


def _with_verdicts(frame: pd.DataFrame, samples: list[np.ndarray], goal: float) -> pd.DataFrame:
    judged = judge_goal(samples, goal)
    return pd.concat([frame.reset_index(drop=True), judged], axis=1)


# ===================================================================== frames
def machine_frame(b: Benchmarks) -> pd.DataFrame:
    """One row per CPU benchmark: date, CPU, threads, versions, commit and load."""
    rows = []
    for key in CPU_BENCHMARKS:
        label = BENCHMARKS[key][1]
        doc = b[key]
        if doc is None:
            rows.append({"benchmark": label, "date (UTC)": "missing"})
            continue
        m = doc["machine"]
        src = m.get("source", {})
        load = (
            f"{m['loadavg_start'][0]} / {m['loadavg_end'][0]}"
            if m.get("loadavg_start") and m.get("loadavg_end")
            else "n/a"
        )
        rows.append(
            {
                "benchmark": label,
                "date (UTC)": doc["date"],
                "CPU": m["cpu_model"],
                "cores": m["cpu_usable"],
                "torch threads": doc["config"]["threads"],
                "torch": m["versions"]["torch"],
                "vrg_analysis": m["versions"]["vrg_analysis"],
                "commit": (src.get("git_commit") or "n/a")[:10]
                + (" (modified)" if src.get("library_modified") else ""),
                "load avg (1 min) start / end": load,
            }
        )
    return pd.DataFrame(rows)


def optimizer_frame(b: Benchmarks) -> pd.DataFrame:
    """The three measured optimisers and the official code's published run (not measured)."""
    opt = b["optimizers"]
    if opt is None:
        return pd.DataFrame()
    rows = []
    for key, label in OPTIMISERS.items():
        r = opt["runs"][key]
        rows.append(
            {
                "key": key,
                "method": label,
                "measured": True,
                "wall time (s)": r["timing"]["median_s"],
                "CPU time (s)": r["timing"]["cpu_median_s"],
                "runs": len(r["timing"]["times_s"]),
                "iterations": r["iterations"],
                "CPE": r["cpe_final"],
                "CPE reduction": r["cpe_reduction"],
                "regulariser": r["regularizer_final"],
                "a_K": r["a_K_final"],
                "a_K shift": r["start_level_shift"],
                "converged": r["converged"],
                "moved": r["moved"],
            }
        )
    pub = opt["published"]
    rows.append(
        {
            "key": "published",
            "method": "official code (published, not measured)",
            "measured": False,
            "wall time (s)": pub["wall_time_s_approx"],
            "CPU time (s)": NAN,
            "runs": NAN,
            "iterations": pub["epochs"],
            "CPE": pub["cpe_final"],
            "CPE reduction": 1 - pub["cpe_final"] / pub["cpe_initial"],
            "regulariser": pub["regularizer_final"],
            "a_K": pub["a_K_final"],
            "a_K shift": pub["start_level_shift"],
            "converged": None,
            "moved": True,
        }
    )
    return pd.DataFrame(rows)


def ddim_frame(b: Benchmarks) -> pd.DataFrame:
    """DDIM against the forward pass alone, per model, with the verdict on "DDIM's overhead is
    under :data:`DDIM_GOAL` of the forward time" (paired wall times, Holm over the models)."""
    ddim = b["ddim_overhead"]
    if ddim is None:
        return pd.DataFrame()
    rows, samples = [], []
    for c in ddim["cases"]:
        comp = c["components_per_step_us"]
        q = c.get("overhead_paired_quartiles")
        rows.append(
            {
                "model": c["name"],
                "description": c["description"],
                "parameters": c["parameters"],
                "forward (ms/step)": c["forward_per_step_ms"],
                "DDIM (ms/step)": c["ddim_per_step_ms"],
                "overhead (us/step)": c["overhead_per_step_us"],
                "overhead": c["overhead"],
                "overhead, paired": c["overhead_paired_median"],
                "paired, quartiles": f"{q[0]:+.1%} .. {q[1]:+.1%}" if q else "n/a",
                "sampler pieces (us/step)": sum(comp.values()),
                "of which output check": comp["output_check"],
                "of which DDIM update": comp["ddim_update"],
                "of which level -> t": comp["level_to_timestep"],
            }
        )
        samples.append(paired_overheads(c["forward"]["times_s"], c["ddim"]["times_s"]))
    return _with_verdicts(pd.DataFrame(rows), samples, DDIM_GOAL)


def sampler_models_frame(b: Benchmarks) -> pd.DataFrame:
    """The models of the sampler benchmark and their forward time per call."""
    smp = b["samplers"]
    if smp is None:
        return pd.DataFrame()
    return pd.DataFrame(
        [
            {
                "model": m["name"],
                "description": m["description"],
                "parameters": m["parameters"],
                "forward (ms/call, CPU)": m["forward_cpu_per_call_ms"],
                "forward (ms/call, wall)": m["forward_per_call_ms"],
                "wall / CPU": m["wall_over_cpu"],
            }
            for m in smp["models"]
        ]
    )


def sampler_overhead_frame(b: Benchmarks) -> pd.DataFrame:
    """One row per sampler and model: the benchmark's median overhead (paired CPU times), its
    wall-time twin, the sampler's own work on a null model, and the verdict on "the overhead is at
    most the goal" (paired CPU times, Holm over the table)."""
    smp = b["samplers"]
    if smp is None or not smp.get("overhead"):
        return pd.DataFrame()
    rows, samples = [], []
    for r in smp["overhead"]:
        rows.append(
            {
                "sampler": r["sampler"],
                "model": r["model"],
                "order": r["order"],
                "NFE": r["nfe"],
                "overhead": r["overhead"],
                "q1": r["overhead_quartiles"][0],
                "q3": r["overhead_quartiles"][1],
                "wall": r["overhead_wall_paired"],
                "own work (us/call)": r["null_per_call_us"],
                "overhead (us/call, CPU)": r["overhead_cpu_per_call_us"],
            }
        )
        samples.append(
            paired_overheads(r["forward"]["cpu_times_s"], r["sampler_timing"]["cpu_times_s"])
        )
    return _with_verdicts(pd.DataFrame(rows), samples, smp["config"]["goal_overhead"])


def versus_frame(b: Benchmarks) -> pd.DataFrame:
    """Our loops against diffusers' on the same model, timesteps and noise: the median CPU time
    ratio, its quartiles, the agreement of the outputs, and the verdict on "ours is no slower"
    (paired CPU-time ratios minus 1 against ``goal_ratio - 1``, Holm over the table)."""
    smp = b["samplers"]
    if smp is None or not smp.get("diffusers"):
        return pd.DataFrame()
    goal = smp["config"]["goal_ratio"]
    rows, samples = [], []
    for r in smp["diffusers"]:
        rows.append(
            {
                "model": r["model"],
                "sampler": r["sampler"],
                "ours (ms/step, CPU)": r["ours_cpu_per_step_ms"],
                "diffusers (ms/step, CPU)": r["diffusers_cpu_per_step_ms"],
                "ours / diffusers": r["ratio"],
                "q1": r["ratio_quartiles"][0],
                "q3": r["ratio_quartiles"][1],
                "wall": r["ratio_wall_paired"],
                "max abs diff": r["max_abs_diff"],
                "max abs diff / max |x|": r["max_rel_diff"],
                "max |x|": r["max_abs_output"],
            }
        )
        samples.append(paired_overheads(r["diffusers"]["cpu_times_s"], r["ours"]["cpu_times_s"]))
    out = _with_verdicts(pd.DataFrame(rows), samples, goal - 1.0)
    for col in ("mean", "ci_low", "ci_high"):  # back on the ratio scale
        out[col] = out[col] + 1.0
    return out


def profiling_frame(b: Benchmarks) -> pd.DataFrame:
    """Batched Algorithm 1 against the naive loop, per case."""
    doc = b["profiling"]
    if doc is None:
        return pd.DataFrame()
    return pd.DataFrame(
        [
            {
                "case": name,
                "model": c["model"].split(":")[0],
                "samples per timestep": c["n_samples_per_timestep"],
                "timesteps": c["n_timesteps"],
                "library (pairs/s)": c["throughput_pairs_per_s"]["library"],
                "naive (pairs/s)": c["throughput_pairs_per_s"]["naive"],
                "speed-up": c["ratio_library_over_naive"],
                "model share, library": c["model_time_share"]["library"],
                "model share, naive": c["model_time_share"]["naive"],
            }
            for name, c in doc["cases"].items()
        ]
    )


def adaptive_frame(b: Benchmarks) -> pd.DataFrame:
    """Algorithm 1 to a stated precision (``profiling.adaptive``) against fixed-N Algorithm 1 on
    the same grid, per model: the model calls each needs and their wall times."""
    doc = b["adaptive_profiling"]
    if doc is None:
        return pd.DataFrame()
    return pd.DataFrame(
        [
            {
                "model": c["model"],
                "target (95%)": c["target_relative_half_width"],
                "reached": c["reached"],
                "timesteps profiled": f"{c['profiled_timesteps']} of {c['grid_timesteps']}",
                "adaptive calls": c["adaptive"]["model_calls"],
                "fixed-N calls": c["fixed"]["model_calls_needed"],
                "fewer calls": c["calls_ratio_fixed_over_adaptive"],
                "adaptive wall (s)": c["adaptive"]["wall_s"],
                "fixed-N wall (s)": c["fixed"]["wall_s_needed"],
                "fixed-N wall": "measured" if c["fixed"]["wall_measured"] else "projected",
            }
            for c in doc["cases"].values()
        ]
    )


def scaling_frame(b: Benchmarks) -> pd.DataFrame:
    """``profile --draws`` alone and under torchrun (``bench_scaling.py``): the marginal model
    calls per second of each arm, their ratio to one process of one thread, the fixed cost."""
    doc = b["scaling"]
    if doc is None:
        return pd.DataFrame()
    return pd.DataFrame(
        [
            {
                "arm": name,
                "processes": c["processes"],
                "threads each": c["threads_per_process"],
                "calls/s": c["marginal_calls_per_s"],
                "vs 1 x 1": c["ratio_over_one_process_one_thread"],
                "start-up (s)": c["fixed_cost_s"],
            }
            for name, c in doc["cases"].items()
        ]
    )


def paper_size_frame(b: Benchmarks) -> pd.DataFrame:
    """Algorithm 1 at the paper's size, projected: the CIFAR-10-sized UNet's measured GPU
    throughput (``profiling_gpu``) times the model calls of published Algorithm 1
    (:data:`PAPER_TRAINING_IMAGES` x :data:`PAPER_TIMESTEPS`) and of adaptive profiling to the
    benchmark's target, if the model's errors were spread as in each model the adaptive benchmark
    measured (the calls a precision needs depend on the errors' spread, not on the data set's
    size). Also the precision published Algorithm 1 would reach under that spread: the fixed-N
    half-width shrinks as ``1/sqrt(n)`` (the central limit theorem), so ``n`` draws a timestep give
    ``target * sqrt(n_needed / n)``."""
    gpu, ad = b["profiling_gpu"], b["adaptive_profiling"]
    if gpu is None or ad is None:
        return pd.DataFrame()
    rate = float(gpu["library"]["pairs_per_s"])
    published = PAPER_TRAINING_IMAGES * PAPER_TIMESTEPS
    rows = []
    for c in ad["cases"].values():
        target = float(c["target_relative_half_width"])
        rows.append(
            {
                "errors spread as in": c["model"],
                "published calls": published,
                "published (GPU h)": published / rate / 3600.0,
                "published reaches (95%)": target
                * math.sqrt(c["fixed"]["n_per_timestep_needed"] / PAPER_TRAINING_IMAGES),
                "target (95%)": target,
                "adaptive calls": c["adaptive"]["model_calls"],
                "adaptive (GPU h)": c["adaptive"]["model_calls"] / rate / 3600.0,
            }
        )
    return pd.DataFrame(rows)


def frechet_frame(b: Benchmarks) -> pd.DataFrame:
    """The library's Frechet distance against the ``sqrtm`` formula, per case."""
    doc = b["frechet"]
    if doc is None:
        return pd.DataFrame()
    return pd.DataFrame(
        [
            {
                "case": c["case"],
                "d": c["d"],
                "samples": c["n_samples"],
                "ours (s)": c["timings"]["ours"]["median_s"],
                "sqrtm (s)": c["timings"]["sqrtm"]["median_s"],
                "time ratio": c["time_ratio_ours_over_sqrtm"],
                "relative difference": c["relative_difference"],
            }
            for c in doc["cases"]
        ]
    )


def gpu_sampler_frame(b: Benchmarks) -> pd.DataFrame:
    """Every sampler family on a GPU against a bare loop of the same UNet calls."""
    doc = b["study_gpu"]
    if doc is None:
        return pd.DataFrame()
    sc = doc["sampler_cost"]
    return pd.DataFrame(
        [
            {
                "sampler": name,
                "NFE (K = 10)": v["nfe"],
                "library (ms/call)": 1e3 * v["library_s_per_call"],
                "bare UNet loop (ms/call)": 1e3 * v["bare_s_per_call"],
                "ratio": v["ratio"],
            }
            for name, v in sc.items()
            if isinstance(v, dict) and "library_s_per_call" in v
        ]
    )


# ===================================================================== the appendix
@dataclass(frozen=True, eq=False)
class Result:
    """The benchmarks and every frame the appendix shows."""

    params: Params
    benchmarks: Benchmarks
    machine: pd.DataFrame = field(repr=False)
    optimizers: pd.DataFrame = field(repr=False)
    ddim: pd.DataFrame = field(repr=False)
    sampler_models: pd.DataFrame = field(repr=False)
    overhead: pd.DataFrame = field(repr=False)
    versus: pd.DataFrame = field(repr=False)
    profiling: pd.DataFrame = field(repr=False)
    adaptive: pd.DataFrame = field(repr=False)
    scaling: pd.DataFrame = field(repr=False)
    paper_size: pd.DataFrame = field(repr=False)
    frechet: pd.DataFrame = field(repr=False)
    gpu_samplers: pd.DataFrame = field(repr=False)

    @property
    def notes(self) -> tuple[str, ...]:
        return self.benchmarks.notes


def run(params: Params) -> Result:
    """Read the benchmarks and build every frame (judging the goals)."""
    b = load_benchmarks(params.results_dir)
    return Result(
        params=params,
        benchmarks=b,
        machine=machine_frame(b),
        optimizers=optimizer_frame(b),
        ddim=ddim_frame(b),
        sampler_models=sampler_models_frame(b),
        overhead=sampler_overhead_frame(b),
        versus=versus_frame(b),
        profiling=profiling_frame(b),
        adaptive=adaptive_frame(b),
        scaling=scaling_frame(b),
        paper_size=paper_size_frame(b),
        frechet=frechet_frame(b),
        gpu_samplers=gpu_sampler_frame(b),
    )


def _empty(what: str) -> Any:
    return styled(pd.DataFrame({"note": [f"No {what} results to show."]}))


def _table(frame: pd.DataFrame, what: str, formats: Mapping[str, str], caption: str) -> Any:
    """``frame`` styled with its column ``formats`` and ``caption``; a note where it is empty
    (the benchmark behind it is missing)."""
    if frame.empty:
        return _empty(what)
    return styled(frame, formats=dict(formats), caption=caption)


def _interval(frame: pd.DataFrame, fmt: str) -> list[str]:
    return [
        f"{fmt.format(m)} [{fmt.format(lo)}, {fmt.format(hi)}]"
        for m, lo, hi in zip(frame["mean"], frame.ci_low, frame.ci_high, strict=True)
    ]


def machine_table(result: Result) -> Any:
    """When and where each CPU benchmark ran."""
    return styled(result.machine, caption="The CPU benchmarks' runs")


def optimizer_table(result: Result) -> Any:
    """The optimisers: time, iterations, CPE, penalty, start level."""
    t = result.optimizers
    if t.empty:
        return _empty("optimiser")
    return styled(
        t.drop(columns=["key", "measured"]),
        formats={
            "wall time (s)": "{:.4g}",
            "CPU time (s)": "{:.4g}",
            "runs": "{:.0f}",
            "CPE": "{:.6f}",
            "CPE reduction": "{:.2%}",
            "regulariser": "{:.2e}",
            "a_K": "{:.4e}",
            "a_K shift": "{:+.1%}",
        },
        caption="VRG optimisers on the official CIFAR-10 profile, 10-step time-quadratic "
        "trajectory (gamma = 0.01, lambda = 100)",
    )


def ddim_table(result: Result) -> Any:
    """DDIM's overhead per model, with the verdict on the goal."""
    t = result.ddim
    if t.empty:
        return _empty("DDIM overhead")
    t = t.copy()
    cols = [c for c in t.columns if c not in ("mean", "ci_low", "ci_high", "p", "verdict")]
    t["mean, paired [95% t]"] = _interval(t, "{:+.1%}")
    return styled(
        t[[*cols, "mean, paired [95% t]", "verdict"]],
        formats={
            "parameters": "{:,}",
            "forward (ms/step)": "{:.3f}",
            "DDIM (ms/step)": "{:.3f}",
            "overhead (us/step)": "{:+.0f}",
            "overhead": "{:+.1%}",
            "overhead, paired": "{:+.1%}",
            "sampler pieces (us/step)": "{:.0f}",
            "of which output check": "{:.0f}",
            "of which DDIM update": "{:.0f}",
            "of which level -> t": "{:.0f}",
            "p (Holm)": "{:.2g}",
        },
        caption=f"DDIM against the forward pass alone; claim judged: the overhead is under "
        f"{DDIM_GOAL:.0%} of the forward time",
    )


def _model_label(result: Result, name: str) -> str:
    m = result.sampler_models.set_index("model")
    return f"{name} ({m.loc[name, 'forward (ms/call, CPU)']:.1f} ms/call)"


def sampler_models_table(result: Result) -> Any:
    """The sampler benchmark's models."""
    return _table(
        result.sampler_models,
        "sampler benchmark",
        formats={
            "parameters": "{:,}",
            "forward (ms/call, CPU)": "{:.2f}",
            "forward (ms/call, wall)": "{:.2f}",
            "wall / CPU": "{:.2f}",
        },
        caption="The sampler benchmark's models",
    )


def sampler_overhead_table(result: Result) -> Any:
    """Overhead per sampler (rows) and model (column groups): the benchmark's median, its wall
    twin, the sampler's own work, and the verdict on the goal."""
    t = result.overhead
    if t.empty:
        return _empty("sampler overhead")
    goal = result.benchmarks["samplers"]["config"]["goal_overhead"]
    t = t.copy()
    t["mean [95% t]"] = _interval(t, "{:+.1%}")
    wide = t.pivot(
        index="sampler",
        columns="model",
        values=["overhead", "wall", "own work (us/call)", "mean [95% t]", "verdict"],
    )
    models = list(dict.fromkeys(t.model))
    wide = wide.reorder_levels([1, 0], axis=1)
    wide = wide[[(m, v) for m in models for v in wide.columns.levels[1] if (m, v) in wide]]
    wide = wide.reindex(list(dict.fromkeys(t.sampler)))
    wide.columns = pd.MultiIndex.from_tuples(
        [(_model_label(result, m), v) for m, v in wide.columns]
    )
    first = t.drop_duplicates("sampler").set_index("sampler")
    wide.insert(0, ("", "NFE"), first["NFE"])
    wide.insert(0, ("", "order"), first["order"])
    pct = [c for c in wide.columns if c[1] in ("overhead", "wall")]
    own = [c for c in wide.columns if c[1] == "own work (us/call)"]
    verdicts = [c for c in wide.columns if c[1] == "verdict"]
    sty = styled(
        wide,
        verdict_columns=verdicts,
        hide_index=False,
        caption=f"Overhead over the forward calls alone (CPU time); claim judged: the overhead "
        f"is at most {goal:.0%} of the model's time (Holm over the table)",
    )
    return sty.format("{:+.1%}", subset=pct).format("{:.0f}", subset=own)


def versus_table(result: Result) -> Any:
    """Our loops against diffusers', with the verdict on "no slower"."""
    t = result.versus
    if t.empty:
        return _empty("diffusers comparison")
    t = t.copy()
    t["model"] = [_model_label(result, m) for m in t.model]
    t["quartiles"] = [f"{a:.3f} .. {b:.3f}" for a, b in zip(t.q1, t.q3, strict=True)]
    t["mean [95% t]"] = _interval(t, "{:.3f}")
    cols = [
        "model",
        "sampler",
        "ours (ms/step, CPU)",
        "diffusers (ms/step, CPU)",
        "ours / diffusers",
        "quartiles",
        "wall",
        "mean [95% t]",
        "p (Holm)",
        "verdict",
        "max abs diff",
        "max abs diff / max |x|",
    ]
    return styled(
        t[cols],
        formats={
            "ours (ms/step, CPU)": "{:.2f}",
            "diffusers (ms/step, CPU)": "{:.2f}",
            "ours / diffusers": "{:.3f}",
            "wall": "{:.3f}",
            "p (Holm)": "{:.2g}",
            "max abs diff": "{:.1e}",
            "max abs diff / max |x|": "{:.1e}",
        },
        caption="Ours against diffusers' loop (CPU time ratio); claim judged: ours is no slower",
    )


def profiling_table(result: Result) -> Any:
    """Batched profiling against the naive loop."""
    return _table(
        result.profiling,
        "profiling",
        formats={
            "library (pairs/s)": "{:,.0f}",
            "naive (pairs/s)": "{:,.0f}",
            "speed-up": "{:.2f}x",
            "model share, library": "{:.1%}",
            "model share, naive": "{:.1%}",
        },
        caption="Algorithm 1: batched across timesteps against one model call per timestep",
    )


def adaptive_table(result: Result) -> Any:
    """Adaptive Algorithm 1 against fixed-N at the same precision."""
    return _table(
        result.adaptive,
        "adaptive profiling",
        formats={
            "target (95%)": "±{:.0%}",
            "adaptive calls": "{:,.0f}",
            "fixed-N calls": "{:,.0f}",
            "fewer calls": "{:.1f}x",
            "adaptive wall (s)": "{:,.1f}",
            "fixed-N wall (s)": "{:,.1f}",
        },
        caption=(
            "CPE of three 10-step trajectories to the target relative half-width: adaptive "
            "allocation against the same n at every timestep of the grid"
        ),
    )


def scaling_table(result: Result) -> Any:
    """Algorithm 1's throughput alone and across processes on this machine."""
    return _table(
        result.scaling,
        "scaling",
        formats={"calls/s": "{:,.0f}", "vs 1 x 1": "{:.2f}x", "start-up (s)": "{:.1f}"},
        caption=(
            "python -m vrg_analysis profile --draws N, alone and under torchrun (gloo): model "
            "calls per second beyond the command's start-up, which the last column shows"
        ),
    )


def paper_size_table(result: Result) -> Any:
    """Algorithm 1 at the paper's size on one GPU, published against adaptive (projected)."""
    return _table(
        result.paper_size,
        "paper-size projection",
        formats={
            "published calls": "{:,.0f}",
            "published (GPU h)": "{:.2f}",
            "published reaches (95%)": "±{:.2%}",
            "target (95%)": "±{:.0%}",
            "adaptive calls": "{:,.0f}",
            "adaptive (GPU h)": "{:.3f}",
        },
        caption=(
            "Projected: Algorithm 1 on CIFAR-10 (50,000 images x 1,000 timesteps) against "
            "adaptive profiling to the target, at the CIFAR-10-sized UNet's measured GPU "
            "throughput, if its errors spread as in each measured model"
        ),
    )


def frechet_table(result: Result) -> Any:
    """The Frechet distance against ``sqrtm``."""
    return _table(
        result.frechet,
        "Frechet distance",
        formats={
            "ours (s)": "{:.2f}",
            "sqrtm (s)": "{:.2f}",
            "time ratio": "{:.2f}",
            "relative difference": "{:.1e}",
        },
        caption="Frechet distance at d = 2048: symmetric eigendecompositions against sqrtm",
    )


def gpu_sampler_table(result: Result) -> Any:
    """The sampler families on a GPU against the bare UNet loop."""
    return _table(
        result.gpu_samplers,
        "GPU sampler",
        formats={
            "library (ms/call)": "{:.1f}",
            "bare UNet loop (ms/call)": "{:.1f}",
            "ratio": "{:.3f}",
        },
        caption="On a GPU, batch of CIFAR-sized images: the library's samplers against bare "
        "UNet calls",
    )


def figure_optimisers(result: Result) -> Any:
    """Wall time (log scale) and final CPE of each optimiser; the published run hatched."""
    t = result.optimizers
    fig, ax = plt.subplots(figsize=(PAGE_WIDTH, 3.0))
    if t.empty:
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no optimiser results", ha="center")
        plt.close(fig)
        return fig
    cols = [colour(_OPT_COLOURS[k]) if k in _OPT_COLOURS else "#bbbbbb" for k in t.key]
    bars = ax.barh(t.method, t["wall time (s)"], color=cols, edgecolor="black", linewidth=0.6)
    for bar, (_, r) in zip(bars, t.iterrows(), strict=True):
        if not r.measured:
            bar.set_hatch("//")
        approx = "" if r.measured else "~"
        note = f" {approx}{r['wall time (s)']:.3g} s, CPE {r.CPE:.4f}"
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, note, va="center", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlim(t["wall time (s)"].min() / 3, t["wall time (s)"].max() * 30)
    ax.invert_yaxis()
    ax.set_xlabel("wall time (s, log scale)")
    ax.set_title("VRG optimisers: wall time and final CPE (hatched: published, not measured)")
    fig.tight_layout()
    plt.close(fig)
    return fig


def figure_samplers(result: Result) -> Any:
    """Left: each sampler's overhead per model (mean with its 95% t interval; dashed: the goal).
    Right: our loops' CPU time over diffusers' (mean with its 95% t interval; dashed: equal)."""
    ov, vs = result.overhead, result.versus
    fig, (ax0, ax1) = plt.subplots(
        1, 2, figsize=(PAGE_WIDTH, 5.2), gridspec_kw={"width_ratios": [2.2, 1]}
    )
    if ov.empty or vs.empty:
        for ax in (ax0, ax1):
            ax.set_axis_off()
        plt.close(fig)
        return fig
    goal = result.benchmarks["samplers"]["config"]["goal_overhead"]
    goal_ratio = result.benchmarks["samplers"]["config"]["goal_ratio"]
    models = list(dict.fromkeys(ov.model))
    pal = dict(zip(models, sns.color_palette("colorblind", len(models)), strict=True))
    height = 0.8 / len(models)

    def rows(ax: Any, frame: pd.DataFrame, scale: float) -> list[str]:
        names = list(dict.fromkeys(frame.sampler))
        for j, m in enumerate(models):
            sub = frame[frame.model == m].set_index("sampler").reindex(names)
            ys = np.arange(len(names)) + (j - (len(models) - 1) / 2) * height
            mid = scale * sub["mean"].to_numpy()
            err = np.vstack([mid - scale * sub.ci_low, scale * sub.ci_high - mid])
            ax.errorbar(
                mid,
                ys,
                xerr=np.clip(err, 0, None),
                fmt="o",
                ms=3.5,
                capsize=2,
                color=pal[m],
                label=_model_label(result, m),
            )
        ax.set_yticks(range(len(names)), names)
        ax.set_ylim(len(names) - 0.5, -0.5)
        return names

    rows(ax0, ov, 100.0)
    ax0.axvline(100 * goal, color="black", ls="--", lw=1)
    ax0.axvline(0, color="grey", lw=0.6)
    ax0.set_xlabel("overhead over the forward calls (%, CPU time)")
    ax0.set_title(f"Sampler overhead (dashed: {goal:.0%} goal)")
    rows(ax1, vs, 1.0)
    ax1.axvline(goal_ratio, color="black", ls="--", lw=1)
    ax1.set_xlabel("CPU time, ours / diffusers")
    ax1.set_title("Against diffusers' loop\n(dashed: equal time)")
    handles, labels = ax0.get_legend_handles_labels()
    fig.tight_layout()
    fig.legend(
        handles,
        labels,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=3,
        frameon=False,
        fontsize=8,
    )
    plt.close(fig)
    return fig


# ===================================================================== the prose's numbers
@dataclass(frozen=True)
class Summary:
    """Every number and phrase the appendix's prose cites (glued by field name); NaN or "n/a"
    where a benchmark is missing."""

    machine: str = "n/a"
    opt_threads: float = NAN
    ddim_threads: float = NAN
    smp_threads: float = NAN
    missing_note: str = ""
    # optimisers
    opt_date: str = "n/a"
    cpe_initial: float = NAN
    exact_wall_s: float = NAN
    exact_cpe: float = NAN
    exact_reduction: float = NAN
    exact_shift: float = NAN
    exact_iterations: float = NAN
    keep_start_wall_s: float = NAN
    keep_start_cpe: float = NAN
    keep_start_reduction: float = NAN
    mlp_wall_s: float = NAN
    mlp_wall_min: float = NAN
    mlp_cpe: float = NAN
    mlp_reduction: float = NAN
    mlp_shift: float = NAN
    mlp_epochs: float = NAN
    mlp_hidden: float = NAN
    mlp_config_note: str = "n/a"
    mlp_over_exact: float = NAN
    cpe_mlp_minus_exact: float = NAN
    published_cpe_final: float = NAN
    published_cpe_recomputed: float = NAN
    published_shift: float = NAN
    published_wall: str = "n/a"
    start_level_note: str = "n/a"
    published_over_exact: float = NAN
    # DDIM
    ddim_steps: float = NAN
    ddim_repeat: float = NAN
    ddim_overhead_max: float = NAN
    ddim_overhead_min: float = NAN
    ddim_worst: str = "n/a"
    ddim_goal: float = DDIM_GOAL
    ddim_verdict: str = "unknown: no results"
    ddim_pieces_max_us: float = NAN
    ddim_forward_min_ms: float = NAN
    ddim_remainder_note: str = "n/a"
    ddim_largest: str = "n/a"
    ddim_largest_params: float = NAN
    ddim_largest_overhead: float = NAN
    # samplers
    smp_steps: float = NAN
    smp_repeat: float = NAN
    smp_n_samplers: float = NAN
    smp_n_models: float = NAN
    smp_n_pairs: float = NAN
    smp_goal: float = NAN
    smp_fwd_min_ms: float = NAN
    smp_fwd_min_model: str = "n/a"
    smp_fwd_max_ms: float = NAN
    smp_fwd_max_model: str = "n/a"
    smp_verdict: str = "unknown: no results"
    smp_worst_overhead: float = NAN
    smp_worst_sampler: str = "n/a"
    smp_worst_model: str = "n/a"
    smp_iqr_median: float = NAN
    smp_null_max_us: float = NAN
    smp_null_worst: str = "n/a"
    smp_null_share: float = NAN
    smp_own_work_note: str = "n/a"
    smp_contention_note: str = "n/a"
    vs_repeat: float = NAN
    vs_ratio_min: float = NAN
    vs_ratio_max: float = NAN
    vs_verdict: str = "unknown: no results"
    vs_diff_max_abs: float = NAN
    vs_diff_max_rel: float = NAN
    vs_agree_note: str = "n/a"
    # profiling, Frechet
    prof_best_speedup: float = NAN
    prof_best_case: str = "n/a"
    prof_goal: float = NAN
    prof_goal_note: str = "n/a"
    prof_unet_share: float = NAN
    prof_min_share: float = NAN
    fr_ratio: float = NAN
    fr_diff: float = NAN
    # adaptive profiling
    ad_target: float = NAN
    ad_min_ratio: float = NAN
    ad_max_ratio: float = NAN
    ad_goal: float = NAN
    ad_goal_note: str = "n/a"
    ad_models: str = "n/a"
    # across processes, and at the paper's size
    sc_model: str = "n/a"
    sc_two_processes: float = NAN
    sc_two_threads: float = NAN
    sc_torchrun_start_s: float = NAN
    sc_compare_note: str = "n/a"
    ps_published_hours: float = NAN
    ps_adaptive_hours_max: float = NAN
    ps_adaptive_s_min: float = NAN
    ps_published_reach_min: float = NAN
    ps_published_reach_max: float = NAN
    # GPU
    gpu_name: str = "n/a"
    gpu_prof_rel: float = NAN
    gpu_prof_ratio: float = NAN
    gpu_prof_pairs: float = NAN
    gpu_prof_share: float = NAN
    gpu_fid_diff: float = NAN
    gpu_mse_diff: float = NAN
    gpu_engine_speedup: float = NAN
    gpu_engine_cpu_s: float = NAN
    gpu_engine_gpu_s: float = NAN
    gpu_engine_threads: float = NAN
    gpu_batch: float = NAN
    gpu_ratio_max: float = NAN
    gpu_proj_calls: float = NAN
    gpu_proj_hours: float = NAN
    gpu_proj_n: float = NAN


def _by_verdict(names: Sequence[str], verdicts: Sequence[str]) -> str:
    """ "supported for a, b; inconclusive for c" (verdicts in the book's order)."""
    parts = []
    for v in ("supported", "contradicted", "inconclusive"):
        hit = [n for n, w in zip(names, verdicts, strict=True) if w == v]
        if hit:
            parts.append(f"{v} for {', '.join(hit)}")
    return "; ".join(parts)


def _optimiser_fields(b: Benchmarks) -> dict[str, Any]:
    opt = b["optimizers"]
    if opt is None:
        return {}
    runs, pub = opt["runs"], opt["published"]
    ex, ks, mlp = runs["exact"], runs["exact_keep_start"], runs["mlp_sgd"]
    held_most = ks["cpe_reduction"] < 0.5 * ex["cpe_reduction"]
    return {
        "opt_date": opt["date"],
        "opt_threads": opt["config"]["threads"],
        "cpe_initial": ex["cpe_initial"],
        "exact_wall_s": ex["timing"]["median_s"],
        "exact_cpe": ex["cpe_final"],
        "exact_reduction": ex["cpe_reduction"],
        "exact_shift": ex["start_level_shift"],
        "exact_iterations": ex["iterations"],
        "keep_start_wall_s": ks["timing"]["median_s"],
        "keep_start_cpe": ks["cpe_final"],
        "keep_start_reduction": ks["cpe_reduction"],
        "mlp_wall_s": mlp["timing"]["median_s"],
        "mlp_wall_min": mlp["timing"]["median_s"] / 60,
        "mlp_cpe": mlp["cpe_final"],
        "mlp_reduction": mlp["cpe_reduction"],
        "mlp_shift": mlp["start_level_shift"],
        "mlp_epochs": opt["config"]["mlp"]["epochs"],
        "mlp_hidden": opt["config"]["mlp"]["hidden_dim"],
        "mlp_config_note": (
            "the official configuration"
            if opt["config"]["mlp_official_config"]
            else "a SHORTENED smoke configuration, not the official one"
        ),
        "mlp_over_exact": opt["ratios"]["mlp_over_exact_wall"],
        "cpe_mlp_minus_exact": opt["ratios"]["cpe_mlp_minus_exact"],
        "published_cpe_final": pub["cpe_final"],
        "published_cpe_recomputed": pub.get("cpe_final_recomputed", NAN),
        "published_shift": pub["start_level_shift"],
        "published_wall": pub["wall_time"],
        "published_over_exact": opt["ratios"]["published_over_exact_wall_approx"],
        "start_level_note": (
            "most of the reduction on this trajectory comes from starting the sampler at a less "
            "noisy level, not from moving the inner levels"
            if held_most
            else "most of the reduction survives when the start level is held"
        ),
    }


def _ddim_fields(result: Result) -> dict[str, Any]:
    d, doc = result.ddim, result.benchmarks["ddim_overhead"]
    if d.empty or doc is None:
        return {}
    worst = d.loc[d.overhead.idxmax()]
    pieces, measured = worst["sampler pieces (us/step)"], worst["overhead (us/step)"]
    if measured > 2 * pieces:
        remainder = (
            f"for {worst.model} the pieces account for {pieces:.0f} of the {measured:.0f} µs "
            "measured per step: the rest is not time spent in the sampler's own lines when they "
            "are timed alone; it appears only when they run interleaved with the model calls "
            "(most likely cache and memory-allocator effects on a small CPU)"
        )
    else:
        remainder = f"for {worst.model} they account for most of the {measured:.0f} µs measured"
    largest = d.loc[d.parameters.idxmax()]
    verdict = aggregate(d.verdict)
    return {
        "ddim_threads": doc["config"]["threads"],
        "ddim_steps": doc["config"]["steps"],
        "ddim_repeat": doc["config"]["repeat"],
        "ddim_overhead_max": float(d.overhead.max()),
        "ddim_overhead_min": float(d.overhead.min()),
        "ddim_worst": str(worst.model),
        "ddim_verdict": (
            f"{verdict} over the {len(d)} models ({_by_verdict(list(d.model), list(d.verdict))};"
            " Holm over the models)"
        ),
        "ddim_pieces_max_us": float(d["sampler pieces (us/step)"].max()),
        "ddim_forward_min_ms": float(d["forward (ms/step)"].min()),
        "ddim_remainder_note": remainder,
        "ddim_largest": str(largest.model),
        "ddim_largest_params": int(largest.parameters),
        "ddim_largest_overhead": float(largest.overhead),
    }


def _sampler_fields(result: Result) -> dict[str, Any]:
    ov, models, doc = result.overhead, result.sampler_models, result.benchmarks["samplers"]
    if ov.empty or doc is None:
        return {}
    goal = doc["config"]["goal_overhead"]
    fwd = models.set_index("model")["forward (ms/call, CPU)"]
    params_of = models.set_index("model")["parameters"]
    per_model = []
    for m in dict.fromkeys(ov.model):
        sub = ov[ov.model == m]
        w = sub.loc[sub.overhead.idxmax()]
        counts = ", ".join(
            f"{int((sub.verdict == v).sum())} {v}"
            for v in ("supported", "contradicted", "inconclusive")
        )
        per_model.append(
            f"{m} ({fwd[m]:.1f} ms per model call, {params_of[m]:,} parameters): {counts} of "
            f"{len(sub)}, median overhead up to {w.overhead:+.1%} ({w.sampler})"
        )
    verdict = (
        f"{aggregate(ov.verdict)} over the {len(ov)} (sampler, model) pairs (Holm over the "
        f"table): " + "; ".join(per_model)
    )
    worst = ov.loc[ov.overhead.idxmax()]
    null_worst = ov.loc[ov["own work (us/call)"].idxmax()]
    measured_us = float(ov["overhead (us/call, CPU)"].max())
    if measured_us > 2 * null_worst["own work (us/call)"]:
        own = (
            f"while the overhead measured with the real models reaches {measured_us:.0f} µs of "
            "CPU time per call: as in the DDIM section above, most of the measured overhead is "
            "not time spent in the samplers' own lines when they are timed alone; it appears only "
            "when they run between model calls (most likely caches and memory allocation: each "
            "model call evicts what the sampler's next small tensor operations need), and on a "
            "machine shared with other work part of it is noise"
        )
    else:
        own = (
            f"and the overhead measured with the real models is at most {measured_us:.0f} µs of "
            "CPU time per call, of the same size"
        )
    busy = float(models["wall / CPU"].max())
    if busy < 1.1:
        contention = f"quiet during the run (wall / CPU time at most {busy:.2f})"
    else:
        contention = (
            f"busy with other work during the run (wall / CPU time up to {busy:.2f}): a shared "
            "core also slows the model's own CPU time, so these figures are less certain than on "
            "a quiet machine"
        )
    fastest, slowest = fwd.idxmin(), fwd.idxmax()
    return {
        "smp_threads": doc["config"]["threads"],
        "smp_steps": doc["config"]["steps"],
        "smp_repeat": doc["config"]["repeat"],
        "smp_n_samplers": ov.sampler.nunique(),
        "smp_n_models": len(models),
        "smp_n_pairs": len(ov),
        "smp_goal": goal,
        "smp_fwd_min_ms": float(fwd[fastest]),
        "smp_fwd_min_model": str(fastest),
        "smp_fwd_max_ms": float(fwd[slowest]),
        "smp_fwd_max_model": str(slowest),
        "smp_verdict": verdict,
        "smp_worst_overhead": float(worst.overhead),
        "smp_worst_sampler": str(worst.sampler),
        "smp_worst_model": str(worst.model),
        "smp_iqr_median": statistics.median(ov.q3 - ov.q1),
        "smp_null_max_us": float(null_worst["own work (us/call)"]),
        "smp_null_worst": str(null_worst.sampler),
        "smp_null_share": float(null_worst["own work (us/call)"] / (1e3 * fwd[fastest])),
        "smp_own_work_note": own,
        "smp_contention_note": contention,
    }


def _versus_fields(result: Result) -> dict[str, Any]:
    vs, doc = result.versus, result.benchmarks["samplers"]
    if vs.empty or doc is None:
        return {}
    names = [f"{r.sampler} on {r.model}" for _, r in vs.iterrows()]
    verdict = (
        f"{aggregate(vs.verdict)} over the {len(vs)} (sampler, model) pairs "
        f"({_by_verdict(names, list(vs.verdict))}; Holm over the table)"
    )
    big = vs[vs["max abs diff"] >= 1e-4]
    if big.empty:
        agree = "every output is within 1e-4 of diffusers' in absolute terms"
    else:
        agree = (
            "the absolute differences reach 1e-4 only for "
            + ", ".join(sorted(set(big.model)))
            + ", whose untrained networks give samples of magnitude up to "
            + f"{big['max |x|'].max():.0f}: there 1e-4 is a few float32 rounding steps"
        )
    return {
        "vs_repeat": doc["config"].get("repeat_diffusers", doc["config"]["repeat"]),
        "vs_ratio_min": float(vs["ours / diffusers"].min()),
        "vs_ratio_max": float(vs["ours / diffusers"].max()),
        "vs_verdict": verdict,
        "vs_diff_max_abs": float(vs["max abs diff"].max()),
        "vs_diff_max_rel": float(vs["max abs diff / max |x|"].max()),
        "vs_agree_note": agree,
    }


def _profiling_fields(result: Result) -> dict[str, Any]:
    p, doc = result.profiling, result.benchmarks["profiling"]
    out: dict[str, Any] = {}
    if not p.empty and doc is not None:
        best = p.loc[p["speed-up"].idxmax()]
        goal = doc["config"].get("goals", {}).get("ratio_library_over_naive", NAN)
        unet = p[p.model.str.contains("UNet")]
        out.update(
            prof_best_speedup=float(best["speed-up"]),
            prof_best_case=str(best.case),
            prof_goal=goal,
            prof_goal_note=(
                f"short of the {goal:.0f}x goal" if best["speed-up"] < goal else "at the goal"
            ),
            prof_unet_share=float(unet["model share, library"].iloc[0]) if len(unet) else NAN,
            prof_min_share=float(p["model share, library"].min()),
        )
    f = result.frechet
    if not f.empty:
        out.update(
            fr_ratio=float(f["time ratio"].iloc[0]), fr_diff=float(f["relative difference"].iloc[0])
        )
    return out


def _adaptive_fields(result: Result) -> dict[str, Any]:
    t, doc = result.adaptive, result.benchmarks["adaptive_profiling"]
    if t.empty or doc is None:
        return {}
    goal = float(doc["config"].get("goals", {}).get("calls_ratio_fixed_over_adaptive", 10.0))
    low = float(t["fewer calls"].min())
    return {
        "ad_target": float(t["target (95%)"].iloc[0]),
        "ad_min_ratio": low,
        "ad_max_ratio": float(t["fewer calls"].max()),
        "ad_goal": goal,
        "ad_goal_note": (
            f"every model at or beyond the {goal:.0f}x goal"
            if low >= goal
            else f"short of the {goal:.0f}x goal on at least one model"
        ),
        "ad_models": ", ".join(t["model"]),
    }


def _scaling_fields(result: Result) -> dict[str, Any]:
    out: dict[str, Any] = {}
    t, doc = result.scaling, result.benchmarks["scaling"]
    if not t.empty and doc is not None:
        by = t.set_index("arm")
        out.update(
            sc_model=str(doc["config"]["model"]),
            sc_two_processes=float(by.loc["2 processes x 1 thread", "vs 1 x 1"]),
            sc_two_threads=float(by.loc["1 process x 2 threads", "vs 1 x 1"]),
            sc_torchrun_start_s=float(by.loc["2 processes x 1 thread", "start-up (s)"]),
        )
        two_p, two_t = out["sc_two_processes"], out["sc_two_threads"]
        out["sc_compare_note"] = (
            "two processes outran two threads of one process"
            if two_p > two_t
            else "two threads of one process did at least as well as two processes"
        )
    p = result.paper_size
    if not p.empty:
        out.update(
            ps_published_hours=float(p["published (GPU h)"].iloc[0]),
            ps_adaptive_hours_max=float(p["adaptive (GPU h)"].max()),
            ps_adaptive_s_min=3600.0 * float(p["adaptive (GPU h)"].min()),
            ps_published_reach_min=float(p["published reaches (95%)"].min()),
            ps_published_reach_max=float(p["published reaches (95%)"].max()),
        )
    return out


def _gpu_fields(result: Result) -> dict[str, Any]:
    b = result.benchmarks
    out: dict[str, Any] = {}
    prof, study = b["profiling_gpu"], b["study_gpu"]
    if prof is not None:
        out.update(
            gpu_name=prof["machine"].get("gpu", "n/a"),
            gpu_prof_rel=prof["agreement"]["max_rel_diff_mse"],
            gpu_prof_ratio=prof["ratio_library_over_naive"],
            gpu_prof_pairs=prof["library"]["pairs_per_s"],
            gpu_prof_share=prof["library"]["model_time_share"],
        )
    if study is not None:
        ag, pr = study["agreement"], study["projection"]
        g = result.gpu_samplers
        out.update(
            gpu_fid_diff=ag["max_abs_diff_fid"],
            gpu_mse_diff=ag["max_abs_diff_image_mse"],
            gpu_engine_speedup=ag["speedup_device_over_cpu"],
            gpu_engine_cpu_s=ag["wall_s"]["cpu"],
            gpu_engine_gpu_s=ag["wall_s"]["cuda"],
            gpu_engine_threads=study["threads"],
            gpu_batch=study["sampler_cost"].get("batch", NAN),
            gpu_ratio_max=float(g.ratio.max()) if not g.empty else NAN,
            gpu_proj_calls=pr.get("model_calls", NAN),
            gpu_proj_hours=pr.get("projected_hours", NAN),
            gpu_proj_n=pr.get("n_samples", NAN),
        )
        if prof is None:
            out["gpu_name"] = study["machine"].get("gpu", "n/a")
    return out


def summary(result: Result) -> Summary:
    """The numbers and phrases the appendix cites."""
    b = result.benchmarks
    any_doc = next((b[k] for k in CPU_BENCHMARKS if b[k] is not None), None)
    fields: dict[str, Any] = {
        "machine": describe_machine(any_doc["machine"]) if any_doc else "n/a",
        "missing_note": " ".join(result.notes),
        **_optimiser_fields(b),
        **_ddim_fields(result),
        **_sampler_fields(result),
        **_versus_fields(result),
        **_profiling_fields(result),
        **_adaptive_fields(result),
        **_scaling_fields(result),
        **_gpu_fields(result),
    }
    return Summary(**fields)
