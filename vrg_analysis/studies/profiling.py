"""The profiling chapter: Algorithm 1 on a testbed's models, on training and held-out data.

VRG weights every step by the model's prediction-error profile (the paper's Algorithm 1): for
each profiled training timestep ``t`` and each data row ``x_0``, draw ``eps ~ N(0, I)``, form
``x_t = sqrt(a_t) x_0 + sqrt(1 - a_t) eps`` (DDPM eq. 4) and record ``delta = eps_hat(x_t, t) -
eps``; the profile is the per-level mean squared error per dimension

    w(a_t) = E ||delta||^2 / d                                                        (w)

with the standard error of that mean across rows (``ErrorProfile.mse_sem``; the chapter draws its
normal-approximation interval, ``ErrorProfile.mse_confidence_interval``). This module profiles
every model a testbed offers (:class:`~vrg_analysis.testbeds.Testbed`: the trained ``model``, and
the exact ``oracle`` where one exists) on a subset of its training rows (what VRG uses) and of its
held-out rows (what the model has not seen), writes each profile as an ``.npz`` artifact, and
compares the two per level:

* the ratio ``R_t = w_held-out(a_t) / w_training(a_t)`` (its median over levels);
* Welch's two-sample t test of equal MSE per level from the two profiles' means, standard errors and
  counts (:func:`~vrg_analysis.evaluation.stats.welch_pvalues`), Holm-corrected over the levels of
  each model (:func:`~vrg_analysis.evaluation.stats.adjust_pvalues`). Both profiles draw their noise
  from the same seed, so with equal row counts the two errors of a level share their ``eps``; the
  pair is positively correlated and the independent-samples test is conservative.

**To a stated precision** (:func:`~vrg_analysis.profiling.adaptive.profile_to_precision`): VRG
reads the profile only through CPE, a weighted sum of the profiled values, so the draws can go
where CPE's uncertainty comes from. The chapter asks for the CPE of the three baselines at
``target_steps`` levels to a relative half-width ``target`` (95%) and sets the model calls that
took against what fixed-N Algorithm 1 on the same grid would need for it.

Whether the training-data profile is the error the sampler meets along its own path is the
transfer audit's question (:mod:`vrg_analysis.assumptions.transfer`), not this chapter's.
:func:`algorithm1` (cached Algorithm 1 on a testbed's rows) is shared with the published-profiles
chapter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from numpy.typing import NDArray
from torch import Tensor

from vrg_analysis.cache import cached
from vrg_analysis.core.cpe import cumulative_prediction_error
from vrg_analysis.core.profile import ErrorProfile
from vrg_analysis.core.schedules import NoiseSchedule
from vrg_analysis.core.trajectories import baseline
from vrg_analysis.evaluation.stats import adjust_pvalues, welch_pvalues
from vrg_analysis.params import as_float, as_folder, as_int
from vrg_analysis.profiling import profile_prediction_error
from vrg_analysis.profiling.adaptive import CHUNK, AdaptiveProfile, profile_to_precision
from vrg_analysis.report import PAGE_WIDTH, styled
from vrg_analysis.testbeds import Testbed, known_testbeds, resolve_testbed

__all__ = [
    "Params",
    "Result",
    "Summary",
    "run",
    "algorithm1",
    "row_subset",
    "profiled_timesteps",
    "profiled_models",
    "compare_levels",
    "artifact_name",
    "save_profiles",
    "profiles_table",
    "transfer_table",
    "figure_profiles",
    "precision_table",
    "precision_frame",
    "figure_precision",
    "PRECISION_BASELINES",
    "summary",
    "DATA_SETS",
]

CHAPTER = "profiling"
#: The two data sets every model is profiled on, in order.
DATA_SETS: tuple[str, ...] = ("training", "held-out")
#: Label of the exact predictor, where the testbed has one.
ORACLE_LABEL = "exact eps*"
FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class Params:
    """The chapter's parameters (the notebook's ``parameters`` cell; CI-sized defaults).

    ``model_path`` (a diffusers checkpoint folder, with ``data_path``, the data it was trained on)
    overrides ``testbed``; its data are split into training and held-out rows as by
    :func:`~vrg_analysis.testbeds.resolve_testbed`.
    """

    testbed: str = "digits"
    model_path: str = ""
    data_path: str = ""
    device: str = "cpu"
    n_samples: int = 128
    timestep_stride: int = 20
    batch_size: int = 2048
    seed: int = 0
    target: float = 0.01
    target_steps: int = 10

    def __post_init__(self) -> None:
        s = object.__setattr__
        if self.model_path:
            as_folder(self.model_path, "model_path")
            if not self.data_path:
                raise ValueError(
                    "parameter data_path is empty: model_path needs the data its model was "
                    "trained on (.npz / .npy / image folder)"
                )
            if not Path(self.data_path).exists():
                raise ValueError(f"parameter data_path: {self.data_path!r} does not exist")
        elif self.testbed not in known_testbeds():
            raise ValueError(
                f"parameter testbed: unknown value {self.testbed!r}; allowed: {known_testbeds()}"
            )
        if not isinstance(self.device, str) or not self.device:
            raise ValueError(f"parameter device must be a device name, got {self.device!r}")
        s(self, "n_samples", as_int(self.n_samples, "n_samples", minimum=2))
        s(self, "timestep_stride", as_int(self.timestep_stride, "timestep_stride", minimum=1))
        s(self, "batch_size", as_int(self.batch_size, "batch_size", minimum=1))
        s(self, "seed", as_int(self.seed, "seed", minimum=0))
        s(
            self,
            "target",
            as_float(
                self.target, "target", minimum=0.0, maximum=1.0, open_low=True, open_high=True
            ),
        )
        s(self, "target_steps", as_int(self.target_steps, "target_steps", minimum=2))

    @property
    def source(self) -> str:
        """What the artifacts are named after: the testbed, or the checkpoint folder's name."""
        return Path(self.model_path).name if self.model_path else self.testbed

    def resolve(self) -> Testbed:
        """The testbed the parameters name."""
        if self.model_path:
            return resolve_testbed(
                self.model_path, data=self.data_path, device=self.device, seed=self.seed
            )
        return resolve_testbed(self.testbed, device=self.device)


