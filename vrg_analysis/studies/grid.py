"""The paired comparison grid across processes and GPUs (issue 17, part 4).

A comparison (:class:`~vrg_analysis.studies.engine.ComparisonConfig`) is a grid of
configurations, sampler x baseline x K x seed, each sampled from the same starting noise as its
VRG arms. The configurations are independent once the profile is fixed: every seed draws its own
``x_T`` and step noise from its number, and VRG's trajectory depends only on the profile, the
baseline and K. So the grid splits into *units*, one sub-comparison for every combination of the
fields named in ``by`` (:data:`SPLITS`), each run by
:func:`~vrg_analysis.studies.engine.run_comparison` like any other comparison (and cached like
one, so a killed run resumes at the first unfinished unit). :func:`merge_results` puts the units'
arms back in the serial run's order.

Under ``torchrun`` (``WORLD_SIZE > 1``; gloo on CPUs, NCCL on GPUs,
:func:`~vrg_analysis.profiling.strata.distributed_from_env`) :func:`run_grid` gives unit ``i`` to
process ``i mod world`` and ``all_gather_object`` hands every process every unit's result: the
serial run's result, arm for arm and bit for bit on the same kind of machine and thread count
(``tests/test_study_grid.py``). The merged result is also stored in the library cache under the
whole comparison's key, so a chapter that then calls ``run_comparison`` on the same configuration
reads it instead of sampling again: this is how ``torchrun ... -m vrg_analysis study CHAPTER``
runs a chapter's comparisons in parallel and the rest of the chapter (its statistics and figures)
once (:func:`chapter_configs`).

Cost: a unit repeats the work its configurations share in a serial run (the profile is cached and
read once per process; VRG's planning and the fine reference solve are redone per unit), so the
merged ``model_calls`` is the calls the units made, at least the serial count. Split by
``("seeds",)`` when there are at least as many seeds as processes; the default
``("seeds", "samplers")`` repeats only the planning, once per sampler.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from vrg_analysis.cache import cached
from vrg_analysis.profiling.strata import rank_and_world
from vrg_analysis.samplers import get_sampler
from vrg_analysis.studies.engine import (
    ArmResult,
    ComparisonConfig,
    ComparisonResult,
    ComparisonSetup,
    comparison_key,
    run_comparison,
    setup_testbed,
)

__all__ = ["SPLITS", "check_split", "split_config", "merge_results", "run_grid", "chapter_configs"]

#: The fields of a comparison a grid can split, in the serial run's loop order (outermost first).
SPLITS: tuple[str, ...] = ("seeds", "samplers", "baselines", "steps")


def check_split(by: Sequence[str]) -> tuple[str, ...]:
    """``by``'s fields of :data:`SPLITS` in the serial loop order; ``ValueError`` for an unknown
    or repeated field, or none."""
    by = tuple(by)
    unknown = [f for f in by if f not in SPLITS]
    if unknown or len(set(by)) != len(by) or not by:
        raise ValueError(f"by must name distinct fields of {SPLITS}, got {by!r}")
    return tuple(f for f in SPLITS if f in by)


def split_config(
    config: ComparisonConfig, by: Sequence[str] = ("seeds", "samplers")
) -> list[ComparisonConfig]:
    """The units of ``config``: one configuration for every combination of one value of each
    field in ``by`` (the others kept whole), in the serial run's order."""
    fields = check_split(by)
    values = [getattr(config, f) for f in fields]
    return [
        dataclasses.replace(config, **{f: (v,) for f, v in zip(fields, combo, strict=True)})
        for combo in itertools.product(*values)
    ]


def _arm_order(config: ComparisonConfig) -> Any:
    variants = ["baseline", *config.arm_labels]

    def key(a: ArmResult) -> tuple[int, int, int, int, int]:
        return (
            config.seeds.index(a.seed),
            config.samplers.index(a.sampler),
            config.baselines.index(a.baseline),
            config.steps.index(a.K),
            variants.index(a.variant),
        )

    return key


def _same_profile(a: Any, b: Any) -> bool:
    return bool(np.array_equal(a.alpha_bar, b.alpha_bar) and np.array_equal(a.mse, b.mse))


