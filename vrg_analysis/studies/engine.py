"""The paired comparison engine: every study's baseline-against-arm comparisons, on equal terms.

For every sampler, baseline trajectory and number of levels K, :func:`run_comparison`

1. profiles the model that samples with Algorithm 1 (once, or once per seed with
   ``profile_per_seed``; with ``spread``, also the testbed's reference predictor with the same
   draws, so CPE splits into the irreducible spread and the model's own error);
2. builds the baseline trajectory (the same K levels for every sampler: singlestep and multistep
   solvers read their intermediate levels from it, so every arm costs the sampler's ``nfe(K)``
   model calls) and every arm's trajectory (:mod:`vrg_analysis.vrg.arms`: VRG under a setting,
   the start level held, the paper's optimiser, CPE's global optimum, ...);
3. samples every arm from the **same** starting noise per seed (``initial_noise(shape, seed)``);
   stochastic samplers share the per-step noise (``sample_generators(seed, n)``) and a planted
   error model restarts its noise stream, so arms differ only in their trajectory;
4. scores the samples: the testbed's set metric (domain FID, or the Frechet distance to exact
   moments) and per-sample metrics: the deviation from a fine-step DDIM solve from the same
   ``x_T`` (the paper's "image MSE", ``image_mse``), and on exact testbeds the error against the
   exact probability-flow ODE from the arm's own start level (``exact_error``) and from the
   baseline's (``exact_error_common``), and with ``decompose`` its split into the sampler's
   discretisation error (the same run with the exact ``eps*``) and the propagated model error.

:func:`paired_comparison` turns an arm and its baseline into an estimate with a paired,
seed-stratified bootstrap interval and a p-value (:mod:`vrg_analysis.evaluation.stats`);
:func:`judge` corrects a table of them together (Holm by default) and applies the book's one
verdict rule to the claim "the arm improves the metric".
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor
from tqdm import tqdm

from vrg_analysis.cache import cached
from vrg_analysis.core.cpe import cumulative_prediction_error
from vrg_analysis.core.profile import ErrorProfile
from vrg_analysis.core.schedules import NoiseSchedule
from vrg_analysis.core.trajectories import BASELINES, Trajectory, baseline, time_uniform
from vrg_analysis.evaluation.stats import (
    Correction,
    Verdict,
    adjust_pvalues,
    bootstrap_pvalue,
    decide,
    one_sample_t,
    paired_bootstrap,
    percentile_interval,
)
from vrg_analysis.io import sha256_array
from vrg_analysis.models.analytic import PlantedErrorModel
from vrg_analysis.models.protocol import identity_of
from vrg_analysis.profiling import profile_prediction_error
from vrg_analysis.samplers import get_sampler, initial_noise, sample, sample_generators
from vrg_analysis.testbeds import (
    SET_METRICS,
    Testbed,
    known_testbeds,
    make_checkpoint_testbed,
    resolve_testbed,
)
from vrg_analysis.threads import limit_threads
from vrg_analysis.vrg.arms import Arm, ArmContext
from vrg_analysis.vrg.retime import PUBLISHED_VRG, VRGSetting

__all__ = [
    "PREDICTORS",
    "PLANTED_ERRORS",
    "METRIC_DIRECTION",
    "ComparisonConfig",
    "ComparisonSetup",
    "ArmResult",
    "ComparisonResult",
    "PairedComparison",
    "setup_from_testbed",
    "setup_testbed",
    "setup_checkpoint",
    "run_comparison",
    "comparison_key",
    "profiles_for",
    "RelativeStd",
    "paired_comparison",
    "judge",
    "compare_all",
    "FrechetToReference",
]

log = logging.getLogger(__name__)
FloatArray = NDArray[np.float64]

#: What samples: the testbed's trained network, its exact ``eps*``, or ``eps*`` plus a planted
#: error of known size (exact testbeds).
PREDICTORS: tuple[str, ...] = ("trained", "oracle", "planted")
#: "relative": the planted error variance is ``planted_size`` times the irreducible spread at each
#: level (a profile shaped like a real model's: large near the data, tiny at high noise);
#: "constant": the planted error has standard deviation ``planted_size`` at every level.
PLANTED_ERRORS: tuple[str, ...] = ("relative", "constant")

#: +1: higher is better; -1: lower is better.
METRIC_DIRECTION: dict[str, int] = {
    "fid": -1,
    "frechet": -1,
    "pixel_frechet": -1,
    "image_mse": -1,
    "exact_error": -1,
    "exact_error_common": -1,
    "discretisation_error": -1,
    "propagated_error": -1,
    "log_likelihood": +1,
}


def _arm_of(spec: Any) -> Arm:
    if isinstance(spec, Mapping):
        kind = spec.get("kind", "vrg")
        if kind != "vrg":
            raise ValueError(f"an arm given as a mapping must be a VRG setting, got kind {kind!r}")
        return VRGSetting(**{k: v for k, v in spec.items() if k != "kind"})
    if not isinstance(spec, Arm):
        raise TypeError(f"an arm needs label, retime and to_dict; got {type(spec).__name__}")
    return spec


@dataclass(frozen=True)
class ComparisonConfig:
    """Parameters of a paired comparison; the one home of their defaults (CI-sized).

    ``testbed``: a testbed name or a diffusers checkpoint folder (with ``data``, the data set it
    was trained on). ``samplers``: registry names. ``arms``: the trajectory rules compared with
    each baseline (:mod:`vrg_analysis.vrg.arms`; VRG settings may be given as mappings).
    ``predictor``: what samples (:data:`PREDICTORS`; ``"planted"`` with ``planted_error``,
    ``planted_size``, ``planted_correlation``, the AR(1) correlation of the error along a path,
    and ``planted_bias``, a constant added to every prediction).
    ``guidance_scale``: classifier-free guidance of a class-conditional testbed, labels cycling
    through the classes. ``reference_steps``: levels of the fine time-uniform DDIM solve behind
    ``image_mse`` (0: none). ``exact_reference`` / ``decompose``: the exact-ODE errors (exact
    testbeds). ``spread``: also profile the reference predictor. ``profile_stride`` /
    ``profile_samples``: Algorithm 1 on every ``profile_stride``-th training timestep over that
    many training rows (drawn afresh for every seed with ``profile_per_seed``).
    """

    testbed: str = "digits"
    samplers: tuple[str, ...] = ("ddim", "dpm_solver_2", "s_pndm", "deis_tab2")
    baselines: tuple[str, ...] = ("logsnr_uniform", "time_uniform", "time_quadratic")
    steps: tuple[int, ...] = (5, 10, 20)
    seeds: tuple[int, ...] = (0, 1, 2)
    n_samples: int = 450
    arms: tuple[Any, ...] = (PUBLISHED_VRG,)
    predictor: str = "trained"
    planted_error: str = "relative"
    planted_size: float = 0.0
    planted_correlation: float = 0.0
    planted_bias: float = 0.0
    guidance_scale: float | None = None
    reference_steps: int = 200
    exact_reference: bool = False
    decompose: bool = False
    spread: bool = False
    profile_stride: int = 10
    profile_samples: int = 512
    profile_per_seed: bool = False
    device: str = "cpu"
    data: str | None = None

    def __post_init__(self) -> None:
        for name in ("samplers", "baselines", "steps", "seeds"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "arms", tuple(_arm_of(a) for a in self.arms))
        for s in self.samplers:
            get_sampler(s)  # names an unknown sampler with the list of known ones
        unknown = [b for b in self.baselines if b not in BASELINES]
        if unknown:
            raise ValueError(
                f"unknown baseline {unknown[0]!r}; expected one of {sorted(BASELINES)}"
            )
        if not self.steps or min(self.steps) < 1:
            raise ValueError(f"steps must be positive integers, got {self.steps!r}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or min(self.seeds) < 0:
            raise ValueError(f"seeds must be distinct integers >= 0, got {self.seeds!r}")
        labels = [a.label for a in self.arms]
        if not labels:
            raise ValueError("arms needs at least one arm to compare with the baseline")
        if len(set(labels)) != len(labels) or "baseline" in labels:
            raise ValueError(f"arm labels must be distinct and not 'baseline', got {labels!r}")
        for name, least in (
            ("n_samples", 2),
            ("reference_steps", 0),
            ("profile_stride", 1),
            ("profile_samples", 2),
        ):
            v = getattr(self, name)
            if isinstance(v, bool) or int(v) != v or v < least:
                raise ValueError(f"{name} must be an integer >= {least}, got {v!r}")
        if self.reference_steps == 1:
            raise ValueError("reference_steps must be 0 (no fine solve) or at least 2")
        if self.predictor not in PREDICTORS:
            raise ValueError(f"predictor must be one of {PREDICTORS}, got {self.predictor!r}")
        if self.planted_error not in PLANTED_ERRORS:
            raise ValueError(
                f"planted_error must be one of {PLANTED_ERRORS}, got {self.planted_error!r}"
            )
        if not (math.isfinite(self.planted_size) and self.planted_size >= 0.0):
            raise ValueError(
                f"planted_size must be a finite number >= 0, got {self.planted_size!r}"
            )
        if not math.isfinite(self.planted_bias):
            raise ValueError(f"planted_bias must be finite, got {self.planted_bias!r}")
        if not -1.0 < self.planted_correlation < 1.0:
            raise ValueError(
                f"planted_correlation must lie in (-1, 1), got {self.planted_correlation!r}"
            )
        if self.guidance_scale is not None and not math.isfinite(self.guidance_scale):
            raise ValueError(f"guidance_scale must be finite, got {self.guidance_scale!r}")
        if self.testbed not in known_testbeds():
            if not Path(self.testbed).is_dir():
                raise ValueError(
                    f"unknown testbed {self.testbed!r}: not one of {known_testbeds()} and not a "
                    "folder holding a diffusers checkpoint"
                )
            if self.data is None:
                raise ValueError(f"checkpoint folder {self.testbed!r} needs data (its data set)")

    @property
    def arm_labels(self) -> list[str]:
        return [a.label for a in self.arms]

    def to_dict(self) -> dict[str, Any]:
        """Every parameter as plain data (the arms by their ``to_dict``): the cache key."""
        out = {f: getattr(self, f) for f in self.__dataclass_fields__ if f != "arms"}
        out["arms"] = [a.to_dict() for a in self.arms]
        return out


# ===================================================================== setups
@dataclass(frozen=True, eq=False)
class ComparisonSetup:
    """What a comparison samples and how it scores, from its testbed: the trained model and the
    exact predictor where there is one, the schedule, the sample shape, the training rows Algorithm
    1 profiles, the scorers (:class:`~vrg_analysis.testbeds.Scoring`), the conditioning
    (``model_kwargs`` for every sampling call, ``row_kwargs`` per training row for Algorithm 1),
    the reference predictor and the fingerprint that keys the cache."""

    name: str
    model: Any
    schedule: NoiseSchedule
    shape: tuple[int, ...]
    train_x: Tensor
    set_metric: str
    set_features: Callable[[Tensor], FloatArray]
    reference_moments: tuple[FloatArray, FloatArray]
    per_sample: Mapping[str, Callable[[Tensor], FloatArray]] = field(default_factory=dict)
    exact_endpoint: Callable[[Tensor, float], Tensor] | None = None
    oracle: Any = None
    reference_model: Any = None
    model_kwargs: Mapping[str, Tensor] = field(default_factory=dict)
    row_kwargs: Mapping[str, Tensor] = field(default_factory=dict)
    fingerprint: Mapping[str, Any] = field(default_factory=dict)


def setup_from_testbed(
    bed: Testbed,
    *,
    guidance_scale: float | None = None,
    n_samples: int = 0,
    trained: bool = True,
) -> ComparisonSetup:
    """The :class:`ComparisonSetup` of a testbed: its model (guided at ``guidance_scale`` with the
    labels cycling through the classes, the same labels in every arm, when given), its training
    rows (each with its own label for Algorithm 1 on a guided model) and its scorers. With
    ``trained=False`` the trained network is not loaded (the exact predictor samples)."""
    scoring = bed.scoring()
    model: Any = bed.model if trained else None
    model_kwargs: dict[str, Tensor] = {}
    row_kwargs: dict[str, Tensor] = {}
    if guidance_scale is not None:
        model = bed.guided(0, guidance_scale)  # labels come per call
        model_kwargs = {"label": torch.arange(n_samples) % bed.num_classes}
        train_y = bed.train_y
        if train_y is None:  # pragma: no cover - a conditional testbed has labels
            raise ValueError(f"testbed {bed.name!r} has no training labels")
        row_kwargs = {"label": train_y}
    return ComparisonSetup(
        name=bed.name,
        model=model,
        schedule=bed.schedule,
        shape=bed.sample_shape,
        train_x=bed.train_x,
        set_metric=scoring.set_metric,
        set_features=scoring.set_features,
        reference_moments=scoring.reference_moments,
        per_sample=scoring.per_sample,
        exact_endpoint=scoring.exact_endpoint,
        oracle=bed.oracle,
        reference_model=bed.reference().model,
        model_kwargs=model_kwargs,
        row_kwargs=row_kwargs,
        fingerprint={
            **bed.fingerprint,
            **dict(scoring.fingerprint),
            "guidance_scale": guidance_scale,
        },
    )


def setup_checkpoint(
    folder: str | Path,
    data: str | Path,
    *,
    device: str = "cpu",
    features: Callable[[Tensor], FloatArray] | None = None,
    features_id: str | None = None,
    metric: str = "pixel_frechet",
    held_out_fraction: float = 0.25,
    seed: int = 0,
) -> ComparisonSetup:
    """The :class:`ComparisonSetup` of a diffusers checkpoint folder and its data set
    (:func:`~vrg_analysis.testbeds.checkpoint.make_checkpoint_testbed`; pass e.g. Inception-v3
    pool features with ``metric="fid"`` and ``features_id`` where the weights are available)."""
    bed = make_checkpoint_testbed(
        folder,
        data,
        device=device,
        seed=seed,
        held_out_fraction=held_out_fraction,
        features=features,
        features_id=features_id,
        metric=metric,
    )
    return setup_from_testbed(bed)


def setup_testbed(config: ComparisonConfig) -> ComparisonSetup:
    """The :class:`ComparisonSetup` of ``config.testbed`` (a named testbed or a checkpoint folder),
    with the model on ``config.device``; refuses what the testbed cannot do (guidance on an
    unconditional model, exact references or a planted error without an exact predictor)."""
    bed = resolve_testbed(config.testbed, data=config.data, device=config.device)
    if config.guidance_scale is not None and not bed.conditional:
        raise ValueError(
            f"guidance_scale needs a class-conditional testbed; {bed.name!r} is unconditional"
        )
    needs_oracle = config.exact_reference or config.decompose or config.predictor != "trained"
    if needs_oracle and bed.oracle is None:
        raise ValueError(
            f"testbed {bed.name!r} has no exact predictor: exact_reference, decompose and the "
            "oracle or planted predictors need an exact (mixture) testbed"
        )
    return setup_from_testbed(
        bed,
        guidance_scale=config.guidance_scale,
        n_samples=config.n_samples,
        trained=config.predictor == "trained",
    )


# ===================================================================== results
@dataclass(frozen=True, eq=False)
class ArmResult:
    """One arm (sampler, baseline, K, variant) on one seed: its cost, CPE and scores.

    ``variant`` is ``"baseline"`` or an arm's label. ``features`` (``[n, f]``) are kept for the set
    metric's bootstrap; ``per_sample`` holds one score per sample; ``cpe_model_error`` is CPE under
    the model's own error (profile minus the reference's spread; NaN without ``spread``).
    """

    sampler: str
    baseline: str
    K: int  # noqa: N815 - the paper's symbol
    variant: str
    seed: int
    nfe: int
    cpe: float
    alpha_bar: FloatArray
    set_value: float
    features: FloatArray = field(repr=False)
    per_sample: Mapping[str, FloatArray] = field(repr=False)
    optimisation: Mapping[str, Any] = field(default_factory=dict)
    cpe_model_error: float = math.nan


@dataclass(frozen=True, eq=False)
class ComparisonResult:
    """All arms of a comparison, with the profiles VRG used and the setup's reference moments.

    ``profile`` is the profile of the first seed (the only one unless ``profile_per_seed``);
    ``profiles`` holds one per seed and ``spread_profiles`` the reference predictor's (with
    ``spread``).
    """

    config: ComparisonConfig
    set_metric: str
    arms: tuple[ArmResult, ...]
    profile: ErrorProfile
    reference_moments: tuple[FloatArray, FloatArray]
    model_calls: int
    profiles: Mapping[int, ErrorProfile] = field(default_factory=dict)
    spread_profiles: Mapping[int, ErrorProfile] = field(default_factory=dict)

    def arm(self, sampler: str, baseline_name: str, k: int, variant: str, seed: int) -> ArmResult:
        for a in self.arms:
            if (a.sampler, a.baseline, a.K, a.variant, a.seed) == (
                sampler,
                baseline_name,
                k,
                variant,
                seed,
            ):
                return a
        raise KeyError(f"no arm {(sampler, baseline_name, k, variant, seed)!r}")

    def configurations(self) -> list[tuple[str, str, int]]:
        """The (sampler, baseline, K) triples that were run, in run order."""
        seen: dict[tuple[str, str, int], None] = {}
        for a in self.arms:
            seen.setdefault((a.sampler, a.baseline, a.K), None)
        return list(seen)

    def variants(self) -> list[str]:
        return list(dict.fromkeys(a.variant for a in self.arms))

    @property
    def metrics(self) -> list[str]:
        """The set metric and every per-sample metric measured."""
        return [self.set_metric, *self.arms[0].per_sample]

    def rows(self) -> list[dict[str, Any]]:
        """One row per arm and seed (set metric, per-sample means, CPE, NFE) for a table."""
        out = []
        for a in self.arms:
            row = {
                "sampler": a.sampler,
                "baseline": a.baseline,
                "K": a.K,
                "variant": a.variant,
                "seed": a.seed,
                "nfe": a.nfe,
                "cpe": a.cpe,
                "cpe_model_error": a.cpe_model_error,
                "alpha_bar_start": float(a.alpha_bar[0]),
                self.set_metric: a.set_value,
            }
            row.update({k: float(np.mean(v)) for k, v in a.per_sample.items()})
            row.update({k: v for k, v in a.optimisation.items() if not isinstance(v, dict)})
            out.append(row)
        return out


# ===================================================================== running
@dataclass(frozen=True, eq=False)
class _Profiles:
    profile: ErrorProfile
    spread: ErrorProfile | None
    model_error: ErrorProfile | None


def _profile_rows(setup: ComparisonSetup, config: ComparisonConfig, seed: int | None) -> Tensor:
    n = min(config.profile_samples, int(setup.train_x.shape[0]))
    if seed is None:
        return torch.arange(n)
    gen = torch.Generator().manual_seed(int(seed))
    return torch.randperm(int(setup.train_x.shape[0]), generator=gen)[:n]


class RelativeStd:
    """A planted error's standard deviation ``sqrt(size * spread(a))``: ``size`` times the
    irreducible spread the reference predictor's profile measured, with an identity (the
    profile's values and the size) so a model built with it can be keyed."""

    def __init__(self, spread: ErrorProfile, size: float) -> None:
        self.spread, self.size = spread, float(size)

    def __call__(self, alpha_bar: FloatArray) -> FloatArray:
        return np.sqrt(self.size * self.spread.w(alpha_bar, outside="clamp"))

    @property
    def identity(self) -> str:
        return identity_of(
            "RelativeStd",
            sha256_array(np.asarray(self.spread.alpha_bar)),
            sha256_array(np.asarray(self.spread.mse)),
            self.size,
        )


