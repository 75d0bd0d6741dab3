"""The official CIFAR-10 chapter: the reference CPE values come out of the library, a missing
reference folder is refused by name, and the findings are never empty."""

from __future__ import annotations

import math
from pathlib import Path

import nbformat
import pytest
import torch
from scipy import stats

from vrg_analysis import cli
from vrg_analysis.studies import official_cifar10 as chapter
from vrg_analysis.studies.claims import QUICK_PARAMETERS, params_label
from vrg_analysis.studies.cpe_ranking import rank_concordance


@pytest.fixture(scope="module")
def result(official_dir: Path) -> chapter.Result:
    torch.set_num_threads(1)
    return chapter.run(
        chapter.Params(reference_dir=str(official_dir), mlp_epochs=3, sweep_steps=[10, 20])
    )


def test_reference_values(result: chapter.Result) -> None:
    """Official CIFAR-10 profile, order-1 10-step time-quadratic DPM-Solver trajectory: CPE
    0.501388, after the official optimiser 0.423855 (as the official output file reports), and
    0.418942 with the exact solver."""
    s = chapter.summary(result)
    assert abs(s.cpe_base - 0.501388) < 1e-6
    assert abs(s.cpe_official - 0.423855) < 1e-6
    assert abs(s.cpe_exact - 0.418942) < 1e-6
    assert (s.reported_base, s.reported_official) == (0.501388, 0.423855)  # read from the file
    assert s.cpe_keep < s.cpe_base and s.cpe_exact < s.cpe_keep
    assert abs(s.exact_reduction - 100 * (1 - s.cpe_exact / s.cpe_base)) < 1e-9
    assert s.exact_shift > 50 and s.official_shift > 50  # most of the gain: the start level
    assert s.mlp_epochs_used == 3 and s.cpe_mlp < s.cpe_base


def test_sweep_and_findings(result: chapter.Result) -> None:
    sw = result.sweep
    assert len(sw) == 6 and set(sw.K) == {10, 20}
    assert (sw["VRG %"] > sw["VRG start held %"]).all()
    s = chapter.summary(result)
    assert s.sweep_all_converged == "True"
    # the official time-uniform file at K = 10: 0.430 -> 0.386 on the official profile
    assert round(s.uniform10_before, 3) == 0.430 and round(s.uniform10_after, 3) == 0.386
    # the paper's published check (0.327 -> 0.191) belongs to the half-step-offset uniform grid
    assert round(s.offset10_before, 5) == 0.32715 and s.offset10_after < s.offset10_before
    f, start, rank = chapter.findings(result)
    assert rank.claim == "cpe-predicts-error" and rank.verdict == "inconclusive"
    assert start.claim == "start-level" and start.verdict == "contradicted" == s.split_verdict
    assert "the published CPE cut is the start level's" in start.finding
    assert f.claim == "cpe-reduction" and f.verdict == "supported" == s.offset10_verdict
    assert "CPE 0.32715 -> " in f.finding and "0.327 -> 0.191" in f.finding
    assert "its baseline value is reproduced" in f.finding and "0.430 -> 0.386" in f.finding
    # the scope: the official profile file the parameters' folder holds, one exact trajectory
    assert (Path(result.params.reference_dir) / chapter.PROFILE_FILE).is_file()
    assert f.model.startswith(f"official CIFAR-10 error profile ({chapter.PROFILE_FILE}")
    assert f.size.startswith("K=10, exact CPE of one trajectory") and "no sampling" in f.size
    assert f.size.endswith("custom parameters")  # mlp_epochs=3 is neither quick nor full
    assert f.verdict_text == "reproduced on official CIFAR-10 error profile at custom size"


def test_the_parameter_set_is_named(official_dir: Path) -> None:
    quick = chapter.Params(reference_dir=str(official_dir))
    assert params_label(quick, chapter.CHAPTER) == QUICK_PARAMETERS
    full = chapter.Params(reference_dir=str(official_dir), mlp_epochs=3000)
    assert params_label(full, chapter.CHAPTER) == "full parameter set"


def test_figure_and_tables_render(result: chapter.Result) -> None:
    fig = chapter.figure_official(result)
    assert len(fig.axes) == 2
    html = chapter.headline_table(result).to_html()
    assert "official VRG output" in html and "MLP + SGD, 3 epochs" in html
    assert "VRG start held %" in chapter.sweep_table(result).to_html()
    split = chapter.start_split_table(result).to_html()
    assert "start level only moved" in split and "start level put back" in split


