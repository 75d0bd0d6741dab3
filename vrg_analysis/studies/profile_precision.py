"""How many profiling samples are enough? The spread of the profile, of VRG's trajectory and of
the FID change when Algorithm 1 sees fewer rows.

VRG is only as good as the profile ``w(a)`` it optimises (Algorithm 1: the per-level mean squared
noise-prediction error over training rows). The paper profiles every training image; a user with
a large model will want fewer. This chapter reruns Algorithm 1 on ``repeats`` independent draws of
``N`` training rows (other rows, other noise) for each size ``N`` in ``sizes`` and follows each
profile through VRG to the samples:

* **the profile**: the relative error of ``w`` per level against a *reference* profile on
  ``reference_rows`` rows (the engine's own profile in the comparison below);
* **the trajectory**: VRG on each profile (by default at the paper's ablation setting, gamma =
  0.1 and lambda = 1e4: with the published gamma = 0.01 the box leaves every ratio so little room
  that the trajectory hardly depends on the profile), and the largest shift of any of its levels
  from the reference-profile VRG trajectory, in log-SNR;
* **the FID change**: every profile's VRG trajectory is an arm (:class:`ProfiledVRG`) of one paired
  comparison (:mod:`vrg_analysis.studies.engine`): the same starting noise and model calls as the
  baseline and as VRG on the reference profile.

**Verdict per size** on "N rows are enough": each draw's FID is set against VRG on the reference
profile (paired, the engine's :func:`~vrg_analysis.studies.engine.paired_comparison` with
``reference``), judged under the book's rule (:func:`~vrg_analysis.evaluation.stats.decide`,
``claim="within"``) with the tolerance ``fid_tolerance`` x the baseline's FID: *supported* when
the difference's interval lies inside the tolerance, *contradicted* when the test of no
difference rejects (Holm over every draw of every size) and a minimum-effect test
(:func:`~vrg_analysis.assumptions.verdicts.beyond_pvalue`, same correction) shows it beyond;
*inconclusive* otherwise. A size is enough when every draw is
(:func:`~vrg_analysis.evaluation.stats.aggregate` as a conjunction).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from vrg_analysis.assumptions.verdicts import beyond_pvalue
from vrg_analysis.core.cpe import cumulative_prediction_error
from vrg_analysis.core.profile import ErrorProfile
from vrg_analysis.core.trajectories import BASELINES, Trajectory
from vrg_analysis.evaluation.stats import adjust_pvalues, aggregate, decide
from vrg_analysis.params import as_float, as_int, as_tuple, check_seeds
from vrg_analysis.report import PAGE_WIDTH, VERDICT_COLOURS, styled
from vrg_analysis.studies.engine import (
    ComparisonConfig,
    ComparisonResult,
    PairedComparison,
    paired_comparison,
    run_comparison,
)
from vrg_analysis.studies.profiling import algorithm1, profiled_timesteps, row_subset
from vrg_analysis.testbeds import make_testbed
from vrg_analysis.vrg.arms import ArmContext
from vrg_analysis.vrg.retime import VRGSetting, vrg_retime

__all__ = [
    "CHAPTER",
    "ProfiledVRG",
    "Params",
    "Result",
    "Summary",
    "run",
    "profile_sha",
    "log_snr_shift",
    "figure_precision",
    "draws_table",
    "sizes_table",
    "summary",
]

CHAPTER = "profile_precision"
FloatArray = np.ndarray
#: The verdict on "N rows are enough" in words.
ENOUGH_WORDS: dict[str, str] = {
    "supported": "enough",
    "contradicted": "not enough",
    "inconclusive": "not settled",
}


def profile_sha(profile: ErrorProfile) -> str:
    """A short sha256 of a profile's levels and MSE (what a VRG trajectory depends on)."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(profile.alpha_bar, dtype=np.float64).tobytes())
    h.update(np.ascontiguousarray(profile.mse, dtype=np.float64).tobytes())
    return h.hexdigest()[:16]