def _planted(
    setup: ComparisonSetup, config: ComparisonConfig, spread: ErrorProfile | None, seed: int
) -> PlantedErrorModel:
    std: Any
    if config.planted_error == "relative":
        assert spread is not None  # profiled first for a relative planted error
        std = RelativeStd(spread, config.planted_size)
    else:
        std = config.planted_size
    return PlantedErrorModel(
        setup.oracle,
        std=std,
        bias=config.planted_bias,
        step_correlation=config.planted_correlation,
        seed=int(seed),
    )


def _reset(model: Any, seed: int) -> None:
    """Restart a stochastic model's noise stream (a planted error), so every arm sees the same."""
    reset = getattr(model, "reset", None)
    if callable(reset):
        reset(int(seed))


def _profiles(
    setup: ComparisonSetup, config: ComparisonConfig, seed: int | None, use_cache: bool | None
) -> tuple[_Profiles, Any]:
    """The profile(s) of a seed (``None``: the shared ones) and the model that samples."""
    rows = _profile_rows(setup, config, seed)
    last = setup.schedule.num_timesteps - 1  # always profiled: the baselines start there
    ts = np.union1d(np.arange(0, last, config.profile_stride), [last])
    row_kwargs = {k: v[rows] for k, v in setup.row_kwargs.items()}
    gen_seed = 0 if seed is None else int(seed) + 1
    x = setup.train_x[rows]

    def algorithm1(model: Any, what: str) -> ErrorProfile:
        def compute() -> ErrorProfile:
            _reset(model, 0 if seed is None else int(seed))
            return profile_prediction_error(
                model,
                x,
                ts,
                schedule=setup.schedule,
                generator=torch.Generator().manual_seed(gen_seed),  # the same draws for all
                device=config.device,
                progress=False,
                model_name=f"{setup.name} {what}",
                dim_stats=False,
                reservoir_size=0,
                row_kwargs=row_kwargs or None,
            )

        params = {
            "setup": setup.name,
            "fingerprint": dict(setup.fingerprint),
            "what": what,
            "rows": x,
            "stride": config.profile_stride,
            "generator_seed": gen_seed,
            "device": config.device,
        }
        return cached("profile", params, compute, enabled=use_cache)

    spread = None
    if config.spread or (config.predictor == "planted" and config.planted_error == "relative"):
        spread = algorithm1(setup.reference_model, "reference predictor")
    if config.predictor == "trained":
        model = setup.model
        what = "trained model"
    elif config.predictor == "oracle":
        model, what = setup.oracle, "exact eps*"
    else:
        model = _planted(setup, config, spread, 0 if seed is None else int(seed))
        what = (
            f"planted({config.planted_error}, {config.planted_size:g}, "
            f"rho {config.planted_correlation:g}, bias {config.planted_bias:g})"
        )
    if model is None:
        raise ValueError(f"testbed {setup.name!r} ships no trained model for this configuration")
    profile = algorithm1(model, what)
    model_error = None
    if spread is not None and config.spread:
        model_error = ErrorProfile(
            alpha_bar=profile.alpha_bar,
            mse=np.maximum(profile.mse - spread.mse, 0.0),
            metadata={"model": f"{what} minus the reference predictor (paired draws)"},
        )
    return _Profiles(profile, spread if config.spread else None, model_error), model


