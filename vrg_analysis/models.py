"""Noise-prediction models: the ``EpsModel`` protocol and adapters onto it.

Everything the toolkit samples from or profiles is an :class:`EpsModel`: a callable
``eps_hat = model(x_t, t)`` taking a batch ``x_t`` and a float tensor of training timesteps ``t``
(shape ``[B]``, fractional allowed), that carries the :class:`NoiseSchedule` it was trained with.
Continuous noise levels reach the model as fractional timesteps, ``t = schedule.t_from_alpha_bar``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import Tensor

from .schedules import NoiseSchedule

__all__ = ["EpsModel", "TorchEpsModel", "Prediction", "checked_eps", "timestep_tensors"]

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
        fn: Callable[[Tensor, Tensor], Tensor],
        schedule: NoiseSchedule,
        prediction: Prediction = "epsilon",
        name: str = "torch-model",
    ) -> None:
        if prediction not in ("epsilon", "sample", "v_prediction"):
            raise ValueError(
                f"unknown prediction type {prediction!r}; "
                "expected 'epsilon', 'sample' or 'v_prediction'"
            )
        if not callable(fn):
            raise TypeError(f"model must be callable, got {type(fn).__name__}")
        self.fn = fn
        self.schedule = schedule
        self.prediction: Prediction = prediction
        self.name = name

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        out = self.fn(x, t)
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


def checked_eps(model: EpsModel, x: Tensor, t: Tensor) -> Tensor:
    """Call ``model`` and check its output: same shape as ``x`` and finite, else ``ValueError``."""
    out = model(x, t)
    if not isinstance(out, Tensor):
        raise TypeError(f"model returned {type(out).__name__}, expected a torch.Tensor")
    if out.shape != x.shape:
        raise ValueError(
            f"model returned shape {tuple(out.shape)} for input of shape {tuple(x.shape)}"
        )
    if not torch.isfinite(out).all():
        bad = int((~torch.isfinite(out)).sum())
        raise ValueError(
            f"model returned {bad} non-finite value(s) "
            f"at timestep t = {float(t.reshape(-1)[0]):.4f}"
        )
    return out
