"""Findings round-trip through their CSV files and bad rows are named."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from vrg_analysis.studies.claims import (
    CLAIMS,
    Finding,
    read_findings,
    verdict_from_counts,
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
    assert verdict_from_counts(*counts) == verdict


def test_verdict_from_no_counts() -> None:
    with pytest.raises(ValueError, match="no verdicts"):
        verdict_from_counts(0, 0, 0)


def test_claim_ids_are_unique() -> None:
    assert len({c.id for c in CLAIMS}) == len(CLAIMS)
