"""Every notebook is thin: its parameters, calls into the library, rendering and prose."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
MAX_CODE_LINES = 150


def _code(nb: Path) -> list[dict]:
    return [c for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code"]


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_thin(nb: Path) -> None:
    cells = _code(nb)
    src = "\n".join("".join(c["source"]) for c in cells)
    lines = [ln for ln in src.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    defs = [ln.strip() for ln in src.splitlines() if ln.lstrip().startswith(("def ", "class "))]
    loops = [ln.strip() for ln in src.splitlines() if ln.lstrip().startswith(("for ", "while "))]
    assert len(lines) <= MAX_CODE_LINES, f"{nb.name}: {len(lines)} code lines"
    assert not defs, f"{nb.name} defines {defs}: put it in the library"
    assert not loops, f"{nb.name} loops {loops}: the library computes, the notebook shows"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_source_has_one_parameters_cell_and_no_outputs(nb: Path) -> None:
    cells = _code(nb)
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{nb.name}: {len(tagged)} cells tagged parameters"
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in cells)


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_parameter_is_validated_by_the_library_in_the_next_cell(nb: Path) -> None:
    """The first code cell after the parameters cell builds the chapter's ``Params`` (the one
    library function that validates them, naming a bad parameter) and consumes every parameter,
    so none is silently ignored."""
    cells = _code(nb)
    i = next(k for k, c in enumerate(cells) if "parameters" in c["metadata"].get("tags", []))
    tree = ast.parse("".join(cells[i]["source"]))
    names = {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets}
    nxt = ast.parse("".join(cells[i + 1]["source"]))
    calls = [n for n in ast.walk(nxt) if isinstance(n, ast.Call)]
    assert any(ast.unparse(c.func).endswith("Params") for c in calls), f"{nb.name}: no Params"
    used = {n.id for n in ast.walk(nxt) if isinstance(n, ast.Name)}
    assert names <= used, f"{nb.name}: parameters {sorted(names - used)} are never validated"


def test_the_rule_sees_a_fat_notebook(tmp_path: Path) -> None:
    fat = {"cells": [{"cell_type": "code", "source": ["def f():\n", "    return 1\n"]}]}
    p = tmp_path / "fat.ipynb"
    p.write_text(json.dumps(fat))
    with pytest.raises(AssertionError, match="defines"):
        test_notebook_is_thin(p)


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_the_settings_replace_the_parameters_cell_on_the_page(nb: Path) -> None:
    """The page does not open with the parameters cell's code: the cell's input is removed and
    the cell that validates the parameters ends by showing them as the collapsed "Settings of this
    run" block (:func:`vrg_analysis.report.settings_block`)."""
    cells = _code(nb)
    i = next(k for k, c in enumerate(cells) if "parameters" in c["metadata"].get("tags", []))
    assert cells[i]["metadata"]["tags"] == ["parameters", "remove-input"], nb.name
    last = ast.parse("".join(cells[i + 1]["source"])).body[-1]
    assert isinstance(last, ast.Expr) and isinstance(last.value, ast.Call), nb.name
    assert ast.unparse(last.value.func) == "settings_block", nb.name
    shown = {ast.unparse(a) for a in last.value.args}
    assert "params" in shown, f"{nb.name}: the settings block does not show params"