@dataclass(frozen=True, eq=False)
class ProfiledVRG:
    """VRG under ``setting`` on its own ``profile`` instead of the comparison's (an
    :class:`~vrg_analysis.vrg.arms.Arm`): the profile of ``rows`` training rows, draw
    ``draw``."""

    setting: VRGSetting
    profile: ErrorProfile
    rows: int
    draw: int

    @property
    def label(self) -> str:
        return f"VRG on {self.rows} rows, draw {self.draw}"

    def retime(
        self, trajectory: Trajectory, context: ArmContext
    ) -> tuple[Trajectory, dict[str, Any]]:
        return vrg_retime(trajectory, self.profile, context.schedule, self.setting)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "vrg_own_profile",
            "setting": self.setting.to_dict(),
            "rows": int(self.rows),
            "draw": int(self.draw),
            "profile": profile_sha(self.profile),
        }


def log_snr_shift(a: Trajectory, b: Trajectory) -> float:
    """The largest shift of any level between two trajectories of the same length, in log-SNR
    (``log(a / (1 - a))``)."""
    if a.K != b.K:
        raise ValueError(f"trajectories of K = {a.K} and K = {b.K} levels")
    la = np.log(a.alpha_bar) - np.log1p(-a.alpha_bar)
    lb = np.log(b.alpha_bar) - np.log1p(-b.alpha_bar)
    return float(np.max(np.abs(la - lb)))


@dataclass(frozen=True)
class Params:
    """The chapter's parameters (the notebook's ``parameters`` cell; CI-sized defaults)."""

    testbed: str = "digits"
    sizes: tuple[int, ...] = (32, 128)
    repeats: int = 3
    reference_rows: int = 512
    profile_stride: int = 20
    baseline: str = "time_uniform"
    num_steps: int = 10
    gamma: float = 0.1  # the paper's ablation setting: a box wide enough for the profile to matter
    reg_lambda: float = 1e4
    seeds: tuple[int, ...] = (0, 1)
    n_samples: int = 128
    fid_tolerance: float = 0.02
    n_boot: int = 200
    alpha: float = 0.05
    device: str = "cpu"

    def __post_init__(self) -> None:
        s = object.__setattr__
        sizes = as_tuple(self.sizes, "sizes", int)
        if not sizes or min(sizes) < 2:
            raise ValueError(f"parameter sizes needs row counts >= 2, got {list(sizes)!r}")
        s(self, "sizes", tuple(sorted(set(sizes))))
        s(self, "repeats", as_int(self.repeats, "repeats", minimum=2))
        s(self, "reference_rows", as_int(self.reference_rows, "reference_rows", minimum=2))
        if self.reference_rows <= max(self.sizes):
            raise ValueError(
                f"parameter reference_rows ({self.reference_rows}) must exceed the largest size "
                f"({max(self.sizes)}): the reference is the better-measured profile"
            )
        s(self, "profile_stride", as_int(self.profile_stride, "profile_stride", minimum=1))
        if self.baseline not in BASELINES:
            raise ValueError(
                f"parameter baseline: unknown value {self.baseline!r}; allowed: {list(BASELINES)}"
            )
        s(self, "num_steps", as_int(self.num_steps, "num_steps", minimum=2))
        s(self, "seeds", check_seeds(self.seeds, min_len=2))
        s(self, "n_samples", as_int(self.n_samples, "n_samples", minimum=2))
        s(self, "n_boot", as_int(self.n_boot, "n_boot", minimum=20))
        s(self, "gamma", as_float(self.gamma, "gamma", minimum=0.0, maximum=1.0, open_high=True))
        s(self, "reg_lambda", as_float(self.reg_lambda, "reg_lambda", minimum=0.0))
        s(
            self,
            "fid_tolerance",
            as_float(self.fid_tolerance, "fid_tolerance", minimum=0.0, maximum=1.0, open_low=True),
        )
        s(
            self,
            "alpha",
            as_float(self.alpha, "alpha", minimum=0.0, maximum=0.5, open_low=True, open_high=True),
        )

    @property
    def setting(self) -> VRGSetting:
        return VRGSetting(self.gamma, self.reg_lambda)


@dataclass(frozen=True, eq=False)
class Result:
    """The comparison, one row per draw (``table``) and one per size (``sizes``)."""

    params: Params
    comparison: ComparisonResult
    table: pd.DataFrame = field(repr=False)
    sizes: pd.DataFrame = field(repr=False)
    levels_t: FloatArray
    profile_error: FloatArray  # [draws, levels]: w_draw / w_reference - 1, in table order
    reference: PairedComparison  # VRG on the reference profile against the baseline
    seconds: float


