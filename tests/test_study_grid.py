"""The paired comparison grid split into units and run across processes
(:mod:`vrg_analysis.studies.grid`): the merged result is the serial run's, arm for arm and bit for
bit; a chapter finds it in the cache; ``torchrun ... study`` writes the one-process artifact."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vrg_analysis.studies import engine, grid
from vrg_analysis.studies import quality_vs_steps as qvs
from vrg_analysis.studies.artifacts import read_artifact
from vrg_analysis.studies.engine import ComparisonConfig, ComparisonResult, run_comparison

TORCHRUN = Path(sys.executable).with_name("torchrun")
MIXTURE = ComparisonConfig(
    testbed="mixture-2d",
    samplers=("ddim", "dpm_solver_2"),
    baselines=("time_uniform", "logsnr_uniform"),
    steps=(3, 5),
    seeds=(0, 1),
    n_samples=64,
    reference_steps=20,
    profile_samples=128,
    profile_stride=50,
)


def _same(a: ComparisonResult, b: ComparisonResult) -> None:
    assert a.config == b.config and a.set_metric == b.set_metric
    assert [x.__dict__.keys() for x in a.arms] == [x.__dict__.keys() for x in b.arms]
    for x, y in zip(a.arms, b.arms, strict=True):
        assert (x.sampler, x.baseline, x.K, x.variant, x.seed) == (
            y.sampler,
            y.baseline,
            y.K,
            y.variant,
            y.seed,
        )
        assert x.set_value == y.set_value and x.cpe == y.cpe and x.nfe == y.nfe
        assert np.array_equal(x.features, y.features) and np.array_equal(x.alpha_bar, y.alpha_bar)
        assert x.per_sample.keys() == y.per_sample.keys()
        for k in x.per_sample:
            assert np.array_equal(x.per_sample[k], y.per_sample[k]), k
    assert sorted(a.profiles) == sorted(b.profiles)
    for s in a.profiles:
        assert np.array_equal(a.profiles[s].mse, b.profiles[s].mse)


@pytest.fixture(scope="module")
def setup() -> engine.ComparisonSetup:
    return engine.setup_testbed(MIXTURE)


@pytest.fixture(scope="module")
def serial(setup: engine.ComparisonSetup) -> ComparisonResult:
    return run_comparison(MIXTURE, setup, use_cache=False)


@pytest.mark.parametrize("by", [("seeds",), ("seeds", "samplers"), tuple(grid.SPLITS)])
def test_units_merge_to_the_serial_result(
    setup: engine.ComparisonSetup, serial: ComparisonResult, by: tuple[str, ...]
) -> None:
    units = grid.split_config(MIXTURE, by)
    n = {"seeds": 2, "samplers": 2, "baselines": 2, "steps": 2}
    assert len(units) == int(np.prod([n[f] for f in by]))
    parts = [run_comparison(u, setup, use_cache=False) for u in units]
    merged = grid.merge_results(MIXTURE, parts[::-1])  # in any order
    _same(merged, serial)
    assert merged.model_calls >= serial.model_calls


def test_split_config_order_and_refusals() -> None:
    units = grid.split_config(MIXTURE, ("samplers", "seeds"))  # the serial loop order, not by's
    assert [(u.seeds, u.samplers) for u in units[:3]] == [
        ((0,), ("ddim",)),
        ((0,), ("dpm_solver_2",)),
        ((1,), ("ddim",)),
    ]
    for bad in [("seed",), (), ("seeds", "seeds")]:
        with pytest.raises(ValueError, match="by must name"):
            grid.split_config(MIXTURE, bad)


def test_merge_refuses_parts_that_do_not_make_the_grid(setup: engine.ComparisonSetup) -> None:
    units = grid.split_config(MIXTURE, ("seeds",))
    parts = [run_comparison(u, setup, use_cache=False) for u in units]
    with pytest.raises(ValueError, match="miss arm"):
        grid.merge_results(MIXTURE, parts[:1])
    by_sampler = grid.split_config(MIXTURE, ("samplers",))
    one_sampler = run_comparison(by_sampler[0], setup, use_cache=False)
    with pytest.raises(ValueError, match="miss arm .*'dpm_solver_2'"):  # a whole unit lost
        grid.merge_results(MIXTURE, [one_sampler])
    with pytest.raises(ValueError, match="more than one part"):
        grid.merge_results(MIXTURE, [*parts, parts[0]])
    other = dataclasses.replace(MIXTURE, n_samples=32)
    with pytest.raises(ValueError, match="not a unit"):
        grid.merge_results(other, parts)
    with pytest.raises(ValueError, match="not a unit"):
        grid.merge_results(dataclasses.replace(MIXTURE, seeds=(0, 2)), parts)
    with pytest.raises(ValueError, match="at least one"):
        grid.merge_results(MIXTURE, [])


def test_a_chapter_finds_the_grid_in_the_cache(
    setup: engine.ComparisonSetup,
    serial: ComparisonResult,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VRG_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("VRG_CACHE", "on")
    merged = grid.run_grid(MIXTURE, setup, by=("seeds",))
    _same(merged, serial)

    def no_sampling(*args: object, **kwargs: object) -> None:
        raise AssertionError("run_comparison sampled instead of reading the grid's result")

    monkeypatch.setattr(engine, "_run", no_sampling)
    _same(run_comparison(MIXTURE, setup), serial)


def test_chapter_configs() -> None:
    params = qvs.Params()
    assert grid.chapter_configs(params) == list(params.configs().values())
    with pytest.raises(TypeError, match="no comparison grid"):
        grid.chapter_configs(object())


# ------------------------------------------------------------------ across processes
TINY = [
    "--params",
    "quick",
    "--set",
    "samplers=[ddim]",
    "--set",
    "baselines=[time_uniform, logsnr_uniform]",
    "--set",
    "steps=[4]",
    "--set",
    "mixture_steps=[4]",
    "--set",
    "n_samples=24",
    "--set",
    "mixture_samples=48",
    "--set",
    "reference_steps=8",
    "--set",
    "profile_samples=32",
    "--set",
    "n_boot=20",
]


def _study(out: Path, cache: Path, processes: int) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "VRG_CACHE_DIR": str(cache), "VRG_CACHE": "on"}
    head = [sys.executable, "-m"]
    if processes > 1:
        head = [str(TORCHRUN), "--standalone", f"--nproc-per-node={processes}", "-m"]
    cmd = [*head, "vrg_analysis", "study", "quality_vs_steps", *TINY, "--out-dir", str(out)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def _values(path: Path) -> object:
    """An artifact's result with every array replaced by its bytes, dtype and shape: equal for
    equal results, whichever arrays the codec stored once for two fields and whether an array
    came back writeable from the cache (the "readonly" flag)."""
    doc = json.loads(path.read_text())
    arrays = {}
    if doc["arrays"] is not None:
        with np.load(path.with_name(doc["arrays"]["file"])) as z:
            arrays = {k: z[k] for k in z.files}

    def walk(x: object) -> object:
        if isinstance(x, dict):
            if "npz" in x:
                a = arrays[x["npz"]]
                return (a.dtype.str, a.shape, a.tobytes())
            return {k: walk(v) for k, v in x.items() if k != "readonly"}
        if isinstance(x, list):
            return [walk(v) for v in x]
        return x

    return walk(doc["result"])


@pytest.mark.skipif(not TORCHRUN.is_file(), reason="torchrun is installed with torch")
def test_a_study_across_two_processes_writes_the_one_process_artifact(tmp_path: Path) -> None:
    _study(tmp_path / "one", tmp_path / "cache1", 1)
    _study(tmp_path / "two", tmp_path / "cache2", 2)
    (a,) = (tmp_path / "one").rglob("*.json")
    (b,) = (tmp_path / "two").rglob("*.json")
    assert a.name == b.name  # the same parameters' key
    one, two = read_artifact(a), read_artifact(b)
    assert (one.machine.processes, two.machine.processes) == (1, 2)
    assert "2 processes of 1 torch thread" in two.machine.describe()
    assert _values(a) == _values(b)
    # the cache the processes share holds every unit (3 seeds of each of the chapter's two
    # comparisons) and both merged comparisons, which the chapter read
    assert len(list((tmp_path / "cache2").glob("comparison-*.pkl"))) == 2 * 3 + 2
