"""The published-profiles chapter: re-deriving VRG trajectories from an error-profile file.

VRG needs one thing from a model, its prediction-error profile ``w(a)`` (Algorithm 1), so a
published profile lets anyone re-derive the optimised trajectories without the model or its data.
This module reads such a file (the official text format ``ts alpha_bar MSE``, or an
:class:`~vrg_analysis.core.profile.ErrorProfile` archive), or profiles one of the project's
testbeds itself (:func:`vrg_analysis.studies.profiling.algorithm1`), checks that it covers every
baseline's levels, and optimises every baseline and step count with the exact bounded solver
(:func:`~vrg_analysis.vrg.optimize.optimize_trajectory`) twice:

* with the paper's objective, the cumulative prediction error plus the start-level penalty

      L(r) = CPE(a(r)) + lambda (a_K(r) - a_K_orig)^2,
      CPE = sum_k (sigma_k - sigma_{k-1})^2 w(a_k),                                  (VRG), (CPE)

  over the step ratios ``r_k = a_k / a_{k-1}``, each kept inside its gamma box
  ``|r_k - r_k_orig| <= min(gamma, r_k, 1 - r_k)`` (the paper's learning portion ``gamma``);
* with the start level ``a_K`` held exactly instead of penalised.

A penalised solution sits at the *corner* of the gamma box when every ratio is at its upper edge
(the solution is then set by gamma, not by the profile). Given a folder of official trajectory
files, the exact solver is started from each official baseline file and its CPE and objective
are set beside those of the official optimiser's output (the same problem, the same gamma and
lambda; beyond the profile's range ``w`` is held flat, as the optimiser does).

CPE is computed exactly from the profile, so "VRG lowers CPE" is decided per configuration by
whether it did (:func:`cpe_verdict`) and over the sweep by
:func:`~vrg_analysis.evaluation.stats.aggregate`; how precisely the profile itself was measured is
shown by its interval.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from numpy.typing import NDArray

from vrg_analysis.core.cpe import cumulative_prediction_error
from vrg_analysis.core.profile import ErrorProfile, read_official_profile
from vrg_analysis.core.schedules import SCHEDULE_NAMES, NoiseSchedule, sigma_from_alpha_bar
from vrg_analysis.core.trajectories import (
    BASELINES,
    Trajectory,
    baseline,
    read_official_trajectory,
)
from vrg_analysis.evaluation.stats import Aggregate, aggregate
from vrg_analysis.params import as_choice, as_float, as_folder, as_int, as_tuple
from vrg_analysis.report import PAGE_WIDTH, colour, styled
from vrg_analysis.resources import official_reference_dir
from vrg_analysis.studies.claims import Finding, describe_testbed, size_text
from vrg_analysis.studies.profiling import algorithm1, profiled_timesteps, row_subset
from vrg_analysis.testbeds import check_same_schedule, known_testbeds, make_testbed
from vrg_analysis.vrg.objective import ratio_bounds
from vrg_analysis.vrg.optimize import OptimizationResult, optimize_trajectory

__all__ = [
    "Params",
    "Result",
    "Summary",
    "run",
    "load_profile",
    "own_profile",
    "optimise",
    "sweep",
    "official_comparison",
    "official_files",
    "cpe_verdict",
    "figure_profile",
    "figure_sweep",
    "sweep_table",
    "comparison_table",
    "summary",
    "findings",
    "OFFICIAL_SKIP",
    "SECOND_COLUMNS",
]

CHAPTER = "published_profiles"
#: Baseline name -> the ``skip_type`` of the official DPM-Solver trajectory files.
OFFICIAL_SKIP: dict[str, str] = {
    "time_uniform": "time_uniform",
    "time_quadratic": "time_quadratic",
    "logsnr_uniform": "logSNR",
}
#: What the second column of an official profile file holds.
SECOND_COLUMNS: tuple[str, ...] = ("alpha_bar", "one_minus_beta")
#: ``profile_path`` / ``official_dir`` value standing for the official VRG files' folder.
OFFICIAL = "official"


@dataclass(frozen=True)
class Params:
    """The chapter's parameters (the notebook's ``parameters`` cell; CI-sized defaults).

    ``profile_path``: an official-format ``.txt`` or an ``ErrorProfile`` ``.npz``; empty: profile
    ``model_name`` (a testbed) with Algorithm 1 on ``n_samples`` training rows at every
    ``timestep_stride``-th timestep. ``official_dir``: a folder of official trajectory files to
    compare against (empty: none). The word ``"official"`` in either stands for the official VRG
    files' own folder (:func:`~vrg_analysis.resources.official_reference_dir`; the CIFAR-10
    profile for ``profile_path``), refused when they are not on this machine.
    """

    profile_path: str = ""
    second_column: str = "alpha_bar"
    schedule: str = "linear"
    official_dir: str = ""
    model_name: str = "digits"
    n_samples: int = 256
    timestep_stride: int = 10
    baselines: tuple[str, ...] = ("time_uniform", "time_quadratic", "logsnr_uniform")
    steps: tuple[int, ...] = (5, 10, 20)
    gamma: float = 0.01
    reg_lambda: float = 100.0
    seed: int = 0

    def __post_init__(self) -> None:
        s = object.__setattr__
        if OFFICIAL in (self.profile_path, self.official_dir):
            folder = official_reference_dir()
            if folder is None:
                name = "profile_path" if self.profile_path == OFFICIAL else "official_dir"
                raise ValueError(
                    f"parameter {name} = {OFFICIAL!r}: the official VRG files were not found "
                    "($VRG_REFERENCE_DIR "
                    "unset, no shared/reference/vrg-official beside the checkout)"
                )
            if self.profile_path == OFFICIAL:
                s(self, "profile_path", str(folder / "MSE_vs_alpha_bar_cifar10.txt"))
            if self.official_dir == OFFICIAL:
                s(self, "official_dir", str(folder))
        if self.profile_path:
            path = Path(self.profile_path)
            if not path.is_file():
                raise ValueError(
                    f"parameter profile_path: {self.profile_path!r} is not a file (looked at "
                    f"{path.resolve()})"
                )
        if self.official_dir:
            as_folder(self.official_dir, "official_dir")
        as_choice(self.second_column, "second_column", SECOND_COLUMNS)
        as_choice(self.schedule, "schedule", SCHEDULE_NAMES)
        as_choice(self.model_name, "model_name", known_testbeds())
        s(self, "baselines", as_tuple(self.baselines, "baselines", str, choices=BASELINES))
        s(self, "steps", tuple(sorted(set(as_tuple(self.steps, "steps", int)))))
        if min(self.steps) < 1:
            raise ValueError("parameter steps must be positive integers")
        s(self, "n_samples", as_int(self.n_samples, "n_samples", minimum=2))
        s(self, "timestep_stride", as_int(self.timestep_stride, "timestep_stride", minimum=1))
        s(self, "seed", as_int(self.seed, "seed", minimum=0))
        s(
            self,
            "gamma",
            as_float(self.gamma, "gamma", minimum=0.0, maximum=1.0, open_low=True, open_high=True),
        )
        s(self, "reg_lambda", as_float(self.reg_lambda, "reg_lambda", minimum=0.0))

    @property
    def noise_schedule(self) -> NoiseSchedule:
        return NoiseSchedule.from_name(self.schedule)


# ===================================================================== the profile
def own_profile(params: Params) -> tuple[ErrorProfile, str]:
    """Algorithm 1 on the testbed ``params.model_name``'s trained model (cached), with the phrase
    that names it; refuses a model trained on another schedule than ``params.schedule``."""
    sched = params.noise_schedule
    bed = make_testbed(params.model_name)
    label = bed.model_name
    check_same_schedule(bed.schedule, sched, label)
    x = row_subset(bed.train_x, params.n_samples, params.seed)
    timesteps = profiled_timesteps(sched, params.timestep_stride)
    profile = algorithm1(
        bed.model,
        x,
        timesteps,
        fingerprint=dict(bed.fingerprint),
        model_name=label,
        data_name=f"{params.model_name}:training",
        seed=params.seed,
        dim_stats=False,
        reservoir_size=0,
    )
    phrase = (
        f"the project's own profile: Algorithm 1 on the shipped {label} model, {len(x)} "
        f"training samples at {len(timesteps)} timesteps (profile_path is empty)"
    )
    return profile, phrase


def load_profile(params: Params) -> tuple[ErrorProfile, str]:
    """The profile the parameters name, with the phrase the prose uses for it."""
    if not params.profile_path:
        return own_profile(params)
    path = Path(params.profile_path)
    sched = params.noise_schedule
    if path.suffix == ".npz":
        profile = ErrorProfile.load(path)
        recorded = profile.metadata.get("schedule")
        if recorded not in (None, sched.name):
            raise ValueError(
                f"{path.name} was profiled on the {recorded!r} schedule, but schedule = "
                f"{params.schedule!r}: set schedule to the one the model was trained on"
            )
        fmt = "an ErrorProfile archive"
    else:
        profile = read_official_profile(path, second_column=params.second_column, schedule=sched)
        fmt = "official text format"
    return profile, f"the profile file {path.name} ({fmt}), given as profile_path"


def _trajectories(params: Params, profile: ErrorProfile) -> dict[tuple[str, int], Trajectory]:
    """Every baseline at every K on the schedule; refuses a profile that misses a level."""
    sched = params.noise_schedule
    lo, hi = profile.alpha_bar_range
    out = {}
    for name in params.baselines:
        for k in params.steps:
            tr = baseline(name, sched, k)
            if not profile.covers(tr):
                raise ValueError(
                    f"the profile covers alpha_bar in [{lo:.4g}, {hi:.6g}], but {name} with K = "
                    f"{k} on the {params.schedule} schedule needs [{tr.alpha_bar[0]:.4g}, "
                    f"{tr.alpha_bar[-1]:.6g}]: wrong schedule, or too few profiled levels"
                )
            out[(name, k)] = tr
    return out


# ===================================================================== optimisation
def optimise(
    trajectory: Trajectory,
    profile: ErrorProfile,
    schedule: NoiseSchedule,
    *,
    gamma: float,
    reg_lambda: float,
    keep_start: bool,
) -> OptimizationResult:
    """The exact solver on (VRG), every level kept inside the schedule's range (so a model can be
    evaluated at each): the least noisy level at most ``alpha_bar(0)``, the noisiest at least
    ``alpha_bar(T)`` (or the trajectory's own levels where they lie beyond)."""
    return optimize_trajectory(
        trajectory,
        profile,
        gamma=gamma,
        reg_lambda=reg_lambda,
        keep_start=keep_start,
        alpha_bar_max=max(float(schedule.alpha_bar(0)), float(trajectory.alpha_bar[-1])),
        alpha_bar_min=min(float(schedule.alpha_bar_min), float(trajectory.alpha_bar[0])),
    )


def at_upper_edge(result: OptimizationResult) -> int:
    """How many of the solution's ratios sit at the upper edge of their gamma box."""
    _, _, upper = ratio_bounds(result.initial, result.gamma)
    r_opt, _, _ = ratio_bounds(result.optimized, result.gamma)
    return int(np.sum(np.isclose(r_opt, upper, rtol=1e-6, atol=0.0)))


def cpe_verdict(cpe_before: float, cpe_after: float) -> str:
    """The verdict on "VRG lowers CPE" for one configuration. CPE is computed exactly from the
    profile, so the claim is decided by whether it fell."""
    return "supported" if cpe_after < cpe_before else "contradicted"


def sweep(
    params: Params, profile: ErrorProfile, trajectories: dict[tuple[str, int], Trajectory]
) -> pd.DataFrame:
    """One row per baseline and K: CPE before, with the paper's penalty and with the start level
    held; how far the start level moved; how many ratios sit at the gamma box's upper edge."""
    sched = params.noise_schedule
    rows = []
    for (name, k), tr in trajectories.items():
        kw: dict[str, Any] = {"gamma": params.gamma, "reg_lambda": params.reg_lambda}
        pen = optimise(tr, profile, sched, keep_start=False, **kw)
        hold = optimise(tr, profile, sched, keep_start=True, **kw)
        edge = at_upper_edge(pen)
        rows.append(
            {
                "baseline": name,
                "K": k,
                "CPE before": pen.cpe_initial,
                "CPE VRG": pen.cpe_final,
                "VRG %": 100 * pen.cpe_reduction,
                "CPE VRG, start held": hold.cpe_final,
                "start held %": 100 * hold.cpe_reduction,
                "a_K before": float(tr.alpha_bar[0]),
                "a_K VRG": float(pen.optimized.alpha_bar[0]),
                "a_K moved %": 100 * pen.start_level_shift,
                "ratios at upper edge": f"{edge}/{k}",
                "corner": edge == k,
                "converged": pen.converged and hold.converged,
                "moved": pen.moved and hold.moved,
                "bound active": bool(pen.config["start_level_bound_active"]),
                "verdict": cpe_verdict(pen.cpe_initial, pen.cpe_final),
            }
        )
    return pd.DataFrame(rows)


def official_files(folder: Path, name: str, k: int) -> tuple[Path | None, Path | None]:
    """The official order-1 DPM-Solver baseline file and the official optimiser's output for a
    baseline and K, found anywhere under ``folder`` (``None`` where absent)."""
    if name not in OFFICIAL_SKIP:
        return None, None
    tag = f"1-{k:03d}-{OFFICIAL_SKIP[name]}.txt"

    def find(filename: str) -> Path | None:
        hits = sorted(folder.rglob(filename))
        return hits[0] if hits else None

    return find(f"dpm_alphaBar_{tag}"), find(f"optimized_dpm_alphaBar_{tag}")


def official_comparison(
    params: Params, profile: ErrorProfile, trajectories: dict[tuple[str, int], Trajectory]
) -> tuple[pd.DataFrame, list[float]]:
    """The exact solver, started from each official baseline file, against the official
    optimiser's output; and the largest |difference in log alpha_bar| of each official baseline
    file found from the baseline built here."""
    rows: list[dict[str, Any]] = []
    base_dlog: list[float] = []
    if not params.official_dir:
        return pd.DataFrame(rows), base_dlog
    folder = Path(params.official_dir)
    sched = params.noise_schedule
    for (name, k), tr in trajectories.items():
        base_file, opt_file = official_files(folder, name, k)
        if base_file is None:
            continue
        off_base = read_official_trajectory(base_file)
        if off_base.K != k:
            raise ValueError(f"{base_file} holds {off_base.K} steps, expected {k}")
        base_dlog.append(float(np.max(np.abs(np.log(off_base.alpha_bar / tr.alpha_bar)))))
        if opt_file is None:
            continue
        off_opt = read_official_trajectory(opt_file)
        if off_opt.K != k:
            raise ValueError(f"{opt_file} holds {off_opt.K} steps, expected {k}")
        a_k_orig = float(off_base.alpha_bar[0])
        ours = optimise(
            off_base,
            profile,
            sched,
            gamma=params.gamma,
            reg_lambda=params.reg_lambda,
            keep_start=False,
        )
        # (VRG) with w held flat beyond the profile, as the optimiser does
        cpe_off = cumulative_prediction_error(off_opt, profile, outside="clamp")
        obj_off = cpe_off + params.reg_lambda * (float(off_opt.alpha_bar[0]) - a_k_orig) ** 2
        rows.append(
            {
                "baseline": name,
                "K": k,
                "CPE official baseline file": cumulative_prediction_error(off_base, profile),
                "CPE official VRG": cpe_off,
                "CPE ours": ours.cpe_final,
                "objective official": obj_off,
                "objective ours": ours.objective_final,
                "max |Δ log a|": float(
                    np.max(np.abs(np.log(off_opt.alpha_bar / ours.optimized.alpha_bar)))
                ),
                "a_K moved % official": 100 * (float(off_opt.alpha_bar[0]) / a_k_orig - 1),
                "a_K moved % ours": 100 * ours.start_level_shift,
                "ours converged": ours.converged,
            }
        )
    return pd.DataFrame(rows), base_dlog


# ===================================================================== the chapter
@dataclass(frozen=True, eq=False)
class Result:
    """The profile, the sweep over baselines and K, and the official comparison (if any)."""

    params: Params
    profile: ErrorProfile = field(repr=False)
    source_phrase: str
    sweep: pd.DataFrame = field(repr=False)
    comparison: pd.DataFrame = field(repr=False)
    base_dlog: tuple[float, ...] = ()


def run(params: Params) -> Result:
    """Load (or measure) the profile, check it, re-optimise every baseline and K, and compare
    with the official optimiser's output where a folder of official files is given."""
    profile, phrase = load_profile(params)
    trajectories = _trajectories(params, profile)
    comparison, base_dlog = official_comparison(params, profile, trajectories)
    return Result(
        params=params,
        profile=profile,
        source_phrase=phrase,
        sweep=sweep(params, profile, trajectories),
        comparison=comparison,
        base_dlog=tuple(base_dlog),
    )


# ===================================================================== rendering
def _shown(profile: ErrorProfile) -> NDArray[np.bool_]:
    return profile.mse > 0  # the official files end with a safeguard row (alpha_bar 0, MSE 0)


def figure_profile(result: Result) -> Any:
    """The profile against alpha_bar and against the noise level sigma, with its 95% interval
    where the file carries standard errors."""
    prof = result.profile
    show = _shown(prof)
    a, w = prof.alpha_bar[show], prof.mse[show]
    sig = sigma_from_alpha_bar(a)
    c = sns.color_palette("colorblind", 1).as_hex()[0]
    fig, axes = plt.subplots(1, 2, figsize=(PAGE_WIDTH, PAGE_WIDTH / 2.4))
    axes[0].plot(a, w, color=c, lw=1.2, label=r"$w(\bar\alpha)$")
    axes[1].plot(sig, w, color=c, lw=1.2)
    if prof.mse_sem is not None:
        lo, hi = prof.mse_confidence_interval(0.95)
        lo, hi = np.maximum(lo[show], w * 1e-3), hi[show]
        axes[0].fill_between(a, lo, hi, color=c, alpha=0.2, lw=0, label="95% interval")
        axes[1].fill_between(sig, lo, hi, color=c, alpha=0.2, lw=0)
    axes[0].set(
        yscale="log",
        xlabel=r"$\bar\alpha$ (1 is clean)",
        ylabel=r"MSE per dimension $w$",
        title=r"against $\bar\alpha$",
    )
    axes[0].legend()
    axes[1].set(
        xscale="log", yscale="log", xlabel=r"noise level $\sigma$", title=r"against $\sigma$"
    )
    fig.tight_layout()
    plt.close(fig)
    return fig


def figure_sweep(result: Result) -> Any:
    """Left: CPE reduction with the paper's penalty (solid) and with the start level held
    (dashed) against K, one colour per baseline. Right: how far the penalty moves the noisiest
    level."""
    s = result.sweep
    steps = sorted(s.K.unique())
    fig, axes = plt.subplots(1, 2, figsize=(PAGE_WIDTH, PAGE_WIDTH / 2.4))
    for name, part in s.groupby("baseline", sort=False):
        c = colour(str(name))
        axes[0].plot(part.K, part["VRG %"], "o-", color=c, label=f"{name}, penalty")
        axes[0].plot(part.K, part["start held %"], "x--", color=c, label=f"{name}, start held")
        axes[1].plot(part.K, part["a_K moved %"], "o-", color=c, label=str(name))
    axes[0].set(xscale="log", xlabel="steps K", ylabel="CPE reduction (%)", title="CPE reduction")
    axes[1].axhline(0, color="gray", lw=0.8)
    axes[1].set(
        xscale="log",
        xlabel="steps K",
        ylabel=r"$\bar\alpha_K$ moved (%)",
        title="start level under the penalty",
    )
    for ax in axes:
        ax.set_xticks(steps, [str(k) for k in steps])
        ax.minorticks_off()
    fig.tight_layout()
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=3, fontsize=7)
    plt.close(fig)
    return fig


