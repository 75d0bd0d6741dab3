"""Train the shipped noise predictors (the testbeds' networks) deterministically.

Training is DDPM's epsilon-prediction objective (Ho et al. 2020, Algorithm 1)::

    t ~ U{0, .., N-1},  eps ~ N(0, I),  x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps,
    loss = || eps - eps_theta(x_t, t) ||^2  (mean over batch and dimensions)             (L)

on :meth:`NoiseSchedule.linear` (N = 1000), with AdamW, a linear learning-rate warm-up, gradient
clipping and an exponential moving average (EMA) of the weights; the EMA weights are what is
shipped. The class-conditional recipe replaces the label by the "no label" token with probability
``label_dropout`` (Ho & Salimans 2022, Algorithm 1), so one network gives both ``eps(x, t, c)`` and
``eps(x, t, null)`` for classifier-free guidance (:class:`GuidedEpsModel`).

Each named recipe (:data:`RECIPES`) writes ``<name>.pt`` (the EMA ``state_dict``, written
atomically) and ``<name>.json`` (its card: architecture, recipe, seed, data hash, wall time,
final loss, torch version and the sha256 of the ``.pt``).
:func:`~vrg_analysis.models.checkpoints.load_trained`
rebuilds the network from the card and refuses a file whose sha256 differs from the card.

Determinism: all randomness (initial weights, mini-batches, timesteps, noise, label dropout) comes
from ``seed``, and training runs on a fixed number of CPU threads (1 by default), so the same
recipe, seed and steps give a byte-identical ``.pt`` (same sha256) **on the same machine with the
same torch build**. Other CPUs, BLAS/oneDNN kernels, thread counts or torch versions may round
differently and give different (equally good) weights.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from vrg_analysis.core.schedules import NoiseSchedule
from vrg_analysis.data import load_digits_split, load_fashion_mnist_split
from vrg_analysis.io import (
    atomic_open,
    atomic_write_text,
    provenance,
    sha256_file,
)
from vrg_analysis.models.checkpoints import CARD_FORMAT, MODELS_DIR, load_card, load_trained
from vrg_analysis.models.networks import build_network
from vrg_analysis.testbeds import make_testbed, mixture_split

__all__ = [
    "Recipe",
    "RECIPES",
    "TrainResult",
    "initial_network",
    "resolve_recipe",
    "train",
]

log = logging.getLogger(__name__)


# ===================================================================== recipes
@dataclass(frozen=True)
class Recipe:
    """Everything that determines a trained checkpoint (one home for the defaults)."""

    name: str
    architecture: str
    arch_kwargs: dict[str, Any]
    data: str  # "mixture-2d" or "digits"
    steps: int
    batch_size: int
    lr: float
    weight_decay: float = 0.0
    warmup_steps: int = 200
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    label_dropout: float = 0.0  # > 0 only for class-conditional recipes
    lr_schedule: str = "constant"  # after warm-up: "constant" or "cosine" (to min_lr_ratio * lr)
    min_lr_ratio: float = 0.0
    device: str = "cpu"  # where the recipe is meant to run ("cuda" for the GPU recipes)
    gpu_variant: str | None = None  # the recipe `train` picks instead when CUDA is available
    seed: int = 0
    data_seed: int = 0
    description: str = ""
    data_kwargs: dict[str, Any] = field(default_factory=dict)
    #: a shipped checkpoint (``data/models/<name>``) whose weights start the run instead of the
    #: seeded initialisation: every tensor the two networks share is copied, the class embedding
    #: (the only tensor the conditional network adds) starts at zero, so step 0 predicts exactly
    #: what the shipped network predicts, for every label.
    init_from: str | None = None

    @property
    def conditional(self) -> bool:
        return int(self.arch_kwargs.get("num_classes", 0)) > 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: The CPU recipe's network: 1.1M parameters, 28 -> 14 -> 7 with attention at 7x7; 0.77 s per
#: training step at batch 128 on 2 threads of this project's 2-core machine (measured).
_FASHION_CPU_ARCH: dict[str, Any] = {
    "image_size": 28,
    "ch": 32,
    "ch_mult": [1, 2, 2],
    "num_res_blocks": 1,
    "attn_levels": [2],
    "emb_dim": 128,
    "num_classes": 0,
}
#: The GPU recipe's network: DDPM's CIFAR-10 layout scaled down (two blocks a level, attention at
#: 14x14 and 7x7).
_FASHION_GPU_ARCH: dict[str, Any] = {
    "image_size": 28,
    "ch": 64,
    "ch_mult": [1, 2, 2],
    "num_res_blocks": 2,
    "attn_levels": [1, 2],
    "emb_dim": 256,
    "num_classes": 0,
}

RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe(
            "mixture-2d-mlp",
            "MixtureMLP",
            {"dim": 2, "hidden": 128, "depth": 3, "emb_dim": 64},
            "mixture-2d",
            steps=20_000,
            batch_size=256,
            lr=1e-3,
            warmup_steps=500,
            description="MLP noise predictor for the 8-mode 2-D ring (make_testbed('mixture-2d'))",
            data_kwargs={"n_train": 20_000, "n_held_out": 5_000},
        ),
        Recipe(
            "mixture-8d-mlp",
            "MixtureMLP",
            {"dim": 8, "hidden": 256, "depth": 3, "emb_dim": 64},
            "mixture-8d",
            steps=20_000,
            batch_size=256,
            lr=1e-3,
            warmup_steps=500,
            description="MLP noise predictor for the 8-mode 8-D mixture (make_testbed('mixture-8d'))",  # noqa: E501
            data_kwargs={"n_train": 20_000, "n_held_out": 5_000},
        ),
        Recipe(
            "digits-unet",
            "DigitsUNet",
            {"ch": 32, "emb_dim": 128, "num_classes": 0},
            "digits",
            steps=3_000,
            batch_size=128,
            lr=1e-3,
            warmup_steps=200,
            description="unconditional UNet on scikit-learn's 8x8 digits (training split)",
        ),
        Recipe(
            "fashion-unet",
            "ImageUNet",
            _FASHION_CPU_ARCH,
            "fashion-mnist",
            steps=9_000,
            batch_size=128,
            lr=1e-3,
            warmup_steps=300,
            lr_schedule="cosine",
            min_lr_ratio=0.02,
            gpu_variant="fashion-unet-gpu",
            description="unconditional DDPM UNet on Fashion-MNIST 28x28 (official training set), "
            "the CPU recipe: about 2 hours on 2 cores",
        ),
        Recipe(
            "fashion-unet-cond",
            "ImageUNet",
            {**_FASHION_CPU_ARCH, "num_classes": 10},
            "fashion-mnist",
            steps=3_000,
            batch_size=128,
            lr=5e-4,
            warmup_steps=100,
            lr_schedule="cosine",
            min_lr_ratio=0.02,
            label_dropout=0.1,
            gpu_variant="fashion-unet-cond-gpu",
            init_from="fashion-unet",
            description="class-conditional DDPM UNet on Fashion-MNIST 28x28, label dropout 0.1 for "
            "classifier-free guidance (label 10 = no label), the CPU recipe: fine-tuned from the "
            "shipped fashion-unet (class embedding started at zero)",
        ),
        Recipe(
            "fashion-unet-gpu",
            "ImageUNet",
            _FASHION_GPU_ARCH,
            "fashion-mnist",
            steps=60_000,
            batch_size=256,
            lr=2e-4,
            warmup_steps=1_000,
            lr_schedule="cosine",
            min_lr_ratio=0.05,
            ema_decay=0.9999,
            device="cuda",
            description="unconditional DDPM UNet on Fashion-MNIST 28x28, the GPU recipe "
            "(DDPM's CIFAR-10 settings scaled to 28x28: about an hour on one modern GPU)",
        ),
        Recipe(
            "fashion-unet-cond-gpu",
            "ImageUNet",
            {**_FASHION_GPU_ARCH, "num_classes": 10},
            "fashion-mnist",
            steps=60_000,
            batch_size=256,
            lr=2e-4,
            warmup_steps=1_000,
            lr_schedule="cosine",
            min_lr_ratio=0.05,
            ema_decay=0.9999,
            label_dropout=0.1,
            device="cuda",
            description="class-conditional DDPM UNet on Fashion-MNIST 28x28, label dropout 0.1, "
            "the GPU recipe",
        ),
        Recipe(
            "digits-unet-cond",
            "DigitsUNet",
            {"ch": 32, "emb_dim": 128, "num_classes": 10},
            "digits",
            steps=3_000,
            batch_size=128,
            lr=1e-3,
            warmup_steps=200,
            label_dropout=0.1,
            description="class-conditional UNet on 8x8 digits, label dropout 0.1 for "
            "classifier-free guidance (label 10 = no label)",
        ),
    )
}


def _recipe(name: str) -> Recipe:
    if not isinstance(name, str) or name not in RECIPES:
        raise ValueError(f"unknown model name {name!r}; known models: {sorted(RECIPES)}")
    return RECIPES[name]


# ===================================================================== data
def _training_data(
    recipe: Recipe,
) -> tuple[Tensor, Tensor | None, Tensor, Tensor | None, dict[str, Any]]:
    """``(train_x, train_y, held_out_x, held_out_y, data description for the card)``; the labels
    are ``None`` for unlabelled data."""
    if recipe.data in ("digits", "fashion-mnist"):
        if recipe.data == "digits":
            split = load_digits_split(recipe.data_seed)
            dataset = "sklearn.datasets.load_digits (8x8, scaled to [-1, 1])"
        else:
            split = load_fashion_mnist_split(recipe.data_seed)
            dataset = (
                "Fashion-MNIST from Debian's dataset-fashion-mnist (28x28, x = v / 127.5 - 1); "
                "training: the official training set, held out: the official test set"
            )
        info = {
            "dataset": dataset,
            "split_seed": split.seed,
            "held_out_fraction": split.held_out_fraction,
            "n_train": int(split.train_x.shape[0]),
            "n_held_out": int(split.test_x.shape[0]),
            "split_sha256": split.sha256,
        }
        return split.train_x, split.train_y, split.test_x, split.test_y, info
    if recipe.data.startswith("mixture"):
        ms = mixture_split(recipe.data, recipe.data_seed, **recipe.data_kwargs)
        mix = make_testbed(recipe.data).mixture
        info = {
            "dataset": f"samples of make_testbed({recipe.data!r}).mixture",
            "mixture": {
                "weights": mix.weights.tolist(),
                "means": mix.means.tolist(),
                "covs": mix.covs.tolist(),
            },
            "sample_seed": ms.seed,
            "n_train": int(ms.train_x.shape[0]),
            "n_held_out": int(ms.held_out_x.shape[0]),
            "samples_sha256": ms.sha256,
        }
        return ms.train_x, None, ms.held_out_x, None, info
    raise ValueError(f"recipe {recipe.name!r} names unknown data {recipe.data!r}")


# ===================================================================== training
@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` wrote and how the run went."""

    name: str
    weights_path: Path
    card_path: Path
    sha256: str
    steps: int
    final_loss: float
    held_out_loss: float
    wall_time_s: float


