"""Training the domain feature extractors behind the domain FID (the digits classifier).

The classifier (:class:`~vrg_analysis.evaluation.features.DigitsClassifier`) is trained on the
training split only; its held-out accuracy is recorded in its card. Deterministic given the seed
and the thread count.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from vrg_analysis.data import DigitsSplit, load_digits_split
from vrg_analysis.evaluation.features import (
    CLASSIFIER_NAME,
    DEFAULT_MODEL_DIR,
    DigitsClassifier,
    classifier_accuracy,
)
from vrg_analysis.io import (
    atomic_open,
    provenance,
    sha256_file,
)

__all__ = ["ClassifierConfig", "train_digits_classifier"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClassifierConfig:
    """Training configuration of :class:`DigitsClassifier` (the one home of its defaults)."""

    width: int = 32
    num_features: int = 64
    steps: int = 3000
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    max_shift: int = 1  # augmentation: random translation by up to this many pixels
    label_smoothing: float = 0.05
    threads: int = 1

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClassifierConfig:
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown ClassifierConfig fields: {sorted(unknown)}")
        return cls(**data)


def _random_shift(x: Tensor, max_shift: int, generator: torch.Generator) -> Tensor:
    """Translate each image by an integer offset in ``[-max_shift, max_shift]^2``, padding with
    the background value -1 (the digits' blank pixel)."""
    if max_shift == 0:
        return x
    n = x.shape[0]
    pad = nn.functional.pad(x, (max_shift,) * 4, value=-1.0)
    offs = torch.randint(0, 2 * max_shift + 1, (n, 2), generator=generator)
    rows = offs[:, 0, None] + torch.arange(8)  # [n, 8]
    cols = offs[:, 1, None] + torch.arange(8)
    idx_n = torch.arange(n)[:, None, None]
    return pad[idx_n, 0, rows[:, :, None], cols[:, None, :]][:, None]


def train_digits_classifier(
    seed: int = 0,
    out_dir: str | Path | None = DEFAULT_MODEL_DIR,
    config: ClassifierConfig | None = None,
    split: DigitsSplit | None = None,
    progress: bool = False,
) -> tuple[DigitsClassifier, dict[str, Any]]:
    """Train :class:`DigitsClassifier` on the digits training split; return it and its card.

    Deterministic given ``seed`` (initialisation, batches, augmentation and dropout all draw from
    one ``torch.Generator``; a fixed number of Adam steps; ``config.threads`` torch threads). With
    ``out_dir`` set, writes ``digits-classifier.pt`` (state dict) and ``digits-classifier.json``
    (the card: architecture, config, seed, split sha256, held-out accuracy, wall time, versions,
    sha256 of the ``.pt``), each atomically.
    """
    cfg = config if config is not None else ClassifierConfig()
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    if cfg.steps < 1 or cfg.batch_size < 1 or cfg.max_shift < 0 or cfg.threads < 1:
        raise ValueError(f"invalid ClassifierConfig: {cfg}")
    data = split if split is not None else load_digits_split(seed=0)
    old_threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    t0 = time.perf_counter()
    try:
        with torch.random.fork_rng(devices=[]):
            # nn.Module initialisation and dropout draw from the global generator: seed it inside
            # fork_rng, so the caller's global random state is left as it was
            torch.manual_seed(seed)
            gen = torch.Generator().manual_seed(seed)  # batches and augmentation
            model = DigitsClassifier(cfg.width, cfg.num_features)
            opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps)
            loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
            x_all, y_all = data.train_x, data.train_y
            n = x_all.shape[0]
            model.train()
            steps = range(cfg.steps)
            if progress:
                from tqdm import tqdm

                steps = tqdm(steps, desc="train digits classifier")
            for _ in steps:
                idx = torch.randint(0, n, (cfg.batch_size,), generator=gen)
                xb = _random_shift(x_all[idx], cfg.max_shift, gen)
                loss = loss_fn(model(xb), y_all[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
        model.eval()
        wall = time.perf_counter() - t0
        acc = classifier_accuracy(model, data.test_x, data.test_y)
        train_acc = classifier_accuracy(model, data.train_x, data.train_y)
    finally:
        torch.set_num_threads(old_threads)
    card: dict[str, Any] = {
        "name": CLASSIFIER_NAME,
        "purpose": "penultimate-layer features for the digits domain FID",
        "architecture": model.architecture(),
        "config": cfg.to_dict(),
        "seed": seed,
        "data": {
            "dataset": "sklearn load_digits, x = v / 8 - 1",
            "split_seed": data.seed,
            "held_out_fraction": data.held_out_fraction,
            "split_sha256": data.sha256,
            "n_train": int(data.train_x.shape[0]),
            "n_held_out": int(data.test_x.shape[0]),
        },
        "held_out_accuracy": acc,
        "train_accuracy": train_acc,
        "final_loss": float(loss.detach()),
        "wall_time_s": wall,
        "provenance": provenance(),
    }
    log.info(
        "digits classifier: held-out accuracy %.4f after %d steps (%.1f s)", acc, cfg.steps, wall
    )
    if out_dir is not None:
        out = Path(out_dir)
        pt = out / f"{CLASSIFIER_NAME}.pt"
        with atomic_open(pt, "wb") as fh:
            torch.save(model.state_dict(), fh)
        card["weights_file"] = pt.name
        card["sha256"] = sha256_file(pt)
        with atomic_open(out / f"{CLASSIFIER_NAME}.json", "w") as fh:
            json.dump(card, fh, indent=2)
            fh.write("\n")
    return model, card