def profiles_for(
    config: ComparisonConfig,
    seed: int | None = None,
    setup: ComparisonSetup | None = None,
    *,
    use_cache: bool | None = None,
) -> tuple[ErrorProfile, ErrorProfile | None, Any]:
    """What :func:`run_comparison` profiles for ``seed`` (``None``: the shared profile): the
    profile of the model that samples, the reference predictor's (with ``spread``, else
    ``None``) and that model, from the same cache entries as the comparison."""
    setup = setup if setup is not None else setup_testbed(config)
    profs, model = _profiles(setup, config, seed, use_cache)
    return profs.profile, profs.spread, model


def _plans(
    config: ComparisonConfig, setup: ComparisonSetup, profiles: _Profiles, model: Any
) -> list[tuple[str, str, int, str, Trajectory, dict[str, Any]]]:
    """The baseline and arm trajectories of every configuration."""
    ctx = ArmContext(
        profile=profiles.profile,
        schedule=setup.schedule,
        model=model,
        oracle=setup.oracle,
        model_kwargs=dict(setup.model_kwargs),
        validation_noise=lambda n: initial_noise((n, *setup.shape), 2**31 - 1),
    )
    plans: list[tuple[str, str, int, str, Trajectory, dict[str, Any]]] = []
    retimed: dict[tuple[str, int, str], tuple[Trajectory, dict[str, Any]]] = {}
    for sampler_name in config.samplers:
        spec = get_sampler(sampler_name)
        for b in config.baselines:
            for k in config.steps:
                if k < spec.min_levels:
                    log.info(
                        "skipping %s at K=%d (needs %d levels)", sampler_name, k, spec.min_levels
                    )
                    continue
                base = baseline(b, setup.schedule, k)
                plans.append((sampler_name, b, k, "baseline", base, {}))
                for arm in config.arms:
                    key = (b, k, arm.label)  # the trajectory does not depend on the sampler
                    if key not in retimed:
                        retimed[key] = arm.retime(base, ctx)
                    traj, info = retimed[key]
                    plans.append((sampler_name, b, k, arm.label, traj, dict(info)))
    return plans


