"""Data sets shipped with the toolkit's dependencies (nothing is downloaded).

``digits``: scikit-learn's 8x8 handwritten digits (1797 images, values 0..16), scaled to
``[-1, 1]`` as ``x = v / 8 - 1`` and split into training and held-out parts with a seeded,
class-stratified permutation. The split's sha256 is recorded in every artifact made from it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .io import sha256_array

__all__ = ["DigitsSplit", "load_digits_split"]


@dataclass(frozen=True, eq=False)
class DigitsSplit:
    """Training and held-out digits as ``[n, 1, 8, 8]`` float32 tensors in ``[-1, 1]``."""

    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    seed: int
    held_out_fraction: float
    sha256: str  # of the concatenated (train index, held-out index) permutation and the pixels

    @property
    def num_classes(self) -> int:
        return 10


def load_digits_split(seed: int = 0, held_out_fraction: float = 0.25) -> DigitsSplit:
    """The digits split used by every digits testbed (deterministic given ``seed``)."""
    from sklearn.datasets import load_digits

    if not 0.0 < held_out_fraction < 1.0:
        raise ValueError(f"held_out_fraction must lie in (0, 1), got {held_out_fraction!r}")
    bunch = load_digits()
    images = np.asarray(bunch.images, dtype=np.float64)  # [1797, 8, 8], values 0..16
    labels = np.asarray(bunch.target, dtype=np.int64)
    rng = np.random.default_rng(seed)
    train_idx: list[int] = []
    test_idx: list[int] = []
    for c in range(10):  # stratified: the same held-out share of every class
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = int(round(held_out_fraction * idx.size))
        test_idx.extend(idx[:n_test].tolist())
        train_idx.extend(idx[n_test:].tolist())
    tr, te = np.sort(train_idx), np.sort(test_idx)
    x = (images / 8.0 - 1.0).astype(np.float32)[:, None]  # [-1, 1], channel first
    digest = sha256_array(np.concatenate([tr, te, x.reshape(-1).view(np.int32)]))
    return DigitsSplit(
        train_x=torch.from_numpy(x[tr].copy()),
        train_y=torch.from_numpy(labels[tr].copy()),
        test_x=torch.from_numpy(x[te].copy()),
        test_y=torch.from_numpy(labels[te].copy()),
        seed=seed,
        held_out_fraction=held_out_fraction,
        sha256=digest,
    )
