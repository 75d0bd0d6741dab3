"""Committed chapter results (vrg_analysis.studies.artifacts): the lossless JSON + NPZ codec on
real chapter results, the files (checksums, atomic pairs), staleness, run-or-load, and the check
over the committed data/results folder."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

# The chapters' own tiny parameters (tests/test_chapter_<chapter>.py)
from test_chapter_optimisers import TINY as TINY_OPTIMISERS  # noqa: E402
from test_chapter_profiling import TINY as TINY_PROFILING  # noqa: E402
from test_chapter_quality_vs_steps import TINY as TINY_QUALITY  # noqa: E402

from vrg_analysis.assumptions.chapters import gaussian  # noqa: E402
from vrg_analysis.layers import import_graph  # noqa: E402
from vrg_analysis.resources import results_dir  # noqa: E402
from vrg_analysis.studies import artifacts as art  # noqa: E402
from vrg_analysis.studies import (  # noqa: E402
    guidance,
    optimisers,
    profiling,
    quality_vs_steps,
    result_identity,
)
from vrg_analysis.testbeds import make_testbed  # noqa: E402

TINY_GAUSSIAN = dict(n_samples=60, num_levels=3, max_coordinates=2, bootstrap=20)


# ===================================================================== helpers
def assert_same(a: Any, b: Any, path: str = "result") -> None:
    """``b`` is ``a`` rebuilt: the same types, dtypes, shapes, flags and values (NaN == NaN);
    a ``str`` subclass (torch's version string) comes back as its text."""
    if isinstance(a, str) and type(a) is not str:
        assert type(b) is str and b == a, path
        return
    assert type(a) is type(b), f"{path}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b, check_exact=True, check_flags=True)
        assert a.attrs == b.attrs, path
    elif isinstance(a, pd.Series):
        pd.testing.assert_series_equal(a, b, check_exact=True)
    elif isinstance(a, pd.Index):
        pd.testing.assert_index_equal(a, b, exact=True, check_exact=True)
    elif isinstance(a, np.ndarray):
        assert (a.dtype, a.shape) == (b.dtype, b.shape), path
        assert a.flags.writeable == b.flags.writeable, f"{path}: writeable flag"
        if a.dtype == object:
            for i, (x, y) in enumerate(zip(a.flat, b.flat, strict=True)):
                assert_same(x, y, f"{path}.flat[{i}]")
        else:
            assert np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"), path
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b), path
    elif dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            assert_same(getattr(a, f.name), getattr(b, f.name), f"{path}.{f.name}")
    elif isinstance(a, dict | types.MappingProxyType):
        assert list(a) == list(b), f"{path}: keys"
        for k in a:
            assert_same(a[k], b[k], f"{path}[{k!r}]")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, float | np.floating):
        assert (math.isnan(a) and math.isnan(b)) or (
            a == b and math.copysign(1, a) == math.copysign(1, b)
        ), f"{path}: {a!r} != {b!r}"
    elif a is pd.NA:
        assert b is pd.NA, path
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def assert_same_summary(chapter: Any, a: Any, b: Any) -> None:
    sa, sb = chapter.summary(a), chapter.summary(b)
    for f in dataclasses.fields(sa):
        assert_same(getattr(sa, f.name), getattr(sb, f.name), f"summary.{f.name}")


def plotted(fig: Any) -> list[np.ndarray]:
    """Every line's data in a figure (or a grid of panels), then closed."""
    figure = getattr(fig, "figure", fig)
    out = [line.get_xydata() for ax in figure.axes for line in ax.get_lines()]
    plt.close(figure)
    return out


def assert_same_plots(a: Any, b: Any) -> None:
    la, lb = plotted(a), plotted(b)
    assert la and len(la) == len(lb)
    for x, y in zip(la, lb, strict=True):
        assert np.array_equal(x, y, equal_nan=True)


def html(styler: Any) -> str:
    """A styled table's HTML, with a fixed id (the Styler draws a random one)."""
    return styler.set_uuid("t").to_html()


def save_and_read(chapter: Any, result: Any, folder: Path, **kw: Any) -> Any:
    path = art.save_artifact(
        chapter, result.params, result, wall_time_s=1.5, params_set="quick", directory=folder, **kw
    )
    found = art.find_artifact(chapter, result.params, folder)
    assert found is not None and found.path == path
    return found


# ===================================================================== fixtures
@pytest.fixture(scope="module")
def quality(one_torch_thread) -> quality_vs_steps.Result:
    return quality_vs_steps.run(quality_vs_steps.Params(**TINY_QUALITY))


@pytest.fixture(scope="module")
def prof(one_torch_thread) -> profiling.Result:
    return profiling.run(profiling.Params(**TINY_PROFILING))


@pytest.fixture(scope="module")
def prof_saved(prof, tmp_path_factory) -> art.ResultArtifact:
    return save_and_read(profiling, prof, tmp_path_factory.mktemp("results"))


