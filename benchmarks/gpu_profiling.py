"""Algorithm 1 on a CIFAR-10-sized UNet, on the CPU and on a CUDA GPU: agreement and throughput.

The model is diffusers' ``UNet2DModel`` with the DDPM CIFAR-10 architecture (Ho et al. 2020:
3 x 32 x 32, channels 128-256-256-256, two residual blocks per resolution, attention at 16 x 16,
dropout off; 35.7 M parameters), randomly initialised from ``--seed``; the data are smooth random
images in [-1, 1] (only cost and numerical agreement are measured here, not a trained model's
error). Three measurements, written to ``benchmarks/results/profiling_gpu.json``:

1. **Agreement**: :func:`vrg_analysis.profile_prediction_error` on a small subset (``--cpu-levels``
   timesteps x ``--cpu-samples`` samples) with ``device="cpu"`` and ``device="cuda"``, the same
   weights and the same noise (drawn on the CPU from the same generator), TF32 off: relative
   differences of the MSE, the per-dimension variance and the reservoir.
2. **GPU throughput** of the library: ``--levels`` timesteps x ``--samples`` samples, batches of
   ``--batch-size`` pairs across timesteps, with the share of wall time inside the model (the
   model call is timed with a CUDA synchronisation after it).
3. **Naive loop on the GPU** on the same work: one model call per timestep on the ``--samples``
   samples, statistics read back per timestep; the ratio of (2) to (3).

    .venv/bin/python benchmarks/gpu_profiling.py              # needs CUDA; ~1-3 min on one GPU
    .venv/bin/python benchmarks/gpu_profiling.py --cpu-smoke  # checks the script on the CPU only

Without a CUDA GPU it stops with a message and exit status 1 (nothing is written), unless
``--cpu-smoke`` is given: then every step runs on the CPU with tiny sizes and the result goes to
``profiling_gpu_cpu_smoke.json`` (its numbers say nothing about a GPU).
"""

from __future__ import annotations

import argparse
import copy
import logging
import time
from typing import Any

import numpy as np
import torch
from _common import machine_info, set_threads, write_result
from torch import Tensor, nn

from vrg_analysis import NoiseSchedule, TorchEpsModel, profile_prediction_error

log = logging.getLogger("gpu_profiling")


def ddpm_cifar10_unet(seed: int) -> nn.Module:
    """diffusers ``UNet2DModel`` with the DDPM CIFAR-10 configuration (google/ddpm-cifar10-32)."""
    from diffusers import UNet2DModel

    torch.manual_seed(seed)
    return UNet2DModel(
        sample_size=32,
        in_channels=3,
        out_channels=3,
        layers_per_block=2,
        block_out_channels=(128, 256, 256, 256),
        down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
        dropout=0.0,
        norm_num_groups=32,
        norm_eps=1e-6,
        downsample_padding=0,
        flip_sin_to_cos=False,
        freq_shift=1,
    ).eval()


class TimedUNet:
    """``f(x, t) = unet(x, t).sample``, timing each call (synchronised on CUDA)."""

    def __init__(self, unet: nn.Module, device: torch.device) -> None:
        self.unet, self.device = unet, device
        self.seconds, self.calls = 0.0, 0

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        t0 = time.perf_counter()
        out = self.unet(x, t).sample
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.seconds += time.perf_counter() - t0
        self.calls += 1
        return out


