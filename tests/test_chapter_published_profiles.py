"""The published-profiles chapter on tiny parameters: an own profile, a profile file, the sweep's
verdicts, and (with the official files) the exact solver against the official optimiser."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from vrg_analysis.core.profile import ErrorProfile
from vrg_analysis.core.schedules import NoiseSchedule
from vrg_analysis.core.trajectories import baseline
from vrg_analysis.studies import published_profiles as chapter
from vrg_analysis.vrg.objective import ratio_bounds, ratios_to_trajectory

TINY = dict(
    model_name="mixture-2d",
    n_samples=32,
    timestep_stride=50,
    baselines=["time_uniform", "logsnr_uniform"],
    steps=[5, 10],
)


@pytest.fixture(scope="module")
def result() -> chapter.Result:
    torch.set_num_threads(1)
    return chapter.run(chapter.Params(**TINY))


def test_own_profile_and_sweep(result: chapter.Result) -> None:
    assert "Algorithm 1 on the shipped mixture-2d-mlp model, 32 training samples" in (
        result.source_phrase
    )
    s = result.sweep
    assert len(s) == 4 and set(s.baseline) == {"time_uniform", "logsnr_uniform"}
    assert set(s.verdict) <= {"supported", "contradicted"}
    # the verdict is exactly "CPE fell"
    assert ((s["CPE VRG"] < s["CPE before"]) == (s.verdict == "supported")).all()
    # holding the start level is a constraint: it can never beat the penalised optimum by much
    assert (s["CPE VRG"] <= s["CPE VRG, start held"] + 1e-9).all()
    assert (s["a_K before"] == s["a_K before"].iloc[0]).all()  # every baseline starts at T
    assert result.comparison.empty and result.base_dlog == ()


def test_summary_and_findings(result: chapter.Result) -> None:
    s = chapter.summary(result)
    assert s.n_configs == 4 and 0 <= s.n_lowered <= 4
    assert s.cpe_claim_verdict in ("supported", "contradicted", "mixed")
    assert "official_dir is empty" in s.official_sentence
    assert s.ci_sentence.startswith("Shaded: the 95% interval of the MSE over the 32 samples")
    assert s.range_pen.count(" to ") == 1
    (f,) = chapter.findings(result)
    assert f.claim == "cpe-reduction" and f.chapter == "published_profiles"
    assert f.verdict == s.cpe_claim_verdict and math.isclose(f.value, s.med_pen)
    # the scope: the testbed whose profile it is, the profile's rows, K and the parameter set
    p = result.params
    assert f.model.startswith(f"{p.model_name} (mixture-2d-mlp: ")
    assert f"Algorithm 1 on {p.n_samples} training samples" in f.size
    assert f.size.startswith("K 5–10 (2 values)") and f.size.endswith("custom parameters")


def test_figures_and_tables_render(result: chapter.Result) -> None:
    for fig in (chapter.figure_profile(result), chapter.figure_sweep(result)):
        assert len(fig.axes) == 2
    assert "background-color" in chapter.sweep_table(result).to_html()  # verdict badges
    assert "none in this run" in chapter.comparison_table(result).to_html()


def test_at_upper_edge_counts_ratios_at_the_gamma_box(result: chapter.Result) -> None:
    sched = NoiseSchedule.linear()
    tr = baseline("time_uniform", sched, 5)
    res = chapter.optimise(
        tr, result.profile, sched, gamma=0.01, reg_lambda=100.0, keep_start=False
    )
    _, _, upper = ratio_bounds(tr, 0.01)
    corner = ratios_to_trajectory(upper, "corner")
    assert chapter.at_upper_edge(replace(res, optimized=corner)) == 5  # the box's corner
    assert chapter.at_upper_edge(replace(res, optimized=tr)) == 0  # the start: inside the box
    half = ratios_to_trajectory(np.r_[upper[:2], ratio_bounds(tr, 0.01)[0][2:]], "half")
    assert chapter.at_upper_edge(replace(res, optimized=half)) == 2


def test_profile_file_round_trip_and_schedule_check(result: chapter.Result, tmp_path: Path) -> None:
    path = result.profile.save(tmp_path / "p.npz")
    again = chapter.run(
        chapter.Params(profile_path=str(path), baselines=["time_uniform"], steps=[5])
    )
    assert "p.npz (an ErrorProfile archive)" in again.source_phrase
    cosine = ErrorProfile(
        alpha_bar=result.profile.alpha_bar, mse=result.profile.mse, metadata={"schedule": "cosine"}
    ).save(tmp_path / "c.npz")
    with pytest.raises(ValueError, match="profiled on the 'cosine' schedule"):
        chapter.run(chapter.Params(profile_path=str(cosine)))


def test_a_profile_that_misses_levels_is_refused(tmp_path: Path) -> None:
    narrow = ErrorProfile(alpha_bar=np.array([0.1, 0.5, 0.9]), mse=np.ones(3)).save(
        tmp_path / "n.npz"
    )
    with pytest.raises(ValueError, match="the profile covers alpha_bar in"):
        chapter.run(chapter.Params(profile_path=str(narrow)))


def test_official_comparison(official_dir: Path) -> None:
    params = chapter.Params(
        profile_path=str(official_dir / "MSE_vs_alpha_bar_cifar10.txt"),
        official_dir=str(official_dir),
        baselines=["time_quadratic"],
        steps=[10],
    )
    res = chapter.run(params)
    (row,) = res.comparison.to_dict("records")
    # the official files report CPE 0.501388 -> 0.423855; the exact solver reaches 0.418942
    assert abs(row["CPE official baseline file"] - 0.501388) < 1e-6
    assert abs(row["CPE official VRG"] - 0.423855) < 1e-6
    assert abs(row["CPE ours"] - 0.418942) < 1e-6
    assert row["objective ours"] < row["objective official"]
    assert len(res.base_dlog) == 1 and res.base_dlog[0] < 1e-3
    assert "a lower objective" in chapter.summary(res).official_sentence
    (f,) = chapter.findings(res)
    assert f.model.startswith("official CIFAR-10 error profile (MSE_vs_alpha_bar_cifar10.txt")
    assert f.size.startswith("K=10, a profile of ") and f.size.endswith("custom parameters")


def test_official_stands_for_the_official_folder(
    official_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VRG_REFERENCE_DIR", str(official_dir))
    params = chapter.Params(profile_path="official", official_dir="official")
    assert Path(params.profile_path) == official_dir / "MSE_vs_alpha_bar_cifar10.txt"
    assert Path(params.official_dir) == official_dir
    monkeypatch.setattr(chapter, "official_reference_dir", lambda: None)
    with pytest.raises(ValueError, match="official_dir = 'official': the official VRG files"):
        chapter.Params(official_dir="official")


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"profile_path": "/no/such/profile.txt"}, "parameter profile_path"),
        ({"official_dir": "/no/such/folder"}, "official_dir: folder"),
        ({"second_column": "beta"}, "second_column: unknown value"),
        ({"schedule": "sigmoid"}, "schedule: unknown value"),
        ({"model_name": "cifar10"}, "model_name: unknown value"),
        ({"steps": "5, 10"}, "must be a list"),
        ({"baselines": ["karras2"]}, "unknown value 'karras2'"),
        ({"gamma": 0.0}, "gamma must be >"),
    ],
)
def test_bad_parameters_are_named(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        chapter.Params(**kw)