def merge_results(config: ComparisonConfig, parts: Sequence[ComparisonResult]) -> ComparisonResult:
    """The result of ``config`` from the results of its units (:func:`split_config`, any ``by``).

    Refused (``ValueError``) when a part is not a unit of ``config`` (it differs in a field that
    is not split, or holds values outside it), when two parts hold the same arm, when an arm of
    the grid is missing, or when the parts disagree on what must be shared: the set metric, the
    reference moments, or (without ``profile_per_seed``) the profile VRG used.
    """
    if not parts:
        raise ValueError("merge_results needs at least one part")
    whole = {k: v for k, v in config.to_dict().items() if k not in (*SPLITS, "device")}
    for i, p in enumerate(parts):
        own = {k: v for k, v in p.config.to_dict().items() if k not in (*SPLITS, "device")}
        outside = [f for f in SPLITS if not set(getattr(p.config, f)) <= set(getattr(config, f))]
        if own != whole or outside:
            raise ValueError(f"part {i} is not a unit of the comparison (differs in {outside})")
        if p.set_metric != parts[0].set_metric:
            raise ValueError(f"part {i} measures {p.set_metric!r}, part 0 {parts[0].set_metric!r}")
        for a, b in zip(p.reference_moments, parts[0].reference_moments, strict=True):
            if not np.array_equal(a, b):
                raise ValueError(f"part {i} has other reference moments than part 0")
        if not config.profile_per_seed and not _same_profile(p.profile, parts[0].profile):
            raise ValueError(f"part {i} used another profile than part 0")
    arms = sorted((a for p in parts for a in p.arms), key=_arm_order(config))
    keys = [(a.seed, a.sampler, a.baseline, a.K, a.variant) for a in arms]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise ValueError(f"arm {dup} is in more than one part")
    # every arm of the grid, but those of a K below a sampler's fewest levels (the engine skips
    # them, in every seed alike)
    present = set(keys)
    missing = [
        (seed, s, b, k, v)
        for seed in config.seeds
        for s in config.samplers
        for b in config.baselines
        for k in config.steps
        if k >= get_sampler(s).min_levels
        for v in ["baseline", *config.arm_labels]
        if (seed, s, b, k, v) not in present
    ]
    if missing:
        raise ValueError(f"the parts miss arm {missing[0]} of the grid")
    profiles = {s: prof for p in parts for s, prof in p.profiles.items()}
    spreads = {s: prof for p in parts for s, prof in p.spread_profiles.items()}
    if not config.profile_per_seed:  # one profile object for every seed, as in the serial run
        profiles = dict.fromkeys(profiles, parts[0].profile)
        if spreads:
            spreads = dict.fromkeys(spreads, next(iter(spreads.values())))
    return ComparisonResult(
        config=config,
        set_metric=parts[0].set_metric,
        arms=tuple(arms),
        profile=profiles[config.seeds[0]],
        reference_moments=parts[0].reference_moments,
        model_calls=sum(p.model_calls for p in parts),
        profiles={s: profiles[s] for s in config.seeds if s in profiles},
        spread_profiles={s: spreads[s] for s in config.seeds if s in spreads},
    )


def run_grid(
    config: ComparisonConfig,
    setup: ComparisonSetup | None = None,
    *,
    by: Sequence[str] = ("seeds", "samplers"),
    device: str | None = None,
    progress: bool = False,
    use_cache: bool | None = None,
) -> ComparisonResult:
    """:func:`~vrg_analysis.studies.engine.run_comparison` of ``config``, unit by unit
    (:func:`split_config`), spread over the torch.distributed processes when a group is joined.

    Every process returns the whole result. ``device``: where this process runs its units (a
    process's own GPU under NCCL; default ``config.device``); the merged result keeps
    ``config``. ``setup``: the testbed, built once per process by default. The merged result is
    stored in the library cache under ``config``'s key (unless ``use_cache`` is false or the
    cache is off), where ``run_comparison(config)`` finds it.
    """
    rank, world = rank_and_world()
    units = split_config(config, by)
    if device is not None and device != config.device:
        units = [dataclasses.replace(u, device=device) for u in units]
    mine = {i: u for i, u in enumerate(units) if i % world == rank}
    own_setup = setup
    done: dict[int, ComparisonResult] = {}
    for i, unit in mine.items():
        if own_setup is None:
            own_setup = setup_testbed(unit)
        done[i] = run_comparison(unit, own_setup, progress=progress, use_cache=use_cache)
    if world > 1:
        gathered: list[Any] = [None] * world
        torch.distributed.all_gather_object(gathered, done)
        done = {i: r for part in gathered for i, r in part.items()}
    merged = merge_results(config, [done[i] for i in range(len(units))])
    if rank == 0:
        key_setup = own_setup if own_setup is not None else setup_testbed(config)
        key = comparison_key(config, key_setup)  # where run_comparison(config) looks
        whole = merged
        merged = cached("comparison", key, lambda: whole, enabled=use_cache)
    return merged


def chapter_configs(params: Any) -> list[ComparisonConfig]:
    """The comparisons a chapter's parameters run: ``params.configs()`` (a mapping or a
    sequence) or ``params.config()``; ``TypeError`` for a chapter without a comparison grid."""
    if callable(getattr(params, "configs", None)):
        found = params.configs()
        configs = list(found.values()) if isinstance(found, dict) else list(found)
    elif callable(getattr(params, "config", None)):
        try:
            configs = [params.config()]
        except TypeError as err:  # config() needs arguments: not one grid
            raise TypeError(
                f"{type(params).__module__}: config() takes arguments; the chapter's "
                "comparisons cannot be listed for a distributed run"
            ) from err
    else:
        raise TypeError(
            f"{type(params).__module__} runs no comparison grid (its parameters have neither "
            "configs() nor config()); run it in one process"
        )
    if not configs or not all(isinstance(c, ComparisonConfig) for c in configs):
        raise TypeError(f"{type(params).__module__}: configs() must give ComparisonConfig objects")
    return configs
