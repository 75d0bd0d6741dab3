"""The guidance chapter on tiny parameters: one paired comparison per guidance scale, each judged
by the one rule within its own table, and the findings the claims page reads."""

from __future__ import annotations

import pytest
import torch

from vrg_analysis.studies import guidance as chapter

TINY = dict(
    guidance_scales=[2.0, 3.0],
    samplers=["ddim"],
    baselines=["time_uniform", "logsnr_uniform"],
    steps=[3, 5],
    seeds=[0, 1, 2],
    profile_samples=32,
    n_samples=12,
    reference_steps=6,
    n_boot=20,
)


@pytest.fixture(scope="module")
def result() -> chapter.Result:
    torch.set_num_threads(1)
    return chapter.run(chapter.Params(**TINY))


def test_one_guided_comparison_per_scale(result: chapter.Result) -> None:
    assert result.scales == ["w = 2", "w = 3"]
    scales = [r.config.guidance_scale for r in result.comparisons.values()]
    assert scales == [2.0, 3.0]
    # the guided predictor makes two model calls a step: a 5-step arm of 12 x 3 samples costs 360
    assert all(r.config.testbed == "digits-cond" for r in result.comparisons.values())
    t = result.table
    assert set(t.testbed) == set(result.scales)
    assert set(t.metric) == {"fid", "image_mse"}
    # 1 sampler x 2 baselines x 2 K per scale and metric
    assert all(len(result.rows(s, m)) == 4 for s in result.scales for m in ("fid", "image_mse"))
    # Holm within each scale x metric table: a verdict needs p_adj < 0.05
    for _, g in t.groupby(["testbed", "metric"]):
        decided = g[g.verdict != "inconclusive"]
        assert (decided["p (Holm)"] < 0.05).all()
        assert (g["p (Holm)"] >= 0).all() and (g["p (Holm)"] <= 1).all()


def test_the_guided_arms_differ_from_each_other(result: chapter.Result) -> None:
    """A stronger guidance scale samples other images from the same noise: the two scales'
    baseline arms are not the same run twice."""
    a, b = (result.comparisons[s] for s in result.scales)
    arm_a = a.arm("ddim", "time_uniform", 5, "baseline", 0).features
    arm_b = b.arm("ddim", "time_uniform", 5, "baseline", 0).features
    assert arm_a.shape == arm_b.shape
    assert not torch.allclose(torch.as_tensor(arm_a), torch.as_tensor(arm_b))


def test_summary_and_findings(result: chapter.Result) -> None:
    s = chapter.summary(result)
    assert s.set_n == 8 == s.set_supported + s.set_inconclusive + s.set_contradicted
    assert s.guidance_scales == "2 and 3"
    assert s.set_text.startswith("at w = 2 VRG is better in ")
    assert "; at w = 3 VRG" in s.set_text and s.image_mse_text.startswith("at w = 2 ")
    assert s.total_calls == result.model_calls > 0
    assert 0 <= s.cpe_down_pct <= 100
    fs = chapter.findings(result)
    assert [f.claim for f in fs] == ["guidance", "guidance"]
    assert all(f.chapter == "guidance" for f in fs)
    first, second = fs
    assert first.model.startswith("digits-cond (digits-unet-cond: ")
    assert "w = 2)" in first.model and "w = 3)" in second.model
    assert first.size.startswith("12 samples per arm × 3 seeds, K 3–5")
    assert first.size.endswith("custom parameters")
    # the headline value is DDIM on logSNR-uniform at the smallest K run (no K = 10 here)
    assert "at ddim logsnr_uniform K=3" in first.finding
    row = result.rows("w = 2").query("baseline == 'logsnr_uniform' and K == 3").iloc[0]
    assert first.value == pytest.approx(row.difference)


def test_figures_and_tables_render(result: chapter.Result) -> None:
    grid = chapter.figure_differences(result)
    assert len(grid.axes.flat) == 2  # one row per scale, one sampler
    texts = [t.get_text() for ax in grid.axes.flat for t in [ax.title, *ax.texts]]
    assert any("w = 3" in t for t in texts)  # the row's margin title
    html = chapter.table(result).to_html()
    assert "verdict" in html and "w = 3" in html
    counts = chapter.counts_table(result)
    assert list(counts.index) == [
        "w = 2: domain FID",
        "w = 2: deviation from the fine solve (MSE)",
        "w = 3: domain FID",
        "w = 3: deviation from the fine solve (MSE)",
    ]
    assert (counts.comparisons == 4).all()


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"model": "digits"}, "parameter model: guidance needs a class-conditional testbed"),
        ({"model": "cifar10"}, "parameter model"),
        ({"guidance_scales": [2.0, 2.0]}, "guidance_scales: one or more distinct"),
        ({"guidance_scales": []}, "guidance_scales"),
        ({"guidance_scales": [-1.0]}, "guidance_scales"),
        ({"seeds": [0, 1]}, "at least 3"),
        ({"samplers": ["euler"]}, "unknown value 'euler'"),
        ({"steps": [0, 5]}, "positive"),
        ({"n_boot": 5}, "n_boot must be >= 20"),
        ({"device": "tpu"}, "parameter device"),
    ],
)
def test_bad_parameters_are_named(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        chapter.Params(**kw)
