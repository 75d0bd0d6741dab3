"""Classifier-free guidance (Ho & Salimans 2022) as an ``EpsModel``."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from vrg_analysis.core.schedules import NoiseSchedule
from vrg_analysis.models.protocol import identity_of, model_identity

__all__ = ["GuidedEpsModel"]


class GuidedEpsModel:
    """Classifier-free guidance as an :class:`~vrg_analysis.models.EpsModel`.

    ``eps = eps(x, t, null) + w * (eps(x, t, c) - eps(x, t, null))`` (Ho & Salimans 2022, eq. 6,
    with their ``(1 + w)`` written as our ``w``: ``w = 0`` is unconditional, ``w = 1``
    conditional, ``w > 1`` guided). ``label`` is one class for every sample or one per sample.
    """

    def __init__(
        self,
        model: nn.Module,
        label: int | Tensor | list[int],
        guidance_scale: float,
        schedule: NoiseSchedule | None = None,
    ) -> None:
        num_classes = int(getattr(model, "num_classes", 0))
        if num_classes < 1:
            raise ValueError(
                f"{type(model).__name__} is not class-conditional (num_classes={num_classes}); "
                "guidance needs e.g. load_trained('digits-unet-cond')"
            )
        w = float(guidance_scale)
        if not math.isfinite(w):
            raise ValueError(f"guidance_scale must be finite, got {guidance_scale!r}")
        lab = torch.as_tensor(label)
        if lab.dtype.is_floating_point or lab.ndim > 1:
            raise ValueError(f"label must be an integer or a 1-D integer sequence, got {label!r}")
        if bool(((lab < 0) | (lab >= num_classes)).any()):
            raise ValueError(f"labels must lie in 0..{num_classes - 1}, got {lab.tolist()!r}")
        sched = schedule if schedule is not None else getattr(model, "schedule", None)
        if not isinstance(sched, NoiseSchedule):
            raise TypeError("schedule must be given (a NoiseSchedule) when the model carries none")
        self.model = model
        self.label = lab.long()
        self.guidance_scale = w
        self.num_classes = num_classes
        self.schedule = sched

    def labels_for(self, batch: int, device: torch.device | str = "cpu") -> Tensor:
        """The ``[batch]`` conditioning labels."""
        if self.label.ndim == 0:
            return self.label.expand(batch).to(device)
        if self.label.shape[0] != batch:
            raise ValueError(f"{self.label.shape[0]} labels given for a batch of {batch} samples")
        return self.label.to(device)

    def __call__(self, x: Tensor, t: Tensor, label: Tensor | None = None) -> Tensor:
        """Guided noise prediction; ``label`` (``[batch]`` integers), when given, replaces the
        labels fixed at construction for this call (so one model serves a batch of any classes,
        e.g. profiling with each training row's own label)."""
        b = x.shape[0]
        if label is None:
            y = self.labels_for(b, x.device)
        else:
            y = torch.as_tensor(label, device=x.device).long().reshape(-1)
            if y.shape[0] != b:
                raise ValueError(f"{y.shape[0]} labels given for a batch of {b} samples")
            if bool(((y < 0) | (y >= self.num_classes)).any()):
                raise ValueError(f"labels must lie in 0..{self.num_classes - 1}")
        null = torch.full_like(y, self.num_classes)
        w = self.guidance_scale
        if w == 0.0:
            return self.model(x, t, null)
        if w == 1.0:
            return self.model(x, t, y)
        t = t.expand(b) if t.ndim == 0 else t
        out = self.model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([null, y]))
        eps_u, eps_c = out[:b], out[b:]
        return eps_u + w * (eps_c - eps_u)  # Ho & Salimans 2022, eq. 6

    @property
    def identity(self) -> str | None:
        """The conditional network's identity, the labels and the guidance scale."""
        inner = model_identity(self.model)
        if inner is None:
            return None
        return identity_of("GuidedEpsModel", inner, self.label.tolist(), self.guidance_scale)

    def __repr__(self) -> str:
        return (
            f"GuidedEpsModel(label={self.label.tolist()!r}, guidance_scale={self.guidance_scale})"
        )