def _set_value(features: FloatArray, moments: tuple[FloatArray, FloatArray]) -> float:
    return FrechetToReference(moments)(features)


class FrechetToReference:
    """Frechet distance (F1) of sample sets to one fixed reference Gaussian, for the bootstrap:
    the reference's square root is computed once, so each evaluation needs one symmetric
    eigenvalue problem, ``tr (R^{1/2} C R^{1/2})^{1/2}``, instead of three. Agrees with
    :func:`~vrg_analysis.evaluation.metrics.frechet_distance` (tested)."""

    def __init__(self, moments: tuple[FloatArray, FloatArray]) -> None:
        self.mean = np.asarray(moments[0], dtype=np.float64)
        cov = np.asarray(moments[1], dtype=np.float64)
        vals, vecs = np.linalg.eigh(0.5 * (cov + cov.T))
        vals = np.clip(vals, 0.0, None)
        self.sqrt = (vecs * np.sqrt(vals)) @ vecs.T
        self.trace = float(vals.sum())

    def __call__(self, features: FloatArray) -> float:
        mean = features.mean(axis=0)
        centred = features - mean
        cov = centred.T @ centred / (features.shape[0] - 1)
        mid = self.sqrt @ cov @ self.sqrt
        tr_sqrt = float(np.sqrt(np.clip(np.linalg.eigvalsh(0.5 * (mid + mid.T)), 0.0, None)).sum())
        diff = mean - self.mean
        return max(float(diff @ diff) + float(np.trace(cov)) + self.trace - 2.0 * tr_sqrt, 0.0)


