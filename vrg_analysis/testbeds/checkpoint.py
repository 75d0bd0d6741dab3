"""Your model as a testbed: a diffusers checkpoint folder and the data set it was trained on.

The folder holds a ``UNet2DModel`` and its DDPM-type scheduler (``unet/``, ``scheduler/``;
:func:`~vrg_analysis.models.diffusers.load_diffusers_model`). The data (a ``.npz``, ``.npy`` or a
folder of images, :func:`~vrg_analysis.io.load_user_data`) are split by a seeded permutation into
"training" rows (those Algorithm 1 profiles and whose optimal predictor is the reference) and
held-out rows (whose feature moments are the set metric's reference). Samples are scored with a
Frechet distance in a coarse pixel space (:func:`pixel_features`) unless you pass features, e.g.
Inception-v3 pool features with ``metric="fid"`` where the weights are available locally.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from vrg_analysis.evaluation.metrics import gaussian_moments
from vrg_analysis.io import load_user_data, sha256_array, sha256_file
from vrg_analysis.models.analytic import EmpiricalOptimalEpsModel
from vrg_analysis.models.diffusers import load_diffusers_model
from vrg_analysis.testbeds.base import SET_METRICS, Reference, Scoring, Testbed

__all__ = ["CheckpointTestbed", "pixel_features", "make_checkpoint_testbed"]

FloatArray = NDArray[np.float64]


def pixel_features(x: Tensor, size: int = 8) -> FloatArray:
    """Average-pooled pixels (``size`` x ``size`` per channel, flattened) of images ``[n, C, H,
    W]``: the features of the ``pixel_frechet`` set metric, a Frechet distance in a coarse pixel
    space for checkpoints without a domain feature extractor (not comparable with FID)."""
    if x.ndim != 4:
        raise ValueError(f"images must have shape [n, C, H, W], got {tuple(x.shape)}")
    pooled = torch.nn.functional.adaptive_avg_pool2d(x.double(), min(size, x.shape[-1]))
    return pooled.flatten(1).cpu().numpy()


@dataclass(eq=False)
class CheckpointTestbed(Testbed):
    """A diffusers checkpoint folder with its data split (see the module docstring)."""

    name: str
    description: str
    folder: Path
    network: Any  # DiffusersEpsModel
    train_rows: Tensor
    held_out_rows: Tensor
    data_path: str
    held_out_fraction: float
    seed: int
    features: Callable[[Tensor], FloatArray] | None = None
    features_id: str | None = None
    metric: str = "pixel_frechet"
    device: str = "cpu"
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def schedule(self) -> Any:  # type: ignore[override]
        return self.network.schedule

    @property
    def model(self) -> Any:
        return self.network

    @property
    def model_name(self) -> str:
        return str(self.network.name)

    @property
    def train_x(self) -> Tensor:
        return self.train_rows

    @property
    def held_out_x(self) -> Tensor:
        return self.held_out_rows

    def reference(self) -> Reference:
        if "reference" not in self._cache:
            share = 100 * (1 - self.held_out_fraction)
            ref = EmpiricalOptimalEpsModel(
                self.train_x,
                self.schedule,
                name=f"{Path(self.data_path).name} ({share:.0f}% training rows)",
            )
            self._cache["reference"] = Reference(
                ref, "eps* of the training rows (empirical optimal predictor)", exact=False
            )
        return self._cache["reference"]

    def scoring(self) -> Scoring:
        feats = self.features if self.features is not None else pixel_features
        return Scoring(
            set_metric=self.metric,
            set_features=feats,
            reference_moments=gaussian_moments(feats(self.held_out_x)),
            fingerprint={"features": self.features_id or "pixel_features", "metric": self.metric},
        )

    @property
    def fingerprint(self) -> dict[str, Any]:
        if "fingerprint" not in self._cache:
            weights = sorted(
                p for p in self.folder.rglob("*") if p.suffix in (".safetensors", ".bin", ".json")
            )
            self._cache["fingerprint"] = {
                "files": {str(p.relative_to(self.folder)): sha256_file(p) for p in weights},
                "data_sha256": sha256_array(self.train_x.numpy()),
                "held_out_fraction": self.held_out_fraction,
                "seed": self.seed,
            }
        return self._cache["fingerprint"]


def make_checkpoint_testbed(
    folder: str | Path,
    data: str | Path | None,
    *,
    device: str = "cpu",
    seed: int = 0,
    held_out_fraction: float = 0.25,
    features: Callable[[Tensor], FloatArray] | None = None,
    features_id: str | None = None,
    metric: str = "pixel_frechet",
) -> CheckpointTestbed:
    """The testbed of a diffusers checkpoint ``folder`` trained on ``data``.

    ``features`` (default :func:`pixel_features`) maps samples to feature vectors for the set
    metric ``metric``; ``features_id`` names that extractor and its weights in cache keys (required
    with ``features``).
    """
    path = Path(folder)
    if data is None:
        raise ValueError(f"model folder {str(folder)!r} needs data: the data set it was trained on")
    if metric not in SET_METRICS:
        raise ValueError(f"metric must be one of {SET_METRICS}, got {metric!r}")
    if features is not None and not features_id:
        raise ValueError("features needs features_id, a name of the extractor for the cache key")
    if not 0.0 < held_out_fraction < 1.0:
        raise ValueError(f"held_out_fraction must lie in (0, 1), got {held_out_fraction!r}")
    eps_model = load_diffusers_model(path, device=device)
    if eps_model.class_conditional:
        raise ValueError(
            f"{folder}: a class-conditional checkpoint needs a label per data row, which this "
            "testbed does not take yet; use the library with model_kwargs=... in Python"
        )
    x = load_user_data(data, expected_shape=eps_model.sample_shape)
    if x.shape[0] < 8:
        raise ValueError(f"{data}: {x.shape[0]} samples; at least 8 are needed")
    perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))
    n_held = max(1, int(round(held_out_fraction * x.shape[0])))
    return CheckpointTestbed(
        name=eps_model.name,
        description=f"diffusers checkpoint {path.name} trained on {Path(data).name}",
        folder=path,
        network=eps_model,
        train_rows=x[perm[n_held:]],
        held_out_rows=x[perm[:n_held]],
        data_path=str(data),
        held_out_fraction=held_out_fraction,
        seed=seed,
        features=features,
        features_id=features_id,
        metric=metric,
        device=str(device),
    )