# ===================================================================== round trips
def test_quality_vs_steps_round_trip(quality, tmp_path: Path) -> None:
    quality_saved = save_and_read(quality_vs_steps, quality, tmp_path)
    back = quality_saved.result()
    assert_same(quality, back)
    assert_same_summary(quality_vs_steps, quality, back)
    assert [dataclasses.astuple(f) for f in quality_vs_steps.findings(quality)] == [
        dataclasses.astuple(f) for f in quality_vs_steps.findings(back)
    ]
    for figure in (
        quality_vs_steps.figure_values,
        quality_vs_steps.figure_differences,
        quality_vs_steps.figure_exact,
    ):
        assert_same_plots(figure(quality), figure(back))
    assert html(quality_vs_steps.table(back)) == html(quality_vs_steps.table(quality))
    assert "verdict" in html(quality_vs_steps.table(back))
    # what the file says about the run
    assert quality_saved.params_set == "quick" and quality_saved.wall_time_s == 1.5
    assert quality_saved.params_object() == quality.params
    assert quality_saved.params["steps"] == quality.params.steps
    assert quality_saved.chapter == "vrg_analysis.studies.quality_vs_steps"
    assert quality_saved.path.parent.name == quality_vs_steps.CHAPTER
    assert quality_saved.npz_path is not None and quality_saved.npz_path.is_file()
    assert quality_saved.code_version == art.code_version(quality_vs_steps).digest
    assert quality_saved.package_version == art.code_version(quality_vs_steps).package_version
    assert quality_saved.machine.threads >= 1 and quality_saved.machine.torch == torch.__version__
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", quality_saved.created)


def test_optimisers_round_trip(one_torch_thread, tmp_path: Path) -> None:
    result = optimisers.run(optimisers.Params(**TINY_OPTIMISERS))
    back = save_and_read(optimisers, result, tmp_path).result()
    assert_same(result, back)
    assert_same_summary(optimisers, result, back)
    assert_same_plots(optimisers.figure_trajectories(result), optimisers.figure_trajectories(back))
    assert html(optimisers.table_paired(back)) == html(optimisers.table_paired(result))


def test_profiling_round_trip(prof, tmp_path: Path) -> None:
    # a dict keyed by tuples of ErrorProfile dataclasses
    back = save_and_read(profiling, prof, tmp_path).result()
    assert_same(prof, back)
    assert isinstance(next(iter(back.profiles)), tuple)
    assert_same_summary(profiling, prof, back)
    assert_same_plots(profiling.figure_profiles(prof), profiling.figure_profiles(back))


def test_audit_chapter_round_trip(one_torch_thread, tmp_path: Path) -> None:
    result = gaussian.run(gaussian.Params(**TINY_GAUSSIAN))
    back = save_and_read(gaussian, result, tmp_path).result()
    # the chapter stores what its page draws, without the raw errors (artifact_result)
    assert_same(gaussian.artifact_result(result), back)
    assert back.samples == {} and result.samples
    assert_same_summary(gaussian, result, back)
    assert gaussian.findings_markdown(back) == gaussian.findings_markdown(result)
    assert_same_plots(gaussian.figure_effects(result), gaussian.figure_effects(back))
    assert_same_plots(gaussian.figure_qq(result), gaussian.figure_qq(back))


def test_codec_keeps_every_kind_of_value() -> None:
    rows = pd.MultiIndex.from_tuples([("a", 1), ("a", 2), ("b", 1)], names=["key", "k"])
    frame = pd.DataFrame(
        {
            "x": [1.5, math.nan, -math.inf],
            "n": np.array([1, 2, 3], dtype=np.int32),
            "flag": [True, False, True],
            "name": pd.Series(["u", None, "w"], dtype="str"),
            "opt": pd.array([1, None, 3], dtype="Int64"),
            "cat": pd.Categorical(["lo", "hi", "lo"], categories=["lo", "hi"], ordered=True),
            "obj": pd.Series([(1, 2), None, [3.0, 4.0]], dtype=object),
        },
        index=rows,
    )
    frame.attrs = {"note": "attrs survive"}
    wide = pd.DataFrame(np.arange(6.0).reshape(2, 3), columns=[10, 20, 30])
    big = np.linspace(0.0, 1.0, art.INLINE_MAX * 3).reshape(3, -1)
    frozen = np.arange(5.0)
    frozen.flags.writeable = False
    value = {
        "frame": frame,
        "wide": wide,
        "empty": pd.DataFrame({"a": pd.Series([], dtype="float32")}),
        "series": pd.Series([1, 2], index=pd.Index(["p", "q"], name="i"), name="s"),
        "floats": [0.1, -0.0, math.nan, math.inf, -math.inf, 1e-310],
        "scalars": (np.float32(0.1), np.int64(-3), np.bool_(True), np.float64(math.nan)),
        "arrays": {
            "big": big,
            "same": big,  # shared: stored once, rebuilt as one array
            "small": np.array([[1, 2], [3, 4]], dtype=np.int8),
            "f32": np.array([0.1, math.nan], dtype=np.float32),
            "zero_d": np.array(2.5),
            "text": np.array(["a", "bc"]),
            "complex": np.array([1 + 2j]),
            "dates": np.array(["2024-01-01"], dtype="datetime64[D]"),
            "objects": np.array([None, (1, 2)], dtype=object),
            "pairs": np.array([(1, 2), (3, 4), "x"], dtype=object)[:2],
            "frozen": frozen,
        },
        "tensors": [torch.arange(4.0), torch.tensor([1.5], dtype=torch.bfloat16), torch.ones(2, 2)],
        (1, "tuple key"): {"$type": "not a tag", 2: None},
        "sets": [{1, 2}, frozenset({"x"})],
        "proxy": types.MappingProxyType({"k": 1}),
        "misc": [Path("/a/b"), b"\x00\xff", 1 + 2j, pd.NA, "Fréchet", 2**70, ()],
    }
    encoded = art.encode(value)
    text = json.dumps(encoded.document, allow_nan=False)  # strict JSON
    back = art.decode(json.loads(text), encoded.arrays)
    assert_same(value, back)
    assert back["arrays"]["big"] is back["arrays"]["same"]
    assert len(encoded.arrays) == 3  # big (once), complex and dates: small numbers stay inline
    assert back["frame"]["cat"].cat.ordered and back["tensors"][1].dtype == torch.bfloat16
    assert back["misc"][3] is pd.NA