def run_comparison(
    config: ComparisonConfig,
    setup: ComparisonSetup | None = None,
    *,
    progress: bool = False,
    use_cache: bool | None = None,
) -> ComparisonResult:
    """Run every arm of ``config`` (on ``setup``, default :func:`setup_testbed`) and score it.

    The result is cached by the configuration, the setup's fingerprint and the library source
    (:mod:`vrg_analysis.cache`), so rerunning a notebook after a prose edit costs nothing.
    """
    setup = setup if setup is not None else setup_testbed(config)

    def compute() -> ComparisonResult:
        # an exact testbed (a Gaussian mixture) is many small tensor operations: one thread is
        # many times faster than several on a CPU; image models keep the threads they are given
        small = setup.exact_endpoint is not None and torch.device(config.device).type == "cpu"
        with limit_threads(1 if small else None):
            return _run(config, setup, progress, use_cache)

    return cached("comparison", comparison_key(config, setup), compute, enabled=use_cache)


def comparison_key(config: ComparisonConfig, setup: ComparisonSetup) -> dict[str, Any]:
    """What :func:`run_comparison`'s cached result is keyed by (with the library source,
    :mod:`vrg_analysis.cache`): the configuration, the setup's name and its fingerprint."""
    return {"config": config.to_dict(), "setup": setup.name, **dict(setup.fingerprint)}


