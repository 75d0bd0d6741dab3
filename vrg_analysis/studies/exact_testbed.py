"""The chapter "VRG on an exact testbed": what VRG predicts against what happens, exactly.

On a Gaussian mixture the optimal predictor ``eps*``, the density and the probability-flow ODE are
known in closed form. The model that samples is ``eps*`` plus a planted error of known size
(:class:`~vrg_analysis.models.analytic.PlantedErrorModel`, its (P1)-(P2)): per-dimension variance
``planted_size`` times the irreducible spread at each level (``"relative"``) or ``planted_size^2``
(``"constant"``). Everything runs through the one comparison engine
(:func:`~vrg_analysis.studies.engine.run_comparison`, ``predictor="planted"``):

1. **Algorithm 1** profiles the planted model, ``w(a) = E||eps_hat - eps||^2 / d``, and, with the
   same training rows and the same draws of ``eps`` (``spread=True``), ``eps*``: the irreducible
   spread. By (P2) their difference is the model's own error, shown beside the planted truth
   ``std(a)^2`` (:func:`planted_truth`). The seed picks the training rows, the draws of Algorithm 1,
   the starting noise and the planted-noise stream (``profile_per_seed=True``).
2. VRG re-times every baseline trajectory, minimising the paper's objective
   ``L = CPE + lambda (a_K - a_K_orig)^2`` with ``CPE = sum_k (sigma_k - sigma_{k-1})^2 w(a_k)``
   (Eq. 10; :mod:`vrg_analysis.vrg.objective`, (VRG)) inside the gamma box, and, as a control,
   with the start level held (``keep_start=True``).
3. DDIM samples every trajectory from the **same** ``x_T``, planted-noise stream and number of
   model calls ``K``. Against the exact ODE solved from that ``x_T`` at the trajectory's own start
   level (``exact_reference``), the per-sample error ``||x_K - x_ref||^2 / d`` (``exact_error``)
   splits (``decompose``) into the discretisation error (the same run with ``eps*``) and the
   propagated model error ``||x_K - x_K(eps*)||^2 / d``, which CPE under the model's own error
   (``cpe_model_error``) predicts.
4. Exact sample quality: the log-likelihood gap to true data, the Frechet distance to the exact
   moments and the mode total variation (:func:`~vrg_analysis.evaluation.metrics.
   mixture_sample_quality`).

Verdicts: the claim "VRG lowers the error against the exact ODE" is judged per baseline, ``K`` and
arm by the engine's paired comparison (paired bootstrap interval, paired t test) and the book's
rule, Holm over the table (:func:`~vrg_analysis.studies.engine.judge`).

:func:`planted_config`, :func:`seed_rows` and :func:`summarise_over_seeds` are shared with the
chapter "When does VRG help?" (:mod:`vrg_analysis.studies.when_vrg_helps`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from numpy.typing import ArrayLike, NDArray

from vrg_analysis.core.profile import ErrorProfile
from vrg_analysis.core.schedules import sigma_from_alpha_bar
from vrg_analysis.core.trajectories import BASELINES
from vrg_analysis.evaluation.metrics import mixture_reference, mixture_sample_quality
from vrg_analysis.evaluation.stats import (
    Correction,
    decide_family,
    one_sample_t,
    rank_correlation,
    t_interval,
)
from vrg_analysis.models.analytic import PlantedErrorModel
from vrg_analysis.params import as_choice, as_float, as_int, as_tuple
from vrg_analysis.report import MAX_COLUMNS, PAGE_WIDTH, colour, styled
from vrg_analysis.studies.engine import (
    PLANTED_ERRORS,
    ComparisonConfig,
    ComparisonResult,
    judge,
    paired_comparison,
    profiles_for,
    run_comparison,
)
from vrg_analysis.testbeds import make_testbed
from vrg_analysis.vrg.retime import VRGSetting

__all__ = [
    "VARIANTS",
    "VARIANT_NAMES",
    "Params",
    "PlantedProfiles",
    "Result",
    "Summary",
    "planted_config",
    "vrg_arms",
    "variant_names",
    "planted_model",
    "planted_truth",
    "planted_profiles",
    "seed_rows",
    "seed_interval",
    "summarise_over_seeds",
    "judge_column",
    "run",
    "cpe_table",
    "paired_table",
    "quality_table",
    "figure_profile",
    "figure_predicted_vs_measured",
    "figure_endpoint",
    "figure_samples",
    "summary",
    "panel_grid",
    # deprecated names (see the end of the module)
]

CHAPTER = "vrg_on_exact_testbed"
FloatArray = NDArray[np.float64]
#: The arms of the exact-testbed chapters, short names in run order.
VARIANTS: tuple[str, ...] = ("baseline", "vrg", "vrg_keep_start")
VARIANT_NAMES: dict[str, str] = {
    "baseline": "baseline",
    "vrg": "VRG",
    "vrg_keep_start": "VRG, keep start",
}
#: The per-sample metric behind the verdicts: the error against the exact probability-flow ODE.
ERROR_METRIC = "exact_error"


def vrg_arms(gamma: float, reg_lambda: float) -> tuple[VRGSetting, VRGSetting]:
    """VRG with the paper's start-level penalty, and the same with the start level held."""
    return VRGSetting(gamma, reg_lambda), VRGSetting(gamma, reg_lambda, keep_start=True)


