"""Feature extractors for Frechet distances on the image testbeds, and the domain FID.

Inception weights cannot be downloaded here (the design page's pitfalls), so the offline default is
a *domain* feature extractor per image data set (:data:`DOMAINS`): a small CNN trained on the data
set's training split and shipped in ``data/models/<name>.pt`` with a JSON card
(``digits-classifier`` for the 8x8 digits, ``fashion-classifier`` for 28x28 Fashion-MNIST). Its
penultimate layer (``num_features`` dimensions) gives the features; the reference statistics (mean
and covariance of the held-out features) are computed once and shipped in ``data/reference/`` with
their hashes::

    FID_domain(samples) = FD( N(mean, cov of f(samples)), N(mean, cov of f(held-out)) )     (F1)

Every domain FID has a *floor*: the FID between the held-out images and an equally large subset
of the training images (real data against real data). A model cannot be asked to beat it; the
floor is stored beside the reference statistics, at the held-out size and at the smaller sample
sizes the studies use (FID is biased upwards at small n, so a model's FID is compared with the
floor at its own sample size). The classifier was trained on the training
split, so the floor mixes sampling noise with the train/held-out shift of the features.

Standard (Inception) FID is offered through torchmetrics when the user supplies the weights file
(:func:`inception_fid`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn

from vrg_analysis._checks import frozen_array
from vrg_analysis.data import ImageSplit, load_digits_split, load_fashion_mnist_split
from vrg_analysis.evaluation.metrics import frechet_distance, gaussian_moments
from vrg_analysis.io import (
    atomic_open,
    load_verified_state_dict,
    provenance,
    read_json_object,
    sha256_file,
)
from vrg_analysis.resources import models_dir, reference_dir

__all__ = [
    "DOMAINS",
    "Domain",
    "DomainClassifier",
    "TorchmetricsFeatureWrapper",
    "domain_of",
    "load_domain_classifier",
    "domain_extractor",
    "classifier_accuracy",
    "extract_features",
    "ReferenceStatistics",
    "compute_reference_statistics",
    "reference_statistics",
    "fid_floor",
    "domain_fid",
    "inception_fid",
    "DEFAULT_MODEL_DIR",
    "DEFAULT_REFERENCE_DIR",
]

log = logging.getLogger(__name__)
FloatArray = NDArray[np.float64]

DEFAULT_MODEL_DIR = models_dir()
DEFAULT_REFERENCE_DIR = reference_dir()


@dataclass(frozen=True)
class Domain:
    """An image data set with a domain FID: its classifier, reference file and loader."""

    name: str
    classifier: str  # file stem of the classifier in data/models
    reference: str  # file stem of the reference statistics in data/reference
    image_size: int
    load_split: Callable[[int], ImageSplit]  # seed -> the seeded split the classifier was made on
    description: str  # the data and its scaling, for the card
    floor_sizes: tuple[int, ...] = ()  # sample sizes below the held-out size with a stored floor


#: The image data sets with a shipped domain feature extractor.
DOMAINS: dict[str, Domain] = {
    "digits": Domain(
        "digits",
        "digits-classifier",
        "digits-heldout-features",
        8,
        lambda seed: load_digits_split(seed=seed),
        "sklearn load_digits, x = v / 8 - 1",
    ),
    "fashion-mnist": Domain(
        "fashion-mnist",
        "fashion-classifier",
        "fashion-mnist-heldout-features",
        28,
        lambda seed: load_fashion_mnist_split(seed=seed),
        "Fashion-MNIST (Debian's dataset-fashion-mnist; official 60,000/10,000 split), "
        "x = v / 127.5 - 1",
        (500, 1000, 2000, 5000),
    ),
}
_EXTRACTORS: dict[str, DomainClassifier] = {}


def domain_of(dataset: str) -> Domain:
    """The :class:`Domain` of ``dataset``; an unknown name raises ``ValueError`` listing them."""
    if dataset not in DOMAINS:
        raise ValueError(
            f"no domain feature extractor for data set {dataset!r}; known: {sorted(DOMAINS)}"
        )
    return DOMAINS[dataset]


# ===================================================================== the classifier
class DomainClassifier(nn.Module):
    """A small CNN for ``[n, 1, S, S]`` images in ``[-1, 1]`` (``S`` = 8 or 28), 10 classes.

    ``features(x)`` returns the penultimate layer, ``[n, num_features]``. It uses a smooth
    activation (SiLU) rather than ReLU so that no feature is identically zero on a data set
    (dead ReLU units make the feature covariance singular). At 8x8 (the digits): two convolutions,
    one 2x2 pooling, a third convolution; at 28x28 (Fashion-MNIST) a second pooling follows the
    third convolution (28 -> 14 -> 7).
    """

    IMAGE_SIZES = (8, 28)

    def __init__(
        self, width: int = 32, num_features: int = 64, num_classes: int = 10, image_size: int = 8
    ) -> None:
        super().__init__()
        for name, v in (
            ("width", width),
            ("num_features", num_features),
            ("num_classes", num_classes),
        ):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if image_size not in self.IMAGE_SIZES:
            raise ValueError(f"image_size must be one of {self.IMAGE_SIZES}, got {image_size!r}")
        self.width = width
        self.num_features = num_features  # read by torchmetrics' FrechetInceptionDistance
        self.num_classes = num_classes
        self.image_size = image_size
        pooled = image_size // 2 if image_size == 8 else image_size // 4
        second_pool = [] if image_size == 8 else [nn.MaxPool2d(2)]
        self.body = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.SiLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1),
            nn.SiLU(),
            *second_pool,
            nn.Flatten(),
            nn.Dropout(0.25),
            nn.Linear(2 * width * pooled * pooled, num_features),
            nn.SiLU(),
        )
        self.head = nn.Linear(num_features, num_classes)

    def architecture(self) -> dict[str, Any]:
        return {
            "class": type(self).__name__,
            "width": self.width,
            "num_features": self.num_features,
            "num_classes": self.num_classes,
            "image_size": self.image_size,
            "input_shape": [1, self.image_size, self.image_size],
            "input_range": [-1.0, 1.0],
            "parameters": int(sum(p.numel() for p in self.parameters())),
        }

    def _check(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        size = (1, self.image_size, self.image_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != size:
            raise ValueError(
                f"x must have shape [n, {', '.join(map(str, size))}], got {tuple(x.shape)}"
            )
        p = next(self.parameters())
        return x.to(device=p.device, dtype=p.dtype)

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features ``[n, num_features]``."""
        return self.body(self._check(x))

    def forward(self, x: Tensor) -> Tensor:
        """Class logits ``[n, num_classes]``."""
        return self.head(self.features(x))


