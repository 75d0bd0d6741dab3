"""Feature extractors for Frechet distances on the image testbeds, and the domain FID.

Inception weights cannot be downloaded here (the design page's pitfalls), so the offline default is
a *domain* feature extractor: a small CNN trained on the digits training split and shipped in
``data/models/digits-classifier.pt`` with a JSON card. Its penultimate layer (``num_features``
dimensions) gives the features; the reference statistics (mean and covariance of the held-out
features) are computed once and shipped in ``data/reference/`` with their hashes::

    FID_domain(samples) = FD( N(mean, cov of f(samples)), N(mean, cov of f(held-out)) )     (F1)

Every domain FID has a *floor*: the FID between the held-out images and an equally large subset
of the training images (real data against real data). A model cannot be asked to beat it; the
floor is stored beside the reference statistics. The classifier was trained on the training
split, so the floor mixes sampling noise with the train/held-out shift of the features.

Standard (Inception) FID is offered through torchmetrics when the user supplies the weights file
(:func:`inception_fid`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn

from vrg_analysis._checks import frozen_array
from vrg_analysis.data import DigitsSplit, load_digits_split
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
    "DigitsClassifier",
    "TorchmetricsFeatureWrapper",
    "load_digits_classifier",
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
CLASSIFIER_NAME = "digits-classifier"
_REFERENCE_FILES = {"digits": "digits-heldout-features"}
_DOMAIN_CLASSIFIERS = {"digits": CLASSIFIER_NAME}
_EXTRACTORS: dict[str, DigitsClassifier] = {}


# ===================================================================== the classifier
class DigitsClassifier(nn.Module):
    """A small CNN for ``[n, 1, 8, 8]`` images in ``[-1, 1]``, 10 classes.

    ``features(x)`` returns the penultimate layer, ``[n, num_features]``. It uses a smooth
    activation (SiLU) rather than ReLU so that no feature is identically zero on a data set
    (dead ReLU units make the feature covariance singular).
    """

    def __init__(self, width: int = 32, num_features: int = 64, num_classes: int = 10) -> None:
        super().__init__()
        for name, v in (
            ("width", width),
            ("num_features", num_features),
            ("num_classes", num_classes),
        ):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        self.width = width
        self.num_features = num_features  # read by torchmetrics' FrechetInceptionDistance
        self.num_classes = num_classes
        self.body = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.SiLU(),
            nn.MaxPool2d(2),  # 8x8 -> 4x4
            nn.Conv2d(2 * width, 2 * width, 3, padding=1),
            nn.SiLU(),
            nn.Flatten(),
            nn.Dropout(0.25),
            nn.Linear(2 * width * 16, num_features),
            nn.SiLU(),
        )
        self.head = nn.Linear(num_features, num_classes)

    def architecture(self) -> dict[str, Any]:
        return {
            "class": type(self).__name__,
            "width": self.width,
            "num_features": self.num_features,
            "num_classes": self.num_classes,
            "input_shape": [1, 8, 8],
            "input_range": [-1.0, 1.0],
            "parameters": int(sum(p.numel() for p in self.parameters())),
        }

    def _check(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim != 4 or tuple(x.shape[1:]) != (1, 8, 8):
            raise ValueError(f"x must have shape [n, 1, 8, 8], got {tuple(x.shape)}")
        p = next(self.parameters())
        return x.to(device=p.device, dtype=p.dtype)

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features ``[n, num_features]``."""
        return self.body(self._check(x))

    def forward(self, x: Tensor) -> Tensor:
        """Class logits ``[n, num_classes]``."""
        return self.head(self.features(x))


@torch.no_grad()
def classifier_accuracy(model: DigitsClassifier, x: Tensor, y: Tensor) -> float:
    """Fraction of ``x`` classified as ``y``."""
    was_training = model.training
    model.eval()
    try:
        pred = model(x).argmax(dim=1)
    finally:
        model.train(was_training)
    return float((pred == y.to(pred.device)).double().mean())


def domain_extractor(dataset: str) -> DigitsClassifier:
    """The shipped feature extractor of ``dataset`` behind its domain FID (loaded once)."""
    if dataset not in _DOMAIN_CLASSIFIERS:
        raise ValueError(
            f"no domain feature extractor for data set {dataset!r}; known: "
            f"{sorted(_DOMAIN_CLASSIFIERS)}"
        )
    if dataset not in _EXTRACTORS:
        _EXTRACTORS[dataset] = load_digits_classifier()
    return _EXTRACTORS[dataset]


