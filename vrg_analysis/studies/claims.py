"""The paper's claims and our findings on them, for the claims scorecard.

:data:`CLAIMS` lists what the paper claims, with its published figure data (the authors' plotting
scripts; FID on 50K samples, torch-fidelity). Each study notebook measures some of them on the
project's models and writes :class:`Finding` rows (``write_findings``) into a folder that the
claims page reads back (``read_findings``): one CSV per chapter, named after the chapter, so a
rerun of one chapter replaces only its own rows.
"""

from __future__ import annotations

import csv
import html
import io
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from vrg_analysis.evaluation.stats import AGGREGATES, Aggregate, aggregate
from vrg_analysis.io import atomic_write_text
from vrg_analysis.report.theme import VERDICT_COLOURS

__all__ = [
    "Claim",
    "CLAIMS",
    "Finding",
    "FINDING_VERDICTS",
    "write_findings",
    "read_findings",
    "is_interval",
    "Params",
    "AuditLine",
    "ClaimRow",
    "claim_rows",
    "claims_html",
    "PageSummary",
    "page_summary",
]

#: A finding's verdict is the book's one vocabulary (:mod:`vrg_analysis.evaluation.stats`):
#: supported, contradicted, mixed (over several configurations) or inconclusive.
FindingVerdict = Aggregate
FINDING_VERDICTS: tuple[str, ...] = AGGREGATES


@dataclass(frozen=True)
class Claim:
    """One claim of the paper with the published numbers behind it."""

    id: str
    statement: str
    published: str


CLAIMS: tuple[Claim, ...] = (
    Claim(
        "ddim-fid",
        "VRG lowers the FID of DDIM for every baseline trajectory and step count.",
        "CIFAR-10, baseline -> VRG at 10/20/50/100 steps: logSNR 21.1->15.2, 9.6->7.4, 5.5->4.7, "
        "4.7->4.1; quadratic 14.0->11.9, 7.1->6.2, 4.8->4.3, 4.3->3.8; uniform 16.8->11.1, "
        "8.3->6.1, 4.8->4.4, 4.0->3.8",
    ),
    Claim(
        "other-samplers-fid",
        "VRG also lowers the FID of PNDM and DEIS at few steps.",
        "CIFAR-10, 5 steps: S-PNDM 22.19->17.71, F-PNDM 18.62->12.47, DEIS ab2 25.13->16.95",
    ),
    Claim(
        "few-steps",
        "The gain is largest at few steps and shrinks as K grows.",
        "the DDIM figures above: -5.9 FID at 10 logSNR steps, -0.6 at 100",
    ),
    Claim(
        "guidance",
        "VRG carries over to conditional models with guidance (Stable Diffusion).",
        "qualitative samples and FID on Stable Diffusion",
    ),
    Claim(
        "gamma-ablation",
        "A moderate learning portion is best; too large a gamma can be worse than the baseline.",
        "DDIM, CIFAR-10, K=10, lambda 1e4: best gamma 0.15-0.3",
    ),
    Claim(
        "cpe-reduction",
        "The optimiser lowers the cumulative prediction error (Eq. 10).",
        "uniform K=10 on the CIFAR-10 profile: CPE 0.327 -> 0.191",
    ),
    Claim(
        "cpe-predicts-error",
        "A lower CPE means a lower error of the generated sample (image MSE against 200 steps).",
        "image MSE against a 200-step solve falls with VRG",
    ),
    Claim(
        "assumptions",
        "The prediction error is zero-mean Gaussian, independent across steps, and the training "
        "error stands in for the error along the sampling path.",
        "assumed (Sec. 3), not tested in the paper",
    ),
    Claim(
        "cheap",
        "The trajectory optimisation is cheap next to sampling (training-free).",
        "an MLP and 3000 SGD steps, minutes on a CPU",
    ),
)
_CLAIM_IDS = {c.id for c in CLAIMS}