@torch.no_grad()
def classifier_accuracy(
    model: DomainClassifier, x: Tensor, y: Tensor, batch_size: int = 1000
) -> float:
    """Fraction of ``x`` classified as ``y`` (in batches of ``batch_size``: memory stays bounded
    for a data set of 60,000 28x28 images)."""
    was_training = model.training
    model.eval()
    try:
        pred = torch.cat(
            [model(x[i : i + batch_size]).argmax(dim=1) for i in range(0, len(x), batch_size)]
        )
    finally:
        model.train(was_training)
    return float((pred == y.to(pred.device)).double().mean())


def domain_extractor(dataset: str) -> DomainClassifier:
    """The shipped feature extractor of ``dataset`` behind its domain FID (loaded once)."""
    domain_of(dataset)
    if dataset not in _EXTRACTORS:
        _EXTRACTORS[dataset] = load_domain_classifier(dataset)
    return _EXTRACTORS[dataset]


#: class names a classifier card may carry (the digits card predates the generalisation)
_CLASSIFIER_CLASSES = ("DomainClassifier", "DigitsClassifier")


def load_domain_classifier(
    dataset: str = "digits", directory: str | Path = DEFAULT_MODEL_DIR
) -> DomainClassifier:
    """Load the shipped classifier of ``dataset`` from ``directory`` (``weights_only=True``).

    The sha256 of the ``.pt`` file must match its card, and the card must describe a
    :class:`DomainClassifier` for the data set's image size; a mismatch raises ``ValueError``
    naming the card. Returned in eval mode, with the card as ``model.card``.
    """
    domain = domain_of(dataset)
    directory = Path(directory)
    card_path = directory / f"{domain.classifier}.json"
    card = read_json_object(card_path, "classifier card")
    pt = directory / card.get("weights_file", f"{domain.classifier}.pt")
    if not pt.is_file():
        raise FileNotFoundError(f"classifier weights {str(pt)!r} not found")
    arch = card.get("architecture")
    if not isinstance(arch, dict) or arch.get("class") not in _CLASSIFIER_CLASSES:
        raise ValueError(f"{card_path}: 'architecture' does not describe a DomainClassifier")
    size = int(arch.get("image_size", arch.get("input_shape", [1, 8, 8])[-1]))
    if size != domain.image_size:
        raise ValueError(
            f"{card_path}: the classifier takes {size}x{size} images, but {dataset} has "
            f"{domain.image_size}x{domain.image_size}"
        )
    state = load_verified_state_dict(pt, str(card.get("sha256")))
    model = DomainClassifier(arch["width"], arch["num_features"], arch["num_classes"], size)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(
            f"classifier weights {str(pt)!r} do not fit the card's architecture: {exc}"
        ) from exc
    model.eval()
    model.card = card  # type: ignore[attr-defined]
    return model