# ===================================================================== Algorithm 1, shared
#: The trajectories whose CPE the precision section asks for.
PRECISION_BASELINES: tuple[str, ...] = ("time_quadratic", "logsnr_uniform", "time_uniform")


def row_subset(x: Tensor, n: int, seed: int) -> Tensor:
    """``n`` rows of ``x`` drawn without replacement by ``torch.randperm`` seeded ``seed`` (all of
    ``x`` when it has at most ``n`` rows)."""
    if len(x) <= n:
        return x
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(int(seed)))[: int(n)]
    return x[idx]


def profiled_timesteps(schedule: NoiseSchedule, stride: int) -> FloatArray:
    """Every ``stride``-th training timestep from 0, and always the noisiest one (the baselines
    start there)."""
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride!r}")
    ts = np.r_[np.arange(0, schedule.num_timesteps, int(stride)), schedule.t_max]
    return np.unique(ts).astype(np.float64)


def profiled_models(bed: Testbed) -> dict[str, Any]:
    """The models of a testbed the chapter profiles, by label: the trained model (under its
    checkpoint's name) and the exact predictor ``eps*`` where the testbed has one."""
    out: dict[str, Any] = {bed.model_name: bed.model}
    if bed.oracle is not None:
        out[ORACLE_LABEL] = bed.oracle
    return out