def _mse(a: Tensor, b: Tensor) -> FloatArray:
    return (a - b).pow(2).flatten(1).mean(1).numpy()


def _sample_arm(
    model: Any,
    sampler_name: str,
    x_t: Tensor,
    trajectory: Trajectory,
    seed: int,
    model_kwargs: Mapping[str, Tensor],
) -> Any:
    """One sampling run of an arm: the model's noise stream restarted and, for a stochastic
    sampler, a fresh set of the seed's per-step generators, so every arm draws the same noise."""
    _reset(model, seed)
    stochastic = get_sampler(sampler_name).stochastic
    return sample(
        sampler_name,
        model,
        x_t,
        trajectory,
        generator=sample_generators(seed, x_t.shape[0]) if stochastic else None,
        model_kwargs=model_kwargs,
    )


class _ExactEndpoints:
    """The exact-ODE endpoints from one ``x_T``, solved once per start level."""

    def __init__(self, solve: Callable[[Tensor, float], Tensor] | None, x_t: Tensor) -> None:
        self.solve, self.x_t, self.done = solve, x_t.cpu(), {}

    def __call__(self, alpha_bar_start: float) -> Tensor:
        if alpha_bar_start not in self.done:
            assert self.solve is not None  # checked by setup_testbed
            self.done[alpha_bar_start] = self.solve(self.x_t, alpha_bar_start).double()
        return self.done[alpha_bar_start]


