"""``python -m vrg_analysis profile`` alone and under ``torchrun`` with 2 gloo processes on the CPU:
the same profile bit for bit (counts and values), and a shard whose work was lost resumes to it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vrg_analysis.cli import main

TORCHRUN = Path(sys.executable).with_name("torchrun")
GRID = ",".join(str(t) for t in [*range(0, 1000, 100), 999])
ARGS = ["--model", "mixture-2d", "--timesteps", GRID, "--seed", "4"]
pytestmark = pytest.mark.skipif(
    not TORCHRUN.is_file(), reason="torchrun is installed with torch beside the interpreter"
)


def _run(args: list[str], cwd: Path, processes: int = 1) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if processes == 1:
        cmd = [sys.executable, "-m", "vrg_analysis", "profile", *args]
    else:
        cmd = [
            str(TORCHRUN),
            "--standalone",
            f"--nproc-per-node={processes}",
            "-m",
            "vrg_analysis",
            "profile",
            *args,
        ]
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def _arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k] for k in ("alpha_bar", "mse", "mse_sem", "count")}


def _same(a: Path, b: Path) -> None:
    x, y = _arrays(a), _arrays(b)
    for k in x:
        assert np.array_equal(x[k], y[k]), k


def test_two_processes_give_one_process_result_bitwise(tmp_path: Path) -> None:
    """CPE of two 5-step trajectories to +-10%: the same draws, the same moments, the same
    allocation in every round, so the same profile and report with one process or two."""
    target = ["--target", "0.1", "--steps", "5"]
    _run([*ARGS, *target, "--out", "one.npz"], tmp_path)
    _run([*ARGS, *target, "--out", "two.npz"], tmp_path, processes=2)
    _same(tmp_path / "one.npz", tmp_path / "two.npz")
    r1, r2 = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("one", "two"))
    assert (r1["processes"], r2["processes"]) == (1, 2) and r1["reached"]
    assert r1["cpe"] == r2["cpe"] and r1["model_calls"] == r2["model_calls"]


def test_a_shard_that_lost_its_work_resumes(tmp_path: Path) -> None:
    ck = tmp_path / "ck"
    args = [*ARGS, "--draws", "600", "--checkpoint-dir", str(ck)]
    _run([*args, "--out", "full.npz"], tmp_path, processes=2)
    shards = sorted(ck.glob("*.json"))
    assert {p.name.split(".shard")[1] for p in shards} == {"0of2.json", "1of2.json"}
    lost = [p for p in shards if p.name.endswith("shard1of2.json")][5:]
    for p in lost:  # as if process 1 was killed half-way
        p.unlink()
    backup = {p.name: p.stat().st_mtime_ns for p in ck.glob("*.json")}
    _run([*args, "--out", "again.npz"], tmp_path, processes=2)
    _same(tmp_path / "full.npz", tmp_path / "again.npz")
    for name, mtime in backup.items():  # the finished shards were read, not rewritten
        assert (ck / name).stat().st_mtime_ns == mtime
    assert all(p.exists() for p in lost)
    assert _arrays(tmp_path / "again.npz")["count"].tolist() == [600.0] * 11


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--draws", "10", "--trajectories", "spiral"], "--trajectories: unknown"),
        (["--draws", "10", "--timesteps", "0:1000"], "--timesteps '0:1000'"),
    ],
)
def test_bad_arguments_are_named(extra, message, tmp_path: Path, capsys) -> None:
    code = main(["profile", "--model", "mixture-2d", *extra, "--out", str(tmp_path / "p.npz")])
    assert code == 2 and message in capsys.readouterr().err
