"""The paper's claims and our findings on them, for the claims scorecard.

:data:`CLAIMS` lists what the paper claims, with its published figure data (the authors' plotting
scripts; FID on 50K samples, torch-fidelity). Each study notebook measures some of them on the
project's models and writes :class:`Finding` rows (``write_findings``) into a folder that the
claims page reads back (``read_findings``): one CSV per chapter, named after the chapter, so a
rerun of one chapter replaces only its own rows.

Every finding names its scope: the ``model`` its evidence was measured on (:func:`describe_testbed`
describes a testbed from its model card) and the ``size`` of that evidence (samples per arm x
seeds, the step counts, and whether the parameters were the CI quick set, a named full-size set or
custom ones: :func:`params_label`). The page shows both beside the finding, and a verdict is shown
with its scope ("contradicted on digits, quick CI parameters"), never bare.
"""

from __future__ import annotations

import csv
import dataclasses
import html
import io
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from vrg_analysis.evaluation.stats import AGGREGATES, Aggregate, aggregate
from vrg_analysis.evaluation.verdict_words import ASSUMPTION_WORDS
from vrg_analysis.io import atomic_write_text
from vrg_analysis.models.checkpoints import load_card
from vrg_analysis.report.theme import VERDICT_COLOURS
from vrg_analysis.resources import notebooks_dir
from vrg_analysis.testbeds import IMAGE_TESTBEDS, MIXTURES

