"""The testbed-models chapter: the shipped models, their cards and their sample quality.

VRG's verdicts are only as good as the models they are measured on. This module shows the
project's trained testbeds (:mod:`vrg_analysis.testbeds`): each checkpoint's card, and the quality
of DDIM samples on one baseline trajectory at several step counts.

* Image testbeds (the digits UNet and its class-conditional twin, unguided and with
  classifier-free guidance at each ``guidance_scales`` value, labels cycling through the
  classes): the testbed's set metric (:meth:`~vrg_analysis.testbeds.Testbed.scoring`; the domain
  FID, the Frechet distance between Gaussian fits of the shipped classifier's penultimate-layer
  features of the samples and of the held-out images,

      FID = |m_s - m_r|^2 + tr(C_s + C_r - 2 (C_r^{1/2} C_s C_r^{1/2})^{1/2})),          (F1)

  with a 95% bootstrap interval over the samples, recentred percentiles because a resample's
  Frechet distance is biased upwards; :func:`~vrg_analysis.evaluation.stats.percentile_interval`),
  beside its floor, the FID of real training images against the held-out set at the same size.
* The exact testbed (the 2-D mixture): the trained model (``bed.model``) and the exact predictor
  ``eps*`` (``bed.oracle``) from the same starting noise, scored against the known density: the
  mean exact log-likelihood gap to true data (:func:`~vrg_analysis.evaluation.metrics.
  mixture_sample_quality`; 0 is perfect; its Student-t interval over the samples, the reference's
  own standard error on 20,000 true samples being negligible), the sliced 2-Wasserstein distance
  to true samples (eq. S1 of :func:`~vrg_analysis.evaluation.metrics.sliced_wasserstein`) and the
  mode coverage.

No comparison of trajectories is made here (every arm of the book's comparisons goes through
:mod:`vrg_analysis.studies.engine`); the samples are drawn once per model and step count with the
library's DDIM from one seeded starting noise, which is also kept for the sample pictures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from torch import Tensor

from vrg_analysis.core.trajectories import BASELINES, baseline
from vrg_analysis.evaluation.features import load_domain_classifier, reference_statistics
from vrg_analysis.evaluation.metrics import (
    mixture_reference,
    mixture_sample_quality,
    mode_coverage,
    sliced_wasserstein,
)
from vrg_analysis.evaluation.stats import (
    Interval,
    paired_bootstrap,
    percentile_interval,
    t_interval,
)
from vrg_analysis.models.checkpoints import load_card
from vrg_analysis.params import as_choice, as_int, as_tuple
from vrg_analysis.report import PAGE_WIDTH, styled
from vrg_analysis.samplers import sample
from vrg_analysis.studies.engine import FrechetToReference
from vrg_analysis.testbeds import Testbed, make_testbed

__all__ = [
    "Params",
    "Result",
    "Summary",
    "run",
    "set_metric_interval",
    "cards_table",
    "fid_table",
    "mixture_table",
    "figure_samples",
    "figure_mixture",
    "summary",
    "IMAGE_TESTBED",
    "CONDITIONAL_TESTBED",
    "MIXTURE_TESTBED",
]

CHAPTER = "testbed_models"
#: The shipped testbeds the chapter shows.
IMAGE_TESTBED = "digits"
CONDITIONAL_TESTBED = "digits-cond"
MIXTURE_TESTBED = "mixture-2d"
#: Labels of the two mixture models.
TRAINED, EXACT = "trained MLP", "exact eps*"
#: True samples behind the mixture's reference log-likelihood.
N_REFERENCE = 20_000
#: Samples per row of the picture grid.
N_PICTURED = 10


@dataclass(frozen=True)
class Params:
    """The chapter's parameters (the notebook's ``parameters`` cell; CI-sized defaults).
    ``n_fid``: samples per image model and K (the FID floor is measured at the held-out size,
    450: compare at that size)."""

    steps: tuple[int, ...] = (5, 10, 25)
    trajectory_name: str = "time_uniform"
    n_fid: int = 450
    guidance_scales: tuple[float, ...] = (1.0, 3.0)
    n_mixture: int = 2000
    seed: int = 0
    n_boot: int = 200

    def __post_init__(self) -> None:
        s = object.__setattr__
        s(self, "steps", tuple(sorted(set(as_tuple(self.steps, "steps", int)))))
        if min(self.steps) < 1:
            raise ValueError("parameter steps must be positive integers")
        as_choice(self.trajectory_name, "trajectory_name", BASELINES)
        s(self, "guidance_scales", as_tuple(self.guidance_scales, "guidance_scales", float))
        s(self, "n_fid", as_int(self.n_fid, "n_fid", minimum=N_PICTURED))
        s(self, "n_mixture", as_int(self.n_mixture, "n_mixture", minimum=2))
        s(self, "seed", as_int(self.seed, "seed", minimum=0))
        s(self, "n_boot", as_int(self.n_boot, "n_boot", minimum=20))


def set_metric_interval(
    features: np.ndarray, moments: tuple[np.ndarray, np.ndarray], n_boot: int, seed: int = 0
) -> Interval:
    """The Frechet distance of the features to the reference moments (F1) with a 95% bootstrap
    interval over the samples (recentred percentiles)."""
    frechet = FrechetToReference(moments)
    estimate = frechet(features)
    boot = paired_bootstrap(
        lambda idx: frechet(features[idx]),
        [features.shape[0]],
        n_boot,
        np.random.default_rng(seed),
    )
    return percentile_interval(boot, estimate, recentre=True)


@dataclass(frozen=True, eq=False)
class Result:
    """The cards, the image models' FIDs and pictures, the mixture models' scores and samples."""

    params: Params
    cards: dict[str, dict[str, Any]] = field(repr=False)
    fid: pd.DataFrame = field(repr=False)
    pictures: dict[tuple[str, int], Tensor] = field(repr=False)
    mixture: pd.DataFrame = field(repr=False)
    mixture_samples: dict[tuple[str, int], Tensor] = field(repr=False)
    true_samples: Tensor = field(repr=False)
    floor: float
    n_floor: int
    classifier_accuracy: float

    @property
    def image_models(self) -> list[str]:
        return list(dict.fromkeys(self.fid.model))


def _image_models(params: Params, plain: Testbed, cond: Testbed) -> dict[str, Any]:
    """The image models to sample, by label: the unconditional model, and the conditional one
    guided at every scale with the labels cycling through the classes."""
    labels = torch.arange(params.n_fid) % cond.num_classes
    models: dict[str, Any] = {plain.model_name: plain.model}
    for w in params.guidance_scales:
        kind = "conditional, no guidance" if w == 1.0 else "guided"
        models[f"{cond.model_name}, w={w:g} ({kind})"] = cond.guided(labels, w)
    return models


def _images(
    params: Params, plain: Testbed, cond: Testbed
) -> tuple[pd.DataFrame, dict[tuple[str, int], Tensor]]:
    scoring = plain.scoring()
    gen = torch.Generator().manual_seed(params.seed)
    x_t = torch.randn(params.n_fid, *plain.sample_shape, generator=gen)
    rows, pictures = [], {}
    for name, model in _image_models(params, plain, cond).items():
        for k in params.steps:
            traj = baseline(params.trajectory_name, plain.schedule, k)
            x = sample("ddim", model, x_t, traj).x.clamp(-1, 1)
            iv = set_metric_interval(
                scoring.set_features(x), scoring.reference_moments, params.n_boot, params.seed
            )
            rows.append(
                {"model": name, "K": k, "domain FID": iv.estimate, "low": iv.low, "high": iv.high}
            )
            pictures[(name, k)] = x[:N_PICTURED].detach().cpu()
    return pd.DataFrame(rows), pictures


def _mixture(
    params: Params, bed: Testbed
) -> tuple[pd.DataFrame, dict[tuple[str, int], Tensor], Tensor]:
    mixture = bed.mixture
    true_x, _ = mixture.sample(params.n_mixture, torch.Generator().manual_seed(params.seed + 1))
    z = torch.randn(
        params.n_mixture,
        *bed.sample_shape,
        generator=torch.Generator().manual_seed(params.seed + 2),
        dtype=torch.float64,
    )
    reference = mixture_reference(mixture, N_REFERENCE)
    rows, pics = [], {}
    for name, model in {TRAINED: bed.model, EXACT: bed.oracle}.items():
        for k in params.steps:
            traj = baseline(params.trajectory_name, bed.schedule, k)
            x = sample("ddim", model, z, traj).x.double()
            q = mixture_sample_quality(x, mixture, reference=reference)
            gap = t_interval(mixture.log_prob(x).numpy() - reference.log_likelihood)
            rows.append(
                {
                    "model": name,
                    "K": k,
                    "log-likelihood gap": q.log_likelihood_gap,
                    "gap low": gap.low,
                    "gap high": gap.high,
                    "sliced W2": sliced_wasserstein(
                        x, true_x, generator=torch.Generator().manual_seed(0)
                    ),
                    "mode coverage": mode_coverage(x, mixture).coverage,
                }
            )
            pics[(name, k)] = x
    return pd.DataFrame(rows), pics, true_x


def run(params: Params) -> Result:
    """Sample every model at every K and score it."""
    plain, cond = make_testbed(IMAGE_TESTBED), make_testbed(CONDITIONAL_TESTBED)
    mix_bed = make_testbed(MIXTURE_TESTBED)
    fid, pictures = _images(params, plain, cond)
    mix, mix_samples, true_x = _mixture(params, mix_bed)
    ref = reference_statistics(IMAGE_TESTBED)
    return Result(
        params=params,
        cards={b.model_name: load_card(b.model_name) for b in (plain, cond, mix_bed)},
        fid=fid,
        pictures=pictures,
        mixture=mix,
        mixture_samples=mix_samples,
        true_samples=true_x,
        floor=float(ref.floor) if ref.floor is not None else float("nan"),
        n_floor=int(ref.n),
        classifier_accuracy=float(load_domain_classifier(ref.name).card["held_out_accuracy"]),
    )


# ===================================================================== rendering
def cards_table(result: Result) -> Any:
    """Each shipped checkpoint's card: size, training, final and held-out loss, sha256."""
    frame = pd.DataFrame(
        [
            {
                "model": name,
                "parameters": c["num_parameters"],
                "training steps": c["steps"],
                "final loss": c["final_loss"],
                "held-out loss": c["held_out_loss"],
                "sha256": str(c["sha256"])[:12],
            }
            for name, c in result.cards.items()
        ]
    )
    return styled(
        frame,
        formats={"parameters": "{:,}", "final loss": "{:.4f}", "held-out loss": "{:.4f}"},
        caption="The shipped checkpoints (data/models/*.json)",
    )


