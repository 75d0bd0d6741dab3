"""A text-conditional latent pipeline (Stable Diffusion and kin) with captioned data, as a testbed.

The folder is a Stable-Diffusion-layout pipeline (:func:`~vrg_analysis.models.pipeline.
load_diffusers_pipeline`); the data are a folder of images with a ``captions.csv`` (encoded once
by the pipeline's VAE and cached, :func:`~vrg_analysis.models.latents.encode_image_folder`) or a
file of precomputed latents with their prompts (:func:`~vrg_analysis.models.latents.load_latents`).

The captions play the part of a class-conditional testbed's labels, so that every path written
for class-conditional models takes a pipeline unchanged: the distinct captions are the classes
(``num_classes`` of them, ``train_y`` / ``held_out_y`` each row's caption index), :attr:`model`
called without a label predicts with the empty prompt (the unconditional model), and
:meth:`guided` is classifier-free guidance over the captions
(:class:`~vrg_analysis.models.pipeline.CaptionedEpsModel`: one UNet batch of empty and caption
prompts, as diffusers' pipeline computes it). The rows are split by a seeded permutation into
training rows (profiled by Algorithm 1; their optimal predictor, per caption where a label is
given, is the reference) and held-out rows (the set metric's reference moments). Samples are
latents; they are scored by decoding them with the VAE and taking :func:`pixel_features` of the
images (``pixel_frechet``; not comparable with FID).

The pipeline runs in float16 on CUDA (what Stable Diffusion users run) and float32 on the CPU;
the dtype is part of the model's identity and of the testbed's fingerprint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from vrg_analysis.evaluation.metrics import gaussian_moments
from vrg_analysis.io import sha256_array
from vrg_analysis.models.analytic import EmpiricalOptimalEpsModel
from vrg_analysis.models.guidance import GuidedEpsModel
from vrg_analysis.models.latents import LatentData, decode_latents, encode_image_folder
from vrg_analysis.models.latents import load_latents as read_latents
from vrg_analysis.models.pipeline import (
    CaptionedEpsModel,
    PipelineEpsModel,
    load_diffusers_pipeline,
)
from vrg_analysis.models.protocol import resolve_device
from vrg_analysis.testbeds.base import Reference, Scoring, Testbed
from vrg_analysis.testbeds.checkpoint import pixel_features

__all__ = ["PipelineTestbed", "make_pipeline_testbed", "pipeline_data"]

FloatArray = NDArray[np.float64]


def pipeline_data(pipeline: PipelineEpsModel, data: str | Path) -> LatentData:
    """The latents and captions of ``data``: an image folder with ``captions.csv`` (encoded by
    the pipeline's VAE, cached) or a ``.npz`` / ``.pt`` file of latents and prompts."""
    path = Path(data)
    if path.is_dir():
        return encode_image_folder(pipeline, path, embed=False)
    if path.is_file():
        data_ = read_latents(path)
        if data_.latents.shape[1:] != pipeline.sample_shape:
            raise ValueError(
                f"{str(path)!r}: latents of shape {tuple(data_.latents.shape[1:])}; "
                f"{pipeline.name} samples {pipeline.sample_shape}"
            )
        return data_
    raise ValueError(
        f"pipeline data {str(data)!r} is neither an image folder with captions.csv nor a "
        "latents file (.npz / .pt)"
    )


@dataclass(eq=False)
class PipelineTestbed(Testbed):
    """A pipeline folder with its captioned data split (see the module docstring)."""

    name: str
    description: str
    folder: Path
    pipeline: PipelineEpsModel
    captions: tuple[str, ...]
    train_rows: Tensor
    held_out_rows: Tensor
    train_labels: Tensor
    held_out_labels: Tensor
    data_path: str
    held_out_fraction: float
    seed: int
    device: str = "cpu"
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def schedule(self) -> Any:  # type: ignore[override]
        return self.pipeline.schedule

    @property
    def model(self) -> CaptionedEpsModel:
        """The conditional pipeline over the captions (called without a label: the empty
        prompt, the unconditional model)."""
        if "model" not in self._cache:
            self._cache["model"] = CaptionedEpsModel(self.pipeline, self.captions)
        return self._cache["model"]

    @property
    def model_name(self) -> str:
        return str(self.pipeline.name)

    @property
    def train_x(self) -> Tensor:
        return self.train_rows

    @property
    def held_out_x(self) -> Tensor:
        return self.held_out_rows

    @property
    def train_y(self) -> Tensor:
        return self.train_labels

    @property
    def held_out_y(self) -> Tensor:
        return self.held_out_labels

    @property
    def num_classes(self) -> int:
        return len(self.captions)

    def guided(self, label: Any, guidance_scale: float) -> GuidedEpsModel:
        """Classifier-free guidance at ``guidance_scale`` with caption index ``label``."""
        return GuidedEpsModel(self.model, label, guidance_scale, self.schedule)

    def reference(self) -> Reference:
        if "reference" not in self._cache:
            ref = EmpiricalOptimalEpsModel(
                self.train_x,
                self.schedule,
                labels=self.train_y,
                null_label=self.num_classes,
                name=f"{Path(self.data_path).name} training latents",
            )
            self._cache["reference"] = Reference(
                ref, "eps* of the training latents (per caption with a label)", exact=False
            )
        return self._cache["reference"]

    def image_features(self, latents: Tensor) -> FloatArray:
        """:func:`pixel_features` of the VAE's decoding of ``latents``."""
        return pixel_features(decode_latents(self.pipeline, latents).float().cpu())

    def scoring(self) -> Scoring:
        if "moments" not in self._cache:
            self._cache["moments"] = gaussian_moments(self.image_features(self.held_out_x))
        return Scoring(
            set_metric="pixel_frechet",
            set_features=self.image_features,
            reference_moments=self._cache["moments"],
            fingerprint={"features": "pixel_features of the VAE decoding", "metric": "frechet"},
        )

    @property
    def fingerprint(self) -> dict[str, Any]:
        if "fingerprint" not in self._cache:
            self._cache["fingerprint"] = {
                "pipeline": dict(self.pipeline.weights_sha256),
                "dtype": str(self.pipeline.dtype),
                "data_sha256": sha256_array(self.train_x.numpy()),
                "held_out_sha256": sha256_array(self.held_out_x.numpy()),
                "captions_sha256": sha256_array(np.array(self.captions, dtype=np.str_)),
                "held_out_fraction": self.held_out_fraction,
                "seed": self.seed,
            }
        return self._cache["fingerprint"]


def make_pipeline_testbed(
    folder: str | Path,
    data: str | Path | None,
    *,
    device: str = "cpu",
    seed: int = 0,
    held_out_fraction: float = 0.25,
) -> PipelineTestbed:
    """The testbed of a Stable-Diffusion-layout pipeline ``folder`` with captioned ``data``
    (module docstring); float16 on CUDA, float32 otherwise."""
    path = Path(folder)
    if data is None:
        raise ValueError(
            f"pipeline folder {str(folder)!r} needs data: an image folder with captions.csv or "
            "a latents file"
        )
    if not 0.0 < held_out_fraction < 1.0:
        raise ValueError(f"held_out_fraction must lie in (0, 1), got {held_out_fraction!r}")
    dev = resolve_device(device)
    dtype = torch.float16 if dev.type == "cuda" else torch.float32
    pipeline = load_diffusers_pipeline(path, device=dev, dtype=dtype, guidance_scale=1.0)
    rows = pipeline_data(pipeline, data)
    n = len(rows)
    if n < 8:
        raise ValueError(f"{data}: {n} captioned rows; at least 8 are needed")
    captions = tuple(dict.fromkeys(rows.prompts))
    index = {c: i for i, c in enumerate(captions)}
    labels = torch.tensor([index[p] for p in rows.prompts], dtype=torch.long)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_held = max(1, int(round(held_out_fraction * n)))
    held, train = perm[:n_held], perm[n_held:]
    return PipelineTestbed(
        name=pipeline.name,
        description=f"pipeline {path.name} with {n} captioned rows of {Path(data).name}",
        folder=path,
        pipeline=pipeline,
        captions=captions,
        train_rows=rows.latents[train],
        held_out_rows=rows.latents[held],
        train_labels=labels[train],
        held_out_labels=labels[held],
        data_path=str(data),
        held_out_fraction=held_out_fraction,
        seed=seed,
        device=str(device),
    )
