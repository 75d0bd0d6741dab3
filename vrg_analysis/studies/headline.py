"""The book's answer first: every claim's measured effect in one forest plot, and the plain answer
the landing page opens with, both computed from the claims page's rows
(:func:`vrg_analysis.studies.claims.claim_rows`).

A finding's headline value is in its chapter's own unit (a paired FID difference, a percentage,
a CPE value, seconds; :func:`finding_unit`), so the forest plot has one panel per unit, each with
its own axis, one row per claim, model and size, the point and its 95% interval coloured by the
verdict. Effects in different units are never put on one axis.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from vrg_analysis.evaluation.verdict_words import ASSUMPTION_WORDS
from vrg_analysis.io import atomic_open, atomic_write_text
from vrg_analysis.report.theme import PAGE_WIDTH, VERDICT_COLOURS
from vrg_analysis.studies.claims import (
    CLAIM_WORDS,
    CLAIMS,
    CUSTOM_PARAMETERS,
    QUICK_PARAMETERS,
    ClaimRow,
    Finding,
    is_interval,
)
from vrg_analysis.testbeds import IMAGE_TESTBEDS, MIXTURES

__all__ = [
    "SHORT_CLAIMS",
    "Unit",
    "finding_unit",
    "size_class",
    "headline_frame",
    "figure_headline",
    "write_headline",
    "value_text",
    "short_table_html",
    "Answer",
    "answer",
]

#: Each claim of :data:`~vrg_analysis.studies.claims.CLAIMS` in a few words (a figure's row).
SHORT_CLAIMS: dict[str, str] = {
    "ddim-fid": "VRG lowers DDIM's FID",
    "other-samplers-fid": "VRG lowers PNDM/DEIS/DPM FID",
    "few-steps": "gain largest at few steps",
    "guidance": "VRG helps with guidance",
    "gamma-ablation": "a moderate γ is best",
    "cpe-reduction": "VRG lowers CPE",
    "start-level": "gain from re-timing, not start",
    "cpe-predicts-error": "lower CPE, lower error",
    "assumption-zero-mean": "error has zero mean",
    "assumption-gaussian": "error is Gaussian",
    "assumption-isotropy": "one variance per level",
    "assumption-independence": "errors independent across steps",
    "assumption-transfer": "training error = sampling error",
    "cheap": "optimisation is cheap",
}


@dataclass(frozen=True)
class Unit:
    """What a finding's headline value measures: ``label`` (the axis title, with the direction
    that favours VRG where there is one), whether 0 is "no effect" (a difference), and the
    ``suffix`` a table writes after the number (``"FID"``, ``"%"``, ``"s"``)."""

    label: str
    difference: bool
    suffix: str


_DELTA_FID = Unit("VRG − baseline, FID (negative: VRG better)", True, "FID")
_DELTA_FRECHET = Unit("VRG − baseline, Fréchet distance (negative: VRG better)", True, "Fréchet")
#: A checkpoint folder's set metric (pixel-space Fréchet distance unless the user gave features).
_DELTA_SET = Unit("VRG − baseline, the run's set metric (negative: VRG better)", True, "")
_DELTA_EXACT = Unit("VRG − baseline, exact-ODE error (MSE; negative: VRG better)", True, "MSE")
#: (chapter, claim) -> the unit of the finding's value; the comparisons' set metric depends on
#: the model (FID on an image model, the Fréchet distance to the exact moments on a mixture).
_UNITS: dict[tuple[str, str], Unit | str] = {
    ("quality_vs_steps", "ddim-fid"): "set metric, exact error on a mixture",
    ("quality_vs_steps", "other-samplers-fid"): "set metric, exact error on a mixture",
    ("guidance", "guidance"): "set metric",
    ("ablation", "gamma-ablation"): "set metric",
    ("ablation", "start-level"): "set metric",
    ("quality_vs_steps", "few-steps"): Unit(
        "gain at fewest − at most steps (percentage points)", True, "pp"
    ),
    ("published_profiles", "cpe-reduction"): Unit("median CPE reduction by VRG (%)", False, "%"),
    ("official_cifar10", "cpe-reduction"): Unit("CPE of VRG's trajectory (Eq. 10)", False, "CPE"),
    ("official_cifar10", "start-level"): Unit("CPE gain with the start level held (%)", True, "%"),
    ("official_cifar10", "cpe-predicts-error"): Unit(
        "share of trajectory pairs ranked as by FID", False, "of pairs"
    ),
    ("predicted_vs_measured", "cpe-predicts-error"): Unit(
        "median change of the measured error under VRG (%)", True, "%"
    ),
    ("optimisers", "cheap"): Unit("VRG solver wall time (s)", False, "s"),
}


def _on_mixture(f: Finding) -> bool:
    return f.model.split(" (", 1)[0].strip() in MIXTURES


def finding_unit(f: Finding) -> Unit:
    """The unit of ``f.value`` (:class:`Unit`), from the chapter and claim that produced it; a
    finding of a chapter and claim not registered here is refused, naming both (a new chapter's
    findings must say what their value measures before they enter the headline figure)."""
    unit = _UNITS.get((f.chapter, f.claim))
    if unit is None:
        raise ValueError(
            f"no unit registered for the findings of chapter {f.chapter!r} on claim {f.claim!r} "
            "(vrg_analysis.studies.headline._UNITS)"
        )
    if isinstance(unit, Unit):
        return unit
    name = f.model.split(" (", 1)[0].strip()
    if name in IMAGE_TESTBEDS:
        return _DELTA_FID
    if not _on_mixture(f):  # a user's checkpoint: its set metric need not be FID
        return _DELTA_SET
    return _DELTA_EXACT if unit.endswith("exact error on a mixture") else _DELTA_FRECHET


def size_class(f: Finding) -> str:
    """The size of a finding's evidence in two words: ``full size``, ``quick CI``, ``custom``
    or ``'<name>' set`` (from the parameter set its ``size`` names)."""
    if f.size.endswith(QUICK_PARAMETERS):
        return "quick CI"
    if f.size.endswith(CUSTOM_PARAMETERS):
        return "custom"
    if f.size.endswith("full parameter set"):
        return "full size"
    if f.size.endswith(" parameter set"):
        return f"'{f.size.rsplit(', ', 1)[-1].removesuffix(' parameter set')}' set"
    return "as stated"


def headline_frame(rows: Sequence[ClaimRow]) -> pd.DataFrame:
    """One row per finding of the claims page, in the page's order (claims as listed, the
    weightiest evidence first): the claim, its short wording, the model and size (the row's label;
    where a claim has two findings on one model and size, the finding's own subject, the text
    before its first colon, tells them apart), the value and its interval (NaN where there is
    none), the unit, the verdict in the claim's words with its scope, and the chapter that shows
    it."""
    out = []
    for r in rows:
        for f in r.findings:
            unit = finding_unit(f)
            model = f.model.split(" (", 1)[0].strip()
            detail = f.finding.split(":", 1)[0].removeprefix(model).strip(" ,")
            out.append(
                {
                    "claim": f.claim,
                    "claim_text": SHORT_CLAIMS.get(f.claim, f.claim),
                    "model": model,
                    "size": size_class(f),
                    "row": f"{SHORT_CLAIMS.get(f.claim, f.claim)} · {model} · {size_class(f)}",
                    "detail": detail,
                    "value": f.value,
                    "ci_low": f.ci_low if is_interval(f) else math.nan,
                    "ci_high": f.ci_high if is_interval(f) else math.nan,
                    "unit": unit.label,
                    "difference": unit.difference,
                    "verdict": f.verdict,
                    "verdict_text": f.verdict_text,
                    "chapter": f.chapter,
                }
            )
    columns = [
        "claim", "claim_text", "model", "size", "row", "detail", "value", "ci_low", "ci_high",
        "unit", "difference", "verdict", "verdict_text", "chapter",
    ]  # fmt: skip
    frame = pd.DataFrame(out, columns=columns)
    # two findings of one claim, model and size (two metrics of a chapter): name what differs
    twice = frame.duplicated("row", keep=False) & (frame.detail != "")
    frame.loc[twice, "row"] = frame.row[twice] + " · " + frame.detail[twice].str.slice(0, 40)
    return frame.drop(columns="detail")


def figure_headline(frame: pd.DataFrame) -> Figure:
    """The forest plot: one panel per unit (stacked, each with its own axis and as many rows as
    it has findings), one row per claim, model and size, the value with its 95% interval,
    coloured by the verdict; a zero line where the unit is a difference."""
    if frame.empty:  # a build whose chapters wrote no findings: say so, as the page's text does
        fig, ax = plt.subplots(figsize=(PAGE_WIDTH, 1.2))
        ax.text(0.5, 0.5, "no findings were written in this build", ha="center", va="center")
        ax.set_axis_off()
        plt.close(fig)
        return fig
    units = list(dict.fromkeys(frame.unit))
    counts = [int((frame.unit == u).sum()) for u in units]
    height = sum(0.42 * n + 0.9 for n in counts) + 0.6
    fig, axes = plt.subplots(
        len(units),
        1,
        figsize=(PAGE_WIDTH, height),
        gridspec_kw={"height_ratios": [n + 2.2 for n in counts]},
        squeeze=False,
    )
    for ax, unit in zip(axes[:, 0], units, strict=True):
        part = frame[frame.unit == unit].reset_index(drop=True)
        ys = range(len(part))[::-1]
        for y, (_, r) in zip(ys, part.iterrows(), strict=True):
            c = VERDICT_COLOURS.get(r.verdict, "#000000")
            if math.isfinite(r.ci_low) and math.isfinite(r.ci_high):
                ax.plot([r.ci_low, r.ci_high], [y, y], color=c, lw=2.2, solid_capstyle="butt")
            ax.plot([r.value], [y], "o", color=c, ms=6)
        # two lines a row (the claim, then model · size · detail): the axis keeps the page's width
        ax.set_yticks(list(ys), [r.replace(" · ", "\n", 1) for r in part.row], fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.set_ylim(-0.7, len(part) - 0.3)
        if bool(part.difference.iloc[0]):
            ax.axvline(0.0, color="k", lw=0.8)
        ax.set_xlabel(unit)
        ax.grid(axis="x", alpha=0.4)
    verdicts = [v for v in CLAIM_WORDS if v in set(frame.verdict)]
    handles = [
        Line2D([], [], color=VERDICT_COLOURS[v], marker="o", lw=2.2, label=CLAIM_WORDS[v])
        for v in verdicts
    ]
    fig.legend(handles=handles, loc="upper center", ncol=min(len(handles), 2), frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.55 / height))
    plt.close(fig)
    return fig


def write_headline(frame: pd.DataFrame, figure: Figure, folder: str | Path) -> tuple[Path, Path]:
    """The figure as ``headline.png`` and its data as ``headline.csv`` in ``folder`` (each
    written atomically), for pages that show the figure from a file (the landing page) and link
    its data beside it; returns both paths."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    csv = atomic_write_text(out / "headline.csv", frame.to_csv(index=False))
    png = out / "headline.png"
    with atomic_open(png, "wb") as fh:
        figure.savefig(fh, format="png", dpi=150, bbox_inches="tight")
    return csv, png