def planted_config(
    *,
    testbed: str,
    baselines: Sequence[str],
    steps: Sequence[int],
    seeds: Sequence[int],
    n_samples: int,
    planted_error: str,
    planted_size: float,
    n_train: int,
    profile_stride: int,
    gamma: float,
    reg_lambda: float,
    planted_correlation: float = 0.0,
) -> ComparisonConfig:
    """The engine configuration of one planted-error setting: DDIM on ``eps*`` plus the planted
    error, both VRG arms, exact references with the discretisation / propagated split, the
    reference predictor profiled too (``spread``) and Algorithm 1 rerun per seed."""
    return ComparisonConfig(
        testbed=testbed,
        samplers=("ddim",),
        baselines=tuple(baselines),
        steps=tuple(steps),
        seeds=tuple(seeds),
        n_samples=n_samples,
        arms=vrg_arms(gamma, reg_lambda),
        predictor="planted",
        planted_error=planted_error,
        planted_size=planted_size,
        planted_correlation=planted_correlation,
        reference_steps=0,
        exact_reference=True,
        decompose=True,
        spread=True,
        profile_stride=profile_stride,
        profile_samples=n_train,
        profile_per_seed=True,
    )


def variant_names(result: ComparisonResult) -> dict[str, str]:
    """``{engine variant label: short name}`` (``"baseline"``, ``"vrg"``, ``"vrg_keep_start"``)."""
    out = {"baseline": "baseline"}
    for arm in result.config.arms:
        out[arm.label] = "vrg_keep_start" if getattr(arm, "keep_start", False) else "vrg"
    return out


@dataclass(frozen=True)
class Params:
    """The chapter's parameters (the notebook's ``parameters`` cell; CI-sized defaults)."""

    testbed: str = "mixture-2d"
    baselines: tuple[str, ...] = ("time_uniform", "time_quadratic", "logsnr_uniform")
    steps: tuple[int, ...] = (5, 10, 20)
    planted_error: str = "relative"
    planted_size: float = 0.25
    n_train: int = 512
    profile_stride: int = 10
    n_samples: int = 256
    gamma: float = 0.01
    reg_lambda: float = 100.0
    seed: int = 0
    n_boot: int = 200

    def __post_init__(self) -> None:
        s = object.__setattr__
        s(self, "baselines", as_tuple(self.baselines, "baselines", str, choices=BASELINES))
        s(self, "steps", tuple(sorted(set(as_tuple(self.steps, "steps", int)))))
        if min(self.steps) < 1:
            raise ValueError(f"parameter steps must be positive integers, got {list(self.steps)}")
        s(self, "planted_error", as_choice(self.planted_error, "planted_error", PLANTED_ERRORS))
        s(self, "planted_size", as_float(self.planted_size, "planted_size", minimum=0.0))
        for name, least in (("n_train", 2), ("profile_stride", 1), ("n_samples", 2)):
            s(self, name, as_int(getattr(self, name), name, minimum=least))
        s(self, "n_boot", as_int(self.n_boot, "n_boot", minimum=20))
        s(self, "gamma", as_float(self.gamma, "gamma", minimum=0.0, maximum=1.0, open_high=True))
        s(self, "reg_lambda", as_float(self.reg_lambda, "reg_lambda", minimum=0.0))
        s(self, "seed", as_int(self.seed, "seed", minimum=0))

    def config(self) -> ComparisonConfig:
        return planted_config(
            testbed=self.testbed,
            baselines=self.baselines,
            steps=self.steps,
            seeds=(self.seed,),
            n_samples=self.n_samples,
            planted_error=self.planted_error,
            planted_size=self.planted_size,
            n_train=self.n_train,
            profile_stride=self.profile_stride,
            gamma=self.gamma,
            reg_lambda=self.reg_lambda,
        )


