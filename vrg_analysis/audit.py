"""``python -m vrg_analysis audit``: the assumption audits of one model, from the library.

For each audit (:data:`AUDIT_NOTEBOOKS`) the runner calls the audit chapter's library function
(:mod:`vrg_analysis.assumptions.chapters`: ``run``, cached by its parameters and the model's
identity), writes its verdict table (``verdicts/<notebook>.csv`` and ``.md``) and its figures
(``figures/*.png``), and then, unless told not to, executes the shipped notebook (found through
:mod:`vrg_analysis.resources`, so an installed package finds it too) with the same parameters:
the notebook's library call hits the cache, so the reader's executed notebook shows the same
results at little cost. Into ``out_dir`` also go the combined ``verdicts.csv`` / ``verdicts.md``.
The tables of an earlier run are removed first, so a failed audit never leaves a stale table.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from vrg_analysis.assumptions.chapters import gaussian, independence, transfer
from vrg_analysis.assumptions.verdicts import (
    AuditResult,
    results_from_csv,
    summarize,
    write_results,
)
from vrg_analysis.params import as_bool, as_int
from vrg_analysis.resources import notebooks_dir
from vrg_analysis.studies import bias_sensitivity
from vrg_analysis.testbeds import resolve_testbed

__all__ = [
    "AUDIT_NOTEBOOKS",
    "AuditRun",
    "format_summary",
    "read_verdicts",
    "run_audit",
    "run_chapter",
]

log = logging.getLogger(__name__)

#: The audit notebooks, in the order they run.
AUDIT_NOTEBOOKS: tuple[str, ...] = ("audit_gaussian", "audit_independence", "audit_transfer")


@dataclass(frozen=True)
class AuditRun:
    out_dir: Path
    notebooks: tuple[Path, ...]
    verdicts: tuple[AuditResult, ...]
    csv: Path
    markdown: Path


def read_verdicts(verdict_dir: str | Path) -> list[AuditResult]:
    """Every ``*.csv`` verdict table in ``verdict_dir`` (sorted by name), concatenated."""
    folder = Path(verdict_dir)
    if not folder.is_dir():
        return []
    out: list[AuditResult] = []
    for path in sorted(folder.glob("*.csv")):
        out.extend(results_from_csv(path.read_text(), str(path)))
    return out


def _gaussian(common: dict[str, Any], verdict_dir: Path, figure_dir: Path) -> None:
    result = gaussian.run(gaussian.Params(**common))
    bias = bias_sensitivity.run(bias_sensitivity.Params(quick=common["quick"], seed=common["seed"]))
    figs = {**gaussian.figures(result), **bias_sensitivity.figures(bias)}
    gaussian.write_outputs(result, verdict_dir, figure_dir, figs)


def _independence(common: dict[str, Any], verdict_dir: Path, figure_dir: Path) -> None:
    result = independence.run(independence.Params(**common))
    independence.write_outputs(result, verdict_dir, figure_dir, independence.figures(result))


def _transfer(common: dict[str, Any], verdict_dir: Path, figure_dir: Path) -> None:
    result = transfer.run(transfer.Params(**common))
    transfer.write_outputs(result, verdict_dir, figure_dir, transfer.figures(result))


#: notebook -> the library call that computes its audit and writes its table and figures
_CHAPTERS: dict[str, Callable[[dict[str, Any], Path, Path], None]] = {
    "audit_gaussian": _gaussian,
    "audit_independence": _independence,
    "audit_transfer": _transfer,
}


def run_chapter(
    name: str, common: dict[str, Any], verdict_dir: str | Path, figure_dir: str | Path
) -> None:
    """Compute one audit chapter with the library and write its verdict table and figures."""
    if name not in _CHAPTERS:
        raise ValueError(f"unknown audit {name!r}; known: {sorted(_CHAPTERS)}")
    _CHAPTERS[name](common, Path(verdict_dir), Path(figure_dir))


def _execute_notebook(name: str, params: dict[str, Any], out: Path, progress: bool) -> Path:
    try:
        import papermill as pm
    except ImportError as exc:  # pragma: no cover - papermill is a dependency
        raise ValueError("writing the executed notebooks needs papermill") from exc
    src = notebooks_dir() / f"{name}.ipynb"
    if not src.is_file():
        raise ValueError(f"audit notebook {src} not found (a broken installation?)")
    target = out / f"{name}.ipynb"
    try:
        pm.execute_notebook(
            str(src),
            str(target),
            parameters=params,
            cwd=str(out),
            progress_bar=progress,
            kernel_name="python3",
        )
    except Exception as exc:  # papermill wraps the cell's error
        raise RuntimeError(f"audit notebook {name} failed (see {target}): {exc}") from exc
    return target


def run_audit(
    model: str,
    out_dir: str | Path,
    *,
    data: str | None = None,
    device: str = "cpu",
    quick: bool = False,
    seed: int = 0,
    notebooks: Sequence[str] = AUDIT_NOTEBOOKS,
    execute_notebooks: bool = True,
    progress: bool = True,
) -> AuditRun:
    """Audit ``model`` (a testbed name or a diffusers folder with ``data``; see
    :func:`~vrg_analysis.testbeds.resolve_testbed`) with the library and collect the verdicts;
    with ``execute_notebooks`` also write the executed notebooks (module docstring)."""
    seed = as_int(seed, "seed", minimum=0)
    quick = as_bool(quick, "quick")
    unknown = [n for n in notebooks if n not in _CHAPTERS]
    if unknown:
        raise ValueError(f"unknown audit notebook(s) {unknown}; known: {list(AUDIT_NOTEBOOKS)}")
    resolve_testbed(model, data=data, device=device)  # fail fast on a bad model/data/device
    out = Path(out_dir).resolve()
    verdict_dir, figure_dir = out / "verdicts", out / "figures"
    verdict_dir.mkdir(parents=True, exist_ok=True)
    figure_dir.mkdir(parents=True, exist_ok=True)
    common = {
        "model": str(Path(model).resolve()) if Path(model).is_dir() else model,
        "data": None if data is None else str(Path(data).resolve()),
        "device": device,
        "quick": quick,
        "seed": seed,
    }
    names = list(notebooks)
    for name in names:  # a table left by an earlier run must not be read as this run's
        (verdict_dir / f"{name}.csv").unlink(missing_ok=True)
        (verdict_dir / f"{name}.md").unlink(missing_ok=True)
    done: list[Path] = []
    for name in tqdm(names, desc="audits", unit="audit", disable=not progress):
        run_chapter(name, common, verdict_dir, figure_dir)
        if execute_notebooks:
            nb_params = {
                **common,
                "verdict_dir": str(verdict_dir),
                "figure_dir": str(figure_dir),
                "committed": "",  # this model's run, never the book's committed one
            }
            done.append(_execute_notebook(name, nb_params, out, progress))
    verdicts = [
        r
        for name in names
        if (verdict_dir / f"{name}.csv").is_file()
        for r in results_from_csv((verdict_dir / f"{name}.csv").read_text(), f"{name}.csv")
    ]
    csv_path, md_path = write_results(verdicts, out, "verdicts")
    return AuditRun(out, tuple(done), tuple(verdicts), csv_path, md_path)


def format_summary(verdicts: Sequence[AuditResult]) -> str:
    """One line per audit: overall verdict and counts."""
    lines = []
    for audit, s in summarize(verdicts).items():
        lines.append(
            f"{audit:28s} {s['verdict']:13s} ({s['supported']} supported, {s['contradicted']} "
            f"contradicted, {s['inconclusive']} inconclusive of {s['tests']})"
        )
    return "\n".join(lines)