def _profiles(p: Params) -> tuple[list[tuple[int, int, ErrorProfile]], Any]:
    bed = make_testbed(p.testbed)
    ts = profiled_timesteps(bed.schedule, p.profile_stride)
    out = []
    for n in p.sizes:
        for r in range(p.repeats):
            rows = row_subset(bed.train_x, n, seed=10_000 + 97 * n + r)
            prof = algorithm1(
                bed.model,
                rows,
                ts,
                fingerprint=bed.fingerprint,
                model_name=bed.model_name,
                data_name=f"{n} training rows, draw {r}",
                seed=r,
                device=p.device,
                dim_stats=False,
            )
            out.append((n, r, prof))
    return out, bed


def _enough(verdicts: Any) -> str:
    """ "N rows are enough" over a size's draws: contradicted when any draw is, supported when
    every draw is, inconclusive otherwise (:func:`~vrg_analysis.evaluation.stats.aggregate` as a
    conjunction, its "mixed" read as not settled: an inconclusive draw is not shown worse)."""
    v = aggregate(verdicts, conjunction=True)
    return "inconclusive" if v == "mixed" else v


def run(params: Params, *, progress: bool = False) -> Result:
    """Profile every draw, run VRG on each in one paired comparison, and judge every size."""
    p = params
    t0 = time.perf_counter()
    draws, bed = _profiles(p)
    arms = (p.setting, *(ProfiledVRG(p.setting, prof, n, r) for n, r, prof in draws))
    config = ComparisonConfig(
        testbed=p.testbed,
        samplers=("ddim",),
        baselines=(p.baseline,),
        steps=(p.num_steps,),
        seeds=p.seeds,
        n_samples=p.n_samples,
        arms=arms,
        reference_steps=0,
        profile_stride=p.profile_stride,
        profile_samples=p.reference_rows,
        device=p.device,
    )
    res = run_comparison(config, progress=progress)
    ref_profile = res.profiles[p.seeds[0]]
    key = ("ddim", p.baseline, p.num_steps)
    ref_label = p.setting.label
    ref_traj = Trajectory(res.arm(*key, ref_label, p.seeds[0]).alpha_bar)
    base_traj = Trajectory(res.arm(*key, "baseline", p.seeds[0]).alpha_bar)
    base_cpe = cumulative_prediction_error(base_traj, ref_profile, outside="clamp")
    ref_vs_base = paired_comparison(res, *key, ref_label, n_boot=p.n_boot)
    tol = p.fid_tolerance * ref_vs_base.base_value
    rows, errors = [], []
    for arm in arms[1:]:
        c = paired_comparison(res, *key, arm.label, n_boot=p.n_boot, reference=ref_label)
        vb = paired_comparison(res, *key, arm.label, n_boot=p.n_boot)
        traj = Trajectory(res.arm(*key, arm.label, p.seeds[0]).alpha_bar)
        w_ref = np.interp(arm.profile.alpha_bar, ref_profile.alpha_bar, ref_profile.mse)
        rel = arm.profile.mse / w_ref - 1.0
        errors.append(rel)
        se = (c.ci_high - c.ci_low) / (2 * 1.959964)
        rows.append(
            {
                "rows": arm.rows,
                "draw": arm.draw,
                "w_error_median": float(np.median(np.abs(rel))),
                "w_error_noisiest": float(abs(rel[0])),  # levels sorted by alpha_bar
                "cpe_error": float(
                    cumulative_prediction_error(base_traj, arm.profile, outside="clamp") / base_cpe
                    - 1.0
                ),
                "shift": log_snr_shift(traj, ref_traj),
                "start_shift": float(traj.alpha_bar[0] / base_traj.alpha_bar[0] - 1.0),
                "dfid": vb.delta,
                "dfid_lo": vb.ci_low,
                "dfid_hi": vb.ci_high,
                "vs_ref": c.delta,
                "vs_ref_lo": c.ci_low,
                "vs_ref_hi": c.ci_high,
                "p": c.p_value,
                "p_beyond": beyond_pvalue(c.delta, se, (-tol, tol)),
            }
        )
    table = pd.DataFrame(rows)
    table["p_holm"] = adjust_pvalues(table.p, "holm")
    table["p_beyond_holm"] = adjust_pvalues(table.p_beyond.fillna(1.0), "holm")
    table["verdict"] = [
        decide(
            r.vs_ref,
            max(r.p_holm, r.p_beyond_holm),
            claim="within",
            alpha=p.alpha,
            band=(-tol, tol),
            interval=(r.vs_ref_lo, r.vs_ref_hi),
        ).verdict
        for r in table.itertuples()
    ]
    per_size = []
    for n, sub in table.groupby("rows", sort=True):
        per_size.append(
            {
                "rows": int(n),
                "w_error_median": float(sub.w_error_median.mean()),
                "cpe_error_sd": float(sub.cpe_error.std(ddof=1)),
                "shift_max": float(sub["shift"].max()),
                "dfid_sd": float(sub.dfid.std(ddof=1)),
                "vs_ref_max": float(sub.vs_ref.abs().max()),
                "verdict": _enough(sub.verdict),
            }
        )
    sizes = pd.DataFrame(per_size)
    return Result(
        params=p,
        comparison=res,
        table=table,
        sizes=sizes,
        levels_t=bed.schedule.t_from_alpha_bar(draws[0][2].alpha_bar),
        profile_error=np.asarray(errors),
        reference=ref_vs_base,
        seconds=time.perf_counter() - t0,
    )


