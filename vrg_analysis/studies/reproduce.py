"""The "reproduce on your model" page: what each step costs on a GPU, from the GPU benchmarks.

The page is mostly commands; its numbers come from the two GPU benchmarks the performance
appendix reads (:func:`vrg_analysis.studies.performance.load_benchmarks`):
``profiling_gpu.json`` (Algorithm 1, the paper's error profile ``w(alpha_bar)``, measured in
(image, timestep) pairs per second) and ``study_gpu.json`` (the time per model call of every
sampler family and the projected cost of the quality chapter's ``gpu`` parameter set).

The projections are plain arithmetic (:func:`costs`): profiling all :data:`PROFILE_TIMESTEPS`
training timesteps on :data:`PROFILE_IMAGES` images takes ``timesteps * images / throughput``
seconds; sampling costs the mean time per model call over the sampler families, and the samplers'
overhead is their largest time ratio to the bare UNet calls, minus one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from vrg_analysis.studies import performance
from vrg_analysis.studies.performance import Benchmarks, load_benchmarks

__all__ = ["Params", "Costs", "PROFILE_TIMESTEPS", "PROFILE_IMAGES", "costs", "run"]

NAN = math.nan
#: a full profile: every training timestep ...
PROFILE_TIMESTEPS = 1000
#: ... on this many training images
PROFILE_IMAGES = 2048


#: The page's one parameter, as the performance appendix's: the folder of the benchmarks' JSON
#: files (empty: the project's ``benchmarks/results``).
Params = performance.Params


@dataclass(frozen=True)
class Costs:
    """Every number the page cites (glued by field name); NaN where a benchmark is missing."""

    gpu: str = "no GPU measured"
    pairs_per_s: float = NAN
    profile_timesteps: int = PROFILE_TIMESTEPS
    profile_images: int = PROFILE_IMAGES
    profile_minutes: float = NAN
    ms_per_call: float = NAN
    batch: float = NAN
    params_m: float = NAN
    overhead_pct: float = NAN
    calls: float = NAN
    hours: float = NAN
    n_per_seed: float = NAN


def costs(b: Benchmarks) -> Costs:
    """The costs of profiling and sampling on the GPU the benchmarks ran on."""
    prof, study = b["profiling_gpu"], b["study_gpu"]
    gpu = (prof or study or {}).get("machine", {}).get("gpu", "no GPU measured")
    pairs = prof["library"]["pairs_per_s"] if prof else NAN
    sc = (study or {}).get("sampler_cost", {})
    families = [v for v in sc.values() if isinstance(v, dict) and "library_s_per_call" in v]
    per_call = [v["library_s_per_call"] for v in families]
    ratios = [v["ratio"] for v in families if "ratio" in v]
    pr = (study or {}).get("projection", {})
    return Costs(
        gpu=gpu,
        pairs_per_s=pairs,
        profile_minutes=PROFILE_TIMESTEPS * PROFILE_IMAGES / pairs / 60 if prof else NAN,
        ms_per_call=1e3 * sum(per_call) / len(per_call) if per_call else NAN,
        batch=sc.get("batch", NAN),
        params_m=sc.get("parameters", NAN) / 1e6,
        overhead_pct=100 * (max(ratios) - 1) if ratios else NAN,
        calls=pr.get("model_calls", NAN),
        hours=pr.get("projected_hours", NAN),
        n_per_seed=pr.get("n_samples", NAN),
    )


def run(params: Params) -> Costs:
    """Read the GPU benchmarks from ``params.results_dir`` and compute the costs."""
    return costs(load_benchmarks(params.results_dir))
