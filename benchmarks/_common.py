"""Shared helpers for the benchmarks: machine description, timing, atomic JSON results.

Benchmarks are scripts (``python benchmarks/bench_*.py``); each writes one small JSON file into
``benchmarks/results/`` that the book's performance appendix (``notebooks/performance.ipynb``)
reads. Every result records the date, the machine, the configuration and all raw times, so a
reader can judge the spread and not only the median (DESIGN.md, conventions).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
# The official VRG data are under a non-commercial licence: read at run time, never copied here.
DEFAULT_REFERENCE_DIR = REPO_ROOT.parent / "shared" / "reference" / "vrg-official"
REFERENCE_ENV = "VRG_REFERENCE_DIR"


def reference_dir(arg: str | os.PathLike[str] | None) -> Path:
    """The official-data folder: ``--reference-dir``, else ``$VRG_REFERENCE_DIR``, else default."""
    raw = arg if arg is not None else os.environ.get(REFERENCE_ENV)
    path = Path(raw) if raw is not None else DEFAULT_REFERENCE_DIR
    if not path.is_dir():
        raise SystemExit(
            f"reference folder {str(path)!r} not found: pass --reference-dir or set "
            f"{REFERENCE_ENV} to the folder holding the official VRG data files"
        )
    return path.resolve()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def set_threads(n: int, *, reexec: bool = False) -> int:
    """Use ``n`` threads in torch and in numpy/scipy's BLAS; return torch's thread count.

    On a 2-core machine shared with other work, 2 threads can be far slower than 1
    (STACK.md), so the benchmarks take the thread count explicitly and record it. BLAS reads
    its thread count from the environment when numpy is first imported (torch imports numpy);
    if that has happened with other settings, ``reexec=True`` restarts the script with the
    environment set (the command line is kept), else the BLAS count stays as it was.
    """
    import torch

    if n < 1:
        raise SystemExit(f"--threads must be >= 1, got {n}")
    wanted = str(n)
    if any(os.environ.get(k) != wanted for k in THREAD_ENV):
        os.environ.update({k: wanted for k in THREAD_ENV})
        if reexec:
            sys.stdout.flush()
            os.execv(sys.executable, [sys.executable, *sys.argv])
    torch.set_num_threads(n)
    return torch.get_num_threads()


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _loadavg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def source_info() -> dict[str, Any]:
    """The repository commit and whether the library differs from it (None outside git)."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--", "vrg_analysis")
    return {
        "git_commit": commit,
        "library_modified": None if status is None else bool(status),
    }


def machine_info() -> dict[str, Any]:
    """Where and with what the benchmark ran (no host names or user data)."""
    import numpy as np
    import scipy
    import torch

    import vrg_analysis

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = os.cpu_count()
    return {
        "cpu_count": os.cpu_count(),
        "cpu_usable": usable,
        "cpu_model": _cpu_model(),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "thread_env": {k: os.environ.get(k) for k in THREAD_ENV},
        "cuda_available": bool(torch.cuda.is_available()),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "versions": {
            "vrg_analysis": vrg_analysis.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "scipy": scipy.__version__,
        },
        "loadavg_start": _loadavg(),
        "source": source_info(),
    }


@dataclass(frozen=True)
class Timing:
    """Raw wall times (seconds) of repeated calls and their summary.

    ``cpu_times_s`` is the process CPU time of each call (all threads): on a machine shared
    with other work, wall time well above CPU time (single-threaded) means the run was waiting
    for a core.
    """

    times_s: list[float]
    median_s: float
    min_s: float
    max_s: float
    mean_s: float
    cpu_times_s: list[float] | None = None
    cpu_median_s: float | None = None

    @classmethod
    def of(cls, times: list[float], cpu_times: list[float] | None = None) -> Timing:
        if not times:
            raise ValueError("no times to summarise")
        return cls(
            times_s=list(times),
            median_s=statistics.median(times),
            min_s=min(times),
            max_s=max(times),
            mean_s=statistics.fmean(times),
            cpu_times_s=list(cpu_times) if cpu_times else None,
            cpu_median_s=statistics.median(cpu_times) if cpu_times else None,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def time_callable(fn: Callable[[], Any], *, repeat: int = 5, warmup: int = 1) -> Timing:
    """Call ``fn`` ``warmup`` times untimed, then ``repeat`` times timed (perf_counter)."""
    if repeat < 1:
        raise ValueError(f"repeat must be >= 1, got {repeat}")
    for _ in range(warmup):
        fn()
    times, cpu = [], []
    for _ in range(repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return Timing.of(times, cpu)


def time_interleaved(
    fns: Mapping[str, Callable[[], Any]], *, repeat: int = 15, warmup: int = 2
) -> dict[str, Timing]:
    """Time several callables in turn so slow drift hits them alike.

    The order alternates between rounds (a, b, then b, a, ...), so neither callable always runs
    right after the other (caches, allocator state, frequency changes).
    """
    if repeat < 1:
        raise ValueError(f"repeat must be >= 1, got {repeat}")
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    cpu: dict[str, list[float]] = {name: [] for name in fns}
    order = list(fns.items())
    for i in range(repeat):
        for name, fn in order if i % 2 == 0 else order[::-1]:
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    return {name: Timing.of(times[name], cpu[name]) for name in fns}


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):  # numpy arrays and scalars, torch tensors
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


def _finite(obj: Any) -> Any:
    """Replace non-finite floats with None: strict JSON has no NaN/Infinity."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def write_result(name: str, payload: Mapping[str, Any], results_dir: Path | None = None) -> Path:
    """Write ``payload`` with date, machine and command line to ``<results_dir>/<name>.json``.

    Atomic: a temporary file in the same folder is renamed onto the target, so an interrupted
    run never leaves a half-written result.
    """
    if not name or any(c in name for c in "/\\") or name.startswith("."):
        raise ValueError(f"invalid result name {name!r}")
    out_dir = Path(results_dir) if results_dir is not None else RESULTS_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {
        "benchmark": name,
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
    }
    doc.update(payload)
    machine = dict(doc.get("machine") or machine_info())
    machine["loadavg_end"] = _loadavg()
    doc["machine"] = machine
    # Round-trip through json once so an unserialisable value fails before anything is written.
    plain = _finite(json.loads(json.dumps(doc, default=_json_default)))
    text = json.dumps(plain, indent=2, allow_nan=False)
    target = out_dir / f"{name}.json"
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{name}.", suffix=".json.tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are ordinary, readable files
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