def algorithm1(
    model: Any,
    x: Tensor,
    timesteps: FloatArray,
    *,
    fingerprint: dict[str, Any],
    model_name: str,
    data_name: str,
    seed: int = 0,
    batch_size: int = 1024,
    device: str = "cpu",
    dim_stats: bool = True,
    reservoir_size: int = 256,
) -> ErrorProfile:
    """Algorithm 1 (:func:`~vrg_analysis.profiling.profile_prediction_error`) on the rows ``x`` at
    ``timesteps`` with the noise seeded ``seed``, cached (:mod:`vrg_analysis.cache`) by the
    testbed's ``fingerprint``, the model's label, the rows and every option."""

    def compute() -> ErrorProfile:
        return profile_prediction_error(
            model,
            x,
            timesteps,
            generator=torch.Generator().manual_seed(int(seed)),
            batch_size=batch_size,
            device=device,
            progress=False,
            model_name=model_name,
            data_name=data_name,
            dim_stats=dim_stats,
            reservoir_size=reservoir_size,
        )

    params = {
        "chapter": CHAPTER,
        "fingerprint": fingerprint,
        "model": model_name,
        "data": data_name,
        "rows": x,
        "timesteps": np.asarray(timesteps, dtype=np.float64),
        "seed": int(seed),
        "batch_size": int(batch_size),
        "device": device,
        "dim_stats": bool(dim_stats),
        "reservoir_size": int(reservoir_size),
    }
    return cached("algorithm1", params, compute)


def compare_levels(training: ErrorProfile, held_out: ErrorProfile) -> dict[str, Any]:
    """Held-out against training profile, level by level (see the module docstring): the median
    ratio of the MSEs, Welch's p-value of equal MSE at each level, Holm-corrected over the levels,
    and the number of levels where the corrected test rejects at 5%."""
    if not np.array_equal(training.alpha_bar, held_out.alpha_bar):
        raise ValueError("the two profiles were measured at different levels")
    for p in (training, held_out):
        if p.mse_sem is None or p.count is None:
            raise ValueError("comparing profiles needs their standard errors and counts")
    assert training.mse_sem is not None and training.count is not None  # for the type checker
    assert held_out.mse_sem is not None and held_out.count is not None
    p = welch_pvalues(
        held_out.mse,
        held_out.mse_sem,
        held_out.count,
        training.mse,
        training.mse_sem,
        training.count,
    )
    adjusted = adjust_pvalues(p, "holm")
    ratio = held_out.mse / training.mse
    return {
        "median held-out / training MSE": float(np.median(ratio)),
        "levels that differ (Welch, Holm)": int(np.sum(adjusted < 0.05)),
        "levels": int(ratio.size),
        "smallest p (Holm)": float(np.min(adjusted)),
        "ratio": ratio,
        "p_adjusted": adjusted,
    }


# ===================================================================== the chapter
@dataclass(frozen=True, eq=False)
class Result:
    """Every profile of the chapter, keyed by (model label, data set), and their comparison."""

    params: Params
    source: str
    models: tuple[str, ...]
    timesteps: FloatArray = field(repr=False)
    profiles: dict[tuple[str, str], ErrorProfile] = field(repr=False)
    transfer: pd.DataFrame = field(repr=False)
    precision: AdaptiveProfile = field(repr=False)


def run(params: Params) -> Result:
    """Profile every model of the testbed on its training and held-out rows (Algorithm 1)."""
    bed = params.resolve()
    data = {
        "training": row_subset(bed.train_x, params.n_samples, params.seed),
        "held-out": row_subset(bed.held_out_x, params.n_samples, params.seed + 1),
    }
    models = profiled_models(bed)
    timesteps = profiled_timesteps(bed.schedule, params.timestep_stride)
    profiles: dict[tuple[str, str], ErrorProfile] = {}
    for label, model in models.items():
        for data_name, x in data.items():
            profiles[(label, data_name)] = algorithm1(
                model,
                x,
                timesteps,
                fingerprint=dict(bed.fingerprint),
                model_name=label,
                data_name=f"{params.source}:{data_name}",
                seed=params.seed,
                batch_size=params.batch_size,
                device=params.device,
            )
    rows = []
    for label in models:
        cmp = compare_levels(profiles[(label, "training")], profiles[(label, "held-out")])
        rows.append({"model": label, **{k: v for k, v in cmp.items() if np.isscalar(v)}})
    trajectories = [baseline(b, bed.schedule, params.target_steps) for b in PRECISION_BASELINES]
    precision = profile_to_precision(
        bed.model,
        bed.train_x,
        trajectories,
        target=params.target,
        seed=params.seed,
        batch_size=min(params.batch_size, CHUNK),
        model_name=bed.model_name,
        data_name=f"{params.source}:training",
    )
    return Result(
        params=params,
        source=params.source,
        models=tuple(models),
        timesteps=timesteps,
        profiles=profiles,
        transfer=pd.DataFrame(rows),
        precision=precision,
    )