def fid_table(result: Result) -> Any:
    """Domain FID of every image model at every K, with its 95% bootstrap interval."""
    f = result.fid.copy()
    f["FID [95% interval]"] = [
        f"{v:.2f} [{lo:.2f}, {hi:.2f}]"
        for v, lo, hi in zip(f["domain FID"], f.low, f.high, strict=True)
    ]
    wide = f.pivot(index="model", columns="K", values="FID [95% interval]")
    wide = wide.loc[result.image_models]
    wide.columns = [f"K = {k}" for k in wide.columns]
    return wide.style.set_caption(
        f"Domain FID of {result.params.n_fid} DDIM samples ({result.params.trajectory_name}) "
        f"against the held-out digits; floor {result.floor:.2f} at {result.n_floor} real images"
    )


def mixture_table(result: Result) -> Any:
    """The two mixture models' exact scores at every K."""
    m = result.mixture.copy()
    m["gap 95% interval"] = [
        f"[{lo:.3f}, {hi:.3f}]" for lo, hi in zip(m["gap low"], m["gap high"], strict=True)
    ]
    cols = ["model", "K", "log-likelihood gap", "gap 95% interval", "sliced W2", "mode coverage"]
    return styled(
        m[cols],
        formats={"log-likelihood gap": "{:.4f}", "sliced W2": "{:.4f}", "mode coverage": "{:.2f}"},
        caption=(
            f"{MIXTURE_TESTBED}: the trained MLP and the exact eps* from the same "
            f"{result.params.n_mixture} starting points (log-likelihood gap in nats; 0 is perfect)"
        ),
    )