def sweep_table(result: Result) -> Any:
    """The sweep, with the verdict on "VRG lowers CPE" per configuration."""
    return styled(
        result.sweep.drop(columns="corner"),
        formats={
            "CPE before": "{:.6g}",
            "CPE VRG": "{:.6g}",
            "CPE VRG, start held": "{:.6g}",
            "VRG %": "{:.2f}",
            "start held %": "{:.2f}",
            "a_K before": "{:.4g}",
            "a_K VRG": "{:.4g}",
            "a_K moved %": "{:+.1f}",
        },
        caption=(
            f"Every baseline and K re-optimised (gamma = {result.params.gamma:g}, lambda = "
            f'{result.params.reg_lambda:g}); verdict on "VRG lowers CPE" on this profile'
        ),
    )


def comparison_table(result: Result) -> Any:
    """The exact solver against the official optimiser's output (empty without official files)."""
    frame = result.comparison
    if frame.empty:
        frame = pd.DataFrame({"official comparison": ["none in this run (see the text)"]})
    return styled(
        frame,
        formats={c: "{:.6g}" for c in frame.columns if frame[c].dtype.kind == "f"},
        caption="The exact solver, started from each official baseline file, against the "
        "official optimiser's output",
    )


# ===================================================================== the prose's numbers
@dataclass(frozen=True)
class Summary:
    """Every number and phrase the chapter's prose cites (glued by field name)."""

    source_phrase: str
    n_levels: int
    ci_sentence: str
    gamma_used: float
    lambda_used: float
    n_configs: int
    n_lowered: int
    cpe_claim_verdict: str
    med_pen: float
    range_pen: str
    med_hold: float
    range_hold: str
    med_shift: float
    max_shift: float
    gain_source: str
    corner_sentence: str
    all_converged: str
    all_moved: str
    n_bound: int
    official_sentence: str


