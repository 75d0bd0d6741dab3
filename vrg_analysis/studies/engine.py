"""Paired comparison of baseline trajectories and their VRG re-timing, on any sampler.

This is the engine of the quality-vs-steps, gamma/lambda-ablation and predicted-vs-measured
studies. For every sampler, baseline and number of levels K it

1. builds the baseline trajectory (the same K levels for every sampler: singlestep and
   multistep solvers read their intermediate levels from it, so both arms cost the sampler's
   ``nfe(K)`` model calls);
2. re-times it with VRG (minimises ``CPE + reg_lambda (a_K' - a_K)^2`` inside the gamma box,
   CPE = Eq. 10, ``optimize.optimize_trajectory``) for every (gamma, reg_lambda) setting, with the
   least noisy level capped at the schedule's ``alpha_bar(0)`` and the noisiest held at or above
   ``alpha_bar(T)`` so every level is a timestep the model knows;
3. samples every arm from the **same** starting noise per seed (``initial_noise(shape, seed)``;
   stochastic samplers also share the per-step noise, ``sample_generators(seed, n)``) and scores
   the samples: a set metric (domain FID on the digits testbeds, the Frechet distance to the
   exact moments on the mixtures), per-sample metrics (the endpoint deviation from a fine-step
   reference solve from the same ``x_T``, the paper's "image MSE" against 200 DDIM steps; the
   exact log-likelihood and the error against the exact probability-flow ODE on the mixtures).

:func:`paired_comparison` then turns two arms into a verdict: the VRG-minus-baseline difference
with a paired bootstrap interval (samples resampled jointly in both arms, stratified by seed),
a p-value, and the per-seed differences; :func:`win_tie_loss` applies Holm's correction over a
table of comparisons and calls each a win, a tie or a loss.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from numpy.typing import NDArray
from scipy import stats
from torch import Tensor
from tqdm.auto import tqdm

from vrg_analysis.cache import cached
from vrg_analysis.core.cpe import cumulative_prediction_error
from vrg_analysis.core.profile import ErrorProfile
from vrg_analysis.core.schedules import NoiseSchedule
from vrg_analysis.core.trajectories import BASELINES, Trajectory, baseline, time_uniform
from vrg_analysis.evaluation.metrics import frechet_distance, gaussian_moments
from vrg_analysis.profiling import profile_prediction_error
from vrg_analysis.samplers import get_sampler, initial_noise, sample, sample_generators
from vrg_analysis.testbeds import (
    Testbed,
    known_testbeds,
    make_checkpoint_testbed,
    resolve_testbed,
)
from vrg_analysis.vrg.retime import PUBLISHED_VRG, VRGSetting, vrg_retime

__all__ = [
    "ComparisonConfig",
    "ComparisonSetup",
    "ArmResult",
    "ComparisonResult",
    "PairedComparison",
    "METRIC_DIRECTION",
    "setup_testbed",
    "setup_checkpoint",
    "setup_from_testbed",
    "run_comparison",
    "paired_comparison",
    "win_tie_loss",
]

log = logging.getLogger(__name__)
FloatArray = NDArray[np.float64]
Verdict = Literal["win", "tie", "loss"]

#: +1: higher is better; -1: lower is better.
METRIC_DIRECTION: dict[str, int] = {
    "fid": -1,
    "frechet": -1,
    "pixel_frechet": -1,
    "image_mse": -1,
    "exact_error": -1,
    "log_likelihood": +1,
}
_SET_METRICS = ("fid", "frechet", "pixel_frechet")


@dataclass(frozen=True)
class ComparisonConfig:
    """Parameters of a paired comparison; the one home of their defaults (CI-sized).

    ``testbed``: ``digits``, ``digits-cond`` (with ``guidance_scale``), ``mixture-2d``,
    ``mixture-8d``, or a folder holding a diffusers checkpoint (with ``data``, the data set it
    was trained on, :func:`vrg_analysis.io.load_user_data`; see :func:`setup_checkpoint`).
    ``samplers``: registry names. ``vrg``: the VRG settings compared with each baseline.
    ``reference_steps``: levels of the fine time-uniform DDIM solve that defines the endpoint
    deviation ("image MSE"). ``exact_reference`` (mixtures): also the error against the
    exact ODE from each arm's own start level. ``profile_stride`` / ``profile_samples``: Algorithm
    1 on every ``profile_stride``-th training timestep over that many training rows.
    """

    testbed: str = "digits"
    samplers: tuple[str, ...] = ("ddim", "dpm_solver_2", "s_pndm", "deis_tab2")
    baselines: tuple[str, ...] = ("logsnr_uniform", "time_uniform", "time_quadratic")
    steps: tuple[int, ...] = (5, 10, 20)
    seeds: tuple[int, ...] = (0, 1, 2)
    n_samples: int = 450
    vrg: tuple[VRGSetting, ...] = (PUBLISHED_VRG,)
    guidance_scale: float | None = None
    reference_steps: int = 200
    exact_reference: bool = False
    profile_stride: int = 10
    profile_samples: int = 512
    device: str = "cpu"
    data: str | None = None

    def __post_init__(self) -> None:
        for name in ("samplers", "baselines", "steps", "seeds", "vrg"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(
            self,
            "vrg",
            tuple(v if isinstance(v, VRGSetting) else VRGSetting(**dict(v)) for v in self.vrg),
        )
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
        if not self.vrg:
            raise ValueError("vrg needs at least one VRGSetting")
        for name, least in (
            ("n_samples", 2),
            ("reference_steps", 2),
            ("profile_stride", 1),
            ("profile_samples", 2),
        ):
            if int(getattr(self, name)) < least:
                raise ValueError(
                    f"{name} must be an integer >= {least}, got {getattr(self, name)!r}"
                )
        if self.guidance_scale is not None and self.testbed != "digits-cond":
            raise ValueError("guidance_scale needs the class-conditional testbed 'digits-cond'")
        if self.exact_reference and not self.testbed.startswith("mixture"):
            raise ValueError("exact_reference needs an exact (mixture-*) testbed")
        if self.testbed not in known_testbeds():
            if not Path(self.testbed).is_dir():
                raise ValueError(
                    f"unknown testbed {self.testbed!r}: not one of {known_testbeds()} and not a "
                    "folder holding a diffusers checkpoint"
                )
            if self.data is None:
                raise ValueError(f"checkpoint folder {self.testbed!r} needs data (its data set)")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ===================================================================== setups
@dataclass(frozen=True, eq=False)
class ComparisonSetup:
    """What a comparison samples and how it scores: the model, its schedule, the sample shape,
    the training rows Algorithm 1 profiles, and the scorers.

    ``set_features(x)`` gives the features of a sample set for the Frechet-type set metric
    ``set_metric`` against ``reference_moments`` (mean, covariance). ``per_sample`` maps a metric
    name to a function giving one score per sample. ``exact_endpoint(x_T, alpha_bar_start)``
    (exact testbeds) solves the probability-flow ODE. ``model_kwargs`` is passed to every model
    call while sampling (e.g. the labels of a guided model); ``row_kwargs`` to Algorithm 1 with
    one entry per training row. ``fingerprint`` identifies the model and data for the cache.
    """

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
    model_kwargs: Mapping[str, Tensor] = field(default_factory=dict)
    row_kwargs: Mapping[str, Tensor] = field(default_factory=dict)
    fingerprint: Mapping[str, Any] = field(default_factory=dict)


def setup_from_testbed(
    bed: Testbed, *, guidance_scale: float | None = None, n_samples: int = 0
) -> ComparisonSetup:
    """The :class:`ComparisonSetup` of a testbed: its model (guided at ``guidance_scale`` with the
    labels cycling through the classes, the same labels in every arm, when given), its training
    rows (each with its own label for Algorithm 1 on a guided model) and its scorers."""
    scoring = bed.scoring()
    model: Any = bed.model
    model_kwargs: dict[str, Tensor] = {}
    row_kwargs: dict[str, Tensor] = {}
    if guidance_scale is not None:
        model = bed.guided(0, guidance_scale)  # labels come per call
        model_kwargs = {"label": torch.arange(n_samples) % bed.num_classes}
        train_y = bed.train_y
        assert train_y is not None  # a conditional testbed has labels
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
    """The :class:`ComparisonSetup` of ``config.testbed`` (a named testbed or a checkpoint folder,
    see :class:`ComparisonConfig`), with the model on ``config.device``."""
    bed = resolve_testbed(config.testbed, data=config.data, device=config.device)
    return setup_from_testbed(bed, guidance_scale=config.guidance_scale, n_samples=config.n_samples)


# ===================================================================== results
@dataclass(frozen=True, eq=False)
class ArmResult:
    """One arm (sampler, baseline, K, variant) on one seed: its cost, CPE and scores.

    ``variant`` is ``"baseline"`` or a :attr:`VRGSetting.label`. ``features`` (``[n, f]``) are
    kept for the set metric's bootstrap; ``per_sample`` holds one score per sample.
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