def figure_samples(result: Result) -> Any:
    """DDIM samples of the image models: one row per model and K, the same starting noise in
    every row (conditional rows labelled 0..9 from left to right), drawn as one mosaic."""
    keys = [(n, k) for n in result.image_models for k in result.params.steps]
    pad = 1
    tiles = []
    for key in keys:
        imgs = result.pictures[key][:, 0].numpy()  # [10, H, W]
        h, w = imgs.shape[1:]
        row = np.full((h + 2 * pad, N_PICTURED * (w + pad) + pad), np.nan)
        for j, img in enumerate(imgs):
            row[pad : pad + h, pad + j * (w + pad) : pad + j * (w + pad) + w] = img
        tiles.append(row)
    mosaic = np.vstack(tiles)
    fig, ax = plt.subplots(figsize=(PAGE_WIDTH * 0.75, 0.5 * len(keys) + 0.4))
    cmap = plt.get_cmap("gray_r").with_extremes(bad="white")
    ax.imshow(mosaic, cmap=cmap, vmin=-1, vmax=1, interpolation="nearest")
    row_h = mosaic.shape[0] / len(keys)
    ax.set_yticks(
        [(i + 0.5) * row_h for i in range(len(keys))],
        [f"{n.replace('digits-unet', 'unet')}, K={k}" for n, k in keys],
        fontsize=6,
    )
    ax.set_xticks([])
    ax.grid(False)
    for side in ax.spines.values():
        side.set_visible(False)
    fig.tight_layout()
    plt.close(fig)
    return fig