@dataclass(frozen=True)
class Finding:
    """What a chapter measured on one claim: a sentence, a headline value with its interval
    (``nan`` where there is none), the verdict, the seeds, and the chapter that shows it."""

    claim: str
    chapter: str
    finding: str
    value: float
    ci_low: float
    ci_high: float
    verdict: FindingVerdict
    seeds: str = ""

    def __post_init__(self) -> None:
        if self.claim not in _CLAIM_IDS:
            raise ValueError(f"unknown claim {self.claim!r}; known: {sorted(_CLAIM_IDS)}")
        if self.verdict not in FINDING_VERDICTS:
            raise ValueError(
                f"unknown verdict {self.verdict!r}; expected one of {FINDING_VERDICTS}"
            )
        if not self.chapter or "/" in self.chapter:
            raise ValueError(f"chapter must be a notebook name, got {self.chapter!r}")


def write_findings(findings: Iterable[Finding], folder: str | Path, chapter: str) -> Path:
    """Write one chapter's findings to ``folder/<chapter>.csv`` (atomically; replaces the
    chapter's earlier rows)."""
    rows = list(findings)
    wrong = [f.chapter for f in rows if f.chapter != chapter]
    if wrong:
        raise ValueError(f"findings of chapter {wrong[0]!r} written as {chapter!r}")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=[f.name for f in fields(Finding)])
    writer.writeheader()
    for f in rows:
        writer.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in asdict(f).items()})
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(out / f"{chapter}.csv", buf.getvalue())


def read_findings(folder: str | Path) -> list[Finding]:
    """Every finding in ``folder/*.csv``; a malformed row raises ``ValueError`` naming the file."""
    out: list[Finding] = []
    for path in sorted(Path(folder).glob("*.csv")):
        with path.open(newline="") as fh:
            for i, row in enumerate(csv.DictReader(fh), start=2):
                try:
                    out.append(
                        Finding(
                            claim=row["claim"],
                            chapter=row["chapter"],
                            finding=row["finding"],
                            value=float(row["value"]),
                            ci_low=float(row["ci_low"]),
                            ci_high=float(row["ci_high"]),
                            verdict=row["verdict"],  # type: ignore[arg-type]
                            seeds=row.get("seeds", ""),
                        )
                    )
                except (KeyError, TypeError, ValueError) as err:
                    raise ValueError(f"{path}:{i}: malformed finding ({err})") from err
    return out


def is_interval(f: Finding) -> bool:
    """Whether the finding carries an interval."""
    return math.isfinite(f.ci_low) and math.isfinite(f.ci_high)


# ===================================================================== the claims page
@dataclass(frozen=True)
class Params:
    """The claims page's inputs: the findings the study chapters write and the audit chapters'
    verdict tables (both relative to the executed notebooks)."""

    findings_dir: str = "claims"
    verdict_dir: str = "verdicts"

    def __post_init__(self) -> None:
        for name in ("findings_dir", "verdict_dir"):
            folder = Path(getattr(self, name))
            if not folder.is_dir() or not any(folder.glob("*.csv")):
                raise ValueError(
                    f"parameter {name}: no *.csv in {str(folder)!r}; run the study and audit "
                    "chapters first (make execute runs them before this page)"
                )


@dataclass(frozen=True)
class AuditLine:
    """One audit's verdict on the assumptions claim."""

    audit: str
    verdict: str
    contradicted: int
    tests: int


@dataclass(frozen=True)
class ClaimRow:
    """One claim with everything measured on it and the overall verdict."""

    claim: Claim
    findings: tuple[Finding, ...]
    audits: tuple[AuditLine, ...]
    verdict: str  # an aggregate verdict, or "not measured"


