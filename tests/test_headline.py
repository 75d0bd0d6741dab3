"""The headline figure and the landing page's answer: computed from the claims page's rows, one
panel per unit, never a bare verdict."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pandas as pd
import pytest

from vrg_analysis.studies import claims, headline
from vrg_analysis.studies.claims import Finding

STUDIES = Path(headline.__file__).resolve().parent


def _finding(claim: str, chapter: str, model: str, size: str, verdict: str, **kw) -> Finding:
    values = dict(value=-1.5, ci_low=-2.5, ci_high=-0.5, seeds="0, 1, 2", finding="text")
    values.update(kw)
    return Finding(
        claim=claim,
        chapter=chapter,
        verdict=verdict,
        model=model,
        size=size,
        **values,
    )


FULL = "500 samples per arm × 3 seeds, K 5–20, full parameter set"
QUICK = "100 samples per arm × 3 seeds, K 5–10, quick CI parameters"
FINDINGS = [
    _finding("ddim-fid", "quality_vs_steps", "digits (digits-unet: …)", QUICK, "supported"),
    _finding(
        "ddim-fid", "quality_vs_steps", "fashion (fashion-unet: …)", FULL, "contradicted",
        value=2.0, ci_low=1.0, ci_high=3.0,
    ),
    _finding(
        "ddim-fid", "quality_vs_steps", "mixture-2d (mlp: …; errors against the exact ODE)",
        QUICK, "supported",
    ),
    _finding(
        "cheap", "optimisers", "mixture-2d (mlp: …)", QUICK, "supported",
        value=0.2, ci_low=math.nan, ci_high=math.nan,
    ),
    _finding(
        "few-steps", "quality_vs_steps", "fashion (fashion-unet: …)", FULL, "inconclusive",
        value=3.0, ci_low=-1.0, ci_high=7.0,
    ),
]  # fmt: skip


@pytest.fixture
def rows() -> list[claims.ClaimRow]:
    return claims.claim_rows(FINDINGS, {})


def test_every_claim_has_a_short_wording() -> None:
    assert set(headline.SHORT_CLAIMS) == {c.id for c in claims.CLAIMS}


def test_the_unit_follows_the_chapter_claim_and_model() -> None:
    by = {(f.claim, f.model.split(" (")[0]): f for f in FINDINGS}
    assert headline.finding_unit(by[("ddim-fid", "fashion")]).label.endswith(
        "FID (negative: VRG better)"
    )
    exact = headline.finding_unit(by[("ddim-fid", "mixture-2d")])
    assert "exact-ODE" in exact.label and exact.difference
    cheap = headline.finding_unit(by[("cheap", "mixture-2d")])
    assert cheap.label == "VRG solver wall time (s)" and not cheap.difference
    ablation = _finding("gamma-ablation", "ablation", "mixture-2d (mlp)", QUICK, "mixed")
    assert "Fréchet" in headline.finding_unit(ablation).label
    folder = _finding(
        "ddim-fid", "quality_vs_steps", "diffusers checkpoint ckpt, data d", QUICK, "mixed"
    )
    assert headline.finding_unit(folder).label.startswith("VRG − baseline, the run's set metric")
    with pytest.raises(ValueError, match="chapter 'mystery' on claim 'ddim-fid'"):
        headline.finding_unit(_finding("ddim-fid", "mystery", "digits (x)", QUICK, "mixed"))


def _claims_named(module: Path) -> set[str]:
    """The claim ids a chapter module names in its code (docstrings left out)."""
    tree = ast.parse(module.read_text())
    docs = {
        id(n.body[0].value)
        for n in ast.walk(tree)
        if isinstance(n, ast.Module | ast.FunctionDef | ast.ClassDef)
        and n.body
        and isinstance(n.body[0], ast.Expr)
        and isinstance(n.body[0].value, ast.Constant)
    }
    ids = {c.id for c in claims.CLAIMS}
    return {
        n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and n.value in ids and id(n) not in docs
    }


def test_every_chapter_that_writes_findings_has_their_units() -> None:
    """Every (chapter, claim) a study module can write a finding for has a registered unit, so
    the headline figure never fails on, or mislabels, a chapter's finding."""
    found = set()
    for module in sorted(STUDIES.glob("*.py")):
        text = module.read_text()
        if "Finding(" not in text or module.stem in ("claims", "headline"):
            continue
        chapter = ast.literal_eval(text.split("\nCHAPTER = ", 1)[1].split("\n", 1)[0])
        found |= {(chapter, c) for c in _claims_named(module)}
    assert ("quality_vs_steps", "few-steps") in found and ("optimisers", "cheap") in found
    assert found == set(headline._UNITS)


