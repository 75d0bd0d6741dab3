"""End-to-end studies behind the book's chapters (notebooks call these and plot the result).

:func:`run_exact_testbed_study` is the first chapter: on a Gaussian-mixture testbed with a planted
error model it runs the whole VRG pipeline and compares what VRG *predicts* with what happens:

1. Algorithm 1 profiles the planted model (``w``) and, with the same draws of ``eps``, the exact
   predictor ``eps*`` (the irreducible spread). Their difference is the model's own error.
2. For every baseline and K the trajectory is optimised (VRG with the paper's penalty, and with
   the start level held fixed) and its CPE is computed under the profile.
3. Every trajectory is sampled with DDIM from the **same** ``x_T ~ N(0, I)``, the same
   planted-noise stream and the same number of model calls (K). The exact probability-flow ODE
   solved from that ``x_T`` at the trajectory's own start level is the reference endpoint, so

   * ``endpoint_mse`` = E||x_K - x_ref||^2 / d, the true cumulative error;
   * ``discretisation_mse``: the same for DDIM with ``eps*`` (no model error);
   * ``propagated_mse`` = E||x_K - x_K(eps*)||^2 / d, the model error that reached the sample,
     which (CPE) with the model's own error profile predicts.

   The penalty variant may move the start level, so its reference endpoint differs from the
   baseline's: its errors are each measured against its own exact flow, and the sample-quality
   metrics are the comparison on a common target.
4. Exact sample quality (log-likelihood gap, Frechet distance to the exact moments, mode mass).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from vrg_analysis.core.cpe import cumulative_prediction_error
from vrg_analysis.core.profile import ErrorProfile
from vrg_analysis.core.trajectories import BASELINES, Trajectory, baseline
from vrg_analysis.evaluation.metrics import mixture_reference, mixture_sample_quality
from vrg_analysis.models.analytic import PlantedErrorModel, reference_ode_endpoint
from vrg_analysis.profiling import profile_prediction_error
from vrg_analysis.samplers import sample_ddim
from vrg_analysis.testbeds import MixtureTestbed, make_testbed
from vrg_analysis.vrg.optimize import optimize_trajectory

__all__ = [
    "ExactStudyConfig",
    "PLANTED_ERRORS",
    "PlantedProfiles",
    "profile_planted_testbed",
    "RunRecord",
    "ExactStudy",
    "run_exact_testbed_study",
    "VARIANTS",
]

log = logging.getLogger(__name__)
FloatArray = NDArray[np.float64]
VARIANTS: tuple[str, ...] = ("baseline", "vrg", "vrg_keep_start")
# "relative": the planted error variance is ``planted_size`` times the irreducible spread at each
# level (so the profile has the shape of a real model's, large near the data, tiny at high noise);
# "constant": the planted error has standard deviation ``planted_size`` at every level.
PLANTED_ERRORS: tuple[str, ...] = ("relative", "constant")


@dataclass(frozen=True)
class ExactStudyConfig:
    """Parameters of the exact-testbed study; the one home of their defaults (CI-sized)."""

    testbed: str = "mixture-2d"
    baselines: tuple[str, ...] = ("time_uniform", "time_quadratic", "logsnr_uniform")
    steps: tuple[int, ...] = (5, 10, 20)
    planted_error: str = "relative"
    planted_size: float = 0.25
    n_train: int = 512
    profile_stride: int = 10
    n_samples: int = 256
    ode_tolerance: float = 1e-6
    gamma: float = 0.01
    reg_lambda: float = 100.0
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "baselines", tuple(self.baselines))
        object.__setattr__(self, "steps", tuple(int(k) for k in self.steps))
        unknown = [b for b in self.baselines if b not in BASELINES]
        if unknown:
            raise ValueError(
                f"unknown baseline {unknown[0]!r}; expected one of {sorted(BASELINES)}"
            )
        if not self.steps or min(self.steps) < 1:
            raise ValueError(f"steps must be positive integers, got {self.steps!r}")
        if self.planted_error not in PLANTED_ERRORS:
            raise ValueError(
                f"unknown planted_error {self.planted_error!r}; expected one of {PLANTED_ERRORS}"
            )
        if not (math.isfinite(self.planted_size) and self.planted_size >= 0):
            raise ValueError(
                f"planted_size must be a finite number >= 0, got {self.planted_size!r}"
            )
        for name, least in (("n_train", 2), ("n_samples", 2), ("profile_stride", 1)):
            if int(getattr(self, name)) < least:
                raise ValueError(
                    f"{name} must be an integer >= {least}, got {getattr(self, name)!r}"
                )

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ExactStudyConfig:
        return cls(**json.loads(text))


@dataclass(frozen=True, eq=False)
class RunRecord:
    """One sampling run: a trajectory variant, its predicted CPE and its measured errors."""

    baseline: str
    K: int  # noqa: N815 - the paper's symbol
    variant: str
    trajectory: Trajectory
    nfe: int
    cpe_profiled: float
    cpe_model_error: float
    endpoint_errors: FloatArray  # per-sample ||x_K - x_ref||^2 / d
    discretisation_errors: FloatArray  # per-sample, DDIM with eps*
    propagated_errors: FloatArray  # per-sample ||x_K - x_K(eps*)||^2 / d
    quality: dict[str, float]
    optimizer: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        """A flat record for a table."""

        def mean_sem(v: FloatArray) -> tuple[float, float]:
            return float(v.mean()), float(v.std(ddof=1) / math.sqrt(v.size))

        e, e_sem = mean_sem(self.endpoint_errors)
        dsc, dsc_sem = mean_sem(self.discretisation_errors)
        p, p_sem = mean_sem(self.propagated_errors)
        return {
            "baseline": self.baseline,
            "K": self.K,
            "variant": self.variant,
            "nfe": self.nfe,
            "alpha_bar_T": float(self.trajectory.alpha_bar[0]),
            "cpe_profiled": self.cpe_profiled,
            "cpe_model_error": self.cpe_model_error,
            "endpoint_mse": e,
            "endpoint_mse_sem": e_sem,
            "discretisation_mse": dsc,
            "discretisation_mse_sem": dsc_sem,
            "propagated_mse": p,
            "propagated_mse_sem": p_sem,
            **{f"q_{k}": v for k, v in self.quality.items()},
            **{f"opt_{k}": v for k, v in self.optimizer.items()},
        }


@dataclass(frozen=True, eq=False)
class ExactStudy:
    """Everything the chapter shows: config, profiles, runs and the samples for pictures."""

    config: ExactStudyConfig
    profile: ErrorProfile
    spread_profile: ErrorProfile
    model_error_profile: ErrorProfile
    planted_error_variance: FloatArray  # the truth: std(a)^2 + mean(bias^2) at profile levels
    records: tuple[RunRecord, ...]
    samples: dict[tuple[str, int, str], Tensor]
    reference_samples: Tensor
    true_samples: Tensor

    def rows(self) -> list[dict[str, Any]]:
        return [r.row() for r in self.records]

    def record(self, baseline_name: str, k: int, variant: str) -> RunRecord:
        for r in self.records:
            if (r.baseline, r.K, r.variant) == (baseline_name, k, variant):
                return r
        raise KeyError(f"no run for baseline={baseline_name!r}, K={k}, variant={variant!r}")

    def paired_difference(
        self, baseline_name: str, k: int, variant: str = "vrg", what: str = "endpoint_errors"
    ) -> tuple[float, float, float]:
        """Mean of ``variant - baseline`` per-sample errors (same x_T) and its 95% interval."""
        a = getattr(self.record(baseline_name, k, "baseline"), what)
        b = getattr(self.record(baseline_name, k, variant), what)
        d = b - a
        half = 1.96 * float(d.std(ddof=1)) / math.sqrt(d.size)
        return float(d.mean()), float(d.mean()) - half, float(d.mean()) + half


def _per_sample_sq(a: Tensor, b: Tensor) -> FloatArray:
    return (a - b).pow(2).mean(dim=1).double().numpy()


@dataclass(frozen=True, eq=False)
class PlantedProfiles:
    """Step 1 of the study: the planted model and its profiles (Algorithm 1, paired draws)."""

    model: PlantedErrorModel
    profile: ErrorProfile
    spread_profile: ErrorProfile
    model_error_profile: ErrorProfile


def profile_planted_testbed(
    cfg: ExactStudyConfig, *, testbed: MixtureTestbed | None = None, progress: bool = False
) -> PlantedProfiles:
    """Build the planted model of ``cfg`` and profile it and ``eps*`` with the same draws."""
    bed = testbed or make_testbed(cfg.testbed, seed=cfg.seed)
    sched, mix = bed.schedule, bed.mixture
    train, _ = mix.sample(cfg.n_train, torch.Generator().manual_seed(cfg.seed))
    ts = np.unique(np.r_[np.arange(0, sched.num_timesteps, cfg.profile_stride), sched.t_max])

    def prof(model: Any, name: str) -> ErrorProfile:
        gen = torch.Generator().manual_seed(cfg.seed + 1)  # the same eps draws for both models
        return profile_prediction_error(
            model,
            train,
            ts,
            generator=gen,
            progress=progress,
            batch_size=8192,
            model_name=name,
            data_name=cfg.testbed,
        )

    spread = prof(bed.oracle, "eps*")
    std: Any
    if cfg.planted_error == "relative":

        def std(a: FloatArray) -> FloatArray:
            return np.sqrt(cfg.planted_size * spread.w(a, outside="clamp"))

    else:
        std = cfg.planted_size
    planted = PlantedErrorModel(bed.oracle, std=std, seed=cfg.seed)
    profile = prof(planted, f"planted({cfg.planted_error}, {cfg.planted_size:g})")
    model_error = ErrorProfile(
        alpha_bar=profile.alpha_bar,
        mse=np.maximum(profile.mse - spread.mse, 0.0),
        metadata={"model": "planted minus eps* (paired draws)"},
    )
    return PlantedProfiles(planted, profile, spread, model_error)


def run_exact_testbed_study(
    config: ExactStudyConfig | None = None, *, progress: bool = False
) -> ExactStudy:
    """Run the study described in the module docstring (deterministic given ``config.seed``)."""
    cfg = config or ExactStudyConfig()
    bed = make_testbed(cfg.testbed, seed=cfg.seed)
    sched, mix = bed.schedule, bed.mixture
    # 1. Algorithm 1 on training data, the planted model and eps* with the same eps draws
    planted_profiles = profile_planted_testbed(cfg, testbed=bed, progress=progress)
    planted = planted_profiles.model
    profile = planted_profiles.profile
    spread = planted_profiles.spread_profile
    model_error = planted_profiles.model_error_profile

    # 2. the same starting noise for every run; exact references per start level
    x_T = torch.randn(
        cfg.n_samples,
        mix.dim,
        generator=torch.Generator().manual_seed(cfg.seed + 2),
        dtype=torch.float64,
    )
    refs: dict[float, Tensor] = {}

    def reference(a_t: float) -> Tensor:
        if a_t not in refs:
            refs[a_t] = reference_ode_endpoint(
                mix, x_T, a_t, rtol=cfg.ode_tolerance, atol=cfg.ode_tolerance
            )
        return refs[a_t]

    mref = mixture_reference(mix, n=20_000, generator=torch.Generator().manual_seed(cfg.seed + 3))
    records: list[RunRecord] = []
    samples: dict[tuple[str, int, str], Tensor] = {}
    for name in cfg.baselines:
        for k in cfg.steps:
            base = baseline(name, sched, k)
            variants: dict[str, tuple[Trajectory, dict[str, Any]]] = {"baseline": (base, {})}
            for variant, keep in (("vrg", False), ("vrg_keep_start", True)):
                res = optimize_trajectory(
                    base,
                    profile,
                    gamma=cfg.gamma,
                    reg_lambda=cfg.reg_lambda,
                    keep_start=keep,
                    alpha_bar_max=sched.alpha_bar_max,
                    alpha_bar_min=None if keep else sched.alpha_bar_min,
                )
                info = {
                    "converged": res.converged,
                    "moved": res.moved,
                    "start_level_shift": res.start_level_shift,
                    "cpe_reduction": res.cpe_reduction,
                }
                variants[variant] = (res.optimized, info)
            for variant, (traj, info) in variants.items():
                # 3. DDIM from the same x_T with the same planted-noise stream, and with eps*
                planted.reset(cfg.seed)
                x_planted = sample_ddim(planted, x_T, traj)
                x_exact_model = sample_ddim(bed.oracle, x_T, traj)
                ref = reference(float(traj.alpha_bar[0]))
                q = mixture_sample_quality(x_planted, mix, reference=mref)
                records.append(
                    RunRecord(
                        baseline=name,
                        K=k,
                        variant=variant,
                        trajectory=traj,
                        nfe=traj.K,
                        cpe_profiled=cumulative_prediction_error(traj, profile, outside="clamp"),
                        cpe_model_error=cumulative_prediction_error(
                            traj, model_error, outside="clamp"
                        ),
                        endpoint_errors=_per_sample_sq(x_planted, ref),
                        discretisation_errors=_per_sample_sq(x_exact_model, ref),
                        propagated_errors=_per_sample_sq(x_planted, x_exact_model),
                        quality=q.summary(),
                        optimizer=info,
                    )
                )
                samples[(name, k, variant)] = x_planted
        log.info("exact study: %s done", name)
    true_samples, _ = mix.sample(cfg.n_samples, torch.Generator().manual_seed(cfg.seed + 4))
    return ExactStudy(
        config=cfg,
        profile=profile,
        spread_profile=spread,
        model_error_profile=model_error,
        planted_error_variance=planted.known_error_variance(profile.alpha_bar),
        records=tuple(records),
        samples=samples,
        reference_samples=reference(
            float(baseline(cfg.baselines[0], sched, cfg.steps[0]).alpha_bar[0])
        ),
        true_samples=true_samples,
    )