@pytest.mark.parametrize(
    ("value", "where", "what"),
    [
        ({"fn": lambda x: x}, r"result\['fn'\]", "function"),
        ({"models": [torch.nn.Linear(2, 2)]}, r"result\['models'\]\[0\]", "live torch model"),
        ((1, torch.ones(2, requires_grad=True)), r"result\[1\]", "requires grad"),
        ({"p": dataclasses.make_dataclass("Foreign", ["a"])(1)}, r"result\['p'\]", "outside"),
        ({"d": __import__("collections").OrderedDict(a=1)}, r"result\['d'\]", "does not store"),
    ],
)
def test_what_has_no_data_form_is_refused_by_its_path(value: Any, where: str, what: str) -> None:
    with pytest.raises(TypeError, match=f"cannot store {where}: .*{what}.*never pickled"):
        art.encode(value)


def test_a_foreign_class_is_refused_on_reading(prof_saved, tmp_path: Path) -> None:
    doc = json.loads(prof_saved.path.read_text())
    doc.pop("sha256")
    first = doc["result"]["fields"]["profiles"]["items"][0][1]
    assert first["class"] == "vrg_analysis.core.profile:ErrorProfile"
    first["class"] = "subprocess:Popen"
    forged = copy_pair(prof_saved, tmp_path).with_name("forged.json")
    forged.write_text(art._json_text(doc))  # a consistent file: the checksum matches
    forged_art = art.read_artifact(forged)
    refused = r"forged\.json: result\.profiles\[0\]: class 'subprocess:Popen' is not a vrg_"
    with pytest.raises(ValueError, match=refused):
        forged_art.result()
    for name in ("builtins:dict", "vrg_analysis.__main__:X"):  # the latter would run the CLI
        with pytest.raises(ValueError, match=f"memo: result: class '{name}' is not a vrg_"):
            art.decode({"$type": "dataclass", "class": name, "fields": {}}, source="memo")


def test_a_changed_field_set_is_refused_naming_the_file(prof_saved) -> None:
    doc = json.loads(json.dumps(prof_saved.document))
    doc["fields"]["profiles"]["items"][0][1]["fields"]["extra"] = 1
    with pytest.raises(ValueError, match=r"x\.json: result\.profiles\[.*the fields of .*Profile"):
        art.decode(doc, prof_saved.arrays, source="x.json")


# ===================================================================== the files
def copy_pair(saved: art.ResultArtifact, folder: Path) -> Path:
    target = folder / saved.path.parent.name
    shutil.copytree(saved.path.parent, target)
    return target / saved.path.name