def _noisy_batch(
    x0: Tensor, t: Tensor, alpha_bar: Tensor, gen: torch.Generator
) -> tuple[Tensor, Tensor]:
    eps = torch.randn(x0.shape, generator=gen, dtype=x0.dtype)
    a = alpha_bar[t].reshape(-1, *([1] * (x0.ndim - 1)))
    return a.sqrt() * x0 + (1.0 - a).sqrt() * eps, eps  # forward process, DDPM eq. 4


def _forward(model: nn.Module, xt: Tensor, t: Tensor, y: Tensor | None) -> Tensor:
    tf = t.to(torch.float32)
    return model(xt, tf) if y is None else model(xt, tf, y)


@torch.no_grad()
def _held_out_loss(
    model: nn.Module,
    x: Tensor,
    y: Tensor | None,
    alpha_bar: Tensor,
    seed: int,
    repeats: int,
) -> float:
    """Loss (L) of ``model`` on held-out data, ``repeats`` fresh (t, eps) draws per sample."""
    gen = torch.Generator().manual_seed(seed + 1_000_003)
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for _ in range(repeats):
        for s in range(0, x.shape[0], 512):
            x0 = x[s : s + 512]
            t = torch.randint(alpha_bar.shape[0], (x0.shape[0],), generator=gen)
            xt, eps = _noisy_batch(x0, t, alpha_bar, gen)
            yy = None if y is None else y[s : s + 512].to(device)
            pred = _forward(model, xt.to(device), t.to(device), yy).cpu()
            total += float((pred - eps).pow(2).sum())
            count += eps.numel()
    return total / count