# ===================================================================== profiles
def planted_model(
    testbed: str, planted_error: str, planted_size: float, spread: ErrorProfile, seed: int = 0
) -> PlantedErrorModel:
    """The planted model the engine samples with: ``eps*`` of ``testbed`` plus an error of
    standard deviation ``sqrt(planted_size * spread(a))`` (``"relative"``, ``spread`` the profiled
    irreducible spread) or ``planted_size`` (``"constant"``), (P1) with noise seed ``seed``."""
    if planted_error not in PLANTED_ERRORS:
        raise ValueError(f"planted_error must be one of {PLANTED_ERRORS}, got {planted_error!r}")
    std: Any = planted_size
    if planted_error == "relative":

        def std(a: FloatArray) -> FloatArray:
            return np.sqrt(planted_size * spread.w(a, outside="clamp"))

    return PlantedErrorModel(make_testbed(testbed).oracle, std=std, seed=seed)


def planted_truth(
    testbed: str, planted_error: str, planted_size: float, spread: ErrorProfile
) -> FloatArray:
    """The planted model's own error per dimension at the profile's levels, ``std(a)^2`` of (P2)
    (:meth:`PlantedErrorModel.known_error_variance`): the truth that the paired difference of the
    profiles estimates."""
    model = planted_model(testbed, planted_error, planted_size, spread)
    return model.known_error_variance(spread.alpha_bar)


def _model_error(profile: ErrorProfile, spread: ErrorProfile) -> ErrorProfile:
    """The model's own error: the profile minus the spread with the same draws (P2), floored at 0
    (the engine's ``cpe_model_error`` is CPE under this profile)."""
    return ErrorProfile(
        alpha_bar=profile.alpha_bar,
        mse=np.maximum(profile.mse - spread.mse, 0.0),
        metadata={"model": "planted minus eps* (paired draws)"},
    )


@dataclass(frozen=True, eq=False)
class PlantedProfiles:
    """Algorithm 1 on the planted model and on ``eps*`` with the same draws (step 1), the model's
    own error (their difference), the planted truth and the planted model itself."""

    model: PlantedErrorModel
    profile: ErrorProfile
    spread_profile: ErrorProfile
    model_error_profile: ErrorProfile
    planted_error_variance: FloatArray


def _planted_profiles(result: ComparisonResult, params: Params) -> PlantedProfiles:
    seed = params.seed
    profile, spread = result.profiles[seed], result.spread_profiles[seed]
    model = planted_model(params.testbed, params.planted_error, params.planted_size, spread, seed)
    return PlantedProfiles(
        model=model,
        profile=profile,
        spread_profile=spread,
        model_error_profile=_model_error(profile, spread),
        planted_error_variance=model.known_error_variance(spread.alpha_bar),
    )


def planted_profiles(params: Params | None = None) -> PlantedProfiles:
    """Step 1 alone: the profiles the chapter's run uses (the engine's Algorithm 1 for the
    params' seed, :func:`~vrg_analysis.studies.engine.profiles_for`, from the same cache)."""
    p = params or Params()
    cfg = p.config()
    profile, spread, _ = profiles_for(cfg, p.seed if cfg.profile_per_seed else None)
    assert spread is not None  # the chapter's config profiles the reference predictor
    model = planted_model(p.testbed, p.planted_error, p.planted_size, spread, p.seed)
    return PlantedProfiles(
        model=model,
        profile=profile,
        spread_profile=spread,
        model_error_profile=_model_error(profile, spread),
        planted_error_variance=model.known_error_variance(spread.alpha_bar),
    )


# ===================================================================== per-seed rows
def seed_interval(x: ArrayLike) -> tuple[float, float, float]:
    """``(mean, low, high)``: the 95% Student-t interval of the mean over seeds
    (:func:`~vrg_analysis.evaluation.stats.t_interval`); NaN where a value is not finite."""
    v = np.asarray(x, dtype=np.float64)
    if v.size < 2 or not np.all(np.isfinite(v)):
        return (float(v.mean()) if v.size else math.nan), math.nan, math.nan
    iv = t_interval(v)
    return iv.estimate, iv.low, iv.high


