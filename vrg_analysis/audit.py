"""``python -m vrg_analysis audit``: run the three assumption-audit notebooks on one model.

Each notebook (:data:`AUDIT_NOTEBOOKS`) is executed with papermill, with the parameters every
audit notebook takes (``model``, ``data``, ``device``, ``quick``, ``seed``, ``verdict_dir``,
``figure_dir``). Into ``out_dir`` go the executed notebooks, ``verdicts/<notebook>.csv`` (one
table per audit, written by the notebook), the combined ``verdicts.csv`` / ``verdicts.md`` and the
figures (``figures/*.png``). A notebook that fails stops the run with its name and error; the
tables of the notebooks that finished stay in place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from vrg_analysis.assumptions.verdicts import (
    AuditResult,
    results_from_csv,
    summarize,
    write_results,
)
from vrg_analysis.testbeds import resolve_testbed

__all__ = [
    "AUDIT_NOTEBOOKS",
    "AuditRun",
    "default_notebooks_dir",
    "format_summary",
    "read_verdicts",
    "run_audit",
]

#: The audit notebooks, in the order they run.
AUDIT_NOTEBOOKS: tuple[str, ...] = ("audit_gaussian", "audit_independence", "audit_transfer")


def default_notebooks_dir() -> Path:
    """The repository's ``notebooks/`` folder beside the package."""
    return Path(__file__).resolve().parent.parent / "notebooks"


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


def run_audit(
    model: str,
    out_dir: str | Path,
    *,
    data: str | None = None,
    device: str = "cpu",
    quick: bool = False,
    seed: int = 0,
    notebooks: Sequence[str] = AUDIT_NOTEBOOKS,
    notebooks_dir: str | Path | None = None,
    progress: bool = True,
) -> AuditRun:
    """Run the audit notebooks on ``model`` (a testbed name or a diffusers folder; see
    :func:`~vrg_analysis.testbeds.resolve_testbed`) and collect the verdicts."""
    try:
        import papermill as pm
    except ImportError as exc:  # pragma: no cover - papermill is in the book extra
        raise ValueError(
            "the audit command needs papermill: pip install 'vrg-analysis[book]'"
        ) from exc
    src_dir = Path(notebooks_dir) if notebooks_dir is not None else default_notebooks_dir()
    missing = [n for n in notebooks if not (src_dir / f"{n}.ipynb").is_file()]
    if missing:
        raise ValueError(f"audit notebook(s) {missing} not found in {src_dir}")
    resolve_testbed(model, data=data, device=device)  # fail fast on a bad model/data/device
    out = Path(out_dir).resolve()
    verdict_dir, figure_dir = out / "verdicts", out / "figures"
    verdict_dir.mkdir(parents=True, exist_ok=True)
    figure_dir.mkdir(parents=True, exist_ok=True)
    params = {
        "model": str(Path(model).resolve()) if Path(model).is_dir() else model,
        "data": None if data is None else str(Path(data).resolve()),
        "device": device,
        "quick": bool(quick),
        "seed": int(seed),
        "verdict_dir": str(verdict_dir),
        "figure_dir": str(figure_dir),
    }
    names = list(notebooks)
    for name in names:  # a table left by an earlier run must not be read as this run's
        (verdict_dir / f"{name}.csv").unlink(missing_ok=True)
        (verdict_dir / f"{name}.md").unlink(missing_ok=True)
    done: list[Path] = []
    iterator = names
    if progress:
        from tqdm import tqdm

        iterator = tqdm(names, desc="audits", unit="notebook")
    for name in iterator:
        target = out / f"{name}.ipynb"
        try:
            pm.execute_notebook(
                str(src_dir / f"{name}.ipynb"),
                str(target),
                parameters=params,
                cwd=str(src_dir),
                progress_bar=progress,
                kernel_name="python3",
            )
        except Exception as exc:  # papermill wraps the cell's error
            raise RuntimeError(f"audit notebook {name} failed (see {target}): {exc}") from exc
        done.append(target)
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
            f"contradicted, "
            f"{s['inconclusive']} inconclusive of {s['tests']})"
        )
    return "\n".join(lines)
