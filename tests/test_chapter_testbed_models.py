"""The testbed-models chapter on tiny parameters: cards, FIDs with intervals, the mixture's
trained and exact models, and the estimator behind each FID interval."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vrg_analysis.studies import testbed_models as chapter

TINY = dict(steps=[2, 4], n_fid=24, guidance_scales=[1.0, 2.0], n_mixture=64, n_boot=20)


@pytest.fixture(scope="module")
def result() -> chapter.Result:
    torch.set_num_threads(1)
    return chapter.run(chapter.Params(**TINY))


def test_cards_and_fids(result: chapter.Result) -> None:
    assert set(result.cards) == {"digits-unet", "digits-unet-cond", "mixture-2d-mlp"}
    assert all(len(c["sha256"]) == 64 for c in result.cards.values())
    f = result.fid
    assert result.image_models == [
        "digits-unet",
        "digits-unet-cond, w=1 (conditional, no guidance)",
        "digits-unet-cond, w=2 (guided)",
    ]
    assert len(f) == 6 and set(f.K) == {2, 4}
    assert ((f.low <= f["domain FID"]) & (f["domain FID"] <= f.high)).all()
    assert (f["domain FID"] > 0).all()
    assert result.pictures[("digits-unet", 2)].shape == (10, 1, 8, 8)
    assert result.n_floor == 450 and 0 < result.floor < 10


def test_mixture_models(result: chapter.Result) -> None:
    m = result.mixture
    assert set(m.model) == {chapter.TRAINED, chapter.EXACT} and len(m) == 4
    assert (
        (m["gap low"] <= m["log-likelihood gap"]) & (m["log-likelihood gap"] <= m["gap high"])
    ).all()
    assert (m["mode coverage"] <= 1).all() and (m["sliced W2"] > 0).all()
    # both models start from the same noise: their samples differ only by the predictor
    a = result.mixture_samples[(chapter.TRAINED, 4)]
    b = result.mixture_samples[(chapter.EXACT, 4)]
    assert a.shape == b.shape == (64, 2) and not torch.equal(a, b)


def test_summary(result: chapter.Result) -> None:
    s = chapter.summary(result)
    assert (s.k_min, s.k_max, s.n_fid_used) == (2, 4, 24)
    assert s.fid_uncond_lo <= s.fid_uncond <= s.fid_uncond_hi
    assert s.fid_cond_best_name.startswith("digits-unet-cond")
    f = result.fid
    cond = f[(f.model != "digits-unet") & (f.K == 4)]
    assert s.fid_cond_best == cond["domain FID"].min()
    assert 90 < s.classifier_acc <= 100


def test_figures_and_tables_render(result: chapter.Result) -> None:
    grid = chapter.figure_samples(result)
    assert len(grid.axes) == 1 and len(grid.axes[0].get_yticklabels()) == 6  # models x K
    assert len(chapter.figure_mixture(result).axes) == 3
    assert "K = 4" in chapter.fid_table(result).to_html()
    assert "gap 95% interval" in chapter.mixture_table(result).to_html()
    assert "sha256" in chapter.cards_table(result).to_html()


def test_set_metric_interval_known_answers() -> None:
    rng = np.random.default_rng(0)
    d = 3
    moments = (np.zeros(d), np.eye(d))
    x = rng.standard_normal((4000, d))
    iv = chapter.set_metric_interval(x, moments, n_boot=50)
    assert iv.estimate < 0.01 and iv.low <= iv.estimate <= iv.high  # drawn from the reference
    shift = np.array([1.0, 0.0, 0.0])
    iv2 = chapter.set_metric_interval(x + shift, moments, n_boot=50)
    assert abs(iv2.estimate - 1.0) < 0.1  # F1 = |c|^2 for a shifted mean
    assert iv2.low < 1.0 < iv2.high or abs(iv2.estimate - 1.0) < 0.05


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"steps": [0, 5]}, "positive"),
        ({"trajectory_name": "uniform"}, "trajectory_name: unknown value"),
        ({"n_fid": 5}, "n_fid must be >= 10"),
        ({"guidance_scales": "3.0"}, "must be a list"),
        ({"n_boot": 10}, "n_boot must be >= 20"),
    ],
)
def test_bad_parameters_are_named(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        chapter.Params(**kw)