# ===================================================================== rendering
def figure_precision(result: Result) -> Any:
    """Left: the relative error of each draw's profile per timestep (one colour per size).
    Middle: the largest level shift of each draw's VRG trajectory from the reference-profile
    VRG's, in log-SNR. Right: each draw's FID minus that of VRG on the reference profile, with
    its 95% paired interval, coloured by the verdict; the band is the tolerance."""
    p = result.params
    t = result.table
    palette = dict(zip(p.sizes, sns.color_palette("viridis", len(p.sizes)), strict=True))
    fig, axes = plt.subplots(1, 3, figsize=(PAGE_WIDTH, 2.9))
    ax = axes[0]
    for row, err in zip(t.itertuples(), result.profile_error, strict=True):
        ax.plot(result.levels_t, 100 * err, color=palette[row.rows], lw=0.9, alpha=0.8)
    for n in p.sizes:
        ax.plot([], [], color=palette[n], label=f"{n} rows")
    ax.axhline(0.0, color="k", lw=0.8)
    ax.set_xlabel("timestep t")
    ax.set_ylabel("w error vs reference (%)")
    ax.legend(fontsize=7, frameon=False)
    ax = axes[1]
    jitter = np.linspace(-0.08, 0.08, p.repeats)
    for i, n in enumerate(p.sizes):
        sub = t[t.rows == n]
        ax.scatter(i + jitter[: len(sub)], sub["shift"], color=palette[n], s=18)
    ax.set_xticks(range(len(p.sizes)), [str(n) for n in p.sizes])
    ax.set_xlabel("profiled rows N")
    ax.set_ylabel("largest level shift (log-SNR)")
    ax = axes[2]
    tol = p.fid_tolerance * result.reference.base_value
    ax.axhspan(-tol, tol, color="0.9", lw=0, label=f"±{100 * p.fid_tolerance:g}% of FID")
    for i, n in enumerate(p.sizes):
        sub = t[t.rows == n]
        for x, r in zip(i + jitter[: len(sub)], sub.itertuples(), strict=True):
            ax.errorbar(
                x,
                r.vs_ref,
                yerr=[[r.vs_ref - r.vs_ref_lo], [r.vs_ref_hi - r.vs_ref]],
                color=VERDICT_COLOURS[r.verdict],
                marker="o",
                ms=4,
                capsize=2,
            )
    ax.axhline(0.0, color="k", lw=0.8)
    ax.set_xticks(range(len(p.sizes)), [str(n) for n in p.sizes])
    ax.set_xlabel("profiled rows N")
    ax.set_ylabel(f"FID − FID of VRG on {p.reference_rows} rows")
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    plt.close(fig)
    return fig