def load_digits_classifier(directory: str | Path = DEFAULT_MODEL_DIR) -> DigitsClassifier:
    """Load the shipped classifier from ``directory`` (``weights_only=True``), in eval mode.

    The sha256 of the ``.pt`` file must match its card; a mismatch raises ``ValueError`` naming
    both digests.
    """
    directory = Path(directory)
    card = read_json_object(directory / f"{CLASSIFIER_NAME}.json", "classifier card")
    pt = directory / card.get("weights_file", f"{CLASSIFIER_NAME}.pt")
    if not pt.is_file():
        raise FileNotFoundError(f"classifier weights {str(pt)!r} not found")
    state = load_verified_state_dict(pt, str(card.get("sha256")))
    arch = card["architecture"]
    model = DigitsClassifier(arch["width"], arch["num_features"], arch["num_classes"])
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
    images: Tensor | np.ndarray, extractor: DigitsClassifier, batch_size: int = 512
) -> FloatArray:
    """Features ``[n, num_features]`` (float64) of ``images`` ``[n, 1, 8, 8]`` in ``[-1, 1]``."""
    x = torch.as_tensor(np.asarray(images) if not isinstance(images, Tensor) else images)
    if x.ndim != 4 or tuple(x.shape[1:]) != (1, 8, 8):
        raise ValueError(f"images must have shape [n, 1, 8, 8], got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError("images contain non-finite values")
    lo, hi = float(x.min()), float(x.max())
    if lo < -1.5 or hi > 1.5:
        raise ValueError(
            f"images must lie in [-1, 1] (the digits scale), got values in [{lo:.3g}, {hi:.3g}]"
        )
    was_training = extractor.training
    extractor.eval()
    try:
        chunks = [extractor.features(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    finally:
        extractor.train(was_training)
    return torch.cat(chunks).to(torch.float64).cpu().numpy()


class TorchmetricsFeatureWrapper(nn.Module):
    """Adapts a :class:`DigitsClassifier` to torchmetrics' ``FrechetInceptionDistance(feature=)``.

    With a custom feature module torchmetrics passes the images to it unchanged (its
    ``normalize`` flag only rescales images for its own Inception network), so the scale is
    handled here, following torchmetrics' two conventions: ``uint8`` images in ``[0, 255]``, or
    floating images in ``[0, 1]``. Either is mapped to ``[-1, 1]``; 3-channel images are
    averaged to one channel. Features are returned in float64 (torchmetrics casts its result to
    the features' dtype).
    """

    def __init__(self, extractor: DigitsClassifier) -> None:
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
    """Mean and covariance of the held-out features, with what they were made from."""

    name: str
    mean: FloatArray
    cov: FloatArray
    n: int
    classifier_sha256: str
    split_sha256: str
    floor: float | None = None
    floor_runs: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        for field in ("mean", "cov"):
            object.__setattr__(self, field, frozen_array(getattr(self, field)))


def fid_floor(
    extractor: DigitsClassifier,
    split: DigitsSplit | None = None,
    n_draws: int = 10,
    generator: np.random.Generator | None = None,
) -> tuple[float, list[float]]:
    """FID between the held-out images and equally large random subsets of the training images.

    Returns the median over ``n_draws`` subsets and every value; the subsets are drawn with
    ``generator`` (default ``np.random.default_rng(0)``), so the result is reproducible. The
    extractor was trained on the training split (its training accuracy is near 1), so part of
    the floor is the features' train/held-out shift, not only sampling noise.
    """
    data = split if split is not None else load_digits_split(seed=0)
    rng = generator if generator is not None else np.random.default_rng(0)
    n_test, n_train = data.test_x.shape[0], data.train_x.shape[0]
    if n_draws < 1:
        raise ValueError(f"n_draws must be >= 1, got {n_draws!r}")
    if n_train < n_test:
        raise ValueError(f"training split ({n_train}) is smaller than the held-out one ({n_test})")
    feats_train = extract_features(data.train_x, extractor)
    m_ref, c_ref = gaussian_moments(extract_features(data.test_x, extractor))
    runs = []
    for _ in range(n_draws):
        idx = rng.choice(n_train, size=n_test, replace=False)
        m, c = gaussian_moments(feats_train[idx])
        runs.append(frechet_distance(m, c, m_ref, c_ref))
    return float(np.median(runs)), runs


def compute_reference_statistics(
    extractor: DigitsClassifier | None = None,
    out_dir: str | Path | None = DEFAULT_REFERENCE_DIR,
    name: str = "digits",
    floor_draws: int = 10,
) -> ReferenceStatistics:
    """Held-out feature statistics and the FID floor; written to ``out_dir`` when given.

    Files: ``<stem>.npz`` (``mean``, ``cov``, ``n``) and ``<stem>.json`` (sha256 of the npz,
    classifier and split sha256, ``n``, the floor and its runs, provenance).
    """
    if name not in _REFERENCE_FILES:
        raise ValueError(f"unknown reference {name!r}; known: {sorted(_REFERENCE_FILES)}")
    model = extractor if extractor is not None else load_digits_classifier()
    card = getattr(model, "card", None)
    if card is None:
        raise ValueError("extractor has no card: load it with load_digits_classifier()")
    data = load_digits_split(seed=card["data"]["split_seed"])
    if data.sha256 != card["data"]["split_sha256"]:
        raise ValueError(
            f"digits split sha256 {data.sha256} differs from the classifier card's "
            f"{card['data']['split_sha256']}"
        )
    mean, cov = gaussian_moments(extract_features(data.test_x, model))
    floor, runs = fid_floor(model, data, n_draws=floor_draws)
    stats = ReferenceStatistics(
        name=name,
        mean=mean,
        cov=cov,
        n=int(data.test_x.shape[0]),
        classifier_sha256=card["sha256"],
        split_sha256=data.sha256,
        floor=floor,
        floor_runs=tuple(runs),
    )
    if out_dir is not None:
        out = Path(out_dir)
        stem = _REFERENCE_FILES[name]
        npz = out / f"{stem}.npz"
        with atomic_open(npz, "wb") as fh:
            np.savez(fh, mean=mean, cov=cov, n=np.int64(stats.n))
        sidecar = {
            "name": name,
            "description": "mean and covariance of digits-classifier penultimate features of "
            "the held-out digits",
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
            "provenance": provenance(),
        }
        with atomic_open(out / f"{stem}.json", "w") as fh:
            json.dump(sidecar, fh, indent=2)
            fh.write("\n")
    return stats


def reference_statistics(
    name: str = "digits",
    directory: str | Path = DEFAULT_REFERENCE_DIR,
    model_dir: str | Path | None = DEFAULT_MODEL_DIR,
) -> ReferenceStatistics:
    """Load shipped reference statistics and verify them.

    Checks the npz's sha256 against its sidecar, and (``model_dir`` not ``None``) that the
    sidecar's classifier sha256 is that of the shipped classifier card; a mismatch raises
    ``ValueError`` naming both digests.
    """
    if name not in _REFERENCE_FILES:
        raise ValueError(f"unknown reference {name!r}; known: {sorted(_REFERENCE_FILES)}")
    directory = Path(directory)
    stem = _REFERENCE_FILES[name]
    side = read_json_object(directory / f"{stem}.json", "reference sidecar")
    npz = directory / side.get("npz_file", f"{stem}.npz")
    if not npz.is_file():
        raise FileNotFoundError(f"reference statistics {str(npz)!r} not found")
    actual = sha256_file(npz)
    if actual != side["npz_sha256"]:
        raise ValueError(
            f"reference statistics {str(npz)!r} have sha256 {actual}, but the sidecar says "
            f"{side['npz_sha256']}"
        )
    if model_dir is not None:
        card = read_json_object(Path(model_dir) / f"{CLASSIFIER_NAME}.json", "classifier card")
        if card.get("sha256") != side["classifier_sha256"]:
            raise ValueError(
                f"reference statistics were made with classifier sha256 "
                f"{side['classifier_sha256']}, but the shipped classifier is {card.get('sha256')}"
            )
    with np.load(npz, allow_pickle=False) as z:
        mean, cov, n = z["mean"], z["cov"], int(z["n"])
    if n != side["n"]:
        raise ValueError(f"npz says n={n}, the sidecar n={side['n']}")
    floor = side.get("fid_floor", {})
    return ReferenceStatistics(
        name=name,
        mean=mean,
        cov=cov,
        n=n,
        classifier_sha256=side["classifier_sha256"],
        split_sha256=side["split_sha256"],
        floor=floor.get("median"),
        floor_runs=tuple(floor.get("runs", ())),
    )


def domain_fid(
    samples: Tensor | np.ndarray,
    reference_stats: ReferenceStatistics | None = None,
    extractor: DigitsClassifier | None = None,
) -> float:
    """Domain FID of ``samples`` ``[n, 1, 8, 8]`` (in ``[-1, 1]``) against reference statistics.

    Defaults: the shipped digits reference statistics and classifier. The extractor must be the
    one the statistics were made with (checked by sha256 when it carries a card).

    FID is biased upwards at small ``n`` (the covariance estimate is noisy); compare a model's
    value with ``reference_stats.floor`` only at the floor's sample size, ``reference_stats.n``
    (450 held-out digits).
    """
    ref = reference_stats if reference_stats is not None else reference_statistics("digits")
    model = extractor if extractor is not None else load_digits_classifier()
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
    "digits classifier)."
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
