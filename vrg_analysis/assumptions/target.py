"""What an audit runs on: a model, its data split, and the best available reference predictor.

:func:`resolve_audit_target` turns the ``model`` parameter of the audit notebooks and of
``python -m vrg_analysis audit`` into an :class:`AuditTarget`:

- a mixture testbed (``mixture-2d``, ``mixture-8d``): its shipped trained MLP, audited against the
  exact ``eps*`` (the model's own error is known exactly);
- an image testbed (``digits``, ``digits-cond``): its shipped UNet, against the optimal predictor
  of its training split (:class:`~vrg_analysis.testbeds.EmpiricalOptimalEpsModel`);
- a folder holding a diffusers checkpoint (``unet/`` + ``scheduler/``), with ``data`` (a ``.npz``,
  ``.npy`` or image folder, :func:`~vrg_analysis.io.load_user_data`) split 75/25 by a seeded
  permutation into "training" and held-out rows, against the optimal predictor of the training
  rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..models import EpsModel, _resolve_device
from ..schedules import NoiseSchedule
from ..testbeds import EmpiricalOptimalEpsModel, known_testbeds, make_testbed

__all__ = ["AuditTarget", "resolve_audit_target"]


@dataclass(frozen=True, eq=False)
class AuditTarget:
    """A model under audit with its data and reference (see the module docstring)."""

    name: str
    model: EpsModel
    schedule: NoiseSchedule
    train_x: Tensor
    held_out_x: Tensor
    reference: EpsModel
    reference_name: str
    exact: bool  # reference is the analytic eps* (mixture testbeds)
    train_y: Tensor | None = None
    held_out_y: Tensor | None = None
    num_classes: int = 0
    mixture: Any = None  # the GaussianMixture of a mixture testbed
    oracle: EpsModel | None = None  # the exact predictor, where one exists
    device: str = "cpu"

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.train_x.shape[1:])

    @property
    def conditional(self) -> bool:
        return self.num_classes > 0


class _OnDevice:
    """Run a torch module on ``device`` with CPU tensors in and out."""

    def __init__(self, module: torch.nn.Module, device: torch.device) -> None:
        self.module = module.to(device)
        self.schedule = module.schedule
        self.device = device

    def __call__(self, x: Tensor, t: Tensor, **kw: Any) -> Tensor:
        kw = {k: v.to(self.device) if isinstance(v, Tensor) else v for k, v in kw.items()}
        with torch.no_grad():
            out = self.module(x.to(self.device), t.to(self.device), **kw)
        return out.to(x.device)


def resolve_audit_target(
    model: str,
    *,
    data: str | None = None,
    device: str = "cpu",
    seed: int = 0,
    held_out_fraction: float = 0.25,
) -> AuditTarget:
    """The :class:`AuditTarget` named by ``model`` (a testbed name or a checkpoint folder)."""
    if not isinstance(model, str) or not model:
        raise ValueError(f"model must be a testbed name or a folder, got {model!r}")
    dev = _resolve_device(device)
    if model in known_testbeds():
        bed = make_testbed(model)
        if model.startswith("mixture"):
            net = bed.trained_model
            eps_model = net if dev.type == "cpu" else _OnDevice(net, dev)
            return AuditTarget(
                name=f"{model} (trained MLP)",
                model=eps_model,
                schedule=bed.schedule,
                train_x=bed.train_x,
                held_out_x=bed.held_out_x,
                reference=bed.model,
                reference_name="eps* (exact predictor of the mixture)",
                exact=True,
                mixture=bed.mixture,
                oracle=bed.model,
                device=str(dev),
            )
        net = bed.model
        eps_model = net if dev.type == "cpu" else _OnDevice(net, dev)
        labels = bed.train_y if bed.conditional else None
        num_classes = int(getattr(bed.model, "num_classes", 0)) if bed.conditional else 0
        ref = EmpiricalOptimalEpsModel(
            bed.train_x,
            bed.schedule,
            labels=labels,
            null_label=num_classes if bed.conditional else None,
            name=f"{model} training split",
        )
        ref_name = "eps* of the training split (empirical optimal predictor)"
        if bed.conditional:
            ref_name = "eps* of the label's class in the training split (empirical optimal)"
        return AuditTarget(
            name=f"{model} ({bed.model_name})",
            model=eps_model,
            schedule=bed.schedule,
            train_x=bed.train_x,
            held_out_x=bed.held_out_x,
            reference=ref,
            reference_name=ref_name,
            exact=False,
            train_y=bed.train_y if bed.conditional else None,
            held_out_y=bed.held_out_y if bed.conditional else None,
            num_classes=num_classes,
            device=str(dev),
        )
    path = Path(model)
    if not path.is_dir():
        raise ValueError(
            f"unknown model {model!r}: not a testbed ({', '.join(known_testbeds())}) and not a "
            "folder holding a diffusers checkpoint"
        )
    if data is None:
        raise ValueError(f"model folder {model!r} needs data: pass the data set it was trained on")
    from ..io import load_user_data
    from ..models import load_diffusers_model

    eps_model = load_diffusers_model(path, device=dev)
    if eps_model.class_conditional:
        raise ValueError(
            f"{model}: a class-conditional checkpoint needs a label per data row, which the audit "
            "does not take yet; audit it in Python with errors_on_data(..., model_kwargs=...)"
        )
    x = load_user_data(data, expected_shape=eps_model.sample_shape)
    if not 0.0 < held_out_fraction < 1.0:
        raise ValueError(f"held_out_fraction must lie in (0, 1), got {held_out_fraction!r}")
    if x.shape[0] < 8:
        raise ValueError(f"{data}: {x.shape[0]} samples; the audits need at least 8")
    perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))
    n_held = max(1, int(round(held_out_fraction * x.shape[0])))
    train, held = x[perm[n_held:]], x[perm[:n_held]]
    ref = EmpiricalOptimalEpsModel(
        train,
        eps_model.schedule,
        name=f"{Path(data).name} ({100 * (1 - held_out_fraction):.0f}% training rows)",
    )
    return AuditTarget(
        name=eps_model.name,
        model=eps_model,
        schedule=eps_model.schedule,
        train_x=train,
        held_out_x=held,
        reference=ref,
        reference_name="eps* of the training rows (empirical optimal predictor)",
        exact=False,
        device=str(dev),
    )