def draws_table(result: Result) -> Any:
    """One row per draw: the profile's error, the trajectory's shift, the FID change and the
    verdict against VRG on the reference profile."""
    t = result.table
    show = pd.DataFrame(
        {
            "rows N": t["rows"],
            "draw": t.draw,
            "median |w error| (%)": 100 * t.w_error_median,
            "CPE error (%)": 100 * t.cpe_error,
            "level shift (log-SNR)": t["shift"],
            "a_K moved (%)": 100 * t.start_shift,
            "ΔFID vs baseline": [
                f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]"
                for d, lo, hi in zip(t.dfid, t.dfid_lo, t.dfid_hi, strict=True)
            ],
            "FID vs reference VRG": [
                f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]"
                for d, lo, hi in zip(t.vs_ref, t.vs_ref_lo, t.vs_ref_hi, strict=True)
            ],
            "p (Holm)": t.p_holm,
            "as good as the reference": t.verdict,
        }
    )
    return styled(
        show,
        formats={
            "median |w error| (%)": "{:.2f}",
            "CPE error (%)": "{:+.2f}",
            "level shift (log-SNR)": "{:.3f}",
            "a_K moved (%)": "{:+.1f}",
            "p (Holm)": "{:.2g}",
        },
        verdict_columns=("as good as the reference",),
        caption=(
            f"Every draw of Algorithm 1 against the reference profile of "
            f"{result.params.reference_rows} rows (FID tolerance "
            f"{100 * result.params.fid_tolerance:g}% of the baseline's; Holm over the table)"
        ),
    )


def sizes_table(result: Result) -> Any:
    """One row per size: mean profile error, spread of CPE and of the FID change, the largest
    trajectory shift, and the verdict "N rows are enough"."""
    s = result.sizes
    show = pd.DataFrame(
        {
            "rows N": s["rows"],
            "median |w error| (%)": 100 * s.w_error_median,
            "sd of CPE error (%)": 100 * s.cpe_error_sd,
            "largest level shift (log-SNR)": s.shift_max,
            "sd of ΔFID": s.dfid_sd,
            "largest |FID − reference VRG|": s.vs_ref_max,
            "enough": s.verdict,
        }
    )
    return styled(
        show,
        formats={
            "median |w error| (%)": "{:.2f}",
            "sd of CPE error (%)": "{:.2f}",
            "largest level shift (log-SNR)": "{:.3f}",
            "sd of ΔFID": "{:.3f}",
            "largest |FID − reference VRG|": "{:.3f}",
        },
        verdict_columns=("enough",),
        caption="Per profile size: is VRG on N rows as good as VRG on the reference profile?",
    )


# ===================================================================== the prose's numbers
@dataclass(frozen=True)
class Summary:
    """Every number and phrase the chapter's prose cites (glued by field name)."""

    testbed: str
    sizes_text: str
    repeats: int
    reference_rows: int
    num_steps: int
    baseline: str
    n_pooled: int
    fid_base: float
    ref_dfid: float
    ref_lo: float
    ref_hi: float
    tolerance_fid: float
    enough_text: str
    smallest_enough: str
    seconds: float
    model_calls: int


def summary(result: Result) -> Summary:
    p = result.params
    ref = result.reference
    s = result.sizes
    parts = [
        f"N = {r.rows}: {ENOUGH_WORDS[r.verdict]} (largest level shift "
        f"{r.shift_max:.3f}, FID within {r.vs_ref_max:.3f} of VRG on the reference)"
        for r in s.itertuples()
    ]
    ok = s[s.verdict == "supported"]
    return Summary(
        testbed=p.testbed,
        sizes_text=", ".join(str(n) for n in p.sizes),
        repeats=p.repeats,
        reference_rows=p.reference_rows,
        num_steps=p.num_steps,
        baseline=p.baseline,
        n_pooled=p.n_samples * len(p.seeds),
        fid_base=float(ref.base_value),
        ref_dfid=float(ref.delta),
        ref_lo=float(ref.ci_low),
        ref_hi=float(ref.ci_high),
        tolerance_fid=float(p.fid_tolerance * ref.base_value),
        enough_text="; ".join(parts),
        smallest_enough=(f"{int(ok['rows'].min())} rows" if len(ok) else "none of the sizes tried"),
        seconds=float(result.seconds),
        model_calls=int(result.comparison.model_calls),
    )