def _ci_sentence(profile: ErrorProfile) -> str:
    if profile.mse_sem is None:
        return (
            "The file carries no standard errors, so no interval can be drawn: how precisely "
            "each level was measured is unknown to anyone who re-uses it."
        )
    show = _shown(profile)
    a, w = profile.alpha_bar[show], profile.mse[show]
    _, hi = profile.mse_confidence_interval(0.95)
    half = (hi[show] - w) / w
    worst = int(np.argmax(half))
    n = int(profile.count[0]) if profile.count is not None else 0
    return (
        f"Shaded: the 95% interval of the MSE over the {n} samples per level; its half-width is "
        f"a median {100 * np.median(half):.1f}% of the MSE and at most {100 * half[worst]:.1f}% "
        f"(at alpha_bar = {a[worst]:.3g})."
    )


def _corner_sentence(n_corner: int, n_all: int) -> str:
    if n_corner == n_all:
        return (
            "In every configuration every ratio of the penalised solution sits at the upper edge "
            "of its gamma box: the solution is the corner of the box, set by gamma rather than "
            "by the profile, and the start level moves as far as gamma allows."
        )
    if n_corner:
        return (
            f"In {n_corner} of the {n_all} configurations every ratio of the penalised solution "
            "sits at the upper edge of its gamma box: there the solution is the corner of the "
            "box, set by gamma rather than by the profile."
        )
    return (
        "In no configuration does the penalised solution sit at the corner of the gamma box "
        "(every ratio at its upper edge): the profile, not gamma alone, shapes it."
    )


