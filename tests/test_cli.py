import json
import subprocess
import sys

import pytest
from official_excerpt import CIFAR10_PROFILE_ROWS, CPE_BASELINE, TIME_QUADRATIC_10

from vrg_analysis.cli import main


@pytest.fixture
def official_like(tmp_path):
    prof = tmp_path / "MSE.txt"
    prof.write_text("".join(f"{ts}\t{a:.6f}\t{m:.8f}\n" for ts, a, m in CIFAR10_PROFILE_ROWS))
    traj = tmp_path / "dpm_alphaBar_1-010-time_quadratic.txt"
    traj.write_text("# steps : 10\n" + "".join(f"{v:.8f}\n" for v in TIME_QUADRATIC_10))
    return prof, traj


def test_cpe_command(official_like, capsys):
    prof, traj = official_like
    assert main(["cpe", "--profile", str(prof), "--trajectory", str(traj)]) == 0
    assert float(capsys.readouterr().out) == pytest.approx(CPE_BASELINE, abs=1e-6)


def test_baseline_and_optimize_commands(tmp_path, official_like, capsys):
    prof, _ = official_like
    out = tmp_path / "tq.json"
    assert main(["baseline", "time_quadratic", "10", "--out", str(out)]) == 0
    res = tmp_path / "vrg.json"
    code = main(
        [
            "optimize",
            "--profile",
            str(prof),
            "--trajectory",
            str(out),
            "--keep-start",
            "--schedule",
            "linear",
            "--out",
            str(res),
        ]
    )
    assert code == 0
    data = json.loads(res.read_text())
    assert data["keep_start"] is True and data["cpe_final"] < data["cpe_initial"]
    assert data["config"]["alpha_bar_max"] == pytest.approx(1 - 1e-4)
    assert "CPE" in capsys.readouterr().out


def test_errors_are_reported_not_raised(tmp_path, capsys):
    assert main(["cpe", "--profile", str(tmp_path / "nope.txt"), "--trajectory", "x"]) == 2
    assert "profile file not found" in capsys.readouterr().err


def test_module_entry_point():
    proc = subprocess.run(
        [sys.executable, "-m", "vrg_analysis", "baseline", "karras", "3"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert len(json.loads(proc.stdout)["alpha_bar"]) == 3