# ===================================================================== the short table
def value_text(f: Finding) -> str:
    """A finding's headline value with its unit and 95% interval, e.g. ``"+0.8 FID [-0.54,
    +2.2]"`` (no interval: the value and unit alone; no value: empty)."""
    if not math.isfinite(f.value):
        return ""
    unit = finding_unit(f)
    sep = "" if unit.suffix == "%" else " "
    sign = "+" if unit.difference else ""
    text = f"{f.value:{sign}.3g}{sep}{unit.suffix}"
    if is_interval(f):
        text += f" [{f.ci_low:{sign}.3g}, {f.ci_high:{sign}.3g}]"
    return text


def _badge(colour_key: str, words: str) -> str:
    c = VERDICT_COLOURS.get(colour_key, "#ffffff")
    return (
        f'<span style="background:{c};color:white;font-weight:bold;padding:1px 6px;'
        f'border-radius:4px;white-space:nowrap">{html.escape(words)}</span>'
    )


def short_table_html(rows: Sequence[ClaimRow], book_dir: str | Path) -> str:
    """The claims in short cells: one line per finding (and per audit of an assumption), the
    claim in a few words, where it was measured (model and size), the value with its unit and
    interval (:func:`value_text`), the verdict as a coloured badge and a link to the chapter
    that has the details (an audit's: the scorecard). The full text of each finding stays in the
    claims page's detailed table."""
    folder = Path(book_dir)

    def link(chapter: str) -> str:
        if (folder / f"{chapter}.ipynb").is_file():
            return f'<a href="{chapter}.html">details</a>'
        return html.escape(chapter)

    parts = [
        '<table class="claims-short"><thead><tr><th>claim</th><th>measured on</th>'
        "<th>value [95% CI]</th><th>verdict</th><th>chapter</th></tr></thead><tbody>"
    ]
    for r in rows:
        lines: list[tuple[str, str, str, str]] = []
        for f in r.findings:
            where = f"{f.model.split(' (', 1)[0].strip()} · {size_class(f)}"
            badge = _badge(f.verdict, CLAIM_WORDS[f.verdict])
            lines.append((where, value_text(f), badge, link(f.chapter)))
        for au in r.audits:
            where = f"audit {au.audit}: {au.contradicted} of {au.tests} tests violated"
            badge = _badge(au.verdict, ASSUMPTION_WORDS[au.verdict])
            lines.append((where, "", badge, link("scorecard")))
        if not lines:
            lines.append(
                ("not measured in this build", "", _badge("not measured", "not measured"), "")
            )
        claim = html.escape(SHORT_CLAIMS.get(r.claim.id, r.claim.id))
        if not r.claim.needed_by_cpe:
            claim += "<br><small>not needed by CPE</small>"
        for i, (where, value, badge, chapter) in enumerate(lines):
            first = f'<td rowspan="{len(lines)}"><b>{claim}</b></td>' if i == 0 else ""
            parts.append(
                f"<tr>{first}<td>{html.escape(where)}</td><td>{html.escape(value)}</td>"
                f"<td>{badge}</td><td>{chapter}</td></tr>"
            )
    parts.append("</tbody></table>")
    return "".join(parts)