@dataclass(frozen=True, eq=False)
class ComparisonResult:
    """All arms of a comparison, with the profile VRG used and the setup's reference moments."""

    config: ComparisonConfig
    set_metric: str
    arms: tuple[ArmResult, ...]
    profile: ErrorProfile
    reference_moments: tuple[FloatArray, FloatArray]
    model_calls: int

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
                self.set_metric: a.set_value,
            }
            row.update({k: float(np.mean(v)) for k, v in a.per_sample.items()})
            row.update({k: v for k, v in a.optimisation.items() if not isinstance(v, dict)})
            out.append(row)
        return out


# ===================================================================== running
def _profile(
    setup: ComparisonSetup, config: ComparisonConfig, use_cache: bool | None
) -> ErrorProfile:
    n = min(config.profile_samples, int(setup.train_x.shape[0]))
    last = setup.schedule.num_timesteps - 1  # always profiled: the baselines start there
    ts = np.union1d(np.arange(0, last, config.profile_stride), [last])
    row_kwargs = {k: v[:n] for k, v in setup.row_kwargs.items()}

    def compute() -> ErrorProfile:
        return profile_prediction_error(
            setup.model,
            setup.train_x[:n],
            ts,
            schedule=setup.schedule,
            generator=torch.Generator().manual_seed(0),
            device=config.device,
            progress=False,
            model_name=setup.name,
            dim_stats=False,
            reservoir_size=0,
            row_kwargs=row_kwargs or None,
        )

    params = {
        "setup": setup.name,
        "fingerprint": dict(setup.fingerprint),
        "n": n,
        "stride": config.profile_stride,
        "train_x": setup.train_x[:n],
        "device": config.device,
    }
    return cached("profile", params, compute, enabled=use_cache)


