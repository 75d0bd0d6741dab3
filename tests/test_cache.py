"""The artifact cache: keys follow parameters and inputs, entries are reused and never trusted
when unreadable."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from vrg_analysis.cache import artifact_key, cached, canonical_params


class Counter:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> dict[str, object]:
        self.calls += 1
        return {"value": np.arange(3.0), "calls": self.calls}


def test_second_call_reads_the_store(tmp_path: Path) -> None:
    f = Counter()
    a = cached("thing", {"k": 1}, f, directory=tmp_path, enabled=True)
    b = cached("thing", {"k": 1}, f, directory=tmp_path, enabled=True)
    assert f.calls == 1
    assert b["calls"] == 1
    np.testing.assert_array_equal(a["value"], b["value"])
    assert len(list(tmp_path.glob("thing-*.pkl"))) == 1
    assert len(list(tmp_path.glob("thing-*.json"))) == 1


def test_parameters_and_inputs_change_the_key(tmp_path: Path) -> None:
    f = Counter()
    cached("thing", {"k": 1}, f, directory=tmp_path, enabled=True)
    cached("thing", {"k": 2}, f, directory=tmp_path, enabled=True)
    assert f.calls == 2
    data = tmp_path / "input.bin"
    data.write_bytes(b"one")
    cached("thing", {"k": 1}, f, inputs=[data], directory=tmp_path, enabled=True)
    data.write_bytes(b"two")
    cached("thing", {"k": 1}, f, inputs=[data], directory=tmp_path, enabled=True)
    assert f.calls == 4


def test_arrays_key_by_content_and_dataclasses_by_fields() -> None:
    @dataclass(frozen=True)
    class Cfg:
        a: float
        b: tuple[int, ...]

    k1, _ = artifact_key("x", {"arr": np.array([1.0, 2.0]), "cfg": Cfg(1.0, (1, 2))})
    k2, _ = artifact_key("x", {"arr": np.array([1.0, 2.0]), "cfg": Cfg(1.0, (1, 2))})
    k3, _ = artifact_key("x", {"arr": np.array([1.0, 2.5]), "cfg": Cfg(1.0, (1, 2))})
    k4, _ = artifact_key("x", {"arr": np.array([1.0, 2.0]), "cfg": Cfg(1.0, (1, 3))})
    assert k1 == k2
    assert len({k1, k3, k4}) == 3
    assert canonical_params({"b": 1, "a": 2}) == canonical_params({"a": 2, "b": 1})


def test_unreadable_entry_is_recomputed(tmp_path: Path) -> None:
    f = Counter()
    cached("thing", {"k": 1}, f, directory=tmp_path, enabled=True)
    (entry,) = tmp_path.glob("thing-*.pkl")
    entry.write_bytes(b"not a pickle")
    out = cached("thing", {"k": 1}, f, directory=tmp_path, enabled=True)
    assert f.calls == 2 and out["calls"] == 2


def test_disabled_cache_always_computes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = Counter()
    monkeypatch.setenv("VRG_CACHE", "off")
    cached("thing", {"k": 1}, f, directory=tmp_path)
    cached("thing", {"k": 1}, f, directory=tmp_path)
    assert f.calls == 2
    assert not list(tmp_path.iterdir())


def test_bad_names_and_parameters() -> None:
    with pytest.raises(ValueError, match="artifact name"):
        artifact_key("a/b", {})
    with pytest.raises(TypeError, match="params.f"):
        artifact_key("x", {"f": object()})
    with pytest.raises(FileNotFoundError, match="not a file"):
        artifact_key("x", {}, inputs=["/nonexistent/file"])


def test_failed_compute_writes_nothing(tmp_path: Path) -> None:
    def boom() -> None:
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        cached("thing", {}, boom, directory=tmp_path, enabled=True)
    assert not list(tmp_path.glob("*"))
