"""Audit results as data: one frozen :class:`AuditResult` per test, verdicts against stated
tolerances, multiple-testing correction, and tidy tables (CSV / Markdown) for the scorecard.

Each result judges the claim "the assumption holds within its tolerance" under the book's one
verdict rule (:func:`vrg_analysis.evaluation.stats.decide`, ``claim="within"``), never on a
p-value alone (with thousands of samples every tiny deviation is significant):

- ``"contradicted"``: the test rejects after the family's correction *and* a deviation beyond the
  tolerance is shown: a minimum-effect test (the mirror of TOST, :func:`beyond_pvalue` or a
  one-sided t test against the margin) rejects after the same correction (a test of "no effect" that
  rejects while the point estimate lies past the tolerance is not enough: near the tolerance it says
  "violated" about half the time when the truth is inside);
- ``"supported"``: the effect is shown to lie within the tolerance (an equivalence test, or its
  confidence interval inside the tolerance);
- ``"inconclusive"``: neither; the note says why (too few samples for the tolerance, or a
  deviation detectable but not shown to matter).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from scipy import stats

from vrg_analysis.evaluation.stats import (
    VERDICTS,
    Correction,
    Verdict,
    adjust_pvalues,
    aggregate,
)
from vrg_analysis.evaluation.verdict_words import ASSUMPTION_WORDS
from vrg_analysis.io import atomic_write_text

__all__ = [
    "Verdict",
    "Correction",
    "AuditResult",
    "adjust_pvalues",
    "with_adjusted",
    "beyond_pvalue",
    "ASSUMPTION_WORDS",
    "with_source",
    "summarize",
    "results_to_csv",
    "results_from_csv",
    "results_to_markdown",
    "write_results",
    "VERDICTS",
]


@dataclass(frozen=True)
class AuditResult:
    """One test of one assumption at one scope (a noise level, a direction, a step pair)."""

    audit: str  # e.g. "zero-mean", "gaussianity", "independence", "transfer"
    method: str  # the test, named (e.g. "one-sample t (Welch), TOST margin 0.1 sd")
    scope: str  # what was tested, e.g. "alpha_bar=0.512 dim 3"
    statistic: float
    p_value: float
    effect_size: float
    effect_name: str
    tolerance: float
    verdict: Verdict
    n: int
    alpha_bar: float = math.nan
    p_adjusted: float = math.nan
    correction: str = "none"
    note: str = ""
    source: str = ""  # what was audited, e.g. "digits-unet on training data, vs eps"
    null_effect: float = 0.0  # the effect's value when the assumption holds exactly (1 for ratios)

    @property
    def severity(self) -> float:
        """Distance of the effect from its null value: ``|e|``, or ``|log e|`` for ratios."""
        e = self.effect_size
        if not math.isfinite(e):
            return -1.0
        if self.null_effect == 0.0:
            return abs(e)
        return abs(math.log(e / self.null_effect)) if e > 0 else math.inf

    @property
    def excess(self) -> float:
        """The effect in units of its tolerance (1 = at the tolerance): ``|e| / tol``, or for
        ratio effects (``null_effect = 1``, ``tolerance`` the ratio bound, band
        ``[1 / tol, tol]``) ``|log e| / log tol``."""
        sev = self.severity
        if sev < 0.0 or not self.tolerance > 0.0:
            return math.nan
        if self.null_effect == 0.0:
            return sev / self.tolerance
        return sev / math.log(self.tolerance) if self.tolerance > 1.0 else math.inf

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


Decide = Callable[[int, AuditResult, float, float], tuple[str, str]]


def beyond_pvalue(estimate: float, se: float, band: tuple[float, float]) -> float:
    """p-value of the minimum-effect test that an effect lies *outside* ``band`` (the mirror of
    TOST): the smaller of the one-sided normal-approximation p-values of ``effect > high`` and
    ``effect < low`` (``scipy.stats.norm``), each testing against the band's edge. Small only
    when a deviation beyond the tolerance is shown, so a verdict "violated" built on it is wrong
    at most ``alpha`` of the time when the truth sits on the edge (an effect merely detected
    away from zero, with its point estimate past the edge, is wrong about half the time there;
    the rule calibration chapter measured it). ``se`` NaN or 0 gives NaN (nothing shown)."""
    low, high = band
    if not (math.isfinite(estimate) and math.isfinite(se) and se > 0.0):
        return math.nan
    p_high = float(stats.norm.sf((estimate - high) / se)) if math.isfinite(high) else 1.0
    p_low = float(stats.norm.cdf((estimate - low) / se)) if math.isfinite(low) else 1.0
    return min(p_high, p_low)


def with_adjusted(
    results: Sequence[AuditResult], method: Correction, alpha: float, decide: Decide
) -> list[AuditResult]:
    """Adjust the family's p-values together and re-decide each verdict with
    ``decide(index, result, p_adjusted, alpha) -> (verdict, note)``."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")
    p_adj = adjust_pvalues([r.p_value for r in results], method)
    out = []
    for i, (r, pa) in enumerate(zip(results, p_adj, strict=True)):
        verdict, note = decide(i, r, float(pa), alpha)
        out.append(
            AuditResult(
                **{
                    **r.to_dict(),
                    "p_adjusted": float(pa),
                    "correction": method,
                    "verdict": verdict,
                    "note": note,
                }
            )
        )
    return out