def test_start_level_split_of_the_official_output(result: chapter.Result) -> None:
    """Issue 14, item 7: baseline 0.5014, official output 0.4239, the baseline with only its start
    level moved 0.4227 (lower than VRG's), the output with its start put back 0.5027 (higher than
    the baseline); the penalty at lambda = 100 is about 6e-8."""
    s = chapter.summary(result)
    assert round(s.split_start_only, 4) == 0.4227 and round(s.split_start_held, 4) == 0.5027
    assert (s.split_start_base, s.split_start_vrg) == (4.036e-05, 6.5e-05)
    assert s.split_gain_start_only > s.split_gain > 0 > s.split_gain_start_held
    assert 5e-8 < s.split_penalty < 7e-8
    assert s.exact_split_verdict in ("contradicted", "mixed")


def test_the_lambda_scales_reconciled(result: chapter.Result) -> None:
    """Issue 14, item 8: at the official output's move of the start level (4.036e-5 -> 6.5e-5),
    the public code's penalty on alpha_bar_K is 6.1e-8 at lambda = 100 and 6.1e-6 at the paper's
    1e4, against a CPE of 0.5014 - 0.4227 = 0.0787 the move buys: neither outweighs the move.
    On log alpha_bar_K (d = ln(6.5 / 4.036) = 0.4765) both weights would hold it, 22.7 and 2271."""
    frame = chapter.penalty_scales(result.split, (100.0, chapter.PAPER_LAMBDA))
    assert list(frame["penalty on"].unique()) == list(chapter.PENALTY_FORMS)
    by = {(r["penalty on"], r["lambda"]): r for _, r in frame.iterrows()}
    public = by[("alpha_bar_K (the public code)", 100.0)]
    assert math.isclose(public["move d"], 6.5e-5 - 4.036e-5, rel_tol=1e-9)
    assert math.isclose(public["penalty lambda d^2"], 100 * (2.464e-5) ** 2, rel_tol=1e-9)
    assert math.isclose(public["CPE the move buys"], 0.0787, abs_tol=5e-5)
    assert not public["outweighs the move"]
    assert not by[("alpha_bar_K (the public code)", 1e4)]["outweighs the move"]
    log = by[("log alpha_bar_K", 100.0)]
    assert math.isclose(log["move d"], math.log(6.5 / 4.036), rel_tol=1e-9)
    assert math.isclose(log["penalty lambda d^2"], 22.7, abs_tol=0.05) and log["outweighs the move"]
    sigma = by[("sigma_K", 100.0)]
    expected = math.sqrt((1 - 6.5e-5) / 6.5e-5) - math.sqrt((1 - 4.036e-5) / 4.036e-5)
    assert math.isclose(sigma["move d"], expected, rel_tol=1e-9) and sigma["outweighs the move"]
    s = chapter.summary(result)
    assert s.paper_lambda == 1e4
    assert s.penalty_text.startswith(
        "on alpha_bar_K (the public code) the penalty is 7.7e-07 (lambda = 100) and 7.7e-05 "
        "(lambda = 10000) times the CPE the move buys"
    )
    assert "(it outweighs the move at neither lambda)" in s.penalty_text
    assert (
        "on log alpha_bar_K" in s.penalty_text
        and "it outweighs the move at lambda = 100 and 10000" in s.penalty_text
    )
    html = chapter.penalty_table(result).to_html()
    assert "sigma_K" in html and "outweighs the move" in html


def test_a_missing_reference_folder_is_an_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "vrg-official"
    with pytest.raises(ValueError, match=f"reference_dir.*{missing.name}.*does not exist"):
        chapter.Params(reference_dir=str(missing))
    missing.mkdir()
    (missing / chapter.PROFILE_FILE).write_text("1 0.5 0.1\n")
    with pytest.raises(ValueError, match="lacks the official file"):
        chapter.Params(reference_dir=str(missing))


