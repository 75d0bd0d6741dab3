"""No silent wrong answers: every example of issue 12 gives the right answer or a clear error.

Each test here reproduces a case that gave a wrong number with no error (or an error that did not
say what was wrong) before the fix, and checks what happens now.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from vrg_analysis import NoiseSchedule, Trajectory, cumulative_prediction_error
from vrg_analysis.cache import ORPHAN_AGE_S, cached
from vrg_analysis.core.profile import ErrorProfile, read_official_profile
from vrg_analysis.core.trajectories import read_official_trajectory, time_quadratic
from vrg_analysis.models.checkpoints import load_trained
from vrg_analysis.models.protocol import TorchEpsModel, model_identity
from vrg_analysis.profiling import profile_prediction_error
from vrg_analysis.testbeds import make_testbed
from vrg_analysis.vrg.optimize import optimize_trajectory

SCHED = NoiseSchedule.linear()


# ----------------------------------------------------------------- identity of what is resumed
def test_a_checkpoint_is_never_resumed_with_another_model(tmp_path: Path) -> None:
    from vrg_analysis.models.analytic import PlantedErrorModel

    bed = make_testbed("mixture-2d")
    data = bed.train_x[:64].double()
    ckpt = tmp_path / "run.npz"
    kw = dict(progress=False, checkpoint_path=ckpt, batch_size=32, reservoir_size=0)
    small = PlantedErrorModel(bed.oracle, std=0.1, seed=0)
    profile_prediction_error(
        small, data, [100, 500], generator=torch.Generator().manual_seed(0), **kw
    )
    # before: the fingerprint was the class name, and std=0.1's finished profile came back
    big = PlantedErrorModel(bed.oracle, std=0.5, seed=0)
    with pytest.raises(ValueError, match="model_sha256"):
        profile_prediction_error(
            big, data, [100, 500], generator=torch.Generator().manual_seed(0), **kw
        )
    assert model_identity(small) != model_identity(big)


def test_a_model_without_identity_cannot_be_checkpointed(tmp_path: Path) -> None:
    fn = TorchEpsModel(lambda x, t: torch.zeros_like(x), SCHED)
    data = torch.randn(8, 2, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="declares no identity"):
        profile_prediction_error(
            fn, data, [10, 20], checkpoint_path=tmp_path / "c.npz", progress=False
        )
    keyed = TorchEpsModel(lambda x, t: torch.zeros_like(x), SCHED, identity="zero predictor")
    profile_prediction_error(
        keyed, data, [10, 20], checkpoint_path=tmp_path / "c.npz", progress=False
    )
    assert model_identity(keyed) == "zero predictor"


# ----------------------------------------------------------------- file readers
def _official_like(path: Path, col: np.ndarray, ts: np.ndarray, mse: np.ndarray) -> Path:
    lines = ["# ts alpha_bar MSE"] + [
        f"{t:g}\t{c:.6f}\t{m:.8f}" for t, c, m in zip(ts, col, mse, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_one_minus_beta_column_is_not_read_as_alpha_bar(tmp_path: Path) -> None:
    ts = np.arange(0, 1000, 10)
    a = SCHED.alphas_cumprod
    one_minus_beta = np.concatenate([a[:1], a[1:] / a[:-1]])[ts]
    f = _official_like(
        tmp_path / "bedroom.txt", one_minus_beta, ts, np.linspace(0.8, 1e-5, ts.size)
    )
    # before: read as alpha_bar, CPE 0.000083 with exit code 0
    with pytest.raises(ValueError, match="second_column='one_minus_beta'"):
        read_official_profile(f)
    prof = read_official_profile(f, "one_minus_beta", SCHED)
    assert prof.alpha_bar_range[0] < 1e-3


def test_swapped_columns_are_refused(tmp_path: Path) -> None:
    ts = np.arange(10, 1000, 10)
    a = SCHED.alpha_bar(ts)
    mse = 0.05 + 0.3 * np.exp(-(((a - 0.5) / 0.15) ** 2))  # a hump, as measured profiles have
    swapped = _official_like(tmp_path / "swapped.txt", mse, ts, a)  # MSE where alpha_bar goes
    with pytest.raises(ValueError, match="alpha_bar rises"):
        read_official_profile(swapped)
    with pytest.raises(ValueError, match="must fall as the timestep rises"):
        ErrorProfile(alpha_bar=mse, mse=a, timesteps=ts)  # the same, built directly
    # a monotone MSE in the alpha_bar column still starts far below 1 at timestep 0
    ts0 = np.arange(0, 1000, 10)
    a0 = SCHED.alpha_bar(ts0)
    falling = _official_like(tmp_path / "falling.txt", 0.8 * a0**2 + 1e-5, ts0, a0)
    with pytest.raises(ValueError, match="starts near 1"):
        read_official_profile(falling)


def test_a_headerless_trajectory_file_is_never_read_short(tmp_path: Path) -> None:
    traj = time_quadratic(SCHED, 10)
    f = tmp_path / "levels.txt"
    f.write_text("\n".join(f"{v:.10f}" for v in traj.alpha_bar_from_clean) + "\n")
    # before: the first value was taken for the timestep-0 entry: ten written, nine read
    with pytest.raises(ValueError, match="ambiguous"):
        read_official_trajectory(f)
    assert read_official_trajectory(f, first_is_t0=False).K == 10
    assert read_official_trajectory(f, first_is_t0=True).K == 9
    f.write_text("# steps : 10\n" + f.read_text())
    with pytest.raises(ValueError, match="header says 10 steps"):
        read_official_trajectory(f)  # 10 values cannot be a t0 entry + 10 steps


@pytest.mark.parametrize("content", [b"\x00\x01\x02\x03" * 40, "0 0.9999 0.1\n".encode("utf-16")])
def test_binary_and_utf16_profiles_name_the_file(tmp_path: Path, content: bytes) -> None:
    f = tmp_path / "profile.txt"
    f.write_bytes(content)
    with pytest.raises(ValueError, match="profile.txt") as exc:
        read_official_profile(f)
    assert "UTF-8" in str(exc.value) or "NUL" in str(exc.value)


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty"])
def test_damaged_archives_name_the_path(tmp_path: Path, damage: str) -> None:
    prof = ErrorProfile(alpha_bar=np.array([0.1, 0.5, 0.9]), mse=np.array([0.1, 0.2, 0.3]))
    path = prof.save(tmp_path / "p.npz")
    blob = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(blob[: len(blob) // 2])
    elif damage == "flip":
        path.write_bytes(blob[:30] + bytes([blob[30] ^ 0xFF]) + blob[31:])
    else:
        path.write_bytes(b"")
    with pytest.raises(ValueError, match="p.npz"):
        ErrorProfile.load(path)


def test_damaged_profiling_checkpoints_name_the_path(tmp_path: Path) -> None:
    bed = make_testbed("mixture-2d")
    ckpt = tmp_path / "ck.npz"
    ckpt.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ValueError, match="ck.npz.*not a readable profiling checkpoint"):
        profile_prediction_error(
            bed.oracle, bed.train_x[:8].double(), [10], checkpoint_path=ckpt, progress=False
        )


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("mse_sem", [0.1, -0.2, 0.1], "mse_sem.*negative"),
        ("variance", [0.1, float("nan"), 0.1], "variance.*not finite"),
        ("count", [1.0, 2.0, -3.0], "count.*negative"),
    ],
)
def test_profiles_refuse_impossible_statistics(field: str, value: list, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ErrorProfile(alpha_bar=[0.1, 0.5, 0.9], mse=[0.1, 0.2, 0.3], **{field: value})


@pytest.mark.parametrize(
    ("card", "match"),
    [
        ([1, 2, 3], "JSON object"),
        ({"architecture": "DigitsUNet", "sha256": "0" * 64, "schedule": {}}, "architecture"),
        (
            {"architecture": {"class": "DigitsUNet", "kwargs": {}}, "sha256": "x", "schedule": {}},
            "64 hex",
        ),
        (
            {"architecture": {"class": "DigitsUNet"}, "sha256": "0" * 64, "schedule": {"a": 1}},
            "schedule",
        ),
    ],
)
def test_malformed_model_cards_are_named(tmp_path: Path, card: object, match: str) -> None:
    (tmp_path / "m.json").write_text(json.dumps(card))
    (tmp_path / "m.pt").write_bytes(b"")
    with pytest.raises(ValueError, match=match):
        load_trained("m", tmp_path)


# ----------------------------------------------------------------- the artifact cache
def test_a_changed_cache_entry_is_recomputed(tmp_path: Path, caplog) -> None:
    calls = []

    def compute() -> list[int]:
        calls.append(1)
        return [1, 2, 3]

    assert cached("x", {"a": 1}, compute, directory=tmp_path, enabled=True) == [1, 2, 3]
    entry = next(tmp_path.glob("x-*.pkl"))
    import pickle

    entry.write_bytes(pickle.dumps([9, 9, 9]))  # a valid pickle with other bytes
    with caplog.at_level(logging.WARNING, logger="vrg_analysis.cache"):
        assert cached("x", {"a": 1}, compute, directory=tmp_path, enabled=True) == [1, 2, 3]
    assert len(calls) == 2 and "checksum" in caplog.text


def test_orphan_temporaries_are_removed_and_an_unwritable_cache_keeps_the_result(
    tmp_path: Path,
) -> None:
    orphan = tmp_path / ".x-123.pkl.abc.tmp"
    orphan.write_bytes(b"half")
    old = time.time() - ORPHAN_AGE_S - 10
    os.utime(orphan, (old, old))
    fresh = tmp_path / ".y-1.pkl.def.tmp"
    fresh.write_bytes(b"being written")
    cached("z", {}, lambda: 1, directory=tmp_path, enabled=True)
    assert not orphan.exists() and fresh.exists()
    blocked = tmp_path / "file"
    blocked.write_text("a file where the cache folder should be")
    assert cached("w", {}, lambda: 42, directory=blocked / "cache", enabled=True) == 42


# ----------------------------------------------------------------- numerics
def _profile(scale: float) -> ErrorProfile:
    t = np.arange(1000)
    a = SCHED.alpha_bar(t)
    return ErrorProfile(alpha_bar=a, mse=scale * (0.5 * a**3 + 0.02 * a + 1e-5), timesteps=t)


def test_the_optimiser_does_not_depend_on_the_profile_scale() -> None:
    traj = time_quadratic(SCHED, 10)
    ref = optimize_trajectory(traj, _profile(1.0), gamma=0.05, keep_start=True)
    assert ref.moved and ref.converged and ref.cpe_reduction > 0.001
    for scale in (1e-2, 1e-6, 1e-8):
        res = optimize_trajectory(traj, _profile(scale), gamma=0.05, keep_start=True)
        # before: 0.461% at x1, 0.495% at x1e-2, ~0.4% at x1e-6 and 0% (converged!) at x1e-8
        assert res.moved and res.converged
        assert res.cpe_reduction == pytest.approx(ref.cpe_reduction, rel=1e-6)
        np.testing.assert_allclose(res.optimized.alpha_bar, ref.optimized.alpha_bar, rtol=1e-7)


def test_the_optimiser_gives_the_same_bits_at_any_thread_count() -> None:
    traj = time_quadratic(SCHED, 10)
    old = torch.get_num_threads()
    try:
        runs = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            runs.append(optimize_trajectory(traj, _profile(1e-6), gamma=0.05, keep_start=True))
    finally:
        torch.set_num_threads(old)
    np.testing.assert_array_equal(runs[0].optimized.alpha_bar, runs[1].optimized.alpha_bar)


def test_cpe_reduction_of_an_all_zero_profile_is_zero() -> None:
    zero = ErrorProfile(alpha_bar=SCHED.alpha_bar(np.arange(1000)), mse=np.zeros(1000))
    res = optimize_trajectory(time_quadratic(SCHED, 5), zero, gamma=0.05, keep_start=True)
    assert res.cpe_reduction == 0.0 and cumulative_prediction_error(res.optimized, zero) == 0.0


def test_trajectory_from_a_copy_keeps_its_levels(tmp_path: Path) -> None:
    traj = Trajectory([0.1, 0.5, 0.9], name="t")
    shutil.copy(traj.save(tmp_path / "t.json"), tmp_path / "u.json")
    np.testing.assert_array_equal(Trajectory.load(tmp_path / "u.json").alpha_bar, traj.alpha_bar)


# ----------------------------------------------------------------- nothing half-written
def _writers(tmp_path: Path) -> dict[str, tuple[Path, object]]:
    """Each of the library's writers, as (the file it writes, a call that writes it)."""
    from matplotlib.figure import Figure

    from vrg_analysis.assumptions.verdicts import AuditResult, write_results
    from vrg_analysis.io import atomic_write_text
    from vrg_analysis.report import save_figures
    from vrg_analysis.studies.claims import Finding, write_findings

    traj = time_quadratic(SCHED, 6)
    profile = ErrorProfile(np.linspace(0.999, 0.01, 5), np.linspace(0.01, 0.5, 5))
    finding = Finding(
        "few-steps", "quality_vs_steps", "measured", 1.0, 0.5, 1.5, "supported", model="m", size="s"
    )
    row = AuditResult("zero-mean", "t", "all", 1.0, 0.5, 0.1, "d", 0.1, "inconclusive", 10)
    fig = Figure()
    fig.add_subplot().plot([0, 1])
    return {
        "text": (tmp_path / "a.txt", lambda: atomic_write_text(tmp_path / "a.txt", "new\n")),
        "trajectory": (tmp_path / "t.json", lambda: traj.save(tmp_path / "t.json")),
        "profile": (tmp_path / "p.npz", lambda: profile.save(tmp_path / "p.npz")),
        "findings": (
            tmp_path / "quality_vs_steps.csv",
            lambda: write_findings([finding], tmp_path, "quality_vs_steps"),
        ),
        "verdicts": (tmp_path / "audit.csv", lambda: write_results([row], tmp_path, "audit")),
        "figure": (tmp_path / "s_f.png", lambda: save_figures({"f": fig}, tmp_path, "s")),
        "cache": (None, lambda: cached("injected", {"k": 1}, lambda: {"x": np.ones(3)})),
    }