def _learning_rate(recipe: Recipe, step: int, n_steps: int) -> float:
    """Linear warm-up over ``warmup_steps``, then constant or a cosine decay to
    ``min_lr_ratio * lr`` at the last step (Loshchilov & Hutter 2017, without restarts)."""
    warm = min(1.0, (step + 1) / max(1, recipe.warmup_steps))
    if recipe.lr_schedule == "constant" or step < recipe.warmup_steps:
        return recipe.lr * warm
    span = max(1, n_steps - recipe.warmup_steps)
    progress = min(1.0, (step - recipe.warmup_steps) / span)
    floor = recipe.min_lr_ratio
    return recipe.lr * (floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress)))


def resolve_recipe(name: str, device: str | None = None) -> tuple[Recipe, str]:
    """The recipe that ``train(name, device=device)`` runs, and the device it runs on.

    ``device=None`` picks CUDA when it is available and the recipe has a GPU variant (which is then
    trained instead, under its own name), else the CPU; an explicit device keeps ``name``.
    """
    recipe = _recipe(name)
    if device is None:
        if torch.cuda.is_available() and recipe.gpu_variant is not None:
            return _recipe(recipe.gpu_variant), "cuda"
        return recipe, "cuda" if recipe.device == "cuda" and torch.cuda.is_available() else "cpu"
    if not isinstance(device, str) or not (device == "cpu" or device.startswith("cuda")):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but torch sees no CUDA device")
    return recipe, device