def test_an_empty_reference_dir_means_the_default_places(
    official_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VRG_REFERENCE_DIR", str(official_dir))
    assert chapter.Params(reference_dir="").folder == official_dir
    monkeypatch.setattr(chapter, "official_reference_dir", lambda: None)
    with pytest.raises(ValueError, match="reference_dir: the official VRG files were not found"):
        chapter.Params(reference_dir="")


def test_reported_cpe_reads_the_header(tmp_path: Path) -> None:
    p = tmp_path / "opt.txt"
    p.write_text("# order : 1\n# cpe  :   0.5 =>   0.25\n0.9\n0.1\n")
    assert chapter.reported_cpe(p) == (0.5, 0.25)
    p.write_text("# order : 1\n0.9\n")
    assert chapter.reported_cpe(p) is None


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"mlp_epochs": 0}, "mlp_epochs must be >= 1"),
        ({"sweep_steps": "10"}, "must be a list"),
        ({"gamma": 1.0}, "gamma must be <"),
        ({"reg_lambda": -1.0}, "reg_lambda must be >="),
    ],
)
def test_bad_parameters_are_named(official_dir: Path, kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        chapter.Params(reference_dir=str(official_dir), **kw)


def test_without_the_files_the_build_gets_a_notice_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    notebook = tmp_path / "official_cifar10.ipynb"
    notebook.write_text("not a notebook")
    monkeypatch.setattr(cli, "official_reference_dir", lambda: None)
    assert cli.main(["official-files"]) == 2  # no files, no notice asked: an error
    assert notebook.read_text() == "not a notebook"
    assert cli.main(["official-files", "--notice", str(notebook)]) == 0
    nb = nbformat.read(notebook, as_version=4)
    nbformat.validate(nb)
    assert [c.cell_type for c in nb.cells] == ["markdown"]
    assert "not run on the machine that built this book" in nb.cells[0].source
    assert chapter.PROFILE_FILE in nb.cells[0].source


def test_with_the_files_the_chapter_is_left_alone(
    official_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    notebook = tmp_path / "official_cifar10.ipynb"
    notebook.write_text("the chapter")
    monkeypatch.setattr(cli, "official_reference_dir", lambda: official_dir)
    assert cli.main(["official-files", "--notice", str(notebook)]) == 0
    assert notebook.read_text() == "the chapter"
    assert capsys.readouterr().out.strip() == str(official_dir)


def test_does_cpe_rank_the_paper_s_trajectories(result: chapter.Result) -> None:
    """Issue 14, item 9, on the paper's own numbers: time-quadratic has the highest CPE at every
    K (0.501 at K = 10) and the best or second-best FID; of 12 same-K pairs 5 are concordant,
    6 discordant, 1 tied in FID (time-quadratic and time-uniform at K = 50, both 4.8)."""
    r = result.ranks
    assert len(r) == 12 and set(r.K) == {10, 20, 50, 100}
    assert (r[r.baseline == "time_quadratic"]["CPE rank"] == 3).all()
    assert rank_concordance(r, y="published FID")[:3] == (5, 6, 1)
    k10 = r[r.K == 10].set_index("baseline")
    assert round(k10.loc["time_quadratic", "CPE"], 3) == 0.501
    assert round(k10.loc["logsnr_uniform", "CPE"], 3) == 0.468
    s = chapter.summary(result)
    assert s.rank_verdict == "inconclusive" and s.rank_p == pytest.approx(1.0)
    fig = chapter.figure_cpe_rank(result)
    assert len(fig.axes) == 1
    assert "published FID" in chapter.cpe_rank_table(result).to_html()


def test_rank_concordance_on_known_frames() -> None:
    import pandas as pd

    same = pd.DataFrame({"K": [5] * 3, "CPE": [0.1, 0.2, 0.3], "published FID": [1.0, 2.0, 3.0]})
    assert rank_concordance(same, y="published FID")[:3] == (3, 0, 0)
    flipped = same.assign(**{"published FID": [3.0, 2.0, 1.0]})
    conc, disc, ties, p = rank_concordance(flipped, y="published FID")
    assert (conc, disc, ties) == (0, 3, 0) and p == pytest.approx(0.25)  # binomtest(0, 3)
    # within one K, (concordant - discordant) / pairs is Kendall's tau-a (scipy's, untied)
    mixed = same.assign(**{"published FID": [2.0, 1.0, 3.0]})
    conc, disc, _, _ = rank_concordance(mixed, y="published FID")
    tau = stats.kendalltau(mixed["CPE"], mixed["published FID"]).statistic
    assert (conc - disc) / 3 == pytest.approx(tau)
    tied = same.assign(**{"published FID": [1.0, 1.0, 1.0]})
    assert rank_concordance(tied, y="published FID")[2] == 3 and math.isnan(
        rank_concordance(tied, y="published FID")[3]
    )
