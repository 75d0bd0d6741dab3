"""The assumptions scorecard: every audit chapter's verdict table, collected and ranked.

Each audit notebook writes ``<verdict_dir>/<notebook>.csv`` (:func:`~vrg_analysis.assumptions.
verdicts.write_results`); the calibration chapter writes ``calibration.csv`` beside the executed
chapters. :func:`run` reads them back and builds one row per (audited model, audit): the overall
verdict (:func:`~vrg_analysis.assumptions.verdicts.summarize`, the book's rule as a conjunction:
contradicted if any test is), the counts of each verdict and the effect furthest from its
tolerance; the most severe contradicted tests; and whether each test met its calibration target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from vrg_analysis.assumptions.verdicts import AuditResult, results_from_csv, summarize
from vrg_analysis.evaluation.stats import AGGREGATES, VERDICTS
from vrg_analysis.params import as_folder
from vrg_analysis.report import styled

__all__ = [
    "AUDIT_ORDER",
    "CALIBRATION_SERVES",
    "Params",
    "Result",
    "Summary",
    "run",
    "card_table",
    "contradictions_table",
    "calibration_table",
    "summary",
]

#: The audits in the order the scorecard lists them.
AUDIT_ORDER: tuple[str, ...] = (
    "zero-mean",
    "gaussianity",
    "isotropy",
    "x-dependence",
    "independence",
    "independence (consequence)",
    "transfer",
)
#: Which audit each calibrated test serves.
CALIBRATION_SERVES: dict[str, str] = {
    "mean": "zero-mean",
    "dagostino_k2": "gaussianity",
    "anderson_darling": "gaussianity",
    "jarque_bera": "gaussianity",
    "shapiro_wilk": "gaussianity",
    "skewness": "gaussianity",
    "kurtosis": "gaussianity",
    "permutation": "independence",
    "distance_correlation": "independence",
    "transfer": "transfer",
}


@dataclass(frozen=True)
class Params:
    """``verdict_dir``: the audit chapters' verdict tables (relative to the executed notebooks);
    the calibration table is read from ``calibration.csv`` beside ``verdict_dir``."""

    verdict_dir: str = "verdicts"

    def __post_init__(self) -> None:
        folder = as_folder(self.verdict_dir, "verdict_dir")
        if not any(folder.glob("*.csv")):
            raise ValueError(
                f"parameter verdict_dir: no verdict table (*.csv) in {str(folder)!r}; run the "
                "audit notebooks first (make execute runs them before this page)"
            )

    @property
    def folder(self) -> Path:
        return Path(self.verdict_dir)

    @property
    def calibration_csv(self) -> Path:
        return self.folder.parent / "calibration.csv"


@dataclass(frozen=True, eq=False)
class Result:
    params: Params
    tables: dict[str, list[AuditResult]]
    card: pd.DataFrame = field(repr=False)
    contradictions: pd.DataFrame = field(repr=False)
    calibration: pd.DataFrame | None = field(repr=False)

    @property
    def results(self) -> list[AuditResult]:
        return [r for rows in self.tables.values() for r in rows]


def _worst(rows: list[AuditResult]) -> AuditResult:
    return max(rows, key=lambda r: -1.0 if math.isnan(r.excess) else r.excess)


def _card(tables: dict[str, list[AuditResult]], book_dir: Path) -> pd.DataFrame:
    groups: dict[tuple[str, str], list[tuple[str, AuditResult]]] = {}
    for notebook, res in tables.items():
        for r in res:
            groups.setdefault((r.source or "(no source recorded)", r.audit), []).append(
                (notebook, r)
            )
    rows = []
    for (source, audit), items in groups.items():
        res = [r for _, r in items]
        s = summarize(res)[audit]
        worst = _worst(res)
        chapters = dict.fromkeys(nb for nb, _ in items)
        rows.append(
            {
                "source": source,
                "audit": audit,
                "verdict": s["verdict"],
                "tests": s["tests"],
                **{v: s[v] for v in VERDICTS},
                "largest effect": worst.effect_size,
                "effect": worst.effect_name,
                "tolerance": worst.tolerance,
                "x tolerance": worst.excess,
                "at": worst.scope,
                "chapter": ", ".join(
                    f'<a href="{nb}.html">{nb}</a>' if (book_dir / f"{nb}.ipynb").is_file() else nb
                    for nb in chapters
                ),
            }
        )
    card = pd.DataFrame(rows)
    if not card.empty:
        rank = {a: i for i, a in enumerate(AUDIT_ORDER)}
        card = card.sort_values(
            ["source", "audit"],
            key=lambda c: c.map(rank).fillna(len(rank)) if c.name == "audit" else c,
        ).reset_index(drop=True)
    return card


def _contradictions(results: list[AuditResult]) -> pd.DataFrame:
    by_test: dict[tuple[str, str, str], list[AuditResult]] = {}
    for r in results:
        by_test.setdefault((r.source, r.audit, r.method), []).append(r)
    rows = []
    for (source, audit, method), res in by_test.items():
        bad = [r for r in res if r.verdict == "contradicted"]
        if not bad:
            continue
        worst = _worst(bad)
        rows.append(
            {
                "source": source,
                "audit": audit,
                "test": method,
                "contradicted": f"{len(bad)} of {len(res)}",
                "worst at": worst.scope,
                "effect": worst.effect_size,
                "effect name": worst.effect_name,
                "tolerance": worst.tolerance,
                "x tolerance": worst.excess,
                "p (corrected)": worst.p_adjusted,
                "note": worst.note,
            }
        )
    out = pd.DataFrame(rows)
    return out.sort_values("x tolerance", ascending=False) if not out.empty else out


def _calibration(path: Path) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    cal = pd.read_csv(path, keep_default_na=False)  # "null" is a scenario name
    cal = cal[cal["target"] != ""].copy()
    cal["met"] = cal["passed"].astype(str).str.lower() == "true"
    cal["audit"] = cal["test"].map(CALIBRATION_SERVES).fillna("")
    return cal


def run(params: Params) -> Result:
    """Read every verdict table and the calibration table, and build the scorecard."""
    folder = params.folder
    tables = {p.stem: results_from_csv(p.read_text(), str(p)) for p in sorted(folder.glob("*.csv"))}
    results = [r for rows in tables.values() for r in rows]
    return Result(
        params=params,
        tables=tables,
        card=_card(tables, folder.parent),
        contradictions=_contradictions(results),
        calibration=_calibration(params.calibration_csv),
    )


def card_table(result: Result) -> Any:
    """The scorecard: one row per audited model and audit, the verdict as a badge."""
    return styled(
        result.card,
        formats={"largest effect": "{:.3g}", "tolerance": "{:.3g}", "x tolerance": "{:.2f}"},
    )


def contradictions_table(result: Result, top: int = 15) -> Any:
    """The ``top`` contradicted tests furthest beyond their tolerance (or a note that none is)."""
    if result.contradictions.empty:
        return pd.DataFrame({"note": ["No test is contradicted."]}).style.hide(axis="index")
    return styled(
        result.contradictions.head(top),
        formats={
            "effect": "{:.3g}",
            "tolerance": "{:.3g}",
            "x tolerance": "{:.2f}",
            "p (corrected)": "{:.2g}",
        },
    )


def calibration_table(result: Result) -> Any:
    """Each calibrated test's rate with its Wilson interval against its target."""
    cal = result.calibration
    if cal is None:
        return pd.DataFrame(
            {"note": [f"No {result.params.calibration_csv}: run the calibration notebook first."]}
        ).style.hide(axis="index")
    table = pd.DataFrame(
        {
            "test": cal["test"],
            "audit": cal["audit"],
            "scenario": cal["scenario"],
            "target": cal["target"],
            "rate [95% CI]": [
                f"{r:.3f} [{lo:.3f}, {hi:.3f}]"
                for r, lo, hi in zip(cal["rate"], cal["ci_low"], cal["ci_high"], strict=True)
            ],
            "verdict": cal["met"].map({True: "supported", False: "contradicted"}),
        }
    )
    return styled(table, caption="Calibration: is each test's rate inside its target band?")