def seed_rows(result: ComparisonResult, ll_reference: float = 0.0) -> pd.DataFrame:
    """One row per seed, baseline, ``K`` and VRG arm: the arm's and its baseline's mean errors
    (``endpoint``: against the exact ODE; ``disc``: discretisation; ``prop``: propagated model
    error), CPE under the profile (``cpe``) and under the model's own error (``cpe_me``), the
    Frechet distance to the exact moments, the log-likelihood gap (mean exact log-likelihood minus
    ``ll_reference``), the optimiser's report, how far the least noisy level moved (``last_move``,
    %), whether this seed's own paired 95% t interval over its samples of the error difference lies
    below (``seed_better``) or above (``seed_worse``) 0, and the relative changes (%), VRG against
    the baseline of the same seed: ``benefit`` (endpoint error), ``disc_change``, ``prop_change``,
    ``cpe_change``, ``frechet_change``, and ``llgap_change`` (difference), with the regime
    ``ratio = prop_base / disc_base``."""
    names = variant_names(result)
    rows = []
    for sampler, b, k in result.configurations():
        for seed in result.config.seeds:
            base = result.arm(sampler, b, k, "baseline", seed)
            for label in result.config.arm_labels:
                arm = result.arm(sampler, b, k, label, seed)
                d = arm.per_sample[ERROR_METRIC] - base.per_sample[ERROR_METRIC]
                iv = t_interval(d)
                info = arm.optimisation
                row = {"seed": seed, "baseline": b, "K": k, "variant": names[label]}
                for tag, a in (("_base", base), ("", arm)):
                    row.update(
                        {
                            f"endpoint{tag}": float(a.per_sample[ERROR_METRIC].mean()),
                            f"disc{tag}": float(a.per_sample["discretisation_error"].mean()),
                            f"prop{tag}": float(a.per_sample["propagated_error"].mean()),
                            f"cpe{tag}": a.cpe,
                            f"cpe_me{tag}": a.cpe_model_error,
                            f"frechet{tag}": a.set_value,
                            f"llgap{tag}": float(a.per_sample["log_likelihood"].mean())
                            - ll_reference,
                        }
                    )
                row.update(
                    {
                        "nfe": arm.nfe,
                        "seed_better": iv.high < 0.0,
                        "seed_worse": iv.low > 0.0,
                        "start_shift": float(info.get("start_shift", math.nan)),
                        "last_move": 100.0 * (arm.alpha_bar[-1] / base.alpha_bar[-1] - 1.0),
                        "moved": bool(info.get("moved", False)),
                        "converged": bool(info.get("converged", False)),
                    }
                )
                rows.append(row)
    runs = pd.DataFrame(rows)
    with np.errstate(divide="ignore", invalid="ignore"):
        runs["benefit"] = 100 * (runs.endpoint / runs.endpoint_base - 1)
        runs["disc_change"] = 100 * (runs.disc / runs.disc_base - 1)
        runs["prop_change"] = 100 * (runs.prop / runs.prop_base - 1)
        runs["cpe_change"] = 100 * (runs.cpe / runs.cpe_base - 1)
        runs["frechet_change"] = 100 * (runs.frechet / runs.frechet_base - 1)
        runs["llgap_change"] = runs.llgap - runs.llgap_base
        runs["ratio"] = runs.prop_base / runs.disc_base
    return runs.replace([np.inf, -np.inf], np.nan)


def summarise_over_seeds(
    runs: pd.DataFrame, keys: Sequence[str], columns: Sequence[str]
) -> pd.DataFrame:
    """Per group of ``keys``: for every column its mean over seeds with the 95% Student-t interval
    (``col``, ``col_lo``, ``col_hi``) and the two-sided p-value of the one-sample t test of "mean
    0" over seeds (``col_p``, NaN where not finite); the mean ``ratio`` and the counts of seeds
    better / worse on their own (:func:`seed_rows`)."""
    out = []
    for key, g in runs.groupby(list(keys), sort=True):
        row: dict[str, Any] = dict(zip(keys, key, strict=True))
        for col in columns:
            v = g[col].to_numpy(dtype=np.float64)
            m, lo, hi = seed_interval(v)
            ok = v.size >= 2 and np.all(np.isfinite(v))
            p = one_sample_t(v)[1] if ok else math.nan
            row.update({col: m, f"{col}_lo": lo, f"{col}_hi": hi, f"{col}_p": p})
        if "ratio" in g:
            row["ratio"] = float(g["ratio"].mean())
        row["n_seeds"] = len(g)
        if "seed_better" in g:
            row["seeds_better"] = int(g["seed_better"].sum())
            row["seeds_worse"] = int(g["seed_worse"].sum())
        out.append(row)
    return pd.DataFrame(out)