def claim_rows(findings: Iterable[Finding], audit_summary: dict[str, dict]) -> list[ClaimRow]:
    """Every claim of :data:`CLAIMS` with its findings and, for the assumptions claim, the audits'
    verdicts (``audit_summary``: :func:`~vrg_analysis.assumptions.verdicts.summarize` of the
    verdict tables). The overall verdict is :func:`~vrg_analysis.evaluation.stats.aggregate` of the
    findings' verdicts; the assumptions claim is a conjunction (one contradicted audit contradicts
    it)."""
    found = list(findings)
    rows = []
    for claim in CLAIMS:
        mine = tuple(f for f in found if f.claim == claim.id)
        audits: tuple[AuditLine, ...] = ()
        verdicts = [f.verdict for f in mine]
        conjunction = False
        if claim.id == "assumptions" and audit_summary:
            audits = tuple(
                AuditLine(a, str(s["verdict"]), int(s["contradicted"]), int(s["tests"]))
                for a, s in audit_summary.items()
            )
            verdicts = [a.verdict for a in audits]
            conjunction = True
        verdict = aggregate(verdicts, conjunction=conjunction) if verdicts else "not measured"
        rows.append(ClaimRow(claim, mine, audits, verdict))
    return rows


def _value_text(f: Finding) -> str:
    if math.isnan(f.value):
        return ""
    if is_interval(f):
        return f"{f.value:+.3g} [{f.ci_low:.3g}, {f.ci_high:.3g}]"
    return f"{f.value:.3g}"


def claims_html(rows: Iterable[ClaimRow], book_dir: str | Path) -> str:
    """The claims table as HTML: each claim with its published numbers and every finding on it
    (value with its interval, seeds, chapter link, verdict badge)."""
    folder = Path(book_dir)

    def link(chapter: str) -> str:
        if (folder / f"{chapter}.ipynb").is_file():
            return f'<a href="{chapter}.html">{html.escape(chapter)}</a>'
        return html.escape(chapter)

    def badge(verdict: str) -> str:
        c = VERDICT_COLOURS.get(verdict, "#ffffff")
        return (
            f'<td style="background:{c};color:white;font-weight:bold">{html.escape(verdict)}</td>'
        )

    parts = [
        '<table class="claims"><thead><tr><th>claim</th><th>published</th><th>our finding</th>'
        "<th>value [95% CI]</th><th>seeds</th><th>chapter</th><th>verdict</th></tr></thead><tbody>"
    ]
    for r in rows:
        items = [
            (
                html.escape(f.finding),
                _value_text(f),
                html.escape(f.seeds),
                link(f.chapter),
                f.verdict,
            )
            for f in r.findings
        ]
        items += [
            (
                f"audit <b>{html.escape(a.audit)}</b>: {html.escape(a.verdict)} "
                f"({a.contradicted} of {a.tests} tests contradicted)",
                "",
                "",
                link("scorecard"),
                a.verdict,
            )
            for a in r.audits
        ]
        if not items:
            items = [("not measured in this build", "", "", "", "not measured")]
        for i, (text, value, seeds, chapter, verdict) in enumerate(items):
            parts.append("<tr>")
            if i == 0:
                c = VERDICT_COLOURS.get(r.verdict, "#ffffff")
                parts.append(
                    f'<td rowspan="{len(items)}" style="border-left:6px solid {c}">'
                    f"<b>{html.escape(r.claim.statement)}</b><br><i>overall: {r.verdict}</i></td>"
                    f'<td rowspan="{len(items)}">{html.escape(r.claim.published)}</td>'
                )
            parts.append(f"<td>{text}</td><td>{value}</td><td>{seeds}</td><td>{chapter}</td>")
            parts.append(badge(verdict) + "</tr>")
    parts.append("</tbody></table>")
    return "".join(parts)


@dataclass(frozen=True)
class PageSummary:
    """The numbers the claims page cites."""

    n_claims: int
    n_findings: int
    counts: dict[str, int]


def page_summary(rows: list[ClaimRow]) -> PageSummary:
    tally = {v: sum(r.verdict == v for r in rows) for v in (*AGGREGATES, "not measured")}
    return PageSummary(
        n_claims=len(rows),
        n_findings=sum(len(r.findings) for r in rows),
        counts={f"n_{v.replace(' ', '_')}": n for v, n in tally.items()},
    )
