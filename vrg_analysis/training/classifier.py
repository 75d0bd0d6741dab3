"""Training the domain feature extractors behind the domain FID (one per image data set).

A classifier (:class:`~vrg_analysis.evaluation.features.DomainClassifier`) is trained on the data
set's training split only; its held-out accuracy is recorded in its card. Deterministic given the
seed and the thread count. Each data set's recipe is in :data:`CLASSIFIER_CONFIGS`; the shipped
ones are rebuilt with ``python -m vrg_analysis train digits-classifier`` (or
``fashion-classifier``).
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

from vrg_analysis.data import ImageSplit
from vrg_analysis.evaluation.features import (
    DEFAULT_MODEL_DIR,
    DOMAINS,
    DomainClassifier,
    ReferenceStatistics,
    classifier_accuracy,
    compute_reference_statistics,
    domain_of,
)
from vrg_analysis.io import (
    atomic_open,
    provenance,
    sha256_file,
)

__all__ = [
    "ClassifierConfig",
    "CLASSIFIER_CONFIGS",
    "CLASSIFIERS",
    "train_domain_classifier",
    "train_classifier",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClassifierConfig:
    """Training configuration of a :class:`DomainClassifier` (the defaults are the digits')."""

    width: int = 32
    num_features: int = 64
    steps: int = 3000
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    max_shift: int = 1  # augmentation: random translation by up to this many pixels
    label_smoothing: float = 0.05
    hflip: bool = False  # augmentation: mirror half the images left-right
    threads: int = 1

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClassifierConfig:
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown ClassifierConfig fields: {sorted(unknown)}")
        return cls(**data)


#: classifier name (its file stem in data/models) -> data set
CLASSIFIERS: dict[str, str] = {d.classifier: name for name, d in DOMAINS.items()}

#: Each data set's classifier recipe (the digits' defaults; a wider, longer one at 28x28).
CLASSIFIER_CONFIGS: dict[str, ClassifierConfig] = {
    "digits": ClassifierConfig(),
    "fashion-mnist": ClassifierConfig(
        width=32, num_features=128, steps=4000, batch_size=128, max_shift=1, hflip=True
    ),
}


def _random_shift(x: Tensor, max_shift: int, generator: torch.Generator) -> Tensor:
    """Translate each image by an integer offset in ``[-max_shift, max_shift]^2``, padding with
    the background value -1 (the blank pixel of the digits and of Fashion-MNIST)."""
    if max_shift == 0:
        return x
    n = x.shape[0]
    pad = nn.functional.pad(x, (max_shift,) * 4, value=-1.0)
    offs = torch.randint(0, 2 * max_shift + 1, (n, 2), generator=generator)
    size = x.shape[-1]
    rows = offs[:, 0, None] + torch.arange(size)  # [n, size]
    cols = offs[:, 1, None] + torch.arange(size)
    idx_n = torch.arange(n)[:, None, None]
    return pad[idx_n, 0, rows[:, :, None], cols[:, None, :]][:, None]


def train_domain_classifier(
    dataset: str = "digits",
    seed: int = 0,
    out_dir: str | Path | None = DEFAULT_MODEL_DIR,
    config: ClassifierConfig | None = None,
    split: ImageSplit | None = None,
    progress: bool = False,
) -> tuple[DomainClassifier, dict[str, Any]]:
    """Train the :class:`DomainClassifier` of ``dataset`` on its training split; return it and
    its card.

    Deterministic given ``seed`` (initialisation, batches, augmentation and dropout all draw from
    one ``torch.Generator``; a fixed number of AdamW steps with a one-cycle schedule;
    ``config.threads`` torch threads). ``config`` defaults to the data set's entry in
    :data:`CLASSIFIER_CONFIGS`, ``split`` to the data set's split with seed 0. With ``out_dir``
    set, writes ``<name>.pt`` (state dict) and ``<name>.json`` (the card: architecture, config,
    seed, split sha256, held-out accuracy, wall time, versions, sha256 of the ``.pt``), each
    atomically.
    """
    domain = domain_of(dataset)
    cfg = config if config is not None else CLASSIFIER_CONFIGS[dataset]
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    if cfg.steps < 1 or cfg.batch_size < 1 or cfg.max_shift < 0 or cfg.threads < 1:
        raise ValueError(f"invalid ClassifierConfig: {cfg}")
    data = split if split is not None else domain.load_split(0)
    if tuple(data.train_x.shape[1:]) != (1, domain.image_size, domain.image_size):
        raise ValueError(
            f"the split's images are {tuple(data.train_x.shape[1:])}, {dataset} has "
            f"(1, {domain.image_size}, {domain.image_size})"
        )
    old_threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    t0 = time.perf_counter()
    try:
        with torch.random.fork_rng(devices=[]):
            # nn.Module initialisation and dropout draw from the global generator: seed it inside
            # fork_rng, so the caller's global random state is left as it was
            torch.manual_seed(seed)
            gen = torch.Generator().manual_seed(seed)  # batches and augmentation
            model = DomainClassifier(cfg.width, cfg.num_features, image_size=domain.image_size)
            opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps)
            loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
            x_all, y_all = data.train_x, data.train_y
            n = x_all.shape[0]
            model.train()
            steps = range(cfg.steps)
            if progress:
                from tqdm import tqdm

                steps = tqdm(steps, desc=f"train {domain.classifier}")
            for _ in steps:
                idx = torch.randint(0, n, (cfg.batch_size,), generator=gen)
                xb = _random_shift(x_all[idx], cfg.max_shift, gen)
                if cfg.hflip:
                    flip = torch.rand(cfg.batch_size, generator=gen) < 0.5
                    xb = torch.where(flip[:, None, None, None], xb.flip(-1), xb)
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
        "name": domain.classifier,
        "purpose": f"penultimate-layer features for the {dataset} domain FID",
        "architecture": model.architecture(),
        "config": cfg.to_dict(),
        "seed": seed,
        "data": {
            "dataset": domain.description,
            "name": dataset,
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
        "%s: held-out accuracy %.4f after %d steps (%.1f s)",
        domain.classifier,
        acc,
        cfg.steps,
        wall,
    )
    if out_dir is not None:
        out = Path(out_dir)
        pt = out / f"{domain.classifier}.pt"
        with atomic_open(pt, "wb") as fh:
            torch.save(model.state_dict(), fh)
        card["weights_file"] = pt.name
        card["sha256"] = sha256_file(pt)
        with atomic_open(out / f"{domain.classifier}.json", "w") as fh:
            json.dump(card, fh, indent=2)
            fh.write("\n")
    return model, card