def _official_sentence(result: Result) -> str:
    comp, p = result.comparison, result.params
    if not comp.empty:
        first = comp.iloc[0]
        lower = "lower" if first["objective ours"] < first["objective official"] else "higher"
        n_lower = int((comp["objective ours"] < comp["objective official"]).sum())
        text = (
            f"For {first['baseline']} with K = {first['K']}, the official baseline file scores "
            f"CPE {first['CPE official baseline file']:.7f} and the official optimiser's output "
            f"{first['CPE official VRG']:.7f}; the exact solver, from the same file, reaches CPE "
            f"{first['CPE ours']:.7f} with objective {first['objective ours']:.7f} against the "
            f"official output's {first['objective official']:.7f}, a {lower} objective. The two "
            f"optimised trajectories differ by at most {first['max |Δ log a|']:.3g} in log "
            f"alpha_bar; the official output moved alpha_bar_K by "
            f"{first['a_K moved % official']:+.0f}%, ours by {first['a_K moved % ours']:+.0f}%. "
            f"Over the {len(comp)} configuration(s) with an official output, ours reaches the "
            f"lower objective in {n_lower}."
        )
    elif p.official_dir:
        text = (
            f"The folder {Path(p.official_dir).name} holds no official optimised trajectory for "
            "these configurations, so there is nothing to compare against."
        )
    else:
        text = (
            "No official folder was given (official_dir is empty), so this run makes no "
            "comparison; the invocation at the top of this chapter makes one."
        )
    if result.base_dlog:
        text += (
            f" The baselines built here from the schedule match the {len(result.base_dlog)} "
            f"official baseline file(s) found to within {max(result.base_dlog):.2g} in log "
            "alpha_bar."
        )
    return text


