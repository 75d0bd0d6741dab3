"""The :class:`Testbed` interface: a model, its data, its reference predictor and its scorers.

Every study, audit and notebook names its model by a string (``"digits"``, ``"mixture-2d"``, a
diffusers checkpoint folder) and gets a :class:`Testbed` from
:func:`vrg_analysis.testbeds.resolve_testbed`; no caller branches on the name. A testbed bundles:

* ``model``: the trained noise predictor under study (an :class:`~vrg_analysis.models.EpsModel`);
* the data it was trained on (``train_x``) and held-out data (``held_out_x``), with labels for a
  class-conditional model;
* ``reference()``: the best available reference predictor for its errors (the exact ``eps*`` of a
  Gaussian mixture, or the optimal predictor of the training data), and ``oracle``, the exact
  predictor where one exists;
* ``scoring()``: how a sample set is scored (the set metric, its features and reference moments,
  per-sample metrics, and the exact probability-flow ODE where it exists);
* ``fingerprint``: everything its results depend on, for the artifact cache.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from vrg_analysis.core.schedules import NoiseSchedule
from vrg_analysis.models.protocol import EpsModel, model_identity, resolve_device

__all__ = ["Testbed", "Reference", "Scoring", "OnDevice", "SET_METRICS"]

FloatArray = NDArray[np.float64]

#: Frechet-type set metrics a :class:`Scoring` can report (lower is better).
SET_METRICS: tuple[str, ...] = ("fid", "frechet", "pixel_frechet")


@dataclass(frozen=True, eq=False)
class Reference:
    """A reference predictor for a model's errors, and what it is."""

    model: EpsModel
    name: str
    exact: bool  # the analytic eps* of the data distribution


@dataclass(frozen=True, eq=False)
class Scoring:
    """How a set of samples is scored.

    ``set_features(x)`` gives the features whose Frechet distance to ``reference_moments`` (mean,
    covariance) is the set metric ``set_metric``; ``per_sample`` maps a metric name to a function
    giving one score per sample; ``exact_endpoint(x_T, alpha_bar_start)`` solves the
    probability-flow ODE exactly (exact testbeds only); ``fingerprint`` identifies the scorers.
    """

    set_metric: str
    set_features: Callable[[Tensor], FloatArray]
    reference_moments: tuple[FloatArray, FloatArray]
    per_sample: Mapping[str, Callable[[Tensor], FloatArray]] = field(default_factory=dict)
    exact_endpoint: Callable[[Tensor, float], Tensor] | None = None
    fingerprint: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.set_metric not in SET_METRICS:
            raise ValueError(f"set_metric must be one of {SET_METRICS}, got {self.set_metric!r}")


class OnDevice:
    """Run a torch module on ``device`` with tensors in and out on the caller's device."""

    def __init__(self, module: torch.nn.Module, device: torch.device) -> None:
        self.module = module.to(device)
        self.schedule = module.schedule
        self.num_classes = int(getattr(module, "num_classes", 0))
        self.card = getattr(module, "card", None)
        self.device = device

    def __call__(self, x: Tensor, t: Tensor, *args: Any, **kw: Any) -> Tensor:
        args = tuple(a.to(self.device) if isinstance(a, Tensor) else a for a in args)
        kw = {k: v.to(self.device) if isinstance(v, Tensor) else v for k, v in kw.items()}
        with torch.no_grad():
            out = self.module(x.to(self.device), t.to(self.device), *args, **kw)
        return out.to(x.device)

    @property
    def identity(self) -> str | None:
        return model_identity(self.module)

    def __repr__(self) -> str:
        return f"OnDevice({type(self.module).__name__}, {self.device})"


class Testbed(abc.ABC):
    """A named model with its data, reference predictor and scorers (see the module docstring)."""

    name: str
    description: str
    schedule: NoiseSchedule
    device: str = "cpu"

    # ------------------------------------------------------------- the model and its data
    @property
    @abc.abstractmethod
    def model(self) -> EpsModel:
        """The trained noise predictor under study, on :attr:`device`."""

    @property
    @abc.abstractmethod
    def model_name(self) -> str:
        """The name of the trained checkpoint (its card's name, or the folder's)."""

    @property
    @abc.abstractmethod
    def train_x(self) -> Tensor:
        """The data the model was trained on (``[n, *sample_shape]``, float32)."""

    @property
    @abc.abstractmethod
    def held_out_x(self) -> Tensor:
        """Held-out data from the same distribution, never seen in training."""

    @property
    def train_y(self) -> Tensor | None:
        """Class labels of :attr:`train_x` (class-conditional testbeds), else ``None``."""
        return None

    @property
    def held_out_y(self) -> Tensor | None:
        return None

    @property
    def num_classes(self) -> int:
        """Number of classes of a class-conditional model (0: unconditional)."""
        return 0

    @property
    def conditional(self) -> bool:
        return self.num_classes > 0

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.train_x.shape[1:])

    @property
    def oracle(self) -> EpsModel | None:
        """The exact noise predictor ``eps*`` of the data distribution, where one exists."""
        return None

    @property
    def mixture(self) -> Any:
        """The data distribution as a :class:`~vrg_analysis.models.analytic.GaussianMixture`,
        where it is one (exact testbeds), else ``None``."""
        return None

    # ------------------------------------------------------------- what results depend on
    @abc.abstractmethod
    def reference(self) -> Reference:
        """The best available reference predictor for the model's errors."""

    @abc.abstractmethod
    def scoring(self) -> Scoring:
        """How samples of this testbed are scored."""

    @property
    @abc.abstractmethod
    def fingerprint(self) -> dict[str, Any]:
        """Everything a result on this testbed depends on (weights, data, scorers), for keys."""

    def guided(self, label: Any, guidance_scale: float) -> EpsModel:
        """Classifier-free guidance at ``guidance_scale`` with labels ``label`` (one class for
        every sample or one per sample; labels may also come per call)."""
        raise ValueError(
            f"testbed {self.name!r} is unconditional: guidance needs a class-conditional model"
        )

    def _on_device(self, module: Any) -> Any:
        dev = resolve_device(self.device)
        if dev.type == "cpu" or not isinstance(module, torch.nn.Module):
            return module
        return OnDevice(module, dev)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"
