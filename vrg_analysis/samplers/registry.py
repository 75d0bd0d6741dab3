"""Samplers by name: what each one is, what it costs in model calls, and one entry point.

Every sampler has the signature (k-diffusion style)

    sample_<name>(model, x_T, trajectory, *, callback=None, generator=None, model_kwargs=None,
                  **options) -> Tensor

and is registered here with its fixed options, its nominal order, the fewest levels it
accepts, its model-call count for K levels (NFE) and the paper equations it implements, so that
notebooks name a sampler by string and compare samplers at equal NFE.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

from torch import Tensor

from vrg_analysis.core.trajectories import Trajectory
from vrg_analysis.models import EpsModel
from vrg_analysis.samplers.core import Callback, StepRecord, min_levels_for_order
from vrg_analysis.samplers.ddim import sample_ddim
from vrg_analysis.samplers.deis import sample_deis
from vrg_analysis.samplers.dpm_solver import sample_dpm_solver, sample_dpm_solver_multistep
from vrg_analysis.samplers.noise import NoiseSource
from vrg_analysis.samplers.pndm import PNDM_VARIANTS, pndm_extra_calls, pndm_min_levels, sample_pndm

__all__ = [
    "SamplerFn",
    "SamplerSpec",
    "SampleResult",
    "SAMPLERS",
    "known_samplers",
    "get_sampler",
    "sample",
]


class SamplerFn(Protocol):
    def __call__(
        self,
        model: EpsModel,
        x_T: Tensor,  # noqa: N803
        trajectory: Trajectory,
        *,
        callback: Callback | None = ...,
        generator: NoiseSource = ...,
        model_kwargs: Mapping[str, Any] | None = ...,
        **options: Any,
    ) -> Tensor: ...


@dataclass(frozen=True)
class SamplerSpec:
    """A named sampler: ``fn`` with ``options`` fixed, and what it costs and promises."""

    name: str
    fn: SamplerFn
    options: Mapping[str, Any]
    order: int  # nominal order of the published method; measured orders: the sampler chapter
    min_levels: int  # fewest trajectory levels it accepts
    extra_calls: int  # model calls beyond one per level
    stochastic: bool
    reference: str

    def nfe(self, num_levels: int) -> int:
        """Model calls for a trajectory of ``num_levels`` levels."""
        return int(num_levels) + self.extra_calls

    def __call__(
        self,
        model: EpsModel,
        x_T: Tensor,  # noqa: N803 - the paper's symbol
        trajectory: Trajectory,
        *,
        callback: Callback | None = None,
        generator: NoiseSource = None,
        model_kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Tensor:
        fixed = set(self.options) & set(options)
        if fixed:
            raise TypeError(
                f"sampler {self.name!r} fixes {sorted(fixed)}; call its function instead"
            )
        return self.fn(
            model,
            x_T,
            trajectory,
            callback=callback,
            generator=generator,
            model_kwargs=model_kwargs,
            **self.options,
            **options,
        )


@dataclass(frozen=True)
class SampleResult:
    """The samples of one :func:`sample` call, with the model calls they cost."""

    x: Tensor
    sampler: str
    num_levels: int
    nfe: int
    records: tuple[StepRecord, ...] = field(default=(), repr=False)


def _spec(
    name: str,
    fn: SamplerFn,
    reference: str,
    *,
    order: int,
    min_levels: int,
    options: Mapping[str, Any],
    extra_calls: int = 0,
    stochastic: bool = False,
) -> SamplerSpec:
    frozen = MappingProxyType(dict(options))
    return SamplerSpec(name, fn, frozen, order, min_levels, extra_calls, stochastic, reference)


def _pndm(name: str, reference: str) -> SamplerSpec:
    warmup, order = PNDM_VARIANTS[name]
    return _spec(
        name,
        sample_pndm,
        reference,
        order=order,
        min_levels=pndm_min_levels(warmup, order),
        options={"warmup": warmup, "order": order},
        extra_calls=pndm_extra_calls(warmup, order),
    )


def _dpm(name: str, fn: SamplerFn, reference: str, order: int, **options: Any) -> SamplerSpec:
    min_levels = min_levels_for_order(order)
    return _spec(
        name, fn, reference, order=order, min_levels=min_levels, options={"order": order, **options}
    )


_ALL: tuple[SamplerSpec, ...] = (
    _spec(
        "ddim",
        sample_ddim,
        "Song et al. 2021, eq. 12 (eta = 0)",
        order=1,
        min_levels=1,
        options={"eta": 0.0},
    ),
    _spec(
        "ddpm",
        sample_ddim,
        "Song et al. 2021, eq. 12 and 16 with eta = 1 (ancestral)",
        order=1,
        min_levels=1,
        options={"eta": 1.0},
        stochastic=True,
    ),
    _dpm("dpm_solver_1", sample_dpm_solver, "Lu et al. 2022a, eq. 3.7", 1),
    _dpm("dpm_solver_2", sample_dpm_solver, "Lu et al. 2022a, Algorithm 1 (singlestep)", 2),
    _dpm("dpm_solver_3", sample_dpm_solver, "Lu et al. 2022a, Algorithm 2 (singlestep)", 3),
    _dpm(
        "dpm_solver_pp_2s",
        sample_dpm_solver,
        "Lu et al. 2022b, Algorithm 1 (2S)",
        2,
        algorithm="dpmsolver++",
    ),
    _spec(
        "dpm_solver_pp_2m",
        sample_dpm_solver_multistep,
        "Lu et al. 2022b, Algorithm 2 (2M)",
        order=2,
        min_levels=min_levels_for_order(2),
        options={"order": 2, "algorithm": "dpmsolver++"},
    ),
    _pndm("f_pndm", "Liu et al. 2022, eq. 12-13 (F-PNDM)"),
    _pndm("s_pndm", "Liu et al. 2022, sec. 3.3 (S-PNDM: improved Euler, then 2-step)"),
    _pndm("plms", "diffusers PNDMScheduler(skip_prk_steps=True): improved Euler, then AB2-4"),
    _pndm("ipndm", "Zhang & Chen 2023, iPNDM (AB orders 1-4, no extra calls)"),
    # deis_tab{p}: p model outputs, degree p - 1 = the official code's ab_order (DEIS module)
    _dpm(
        "deis_tab1",
        sample_deis,
        "Zhang & Chen 2023, eq. 14-15, tAB, ab_order 0 (DDIM)",
        1,
        basis="t",
    ),
    _dpm("deis_tab2", sample_deis, "Zhang & Chen 2023, eq. 14-15, tAB, ab_order 1", 2, basis="t"),
    _dpm("deis_tab3", sample_deis, "Zhang & Chen 2023, eq. 14-15, tAB, ab_order 2", 3, basis="t"),
)

#: Every registered sampler by name.
SAMPLERS: Mapping[str, SamplerSpec] = MappingProxyType({s.name: s for s in _ALL})


def known_samplers() -> tuple[str, ...]:
    """The names :func:`get_sampler` accepts."""
    return tuple(SAMPLERS)


def get_sampler(name: str) -> SamplerSpec:
    """The registered sampler ``name`` (``ValueError`` listing the known names otherwise)."""
    if not isinstance(name, str) or name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; known samplers: {', '.join(SAMPLERS)}")
    return SAMPLERS[name]


def sample(
    name: str,
    model: EpsModel,
    x_T: Tensor,  # noqa: N803 - the paper's symbol
    trajectory: Trajectory,
    *,
    callback: Callable[[StepRecord], None] | None = None,
    generator: NoiseSource = None,
    model_kwargs: Mapping[str, Any] | None = None,
    keep_records: bool = False,
    **options: Any,
) -> SampleResult:
    """Run sampler ``name`` and return the samples with the model calls counted.

    ``keep_records=True`` also keeps every :class:`StepRecord` (their tensors stay in memory).
    """
    spec = get_sampler(name)
    records: list[StepRecord] = []

    def observe(record: StepRecord) -> None:
        records.append(record)
        if callback is not None:
            callback(record)

    counted = _CountedModel(model)
    x = spec(
        counted,
        x_T,
        trajectory,
        callback=observe if keep_records else callback,
        generator=generator,
        model_kwargs=model_kwargs,
        **options,
    )
    return SampleResult(x, name, trajectory.K, counted.calls, tuple(records))


class _CountedModel:
    """``model`` with its calls counted (what :func:`sample` reports as NFE)."""

    def __init__(self, model: EpsModel) -> None:
        self.model = model
        self.schedule = model.schedule
        self.calls = 0

    def __call__(self, x: Tensor, t: Tensor, **kwargs: Any) -> Tensor:
        self.calls += 1
        return self.model(x, t, **kwargs)
