"""Findings round-trip through their CSV files, bad rows are named, every finding names its
scope (model and size) and the page shows each verdict with it."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from vrg_analysis.evaluation.stats import aggregate
from vrg_analysis.report.theme import VERDICT_COLOURS
from vrg_analysis.resources import notebooks_dir
from vrg_analysis.studies import ablation
from vrg_analysis.studies.claims import (
    CLAIMS,
    CUSTOM_PARAMETERS,
    QUICK_PARAMETERS,
    Finding,
    Params,
    claim_rows,
    claims_html,
    describe_testbed,
    evidence_order,
    page_summary,
    params_label,
    read_findings,
    scoped_verdict,
    size_text,
    write_findings,
)

MODEL = "digits (digits-unet: 8x8 digits UNet, 411K parameters)"
SIZE = "200 samples per arm × 3 seeds, K 5–10 (2 values), quick CI parameters"


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
        model=MODEL,
        size=SIZE,
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
    with pytest.raises(ValueError, match=r"x.csv: no column 'finding'"):
        read_findings(tmp_path)
    header = "claim,chapter,finding,value,ci_low,ci_high,verdict,seeds,model,size\n"
    (tmp_path / "x.csv").write_text(header + "ddim-fid,x,f,oops,1,2,supported,0,m,s\n")
    with pytest.raises(ValueError, match="x.csv:2: malformed"):
        read_findings(tmp_path)


# ----------------------------------------------------------------- the scope of a finding
def test_model_and_size_are_required_keywords() -> None:
    base = dict(
        claim="ddim-fid",
        chapter="ablation",
        finding="f",
        value=1.0,
        ci_low=0.0,
        ci_high=2.0,
        verdict="supported",
    )
    with pytest.raises(TypeError, match="model"):
        Finding(**base, size=SIZE)  # type: ignore[arg-type, call-arg]
    with pytest.raises(TypeError, match="size"):
        Finding(**base, model=MODEL)  # type: ignore[arg-type, call-arg]


@pytest.mark.parametrize("name", ["model", "size"])
@pytest.mark.parametrize("value", ["", "   "])
def test_an_empty_scope_is_refused_naming_the_field(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=f"field '{name}'"):
        _finding(**{name: value})


def test_model_and_size_round_trip(tmp_path: Path) -> None:
    f = _finding(model='mixture-2d (exact, with "quotes", commas)', size="24 samples, x\ny")
    write_findings([f], tmp_path, "quality_vs_steps")
    (back,) = read_findings(tmp_path)
    assert back == f
    assert (back.model, back.size) == (f.model, f.size)


def test_an_old_csv_without_the_scope_columns_is_refused_naming_file_and_column(
    tmp_path: Path,
) -> None:
    old = (
        "claim,chapter,finding,value,ci_low,ci_high,verdict,seeds\n"
        "ddim-fid,ablation,VRG lowers FID,-0.2,-0.5,0.1,mixed,0\n"
    )
    (tmp_path / "ablation.csv").write_text(old)
    with pytest.raises(ValueError, match=r"ablation\.csv: no column 'model', 'size'") as err:
        read_findings(tmp_path)
    assert "rerun the chapter 'ablation'" in str(err.value)


def test_the_verdict_is_shown_with_its_scope() -> None:
    f = _finding(verdict="contradicted")
    assert f.scope == "digits at quick CI size"
    assert f.verdict_text == "not reproduced (the opposite measured) on digits at quick CI size"
    g = _finding(model="official CIFAR-10 error profile (a (nested) file)", size="K=10, custom")
    assert g.verdict_text == "reproduced in part on official CIFAR-10 error profile"
    full = _finding(verdict="supported", model="fashion (f)", size="500 × 3, full parameter set")
    assert full.verdict_text == "reproduced on fashion at full size"
    assert _finding(verdict="inconclusive").verdict_text == "not settled on digits at quick CI size"
    with pytest.raises(ValueError, match="needs its scope"):
        scoped_verdict("supported", " ")
    with pytest.raises(ValueError, match="unknown verdict 'holds'"):
        scoped_verdict("holds", "digits")


def test_describe_testbed_names_the_testbed_and_its_checkpoint() -> None:
    image = describe_testbed("digits")
    assert image.startswith("digits (digits-unet: ") and "parameters)" in image
    mixture = describe_testbed("mixture-2d", note="errors against the exact ODE")
    assert mixture.startswith("mixture-2d (mixture-2d-mlp: ")
    assert mixture.endswith(", errors against the exact ODE)")
    with pytest.raises(ValueError, match="'cifar10' is neither a testbed"):
        describe_testbed("cifar10")


def test_params_label_tells_quick_full_and_custom() -> None:
    assert params_label(ablation.Params(), "ablation") == QUICK_PARAMETERS
    # where it runs is not what it computes
    assert params_label(ablation.Params(device="cuda"), "ablation") == QUICK_PARAMETERS
    full = yaml.safe_load((notebooks_dir() / "params" / "full" / "ablation.yaml").read_text())
    assert params_label(ablation.Params(**full), "ablation") == "full parameter set"
    assert params_label(ablation.Params(n_samples=17), "ablation") == CUSTOM_PARAMETERS
    with pytest.raises(TypeError, match="Params instance"):
        params_label(ablation.Params, "ablation")


def test_size_text_joins_samples_seeds_steps_and_the_set() -> None:
    text = size_text(
        ablation.Params(n_samples=17), "ablation", samples=17, seeds=(0, 1), steps=[10, 5, 20]
    )
    assert text == "17 samples per arm × 2 seeds, K 5–20 (3 values), custom parameters"
    assert size_text(ablation.Params(), "ablation", steps=[10], detail="exact CPE") == (
        "K=10, exact CPE, quick CI parameters"
    )


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
            fs,
            _audit_summary(
                {
                    "zero-mean": "supported",
                    "independence": "supported",
                    "independence (consequence)": "contradicted",
                    "transfer": "contradicted",
                }
            ),
        )
    }
    assert rows["ddim-fid"].verdict == "mixed" and len(rows["ddim-fid"].findings) == 2
    assert rows["cpe-reduction"].verdict == "supported"
    # each assumption has its own row, judged by its own audits as a conjunction
    assert rows["assumption-zero-mean"].verdict == "supported"
    assert rows["assumption-transfer"].verdict == "contradicted"
    independence = rows["assumption-independence"]
    assert independence.verdict == "contradicted" and len(independence.audits) == 2
    assert rows["assumption-gaussian"].verdict == "not measured"
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


def test_claims_html_shows_where_each_verdict_was_measured(tmp_path: Path) -> None:
    fs = [
        _finding(verdict="contradicted"),
        _finding(
            "ablation",
            verdict="supported",
            model="mixture-2d (mixture-2d-mlp <MLP>, 74.9K parameters)",
            size="24 samples per arm × 3 seeds, K=4, full parameter set",
        ),
    ]
    zero = {"verdict": "supported", "contradicted": 0, "tests": 3, "sources": "digits-unet"}
    gauss = {"verdict": "contradicted", "contradicted": 2, "tests": 3, "sources": ""}
    rows = claim_rows(fs, {"zero-mean": zero, "gaussianity": gauss})
    page = claims_html(rows, tmp_path)
    assert "<th>measured on</th>" in page
    # the measured-on cell: the model (escaped) and the size
    assert f"<td>{MODEL}<br><small>{SIZE}</small></td>" in page
    assert "mixture-2d-mlp &lt;MLP&gt;" in page
    # the badge carries the scope; the verdict alone is never the badge's whole text
    red = VERDICT_COLOURS["contradicted"]
    badge = f'background:{red};color:white;font-weight:bold">'
    assert f"{badge}not reproduced (the opposite measured) on digits at quick CI size</td>" in page
    assert ">reproduced on mixture-2d at full size</td>" in page
    for bare in ("supported", "contradicted", "mixed", "inconclusive"):
        assert f">{bare}</td>" not in page and f">{bare} on " not in page
    # the overall verdict names every model and size behind it, the full-size first
    overall = "reproduced in part on mixture-2d and digits at full size / quick CI size"
    assert f"overall: {overall}" in page
    # an audit line says what it audited; the badge's colour is still keyed by the verdict
    assert ">holds on digits-unet (audit)</td>" in page
    assert "overall: holds on digits-unet (audit verdicts)" in page
    assert f"{badge}violated on the audited models (audit)</td>" in page
    # Gaussianity is marked as not needed by CPE
    assert "(audit verdicts); not needed by CPE, which uses only the error variances" in page
    s = page_summary(rows)
    assert s.n_findings == 2 and s.counts["n_mixed"] == 1


def test_an_audit_that_tests_no_claim_is_refused() -> None:
    with pytest.raises(ValueError, match=r"audit\(s\) \['normality'\] test no claim"):
        claim_rows([], _audit_summary({"normality": "supported"}))


def test_claims_page_refuses_missing_inputs(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="findings_dir"):
        Params(findings_dir=str(tmp_path / "nope"), verdict_dir=str(tmp_path))


def test_a_finding_written_twice_is_kept_once(tmp_path: Path) -> None:
    f = _finding()
    write_findings([f, _finding(value=-0.3), f], tmp_path, "quality_vs_steps")
    assert read_findings(tmp_path) == [f, _finding(value=-0.3)]


def test_the_weightiest_evidence_leads_a_claim() -> None:
    fashion_full = _finding(
        model="fashion (fashion-unet: 28x28 UNet, 1.11M parameters)",
        size="1000 samples per arm × 3 seeds, K 5–20 (3 values), full parameter set",
    )
    fashion_quick = _finding(model="fashion (fashion-unet)", size=SIZE)
    digits_full = _finding(size="450 samples per arm × 5 seeds, full parameter set")
    mixture = _finding(model="mixture-2d (mixture-2d-mlp)", size=SIZE)
    digits_quick = _finding()
    user = _finding(model="/models/my-unet (diffusers checkpoint)", size=SIZE)
    given = [digits_quick, mixture, fashion_quick, user, digits_full, fashion_full]
    assert evidence_order(given) == [
        fashion_full,
        digits_full,
        user,
        fashion_quick,
        digits_quick,
        mixture,
    ]
    rows = {r.claim.id: r for r in claim_rows(given, {})}
    assert rows["ddim-fid"].findings[0] == fashion_full