def judge_column(
    table: pd.DataFrame,
    column: str,
    *,
    better_sign: int = -1,
    correction: Correction = "holm",
    prefix: str = "",
) -> pd.DataFrame:
    """``table`` with the verdict on "VRG improves ``column``" in every row, the p-values of
    :func:`summarise_over_seeds` corrected together over the table (Holm by default;
    :func:`~vrg_analysis.evaluation.stats.decide_family`): columns ``{prefix}p_adj`` and
    ``{prefix}verdict``."""
    adj, decisions = decide_family(
        table[column].to_numpy(dtype=np.float64),
        table[f"{column}_p"].to_numpy(dtype=np.float64),
        claim="better",
        correction=correction,
        better_sign=better_sign,
    )
    return table.assign(
        **{f"{prefix}p_adj": adj, f"{prefix}verdict": [d.verdict for d in decisions]}
    )


# ===================================================================== the chapter's run
@dataclass(frozen=True, eq=False)
class Result:
    """The chapter's engine run and what it shows: per-arm rows (``arms``: one per baseline, K
    and variant, with per-sample t intervals), the judged paired table, the profiles, exact sample
    quality and true samples for the picture."""

    params: Params
    comparison: ComparisonResult
    arms: pd.DataFrame = field(repr=False)
    paired: pd.DataFrame = field(repr=False)
    quality: pd.DataFrame = field(repr=False)
    profiles: PlantedProfiles
    true_samples: FloatArray = field(repr=False)

    def samples(self, baseline_name: str, k: int, variant: str) -> FloatArray:
        """The samples of one arm (2-D mixture: the sample set itself)."""
        labels = {v: k_ for k_, v in variant_names(self.comparison).items()}
        return self.comparison.arm(
            "ddim", baseline_name, k, labels[variant], self.params.seed
        ).features


def _arm_rows(result: ComparisonResult) -> pd.DataFrame:
    names = variant_names(result)
    rows = []
    for sampler, b, k in result.configurations():
        for label in result.variants():
            arms = [result.arm(sampler, b, k, label, s) for s in result.config.seeds]
            row: dict[str, Any] = {
                "baseline": b,
                "K": k,
                "variant": names[label],
                "nfe": arms[0].nfe,
                "alpha_bar_T": float(arms[0].alpha_bar[0]),
                "cpe_profiled": float(np.mean([a.cpe for a in arms])),
                "cpe_model_error": float(np.mean([a.cpe_model_error for a in arms])),
            }
            for metric, col in (
                (ERROR_METRIC, "endpoint_mse"),
                ("discretisation_error", "discretisation_mse"),
                ("propagated_error", "propagated_mse"),
            ):
                iv = t_interval(np.concatenate([a.per_sample[metric] for a in arms]))
                row.update({col: iv.estimate, f"{col}_lo": iv.low, f"{col}_hi": iv.high})
            for key in ("converged", "moved", "start_shift", "cpe_reduction"):
                row[f"opt_{key}"] = arms[0].optimisation.get(key, math.nan)
            rows.append(row)
    return pd.DataFrame(rows)


def _quality_rows(result: ComparisonResult, testbed: str, seed: int) -> pd.DataFrame:
    mix = make_testbed(testbed).mixture
    ref = mixture_reference(mix)
    names = variant_names(result)
    rows = []
    for sampler, b, k in result.configurations():
        for label in result.variants():
            q = mixture_sample_quality(
                result.arm(sampler, b, k, label, seed).features, mix, reference=ref
            )
            rows.append(
                {
                    "baseline": b,
                    "K": k,
                    "variant": names[label],
                    "frechet": q.frechet,
                    "log_likelihood_gap": q.log_likelihood_gap,
                    "mode_tv": q.mode_tv,
                }
            )
    return pd.DataFrame(rows)