@dataclass(frozen=True)
class Summary:
    n_tables: int
    n_results: int
    n_sources: int
    n_pairs: int
    n_cal_targets: int
    n_cal_met: int
    cal_note: str
    counts: dict[str, int] = field(default_factory=dict)


def summary(result: Result) -> Summary:
    card, results = result.card, result.results
    counts = {f"n_pairs_{v}": int((card["verdict"] == v).sum()) for v in AGGREGATES}
    counts.update({f"n_tests_{v}": sum(r.verdict == v for r in results) for v in VERDICTS})
    cal = result.calibration
    if cal is None:
        n_cal = n_met = 0
        note = "The calibration has not been run: run the calibration notebook first."
    else:
        n_cal, n_met = len(cal), int(cal["met"].sum())
        missed = ", ".join(
            f"{t} under {s}"
            for t, s in zip(cal.test[~cal.met], cal.scenario[~cal.met], strict=True)
        )
        reps = int(cal["replications"].max()) if n_cal else 0
        note = (
            f"{n_met} of {n_cal} calibration targets are met"
            + (f"; missed: {missed}" if missed else "")
            + f" ({reps} replications per scenario; see the calibration chapter)."
        )
    return Summary(
        n_tables=len(result.tables),
        n_results=len(results),
        n_sources=int(card["source"].nunique()) if len(card) else 0,
        n_pairs=len(card),
        n_cal_targets=n_cal,
        n_cal_met=n_met,
        cal_note=note,
        counts=counts,
    )