def train(
    name: str,
    out_dir: str | Path = MODELS_DIR,
    *,
    steps: int | None = None,
    num_threads: int | None = 1,
    progress: bool = False,
    device: str | None = "cpu",
    resume_every: int | None = None,
) -> TrainResult:
    """Train recipe ``name`` (:data:`RECIPES`) and write ``<name>.pt`` and ``<name>.json``.

    ``steps`` overrides the recipe's number of optimiser steps (recorded in the card).
    ``num_threads`` fixes torch's CPU threads during the run (restored afterwards); ``None`` keeps
    the current setting. Same name, steps and threads on the same machine and torch build give the
    same ``.pt`` bytes (see the module docstring for the caveat). ``device=None`` chooses as
    :func:`resolve_recipe` (a recipe's GPU variant on CUDA).

    With ``resume_every = n`` the full training state (weights, EMA, optimiser, random generator,
    losses) is written atomically to ``<name>.resume.pt`` every ``n`` steps, and a run that finds
    such a file for the same recipe and step count continues from it (with the same bytes as an
    uninterrupted run on the same machine and thread count); the file is removed at the end.
    """
    recipe, dev = resolve_recipe(name, device)
    n_steps = recipe.steps if steps is None else steps
    if isinstance(n_steps, bool) or int(n_steps) != n_steps or n_steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    n_steps = int(n_steps)
    if num_threads is not None and (int(num_threads) != num_threads or num_threads < 1):
        raise ValueError(f"num_threads must be a positive integer or None, got {num_threads!r}")
    if resume_every is not None and (int(resume_every) != resume_every or resume_every < 1):
        raise ValueError(f"resume_every must be a positive integer or None, got {resume_every!r}")
    out = Path(out_dir)
    old_threads = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(int(num_threads))
    try:
        return _train(recipe, out, n_steps, progress, dev, resume_every)
    finally:
        torch.set_num_threads(old_threads)