__all__ = [
    "Claim",
    "CLAIMS",
    "Finding",
    "FINDING_VERDICTS",
    "QUICK_PARAMETERS",
    "CUSTOM_PARAMETERS",
    "describe_testbed",
    "evidence_order",
    "CLAIM_WORDS",
    "scoped_verdict",
    "params_label",
    "size_text",
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
    """One claim of the paper with the published numbers behind it. An assumption's claim lists the
    ``audits`` (:mod:`vrg_analysis.assumptions` audit names) that test it, and says whether CPE
    (Eq. 10) needs it: CPE uses only the error variances, so Gaussianity is not needed."""

    id: str
    statement: str
    published: str
    audits: tuple[str, ...] = ()
    needed_by_cpe: bool = True


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
        "uniform K=10 on the CIFAR-10 profile: CPE 0.327 -> 0.191 (0.327 is the uniform grid "
        "offset by half a step, t = 949 ... 49); time-quadratic K=10: 0.501 -> 0.424 (official "
        "files)",
    ),
    Claim(
        "start-level",
        "VRG's gain comes from re-timing the steps; the penalty holds the start level.",
        "objective CPE + lambda (a_K - a_K_orig)^2, lambda = 100 in the public code; official "
        "time-quadratic K=10 output moves a_K from 4.04e-5 to 6.5e-5",
    ),
    Claim(
        "cpe-predicts-error",
        "A lower CPE means a lower error of the generated sample (image MSE against 200 steps).",
        "image MSE against a 200-step solve falls with VRG",
    ),
    Claim(
        "assumption-zero-mean",
        "Assumption: the noise-prediction error has zero mean at every noise level.",
        "assumed (Sec. 3); the paper shows histograms of the prediction error, centred on zero",
        audits=("zero-mean",),
    ),
    Claim(
        "assumption-gaussian",
        "Assumption: the noise-prediction error is Gaussian.",
        "assumed (Sec. 3); the paper shows histograms of the prediction error",
        audits=("gaussianity",),
        needed_by_cpe=False,
    ),
    Claim(
        "assumption-isotropy",
        "Assumption: one variance per noise level describes the error (the scalar profile w).",
        "implied by the scalar profile of Algorithm 1; not tested in the paper",
        audits=("isotropy",),
    ),
    Claim(
        "assumption-independence",
        "Assumption: the errors at different steps of a sampling path are independent.",
        "assumed in Eq. 10; not tested in the paper",
        audits=("independence", "independence (consequence)"),
    ),
    Claim(
        "assumption-transfer",
        "Assumption: the error on training data stands in for the error along the sampling path.",
        "the paper shows the error on training and held-out data; the error along the sampling "
        "path is not measured there",
        audits=("transfer",),
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
    (``nan`` where there is none), the verdict, the seeds, and the chapter that shows it, with its
    scope: ``model``, the model(s) the evidence was measured on (e.g. :func:`describe_testbed`), and
    ``size``, how much evidence (e.g. :func:`size_text`: samples per arm x seeds, the step counts,
    the parameter set). Both are required keywords and may not be empty."""

    claim: str
    chapter: str
    finding: str
    value: float
    ci_low: float
    ci_high: float
    verdict: FindingVerdict
    seeds: str = ""
    model: str = field(kw_only=True)
    size: str = field(kw_only=True)

    def __post_init__(self) -> None:
        if self.claim not in _CLAIM_IDS:
            raise ValueError(f"unknown claim {self.claim!r}; known: {sorted(_CLAIM_IDS)}")
        if self.verdict not in FINDING_VERDICTS:
            raise ValueError(
                f"unknown verdict {self.verdict!r}; expected one of {FINDING_VERDICTS}"
            )
        if not self.chapter or "/" in self.chapter:
            raise ValueError(f"chapter must be a notebook name, got {self.chapter!r}")
        for name, what in _SCOPE_FIELDS.items():
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(
                    f"Finding field {name!r} must name {what}, got {value!r} (finding on "
                    f"{self.claim!r} from chapter {self.chapter!r})"
                )

    @property
    def scope(self) -> str:
        """The short scope a verdict is shown with: the model's name(s) without the details in
        parentheses, and the size of the parameter set (``"digits at quick CI size"``)."""
        return _scope(self.model, [self.size])

    @property
    def verdict_text(self) -> str:
        """The verdict in the claim's words with its scope (:func:`scoped_verdict`), e.g.
        ``"not reproduced on digits at quick CI size"``: never a bare verdict."""
        return scoped_verdict(self.verdict, self.scope)


#: The scope fields and what each must name (for the error message).
_SCOPE_FIELDS: dict[str, str] = {
    "model": "the model(s) the evidence was measured on",
    "size": "the size of the evidence (samples x seeds, step counts, parameter set)",
}


def _outside_parentheses(text: str) -> str:
    """``text`` without its parenthesised parts (nested ones too), spaces tidied."""
    depth, out = 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")" and depth:
            depth -= 1
        elif depth == 0:
            out.append(ch)
    return re.sub(r"\s+", " ", "".join(out)).strip(" ,;:")


_SET_RE = re.compile(r"\b(?:(quick) CI parameters|([\w.-]+) parameter set|(custom) parameters)\b")


def _params_words(sizes: Iterable[str]) -> list[str]:
    """The parameter-set labels (:func:`params_label`) the sizes carry, in order, once each."""
    out: list[str] = []
    for size in sizes:
        for m in _SET_RE.finditer(size):
            label = m.group(0)
            if label not in out:
                out.append(label)
    return out


#: How a claim's verdict reads on the claims page: the engine's verdict (supported, contradicted,
#: mixed, inconclusive) in the words of reproducing a paper's claim.
CLAIM_WORDS: dict[str, str] = {
    "supported": "reproduced",
    "contradicted": "not reproduced (the opposite measured)",
    "mixed": "reproduced in part",
    "inconclusive": "not settled",
    "not measured": "not measured",
}


def scoped_verdict(verdict: str, scope: str) -> str:
    """A claim's verdict in words (:data:`CLAIM_WORDS`) with where it was measured:
    ``"not reproduced (the opposite measured) on digits at quick CI size"``. The scope is
    required: a verdict on the paper's claim is never shown without the model and size behind
    it."""
    if verdict not in CLAIM_WORDS:
        raise ValueError(f"unknown verdict {verdict!r}; expected one of {list(CLAIM_WORDS)}")
    if not scope.strip():
        raise ValueError(f"the verdict {verdict!r} needs its scope (model and size)")
    return f"{CLAIM_WORDS[verdict]} on {scope}"


def _size_word(label: str) -> str:
    """A parameter set's label (:func:`params_label`) as the size a verdict was measured at."""
    if label == QUICK_PARAMETERS:
        return "quick CI size"
    if label == CUSTOM_PARAMETERS:
        return "custom size"
    name = label.removesuffix(" parameter set")
    return "full size" if name == "full" else f"'{name}' size"


def _scope(model: str | Iterable[str], sizes: Iterable[str]) -> str:
    """``"<model names> at <sizes>"`` for one finding or several (``"fashion at full size"``,
    ``"digits and mixture-2d at full size / quick CI size"``); the model names alone where the
    sizes name no parameter set."""
    models = [model] if isinstance(model, str) else list(model)
    names: list[str] = []
    for m in models:
        short = _outside_parentheses(m) or m
        if short not in names:
            names.append(short)
    text = " and ".join(names) if len(names) <= 2 else ", ".join(names[:-1]) + " and " + names[-1]
    words = [_size_word(w) for w in _params_words(sizes)]
    return f"{text} at {' / '.join(words)}" if words else text


# ===================================================================== scope texts
#: :func:`params_label` of a chapter's defaults (its notebook's ``parameters`` cell: CI-sized).
QUICK_PARAMETERS = "quick CI parameters"
#: :func:`params_label` of parameters that are neither the defaults nor a named parameter set.
CUSTOM_PARAMETERS = "custom parameters"
#: Parameters that choose where a run executes, not what it computes (left out of the match; the
#: same rule as the committed results' parameter key).
_EXECUTION_FIELDS = frozenset({"device"})


def _count(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1e6:.3g}M"
    if n >= 1_000:
        return f"{n / 1e3:.3g}K"
    return str(n)


def describe_testbed(name: str, data: str | Path | None = None, note: str = "") -> str:
    """The model a testbed (:func:`~vrg_analysis.testbeds.make_testbed`'s name) runs, for a
    finding's ``model``: the testbed's name first (what the verdict badge shows), then its shipped
    checkpoint, the card's description and parameter count, e.g. ``"digits (digits-unet:
    unconditional UNet on scikit-learn's 8x8 digits (training split), 411K parameters)"``. A
    diffusers checkpoint folder is named with its ``data``. ``note`` is added inside the
    parentheses (e.g. how the samples were scored)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"describe_testbed: a testbed name or checkpoint folder, got {name!r}")
    if name in IMAGE_TESTBEDS or name in MIXTURES:
        checkpoint = IMAGE_TESTBEDS[name][0] if name in IMAGE_TESTBEDS else MIXTURES[name][1]
        card = load_card(checkpoint)
        parts = [f"{checkpoint}: {card.get('description') or 'shipped checkpoint'}"]
        if isinstance(card.get("num_parameters"), int):
            parts.append(f"{_count(card['num_parameters'])} parameters")
    elif Path(name).is_dir():
        parts = [f"diffusers checkpoint {name}" + (f", data {data}" if data else "")]
        name = Path(name).name or name
    else:
        known = sorted([*IMAGE_TESTBEDS, *MIXTURES])
        raise ValueError(
            f"describe_testbed: {name!r} is neither a testbed ({', '.join(known)}) nor a "
            "checkpoint folder"
        )
    if note:
        parts.append(note)
    return f"{name} ({', '.join(parts)})"


def _init_values(params: Any) -> dict[str, Any]:
    return {
        f.name: getattr(params, f.name)
        for f in dataclasses.fields(params)
        if f.init and f.name not in _EXECUTION_FIELDS
    }


def _built(cls: type, values: dict[str, Any], source: str) -> Any | None:
    """``cls(**values)``, or ``None`` where the values are refused on this machine (a file they
    name is absent, a device unavailable): such a set cannot be the one that ran."""
    try:
        return cls(**values)
    except TypeError as err:
        raise ValueError(f"{source}: not parameters of {cls.__qualname__} ({err})") from err
    except ValueError:
        return None


def params_label(params: Any, chapter: str) -> str:
    """Which parameter set ``params`` (a chapter's ``Params`` dataclass) is:
    :data:`QUICK_PARAMETERS` for the defaults (the CI quick set), ``"<name> parameter set"`` for a
    set of ``notebooks/params/<name>/<chapter>.yaml`` (``"full parameter set"``), else
    :data:`CUSTOM_PARAMETERS`. The execution device is left out of the match."""
    if not dataclasses.is_dataclass(params) or isinstance(params, type):
        raise TypeError(f"params_label: a chapter's Params instance, got {type(params).__name__}")
    cls, mine = type(params), _init_values(params)
    default = _built(cls, {}, f"{cls.__module__}.{cls.__qualname__}()")
    if default is not None and _init_values(default) == mine:
        return QUICK_PARAMETERS
    folder = notebooks_dir() / "params"
    sets = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    for set_dir in sets:
        path = set_dir / f"{chapter}.yaml"
        if set_dir.name == "quick" or not path.is_file():
            continue
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(values, dict):
            raise ValueError(f"{path}: expected a mapping of parameters")
        other = _built(cls, values, str(path))
        if other is not None and _init_values(other) == mine:
            return f"{set_dir.name} parameter set"
    return CUSTOM_PARAMETERS


def _steps_text(steps: Iterable[int]) -> str:
    ks = sorted(set(int(k) for k in steps))
    if not ks:
        raise ValueError("size_text: no step counts")
    return f"K={ks[0]}" if len(ks) == 1 else f"K {ks[0]}–{ks[-1]} ({len(ks)} values)"


def size_text(
    params: Any,
    chapter: str,
    *,
    samples: int | None = None,
    seeds: Sequence[int] | None = None,
    steps: Iterable[int] | None = None,
    detail: str = "",
) -> str:
    """A finding's ``size``: ``"<samples> samples per arm × <n> seeds, K <lo>–<hi>, <detail>,
    <parameter set>"`` (:func:`params_label`), each part only where given, e.g. ``"200 samples
    per arm × 3 seeds, K 5–10 (2 values), quick CI parameters"``."""
    parts = []
    if samples is not None:
        part = f"{int(samples)} samples per arm"
        if seeds is not None:
            n = len(seeds)
            part += f" × {n} seed{'s' if n != 1 else ''}"
        parts.append(part)
    elif seeds is not None:
        parts.append(f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''}")
    if steps is not None:
        parts.append(_steps_text(steps))
    if detail:
        parts.append(detail)
    parts.append(params_label(params, chapter))
    return ", ".join(parts)


def write_findings(findings: Iterable[Finding], folder: str | Path, chapter: str) -> Path:
    """Write one chapter's findings to ``folder/<chapter>.csv`` (atomically; replaces the
    chapter's earlier rows). A finding given twice (every field equal: a page that writes both its
    committed full-size result and this build's run, when the build's run is what it shows) is
    written once."""
    rows = list(dict.fromkeys(findings))
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


#: The columns a findings CSV must have (``seeds`` may be absent: then empty).
_REQUIRED_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Finding) if f.name != "seeds")


