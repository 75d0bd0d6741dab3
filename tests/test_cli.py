import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

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


# ----------------------------------------------------------------- no silent errors (issue 12)
def test_a_one_minus_beta_profile_is_refused_with_the_option(tmp_path, capsys, official_like):
    from vrg_analysis import NoiseSchedule

    sched = NoiseSchedule.linear()
    a = sched.alphas_cumprod
    omb = [a[0], *(a[1:] / a[:-1])]
    prof = tmp_path / "bedroom.txt"
    ts = [*range(0, 1000, 10), 999]  # the last timestep too: the baseline starts there
    prof.write_text("".join(f"{t}\t{omb[t]:.6f}\t{0.8 * (1 - t / 1000):.8f}\n" for t in ts))
    _, traj = official_like
    code = main(["cpe", "--profile", str(prof), "--trajectory", str(traj)])
    err = capsys.readouterr().err
    assert code == 2 and "--second-column one_minus_beta" in err and err.count("\n") == 1
    ok = main(
        [
            "cpe",
            "--profile",
            str(prof),
            "--trajectory",
            str(traj),
            "--second-column",
            "one_minus_beta",
            "--schedule",
            "linear",
        ]
    )
    assert ok == 0


@pytest.mark.parametrize("where", ["under_a_file", "onto_a_folder", "read_only"])
def test_output_places_are_checked_before_the_work(
    tmp_path, capsys, official_like, where, monkeypatch
):
    prof, traj = official_like
    if where == "under_a_file":
        (tmp_path / "f").write_text("x")
        out = tmp_path / "f" / "vrg.json"
    elif where == "onto_a_folder":
        out = tmp_path / "existing"
        out.mkdir()
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        out = ro / "vrg.json"
        real_access = os.access
        # a read-only folder (root, as in CI, may write anywhere: the permission is simulated)
        monkeypatch.setattr(
            os, "access", lambda p, mode: False if Path(p) == ro else real_access(p, mode)
        )
    code = main(["optimize", "--profile", str(prof), "--trajectory", str(traj), "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 2 and captured.err.startswith("error: --out") and captured.out == ""
    assert "Traceback" not in captured.err


def test_a_corrupt_npz_profile_is_one_line(tmp_path, capsys, official_like):
    _, traj = official_like
    bad = tmp_path / "p.npz"
    bad.write_bytes(b"PK\x03\x04broken")
    assert main(["cpe", "--profile", str(bad), "--trajectory", str(traj)]) == 2
    err = capsys.readouterr().err
    assert "p.npz" in err and err.count("\n") == 1


def test_audit_seed_is_checked_before_any_folder_is_made(tmp_path, capsys):
    out = tmp_path / "audit"
    with pytest.raises(SystemExit) as exc:
        main(["audit", "--model", "mixture-2d", "--out", str(out), "--seed", "-1"])
    assert exc.value.code == 2 and not out.exists()
    assert "negative" in capsys.readouterr().err


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(ValueError, match="profile file not found"):
        main(["--debug", "cpe", "--profile", str(tmp_path / "none"), "--trajectory", "x"])


def test_every_option_of_every_command_is_documented():
    from vrg_analysis.cli import _parser

    ap = _parser()
    sub = next(a for a in ap._actions if isinstance(a, argparse._SubParsersAction))
    for name, p in sub.choices.items():
        assert p.epilog and "example" in p.epilog, f"{name}: no example"
        for action in p._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help and len(action.help) > 10, f"{name} {action.dest}: no help"
