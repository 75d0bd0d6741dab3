"""The paper's claims and our findings on them, for the claims scorecard.

:data:`CLAIMS` lists what the paper claims, with its published figure data (the authors' plotting
scripts; FID on 50K samples, torch-fidelity). Each study notebook measures some of them on the
project's models and writes :class:`Finding` rows (``write_findings``) into a folder that the
claims page reads back (``read_findings``): one CSV per chapter, named after the chapter, so a
rerun of one chapter replaces only its own rows.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Literal

from vrg_analysis.io import atomic_write_text

__all__ = [
    "Claim",
    "CLAIMS",
    "Finding",
    "FINDING_VERDICTS",
    "verdict_from_counts",
    "write_findings",
    "read_findings",
]

#: Supported: our measurement agrees with the claim (interval excludes the opposite);
#: contradicted: it goes the other way; mixed: some configurations each way or ties;
#: inconclusive: the interval covers both.
FindingVerdict = Literal["supported", "contradicted", "mixed", "inconclusive"]
FINDING_VERDICTS: tuple[str, ...] = ("supported", "contradicted", "mixed", "inconclusive")


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


def verdict_from_counts(wins: int, ties: int, losses: int) -> FindingVerdict:
    """A claim that VRG helps, judged from a table of win/tie/loss verdicts: supported when
    every configuration is a win, contradicted when none is and at least one is a loss, mixed
    when there are wins and non-wins, inconclusive when all are ties."""
    for name, v in (("wins", wins), ("ties", ties), ("losses", losses)):
        if v < 0:
            raise ValueError(f"{name} must be >= 0, got {v!r}")
    total = wins + ties + losses
    if total == 0:
        raise ValueError("no verdicts to judge")
    if wins == total:
        return "supported"
    if wins == 0:
        return "contradicted" if losses > 0 else "inconclusive"
    return "mixed"


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