def read_findings(folder: str | Path) -> list[Finding]:
    """Every finding in ``folder/*.csv``; a file without a column (one written before findings
    named their scope lacks ``model`` and ``size``) or a malformed row raises ``ValueError``
    naming the file."""
    out: list[Finding] = []
    for path in sorted(Path(folder).glob("*.csv")):
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in _REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(
                    f"{path}: no column {', '.join(repr(c) for c in missing)} (a findings file "
                    "needs the columns " + ", ".join(_REQUIRED_COLUMNS) + "); an old file: rerun "
                    f"the chapter {path.stem!r} to write it again"
                )
            for i, row in enumerate(reader, start=2):
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
                            seeds=row.get("seeds") or "",
                            model=row["model"],
                            size=row["size"],
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
    """One audit's verdict on an assumption's claim, with what it audited (``sources``)."""

    audit: str
    verdict: str
    contradicted: int
    tests: int
    sources: str = ""

    @property
    def verdict_text(self) -> str:
        """``"violated on digits-unet on training data, vs eps (audit)"``."""
        where = self.sources or "the audited models"
        return f"{ASSUMPTION_WORDS[self.verdict]} on {where} (audit)"


@dataclass(frozen=True)
class ClaimRow:
    """One claim with everything measured on it and the overall verdict."""

    claim: Claim
    findings: tuple[Finding, ...]
    audits: tuple[AuditLine, ...]
    verdict: str  # an aggregate verdict, or "not measured"