def train_classifier(
    name: str,
    out_dir: str | Path,
    reference_dir: str | Path,
    *,
    steps: int | None = None,
    threads: int = 1,
    progress: bool = False,
) -> tuple[dict[str, Any], ReferenceStatistics]:
    """Train the classifier ``name`` (a key of :data:`CLASSIFIERS`) with its data set's recipe
    (``steps`` and ``threads`` overridden when given) into ``out_dir``, then compute its held-out
    reference statistics and FID floors into ``reference_dir``; return the card and the
    statistics. This is ``python -m vrg_analysis train <name>``.
    """
    if name not in CLASSIFIERS:
        raise ValueError(f"unknown classifier {name!r}; known: {sorted(CLASSIFIERS)}")
    dataset = CLASSIFIERS[name]
    cfg = CLASSIFIER_CONFIGS[dataset]
    changes = {"threads": threads} | ({"steps": steps} if steps is not None else {})
    cfg = ClassifierConfig.from_dict(cfg.to_dict() | changes)
    model, card = train_domain_classifier(
        dataset, seed=0, out_dir=out_dir, config=cfg, progress=progress
    )
    model.card = card  # type: ignore[attr-defined]
    stats = compute_reference_statistics(model, out_dir=reference_dir, name=dataset)
    return card, stats