def _set_value(features: FloatArray, moments: tuple[FloatArray, FloatArray]) -> float:
    mean, cov = gaussian_moments(features)
    return frechet_distance(mean, cov, moments[0], moments[1])


class _FrechetToReference:
    """Frechet distance (F1) of sample sets to one fixed reference Gaussian, for the bootstrap:
    the reference's square root is computed once, so each evaluation needs one symmetric
    eigenvalue problem, ``tr (R^{1/2} C R^{1/2})^{1/2}``, instead of three. Agrees with
    :func:`~vrg_analysis.metrics.frechet_distance` (tested)."""

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
        return _run(config, setup, progress, use_cache)

    params = {"config": config.to_dict(), "setup": setup.name, **dict(setup.fingerprint)}
    return cached("comparison", params, compute, enabled=use_cache)


def _run(
    config: ComparisonConfig, setup: ComparisonSetup, progress: bool, use_cache: bool | None
) -> ComparisonResult:
    dev = torch.device(config.device)
    model, schedule, n = setup.model, setup.schedule, config.n_samples
    profile = _profile(setup, config, use_cache)
    model_kwargs = {k: v.to(dev) for k, v in setup.model_kwargs.items()}
    # 1-2. the baseline and VRG trajectories of every configuration (seed-independent)
    plans: list[tuple[str, str, int, str, Trajectory, dict[str, Any]]] = []
    for sampler_name in config.samplers:
        spec = get_sampler(sampler_name)
        for b in config.baselines:
            for k in config.steps:
                if k < spec.min_levels:
                    log.info(
                        "skipping %s at K=%d (needs %d levels)", sampler_name, k, spec.min_levels
                    )
                    continue
                base = baseline(b, schedule, k)
                plans.append((sampler_name, b, k, "baseline", base, {}))
                for setting in config.vrg:
                    traj, info = vrg_retime(base, profile, schedule, setting)
                    plans.append((sampler_name, b, k, setting.label, traj, info))
    fine = time_uniform(schedule, config.reference_steps)
    arms: list[ArmResult] = []
    calls = 0
    bar = tqdm(total=len(plans) * len(config.seeds), desc="arms", disable=not progress)
    with torch.no_grad():
        for seed in config.seeds:
            x_t = initial_noise((n, *setup.shape), seed).to(dev)
            # 3. the fine-step reference from the same x_T (the paper's 200-step "image MSE")
            ref = sample("ddim", model, x_t, fine, model_kwargs=model_kwargs)
            calls += ref.nfe
            x_ref = ref.x.double().cpu()
            exact: dict[float, Tensor] = {}
            for sampler_name, b, k, variant, traj, info in plans:
                spec = get_sampler(sampler_name)
                out = sample(
                    sampler_name,
                    model,
                    x_t,
                    traj,
                    # a fresh set per arm: every arm draws the same per-step noise
                    generator=sample_generators(seed, n) if spec.stochastic else None,
                    model_kwargs=model_kwargs,
                )
                calls += out.nfe
                x = out.x.double().cpu()
                feats = setup.set_features(x)
                per = {k_: f(x) for k_, f in setup.per_sample.items()}
                per["image_mse"] = (x - x_ref).pow(2).flatten(1).mean(1).numpy()
                if config.exact_reference and setup.exact_endpoint is not None:
                    a_start = float(traj.alpha_bar[0])
                    if a_start not in exact:
                        exact[a_start] = setup.exact_endpoint(x_t.cpu(), a_start).double()
                    per["exact_error"] = (x - exact[a_start]).pow(2).flatten(1).mean(1).numpy()
                arms.append(
                    ArmResult(
                        sampler=sampler_name,
                        baseline=b,
                        K=k,
                        variant=variant,
                        seed=seed,
                        nfe=out.nfe,
                        cpe=cumulative_prediction_error(traj, profile),
                        alpha_bar=np.asarray(traj.alpha_bar, dtype=np.float64),
                        set_value=_set_value(feats, setup.reference_moments),
                        features=feats,
                        per_sample=per,
                        optimisation=info,
                    )
                )
                bar.update(1)
    bar.close()
    return ComparisonResult(
        config=config,
        set_metric=setup.set_metric,
        arms=tuple(arms),
        profile=profile,
        reference_moments=setup.reference_moments,
        model_calls=calls,
    )


