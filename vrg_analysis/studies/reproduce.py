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

For a text-to-image pipeline the page counts work instead of time (no such model was timed here):
:func:`unet_evaluations` is the number of UNet image-evaluations a comparison makes (Algorithm 1
on the profiled rows at every profiled timestep, the fine reference solve per seed, and every
arm's sampling), each guided call costing two (the empty and the caption prompt in one batch);
``tests/test_testbed_pipeline.py`` checks it against a counted run of the tiny pipeline.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from vrg_analysis.samplers import get_sampler
from vrg_analysis.studies import performance
from vrg_analysis.studies.artifacts import params_from_set
from vrg_analysis.studies.engine import ComparisonConfig
from vrg_analysis.studies.performance import Benchmarks, load_benchmarks

__all__ = [
    "Params",
    "Costs",
    "PROFILE_TIMESTEPS",
    "PROFILE_IMAGES",
    "costs",
    "unet_evaluations",
    "text_to_image_evaluations",
    "run",
]

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
    # the guidance chapter's ``gpu`` set on a text-to-image pipeline (UNet image-evaluations)
    t2i_profile: int = 0
    t2i_reference: int = 0
    t2i_sampling: int = 0
    t2i_total: int = 0


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


def unet_evaluations(
    config: ComparisonConfig, num_timesteps: int = 1000, train_rows: int | None = None
) -> dict[str, int]:
    """UNet image-evaluations of one comparison of the trained model (module docstring):
    ``profile`` (Algorithm 1: the profiled rows, at most ``train_rows``, times the timesteps
    ``0, stride, ..`` and the last; per seed with ``profile_per_seed``), ``reference`` (seeds x
    samples x ``reference_steps``), ``sampling`` (seeds x samples x (1 + VRG arms) x the NFE of
    every sampler, baseline and K) and their ``total``; guided calls count twice."""
    if config.predictor != "trained":
        raise ValueError(
            f"only the trained model's comparisons call a UNet, not {config.predictor!r}"
        )
    last = int(num_timesteps) - 1
    levels = np.union1d(np.arange(0, last, config.profile_stride), [last]).size
    rows = config.profile_samples if train_rows is None else min(config.profile_samples, train_rows)
    seeds, n = len(config.seeds), config.n_samples
    guided = 2 if config.guidance_scale not in (None, 0.0, 1.0) else 1
    nfe = sum(
        get_sampler(s).nfe(k)
        for s in config.samplers
        for _ in config.baselines
        for k in config.steps
    )
    out = {
        "profile": guided * rows * levels * (seeds if config.profile_per_seed else 1),
        "reference": guided * seeds * n * config.reference_steps,
        "sampling": guided * seeds * n * (1 + len(config.arms)) * nfe,
    }
    out["total"] = sum(out.values())
    return out


def text_to_image_evaluations(num_timesteps: int = 1000) -> dict[str, int]:
    """:func:`unet_evaluations` of the guidance chapter's ``gpu`` parameter set, summed over its
    guidance scales (the device set to the CPU only to build the parameters here)."""
    params = params_from_set("guidance", "gpu", {"device": "cpu"})
    out = {"profile": 0, "reference": 0, "sampling": 0, "total": 0}
    for config in params.configs().values():
        for key, value in unet_evaluations(config, num_timesteps).items():
            out[key] += value
    return out


def run(params: Params) -> Costs:
    """Read the GPU benchmarks from ``params.results_dir`` and compute the costs."""
    t2i = text_to_image_evaluations()
    return dataclasses.replace(
        costs(load_benchmarks(params.results_dir)),
        t2i_profile=t2i["profile"],
        t2i_reference=t2i["reference"],
        t2i_sampling=t2i["sampling"],
        t2i_total=t2i["total"],
    )
