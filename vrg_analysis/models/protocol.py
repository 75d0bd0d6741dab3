"""Noise-prediction models: the ``EpsModel`` protocol and adapters onto it.

Everything the toolkit samples from or profiles is an :class:`EpsModel`: a callable
``eps_hat = model(x_t, t)`` taking a batch ``x_t`` and a float tensor of training timesteps ``t``
(shape ``[B]``, fractional allowed), that carries the :class:`NoiseSchedule` it was trained with.
Continuous noise levels reach the model as fractional timesteps, ``t = schedule.t_from_alpha_bar``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import Tensor

from vrg_analysis.core.schedules import NoiseSchedule

__all__ = [
    "EpsModel",
    "TorchEpsModel",
    "Prediction",
    "checked_eps",
    "resolve_device",
    "timestep_tensors",
    "model_identity",
    "identity_of",
]

logger = logging.getLogger(__name__)

Prediction = Literal["epsilon", "sample", "v_prediction"]


@runtime_checkable
class EpsModel(Protocol):
    """A noise predictor ``eps_theta(x_t, t)`` with the schedule it was trained on."""

    schedule: NoiseSchedule

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:  # pragma: no cover - protocol
        ...


class TorchEpsModel:
    """Adapt a ``torch.nn.Module`` or callable ``f(x, t)`` to :class:`EpsModel`.

    ``prediction`` says what ``f`` returns: ``"epsilon"`` (noise), ``"sample"`` (x0) or
    ``"v_prediction"`` (Salimans & Ho 2022, ``v = sqrt(a) eps - sqrt(1 - a) x0``); the latter two
    are converted to noise with ``eps = (x - sqrt(a) x0) / sqrt(1 - a)`` and
    ``eps = sqrt(a) v + sqrt(1 - a) x``.
    """

    def __init__(
        self,
        fn: Callable[..., Tensor],
        schedule: NoiseSchedule,
        prediction: Prediction = "epsilon",
        name: str = "torch-model",
        identity: str | None = None,
    ) -> None:
        if prediction not in ("epsilon", "sample", "v_prediction"):
            raise ValueError(
                f"unknown prediction type {prediction!r}; "
                "expected 'epsilon', 'sample' or 'v_prediction'"
            )
        if not callable(fn):
            raise TypeError(f"model must be callable, got {type(fn).__name__}")
        if identity is not None and (not isinstance(identity, str) or not identity):
            raise ValueError(f"identity must be a non-empty string or None, got {identity!r}")
        self.fn = fn
        self.schedule = schedule
        self.prediction: Prediction = prediction
        self.name = name
        self._identity = identity

    @property
    def identity(self) -> str | None:
        """The declared key, else the hash of the wrapped module's weights (with the prediction
        type and schedule); ``None`` for a plain function (it cannot be told from another)."""
        if self._identity is not None:
            return self._identity
        inner = model_identity(self.fn)
        if inner is None:
            return None
        return identity_of("TorchEpsModel", inner, self.prediction, self.schedule.to_dict())

    def __call__(self, x: Tensor, t: Tensor, **model_kwargs: Any) -> Tensor:
        """``fn(x, t, **model_kwargs)`` as noise; ``model_kwargs`` carries conditioning."""
        out = self.fn(x, t, **model_kwargs)
        if self.prediction == "epsilon":
            return out
        a = torch.as_tensor(self.schedule.alpha_bar(t.detach().cpu().numpy()), dtype=x.dtype)
        a = a.to(x.device).reshape(-1, *([1] * (x.ndim - 1)))
        if self.prediction == "sample":
            return (x - a.sqrt() * out) / (1.0 - a).sqrt()
        return a.sqrt() * out + (1.0 - a).sqrt() * x

    def __repr__(self) -> str:
        return f"TorchEpsModel(name={self.name!r}, prediction={self.prediction!r})"


def timestep_tensors(schedule: NoiseSchedule, alpha_bar: ArrayLike, x: Tensor) -> Tensor:
    """Fractional training timesteps of the levels as a ``[K, batch]`` tensor on ``x``'s device
    (float64 for float64 ``x``, else float32); row ``k`` is what the model gets at step ``k``."""
    t = schedule.t_from_alpha_bar(np.asarray(alpha_bar, dtype=np.float64)).reshape(-1)
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    t_col = torch.as_tensor(t, dtype=dtype, device=x.device).reshape(-1, 1)
    return t_col.expand(-1, x.shape[0]).contiguous()


def checked_eps(model: EpsModel, x: Tensor, t: Tensor, **model_kwargs: Any) -> Tensor:
    """Call ``model(x, t, **model_kwargs)`` and check its output: same shape as ``x`` and finite,
    else ``ValueError``. ``model_kwargs`` carries conditioning (e.g. a class label ``y``)."""
    out = model(x, t, **model_kwargs)
    if not isinstance(out, Tensor):
        raise TypeError(f"model returned {type(out).__name__}, expected a torch.Tensor")
    if out.shape != x.shape:
        raise ValueError(
            f"model returned shape {tuple(out.shape)} for input of shape {tuple(x.shape)}"
        )
    # one reduction first (a sum is non-finite if any entry is, or if it overflows); the full
    # element-wise check runs only then, to count and report
    if not bool(torch.isfinite(out.sum())) and not bool(torch.isfinite(out).all()):
        bad = int((~torch.isfinite(out)).sum())
        raise ValueError(
            f"model returned {bad} non-finite value(s) "
            f"at timestep t = {float(t.reshape(-1)[0]):.4f}"
        )
    return out


def resolve_device(device: str | torch.device) -> torch.device:
    if not isinstance(device, str | torch.device):
        raise TypeError(f"device must be a str or torch.device, got {type(device).__name__}")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise ValueError(f"invalid device {device!r}: {exc}") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"CUDA requested (device={str(device)!r}) but not available: "
                "torch.cuda.is_available() is False; use device='cpu'"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"CUDA device {dev.index} requested but only {torch.cuda.device_count()} "
                "device(s) are visible"
            )
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(f"MPS requested (device={str(device)!r}) but not available")
    elif dev.type != "cpu":
        raise ValueError(f"unsupported device {str(device)!r}; expected 'cpu', 'cuda[:i]' or 'mps'")
    return dev


def identity_of(*parts: Any) -> str:
    """A sha256 of JSON-able parts (the building block of every declared model identity)."""
    text = json.dumps(parts, sort_keys=True, default=repr, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def model_identity(model: Any) -> str | None:
    """What a model *is*, for checkpoints and cache keys: its declared ``identity`` (a property
    or attribute; the toolkit's analytic models, wrappers and adapters declare one computed from
    their parameters), else the sha256 its card or loader records, else a hash of a torch module's
    weights (the module itself, or the one it wraps as ``fn``/``module``). ``None`` when nothing
    identifies it (a plain function): a result made with it cannot be keyed or resumed safely."""
    ident = getattr(model, "identity", None)
    if callable(ident) and not isinstance(ident, str):
        ident = ident()
    if isinstance(ident, str) and ident:
        return ident
    for attr in ("weights_sha256", "sha256"):
        if isinstance(getattr(model, attr, None), str):
            return str(getattr(model, attr))
    card = getattr(model, "card", None)
    if isinstance(card, dict) and isinstance(card.get("sha256"), str):
        return str(card["sha256"])
    if isinstance(model, torch.nn.Module):
        h = hashlib.sha256(type(model).__qualname__.encode())
        for name, tensor in sorted(model.state_dict().items()):
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()
    for attr in ("module", "fn"):
        inner = getattr(model, attr, None)
        if isinstance(inner, torch.nn.Module):
            return model_identity(inner)
    return None
