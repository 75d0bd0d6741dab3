"""Data sets shipped with the toolkit's dependencies (nothing is downloaded).

``digits``: scikit-learn's 8x8 handwritten digits (1797 images, values 0..16), scaled to
``[-1, 1]`` as ``x = v / 8 - 1`` and split into training and held-out parts with a seeded,
class-stratified permutation. The split's sha256 is recorded in every artifact made from it.

``fashion-mnist``: Fashion-MNIST (Xiao et al. 2017; 60,000 training and 10,000 test images,
28x28 grey, 10 classes) from the IDX files of Debian's ``dataset-fashion-mnist`` package
(``/usr/share/datasets/fashion-mnist``; ``$VRG_FASHION_MNIST_DIR`` overrides the folder), scaled as
``x = v / 127.5 - 1``. The held-out part is the official test set, never seen in training; the
seed fixes a permutation of each part, so a prefix of ``n`` rows is a seeded random subsample.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from vrg_analysis.io import read_idx, sha256_array

__all__ = [
    "ImageSplit",
    "DigitsSplit",
    "load_digits_split",
    "FASHION_MNIST_DIR",
    "FASHION_MNIST_CLASSES",
    "read_idx",
    "load_fashion_mnist_split",
]


@dataclass(frozen=True, eq=False)
class ImageSplit:
    """Training and held-out images as ``[n, 1, H, W]`` float32 tensors in ``[-1, 1]``."""

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


DigitsSplit = ImageSplit  # the digits split's historical name


def load_digits_split(seed: int = 0, held_out_fraction: float = 0.25) -> ImageSplit:
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
    return ImageSplit(
        train_x=torch.from_numpy(x[tr].copy()),
        train_y=torch.from_numpy(labels[tr].copy()),
        test_x=torch.from_numpy(x[te].copy()),
        test_y=torch.from_numpy(labels[te].copy()),
        seed=seed,
        held_out_fraction=held_out_fraction,
        sha256=digest,
    )


FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
_FASHION_FILES = {
    "train_x": "train-images-idx3-ubyte.gz",
    "train_y": "train-labels-idx1-ubyte.gz",
    "test_x": "t10k-images-idx3-ubyte.gz",
    "test_y": "t10k-labels-idx1-ubyte.gz",
}
_INSTALL_HINT = (
    "Fashion-MNIST ships as Debian's package dataset-fashion-mnist: "
    "`sudo apt-get update && sudo apt-get install -y dataset-fashion-mnist` (or `make data`), "
    "or point $VRG_FASHION_MNIST_DIR at a folder with the four IDX files"
)


def fashion_mnist_dir() -> Path:
    """The folder holding the Fashion-MNIST IDX files (``$VRG_FASHION_MNIST_DIR`` or Debian's)."""
    return Path(os.environ.get("VRG_FASHION_MNIST_DIR", FASHION_MNIST_DIR))


def load_fashion_mnist_split(seed: int = 0, root: str | Path | None = None) -> ImageSplit:
    """Fashion-MNIST as ``[n, 1, 28, 28]`` tensors in ``[-1, 1]`` (``x = v / 127.5 - 1``).

    Training part: the 60,000 official training images; held-out part: the 10,000 official test
    images. Each part is permuted by ``numpy.random.default_rng(seed)`` (so the first ``n`` rows
    are a seeded random subsample). ``sha256`` hashes the permutations and the raw pixels. A missing
    folder or file raises ``FileNotFoundError`` with the install command.
    """
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    folder = Path(root) if root is not None else fashion_mnist_dir()
    missing = [f for f in _FASHION_FILES.values() if not (folder / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"Fashion-MNIST files {missing} not found in {folder}. {_INSTALL_HINT}"
        )
    arrays = {k: read_idx(folder / f) for k, f in _FASHION_FILES.items()}
    for part in ("train", "test"):
        xs, ys = arrays[f"{part}_x"], arrays[f"{part}_y"]
        if xs.ndim != 3 or xs.shape[1:] != (28, 28) or ys.shape != (xs.shape[0],):
            raise ValueError(
                f"{folder}: Fashion-MNIST {part} images {xs.shape} and labels {ys.shape} do not "
                "match ([n, 28, 28] and [n])"
            )
        if int(ys.max()) > 9:
            raise ValueError(f"{folder}: {part} labels outside 0..9")
    rng = np.random.default_rng(int(seed))
    perm_tr = rng.permutation(arrays["train_x"].shape[0])
    perm_te = rng.permutation(arrays["test_x"].shape[0])
    digest = sha256_array(
        np.concatenate(
            [
                perm_tr.astype(np.int64).view(np.uint8),
                perm_te.astype(np.int64).view(np.uint8),
                arrays["train_x"].reshape(-1),
                arrays["train_y"],
                arrays["test_x"].reshape(-1),
                arrays["test_y"],
            ]
        )
    )

    def scaled(a: NDArray[np.uint8], perm: NDArray[np.int64]) -> Tensor:
        return torch.from_numpy((a[perm].astype(np.float32) / 127.5 - 1.0)[:, None].copy())

    return ImageSplit(
        train_x=scaled(arrays["train_x"], perm_tr),
        train_y=torch.from_numpy(arrays["train_y"][perm_tr].astype(np.int64)),
        test_x=scaled(arrays["test_x"], perm_te),
        test_y=torch.from_numpy(arrays["test_y"][perm_te].astype(np.int64)),
        seed=int(seed),
        held_out_fraction=arrays["test_x"].shape[0]
        / (arrays["train_x"].shape[0] + arrays["test_x"].shape[0]),
        sha256=digest,
    )