def test_a_changed_byte_in_the_json_is_refused(prof_saved, tmp_path: Path) -> None:
    path = copy_pair(prof_saved, tmp_path)
    text = path.read_text()
    start = text.index('"result"')
    i = next(j for j in range(start, len(text)) if text[j].isdigit())
    path.write_text(text[:i] + ("2" if text[i] == "1" else "1") + text[i + 1 :])
    with pytest.raises(ValueError, match=f"{re.escape(str(path))}: its content does not match"):
        art.find_artifact(profiling, prof_saved.params_object(), tmp_path)
    path.write_text(text[: len(text) // 2])  # truncated
    with pytest.raises(ValueError, match=f"{re.escape(str(path))}: not a readable artifact"):
        art.read_artifact(path)


def test_a_changed_byte_in_the_npz_is_refused(prof_saved, tmp_path: Path) -> None:
    path = copy_pair(prof_saved, tmp_path)
    npz = path.parent / prof_saved.npz_path.name
    blob = bytearray(npz.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    npz.write_bytes(bytes(blob))
    with pytest.raises(ValueError, match=f"{re.escape(str(npz))}: does not match the sha256"):
        art.read_artifact(path)
    npz.unlink()
    with pytest.raises(FileNotFoundError, match="missing"):
        art.read_artifact(path)


def test_an_interrupted_save_leaves_the_previous_pair(prof, tmp_path, monkeypatch) -> None:
    first = art.save_artifact(
        profiling, prof.params, prof, wall_time_s=2.0, params_set="full", directory=tmp_path
    )
    before = {p.name: p.read_bytes() for p in first.parent.iterdir()}
    assert any(name.endswith(".npz") for name in before)
    changed = dataclasses.replace(prof, timesteps=np.arange(3.0 * art.INLINE_MAX))

    def crash(path: Path, text: str) -> None:
        raise RuntimeError("killed between the two files")

    monkeypatch.setattr(art, "_write_json", crash)
    with pytest.raises(RuntimeError, match="killed"):
        art.save_artifact(
            profiling, prof.params, changed, wall_time_s=3.0, params_set="full", directory=tmp_path
        )
    monkeypatch.undo()
    after = {p.name: p.read_bytes() for p in first.parent.iterdir()}
    assert all(after[name] == data for name, data in before.items())  # the pair is untouched
    orphans = set(after) - set(before)
    assert len(orphans) == 1 and orphans.pop().endswith(".npz")  # the new arrays, unreferenced
    assert not [n for n in after if n.endswith(".tmp")]
    kept = art.read_artifact(first)
    assert kept.wall_time_s == 2.0
    assert_same(prof, kept.result())
    assert any("no artifact refers to it" in p for p in art.committed_problems(tmp_path))
    # the next save replaces the pair and removes every other .npz of the key
    art.save_artifact(
        profiling, prof.params, changed, wall_time_s=3.0, params_set="full", directory=tmp_path
    )
    assert len(list(first.parent.glob("*.npz"))) == 1
    assert_same(changed, art.read_artifact(first).result())
    assert art.committed_problems(tmp_path) == []


def test_params_key_is_stable_and_tells_params_apart() -> None:
    p = quality_vs_steps.Params(**TINY_QUALITY)
    key = art.params_key(p)
    assert re.fullmatch(r"[0-9a-f]{16}", key)
    assert art.params_key(quality_vs_steps.Params(**TINY_QUALITY)) == key
    assert art.params_key(quality_vs_steps.Params(**{**TINY_QUALITY, "n_boot": 21})) != key
    assert art.params_key(quality_vs_steps.Params()) != key
    on_gpu = quality_vs_steps.Params(**TINY_QUALITY)
    object.__setattr__(on_gpu, "device", "cuda")  # where it ran is not what it computed
    assert art.params_key(on_gpu) == key
    code = (
        "from vrg_analysis.studies import artifacts, quality_vs_steps as q;"
        f"print(artifacts.params_key(q.Params(**{TINY_QUALITY!r})))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == key


def test_save_refuses_a_result_of_other_params(prof, tmp_path: Path) -> None:
    other = profiling.Params(**{**TINY_PROFILING, "n_samples": 25})
    with pytest.raises(ValueError, match="other parameters"):
        art.save_artifact(
            profiling, other, prof, wall_time_s=1.0, params_set="full", directory=tmp_path
        )
    with pytest.raises(ValueError, match="params_set"):
        art.save_artifact(
            profiling, prof.params, prof, wall_time_s=1.0, params_set="../x", directory=tmp_path
        )
    with pytest.raises(TypeError, match="profiling.Params"):
        art.find_artifact(profiling, gaussian.Params(), tmp_path)


def test_a_chapter_hook_can_store_less_and_size_is_guarded(prof, tmp_path, monkeypatch) -> None:
    def slim(result: profiling.Result) -> profiling.Result:
        return dataclasses.replace(result, transfer=result.transfer.head(1))

    monkeypatch.setattr(profiling, "artifact_result", slim, raising=False)
    saved = save_and_read(profiling, prof, tmp_path)
    assert saved.reduced_by == "vrg_analysis.studies.profiling.artifact_result"
    assert_same(slim(prof), saved.result())
    monkeypatch.setattr(art, "MAX_BYTES", 10)
    with pytest.raises(
        ValueError, match=r"take .* kB compressed \(largest: result\.profiles.*too large to commit"
    ):
        art.save_artifact(
            profiling, prof.params, prof, wall_time_s=1.0, params_set="full", directory=tmp_path
        )


# ===================================================================== staleness
def _package_copy(tmp_path: Path) -> Path:
    """A copy of the vrg_analysis source under ``tmp_path`` to edit (the working tree may change
    while a test runs), without its bytecode."""
    copy = tmp_path / "src" / "vrg_analysis"
    pkg = Path(art.__file__).resolve().parent.parent
    shutil.copytree(pkg, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def test_code_version_follows_the_import_graph() -> None:
    mods = art.code_version(quality_vs_steps).modules
    for needed in (
        "vrg_analysis.studies.quality_vs_steps",
        "vrg_analysis.studies.engine",  # imported
        "vrg_analysis.samplers.ddim",  # imported by what it imports
        "vrg_analysis.studies",  # the package it sits in
        "vrg_analysis.__init__",
    ):
        assert needed in mods
    assert "vrg_analysis.cli" not in mods and "vrg_analysis.studies.optimisers" not in mods
    # "from vrg_analysis.studies import performance" imports the module performance
    assert (
        "vrg_analysis.studies.performance"
        in art.code_version("vrg_analysis.studies.reproduce").modules
    )


def test_check_flags_a_changed_source_module(prof, tmp_path: Path) -> None:
    copy = _package_copy(tmp_path)
    # made by the copy's code (the working tree may change meanwhile)
    code = art.code_version(profiling, root=copy)
    saved = save_and_read(profiling, prof, tmp_path / "results", code=code)
    assert art.check_artifact(saved, root=copy) == art.Freshness("current")
    closure = code.modules
    assert "vrg_analysis.cli" not in closure and "vrg_analysis.testbeds.mixture" in closure
    (copy / "cli.py").write_text((copy / "cli.py").read_text() + "\n# unrelated\n")
    assert art.check_artifact(saved, root=copy).current  # not imported by the chapter
    (copy / "testbeds" / "mixture.py").write_text(
        (copy / "testbeds" / "mixture.py").read_text() + "\n# changed\n"
    )
    (copy / "studies" / "new_helper.py").write_text("X = 1\n")
    with open(copy / "studies" / "profiling.py", "a") as fh:
        fh.write("\nfrom vrg_analysis.studies import new_helper  # noqa\n")
    fresh = art.check_artifact(saved, root=copy)
    assert fresh.status == "stale"
    assert fresh.changed_modules == (
        "vrg_analysis.studies.new_helper (new)",
        "vrg_analysis.studies.profiling",
        "vrg_analysis.testbeds.mixture",
    )
    assert "code changed" in fresh.reasons[0] and "testbeds.mixture" in str(fresh)


def test_check_flags_changed_inputs_and_invalid_params(prof, tmp_path: Path) -> None:
    saved = save_and_read(profiling, prof, tmp_path)
    assert saved.inputs == art.chapter_inputs(prof.params) and saved.inputs
    name = next(iter(saved.inputs))
    moved = dataclasses.replace(
        saved, inputs={**saved.inputs, name: "0" * 64, "testbed gone: model_sha256": "1" * 64}
    )
    fresh = art.check_artifact(moved)
    assert not fresh.current
    assert fresh.changed_inputs == tuple(
        sorted([name, "testbed gone: model_sha256 (no longer used)"])
    )
    assert fresh.changed_modules == ()
    bad = dataclasses.replace(saved, params={**saved.params, "n_samples": 1})
    fresh = art.check_artifact(bad)
    assert not fresh.current and fresh.reasons[0].startswith("params no longer valid")
    renamed = dataclasses.replace(saved, params={**saved.params, "old_name": 3})
    (reason,) = art.check_artifact(renamed).reasons
    assert reason.endswith("Params no longer has the field(s) old_name")


def test_chapter_inputs_name_the_testbeds_files_and_hook(tmp_path: Path) -> None:
    inputs = art.chapter_inputs(quality_vs_steps.Params(**TINY_QUALITY))
    for name in ("digits", "mixture-2d"):
        fp = make_testbed(name).fingerprint
        assert inputs[f"testbed {name}: model_sha256"] == fp["model_sha256"]
    assert not any("digits-cond" in key for key in inputs)  # a testbed the chapter does not use
    guided = art.chapter_inputs(guidance.Params())
    assert (
        guided["testbed digits-cond: model_sha256"]
        == (make_testbed("digits-cond").fingerprint["model_sha256"])
    )
    assert (
        inputs["testbed digits: split_sha256"] == make_testbed("digits").fingerprint["split_sha256"]
    )
    assert "testbed digits: scoring/classifier_sha256" in inputs

    @dataclasses.dataclass(frozen=True)
    class FolderParams:
        model: str
        data: str
        seeds: tuple[int, ...] = (0,)

    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"one")
    (folder / ".hidden").write_bytes(b"ignored")
    params = FolderParams(model=str(folder), data=str(tmp_path / "missing.npz"))
    chapter = types.ModuleType("fake_chapter")
    first = art.chapter_inputs(params, chapter)
    assert list(first) == [f"model: {folder}"]  # a missing file is no input
    (folder / ".hidden").write_bytes(b"still ignored")
    assert art.chapter_inputs(params, chapter) == first
    (folder / "weights.bin").write_bytes(b"two")
    assert art.chapter_inputs(params, chapter) != first
    chapter.artifact_inputs = lambda p: {"table": b"bytes", "digest": "a" * 64}  # type: ignore
    hooked = art.chapter_inputs(params, chapter)
    assert hooked["digest"] == "a" * 64 and len(hooked["table"]) == 64


# ===================================================================== run or load
def test_run_or_load_uses_a_current_artifact(prof, tmp_path, monkeypatch) -> None:
    art.save_artifact(
        profiling, prof.params, prof, wall_time_s=4000.0, params_set="full", directory=tmp_path
    )

    def never(*a: Any, **k: Any) -> Any:
        raise AssertionError("the chapter ran although a current artifact matches")

    monkeypatch.setattr(profiling, "run", never)
    result, prov = art.run_or_load(
        profiling, profiling.Params(**TINY_PROFILING), directory=tmp_path
    )
    assert_same(prof, result)
    assert prov.committed and prov.freshness is not None and prov.freshness.current
    assert prov.text.startswith("committed full-size run of ")
    assert "1 h 6 min" in prov.text and prov.machine is not None
    assert prov.machine.describe() in prov.text
    one = dataclasses.replace(prov.machine, threads=1, gpu=None)
    assert "(" + f"{one.cores} cores, 1 torch thread)" in one.describe()
    assert "2 torch threads)" in dataclasses.replace(one, threads=2).describe()


def test_run_or_load_ignores_a_stale_artifact(prof, tmp_path, monkeypatch) -> None:
    art.save_artifact(
        profiling,
        prof.params,
        prof,
        wall_time_s=5.0,
        params_set="full",
        directory=tmp_path,
        inputs={"testbed x: model_sha256": "0" * 64},
    )
    fresh_run = dataclasses.replace(prof, source="this build")
    calls: list[Any] = []

    def run(params: Any) -> Any:
        calls.append(params)
        return fresh_run

    monkeypatch.setattr(profiling, "run", run)
    result, prov = art.run_or_load(profiling, prof.params, directory=tmp_path)
    assert result is fresh_run and calls == [prof.params]
    assert prov.source == "build" and not prov.committed
    assert prov.freshness is not None and not prov.freshness.current
    assert "stale" in prov.text and "testbed x: model_sha256" in prov.text
    # no artifact at all: a plain build run
    other = profiling.Params(**{**TINY_PROFILING, "n_samples": 30})
    _, prov = art.run_or_load(profiling, other, directory=tmp_path)
    assert prov.text == "this build's run" and prov.freshness is None


def test_load_committed_shows_only_a_current_full_size_run(prof, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(profiling, "run", lambda p: pytest.fail("the chapter ran"))
    full = art.params_from_set(profiling, "full")
    result, prov = art.load_committed(profiling, directory=tmp_path)
    assert result is None and prov.source == "none" and "no committed full-size run" in prov.text
    made = dataclasses.replace(prof, params=full)
    art.save_artifact(profiling, full, made, wall_time_s=9.0, params_set="full", directory=tmp_path)
    result, prov = art.load_committed(profiling, directory=tmp_path)
    assert_same(made, result)
    assert prov.committed and prov.params_set == "full"
    art.save_artifact(
        profiling, full, made, wall_time_s=9.0, params_set="full", directory=tmp_path, inputs={}
    )
    result, prov = art.load_committed(profiling, directory=tmp_path)
    assert result is None and prov.source == "none"
    assert "is stale, so it is not shown: inputs differ" in prov.text
    _, prov = art.load_committed(profiling, "nope", directory=tmp_path)
    assert prov.text == "no parameter set 'nope' for this chapter"


def test_committed_or_shows_the_committed_run_else_the_fallback(prof, tmp_path) -> None:
    full = art.params_from_set(profiling, "full")
    shown, prov = art.committed_or(profiling, prof, directory=tmp_path)
    assert shown is prof and prov.source == "build" and not prov.committed
    assert prov.text == (
        "this build's run at the chapter's quick parameters (no committed full-size run yet)"
    )
    made = dataclasses.replace(prof, params=full)
    art.save_artifact(profiling, full, made, wall_time_s=9.0, params_set="full", directory=tmp_path)
    shown, prov = art.committed_or(profiling, prof, directory=tmp_path)
    assert_same(made, shown)
    assert prov.committed and prov.text.startswith("committed full-size run of ")


def test_run_study_times_and_saves(tmp_path: Path) -> None:
    path = art.run_study("profiling", profiling.Params(**TINY_PROFILING), "quick", tmp_path)
    saved = art.read_artifact(path)
    assert saved.wall_time_s > 0 and saved.params_set == "quick"
    assert saved.chapter == profiling.__name__ and art.check_artifact(saved).current


def test_chapters_and_parameter_sets_by_name() -> None:
    assert art.chapter_module("audit_gaussian") is gaussian
    assert art.chapter_module("quality_vs_steps") is quality_vs_steps
    assert art.chapter_module("vrg_analysis.studies.optimisers") is optimisers
    with pytest.raises(ValueError, match="not a chapter"):
        art.chapter_module("engine")
    with pytest.raises(ValueError, match="unknown chapter 'nope'"):
        art.chapter_module("nope")
    assert art.params_from_set("quality_vs_steps", "quick") == quality_vs_steps.Params()
    full = art.params_from_set("quality_vs_steps", "full")
    import yaml

    from vrg_analysis.resources import notebooks_dir

    spec = yaml.safe_load((notebooks_dir() / "params/full/quality_vs_steps.yaml").read_text())
    assert full == quality_vs_steps.Params(**spec) and full != quality_vs_steps.Params()
    with pytest.raises(FileNotFoundError, match="no parameter set 'nope'"):
        art.params_from_set("quality_vs_steps", "nope")


# ===================================================================== the committed folder
def test_committed_problems_finds_unflagged_stale_artifacts(prof, tmp_path: Path) -> None:
    good = art.save_artifact(
        profiling, prof.params, prof, wall_time_s=1.0, params_set="full", directory=tmp_path
    )
    assert art.committed_problems(tmp_path) == []
    other = profiling.Params(**{**TINY_PROFILING, "n_samples": 30})
    stale = art.save_artifact(
        profiling,
        other,
        dataclasses.replace(prof, params=other),
        wall_time_s=1.0,
        params_set="full",
        directory=tmp_path,
        inputs={"testbed x: model_sha256": "0" * 64},
    )
    rel_stale = stale.relative_to(tmp_path).as_posix()
    rel_good = good.relative_to(tmp_path).as_posix()
    (problem,) = art.committed_problems(tmp_path)
    assert problem.startswith(f"{rel_stale}: stale and not listed in STALE.txt")
    listing = tmp_path / art.STALE_LIST
    listing.write_text(f"# stale on purpose\n{rel_stale}: its model is being retrained\n")
    assert art.committed_problems(tmp_path) == []
    assert art.read_stale_list(tmp_path) == {rel_stale: "its model is being retrained"}
    listing.write_text(f"{rel_stale}: retraining\n{rel_good}: wrongly listed\nx/gone.json: old\n")
    assert art.committed_problems(tmp_path) == [
        f"{rel_good}: listed in STALE.txt but current; remove the line",
        "STALE.txt lists x/gone.json, which does not exist",
    ]
    listing.write_text(f"{rel_stale}\n")
    (problem,) = art.committed_problems(tmp_path)
    assert "STALE.txt:1: expected" in problem


def test_committed_artifacts_are_current_or_flagged() -> None:
    """Every artifact under data/results is what the present code and inputs would produce, or
    is listed in data/results/STALE.txt with a reason; none is damaged or orphaned."""
    problems = art.committed_problems(results_dir())
    assert not problems, "\n".join(problems)


# ===================================================================== review fixes
FAKE_CHAPTER = """
from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True, eq=False)
class Params:
    weights: np.ndarray
    seed: int = 0
    device: str = "cpu"


@dataclasses.dataclass(frozen=True)
class Result:
    params: Params
    total: float


def run(params: Params) -> Result:
    return Result(params, float(np.sum(params.weights)))
"""


@pytest.fixture
def array_chapter(monkeypatch) -> types.ModuleType:
    """A chapter of the package (by name) whose Params hold an array, as a chapter may."""
    name = "vrg_analysis.studies._test_array_chapter"
    module = types.ModuleType(name)
    monkeypatch.setitem(sys.modules, name, module)
    exec(compile(FAKE_CHAPTER, f"<{name}>", "exec"), module.__dict__)  # noqa: S102
    return module


def test_params_key_covers_every_element_of_a_large_array(array_chapter, tmp_path) -> None:
    n = 3 * art.INLINE_MAX  # over the inline limit: the codec puts such arrays in the .npz
    a = array_chapter.Params(weights=np.arange(n, dtype=np.float32))
    b = array_chapter.Params(weights=np.arange(n, dtype=np.float32))
    b.weights[-1] = -1.0
    assert art.params_key(a) != art.params_key(b)
    assert art.params_key(a) == art.params_key(
        array_chapter.Params(weights=np.arange(n, dtype=np.float32))
    )
    assert art.params_key(a) != art.params_key(
        array_chapter.Params(weights=np.arange(n, dtype=np.int64))
    )
    # the artifact stores them: the parameters come back, and the artifact is found by them
    code = art.CodeVersion("0" * 64, {}, "test")
    for p in (a, b):
        result = array_chapter.run(p)
        kw = dict(params_set="full", directory=tmp_path, code=code, inputs={})
        art.save_artifact(array_chapter, p, result, wall_time_s=1.0, **kw)
    for p in (a, b):
        found = art.find_artifact(array_chapter, p, tmp_path)
        assert found is not None and found.path.stem == art.params_key(p)
        back = found.params_object()
        assert back.weights.dtype == np.float32 and np.array_equal(back.weights, p.weights)
        assert found.result().total == array_chapter.run(p).total
    # an array the JSON cannot hold exactly is refused, naming the field
    odd = array_chapter.Params(weights=np.ones(3, dtype=np.complex128))
    with pytest.raises(TypeError, match=r"cannot store params\.weights: an array of dtype complex"):
        art.params_key(odd)


def test_chapter_inputs_are_path_parameters_the_same_from_any_working_folder(
    tmp_path, monkeypatch
) -> None:
    @dataclasses.dataclass(frozen=True)
    class Params:
        model: str = "ckpt"  # relative: a checkpoint folder where the run starts
        data_path: str = ""
        sampler: str = "ddim"
        device: str = "cpu"

    chapter = types.ModuleType("fake_chapter")
    first, second = tmp_path / "one", tmp_path / "two"
    for cwd in (first, second):
        (cwd / "ckpt").mkdir(parents=True)
        (cwd / "ckpt" / "weights.bin").write_bytes(b"the same weights")
    for name in ("cpu", "ddim"):  # folders that happen to share a non-path parameter's value
        (first / name).mkdir()
    monkeypatch.chdir(first)
    here = art.chapter_inputs(Params(), chapter)
    monkeypatch.chdir(second)
    there = art.chapter_inputs(Params(), chapter)
    assert here == there
    assert list(here) == ["model: ckpt"]
    (second / "ckpt" / "weights.bin").write_bytes(b"other weights")  # what the chapter reads here
    assert art.chapter_inputs(Params(), chapter) != here
    # the chapters' own path parameters, and only those
    assert result_identity.path_fields(profiling.Params(**TINY_PROFILING)) == [
        "model_path",
        "data_path",
    ]
    assert result_identity.path_fields(quality_vs_steps.Params(**TINY_QUALITY)) == [
        "model",
        "data",
    ]
    assert result_identity.path_fields(guidance.Params()) == ["model", "data"]
    assert result_identity.path_fields(optimisers.Params(**TINY_OPTIMISERS)) == ["reference_dir"]


def test_an_artifact_is_current_from_any_working_folder(prof, tmp_path, monkeypatch) -> None:
    results = tmp_path / "results"
    made_in, checked_in = tmp_path / "made", tmp_path / "checked"
    (made_in / "cpu").mkdir(parents=True)  # ./cpu, as the device parameter reads
    checked_in.mkdir()
    monkeypatch.chdir(made_in)
    path = art.save_artifact(
        profiling, prof.params, prof, wall_time_s=1.0, params_set="full", directory=results
    )
    monkeypatch.chdir(checked_in)
    saved = art.read_artifact(path)
    assert not any(name.startswith("device") for name in saved.inputs)
    assert art.check_artifact(saved) == art.Freshness("current")


def forge(saved: art.ResultArtifact, folder: Path, name: str, change: Any) -> Path:
    """A copy of an artifact changed by ``change(doc)`` whose checksum is consistent."""
    doc = json.loads(saved.path.read_text())
    doc.pop("sha256")
    change(doc)
    target = folder / saved.path.parent.name / f"{name}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    if saved.npz_path is not None and not (target.parent / saved.npz_path.name).exists():
        shutil.copy(saved.npz_path, target.parent)
    target.write_text(art._json_text(doc))
    return target


def _set(*keys: str, value: Any = None, delete: bool = False) -> Any:
    def change(doc: dict[str, Any]) -> None:
        for k in keys[:-1]:
            doc = doc[k]
        if delete:
            del doc[keys[-1]]
        else:
            doc[keys[-1]] = value

    return change


BROKEN = [
    ("no_params", _set("params", delete=True), r"entry 'params' is missing"),
    ("params_list", _set("params", value=[]), r"entry 'params' must be an object, got list"),
    ("no_fields", _set("params", "fields", delete=True), r"entry 'params\.fields' is missing"),
    ("fields_null", _set("params", "fields", value=None), r"entry 'params\.fields' must be an"),
    ("class_int", _set("params", "class", value=3), r"entry 'params\.class' must be a string"),
    ("no_file", _set("arrays", "file", delete=True), r"entry 'arrays\.file' is missing"),
    ("sha_int", _set("arrays", "sha256", value=5), r"entry 'arrays\.sha256' must be a sha256"),
    ("arrays_text", _set("arrays", value="x.npz"), r"entry 'arrays' must be an object or null"),
    ("machine_null", _set("machine", value=None), r"entry 'machine' must be an object, got null"),
    ("no_cores", _set("machine", "cores", delete=True), r"entry 'machine\.cores' is missing"),
    ("wall_text", _set("wall_time_s", value="slow"), r"entry 'wall_time_s' must be a number"),
    ("chapter_int", _set("chapter", value=3), r"entry 'chapter' must be a string"),
    ("inputs_list", _set("inputs", value=[]), r"entry 'inputs' must be an object"),
    ("no_result", _set("result", delete=True), r"entry 'result' is missing"),
]


def test_a_structurally_broken_artifact_is_refused_naming_file_and_entry(
    prof_saved, tmp_path
) -> None:
    copy_pair(prof_saved, tmp_path)  # a sound artifact beside the broken ones
    assert art.committed_problems(tmp_path) == []
    for name, change, message in BROKEN:
        path = forge(prof_saved, tmp_path, name, change)
        with pytest.raises(ValueError, match=f"{re.escape(str(path))}: {message}"):
            art.read_artifact(path)
    problems = art.committed_problems(tmp_path)
    assert len(problems) == len(BROKEN), "\n".join(problems)
    for (name, _, message), problem in zip(sorted(BROKEN), problems, strict=True):
        assert problem.startswith(f"profiling/{name}.json: cannot be read: ")
        assert re.search(message, problem), problem


def test_malformed_entries_decode_to_errors_naming_the_file() -> None:
    machine = art.encode(art.machine_info()).document
    machine["attributes"] = [1]
    with pytest.raises(ValueError, match=r"m\.json: result: malformed 'dataclass' entry"):
        art.decode(machine, source="m.json")
    tensor = art.encode(torch.zeros(2)).document
    tensor["dtype"] = "no_such_dtype"
    with pytest.raises(ValueError, match=r"m\.json: result: malformed 'tensor' entry"):
        art.decode(tensor, source="m.json")


def test_an_unparsable_source_file_makes_the_artifact_stale(prof, tmp_path) -> None:
    copy = _package_copy(tmp_path)
    code = art.code_version(profiling, root=copy)
    results = tmp_path / "results"
    saved = save_and_read(profiling, prof, results, code=code)
    broken = copy / "testbeds" / "mixture.py"
    broken.write_text(broken.read_text() + "\ndef broken(:\n")
    fresh = art.check_artifact(saved, root=copy)
    assert not fresh.current
    (reason,) = fresh.reasons
    assert reason.startswith("code version cannot be computed: SyntaxError in ")
    assert f"{broken}:" in reason
    (problem,) = art.committed_problems(results, root=copy)
    assert "stale and not listed" in problem and "SyntaxError" in problem


def test_a_malformed_parameter_file_is_refused_naming_file_and_line(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("VRG_DATA_ROOT", str(tmp_path))
    folder = tmp_path / "notebooks" / "params" / "broken"
    folder.mkdir(parents=True)
    yaml_file = folder / "profiling.yaml"
    yaml_file.write_text("n_samples: 24\nbatch_size: [1, 2\nseed: 3\n")
    where = re.escape(str(yaml_file))
    with pytest.raises(ValueError, match=rf"{where}:3:\d+: not valid YAML"):
        art.load_committed(profiling, "broken", directory=tmp_path)
    yaml_file.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match=rf"{where}: expected a mapping of parameters, got list"):
        art.params_from_set(profiling, "broken")
    yaml_file.write_text("n_samples: -1\n")
    with pytest.raises(ValueError, match=rf"{where}: parameter n_samples"):
        art.load_committed(profiling, "broken", directory=tmp_path)
    yaml_file.write_bytes(b"n_samples: \xff\n")
    with pytest.raises(ValueError, match=rf"{where}: cannot be read"):
        art.params_from_set(profiling, "broken")


def test_a_presentation_module_does_not_stale_an_artifact(prof, tmp_path: Path) -> None:
    """The report package only draws and formats a stored result: a new figure size leaves the
    artifact current, while the same edit to a computing module makes it stale."""
    copy = _package_copy(tmp_path)
    code = art.code_version(profiling, root=copy)
    assert "vrg_analysis.report.theme" in code.modules  # recorded all the same
    saved = save_and_read(profiling, prof, tmp_path / "results", code=code)
    (copy / "report" / "theme.py").write_text(
        (copy / "report" / "theme.py").read_text() + "\nPAGE_FONT_SCALE = 1.2\n"
    )
    (copy / "report" / "extra.py").write_text("Y = 2\n")
    with open(copy / "report" / "figures.py", "a") as fh:
        fh.write("\nfrom vrg_analysis.report import extra  # noqa\n")
    now = art.code_version(profiling, root=copy)
    assert now.digest != code.digest and "vrg_analysis.report.extra" in now.modules
    assert art.check_artifact(saved, root=copy) == art.Freshness("current")
    (copy / "profiling" / "algorithm1.py").write_text(
        (copy / "profiling" / "algorithm1.py").read_text() + "\n# changed\n"
    )
    fresh = art.check_artifact(saved, root=copy)
    assert fresh.status == "stale"
    assert fresh.changed_modules == ("vrg_analysis.profiling.algorithm1",)
    assert result_identity.computing_changes({"a": "1", "vrg_analysis.report.x": "2"}, {}) == [
        "a (no longer used)"
    ]
    assert result_identity.is_presentation("vrg_analysis.report")
    assert not result_identity.is_presentation("vrg_analysis.reporting")


def test_presentation_modules_import_no_computing_module() -> None:
    """What makes the report package's exemption safe: it cannot compute a result, because it
    imports nothing of the package but itself, the file helpers and the layer map it draws."""
    allowed = ("vrg_analysis.report", "vrg_analysis.io", "vrg_analysis.layers")
    found = [
        f"{imp.importer} imports {imp.imported}"
        for imp in import_graph()
        if result_identity.is_presentation(imp.importer)
        and not any(imp.imported == a or imp.imported.startswith(a + ".") for a in allowed)
    ]
    assert found == []
