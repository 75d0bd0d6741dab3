"""Artifact cache for the studies: a rebuild after a prose edit reruns nothing.

A study's expensive result (a profile, a table of sampled metrics) is stored under a key made of

* the artifact's name and its **parameters** (canonical JSON of plain values, arrays and
  dataclasses),
* the sha256 of every **input** it reads (checkpoint files, data arrays, reference statistics),
* the sha256 of the library's own source (``vrg_analysis/**/*.py``) and the torch version, so a
  code change invalidates every artifact made by the old code.

The store is a folder (``VRG_CACHE_DIR``, default ``~/.cache/vrg-analysis``; the Makefile points
it inside ``_build`` so a fresh clone starts empty). Each entry is ``<name>-<key>.pkl`` with a
``.json`` sidecar recording the parameters, the input hashes and the sha256 of the entry's bytes.
Entries are written atomically (a crash leaves no half-written entry); an entry whose bytes do not
match its checksum, or that cannot be read, is recomputed with a warning; temporary files left by
an interrupted write are removed once they are an hour old; a folder that cannot be written to
costs the caching, never the result.
The pickles are the library's own local state: never point ``VRG_CACHE_DIR`` at files from
elsewhere. ``VRG_CACHE=off`` (or ``enabled=False``) turns the cache off.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import pickle
import time
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from vrg_analysis.io import atomic_open, provenance, sha256_array, sha256_file

__all__ = ["cache_dir", "cache_enabled", "artifact_key", "cached", "canonical_params"]

log = logging.getLogger(__name__)
T = TypeVar("T")
_PACKAGE = Path(__file__).resolve().parent


def cache_dir() -> Path:
    """The cache folder: ``$VRG_CACHE_DIR`` or ``~/.cache/vrg-analysis``."""
    env = os.environ.get("VRG_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "vrg-analysis"


def cache_enabled() -> bool:
    """False when ``$VRG_CACHE`` is ``off``, ``0`` or ``false``."""
    return os.environ.get("VRG_CACHE", "on").strip().lower() not in ("off", "0", "false", "no")


def _plain(value: Any, where: str) -> Any:
    """``value`` as JSON-able plain data, raising on what has no stable representation."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if not math.isfinite(v):
            return repr(v)
        return v
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.ndarray):
        return {"ndarray_sha256": sha256_array(value), "shape": list(value.shape)}
    if isinstance(value, torch.Tensor):
        arr = value.detach().cpu().numpy()
        return {"tensor_sha256": sha256_array(arr), "shape": list(arr.shape)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return {"__dataclass__": type(value).__name__, **_plain(fields, where)}
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"cache parameter keys must be strings, got {k!r} in {where}")
            out[k] = _plain(v, f"{where}.{k}")
        return dict(sorted(out.items()))
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise TypeError(
        f"cache parameter {where} has type {type(value).__name__}, which has no stable key; "
        "pass plain values, arrays, dataclasses or a digest of it"
    )


def canonical_params(params: Mapping[str, Any]) -> str:
    """Canonical JSON of ``params`` (sorted keys; arrays and tensors by their sha256)."""
    return json.dumps(_plain(dict(params), "params"), sort_keys=True, separators=(",", ":"))


@lru_cache(maxsize=1)
def _library_digest() -> str:
    h = hashlib.sha256()
    for path in sorted(_PACKAGE.rglob("*.py")):
        h.update(str(path.relative_to(_PACKAGE)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _input_digest(item: str | Path | bytes) -> str:
    if isinstance(item, bytes):
        return hashlib.sha256(item).hexdigest()
    path = Path(item)
    if not path.is_file():
        raise FileNotFoundError(f"cache input {str(path)!r} is not a file")
    return sha256_file(path)


def artifact_key(
    name: str, params: Mapping[str, Any], inputs: Iterable[str | Path | bytes] = ()
) -> tuple[str, dict[str, Any]]:
    """The key of an artifact and the record it is made from (name, parameters, input and
    library digests, torch version)."""
    if not name or not all(c.isalnum() or c in "-_." for c in name):
        raise ValueError(f"artifact name {name!r} must be letters, digits, '-', '_' or '.'")
    record = {
        "name": name,
        "params": json.loads(canonical_params(params)),
        "inputs": [_input_digest(i) for i in inputs],
        "library_sha256": _library_digest(),
        "torch": torch.__version__,
    }
    key = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:20]
    return key, record


def cached(
    name: str,
    params: Mapping[str, Any],
    compute: Callable[[], T],
    *,
    inputs: Iterable[str | Path | bytes] = (),
    directory: str | Path | None = None,
    enabled: bool | None = None,
) -> T:
    """``compute()``, or its stored result when an artifact with the same key exists.

    ``params`` must hold everything ``compute`` depends on besides ``inputs`` (files or bytes,
    hashed by content) and the library's source. Returns what ``compute`` returned (or an equal
    object read back from the store).
    """
    key, record = artifact_key(name, params, inputs)
    use = cache_enabled() if enabled is None else bool(enabled)
    if not use:
        return compute()
    folder = Path(directory) if directory is not None else cache_dir()
    path = folder / f"{name}-{key}.pkl"
    sidecar_path = path.with_suffix(".json")
    _remove_orphans(folder)
    if path.is_file():
        hit = _read_entry(path, sidecar_path)
        if hit is not None:
            log.info("cache hit: %s", path)
            return hit[0]
    value = compute()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        blob = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        with atomic_open(path, "wb") as fh:
            fh.write(blob)
        sidecar = {
            **record,
            "key": key,
            "sha256": hashlib.sha256(blob).hexdigest(),
            "provenance": provenance(),
        }
        with atomic_open(sidecar_path, "w") as fh:
            json.dump(sidecar, fh, indent=2)
            fh.write("\n")
        log.info("cache store: %s", path)
    except OSError as err:  # the result is computed: hand it back, whatever the store does
        log.warning(
            "cannot store %s in the cache folder %s (%s); result not cached", name, folder, err
        )
    return value


#: Age after which a leftover temporary file of an interrupted write is removed (seconds).
ORPHAN_AGE_S = 3600.0


def _remove_orphans(folder: Path) -> None:
    """Delete temporary files that an interrupted write left behind (older than an hour, so a
    write in progress in another process is never touched)."""
    if not folder.is_dir():
        return
    now = time.time()
    for tmp in folder.glob(".*.tmp"):
        try:
            if now - tmp.stat().st_mtime > ORPHAN_AGE_S:
                tmp.unlink()
                log.info("removed an orphan temporary file %s", tmp)
        except OSError:  # another process removed it first, or no permission: leave it
            pass


def _read_entry(path: Path, sidecar_path: Path) -> tuple[Any] | None:
    """The stored value if the entry's bytes match the checksum its sidecar records, else
    ``None`` with a warning (a changed, truncated or foreign entry is recomputed, never trusted)."""
    try:
        blob = path.read_bytes()
        sidecar = json.loads(sidecar_path.read_text())
    except (OSError, ValueError) as err:
        log.warning("cache entry %s has no readable sidecar (%s); recomputing", path, err)
        return None
    digest = hashlib.sha256(blob).hexdigest()
    if sidecar.get("sha256") != digest:
        log.warning(
            "cache entry %s does not match its checksum (%s, the sidecar records %s); recomputing",
            path,
            digest,
            sidecar.get("sha256"),
        )
        return None
    try:
        return (pickle.loads(blob),)
    except Exception as err:  # noqa: BLE001 - a corrupt or foreign entry is recomputed
        log.warning("cache entry %s is unreadable (%s); recomputing", path, err)
        return None
