"""Findings round-trip through their CSV files and bad rows are named."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from vrg_analysis.evaluation.stats import aggregate
from vrg_analysis.studies.claims import (
    CLAIMS,
    Finding,
    Params,
    claim_rows,
    claims_html,
    page_summary,
    read_findings,
    write_findings,
)


def _finding(chapter: str = "quality_vs_steps", **kw: object) -> Finding:
    base = dict(
        claim="ddim-fid",
        chapter=chapter,
        finding="VRG lowers FID in 3 of 6 configurations",
        value=-0.25,
        ci_low=-0.5,
        ci_high=0.1,
        verdict="mixed",
        seeds="0, 1, 2",
    )
    base.update(kw)
    return Finding(**base)  # type: ignore[arg-type]


def test_round_trip_and_replacement(tmp_path: Path) -> None:
    write_findings(
        [_finding(), _finding(claim="few-steps", value=math.nan)], tmp_path, "quality_vs_steps"
    )
    write_findings([_finding("ablation", claim="gamma-ablation")], tmp_path, "ablation")
    got = read_findings(tmp_path)
    assert len(got) == 3
    assert got[0] == _finding("ablation", claim="gamma-ablation")
    assert math.isnan(next(f for f in got if f.claim == "few-steps").value)
    # rewriting a chapter replaces its rows only
    write_findings([_finding()], tmp_path, "quality_vs_steps")
    assert len(read_findings(tmp_path)) == 2


def test_bad_findings(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown claim"):
        _finding(claim="faster")
    with pytest.raises(ValueError, match="unknown verdict"):
        _finding(verdict="win")
    with pytest.raises(ValueError, match="written as"):
        write_findings([_finding()], tmp_path, "ablation")
    (tmp_path / "x.csv").write_text("claim,chapter\nddim-fid,x\n")
    with pytest.raises(ValueError, match="x.csv:2: malformed"):
        read_findings(tmp_path)


@pytest.mark.parametrize(
    ("counts", "verdict"),
    [
        ((3, 0, 0), "supported"),
        ((0, 2, 1), "contradicted"),
        ((0, 3, 0), "inconclusive"),
        ((1, 1, 1), "mixed"),
        ((2, 0, 1), "mixed"),
    ],
)
def test_verdict_from_counts(counts: tuple[int, int, int], verdict: str) -> None:
    wins, ties, losses = counts
    verdicts = ["supported"] * wins + ["inconclusive"] * ties + ["contradicted"] * losses
    assert aggregate(verdicts) == verdict


def test_verdict_from_no_counts() -> None:
    with pytest.raises(ValueError, match="no verdicts"):
        aggregate([])


def test_claim_ids_are_unique() -> None:
    assert len({c.id for c in CLAIMS}) == len(CLAIMS)


# ----------------------------------------------------------------- the claims page
def _audit_summary(verdicts: dict[str, str]) -> dict[str, dict]:
    return {
        a: {"verdict": v, "contradicted": int(v == "contradicted"), "tests": 3}
        for a, v in verdicts.items()
    }


def test_claim_rows_aggregate_findings_and_audits() -> None:
    fs = [
        _finding(verdict="supported"),
        _finding("ablation", verdict="contradicted"),
        _finding(claim="cpe-reduction", verdict="supported"),
    ]
    rows = {
        r.claim.id: r
        for r in claim_rows(
            fs, _audit_summary({"zero-mean": "supported", "transfer": "contradicted"})
        )
    }
    assert rows["ddim-fid"].verdict == "mixed" and len(rows["ddim-fid"].findings) == 2
    assert rows["cpe-reduction"].verdict == "supported"
    # the assumptions claim is a conjunction: one contradicted audit contradicts it
    assert rows["assumptions"].verdict == "contradicted" and len(rows["assumptions"].audits) == 2
    assert rows["cheap"].verdict == "not measured"
    s = page_summary(list(rows.values()))
    assert s.n_claims == len(CLAIMS) and s.n_findings == 3
    assert sum(s.counts.values()) == len(CLAIMS) and s.counts["n_not_measured"] >= 1


def test_claims_html_escapes_and_links(tmp_path: Path) -> None:
    (tmp_path / "ablation.ipynb").write_text("{}")
    rows = claim_rows([_finding("ablation", finding="a <b>bold</b> claim")], {})
    page = claims_html(rows, tmp_path)
    assert "&lt;b&gt;bold&lt;/b&gt;" in page and '<a href="ablation.html">' in page
    assert page.count("<tr>") >= len(CLAIMS)


def test_claims_page_refuses_missing_inputs(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="findings_dir"):
        Params(findings_dir=str(tmp_path / "nope"), verdict_dir=str(tmp_path))