@pytest.mark.parametrize("where", ["while writing", "at the rename"])
@pytest.mark.parametrize(
    "writer", ["text", "trajectory", "profile", "findings", "verdicts", "figure", "cache"]
)
def test_an_injected_failure_leaves_the_old_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, writer: str, where: str
) -> None:
    import vrg_analysis.io as vio

    monkeypatch.setenv("VRG_CACHE_DIR", str(tmp_path / "cache"))
    path, write = _writers(tmp_path)[writer]
    if path is not None:
        path.write_bytes(b"the old, complete file")
    real_fdopen = vio.os.fdopen

    class Failing:
        """A file object that writes half of what it is given, then fails (a full disk)."""

        def __init__(self, fh):
            self.fh = fh

        def write(self, data):
            self.fh.write(data[: len(data) // 2])
            raise OSError("injected: disk full")

        def __getattr__(self, name):
            return getattr(self.fh, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.fh.__exit__(*exc)

    def failing_fdopen(fd, mode="r", *args, **kwargs):
        fh = real_fdopen(fd, mode, *args, **kwargs)
        return Failing(fh) if where == "while writing" else fh

    def failing_replace(src, dst):
        raise OSError("injected: rename failed")

    monkeypatch.setattr(vio.os, "fdopen", failing_fdopen)
    if where == "at the rename":
        monkeypatch.setattr(vio.os, "replace", failing_replace)
    if writer == "cache":
        # the cache keeps its result when it cannot store it (test above); here: nothing stored
        assert write()["x"].sum() == 3
        monkeypatch.undo()
        monkeypatch.setenv("VRG_CACHE_DIR", str(tmp_path / "cache"))
        calls = []
        cached("injected", {"k": 1}, lambda: calls.append(1) or {"x": np.ones(3)})
        assert calls == [1]  # recomputed: no entry (whole or half) was left behind
    else:
        with pytest.raises(OSError, match="injected"):
            write()
        assert path.read_bytes() == b"the old, complete file"
    leftovers = [p.name for p in tmp_path.rglob("*.tmp")]
    assert not leftovers, f"temporary files left behind: {leftovers}"
