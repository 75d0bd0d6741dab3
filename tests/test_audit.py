"""The audit runner and ``python -m vrg_analysis audit``."""

from __future__ import annotations

import pytest

from vrg_analysis.assumptions.verdicts import results_from_csv
from vrg_analysis.audit import AUDIT_NOTEBOOKS, format_summary, run_audit
from vrg_analysis.cli import main
from vrg_analysis.resources import notebooks_dir
from vrg_analysis.testbeds import resolve_testbed

pytest.importorskip("papermill")


def test_every_audit_notebook_exists():
    for name in AUDIT_NOTEBOOKS:
        assert (notebooks_dir() / f"{name}.ipynb").is_file()


def test_run_audit_writes_notebooks_tables_and_figures_and_ignores_stale_tables(tmp_path):
    out = tmp_path / "audit"
    (out / "verdicts").mkdir(parents=True)
    stale = out / "verdicts" / "audit_independence.csv"
    stale.write_text("not a verdict table\n")  # an earlier, broken run's table
    (out / "verdicts" / "other_model.csv").write_text("ignored: not this run's notebook\n")
    run = run_audit(
        "mixture-2d", out, quick=True, notebooks=("audit_independence",), progress=False
    )
    assert run.notebooks == (out / "audit_independence.ipynb",) and run.notebooks[0].is_file()
    table = results_from_csv(run.csv.read_text())
    assert [r.scope for r in table] == [r.scope for r in run.verdicts] and len(table) > 0
    assert {r.audit for r in table} >= {"independence", "independence (consequence)"}
    assert all(r.source for r in table)
    assert run.markdown.read_text().startswith("| audit |")
    assert any((out / "figures").glob("*.png"))
    assert "independence" in format_summary(run.verdicts)
    # without notebooks the library alone writes the same table
    again = run_audit(
        "mixture-2d",
        tmp_path / "lib",
        quick=True,
        notebooks=("audit_independence",),
        progress=False,
        execute_notebooks=False,
    )
    assert again.notebooks == () and again.csv.read_text() == run.csv.read_text().replace(
        str(out), str(tmp_path / "lib")
    )
    # the notebook shows and writes this model's run, never the book's committed full-size one
    assert all(r.source.startswith("mixture-2d") for r in table)


def test_audit_command_names_bad_input(tmp_path, capsys):
    assert main(["audit", "--model", "cifar-xl", "--out", str(tmp_path / "o")]) == 2
    assert "unknown model 'cifar-xl'" in capsys.readouterr().err
    assert main(["audit", "--model", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "needs data" in capsys.readouterr().err
    with pytest.raises(ValueError, match="invalid device 'tpu'"):
        resolve_testbed("mixture-2d", device="tpu")
