"""A model's quality against steps on tiny parameters: FID per baseline and K with intervals,
the paired "falls with K" judgement under Holm, the floor at the sample size, bad parameters."""

from __future__ import annotations

import math

import pytest
import torch

from vrg_analysis.studies import model_quality as mq

TINY = dict(steps=[1, 3, 12], n=60, n_boot=40, baselines=["time_uniform", "logsnr_uniform"])


@pytest.fixture(scope="module")
def result() -> mq.Result:
    torch.set_num_threads(1)
    return mq.run(mq.Params(**TINY))


def test_grid_intervals_and_pictures(result: mq.Result) -> None:
    f = result.fid
    assert len(f) == 6 and set(f.K) == {1, 3, 12}
    assert set(f.baseline) == {"time_uniform", "logsnr_uniform"}
    assert ((f.low <= f.FID) & (f.FID <= f.high) & (f.FID > 0)).all()
    assert result.pictures["time_uniform"].shape == (3, mq.N_PICTURED, 8, 8)
    assert result.model_name == "digits-unet" and len(result.model_sha256) == 64


def test_falls_is_judged_paired_with_holm(result: mq.Result) -> None:
    falls = result.falls
    assert list(falls.baseline) == ["time_uniform", "logsnr_uniform"]
    # the difference is FID(K_max) - FID(K_min) of the grid's own numbers
    for _, row in falls.iterrows():
        assert row["difference"] == pytest.approx(row["FID at K=12"] - row["FID at K=1"])
        assert row["low"] <= row["difference"] <= row["high"]
    assert set(falls.verdict) <= {"supported", "contradicted", "inconclusive"}
    assert (falls["p (Holm)"] >= 0).all() and (falls["p (Holm)"] <= 1).all()
    # one step of DDIM is far from the data: on the 8x8 digits FID falls on both baselines
    assert (falls.verdict == "supported").all()
    assert (falls["Spearman rho (K, FID)"] < 0).all()


def test_summary_and_the_floor_at_the_sample_size(result: mq.Result) -> None:
    s = mq.summary(result)
    assert (s.k_min, s.k_max, s.n, s.n_baselines) == (1, 12, 60, 2)
    assert s.n_falls == 2 and s.all_fall
    assert s.best_baseline in ("time_uniform", "logsnr_uniform")
    assert s.best_fid == min(s.fid_by_baseline_kmax.values())
    assert set(s.fid_by_baseline_kmax) == {"fid_kmax_time_uniform", "fid_kmax_logsnr_uniform"}
    # no floor is stored for 60 digits (only at the held-out size, 450): never compared
    assert math.isnan(result.floor) and math.isnan(s.best_ratio_to_floor)
    assert 90 < s.classifier_acc <= 100


def test_figures_and_tables_render(result: mq.Result) -> None:
    fig = mq.figure_fid(result)
    assert len(fig.axes) == 1 and fig.axes[0].get_xscale() == "log"
    assert len(mq.figure_samples(result, "logsnr_uniform").axes) == 1
    assert "K = 12" in mq.fid_table(result).to_html()
    assert "supported" in mq.falls_table(result).to_html()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"testbed": "mixture-2d"}, "parameter testbed"),
        ({"steps": [5]}, "two or more"),
        ({"baselines": ["uniform"]}, "parameter baselines"),
        ({"n": 3}, "parameter n"),
        ({"n_boot": 5}, "parameter n_boot"),
    ],
)
def test_bad_parameters_are_named(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        mq.Params(**kwargs)


def test_the_study_command_commits_a_result_that_the_book_finds(tmp_path, capsys) -> None:
    from vrg_analysis.cli import main
    from vrg_analysis.studies import artifacts

    args = ["study", "model_quality", "--params", "quick", "--out-dir", str(tmp_path)]
    tiny = ["--set", "n=12", "--set", "steps=[1, 2]", "--set", "n_boot=20"]
    assert main([*args, *tiny, "--set", "baselines=[time_uniform]"]) == 0
    assert "wrote" in capsys.readouterr().out
    params = mq.Params(n=12, steps=(1, 2), n_boot=20, baselines=("time_uniform",))
    found = artifacts.find_artifact(mq, params, directory=tmp_path)
    assert found is not None and found.params_set == "quick"
    assert artifacts.check_artifact(found).status == "current"
    again = found.result()
    assert repr(mq.summary(again)) == repr(mq.summary(mq.run(params)))  # NaN floors compare
    # a malformed override is one line naming the option
    assert main([*args, "--set", "n"]) == 2
    assert "--set 'n': expected NAME=VALUE" in capsys.readouterr().err
    assert main([*args, "--set", "n=-3"]) == 2
    assert "parameter n" in capsys.readouterr().err