def _model_parameters(model: str) -> int | None:
    """The parameter count of the testbed a finding's ``model`` names first (its card), or
    ``None`` for a model that is not a shipped testbed (a user's checkpoint folder)."""
    name = model.split(" (", 1)[0].strip()
    if name in IMAGE_TESTBEDS or name in MIXTURES:
        checkpoint = IMAGE_TESTBEDS[name][0] if name in IMAGE_TESTBEDS else MIXTURES[name][1]
        count = load_card(checkpoint).get("num_parameters")
        return int(count) if isinstance(count, int) else 0
    return None


def evidence_order(findings: Iterable[Finding]) -> list[Finding]:
    """The findings with the weightiest evidence first: a named parameter set (a committed
    full-size run) before the quick CI parameters, then the larger model first (parameter count
    from the testbed's card; a model that is not a shipped testbed, a user's checkpoint, counts
    as the largest); otherwise the given order (a stable sort). So the 28x28 Fashion-MNIST
    full-size rows lead a claim, and the 8x8 digits quick rows follow as the fast check."""
    items = list(findings)

    def key(f: Finding) -> tuple[int, float]:
        quick = QUICK_PARAMETERS in _params_words([f.size])
        count = _model_parameters(f.model)
        return (int(quick), -math.inf if count is None else -float(count))

    return sorted(items, key=key)