def smooth_images(n: int, seed: int) -> Tensor:
    """Random 3 x 32 x 32 images in [-1, 1] with image-like spatial correlation."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 8, 8, generator=g) * 2 - 1
    return nn.functional.interpolate(coarse, size=32, mode="bilinear", align_corners=False)


def rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    return float(np.max(np.abs(a[ok] - b[ok]) / np.maximum(np.abs(b[ok]), 1e-12)))


def naive_loop(
    model: TimedUNet,
    data: Tensor,
    timesteps: np.ndarray,
    schedule: NoiseSchedule,
    generator: torch.Generator,
    device: torch.device,
) -> list[float]:
    """One model call per timestep on all ``data``, MSE read back per timestep."""
    mse = []
    x0 = data.to(device)
    with torch.no_grad():
        for t in timesteps:
            a = float(schedule.alpha_bar(np.array([t]))[0])
            eps = torch.randn(data.shape, generator=generator).to(device)
            x_t = a**0.5 * x0 + (1.0 - a) ** 0.5 * eps
            tt = torch.full((data.shape[0],), float(t), device=device)
            mse.append(float((model(x_t, tt) - eps).double().pow(2).mean()))
    return mse


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cpu-levels", type=int, default=4, help="timesteps in the CPU/GPU check")
    ap.add_argument("--cpu-samples", type=int, default=4, help="samples in the CPU/GPU check")
    ap.add_argument("--levels", type=int, default=100, help="timesteps for GPU throughput")
    ap.add_argument("--samples", type=int, default=64, help="samples per timestep (GPU)")
    ap.add_argument("--batch-size", type=int, default=512, help="library batch (pairs)")
    ap.add_argument("--threads", type=int, default=8, help="torch CPU threads")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cpu-smoke", action="store_true", help="no GPU: tiny run, CPU only")
    ap.add_argument("--name", default=None, help="result name")
    ap.add_argument("--results-dir", default=None, help="output folder (default: results/)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.cpu_smoke:
        dev = torch.device("cpu")
        args.levels, args.samples, args.batch_size = 3, 2, 4
        args.cpu_levels, args.cpu_samples = 2, 2
        name = args.name or "profiling_gpu_cpu_smoke"
    elif not torch.cuda.is_available():
        raise SystemExit(
            "gpu_profiling.py: no CUDA GPU here (torch.cuda.is_available() is False), so "
            "nothing was measured or written. Run it on a machine with a GPU, or pass "
            "--cpu-smoke to check the script on the CPU with tiny sizes."
        )
    else:
        dev = torch.device("cuda")
        name = args.name or "profiling_gpu"
    threads = set_threads(args.threads)
    machine = machine_info()
    if dev.type == "cuda":
        machine["gpu"] = torch.cuda.get_device_name(dev)
        machine["cuda"] = torch.version.cuda
    sched = NoiseSchedule.linear()
    unet_cpu = ddpm_cifar10_unet(args.seed)
    n_params = sum(p.numel() for p in unet_cpu.parameters())
    unet_dev = copy.deepcopy(unet_cpu).to(dev)

    # 1. agreement on the same noise, TF32 off
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    sub_ts = np.linspace(0, sched.num_timesteps - 1, args.cpu_levels).round().astype(int)
    sub = smooth_images(args.cpu_samples, args.seed + 1)
    kw: dict[str, Any] = dict(batch_size=8, progress=False, model_name="ddpm-cifar10-unet-random")
    profs, walls = {}, {}
    for where, unet in (("cpu", unet_cpu), (dev.type, unet_dev)):
        timed = TimedUNet(unet, torch.device(where))
        t0 = time.perf_counter()
        profs[where] = profile_prediction_error(
            TorchEpsModel(timed, sched),
            sub,
            sub_ts,
            generator=torch.Generator().manual_seed(args.seed + 2),
            device=where,
            **kw,
        )
        walls[where] = time.perf_counter() - t0
    p_cpu, p_dev = profs["cpu"], profs[dev.type]
    agreement = {
        "timesteps": sub_ts,
        "samples": args.cpu_samples,
        "tf32": False,
        "mse_cpu": p_cpu.mse,
        "mse_device": p_dev.mse,
        "max_rel_diff_mse": rel_diff(p_dev.mse, p_cpu.mse),
        "max_rel_diff_dim_var": rel_diff(p_dev.dim_var, p_cpu.dim_var),
        "max_abs_diff_reservoir": float(np.nanmax(np.abs(p_dev.reservoir - p_cpu.reservoir))),
        "wall_s": walls,
    }
    log.info("agreement: max relative MSE difference %.2e", agreement["max_rel_diff_mse"])

    # 2. library throughput on the device (default TF32 settings restored)
    torch.backends.cudnn.allow_tf32 = True
    ts = np.linspace(0, sched.num_timesteps - 1, args.levels).round().astype(int)
    data = smooth_images(args.samples, args.seed + 3)
    pairs = ts.size * args.samples
    timed = TimedUNet(unet_dev, dev)
    model = TorchEpsModel(timed, sched)
    with torch.no_grad():  # warm-up: cuDNN plans, allocator
        model(data[:2].to(dev), torch.zeros(2, device=dev))
    timed.seconds, timed.calls = 0.0, 0
    t0 = time.perf_counter()
    prof = profile_prediction_error(
        model,
        data,
        ts,
        batch_size=args.batch_size,
        generator=torch.Generator().manual_seed(args.seed + 4),
        device=dev,
        progress=False,
        model_name="ddpm-cifar10-unet-random",
    )
    lib_wall = time.perf_counter() - t0
    library = {
        "levels": int(ts.size),
        "samples_per_level": args.samples,
        "pairs": pairs,
        "batch_size": args.batch_size,
        "wall_s": lib_wall,
        "pairs_per_s": pairs / lib_wall,
        "model_s": timed.seconds,
        "model_time_share": timed.seconds / lib_wall,
        "model_calls": timed.calls,
    }
    if dev.type == "cuda":
        library["peak_memory_gib"] = torch.cuda.max_memory_allocated(dev) / 2**30
    log.info(
        "library: %.0f pairs/s, model share %.1f%%",
        library["pairs_per_s"],
        100 * library["model_time_share"],
    )

    # 3. the naive per-timestep loop on the same work
    timed.seconds, timed.calls = 0.0, 0
    t0 = time.perf_counter()
    naive_mse = naive_loop(
        timed, data, ts, sched, torch.Generator().manual_seed(args.seed + 4), dev
    )
    naive_wall = time.perf_counter() - t0
    naive = {
        "wall_s": naive_wall,
        "pairs_per_s": pairs / naive_wall,
        "model_time_share": timed.seconds / naive_wall,
        "model_calls": timed.calls,
    }
    z = (np.asarray(naive_mse)[::-1] - prof.mse) / (np.sqrt(2.0) * prof.mse_sem)
    log.info("naive: %.0f pairs/s; ratio %.2f", naive["pairs_per_s"], naive_wall / lib_wall)

    payload = {
        "machine": machine,
        "device": str(dev),
        "cpu_smoke": bool(args.cpu_smoke),
        "model": {
            "name": "diffusers UNet2DModel, DDPM CIFAR-10 architecture, random init",
            "parameters": n_params,
            "input": [3, 32, 32],
        },
        "config": {"threads": threads, "seed": args.seed},
        "agreement": agreement,
        "library": library,
        "naive": naive,
        "ratio_library_over_naive": naive_wall / lib_wall,
        "mse_agreement_max_abs_z": float(np.max(np.abs(z))),
    }
    path = write_result(name, payload, args.results_dir)
    log.info("wrote %s", path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