def with_source(results: Iterable[AuditResult], source: str) -> list[AuditResult]:
    """The same results with ``source`` set (what model, data and reference were audited)."""
    return [AuditResult(**{**r.to_dict(), "source": source}) for r in results]


def summarize(results: Iterable[AuditResult]) -> dict[str, dict[str, object]]:
    """Per audit: counts of each verdict, the overall verdict (:func:`~vrg_analysis.evaluation.
    stats.aggregate` as a conjunction: contradicted if any test is, supported if all are, mixed or
    inconclusive otherwise) and the effect furthest beyond its tolerance
    (:attr:`AuditResult.excess`), and what was audited (``sources``: the distinct
    :attr:`AuditResult.source` values, ``"; "``-joined)."""
    by: dict[str, list[AuditResult]] = {}
    for r in results:
        by.setdefault(r.audit, []).append(r)
    out: dict[str, dict[str, object]] = {}
    for audit, rows in by.items():
        counts = {v: sum(r.verdict == v for r in rows) for v in VERDICTS}
        overall = aggregate((r.verdict for r in rows), conjunction=True)
        worst = max(rows, key=lambda r: r.excess if math.isfinite(r.excess) else -1.0)
        out[audit] = {
            "verdict": overall,
            "tests": len(rows),
            **counts,
            "largest_effect": worst.effect_size,
            "effect_name": worst.effect_name,
            "tolerance": worst.tolerance,
            "excess": worst.excess,
            "at": worst.scope,
            "method": worst.method,
            "sources": "; ".join(sorted({r.source for r in rows if r.source})),
        }
    return out


_COLUMNS = [f.name for f in fields(AuditResult)]


def results_to_csv(results: Iterable[AuditResult]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in results:
        writer.writerow(r.to_dict())
    return buf.getvalue()


def results_from_csv(text: str, source: str = "verdict table") -> list[AuditResult]:
    """Parse :func:`results_to_csv` output back into results (``ValueError`` naming the line of a
    malformed row)."""
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in _COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise ValueError(f"{source}: missing column(s) {missing}")
    types = {f.name: f.type for f in fields(AuditResult)}
    out = []
    for line, row in enumerate(reader, start=2):
        try:
            kw: dict[str, object] = {}
            for c in _COLUMNS:
                v = row[c]
                kw[c] = int(v) if types[c] == "int" else float(v) if types[c] == "float" else v
            out.append(AuditResult(**kw))  # type: ignore[arg-type]
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{source}:{line}: {exc}") from exc
    return out


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.3g}"
    return str(v).replace("|", "\\|")


def results_to_markdown(
    results: Iterable[AuditResult], columns: Sequence[str] | None = None
) -> str:
    cols = (
        list(columns)
        if columns is not None
        else [
            "audit",
            "scope",
            "method",
            "effect_name",
            "effect_size",
            "tolerance",
            "p_adjusted",
            "verdict",
            "n",
        ]
    )
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in results:
        d = r.to_dict()
        lines.append("| " + " | ".join(_fmt(d[c]) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def write_results(
    results: Sequence[AuditResult], out_dir: str | Path, stem: str = "verdicts"
) -> tuple[Path, Path]:
    """Write ``<stem>.csv`` and ``<stem>.md`` atomically into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out / f"{stem}.csv", out / f"{stem}.md"
    atomic_write_text(csv_path, results_to_csv(results))
    atomic_write_text(md_path, results_to_markdown(results))
    return csv_path, md_path