def figure_mixture(result: Result) -> Any:
    """True data, and the trained and the exact model's samples at the most steps."""
    k = max(result.params.steps)
    panels = [
        ("true data", result.true_samples),
        (f"{TRAINED}, K={k}", result.mixture_samples[(TRAINED, k)]),
        (f"{EXACT}, K={k}", result.mixture_samples[(EXACT, k)]),
    ]
    c = sns.color_palette("colorblind", 1).as_hex()[0]
    fig, axes = plt.subplots(
        1, 3, figsize=(PAGE_WIDTH, PAGE_WIDTH / 3 + 0.3), sharex=True, sharey=True
    )
    for ax, (title, x) in zip(axes, panels, strict=True):
        x = x.detach().cpu().numpy()
        ax.scatter(x[:, 0], x[:, 1], s=2, alpha=0.5, color=c, lw=0)
        ax.set(title=title, aspect="equal", xlabel="$x_1$")
    axes[0].set_ylabel("$x_2$")
    fig.tight_layout()
    plt.close(fig)
    return fig


# ===================================================================== the prose's numbers
@dataclass(frozen=True)
class Summary:
    """Every number the chapter's prose cites (glued by field name)."""

    floor: float
    n_floor: int
    classifier_acc: float
    n_fid_used: int
    k_max: int
    k_min: int
    fid_uncond: float
    fid_uncond_lo: float
    fid_uncond_hi: float
    fid_cond_best: float
    fid_cond_best_lo: float
    fid_cond_best_hi: float
    fid_cond_best_name: str
    mix_gap_trained: float
    mix_gap_exact: float
    mix_gap_trained_kmin: float
    mix_gap_exact_kmin: float


def summary(result: Result) -> Summary:
    p = result.params
    k_max, k_min = max(p.steps), min(p.steps)
    f = result.fid.set_index(["model", "K"])
    uncond = result.image_models[0]
    cond = result.fid[(result.fid.model != uncond) & (result.fid.K == k_max)]
    best = cond.loc[cond["domain FID"].idxmin()]
    m = result.mixture.set_index(["model", "K"])["log-likelihood gap"]
    return Summary(
        floor=result.floor,
        n_floor=result.n_floor,
        classifier_acc=100 * result.classifier_accuracy,
        n_fid_used=p.n_fid,
        k_max=k_max,
        k_min=k_min,
        fid_uncond=float(f.loc[(uncond, k_max), "domain FID"]),
        fid_uncond_lo=float(f.loc[(uncond, k_max), "low"]),
        fid_uncond_hi=float(f.loc[(uncond, k_max), "high"]),
        fid_cond_best=float(best["domain FID"]),
        fid_cond_best_lo=float(best["low"]),
        fid_cond_best_hi=float(best["high"]),
        fid_cond_best_name=str(best["model"]),
        mix_gap_trained=float(m[(TRAINED, k_max)]),
        mix_gap_exact=float(m[(EXACT, k_max)]),
        mix_gap_trained_kmin=float(m[(TRAINED, k_min)]),
        mix_gap_exact_kmin=float(m[(EXACT, k_min)]),
    )
