"""The study engine on a CUDA GPU: agreement with the CPU, speed, and what a CIFAR-10-sized
model costs per model call.

Three measurements, written to ``benchmarks/results/study_gpu.json``:

1. **Agreement and speed on the digits testbed.** :func:`vrg_analysis.comparison.run_comparison`
   (no cache) with ``device="cpu"`` and ``device="cuda"`` on the same configuration (TF32 off):
   the largest difference of any arm's FID and of any sample's endpoint deviation, and the wall
   time of each (the CPU run uses ``--threads`` torch threads).
2. **Sampler cost on a CIFAR-10-sized UNet** (diffusers' ``UNet2DModel`` with the DDPM CIFAR-10
   architecture, random weights: only cost is measured): for each sampler family at K = 10 and a
   batch of ``--batch`` images, the wall time per model call inside ``samplers.sample`` against
   a bare loop of the same number of UNet calls (the library's overhead on a GPU).
3. **Projection**: the model calls of a quality-vs-steps run with the sizes of
   ``notebooks/params/gpu/quality_vs_steps.yaml`` times the measured time per call at that batch.

    python benchmarks/gpu_study_cost.py              # needs CUDA; about 2-4 min on one H100
    python benchmarks/gpu_study_cost.py --cpu-smoke  # checks the script on the CPU, tiny sizes

Without CUDA (and without ``--cpu-smoke``) it stops with exit status 1 and writes nothing. If
diffusers cannot be imported, part 2 and 3 are recorded as skipped with the reason.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from _common import machine_info, set_threads, write_result

from vrg_analysis import NoiseSchedule, TorchEpsModel
from vrg_analysis.core.trajectories import baseline, time_uniform
from vrg_analysis.samplers import get_sampler, initial_noise, sample
from vrg_analysis.studies.engine import ComparisonConfig, run_comparison
from vrg_analysis.vrg.retime import VRGSetting

log = logging.getLogger("gpu_study_cost")
FAMILIES = ("ddim", "dpm_solver_2", "s_pndm", "deis_tab2")
GPU_PARAMS = Path(__file__).resolve().parent.parent / "notebooks/params/gpu/quality_vs_steps.yaml"


def agreement(device: str, smoke: bool) -> dict[str, Any]:
    cfg = dict(
        testbed="digits",
        samplers=("ddim", "dpm_solver_2"),
        baselines=("logsnr_uniform",),
        steps=(5, 10),
        seeds=(0, 1, 2),
        n_samples=16 if smoke else 450,
        reference_steps=20 if smoke else 200,
        vrg=(VRGSetting(0.01, 100.0),),
    )
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    runs, walls = {}, {}
    for where in ("cpu", device):
        t0 = time.perf_counter()
        runs[where] = run_comparison(ComparisonConfig(device=where, **cfg), use_cache=False)
        walls[where] = time.perf_counter() - t0
    a, b = runs["cpu"], runs[device]
    fid_diff = max(abs(x.set_value - y.set_value) for x, y in zip(a.arms, b.arms, strict=True))
    mse_diff = max(
        float(np.max(np.abs(x.per_sample["image_mse"] - y.per_sample["image_mse"])))
        for x, y in zip(a.arms, b.arms, strict=True)
    )
    torch.backends.cudnn.allow_tf32 = True
    return {
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items() if k != "vrg"},
        "model_calls": a.model_calls,
        "max_abs_diff_fid": fid_diff,
        "max_abs_diff_image_mse": mse_diff,
        "fid_range": [min(x.set_value for x in a.arms), max(x.set_value for x in a.arms)],
        "wall_s": walls,
        "speedup_device_over_cpu": walls["cpu"] / walls[device],
    }


def sampler_cost(device: torch.device, batch: int, smoke: bool) -> dict[str, Any]:
    from gpu_profiling import ddpm_cifar10_unet

    try:
        unet = ddpm_cifar10_unet(0).to(device)
    except (ImportError, RuntimeError) as exc:  # diffusers (or one of its needs) missing
        return {"skipped": f"diffusers unavailable: {exc}"}
    sched = NoiseSchedule.linear()
    if smoke:
        unet = unet.float()

    class Bare:
        def __init__(self) -> None:
            self.calls = 0

        def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            self.calls += 1
            return unet(x, t).sample

    model = TorchEpsModel(Bare(), sched)
    x_t = initial_noise((batch, 3, 32, 32), 0).to(device)
    out: dict[str, Any] = {"batch": batch, "parameters": sum(p.numel() for p in unet.parameters())}

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    with torch.no_grad():
        sample("ddim", model, x_t, time_uniform(sched, 3))  # warm-up
        sync()
        for name in FAMILIES:
            traj = baseline("time_uniform", sched, 10)
            t0 = time.perf_counter()
            res = sample(name, model, x_t, traj)
            sync()
            lib = time.perf_counter() - t0
            t_int = torch.full((batch,), 500, device=device)
            t0 = time.perf_counter()
            for _ in range(res.nfe):
                unet(x_t, t_int)
            sync()
            bare = time.perf_counter() - t0
            out[name] = {
                "nfe": res.nfe,
                "library_s_per_call": lib / res.nfe,
                "bare_s_per_call": bare / res.nfe,
                "ratio": lib / bare,
            }
            log.info(
                "%s: %.1f ms per call (bare %.1f ms)",
                name,
                1e3 * lib / res.nfe,
                1e3 * bare / res.nfe,
            )
    return out


def projection(cost: dict[str, Any]) -> dict[str, Any]:
    if "skipped" in cost or not GPU_PARAMS.is_file():
        return {"skipped": "no sampler cost or no gpu parameter file"}
    p = yaml.safe_load(GPU_PARAMS.read_text())
    per_seed = int(p["reference_steps"])
    for name in p["samplers"]:
        spec = get_sampler(name)
        per_seed += 2 * len(p["baselines"]) * sum(spec.nfe(k) for k in p["steps"])
    calls = per_seed * len(p["seeds"])
    per_call = float(np.mean([cost[f]["library_s_per_call"] for f in FAMILIES]))
    scale = int(p["n_samples"]) / int(cost["batch"])
    return {
        "params_file": str(GPU_PARAMS.relative_to(GPU_PARAMS.parents[3])),
        "model_calls": calls,
        "n_samples": int(p["n_samples"]),
        "s_per_call_at_measured_batch": per_call,
        "assumed_scaling": "time per call proportional to batch size",
        "projected_hours": calls * per_call * scale / 3600.0,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=500, help="images per sampler call (part 2)")
    ap.add_argument("--threads", type=int, default=8, help="torch CPU threads")
    ap.add_argument("--cpu-smoke", action="store_true", help="no GPU: tiny run, CPU only")
    ap.add_argument("--results-dir", default=None, help="output folder (default: results/)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.cpu_smoke:
        dev, name, args.batch = torch.device("cpu"), "study_gpu_cpu_smoke", 2
    elif not torch.cuda.is_available():
        raise SystemExit(
            "gpu_study_cost.py: no CUDA GPU here, so nothing was measured or written; pass "
            "--cpu-smoke to check the script on the CPU."
        )
    else:
        dev, name = torch.device("cuda"), "study_gpu"
    threads = set_threads(args.threads)
    machine = machine_info()
    if dev.type == "cuda":
        machine["gpu"] = torch.cuda.get_device_name(dev)
        machine["cuda"] = torch.version.cuda
    result: dict[str, Any] = {"threads": threads, "machine": machine}
    result["agreement"] = agreement(dev.type, args.cpu_smoke)
    log.info("agreement: %s", {k: v for k, v in result["agreement"].items() if k != "config"})
    result["sampler_cost"] = sampler_cost(dev, args.batch, args.cpu_smoke)
    result["projection"] = projection(result["sampler_cost"])
    log.info("projection: %s", result["projection"])
    write_result(name, result, Path(args.results_dir) if args.results_dir else None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