def test_the_frame_keeps_the_pages_order_and_scope(rows) -> None:
    frame = headline.headline_frame(rows)
    ddim = frame[frame.claim == "ddim-fid"]
    # the weightiest evidence first: the full-size run before the quick ones
    assert list(ddim["size"]) == ["full size", "quick CI", "quick CI"]
    assert ddim.iloc[0].row == "VRG lowers DDIM's FID · fashion · full size"
    assert ddim.iloc[0].verdict_text.startswith("not reproduced (the opposite measured) on fashion")
    cheap = frame[frame.claim == "cheap"].iloc[0]
    assert math.isnan(cheap.ci_low) and cheap.value == 0.2
    assert len(frame) == len(FINDINGS)
    # two findings on one claim, model and size are told apart by their subjects
    twin = [
        _finding("cpe-predicts-error", "predicted_vs_measured", "mixture-2d (mlp)", FULL,
                 "mixed", finding=f"mixture-2d, {what}: VRG lowers CPE")
        for what in ("image MSE (vs 100-step DDIM)", "error vs exact ODE")
    ]  # fmt: skip
    rows2 = headline.headline_frame(claims.claim_rows(twin, {})).row
    assert list(rows2) == [
        "lower CPE, lower error · mixture-2d · full size · image MSE (vs 100-step DDIM)",
        "lower CPE, lower error · mixture-2d · full size · error vs exact ODE",
    ]


def test_one_panel_per_unit_with_its_rows(rows, tmp_path: Path) -> None:
    frame = headline.headline_frame(rows)
    fig = headline.figure_headline(frame)
    assert len(fig.axes) == frame.unit.nunique() == 4
    sizes = sorted(len(ax.get_yticks()) for ax in fig.axes)
    assert sizes == [1, 1, 1, 2]
    labels = {t.get_text() for ax in fig.axes for t in ax.get_yticklabels()}
    assert "gain largest at few steps\nfashion · full size" in labels
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["reproduced", "not reproduced (the opposite measured)", "not settled"]
    csv, png = headline.write_headline(frame, fig, tmp_path / "figures")
    back = pd.read_csv(csv)
    assert list(back.row) == list(frame.row) and list(back.unit) == list(frame.unit)
    assert png.name == "headline.png" and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    empty = headline.figure_headline(frame.iloc[0:0])
    assert "no findings" in empty.axes[0].texts[0].get_text()


def test_the_answer_is_scoped_and_counts_every_claim(rows) -> None:
    a = headline.answer(rows)
    assert a.quality_text.startswith(
        "“VRG lowers DDIM's FID”: not reproduced (the opposite measured) on fashion at full size"
    )
    assert "“VRG helps with guidance”: not measured in this build" in a.quality_text
    assert "VRG − baseline = +2 FID (95% interval +1 to +3) on fashion" in a.headline_text
    assert "fashion at full size" in a.headline_text
    assert a.why_text.count("not measured in this build") == 3
    empty = headline.answer(claims.claim_rows([], {}))
    assert "not measured in this build" in empty.headline_text


def test_values_carry_their_unit_and_interval() -> None:
    by = {(f.claim, f.model.split(" (")[0]): f for f in FINDINGS}
    assert headline.value_text(by[("ddim-fid", "fashion")]) == "+2 FID [+1, +3]"
    assert headline.value_text(by[("cheap", "mixture-2d")]) == "0.2 s"
    assert headline.value_text(by[("few-steps", "fashion")]) == "+3 pp [-1, +7]"
    cut = _finding(
        "cpe-reduction", "published_profiles", "digits (x)", QUICK, "supported",
        value=36.25, ci_low=math.nan, ci_high=math.nan,
    )  # fmt: skip
    assert headline.value_text(cut) == "36.2%"
    nothing = _finding("cheap", "optimisers", "digits (x)", QUICK, "inconclusive", value=math.nan)
    assert headline.value_text(nothing) == ""


def test_the_short_table_has_short_cells_badges_and_links(tmp_path: Path) -> None:
    (tmp_path / "quality_vs_steps.ipynb").write_text("{}")
    audit = {
        "gaussianity": {"verdict": "contradicted", "contradicted": 3, "tests": 10},
        "zero-mean": {"verdict": "supported", "contradicted": 0, "tests": 8},
    }
    rows = claims.claim_rows(FINDINGS, audit)
    text = headline.short_table_html(rows, tmp_path)
    assert text.count("<tr>") == 1 + len(FINDINGS) + 2 + (len(claims.CLAIMS) - 5)
    assert "<td>fashion · full size</td><td>+2 FID [+1, +3]</td>" in text
    assert 'href="quality_vs_steps.html">details</a>' in text
    assert "optimisers" in text and 'href="optimisers.html"' not in text  # no such page here
    assert "audit gaussianity: 3 of 10 tests violated" in text and ">violated</span>" in text
    assert "not needed by CPE" in text
    assert ">not measured</span>" in text  # a claim without evidence says so
    # every cell is short: no finding's long text in the table
    cells = [c.split("</td>")[0] for c in text.split("<td")[1:]]
    assert max(len(c) for c in cells if "span" not in c) < 200