def summary(result: Result) -> Summary:
    s, p = result.sweep, result.params
    med_pen, med_hold = float(s["VRG %"].median()), float(s["start held %"].median())
    return Summary(
        source_phrase=result.source_phrase,
        n_levels=int(result.profile.alpha_bar.size),
        ci_sentence=_ci_sentence(result.profile),
        gamma_used=p.gamma,
        lambda_used=p.reg_lambda,
        n_configs=int(len(s)),
        n_lowered=int((s["CPE VRG"] < s["CPE before"]).sum()),
        cpe_claim_verdict=_sweep_verdict(result),
        med_pen=med_pen,
        range_pen=f"{s['VRG %'].min():.1f} to {s['VRG %'].max():.1f}",
        med_hold=med_hold,
        range_hold=f"{s['start held %'].min():.2f} to {s['start held %'].max():.2f}",
        med_shift=float(s["a_K moved %"].median()),
        max_shift=float(s["a_K moved %"].abs().max()),
        gain_source=(
            "most of the gain comes from moving the start level, not from re-spacing the steps"
            if med_hold < 0.5 * med_pen
            else "most of the gain survives with the start level held, so it comes from "
            "re-spacing the steps"
        ),
        corner_sentence=_corner_sentence(int(s["corner"].sum()), int(len(s))),
        all_converged="yes" if s["converged"].all() else "no",
        all_moved="yes" if s["moved"].all() else "no",
        n_bound=int(s["bound active"].sum()),
        official_sentence=_official_sentence(result),
    )