def _run(
    config: ComparisonConfig, setup: ComparisonSetup, progress: bool, use_cache: bool | None
) -> ComparisonResult:
    dev = torch.device(config.device)
    model_kwargs = {k: v.to(dev) for k, v in setup.model_kwargs.items()}
    fine = time_uniform(setup.schedule, config.reference_steps) if config.reference_steps else None
    shared = None if config.profile_per_seed else _profiles(setup, config, None, use_cache)
    arms: list[ArmResult] = []
    profiles: dict[int, ErrorProfile] = {}
    spreads: dict[int, ErrorProfile] = {}
    calls = 0
    bar = tqdm(desc="arms", disable=not progress)
    with torch.no_grad():
        for seed in config.seeds:
            profs, model = shared or _profiles(setup, config, seed, use_cache)
            profiles[seed] = profs.profile
            if profs.spread is not None:
                spreads[seed] = profs.spread
            # 1-2. the baseline and arm trajectories (once, unless profiled per seed)
            if shared is None or seed == config.seeds[0]:
                with torch.enable_grad():  # the solvers differentiate the objective
                    plans = _plans(config, setup, profs, model)
                calls += sum(int(info.get("model_calls", 0)) for *_, info in plans)
            x_t = initial_noise((config.n_samples, *setup.shape), seed).to(dev)
            x_ref = None
            if fine is not None:  # the fine-step reference from the same x_T ("image MSE")
                ref = _sample_arm(model, "ddim", x_t, fine, seed, model_kwargs)
                calls += ref.nfe
                x_ref = ref.x.double().cpu()
            exact = _ExactEndpoints(setup.exact_endpoint, x_t)
            for sampler_name, b, k, variant, traj, info in plans:
                # 3. the same x_T, the same step noise, the same number of model calls
                out = _sample_arm(model, sampler_name, x_t, traj, seed, model_kwargs)
                calls += out.nfe
                x = out.x.double().cpu()
                # 4. scores
                feats = setup.set_features(x)
                per = {name: f(x) for name, f in setup.per_sample.items()}
                if x_ref is not None:
                    per["image_mse"] = _mse(x, x_ref)
                if config.exact_reference or config.decompose:
                    own = exact(float(traj.alpha_bar[0]))
                    per["exact_error"] = _mse(x, own)
                    start = float(baseline(b, setup.schedule, k).alpha_bar[0])
                    per["exact_error_common"] = _mse(x, exact(start))
                    if config.decompose:  # the same run with eps*: pure discretisation error
                        oracle = _sample_arm(
                            setup.oracle, sampler_name, x_t, traj, seed, model_kwargs
                        )
                        x_oracle = oracle.x.double().cpu()
                        per["discretisation_error"] = _mse(x_oracle, own)
                        per["propagated_error"] = _mse(x, x_oracle)
                model_error = (
                    cumulative_prediction_error(traj, profs.model_error, outside="clamp")
                    if profs.model_error is not None
                    else math.nan
                )
                arms.append(
                    ArmResult(
                        sampler=sampler_name,
                        baseline=b,
                        K=k,
                        variant=variant,
                        seed=seed,
                        nfe=out.nfe,
                        cpe=cumulative_prediction_error(traj, profs.profile, outside="clamp"),
                        alpha_bar=np.asarray(traj.alpha_bar, dtype=np.float64),
                        set_value=_set_value(feats, setup.reference_moments),
                        features=feats,
                        per_sample=per,
                        optimisation=info,
                        cpe_model_error=model_error,
                    )
                )
                bar.update(1)
    bar.close()
    return ComparisonResult(
        config=config,
        set_metric=setup.set_metric,
        arms=tuple(arms),
        profile=profiles[config.seeds[0]],
        reference_moments=setup.reference_moments,
        model_calls=calls,
        profiles=profiles,
        spread_profiles=spreads,
    )


# ===================================================================== verdicts
@dataclass(frozen=True)
class PairedComparison:
    """An arm against its baseline on one metric, paired by starting noise.

    ``delta`` = metric(arm) - metric(baseline) on all seeds' samples pooled (for a set metric: the
    metric of the pooled features); ``ci_low``/``ci_high`` its paired bootstrap interval;
    ``p_value``: two-sided (paired t test on per-sample differences; for a set metric the normal
    test of ``delta`` with the bootstrap standard error); ``seed_deltas``: the difference on each
    seed alone; ``improved``: whether ``delta`` goes the metric's good way; ``verdict`` (on the
    claim "the arm improves the metric") and ``p_adjusted`` are set by :func:`judge`.
    """

    sampler: str
    baseline: str
    K: int  # noqa: N815
    variant: str
    metric: str
    base_value: float
    vrg_value: float
    delta: float
    ci_low: float
    ci_high: float
    p_value: float
    seed_deltas: tuple[float, ...]
    n_samples: int
    nfe: int
    base_cpe: float
    vrg_cpe: float
    p_adjusted: float = math.nan
    verdict: Verdict | None = None

    @property
    def relative(self) -> float:
        """``delta / base_value``."""
        return self.delta / self.base_value if self.base_value else math.nan

    @property
    def improved(self) -> bool:
        return METRIC_DIRECTION[self.metric] * self.delta > 0