def artifact_name(source: str, label: str, data_name: str) -> str:
    """The file name of a profile artifact."""
    return f"profile-{source}-{label}-{data_name}.npz".replace(" ", "_")


def save_profiles(result: Result, out_dir: str | Path) -> list[Path]:
    """Write every profile as an ``.npz`` artifact (with its metadata: model, data hash, seed,
    versions) into ``out_dir``; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return [
        prof.save(out / artifact_name(result.source, label, data_name))
        for (label, data_name), prof in result.profiles.items()
    ]


# ===================================================================== rendering
def _profiles_frame(result: Result) -> pd.DataFrame:
    rows = []
    for (label, data_name), prof in result.profiles.items():
        rows.append(
            {
                "model": label,
                "data": data_name,
                "levels": int(prof.alpha_bar.size),
                "samples per level": int(prof.count[0]) if prof.count is not None else 0,
                "mean MSE": float(prof.mse.mean()),
                "max |mean error|": (
                    float(np.abs(prof.mean).max()) if prof.mean is not None else np.nan
                ),
                "artifact": artifact_name(result.source, label, data_name),
            }
        )
    return pd.DataFrame(rows)


def profiles_table(result: Result) -> Any:
    """One row per profile: levels, samples, mean MSE, largest mean error, artifact file."""
    return styled(
        _profiles_frame(result),
        formats={"mean MSE": "{:.4g}", "max |mean error|": "{:.3g}"},
        caption=f"Algorithm 1 on {result.source}: one profile per model and data set",
    )


def transfer_table(result: Result) -> Any:
    """Held-out against training profile per model."""
    return styled(
        result.transfer,
        formats={"median held-out / training MSE": "{:.3f}", "smallest p (Holm)": "{:.2g}"},
        caption=(
            "Held-out against training profile: median ratio of the MSEs over the levels, and "
            "the levels where Welch's test of equal MSE rejects after Holm's correction"
        ),
    )


def figure_profiles(result: Result) -> Any:
    """The profiles against alpha_bar and against the timestep, with their 95% intervals: one
    colour per model, solid on training data, dashed on held-out data."""
    fig, axes = plt.subplots(1, 2, figsize=(PAGE_WIDTH, PAGE_WIDTH / 2.4))
    colours = dict(zip(result.models, sns.color_palette("colorblind", 8).as_hex(), strict=False))
    for (label, data_name), prof in result.profiles.items():
        lo, hi = prof.mse_confidence_interval(0.95)
        style = "--" if data_name == "held-out" else "-"
        c = colours[label]
        for ax, x in ((axes[0], prof.alpha_bar), (axes[1], prof.timesteps)):
            ax.plot(x, prof.mse, style, color=c, lw=1.3, label=f"{label}, {data_name}")
            ax.fill_between(x, np.maximum(lo, 1e-12), hi, color=c, alpha=0.15, lw=0)
    axes[0].set(
        yscale="log",
        xlabel=r"$\bar\alpha$ (signal variance; 1 is clean)",
        ylabel=r"MSE per dimension $w$",
        title=r"against $\bar\alpha$",
    )
    axes[1].set(yscale="log", xlabel="training timestep t", title="against timestep")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    plt.close(fig)
    return fig


def _precision_frame(result: Result) -> pd.DataFrame:
    ad = result.precision
    fixed = result.profiles[(result.models[0], "training")]
    rows = []
    for t, c, h in zip(ad.trajectories, ad.cpe, ad.half_width, strict=True):
        rows.append(
            {
                "trajectory": t.name,
                "CPE (adaptive)": float(c),
                "95% interval": f"[{c - h:.4g}, {c + h:.4g}]",
                "relative half-width": float(h / c),
                "CPE (Algorithm 1 above)": cumulative_prediction_error(t, fixed, outside="clamp"),
            }
        )
    return pd.DataFrame(rows)


def precision_table(result: Result) -> Any:
    """Per trajectory: the adaptive CPE with its interval, and the CPE the chapter's fixed
    Algorithm 1 profile gives (fewer rows, another grid: for orientation)."""
    ad = result.precision
    return styled(
        _precision_frame(result),
        formats={
            "CPE (adaptive)": "{:.4g}",
            "relative half-width": "{:.2%}",
            "CPE (Algorithm 1 above)": "{:.4g}",
        },
        caption=(
            f"CPE to ±{ad.target:.0%} (95%) on {result.source}: {ad.model_calls:,} model calls "
            f"at {ad.profile.alpha_bar.size} of {ad.grid_timesteps.size} grid timesteps; fixed-N "
            f"needs {ad.fixed_n:,} at each of the {ad.grid_timesteps.size} ({ad.fixed_calls:,})"
        ),
    )


def precision_frame(result: Result) -> pd.DataFrame:
    """The draws per grid timestep: adaptive (0 where no trajectory level is near) and fixed-N."""
    ad = result.precision
    drawn = dict(zip(ad.profile.timesteps.tolist(), ad.profile.count.tolist(), strict=True))
    return pd.DataFrame(
        {
            "timestep": ad.grid_timesteps,
            "adaptive draws": [drawn.get(t, 0.0) for t in ad.grid_timesteps.tolist()],
            "fixed-N draws": float(ad.fixed_n),
        }
    )


def figure_precision(result: Result) -> Any:
    """Where the draws go: adaptive draws per grid timestep against fixed-N's constant ``n``."""
    frame = precision_frame(result)
    fig, ax = plt.subplots(figsize=(PAGE_WIDTH, PAGE_WIDTH / 3.2))
    used = frame[frame["adaptive draws"] > 0]
    ax.vlines(used.timestep, 1, used["adaptive draws"], color="#0173b2", lw=2.5, label="adaptive")
    ax.axhline(
        result.precision.fixed_n, color="#555555", ls="--", lw=1.2, label="fixed-N, every timestep"
    )
    ax.set(
        yscale="log",
        xlabel="training timestep t (0 is clean)",
        ylabel="draws (model calls)",
        title=f"Draws to reach CPE ±{result.precision.target:.0%} (95%)",
    )
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    plt.close(fig)
    return fig