# ===================================================================== the plain answer
#: The claims that say whether VRG gives better samples, in the order the answer names them.
QUALITY_CLAIMS: tuple[str, ...] = (
    "ddim-fid",
    "other-samplers-fid",
    "guidance",
    "gamma-ablation",
    "few-steps",
)
#: The claims that say why: the objective, where its reduction comes from, what it predicts.
WHY_CLAIMS: tuple[str, ...] = ("cpe-reduction", "start-level", "cpe-predicts-error")


@dataclass(frozen=True)
class Answer:
    """The landing page's answer, every phrase computed from the claims page's rows: on the
    weightiest evidence of each claim (:func:`~vrg_analysis.studies.claims.evidence_order`),
    whether VRG gave better samples (``quality_text``), by how much on the paper's headline
    claim (``headline_text``), and what the paper's own explanation comes to (``why_text``).
    How the claims stand over all models and sizes is the claims page's tally
    (:func:`~vrg_analysis.studies.claims.page_summary`)."""

    quality_text: str
    headline_text: str
    why_text: str


def _lead(rows: Sequence[ClaimRow], claim: str) -> Finding | None:
    for r in rows:
        if r.claim.id == claim and r.findings:
            return r.findings[0]
    return None


def _clause(rows: Sequence[ClaimRow], claim: str) -> str:
    f = _lead(rows, claim)
    words = SHORT_CLAIMS.get(claim, claim)
    if f is None:
        return f"“{words}”: not measured in this build"
    return f"“{words}”: {f.verdict_text}"


def answer(rows: Sequence[ClaimRow]) -> Answer:
    """The plain answer (:class:`Answer`) from the claims page's rows."""
    known = {c.id for c in CLAIMS}
    missing = [c for c in (*QUALITY_CLAIMS, *WHY_CLAIMS) if c not in known]
    if missing:  # pragma: no cover - guards a renamed claim
        raise ValueError(f"answer: unknown claim(s) {missing}")
    head = _lead(rows, "ddim-fid")
    if head is None:
        headline = "the paper's headline claim (DDIM's FID) is not measured in this build"
    else:
        measure = finding_unit(head).label.split(" (", 1)[0].removeprefix("VRG − baseline, ")
        value = f"VRG − baseline = {head.value:+.3g} {measure}"
        if is_interval(head):
            value += f" (95% interval {head.ci_low:+.3g} to {head.ci_high:+.3g})"
        headline = (
            f"the weightiest evidence on the paper's headline claim, DDIM's FID, is {value} "
            f"on {head.scope}"
        )
    return Answer(
        quality_text="; ".join(_clause(rows, c) for c in QUALITY_CLAIMS),
        headline_text=headline,
        why_text="; ".join(_clause(rows, c) for c in WHY_CLAIMS),
    )