def paired_comparison(
    result: ComparisonResult,
    sampler: str,
    baseline_name: str,
    k: int,
    variant: str | None = None,
    metric: str | None = None,
    *,
    n_boot: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
    reference: str = "baseline",
) -> PairedComparison:
    """Arm ``variant`` (default: the first arm) against the baseline of one configuration (or
    against another arm, ``reference``: both ran from the same starting noise).

    Bootstrap (:func:`~vrg_analysis.evaluation.stats.paired_bootstrap`): ``n_boot`` resamples of
    sample indices, drawn within each seed and applied to both arms at once (the pairing by
    starting noise is kept), with ``np.random.default_rng(seed)``.
    """
    metric = metric or result.set_metric
    if metric not in METRIC_DIRECTION:
        raise ValueError(f"unknown metric {metric!r}; expected one of {sorted(METRIC_DIRECTION)}")
    if not 0.5 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0.5, 1), got {confidence!r}")
    variant = variant or result.config.arm_labels[0]
    key = (sampler, baseline_name, k)
    arms_b = [result.arm(*key, reference, s) for s in result.config.seeds]
    arms_v = [result.arm(*key, variant, s) for s in result.config.seeds]
    rng = np.random.default_rng(seed)
    sizes = [a.features.shape[0] for a in arms_b]
    if metric in SET_METRICS:
        if metric != result.set_metric:
            raise ValueError(f"this comparison's set metric is {result.set_metric!r}")
        frechet = FrechetToReference(result.reference_moments)
        all_b = np.concatenate([a.features for a in arms_b])
        all_v = np.concatenate([a.features for a in arms_v])
        base_value, vrg_value = frechet(all_b), frechet(all_v)
        seed_deltas = tuple(v.set_value - b.set_value for b, v in zip(arms_b, arms_v, strict=True))
        boot = paired_bootstrap(
            lambda idx: frechet(all_v[idx]) - frechet(all_b[idx]), sizes, n_boot, rng
        )
        p_value = bootstrap_pvalue(vrg_value - base_value, boot)
    else:
        if metric not in arms_b[0].per_sample:
            raise ValueError(
                f"metric {metric!r} was not measured here; measured: {sorted(arms_b[0].per_sample)}"
            )
        sb = np.concatenate([a.per_sample[metric] for a in arms_b])
        sv = np.concatenate([a.per_sample[metric] for a in arms_v])
        d = sv - sb
        base_value, vrg_value = float(sb.mean()), float(sv.mean())
        seed_deltas = tuple(
            float(v.per_sample[metric].mean() - b.per_sample[metric].mean())
            for b, v in zip(arms_b, arms_v, strict=True)
        )
        boot = paired_bootstrap(lambda idx: float(d[idx].mean()), sizes, n_boot, rng)
        p_value = one_sample_t(d)[1]
    interval = percentile_interval(boot, vrg_value - base_value, confidence)
    return PairedComparison(
        sampler=sampler,
        baseline=baseline_name,
        K=k,
        variant=variant,
        metric=metric,
        base_value=float(base_value),
        vrg_value=float(vrg_value),
        delta=float(vrg_value - base_value),
        ci_low=interval.low,
        ci_high=interval.high,
        p_value=float(p_value),
        seed_deltas=tuple(float(x) for x in seed_deltas),
        n_samples=int(sum(sizes)),
        nfe=arms_b[0].nfe,
        base_cpe=arms_b[0].cpe,
        vrg_cpe=arms_v[0].cpe,
    )


def judge(
    comparisons: Sequence[PairedComparison],
    *,
    alpha: float = 0.05,
    correction: Correction = "holm",
) -> list[PairedComparison]:
    """Each comparison with its adjusted p-value and verdict on "the arm improves the metric",
    the family (``correction`` over the whole table, Holm by default) decided together by the
    book's rule (:func:`~vrg_analysis.evaluation.stats.decide`, ``claim="better"``)."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")
    if not comparisons:
        return []
    adj = adjust_pvalues([c.p_value for c in comparisons], correction)
    out: list[PairedComparison] = []
    for c, p in zip(comparisons, adj, strict=True):
        d = decide(
            c.delta, float(p), claim="better", alpha=alpha, better_sign=METRIC_DIRECTION[c.metric]
        )
        out.append(replace(c, p_adjusted=float(p), verdict=d.verdict))
    return out


def compare_all(
    result: ComparisonResult,
    metric: str | None = None,
    *,
    variants: Sequence[str] | None = None,
    n_boot: int = 200,
    alpha: float = 0.05,
    correction: Correction = "holm",
    reference: str = "baseline",
) -> list[PairedComparison]:
    """Every arm (or ``variants``) against its baseline (or arm ``reference``) in every
    configuration on one metric, judged as one family (:func:`judge`)."""
    labels = [v for v in (variants or result.config.arm_labels) if v != reference]
    comps = [
        paired_comparison(result, s, b, k, v, metric, n_boot=n_boot, reference=reference)
        for s, b, k in result.configurations()
        for v in labels
    ]
    return judge(comps, alpha=alpha, correction=correction)