def claim_rows(findings: Iterable[Finding], audit_summary: dict[str, dict]) -> list[ClaimRow]:
    """Every claim of :data:`CLAIMS` with its findings (in :func:`evidence_order`) and, for an
    assumption's claim, the verdicts of the audits that test it (``audit_summary``:
    :func:`~vrg_analysis.assumptions.verdicts.summarize` of the verdict tables; an audit that no
    claim lists is refused, naming it). The overall verdict is
    :func:`~vrg_analysis.evaluation.stats.aggregate` of the findings' verdicts; an assumption's is
    a conjunction of its audits' (one contradicted audit contradicts it)."""
    found = list(findings)
    listed = {a for c in CLAIMS for a in c.audits}
    unknown = sorted(set(audit_summary) - listed)
    if unknown:
        raise ValueError(
            f"audit(s) {unknown} test no claim of the claims page; known audits: {sorted(listed)}"
        )
    rows = []
    for claim in CLAIMS:
        mine = tuple(evidence_order(f for f in found if f.claim == claim.id))
        audits = tuple(
            AuditLine(
                a,
                str(s["verdict"]),
                int(s["contradicted"]),
                int(s["tests"]),
                str(s.get("sources", "")),
            )
            for a, s in audit_summary.items()
            if a in claim.audits
        )
        verdicts = [f.verdict for f in mine]
        conjunction = False
        if audits:
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
    (what it measured on, the value with its interval, seeds, chapter link, verdict badge). A
    badge is coloured by the verdict and says it in the claim's words with where it was measured
    ("not reproduced (the opposite measured) on digits at quick CI size", :func:`scoped_verdict`;
    an assumption's: "violated on ... (audit)"); the overall verdict names the models and sizes of
    its findings, and an assumption CPE does not need is marked so."""
    folder = Path(book_dir)

    def link(chapter: str) -> str:
        if (folder / f"{chapter}.ipynb").is_file():
            return f'<a href="{chapter}.html">{html.escape(chapter)}</a>'
        return html.escape(chapter)

    def badge(verdict: str, text: str) -> str:
        c = VERDICT_COLOURS.get(verdict, "#ffffff")
        return f'<td style="background:{c};color:white;font-weight:bold">{html.escape(text)}</td>'

    def measured_on(f: Finding) -> str:
        return f"{html.escape(f.model)}<br><small>{html.escape(f.size)}</small>"

    parts = [
        '<table class="claims"><thead><tr><th>claim</th><th>published</th><th>our finding</th>'
        "<th>measured on</th><th>value [95% CI]</th><th>seeds</th><th>chapter</th><th>verdict</th>"
        "</tr></thead><tbody>"
    ]
    for r in rows:
        items = [
            (
                html.escape(f.finding),
                measured_on(f),
                _value_text(f),
                html.escape(f.seeds),
                link(f.chapter),
                f.verdict,
                f.verdict_text,
            )
            for f in r.findings
        ]
        items += [
            (
                f"audit <b>{html.escape(a.audit)}</b>: {a.contradicted} of {a.tests} tests "
                "contradict the assumption",
                html.escape(a.sources or "the audited models: see the audit scorecard"),
                "",
                "",
                link("scorecard"),
                a.verdict,
                a.verdict_text,
            )
            for a in r.audits
        ]
        if not items:
            items = [("not measured in this build", "", "", "", "", "not measured", "not measured")]
        if r.audits:  # the verdict is the audits' (claim_rows), not the findings'
            where = "; ".join(dict.fromkeys(a.sources or "the audited models" for a in r.audits))
            overall = f"{ASSUMPTION_WORDS[r.verdict]} on {where} (audit verdicts)"
        elif r.findings:
            scope = _scope([f.model for f in r.findings], [f.size for f in r.findings])
            overall = scoped_verdict(r.verdict, scope)
        else:
            overall = "not measured in this build"
        if not r.claim.needed_by_cpe:
            overall += "; not needed by CPE, which uses only the error variances"
        for i, (text, where, value, seeds, chapter, verdict, shown) in enumerate(items):
            parts.append("<tr>")
            if i == 0:
                c = VERDICT_COLOURS.get(r.verdict, "#ffffff")
                parts.append(
                    f'<td rowspan="{len(items)}" style="border-left:6px solid {c}">'
                    f"<b>{html.escape(r.claim.statement)}</b><br><i>overall: "
                    f"{html.escape(overall)}</i></td>"
                    f'<td rowspan="{len(items)}">{html.escape(r.claim.published)}</td>'
                )
            parts.append(
                f"<td>{text}</td><td>{where}</td><td>{value}</td><td>{seeds}</td><td>{chapter}</td>"
            )
            parts.append(badge(verdict, shown) + "</tr>")
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