# ===================================================================== the prose's numbers
@dataclass(frozen=True)
class Summary:
    """Every number the chapter's prose cites (glued by field name)."""

    source: str
    models_phrase: str
    n_timesteps: int
    n_samples_used: int
    transfer_model: str
    transfer_ratio: float
    transfer_differ: int
    transfer_levels: int
    precision_target: float
    precision_steps: int
    precision_calls: int
    precision_fixed_calls: int
    precision_saving: float
    precision_rounds: int
    precision_profiled: int
    precision_grid: int
    precision_reached: str


def summary(result: Result) -> Summary:
    first = result.transfer.iloc[0]
    prof = result.profiles[(result.models[0], "training")]
    return Summary(
        source=result.source,
        models_phrase=", ".join(result.models),
        n_timesteps=int(result.timesteps.size),
        n_samples_used=int(prof.count[0]) if prof.count is not None else 0,
        transfer_model=str(first["model"]),
        transfer_ratio=float(first["median held-out / training MSE"]),
        transfer_differ=int(first["levels that differ (Welch, Holm)"]),
        transfer_levels=int(first["levels"]),
        precision_target=result.precision.target,
        precision_steps=result.params.target_steps,
        precision_calls=result.precision.model_calls,
        precision_fixed_calls=result.precision.fixed_calls,
        precision_saving=result.precision.saving,
        precision_rounds=len(result.precision.rounds),
        precision_profiled=int(result.precision.profile.alpha_bar.size),
        precision_grid=int(result.precision.grid_timesteps.size),
        precision_reached=(
            "reached the target for every trajectory"
            if result.precision.reached
            else "stopped short of the target (its round limit)"
        ),
    )