def initial_network(recipe: Recipe, models_dir: str | Path = MODELS_DIR) -> nn.Module:
    """The network a run of ``recipe`` starts from (training mode, CPU).

    Seeded initial weights (``recipe.seed``, without touching the global random state); with
    ``recipe.init_from`` the weights of that shipped checkpoint (sha256-checked by
    :func:`~vrg_analysis.models.checkpoints.load_trained`) replace them. The two architectures must
    differ at most by the class embedding, which then starts at zero, so the fine-tuned conditional
    network begins as the unconditional one for every label (a warm start for classifier-free
    guidance; the label dropout then teaches the "no label" token and the labels together).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        model = build_network(recipe.architecture, recipe.arch_kwargs)
    if recipe.init_from is None:
        return model
    source = load_trained(recipe.init_from, models_dir)
    state = source.state_dict()
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if unexpected or wrong or any(not k.startswith("label_emb.") for k in missing):
        raise ValueError(
            f"recipe {recipe.name!r}: init_from={recipe.init_from!r} does not fit "
            f"{recipe.architecture}({recipe.arch_kwargs}): missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}, shape mismatches {wrong[:5]}"
        )
    model.load_state_dict(state, strict=False)
    with torch.no_grad():
        for key in missing:
            own[key].zero_()
    model.train()
    return model


def _train(
    recipe: Recipe,
    out: Path,
    n_steps: int,
    progress: bool,
    device: str = "cpu",
    resume_every: int | None = None,
) -> TrainResult:
    schedule = NoiseSchedule.linear()
    alpha_bar = torch.tensor(schedule.alphas_cumprod, dtype=torch.float32)
    train_x, train_y, held_x, held_y, data_info = _training_data(recipe)
    if not recipe.conditional:
        train_y = held_y = None
    null_label = int(recipe.arch_kwargs.get("num_classes", 0))

    model = initial_network(recipe)
    model.to(device)
    ema = copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    gen = torch.Generator().manual_seed(recipe.seed)
    n = train_x.shape[0]
    tail = max(1, n_steps // 10)
    losses: list[float] = []
    start, wall_before = 0, 0.0
    resume_path = out / f"{recipe.name}.resume.pt"
    resume_key = {"recipe": recipe.to_dict(), "steps": n_steps, "torch": torch.__version__}
    if resume_every is not None and resume_path.is_file():
        try:
            state = torch.load(resume_path, map_location=device, weights_only=False)
        except Exception as exc:  # noqa: BLE001 - a damaged state file is restarted, not fatal
            log.warning("%s: unreadable resume state (%s); starting afresh", resume_path, exc)
            state = None
        if state is not None and state.get("key") == resume_key:
            model.load_state_dict(state["model"])
            ema.load_state_dict(state["ema"])
            opt.load_state_dict(state["opt"])
            gen.set_state(state["gen"])
            losses, start, wall_before = state["losses"], state["step"], state["wall"]
            log.info("%s: resuming at step %d of %d", recipe.name, start, n_steps)
        elif state is not None:
            log.warning("%s belongs to another recipe or step count; starting afresh", resume_path)
    model.train()
    t0 = time.perf_counter()
    bar = tqdm(range(start, n_steps), desc=f"train {recipe.name}", disable=not progress)
    for step in bar:
        # 2. mini-batch, uniform integer timesteps, fresh noise (DDPM Algorithm 1)
        idx = torch.randint(n, (recipe.batch_size,), generator=gen)
        x0 = train_x[idx]
        t = torch.randint(schedule.num_timesteps, (recipe.batch_size,), generator=gen)
        xt, eps = _noisy_batch(x0, t, alpha_bar, gen)
        y = None
        if train_y is not None:
            # 3. label dropout: the "no label" token with probability p (Ho & Salimans 2022)
            drop = torch.rand(recipe.batch_size, generator=gen) < recipe.label_dropout
            y = torch.where(drop, torch.full_like(train_y[idx], null_label), train_y[idx])
            y = y.to(device)
        # 4. loss (L), learning-rate schedule, clipped AdamW step
        loss = (_forward(model, xt.to(device), t.to(device), y) - eps.to(device)).pow(2).mean()
        for g in opt.param_groups:
            g["lr"] = _learning_rate(recipe, step, n_steps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
        opt.step()
        # 5. EMA of the weights, with the usual warm-up of the decay
        decay = min(recipe.ema_decay, (1.0 + step) / (10.0 + step))
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), model.parameters(), strict=True):
                pe.mul_(decay).add_(pm, alpha=1.0 - decay)
            for be, bm in zip(ema.buffers(), model.buffers(), strict=True):
                be.copy_(bm)
        li = float(loss.detach())
        if not math.isfinite(li):
            raise FloatingPointError(f"{recipe.name}: loss became {li} at step {step}")
        losses.append(li)
        if progress and step % 100 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-100:]):.4f}")
        if resume_every is not None and (step + 1) % resume_every == 0 and step + 1 < n_steps:
            with atomic_open(resume_path, "wb") as fh:
                torch.save(
                    {
                        "key": resume_key,
                        "model": model.state_dict(),
                        "ema": ema.state_dict(),
                        "opt": opt.state_dict(),
                        "gen": gen.get_state(),
                        "losses": losses,
                        "step": step + 1,
                        "wall": wall_before + time.perf_counter() - t0,
                    },
                    fh,
                )
            log.info("%s: step %d, loss %.5f", recipe.name, step + 1, np.mean(losses[-100:]))
    wall = wall_before + time.perf_counter() - t0
    ema.eval()
    final_loss = float(np.mean(losses[-tail:]))
    held = _held_out_loss(ema, held_x, held_y, alpha_bar, recipe.seed, repeats=4)
    ema.cpu()
    log.info(
        "%s: %d steps in %.1fs, final loss %.5f, held-out loss (EMA) %.5f",
        recipe.name,
        n_steps,
        wall,
        final_loss,
        held,
    )

    # 6. write the EMA weights atomically, then the card that names their hash
    weights_path = out / f"{recipe.name}.pt"
    card_path = out / f"{recipe.name}.json"
    with atomic_open(weights_path, "wb") as fh:
        torch.save(ema.state_dict(), fh)
    digest = sha256_file(weights_path)
    training = recipe.to_dict()
    training["steps"] = n_steps
    where = "cpu" if device == "cpu" else torch.cuda.get_device_name(torch.device(device))
    card = {
        "format": CARD_FORMAT,
        "name": recipe.name,
        "description": recipe.description,
        "architecture": {"class": recipe.architecture, "kwargs": recipe.arch_kwargs},
        "initialised_from": None
        if recipe.init_from is None
        else {"name": recipe.init_from, "sha256": load_card(recipe.init_from)["sha256"]},
        "num_parameters": int(sum(p.numel() for p in ema.parameters())),
        "training": training,
        "objective": "DDPM epsilon-prediction MSE, uniform integer t, EMA weights shipped",
        "seed": recipe.seed,
        "num_threads": torch.get_num_threads(),
        "device": device,
        "trained_on": where,
        "schedule": schedule.to_dict(),
        "data": data_info,
        "steps": n_steps,
        "wall_time_s": round(wall, 3),
        "final_loss": final_loss,
        "final_loss_definition": f"mean training loss over the last {tail} steps",
        "held_out_loss": held,
        "held_out_loss_definition": "EMA model, loss (L), 4 random (t, eps) per held-out sample",
        "loss_curve": [float(np.mean(losses[s : s + tail])) for s in range(0, n_steps, tail)],
        "torch": torch.__version__,
        "provenance": provenance(),
        "weights_file": weights_path.name,
        "weights_bytes": weights_path.stat().st_size,
        "sha256": digest,
    }
    atomic_write_text(card_path, json.dumps(card, indent=2) + "\n")
    resume_path.unlink(missing_ok=True)
    return TrainResult(
        recipe.name, weights_path, card_path, digest, n_steps, final_loss, held, wall
    )
