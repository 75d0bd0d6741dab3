"""Image testbeds: a shipped UNet with the data set it was trained on and a domain FID.

``digits`` / ``digits-cond``: scikit-learn's 8x8 digits with the unconditional and the
class-conditional UNet (``data/models/digits-unet*``); ``fashion``: 28x28 Fashion-MNIST with the
unconditional UNet trained here (``data/models/fashion-unet*``), the book's headline image model.
Samples are scored with the domain FID of the shipped classifier's features against the held-out
images (:mod:`vrg_analysis.evaluation.features`); the reference predictor is the optimal predictor
of the training split (:class:`~vrg_analysis.models.analytic.EmpiricalOptimalEpsModel`), label-aware
for the conditional model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor

from vrg_analysis.core.schedules import NoiseSchedule
from vrg_analysis.data import ImageSplit
from vrg_analysis.evaluation.features import (
    DOMAINS,
    domain_extractor,
    extract_features,
    reference_statistics,
)
from vrg_analysis.models.analytic import EmpiricalOptimalEpsModel
from vrg_analysis.models.checkpoints import MODELS_DIR, load_trained
from vrg_analysis.models.guidance import GuidedEpsModel
from vrg_analysis.testbeds.base import Reference, Scoring, Testbed
from vrg_analysis.testbeds.mixture import check_same_schedule

__all__ = ["ImageTestbed", "IMAGE_TESTBEDS", "DATASETS"]

#: data set name -> split loader (seed -> ImageSplit): the data sets with a domain FID
DATASETS: dict[str, Callable[[int], ImageSplit]] = {n: d.load_split for n, d in DOMAINS.items()}

#: testbed name -> (checkpoint name, data set name)
IMAGE_TESTBEDS: dict[str, tuple[str, str]] = {
    "digits": ("digits-unet", "digits"),
    "digits-cond": ("digits-unet-cond", "digits"),
    "fashion": ("fashion-unet", "fashion-mnist"),
    "fashion-cond": ("fashion-unet-cond", "fashion-mnist"),
}


@dataclass(eq=False)
class ImageTestbed(Testbed):
    """A shipped image UNet (``model``, hash-checked) with its training split and domain FID."""

    name: str
    description: str
    schedule: NoiseSchedule
    network: Any  # the loaded module, with .schedule and .card
    split: ImageSplit
    dataset: str
    device: str = "cpu"
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def model(self) -> Any:
        """The UNet on :attr:`device` (a conditional one called as ``model(x, t)`` predicts with
        the "no label" token)."""
        return self._on_device(self.network)

    @property
    def model_name(self) -> str:
        return str(self.network.card["name"])

    @property
    def shape(self) -> tuple[int, ...]:
        return self.sample_shape

    @property
    def train_x(self) -> Tensor:
        return self.split.train_x

    @property
    def held_out_x(self) -> Tensor:
        return self.split.test_x

    @property
    def train_y(self) -> Tensor | None:
        return self.split.train_y if self.conditional else None

    @property
    def held_out_y(self) -> Tensor | None:
        return self.split.test_y if self.conditional else None

    @property
    def labels(self) -> tuple[Tensor, Tensor]:
        """The class labels of the training and held-out images (whether or not the model is
        conditional)."""
        return self.split.train_y, self.split.test_y

    @property
    def num_classes(self) -> int:
        return int(getattr(self.network, "num_classes", 0))

    def guided(self, label: Any, guidance_scale: float) -> GuidedEpsModel:
        """Classifier-free guidance (:class:`~vrg_analysis.models.guidance.GuidedEpsModel`)."""
        if not self.conditional:
            return super().guided(label, guidance_scale)  # type: ignore[return-value]
        return GuidedEpsModel(self.model, label, guidance_scale, self.schedule)

    def reference(self) -> Reference:
        if "reference" not in self._cache:
            labels = self.split.train_y if self.conditional else None
            ref = EmpiricalOptimalEpsModel(
                self.train_x,
                self.schedule,
                labels=labels,
                null_label=self.num_classes if self.conditional else None,
                name=f"{self.name} training split",
            )
            what = "eps* of the training split (empirical optimal predictor)"
            if self.conditional:
                what = "eps* of the label's class in the training split (empirical optimal)"
            self._cache["reference"] = Reference(ref, what, exact=False)
        return self._cache["reference"]

    def scoring(self) -> Scoring:
        ref = reference_statistics(self.dataset)
        extractor = domain_extractor(self.dataset)
        return Scoring(
            set_metric="fid",
            set_features=lambda x: extract_features(x.clamp(-1.0, 1.0), extractor),
            reference_moments=(ref.mean, ref.cov),
            fingerprint={
                "classifier_sha256": ref.classifier_sha256,
                "reference_mean": ref.mean,
                "reference_cov": ref.cov,
            },
        )

    @property
    def fingerprint(self) -> dict[str, Any]:
        return {
            "testbed": self.name,
            "model_sha256": self.network.card.get("sha256"),
            "split_sha256": self.split.sha256,
        }


def make_image_testbed(
    name: str,
    *,
    schedule: NoiseSchedule | None = None,
    models_dir: str | Path | None = None,
    device: str = "cpu",
) -> ImageTestbed:
    """The image testbed ``name`` (a key of :data:`IMAGE_TESTBEDS`), hash-checked against the
    checkpoint's card: the split it was trained on must be the one the loader gives."""
    model_name, dataset = IMAGE_TESTBEDS[name]
    net = load_trained(model_name, models_dir or MODELS_DIR)
    if schedule is not None:
        check_same_schedule(net.schedule, schedule, model_name)
    data = net.card.get("data", {})
    split = DATASETS[dataset](int(data.get("split_seed", 0)))
    card_hash = data.get("split_sha256")
    if card_hash is not None and card_hash != split.sha256:
        raise ValueError(
            f"model {model_name!r} was trained on a {dataset} split with sha256 {card_hash}, but "
            f"the loader gives {split.sha256}"
        )
    return ImageTestbed(
        name=name,
        description=str(net.card.get("description", "")),
        schedule=net.schedule,
        network=net,
        split=split,
        dataset=dataset,
        device=device,
    )
