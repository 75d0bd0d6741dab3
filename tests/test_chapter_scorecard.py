"""The assumptions scorecard collects verdict tables and ranks what is contradicted."""

from __future__ import annotations

from pathlib import Path

import pytest

from vrg_analysis.assumptions.chapters import scorecard
from vrg_analysis.assumptions.verdicts import AuditResult, write_results


def _r(audit: str, verdict: str, effect: float, scope: str = "a=0.5") -> AuditResult:
    return AuditResult(
        audit, "t test", scope, 1.0, 0.01, effect, "d", 0.1, verdict, 100, source="model A"
    )


def test_scorecard_rows_counts_and_ranking(tmp_path: Path) -> None:
    verdicts = tmp_path / "verdicts"
    write_results(
        [_r("zero-mean", "supported", 0.01), _r("zero-mean", "contradicted", 0.5, "a=0.9")],
        verdicts,
        "audit_gaussian",
    )
    write_results([_r("transfer", "inconclusive", 0.05)], verdicts, "audit_transfer")
    (tmp_path / "calibration.csv").write_text(
        "test,scenario,target,rate,ci_low,ci_high,passed,replications\n"
        "mean,null,0.05,0.04,0.02,0.07,True,200\n"
        "permutation,null,0.05,0.12,0.08,0.16,False,200\n"
    )
    res = scorecard.run(scorecard.Params(verdict_dir=str(verdicts)))
    card = res.card.set_index("audit")
    assert card.loc["zero-mean", "verdict"] == "contradicted"
    assert card.loc["transfer", "verdict"] == "inconclusive"
    assert list(res.card.audit) == ["zero-mean", "transfer"]  # the scorecard's audit order
    assert res.contradictions.iloc[0]["worst at"] == "a=0.9"
    s = scorecard.summary(res)
    assert s.n_results == 3 and s.counts["n_tests_contradicted"] == 1
    assert s.n_cal_targets == 2 and s.n_cal_met == 1 and "permutation under null" in s.cal_note
    for table in (
        scorecard.card_table,
        scorecard.contradictions_table,
        scorecard.calibration_table,
    ):
        assert "<table" in table(res).to_html()


def test_scorecard_needs_verdict_tables(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        scorecard.Params(verdict_dir=str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no verdict table"):
        scorecard.Params(verdict_dir=str(tmp_path / "empty"))