# ===================================================================== features
@torch.no_grad()
def extract_features(
    images: Tensor | np.ndarray, extractor: DomainClassifier, batch_size: int = 512
) -> FloatArray:
    """Features ``[n, num_features]`` (float64) of ``images`` ``[n, 1, S, S]`` in ``[-1, 1]``
    (``S`` the extractor's image size)."""
    x = torch.as_tensor(np.asarray(images) if not isinstance(images, Tensor) else images)
    size = (1, extractor.image_size, extractor.image_size)
    if x.ndim != 4 or tuple(x.shape[1:]) != size:
        raise ValueError(
            f"images must have shape [n, {', '.join(map(str, size))}], got {tuple(x.shape)}"
        )
    if not torch.isfinite(x).all():
        raise ValueError("images contain non-finite values")
    lo, hi = float(x.min()), float(x.max())
    if lo < -1.5 or hi > 1.5:
        raise ValueError(
            f"images must lie in [-1, 1] (the data sets' scale), got values in [{lo:.3g}, {hi:.3g}]"
        )
    was_training = extractor.training
    extractor.eval()
    try:
        chunks = [extractor.features(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    finally:
        extractor.train(was_training)
    return torch.cat(chunks).to(torch.float64).cpu().numpy()


class TorchmetricsFeatureWrapper(nn.Module):
    """Adapts a :class:`DomainClassifier` to torchmetrics' ``FrechetInceptionDistance(feature=)``.

    With a custom feature module torchmetrics passes the images to it unchanged (its
    ``normalize`` flag only rescales images for its own Inception network), so the scale is
    handled here, following torchmetrics' two conventions: ``uint8`` images in ``[0, 255]``, or
    floating images in ``[0, 1]``. Either is mapped to ``[-1, 1]``; 3-channel images are
    averaged to one channel. Features are returned in float64 (torchmetrics casts its result to
    the features' dtype).
    """

    def __init__(self, extractor: DomainClassifier) -> None:
        super().__init__()
        self.extractor = extractor
        self.num_features = extractor.num_features

    def forward(self, imgs: Tensor) -> Tensor:
        if imgs.dtype == torch.uint8:
            x = imgs.to(torch.float32) / 127.5 - 1.0
        elif imgs.is_floating_point():
            x = imgs.to(torch.float32) * 2.0 - 1.0
        else:
            raise TypeError(f"images must be uint8 or floating point, got {imgs.dtype}")
        if x.ndim == 4 and x.shape[1] == 3:
            x = x.mean(dim=1, keepdim=True)
        with torch.no_grad():
            return self.extractor.features(x).to(torch.float64)


# ===================================================================== reference statistics
@dataclass(frozen=True, eq=False)
class ReferenceStatistics:
    """Mean and covariance of the held-out features, with what they were made from.

    ``floor`` is the FID floor at the held-out size ``n``; ``floor_by_n`` maps smaller sample
    sizes to their floors (the median FID of that many training images against these
    statistics), for comparing a model's FID at a study's sample size.
    """

    name: str
    mean: FloatArray
    cov: FloatArray
    n: int
    classifier_sha256: str
    split_sha256: str
    floor: float | None = None
    floor_runs: tuple[float, ...] = ()
    floor_by_n: Mapping[int, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("mean", "cov"):
            object.__setattr__(self, name, frozen_array(getattr(self, name)))
        object.__setattr__(
            self,
            "floor_by_n",
            MappingProxyType({int(k): float(v) for k, v in self.floor_by_n.items()}),
        )

    def floor_at(self, n: int) -> float | None:
        """The FID floor for ``n`` samples: stored for ``n`` (or the held-out size), else None."""
        if n == self.n:
            return self.floor
        return self.floor_by_n.get(int(n))


def fid_floor(
    extractor: DomainClassifier,
    split: ImageSplit,
    n_draws: int = 10,
    generator: np.random.Generator | None = None,
    n: int | None = None,
) -> tuple[float, list[float]]:
    """FID between the held-out images and random subsets of ``n`` training images.

    ``n`` defaults to the held-out size. Returns the median over ``n_draws`` subsets and every
    value; the subsets are drawn with ``generator`` (default ``np.random.default_rng(0)``), so
    the result is reproducible. The extractor was trained on the training split (its training
    accuracy is near 1), so part of the floor is the features' train/held-out shift, not only
    sampling noise.
    """
    rng = generator if generator is not None else np.random.default_rng(0)
    n_test, n_train = split.test_x.shape[0], split.train_x.shape[0]
    size = n_test if n is None else n
    if n_draws < 1:
        raise ValueError(f"n_draws must be >= 1, got {n_draws!r}")
    if isinstance(size, bool) or not isinstance(size, int) or not 2 <= size <= n_train:
        raise ValueError(f"n must be an integer in [2, {n_train}] (the training split), got {n!r}")
    feats_train = extract_features(split.train_x, extractor)
    reference = gaussian_moments(extract_features(split.test_x, extractor))
    return _floor_draws(feats_train, reference, size, n_draws, rng)


def _floor_draws(
    feats_train: FloatArray,
    reference: tuple[FloatArray, FloatArray],
    size: int,
    n_draws: int,
    rng: np.random.Generator,
) -> tuple[float, list[float]]:
    """The floor's draws from features extracted once (:func:`fid_floor`)."""
    runs = []
    for _ in range(n_draws):
        idx = rng.choice(feats_train.shape[0], size=size, replace=False)
        m, c = gaussian_moments(feats_train[idx])
        runs.append(frechet_distance(m, c, *reference))
    return float(np.median(runs)), runs


def compute_reference_statistics(
    extractor: DomainClassifier | None = None,
    out_dir: str | Path | None = DEFAULT_REFERENCE_DIR,
    name: str = "digits",
    floor_draws: int = 10,
    floor_sizes: tuple[int, ...] | None = None,
) -> ReferenceStatistics:
    """Held-out feature statistics and the FID floor of data set ``name``; written to
    ``out_dir`` when given.

    The floor is computed at the held-out size and at each of ``floor_sizes`` (default the data
    set's :attr:`Domain.floor_sizes`). Files:
    ``<stem>.npz`` (``mean``, ``cov``, ``n``) and ``<stem>.json`` (sha256 of the npz, classifier
    and split sha256, ``n``, the floors and their runs, provenance).
    """
    domain = domain_of(name)
    model = extractor if extractor is not None else load_domain_classifier(name)
    card = getattr(model, "card", None)
    if card is None:
        raise ValueError("extractor has no card: load it with load_domain_classifier()")
    data = domain.load_split(int(card["data"]["split_seed"]))
    if data.sha256 != card["data"]["split_sha256"]:
        raise ValueError(
            f"{name} split sha256 {data.sha256} differs from the classifier card's "
            f"{card['data']['split_sha256']}"
        )
    # features are extracted once; each floor size draws from a fresh default_rng(0), as
    # fid_floor does
    mean, cov = gaussian_moments(extract_features(data.test_x, model))
    feats_train = extract_features(data.train_x, model)
    sizes = sorted({int(k) for k in (domain.floor_sizes if floor_sizes is None else floor_sizes)})
    bad = [k for k in sizes if not 2 <= k <= feats_train.shape[0]]
    if bad:
        raise ValueError(
            f"floor_sizes {bad} outside [2, {feats_train.shape[0]}] (the training split)"
        )
    n_test = int(data.test_x.shape[0])
    floor, runs = _floor_draws(
        feats_train, (mean, cov), n_test, floor_draws, np.random.default_rng(0)
    )
    by_n = {
        k: _floor_draws(feats_train, (mean, cov), k, floor_draws, np.random.default_rng(0))
        for k in sizes
    }
    stats = ReferenceStatistics(
        name=name,
        mean=mean,
        cov=cov,
        n=int(data.test_x.shape[0]),
        classifier_sha256=card["sha256"],
        split_sha256=data.sha256,
        floor=floor,
        floor_runs=tuple(runs),
        floor_by_n={k: v[0] for k, v in by_n.items()},
    )
    if out_dir is not None:
        out = Path(out_dir)
        npz = out / f"{domain.reference}.npz"
        with atomic_open(npz, "wb") as fh:
            np.savez(fh, mean=mean, cov=cov, n=np.int64(stats.n))
        sidecar = {
            "name": name,
            "description": f"mean and covariance of {domain.classifier} penultimate features of "
            f"the held-out {name} images",
            "npz_file": npz.name,
            "npz_sha256": sha256_file(npz),
            "classifier_sha256": stats.classifier_sha256,
            "split_sha256": stats.split_sha256,
            "n": stats.n,
            "num_features": int(mean.size),
            "fid_floor": {
                "definition": "FID between held-out features and a random equally large "
                "subset of training features (median over draws, numpy default_rng(0))",
                "median": floor,
                "runs": runs,
                "n_draws": floor_draws,
            },
            "fid_floor_by_n": {
                str(k): {
                    "definition": f"FID of {k} random training images against the held-out "
                    "statistics (median over draws, numpy default_rng(0))",
                    "median": med,
                    "runs": r,
                    "n_draws": floor_draws,
                }
                for k, (med, r) in by_n.items()
            },
            "provenance": provenance(),
        }
        with atomic_open(out / f"{domain.reference}.json", "w") as fh:
            json.dump(sidecar, fh, indent=2)
            fh.write("\n")
    return stats


def reference_statistics(
    name: str = "digits",
    directory: str | Path = DEFAULT_REFERENCE_DIR,
    model_dir: str | Path | None = DEFAULT_MODEL_DIR,
) -> ReferenceStatistics:
    """Load the shipped reference statistics of data set ``name`` and verify them.

    Checks the npz's sha256 against its sidecar, and (``model_dir`` not ``None``) that the
    sidecar's classifier sha256 is that of the shipped classifier card; a mismatch raises
    ``ValueError`` naming both digests.
    """
    domain = domain_of(name)
    directory = Path(directory)
    side_path = directory / f"{domain.reference}.json"
    side = read_json_object(side_path, "reference sidecar")
    npz = directory / side.get("npz_file", f"{domain.reference}.npz")
    if not npz.is_file():
        raise FileNotFoundError(f"reference statistics {str(npz)!r} not found")
    actual = sha256_file(npz)
    if actual != side["npz_sha256"]:
        raise ValueError(
            f"reference statistics {str(npz)!r} have sha256 {actual}, but the sidecar says "
            f"{side['npz_sha256']}"
        )
    if model_dir is not None:
        card_path = Path(model_dir) / f"{domain.classifier}.json"
        card = read_json_object(card_path, "classifier card")
        if card.get("sha256") != side["classifier_sha256"]:
            raise ValueError(
                f"reference statistics were made with classifier sha256 "
                f"{side['classifier_sha256']}, but the shipped classifier ({card_path}) is "
                f"{card.get('sha256')}"
            )
    with np.load(npz, allow_pickle=False) as z:
        mean, cov, n = z["mean"], z["cov"], int(z["n"])
    if n != side["n"]:
        raise ValueError(f"{side_path}: npz says n={n}, the sidecar n={side['n']}")
    floor = side.get("fid_floor", {})
    by_n = side.get("fid_floor_by_n", {})
    return ReferenceStatistics(
        name=name,
        mean=mean,
        cov=cov,
        n=n,
        classifier_sha256=side["classifier_sha256"],
        split_sha256=side["split_sha256"],
        floor=floor.get("median"),
        floor_runs=tuple(floor.get("runs", ())),
        floor_by_n={int(k): v["median"] for k, v in by_n.items()},
    )


def domain_fid(
    samples: Tensor | np.ndarray,
    reference_stats: ReferenceStatistics | None = None,
    extractor: DomainClassifier | None = None,
) -> float:
    """Domain FID (F1) of ``samples`` ``[n, 1, S, S]`` (in ``[-1, 1]``) against reference
    statistics.

    Defaults: the shipped digits reference statistics, and the classifier of the statistics'
    data set. The extractor must be the one the statistics were made with (checked by sha256
    when it carries a card).

    FID is biased upwards at small ``n`` (the covariance estimate is noisy); compare a model's
    value with ``reference_stats.floor_at(n)``, the floor at the same sample size.
    """
    ref = reference_stats if reference_stats is not None else reference_statistics("digits")
    model = extractor if extractor is not None else domain_extractor(ref.name)
    card = getattr(model, "card", None)
    if card is not None and card.get("sha256") != ref.classifier_sha256:
        raise ValueError(
            f"extractor sha256 {card.get('sha256')} is not the one the reference statistics were "
            f"made with ({ref.classifier_sha256})"
        )
    feats = extract_features(samples, model)
    if feats.shape[0] < 2:
        raise ValueError(f"need at least 2 samples, got {feats.shape[0]}")
    if feats.shape[1] != ref.mean.size:
        raise ValueError(
            f"extractor gives {feats.shape[1]} features, the reference has {ref.mean.size}"
        )
    mean, cov = gaussian_moments(feats)
    return frechet_distance(mean, cov, ref.mean, ref.cov)


# ===================================================================== Inception FID
_INCEPTION_HELP = (
    "Inception weights cannot be downloaded here. Standard FID needs the torch-fidelity "
    "Inception-v3 weights file ('weights-inception-2015-12-05-6726825d.pth'), obtained "
    "elsewhere and passed as weights_path=...; without it use domain_fid() (the shipped "
    "domain classifier of the data set)."
)


def inception_fid(
    samples: Tensor,
    reference: Tensor,
    weights_path: str | Path | None = None,
    batch_size: int = 64,
    metric_factory: Callable[..., Any] | None = None,
) -> float:
    """Standard FID (Inception-v3 pool features, 2048-d) through torchmetrics.

    ``samples`` and ``reference`` are ``[n, C, H, W]`` images in ``[-1, 1]`` with ``C`` 1 or 3
    (1 is repeated to 3); they are passed to torchmetrics as floats in ``[0, 1]`` with
    ``normalize=True``, which resizes them to 299x299. ``weights_path`` must name a local
    Inception weights file (torchmetrics' ``feature_extractor_weights_path``); without it, or if
    the file is missing, a ``ValueError`` explains how to supply one. torchmetrics' Inception
    network also needs the ``torch-fidelity`` package (an ``ImportError`` says so when it is
    absent). ``metric_factory`` replaces torchmetrics' ``FrechetInceptionDistance`` (tests).
    """
    if weights_path is None:
        raise ValueError(f"inception_fid needs weights_path. {_INCEPTION_HELP}")
    path = Path(weights_path)
    if not path.is_file():
        raise ValueError(f"Inception weights file {str(path)!r} not found. {_INCEPTION_HELP}")
    if metric_factory is None:
        try:
            from torchmetrics.image.fid import FrechetInceptionDistance
        except ImportError as exc:  # pragma: no cover - depends on the environment
            msg = "inception_fid needs torchmetrics (pip install torchmetrics)"
            raise ImportError(msg) from exc
        metric_factory = FrechetInceptionDistance
    try:
        metric = metric_factory(
            feature=2048, normalize=True, feature_extractor_weights_path=str(path)
        )
    except ModuleNotFoundError as exc:
        raise ImportError(
            f"torchmetrics' Inception network needs torch-fidelity, which is not installed: {exc}"
        ) from exc
    metric.set_dtype(torch.float64)
    for real, imgs in ((True, reference), (False, samples)):
        x = torch.as_tensor(imgs)
        if x.ndim != 4 or x.shape[1] not in (1, 3) or x.shape[0] < 2:
            raise ValueError(f"images must have shape [n >= 2, 1 or 3, H, W], got {tuple(x.shape)}")
        for i in range(0, x.shape[0], batch_size):
            b = ((x[i : i + batch_size].float() + 1.0) / 2.0).clamp(0.0, 1.0)
            metric.update(b.expand(-1, 3, -1, -1) if b.shape[1] == 1 else b, real=real)
    return float(metric.compute())