def _paired_rows(result: ComparisonResult, n_boot: int) -> pd.DataFrame:
    names = variant_names(result)
    comps = judge(
        [
            paired_comparison(result, s, b, k, label, ERROR_METRIC, n_boot=n_boot)
            for s, b, k in result.configurations()
            for label in result.config.arm_labels
        ]
    )
    return pd.DataFrame(
        [
            {
                "baseline": c.baseline,
                "K": c.K,
                "variant": names[c.variant],
                "baseline endpoint MSE": c.base_value,
                "difference": c.delta,
                "ci_low": c.ci_low,
                "ci_high": c.ci_high,
                "relative change %": 100 * c.relative,
                "p": c.p_value,
                "p (Holm)": c.p_adjusted,
                "verdict": c.verdict,
            }
            for c in comps
        ]
    )


def run(params: Params | None = None, *, progress: bool = False) -> Result:
    """Run the chapter (one engine run) and everything its tables and figures show."""
    p = params or Params()
    res = run_comparison(p.config(), progress=progress)
    mix = make_testbed(p.testbed).mixture
    true, _ = mix.sample(p.n_samples, torch.Generator().manual_seed(p.seed + 4))
    return Result(
        params=p,
        comparison=res,
        arms=_arm_rows(res),
        paired=_paired_rows(res, p.n_boot),
        quality=_quality_rows(res, p.testbed, p.seed),
        profiles=_planted_profiles(res, p),
        true_samples=true.numpy(),
    )


# ===================================================================== tables
def cpe_table(result: Result) -> Any:
    """CPE before and after VRG (and with the start level held) per baseline and K, the
    reductions and how far VRG moved the start level."""
    df = result.arms
    piv = df.pivot_table(index=["baseline", "K"], columns="variant", values="cpe_profiled")
    shift = df[df.variant == "vrg"].set_index(["baseline", "K"])["opt_start_shift"]
    t = pd.DataFrame(
        {
            "CPE baseline": piv["baseline"],
            "CPE VRG": piv["vrg"],
            "CPE VRG (keep start)": piv["vrg_keep_start"],
            "CPE reduction VRG %": 100 * (1 - piv["vrg"] / piv["baseline"]),
            "CPE reduction keep-start %": 100 * (1 - piv["vrg_keep_start"] / piv["baseline"]),
            "start level moved %": 100 * shift.astype(float),
        }
    ).reset_index()
    return styled(
        t,
        formats={c: "{:.4f}" for c in t.columns if c not in ("baseline", "K")},
        caption="Predicted CPE per baseline and K (profiled w of the planted model)",
    )


def paired_table(result: Result) -> Any:
    """The paired differences of the error against the exact ODE, arm minus baseline, with the
    engine's paired bootstrap interval and the verdict on "the arm lowers the error" (Holm over
    the table)."""
    t = result.paired.copy()
    t["variant"] = t.variant.map(VARIANT_NAMES)
    t["95% interval"] = [f"[{a:+.5f}, {b:+.5f}]" for a, b in zip(t.ci_low, t.ci_high, strict=True)]
    cols = [
        "baseline",
        "K",
        "variant",
        "baseline endpoint MSE",
        "difference",
        "95% interval",
        "relative change %",
        "p (Holm)",
        "verdict",
    ]
    return styled(
        t[cols],
        formats={
            "baseline endpoint MSE": "{:.5f}",
            "difference": "{:+.5f}",
            "relative change %": "{:+.2f}",
            "p (Holm)": "{:.2g}",
        },
        caption=(
            f"Claim: the arm lowers the error against the exact ODE ({result.params.testbed}, "
            f"planted {result.params.planted_error} error of size {result.params.planted_size:g},"
            f" DDIM, seed {result.params.seed}, {result.params.n_samples} samples)"
        ),
    )


def quality_table(result: Result) -> Any:
    """Exact sample quality per baseline, K and variant."""
    q = result.quality.copy()
    q["variant"] = q.variant.map(VARIANT_NAMES)
    wide = q.pivot_table(
        index=["baseline", "K"],
        columns="variant",
        values=["frechet", "log_likelihood_gap", "mode_tv"],
    )
    names = {"frechet": "Frechet", "log_likelihood_gap": "log-lik. gap", "mode_tv": "mode TV"}
    wide.columns = [f"{names[m]} ({v})" for m, v in wide.columns]
    wide = wide.reset_index()
    return styled(
        wide,
        formats={c: "{:.4f}" for c in wide.columns if c not in ("baseline", "K")},
        caption="Exact sample quality (log-likelihood gap: 0 is perfect; Frechet distance to the "
        "exact moments and mode total variation: lower is better)",
    )


