"""A model's sample quality against steps: can this model judge a sampler?

A comparison of trajectories means something only on a model whose samples improve when the
sampler is given more steps. This module measures that for one image testbed: DDIM from one seeded
starting noise at every ``K`` on every baseline trajectory, each sample set scored with the
testbed's domain FID (F1 of :mod:`vrg_analysis.evaluation.features`) with a 95% bootstrap interval
over the samples (recentred percentiles), beside the FID floor at the same sample size (real
training images against the held-out statistics).

The check "FID falls as K grows" is judged per baseline on the difference
``FID(K_max) - FID(K_min)``: the same starting noise gives both sample sets, so the bootstrap
resamples the same rows of both (paired), and the book's verdict rule
(:func:`~vrg_analysis.evaluation.stats.decide`, claim "better", lower is better) is applied with
Holm's correction over the baselines. Spearman's rank correlation between K and FID over the whole
grid is reported beside it (descriptive: it is not a test of a trend at this few points).

The CI run uses the 8x8 digits; the book's headline is the 28x28 Fashion-MNIST model at the full
parameter set (``notebooks/params/full/model_quality.yaml``: ``python -m vrg_analysis study
model_quality --params full``), committed as a full-size result
(:mod:`vrg_analysis.studies.artifacts`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import matplotlib.pyplot as plt
import matplotlib.ticker as mticker
import numpy as np
import pandas as pd
import torch
from torch import Tensor

from vrg_analysis.core.trajectories import BASELINES, baseline
from vrg_analysis.evaluation.features import load_domain_classifier, reference_statistics
from vrg_analysis.evaluation.stats import (
    bootstrap_pvalue,
    decide_family,
    paired_bootstrap,
    percentile_interval,
    rank_correlation,
)
from vrg_analysis.params import as_choice, as_int, as_tuple
from vrg_analysis.report import PAGE_WIDTH, palette_for, styled
from vrg_analysis.samplers import sample
from vrg_analysis.studies.engine import FrechetToReference
from vrg_analysis.studies.testbed_models import set_metric_interval
from vrg_analysis.testbeds import IMAGE_TESTBEDS, make_testbed

__all__ = [
    "CHAPTER",
    "Params",
    "Result",
    "Summary",
    "run",
    "figure_fid",
    "figure_samples",
    "fid_table",
    "falls_table",
    "summary",
]

CHAPTER = "model_quality"
#: Samples per row of the picture grid.
N_PICTURED = 12
#: Rows sampled per model call (memory stays bounded at 28x28).
CHUNK = 500


@dataclass(frozen=True)
class Params:
    """The parameters (CI-sized defaults: the 8x8 digits at the held-out size, 450 samples).

    ``n``: samples per baseline and K, from one starting noise (``seed``); the FID floor must be
    stored at this size (the digits' at 450; Fashion-MNIST's at 500, 1,000, 2,000, 5,000 and
    10,000)."""

    testbed: str = "digits"
    steps: tuple[int, ...] = (5, 10, 20, 50, 100)
    baselines: tuple[str, ...] = ("time_uniform", "time_quadratic", "logsnr_uniform")
    n: int = 450
    seed: int = 0
    n_boot: int = 200

    def __post_init__(self) -> None:
        s = object.__setattr__
        as_choice(self.testbed, "testbed", tuple(IMAGE_TESTBEDS))
        s(self, "steps", tuple(sorted(set(as_tuple(self.steps, "steps", int)))))
        if len(self.steps) < 2 or min(self.steps) < 1:
            raise ValueError(f"parameter steps needs two or more positive K, got {self.steps!r}")
        s(self, "baselines", as_tuple(self.baselines, "baselines", str))
        for b in self.baselines:
            as_choice(b, "baselines", BASELINES)
        s(self, "n", as_int(self.n, "n", minimum=N_PICTURED))
        s(self, "seed", as_int(self.seed, "seed", minimum=0))
        s(self, "n_boot", as_int(self.n_boot, "n_boot", minimum=20))


@dataclass(frozen=True, eq=False)
class Result:
    """FID per baseline and K, the "falls with K" judgement, pictures and the floor."""

    params: Params
    model_name: str
    model_sha256: str
    num_parameters: int
    fid: pd.DataFrame = field(repr=False)  # baseline, K, FID, low, high
    falls: pd.DataFrame = field(repr=False)  # one row per baseline
    pictures: dict[str, np.ndarray] = field(repr=False)  # baseline -> [K, N_PICTURED, H, W]
    floor: float  # NaN when no floor is stored at n
    classifier_accuracy: float


def _sample_features(bed: Any, params: Params, features: Any) -> dict[tuple[str, int], Any]:
    """Features and the first pictures of DDIM samples at every baseline and K."""
    gen = torch.Generator().manual_seed(params.seed)
    x_t = torch.randn(params.n, *bed.sample_shape, generator=gen)
    out = {}
    for name in params.baselines:
        for k in params.steps:
            traj = baseline(name, bed.schedule, k)
            chunks = [
                sample("ddim", bed.model, x_t[i : i + CHUNK].to(bed.device), traj)
                .x.clamp(-1.0, 1.0)
                .cpu()
                for i in range(0, params.n, CHUNK)
            ]
            x: Tensor = torch.cat(chunks)
            out[(name, k)] = (features(x), x[:N_PICTURED, 0].numpy().astype(np.float32))
    return out


def run(params: Params, *, progress: bool = False) -> Result:
    """Sample, score and judge (module docstring). ``progress`` is accepted for the runner."""
    bed = make_testbed(params.testbed)
    scoring = bed.scoring()
    ref = reference_statistics(bed.dataset)
    frechet = FrechetToReference(scoring.reference_moments)
    drawn = _sample_features(bed, params, scoring.set_features)
    rows = []
    for (name, k), (feats, _) in drawn.items():
        iv = set_metric_interval(feats, scoring.reference_moments, params.n_boot, params.seed)
        rows.append({"baseline": name, "K": k, "FID": iv.estimate, "low": iv.low, "high": iv.high})
    fid = pd.DataFrame(rows)
    k_min, k_max = min(params.steps), max(params.steps)
    diffs, pvals, ivs, rhos = [], [], [], []
    for name in params.baselines:
        a, b = drawn[(name, k_max)][0], drawn[(name, k_min)][0]
        est = frechet(a) - frechet(b)
        boot = paired_bootstrap(
            lambda idx, a=a, b=b: frechet(a[idx]) - frechet(b[idx]),
            [params.n],
            params.n_boot,
            np.random.default_rng(params.seed + 1),
        )
        iv = percentile_interval(boot, est, recentre=True)
        diffs.append(est)
        pvals.append(bootstrap_pvalue(est, boot))
        ivs.append((iv.low, iv.high))
        sub = fid[fid.baseline == name]
        rhos.append(rank_correlation(sub.K.to_numpy(float), sub.FID.to_numpy()).rho)
    adjusted, decisions = decide_family(diffs, pvals, claim="better", intervals=ivs)
    falls = pd.DataFrame(
        {
            "baseline": list(params.baselines),
            f"FID at K={k_min}": [drawn_fid(fid, n, k_min) for n in params.baselines],
            f"FID at K={k_max}": [drawn_fid(fid, n, k_max) for n in params.baselines],
            "difference": diffs,
            "low": [lo for lo, _ in ivs],
            "high": [hi for _, hi in ivs],
            "p (Holm)": adjusted,
            "Spearman rho (K, FID)": rhos,
            "monotone steps": [_monotone(fid[fid.baseline == n]) for n in params.baselines],
            "verdict": [d.verdict for d in decisions],
        }
    )
    floor = ref.floor_at(params.n)
    return Result(
        params=params,
        model_name=bed.model_name,
        model_sha256=str(bed.network.card.get("sha256")),
        num_parameters=int(bed.network.card.get("num_parameters", 0)),
        fid=fid,
        falls=falls,
        pictures={n: np.stack([drawn[(n, k)][1] for k in params.steps]) for n in params.baselines},
        floor=float("nan") if floor is None else float(floor),
        classifier_accuracy=float(load_domain_classifier(ref.name).card["held_out_accuracy"]),
    )


def drawn_fid(fid: pd.DataFrame, name: str, k: int) -> float:
    """The FID of baseline ``name`` at ``k`` steps in a :attr:`Result.fid` frame."""
    return float(fid[(fid.baseline == name) & (fid.K == k)].FID.iloc[0])


def _monotone(sub: pd.DataFrame) -> str:
    """How many consecutive K steps lower the FID, as "m of n"."""
    v = sub.sort_values("K").FID.to_numpy()
    return f"{int((np.diff(v) < 0).sum())} of {len(v) - 1}"


# ===================================================================== rendering
def _where(result: Result) -> str:
    p = result.params
    return f"{result.model_name} ({p.testbed}), DDIM, {p.n} samples, seed {p.seed}"


def figure_fid(result: Result) -> Any:
    """FID against K on every baseline (log-log), with intervals and the floor at n."""
    f = result.fid
    palette = palette_for(result.params.baselines)
    fig, ax = plt.subplots(figsize=(PAGE_WIDTH * 0.62, PAGE_WIDTH * 0.42))
    for name in result.params.baselines:
        sub = f[f.baseline == name].sort_values("K")
        ax.errorbar(
            sub.K,
            sub.FID,
            yerr=[sub.FID - sub.low, sub.high - sub.FID],
            marker="o",
            ms=4,
            capsize=2,
            label=name,
            color=palette[name],
        )
    if math.isfinite(result.floor):
        ax.axhline(result.floor, color="0.4", ls="--", lw=1, label=f"floor (n = {result.params.n})")
    ax.set(xscale="log", yscale="log", xlabel="steps K (model calls)", ylabel="domain FID")
    ax.set_xticks(list(result.params.steps), [str(k) for k in result.params.steps])
    ax.yaxis.set_major_formatter(mticker.FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(mticker.FormatStrFormatter("%g"))
    ax.tick_params(axis="y", which="minor", labelsize=7)
    ax.legend(fontsize=8, frameon=False)
    ax.set_title(_where(result), fontsize=9)
    fig.tight_layout()
    plt.close(fig)
    return fig


def figure_samples(result: Result, baseline_name: str | None = None) -> Any:
    """Samples of one baseline (default the first): one row per K, the same starting noise in
    every row, so a column shows one trajectory sharpening as K grows."""
    name = baseline_name or result.params.baselines[0]
    pics = result.pictures[name]  # [K, N, H, W]
    nk, n, h, w = pics.shape
    pad = 1
    mosaic = np.full((nk * (h + pad) + pad, n * (w + pad) + pad), np.nan)
    for i in range(nk):
        for j in range(n):
            r, c = pad + i * (h + pad), pad + j * (w + pad)
            mosaic[r : r + h, c : c + w] = pics[i, j]
    fig, ax = plt.subplots(figsize=(PAGE_WIDTH * 0.8, PAGE_WIDTH * 0.8 * nk / n + 0.4))
    ax.imshow(mosaic, cmap=plt.get_cmap("gray").with_extremes(bad="white"), vmin=-1, vmax=1)
    ax.set_yticks(
        [pad + (i + 0.5) * (h + pad) for i in range(nk)],
        [f"K={k}" for k in result.params.steps],
        fontsize=8,
    )
    ax.set_xticks([])
    ax.grid(False)
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_title(f"{result.model_name}: DDIM on {name}", fontsize=9)
    fig.tight_layout()
    plt.close(fig)
    return fig


def fid_table(result: Result) -> Any:
    """Domain FID [95% interval] per baseline (rows) and K (columns)."""
    f = result.fid.copy()
    f["FID [95% interval]"] = [
        f"{v:.2f} [{lo:.2f}, {hi:.2f}]" for v, lo, hi in zip(f.FID, f.low, f.high, strict=True)
    ]
    wide = f.pivot(index="baseline", columns="K", values="FID [95% interval]")
    wide = wide.loc[list(result.params.baselines)]
    wide.columns = [f"K = {k}" for k in wide.columns]
    floor = f"{result.floor:.2f}" if math.isfinite(result.floor) else "not stored at this n"
    return wide.style.set_caption(f"Domain FID, {_where(result)}; floor {floor}")


def falls_table(result: Result) -> Any:
    """The "FID falls as K grows" judgement per baseline."""
    return styled(
        result.falls,
        formats={
            c: "{:.3g}"
            for c in result.falls.columns
            if c not in ("baseline", "verdict", "monotone steps")
        },
        caption=(
            "Does FID fall from the fewest to the most steps? Difference FID(K_max) - FID(K_min) "
            "with a paired bootstrap interval, Holm over the baselines; " + _where(result)
        ),
    )


# ===================================================================== the prose's numbers
@dataclass(frozen=True)
class Summary:
    """Every number the prose cites (glued by field name)."""

    model: str
    testbed: str
    n: int
    k_min: int
    k_max: int
    floor: float
    classifier_acc: float
    n_falls: int
    n_baselines: int
    all_fall: bool
    best_fid: float
    best_baseline: str
    best_ratio_to_floor: float
    fid_by_baseline_kmax: dict[str, float]


def summary(result: Result) -> Summary:
    p = result.params
    k_max = max(p.steps)
    at_max = result.fid[result.fid.K == k_max].set_index("baseline").FID
    best = str(at_max.idxmin())
    n_falls = int((result.falls.verdict == "supported").sum())
    return Summary(
        model=result.model_name,
        testbed=p.testbed,
        n=p.n,
        k_min=min(p.steps),
        k_max=k_max,
        floor=result.floor,
        classifier_acc=100 * result.classifier_accuracy,
        n_falls=n_falls,
        n_baselines=len(p.baselines),
        all_fall=n_falls == len(p.baselines),
        best_fid=float(at_max[best]),
        best_baseline=best,
        best_ratio_to_floor=float(at_max[best] / result.floor)
        if math.isfinite(result.floor) and result.floor > 0
        else float("nan"),
        fid_by_baseline_kmax={f"fid_kmax_{k}": float(v) for k, v in at_max.items()},
    )
