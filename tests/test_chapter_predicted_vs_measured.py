"""The predicted-vs-measured chapter on tiny parameters: its tables add up, the verdicts follow
the rule with Holm, the floor is what it says, and the estimators give known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vrg_analysis.core.trajectories import time_uniform
from vrg_analysis.samplers import initial_noise, sample
from vrg_analysis.studies import predicted_vs_measured as chapter
from vrg_analysis.studies.engine import setup_testbed

TINY = dict(
    baselines=["time_uniform", "logsnr_uniform"],
    steps=[3, 5],
    seeds=[0, 1],
    n_samples_image=12,
    n_samples_exact=24,
    reference_steps=10,
    n_boot=20,
    profile_samples=32,
)
VERDICTS = {"supported", "inconclusive", "contradicted"}


@pytest.fixture(scope="module")
def result() -> chapter.Result:
    torch.set_num_threads(1)
    return chapter.run(chapter.Params(**TINY))


def test_tables_cover_every_arm_and_configuration(result: chapter.Result) -> None:
    assert len(result.arms) == 2 * 4 * 2  # roles x configurations x (baseline, VRG)
    assert len(result.pairs) == 2 * 4
    ex = result.pairs[result.pairs.role == "exact"]
    for m in ("frechet", "image_mse", "exact_error"):
        assert set(ex[f"{m}_verdict"]) <= VERDICTS
        decided = ex[ex[f"{m}_verdict"] != "inconclusive"]
        assert (decided[f"{m}_p"] < 0.05).all()  # Holm-adjusted p-values decide
        # every VRG arm here lowers CPE, so "moves as CPE predicts" is "VRG lowers it"
        assert (ex.cpe_ratio < 1).all()
        assert list(ex[f"{m}_prediction"]) == list(ex[f"{m}_verdict"])
    assert {(s["role"], s["metric"]) for s in result.levels} == {
        ("image", "image_mse"),
        ("exact", "image_mse"),
        ("exact", "exact_error"),
    }
    for s in result.changes:
        assert s["supported"] + s["inconclusive"] + s["contradicted"] == s["n"] == 4
        assert 0 <= s["agree"] <= s["n"]


def test_decomposition_adds_up_and_baselines_have_no_start_effect(result: chapter.Result) -> None:
    d = result.decomposition
    base = d.xs("baseline", level="variant")
    assert (base["start-level effect"] == 0.0).all()
    assert np.allclose(
        d["exact error (own start)"],
        d["discretisation"] + d["propagated model error"] + d["cross term (split)"],
    )
    assert np.allclose(
        d["exact error (baselines' start)"], d["image MSE"] + d["floor"] + d["cross terms"]
    )


def test_the_floor_is_the_fine_solve_against_the_exact_ode(result: chapter.Result) -> None:
    p = result.params
    setup = setup_testbed(p.configs()["exact"])
    fine = time_uniform(setup.schedule, p.reference_steps)
    errs = []
    for seed in p.seeds:
        x_t = initial_noise((p.n_samples_exact, *setup.shape), seed)
        with torch.no_grad():
            x_ref = sample("ddim", setup.model, x_t, fine).x.double()
        x_star = setup.exact_endpoint(x_t, float(fine.alpha_bar[0])).double()
        errs.append((x_ref - x_star).pow(2).mean(1).numpy())
    assert result.floor.estimate == pytest.approx(float(np.concatenate(errs).mean()), rel=1e-6)
    assert result.floor.low <= result.floor.estimate <= result.floor.high


def test_summary_and_findings(result: chapter.Result) -> None:
    s = chapter.summary(result)
    assert s.n_configs == 4 and s.k_min == 3 and s.k_max == 5
    assert s.n_vrg_arms == 8 and s.n_moved <= 8
    assert s.floor_lo <= s.floor <= s.floor_hi
    assert {"img_image_mse_slope", "ex_exact_error_over_word"} <= set(s.levels)
    assert {"img_set_supported", "ex_set_crho", "ex_exact_error_agree_pct"} <= set(s.changes)
    fs = chapter.findings(result)
    assert len(fs) == 3
    assert {f.claim for f in fs} == {"cpe-predicts-error"}
    assert all(f.chapter == "predicted_vs_measured" for f in fs)
    # the scope: each finding names its testbed and that testbed's samples x seeds
    p = result.params
    n = {p.image_testbed: p.n_samples_image, p.exact_testbed: p.n_samples_exact}
    for f in fs:
        name = f.model.split(" (")[0]
        assert name in n and f.finding.startswith(f"{name}, ")
        assert f.size.startswith(f"{n[name]} samples per arm × 2 seeds, K 3–5 (2 values)")
        assert f.size.endswith("custom parameters")
        assert ("errors against the exact ODE" in f.model) == (name == p.exact_testbed)
    assert {f.model.split(" (")[0] for f in fs} == set(n)
    assert "image MSE" in chapter.findings_markdown(result)
    assert chapter.changes_markdown(result).count("\n* ") == 4  # five bullets


def test_figures_and_tables_render(result: chapter.Result) -> None:
    for fig in (
        chapter.figure_levels(result),
        chapter.figure_changes(result),
        chapter.figure_quality(result),
        chapter.figure_decomposition(result),
    ):
        assert fig.axes[0].get_subplotspec().get_gridspec().ncols <= 3
        assert all(ax.get_xlabel() and ax.get_ylabel() for ax in fig.axes if ax.get_visible())
    html = chapter.change_table(result, "exact").to_html()
    assert "lowers exact err." in html and "background-color" in html
    assert "floor" in chapter.decomposition_table(result).to_html()
    assert "propagated" in chapter.split_table(result).to_html()


def test_panels_wrap_at_three_columns() -> None:
    fig, blocks = chapter._panel_axes(2, 4)
    assert fig.axes[0].get_subplotspec().get_gridspec().ncols == 3
    assert [len(b) for b in blocks] == [4, 4]
    assert sum(ax.get_visible() for ax in fig.axes) == 8


def test_ratio_and_arm_intervals_known_answers() -> None:
    rng = np.random.default_rng(1)
    base = [rng.random(30) + 0.5, rng.random(30) + 0.5]
    iv = chapter.ratio_interval(base, [2.0 * b for b in base], 50)
    assert iv.estimate == pytest.approx(2.0) and iv.low == pytest.approx(2.0)
    assert iv.high == pytest.approx(2.0)
    one = chapter.arm_interval([np.full(10, 0.3), np.full(5, 0.3)], 30)
    assert (one.estimate, one.low, one.high) == pytest.approx((0.3, 0.3, 0.3))
    spread = chapter.arm_interval(base, 200)
    assert spread.low < float(np.concatenate(base).mean()) < spread.high


def test_prediction_verdicts_follow_the_predicted_sign() -> None:
    got = chapter.prediction_verdicts(
        [0.5, 0.5, 2.0, 2.0, 0.5], [-1.0, 1.0, 1.0, -1.0, -1.0], [0.01, 0.01, 0.01, 0.01, 0.5]
    )
    assert got == ["supported", "contradicted", "supported", "contradicted", "inconclusive"]


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"steps": [5]}, "at least 2 distinct"),
        ({"steps": "5, 10"}, "must be a list"),
        ({"seeds": [0]}, "at least 2"),
        ({"n_boot": 10}, "n_boot must be >= 20"),
        ({"baselines": ["linear"]}, "unknown value 'linear'"),
        ({"n_samples_exact": 1}, "n_samples_exact must be >= 2"),
    ],
)
def test_bad_parameters_are_named(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        chapter.Params(**kw)


def test_configs_share_the_noise_and_the_reference() -> None:
    cfgs = chapter.Params(steps="[10, 5]").configs()
    assert cfgs["image"].steps == (5, 10) and cfgs["exact"].decompose
    assert cfgs["floor"].steps == (200,) and cfgs["floor"].reference_steps == 0
    assert cfgs["floor"].arms[0].gamma == 0.0  # the baseline unchanged