# ===================================================================== figures
def panel_grid(n: int, *, height: float = 2.6, sharey: bool = True) -> tuple[Any, list[Any]]:
    """A figure of ``n`` panels wrapped at the book's three a row; returns it and the used axes
    (the unused ones are removed)."""
    cols = max(1, min(n, MAX_COLUMNS))
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(PAGE_WIDTH, height * rows + 0.6), sharey=sharey, squeeze=False
    )
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.remove()
    return fig, flat[:n]


def figure_profile(result: Result) -> Any:
    """Algorithm 1 on the planted model (95% band from the profile's standard errors), the
    irreducible spread, their difference and the planted truth, against the noise level."""
    pp = result.profiles
    p, sp, me = pp.profile, pp.spread_profile, pp.model_error_profile
    sigma = sigma_from_alpha_bar(p.alpha_bar)
    fig, ax = plt.subplots(figsize=(PAGE_WIDTH * 0.8, 3.6))
    pal = sns.color_palette("colorblind")
    if p.mse_sem is not None:
        lo, hi = p.mse_confidence_interval(0.95)
        ax.fill_between(sigma, np.clip(lo, 1e-12, None), hi, color=pal[0], alpha=0.25, lw=0)
    ax.plot(sigma, p.mse, color=pal[0], label=r"profiled MSE $w$ (planted model)")
    ax.plot(sigma, sp.mse, "--", color=pal[1], label=r"irreducible spread ($\epsilon^*$)")
    ax.plot(sigma, me.mse, color=pal[2], label="model's own error (difference)")
    ax.plot(sigma, pp.planted_error_variance, "k:", label="planted error (truth)")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel=r"noise level $\sigma$",
        ylabel="MSE per dimension",
        title="Algorithm 1 on the planted model",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def figure_predicted_vs_measured(result: Result) -> Any:
    """Measured propagated model error (95% t interval over the samples) against CPE with the
    profiled ``w`` and with the model's own error; one point per trajectory, equality dashed."""
    df = result.arms
    fig, axes = panel_grid(2, height=3.4)
    markers = dict(zip(result.params.baselines, "osD^v", strict=False))
    for ax, col, title in (
        (axes[0], "cpe_profiled", "CPE with profiled $w$"),
        (axes[1], "cpe_model_error", "CPE with the model's own error"),
    ):
        for name, g in df.groupby("baseline", sort=False):
            ax.errorbar(
                g[col],
                g["propagated_mse"],
                yerr=np.clip(
                    [
                        g.propagated_mse - g.propagated_mse_lo,
                        g.propagated_mse_hi - g.propagated_mse,
                    ],
                    0,
                    None,
                ),
                fmt=markers.get(name, "o"),
                color=colour(name),
                label=name,
                alpha=0.85,
                capsize=2,
            )
        lim = [
            min(df[col].min(), df["propagated_mse"].min()) * 0.8,
            max(df[col].max(), df["propagated_mse"].max()) * 1.2,
        ]
        ax.plot(lim, lim, "k--", lw=1)
        ax.set(xscale="log", yscale="log", xlabel=f"{title} (MSE per dim.)", title=title)
        ax.xaxis.set_minor_formatter(plt.NullFormatter())
    axes[0].set_ylabel("measured propagated error\n(MSE per dim.)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def figure_endpoint(result: Result) -> Any:
    """The error against the exact ODE endpoint per variant against K, one panel per baseline
    (95% t intervals over the samples)."""
    df = result.arms
    steps = list(result.params.steps)
    fig, axes = panel_grid(len(result.params.baselines), height=2.8)
    for ax, name in zip(axes, result.params.baselines, strict=True):
        g = df[df.baseline == name]
        for i, variant in enumerate(VARIANTS):
            h = g[g.variant == variant].sort_values("K")
            label = (
                "baseline" if variant == "baseline" else result.comparison.config.arm_labels[i - 1]
            )
            ax.errorbar(
                h["K"] * (1 + 0.04 * (i - 1)),
                h["endpoint_mse"],
                yerr=np.clip(
                    [h.endpoint_mse - h.endpoint_mse_lo, h.endpoint_mse_hi - h.endpoint_mse],
                    0,
                    None,
                ),
                fmt="o-",
                capsize=3,
                color=colour(label),
                label=VARIANT_NAMES[variant],
            )
        ax.set(xscale="log", yscale="log", xlabel="K (model calls)", title=name)
        ax.set_xticks(steps, [str(k) for k in steps])
        ax.xaxis.set_minor_formatter(plt.NullFormatter())
    axes[0].set_ylabel("endpoint MSE vs exact ODE\n(per dim.)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def figure_samples(result: Result) -> Any:
    """True data, and the baseline's and VRG's samples from the same ``x_T`` at the fewest steps
    on the first baseline."""
    k = min(result.params.steps)
    name = result.params.baselines[0]
    panels = [
        ("true data", result.true_samples),
        (f"{name}, K={k}", result.samples(name, k, "baseline")),
        (f"VRG({name}), K={k}", result.samples(name, k, "vrg")),
    ]
    fig, axes = panel_grid(3, height=2.8)
    for ax, (title, x) in zip(axes, panels, strict=True):
        x = np.asarray(x)
        ax.scatter(x[:, 0], x[:, 1], s=4, alpha=0.6, color=colour("baseline"))
        ax.set(title=title, aspect="equal", xlabel="$x_1$")
    axes[0].set_ylabel("$x_2$")
    fig.tight_layout()
    return fig


# ===================================================================== the prose's numbers
@dataclass(frozen=True)
class Summary:
    """Every number the chapter's prose cites (glued by field name)."""

    testbed: str
    planted_error: str
    planted_size: float
    n_samples: int
    seed_used: int
    gamma: float
    reg_lambda: float
    spread_share: float
    median_cpe_reduction: float
    median_cpe_reduction_keep: float
    median_start_shift: float
    spearman_rho: float
    spearman_p: float
    ratio_measured_predicted: float
    ratio_measured_profiled: float
    n_configs: int
    n_supported: int
    n_contradicted: int
    n_inconclusive: int
    n_supported_keep: int
    n_contradicted_keep: int
    n_inconclusive_keep: int
    median_rel_change: float
    best_rel_change: float
    worst_rel_change: float


def summary(result: Result) -> Summary:
    p = result.params
    pp = result.profiles
    df = result.arms
    piv = df.pivot_table(index=["baseline", "K"], columns="variant", values="cpe_profiled")
    red = 100 * (1 - piv["vrg"] / piv["baseline"])
    red_keep = 100 * (1 - piv["vrg_keep_start"] / piv["baseline"])
    shift = 100 * df[df.variant == "vrg"]["opt_start_shift"].astype(float)
    corr = rank_correlation(df["cpe_model_error"], df["propagated_mse"])
    vrg = result.paired[result.paired.variant == "vrg"]
    keep = result.paired[result.paired.variant == "vrg_keep_start"]
    return Summary(
        testbed=p.testbed,
        planted_error=p.planted_error,
        planted_size=p.planted_size,
        n_samples=p.n_samples,
        seed_used=p.seed,
        gamma=p.gamma,
        reg_lambda=p.reg_lambda,
        spread_share=100 * float(np.mean(pp.spread_profile.mse / pp.profile.mse)),
        median_cpe_reduction=float(red.median()),
        median_cpe_reduction_keep=float(red_keep.median()),
        median_start_shift=float(shift.median()),
        spearman_rho=corr.rho,
        spearman_p=corr.p,
        ratio_measured_predicted=float((df.propagated_mse / df.cpe_model_error).median()),
        ratio_measured_profiled=float((df.propagated_mse / df.cpe_profiled).median()),
        n_configs=int(len(vrg)),
        n_supported=int((vrg.verdict == "supported").sum()),
        n_contradicted=int((vrg.verdict == "contradicted").sum()),
        n_inconclusive=int((vrg.verdict == "inconclusive").sum()),
        n_supported_keep=int((keep.verdict == "supported").sum()),
        n_contradicted_keep=int((keep.verdict == "contradicted").sum()),
        n_inconclusive_keep=int((keep.verdict == "inconclusive").sum()),
        median_rel_change=float(vrg["relative change %"].median()),
        best_rel_change=float(vrg["relative change %"].min()),
        worst_rel_change=float(vrg["relative change %"].max()),
    )
