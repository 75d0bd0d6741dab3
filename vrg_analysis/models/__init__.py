"""Noise-prediction models: the ``EpsModel`` protocol and every adapter onto it.

Everything the toolkit samples from or profiles is an :class:`EpsModel`: a callable
``eps_hat = model(x_t, t)`` taking a batch ``x_t`` and a float tensor of training timesteps ``t``
(shape ``[B]``, fractional allowed), that carries the :class:`NoiseSchedule` it was trained with.

* :mod:`.protocol`: the protocol, :class:`TorchEpsModel` (x0- and v-prediction too), checks;
* :mod:`.diffusers`: diffusers checkpoint folders;
* :mod:`.networks` and :mod:`.checkpoints`: the project's own networks and shipped checkpoints;
* :mod:`.guidance`: classifier-free guidance;
* :mod:`.analytic`: Gaussian mixtures, their exact predictor, planted errors and the exact ODE.
"""

from __future__ import annotations

from vrg_analysis.models.checkpoints import MODELS_DIR, load_card, load_trained
from vrg_analysis.models.diffusers import (
    DIFFUSERS_BETA_SCHEDULES,
    DiffusersEpsModel,
    load_diffusers_model,
    schedule_from_diffusers_config,
)
from vrg_analysis.models.guidance import GuidedEpsModel
from vrg_analysis.models.protocol import (
    EpsModel,
    Prediction,
    TorchEpsModel,
    checked_eps,
    resolve_device,
    timestep_tensors,
)

__all__ = [
    "EpsModel",
    "TorchEpsModel",
    "Prediction",
    "checked_eps",
    "resolve_device",
    "timestep_tensors",
    "DiffusersEpsModel",
    "DIFFUSERS_BETA_SCHEDULES",
    "load_diffusers_model",
    "schedule_from_diffusers_config",
    "GuidedEpsModel",
    "MODELS_DIR",
    "load_card",
    "load_trained",
]
