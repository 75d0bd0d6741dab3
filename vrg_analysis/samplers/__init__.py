"""Samplers that walk any :class:`~vrg_analysis.trajectories.Trajectory` (continuous levels).

One contract (k-diffusion style) for every sampler::

    sample_<name>(model, x_T, trajectory, *, callback=None, generator=None, model_kwargs=None,
                  **options) -> Tensor

``callback`` receives one :class:`StepRecord` per trajectory level (state, ``eps_hat``,
``x0_hat``, model calls so far); ``generator`` is a :data:`NoiseSource` (one generator per sample
makes stochastic samplers batch-invariant); ``model_kwargs`` reach the model as
``model(x, t, **model_kwargs)`` (a class label; classifier-free guidance is the
:class:`~vrg_analysis.training.GuidedEpsModel` wrapper). :data:`SAMPLERS` names them, with their
orders and model-call counts; :func:`sample` runs one by name and counts its model calls.

Modules: :mod:`.core` (records, the counted model call, the linear update), :mod:`.noise`
(per-sample seeding), :mod:`.ddim`, :mod:`.dpm_solver`, :mod:`.pndm`, :mod:`.deis`,
:mod:`.registry`.
"""

from __future__ import annotations

from vrg_analysis.samplers.core import Callback, SamplingRun, StepRecord, predicted_x0
from vrg_analysis.samplers.ddim import ddim_coefficients, ddim_noise_std, ddim_step, sample_ddim
from vrg_analysis.samplers.deis import sample_deis
from vrg_analysis.samplers.dpm_solver import (
    sample_dpm_solver,
    sample_dpm_solver_multistep,
    sample_dpm_solver_pp_2m,
    singlestep_groups,
)
from vrg_analysis.samplers.noise import NoiseSource, draw_noise, initial_noise, sample_generators
from vrg_analysis.samplers.pndm import sample_pndm
from vrg_analysis.samplers.registry import (
    SAMPLERS,
    SampleResult,
    SamplerSpec,
    get_sampler,
    known_samplers,
    sample,
)

__all__ = [
    "Callback",
    "NoiseSource",
    "SAMPLERS",
    "SampleResult",
    "SamplerSpec",
    "SamplingRun",
    "StepRecord",
    "ddim_coefficients",
    "ddim_noise_std",
    "ddim_step",
    "draw_noise",
    "get_sampler",
    "initial_noise",
    "known_samplers",
    "predicted_x0",
    "sample",
    "sample_ddim",
    "sample_deis",
    "sample_dpm_solver",
    "sample_dpm_solver_multistep",
    "sample_dpm_solver_pp_2m",
    "sample_generators",
    "sample_pndm",
    "singlestep_groups",
]