# ===================================================================== verdicts
@dataclass(frozen=True)
class PairedComparison:
    """VRG against its baseline on one metric, paired by starting noise.

    ``delta`` = metric(VRG) - metric(baseline) on all seeds' samples pooled (for the set metric:
    the metric of the pooled features); ``ci_low``/``ci_high`` its paired bootstrap interval;
    ``p_value``: two-sided (paired t test on per-sample differences; for the set metric a normal
    test of ``delta`` with the bootstrap standard error); ``seed_deltas``: the difference on each
    seed alone; ``improved``: whether ``delta`` goes the metric's good way; ``verdict`` is set by
    :func:`win_tie_loss`.
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


def _pooled_features(
    result: ComparisonResult, key: tuple[str, str, int], variant: str
) -> tuple[list[FloatArray], list[Mapping[str, FloatArray]], list[ArmResult]]:
    arms = [result.arm(*key, variant, s) for s in result.config.seeds]
    return [a.features for a in arms], [a.per_sample for a in arms], arms


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
) -> PairedComparison:
    """VRG ``variant`` (default: the first setting) against the baseline of one configuration.

    Bootstrap: ``n_boot`` resamples of sample indices, drawn within each seed and applied to both
    arms at once (the pairing by starting noise is kept), with ``np.random.default_rng(seed)``.
    """
    metric = metric or result.set_metric
    if metric not in METRIC_DIRECTION:
        raise ValueError(f"unknown metric {metric!r}; expected one of {sorted(METRIC_DIRECTION)}")
    if not 0.5 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0.5, 1), got {confidence!r}")
    if n_boot < 20:
        raise ValueError(f"n_boot must be >= 20, got {n_boot!r}")
    variant = variant or result.config.vrg[0].label
    key = (sampler, baseline_name, k)
    fb, pb, arms_b = _pooled_features(result, key, "baseline")
    fv, pv, arms_v = _pooled_features(result, key, variant)
    rng = np.random.default_rng(seed)
    sizes = [f.shape[0] for f in fb]
    offsets = np.cumsum([0, *sizes[:-1]])
    alpha = 1.0 - confidence
    if metric in _SET_METRICS:
        if metric != result.set_metric:
            raise ValueError(f"this comparison's set metric is {result.set_metric!r}")
        frechet = _FrechetToReference(result.reference_moments)
        all_b, all_v = np.concatenate(fb), np.concatenate(fv)
        base_value, vrg_value = frechet(all_b), frechet(all_v)
        seed_deltas = tuple(v.set_value - b.set_value for b, v in zip(arms_b, arms_v, strict=True))
        boot = np.empty(n_boot)
        for i in range(n_boot):
            idx = np.concatenate(
                [o + rng.integers(0, s, size=s) for o, s in zip(offsets, sizes, strict=True)]
            )
            boot[i] = frechet(all_v[idx]) - frechet(all_b[idx])
        # bootstrap standard-error test: z = delta / sd(bootstrap deltas), two-sided normal p
        se = float(boot.std(ddof=1))
        delta = vrg_value - base_value
        p_value = float(2.0 * stats.norm.sf(abs(delta) / se)) if se > 0 else float(delta == 0)
    else:
        if metric not in pb[0]:
            raise ValueError(f"metric {metric!r} was not measured here; measured: {sorted(pb[0])}")
        sb, sv = np.concatenate([p[metric] for p in pb]), np.concatenate([p[metric] for p in pv])
        d = sv - sb
        base_value, vrg_value = float(sb.mean()), float(sv.mean())
        seed_deltas = tuple(
            float(v[metric].mean() - b[metric].mean()) for b, v in zip(pb, pv, strict=True)
        )
        boot = np.empty(n_boot)
        for i in range(n_boot):
            idx = np.concatenate(
                [o + rng.integers(0, s, size=s) for o, s in zip(offsets, sizes, strict=True)]
            )
            boot[i] = d[idx].mean()
        sd = float(d.std(ddof=1))
        if sd > 0:
            p_value = float(stats.ttest_1samp(d, 0.0).pvalue)
        else:
            p_value = 1.0 if float(d.mean()) == 0.0 else 0.0
    lo, hi = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    return PairedComparison(
        sampler=sampler,
        baseline=baseline_name,
        K=k,
        variant=variant,
        metric=metric,
        base_value=float(base_value),
        vrg_value=float(vrg_value),
        delta=float(vrg_value - base_value),
        ci_low=float(lo),
        ci_high=float(hi),
        p_value=p_value,
        seed_deltas=tuple(float(x) for x in seed_deltas),
        n_samples=int(sum(sizes)),
        nfe=arms_b[0].nfe,
        base_cpe=arms_b[0].cpe,
        vrg_cpe=arms_v[0].cpe,
    )


def win_tie_loss(
    comparisons: Sequence[PairedComparison], *, alpha: float = 0.05, correction: str = "holm"
) -> list[PairedComparison]:
    """Each comparison with its adjusted p-value and verdict: a *win* when the corrected test
    rejects and VRG improved the metric, a *loss* when it rejects and VRG worsened it, a *tie*
    otherwise (Holm's step-down correction over the whole table by default)."""
    from dataclasses import replace

    from vrg_analysis.assumptions.verdicts import adjust_pvalues

    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")
    if not comparisons:
        return []
    adj = adjust_pvalues([c.p_value for c in comparisons], correction)  # type: ignore[arg-type]
    out = []
    for c, p in zip(comparisons, adj, strict=True):
        verdict: Verdict = "tie"
        if p < alpha and c.delta != 0:
            verdict = "win" if c.improved else "loss"
        out.append(replace(c, p_adjusted=float(p), verdict=verdict))
    return out