def _sweep_verdict(result: Result) -> Aggregate:
    return aggregate(result.sweep["verdict"])


#: The official CIFAR-10 profile's file name in the official folder (``profile_path: official``).
_OFFICIAL_PROFILE = "MSE_vs_alpha_bar_cifar10.txt"


def _finding_model(p: Params) -> str:
    """What the profile was measured on, for the finding's ``model``: the testbed (its own
    profile), the official CIFAR-10 file, or the profile file the parameters name."""
    if not p.profile_path:
        return describe_testbed(p.model_name)
    path = Path(p.profile_path)
    official = official_reference_dir()
    if official is not None and path.resolve() == (official / _OFFICIAL_PROFILE).resolve():
        return f"official CIFAR-10 error profile ({path.name}, the VRG authors' published file)"
    return f"error profile file {path.name} (profile_path {p.profile_path})"


def _finding_size(result: Result) -> str:
    """The evidence's size, for the finding's ``size``: the profile's rows and levels, the
    baselines and step counts (exact CPE, no sampling) and the parameter set."""
    p = result.params
    levels = len(result.profile.alpha_bar)
    profile = (
        f"Algorithm 1 on {p.n_samples} training samples at {levels} levels (seed {p.seed})"
        if not p.profile_path
        else f"a profile of {levels} levels"
    )
    return size_text(
        p,
        CHAPTER,
        steps=p.steps,
        detail=f"{profile}; exact CPE of {len(p.baselines)} baselines, no sampling",
    )


def findings(result: Result) -> list[Finding]:
    """The chapter's finding for the claims page (the claim "VRG lowers CPE")."""
    s, p = result.sweep, result.params
    lowered = int((s["CPE VRG"] < s["CPE before"]).sum())
    return [
        Finding(
            claim="cpe-reduction",
            chapter=CHAPTER,
            finding=(
                f"On {result.source_phrase}: VRG (gamma {p.gamma:g}, lambda {p.reg_lambda:g}) "
                f"lowers CPE in {lowered} of {len(s)} baseline x K configurations; median "
                f"reduction {s['VRG %'].median():.1f}% (with the start level held: "
                f"{s['start held %'].median():.1f}%)"
            ),
            value=float(s["VRG %"].median()),
            ci_low=float("nan"),
            ci_high=float("nan"),
            verdict=_sweep_verdict(result),
            seeds=str(p.seed),
            model=_finding_model(p),
            size=_finding_size(result),
        )
    ]
