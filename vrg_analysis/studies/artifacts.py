"""Committed chapter results: a full-size run stored as data, with what made it, and checked.

A chapter's quick parameters keep the book's build short; a verdict needs its full sample sizes,
which take hours. :func:`run_study` runs a chapter (``run(params) -> Result``), times it and saves
the result with :func:`save_artifact` under ``data/results/<chapter>/<params-key>.json`` (plus a
``.npz`` for the large arrays). Each artifact records

* the chapter (module) and its **parameters** (the ``Params`` fields and class, every array in
  full in the JSON; ``params_key`` is a sha256 of them, the file name);
* the **code version** (:func:`code_version`: the sha256 of the chapter module and of every
  ``vrg_analysis`` module it imports, transitively, each module's sha256, the package version) and
  the **inputs** (:func:`chapter_inputs`: name -> sha256 of the testbeds, files and folders the
  run reads), both from :mod:`vrg_analysis.studies.result_identity`;
* the wall time, the machine (CPU, cores, threads, torch, device, GPU), the UTC time it was made
  and the parameter set's name (``"full"``, ``"quick"`` or a user's name);
* the result itself (or what the chapter's optional ``artifact_result(result)`` keeps of it, for
  size), encoded losslessly as JSON and arrays by :mod:`vrg_analysis.studies.result_codec`
  (:func:`encode` / :func:`decode`; nothing is pickled, and only classes of ``vrg_analysis`` are
  rebuilt on reading).

The JSON records the sha256 of its own content and of the ``.npz``; a changed byte in either is
refused, naming the file. The ``.npz`` is written first, under a name carrying its own sha256, and
the JSON last, both atomically, so an interrupted save leaves the previous pair as it was.

:func:`check_artifact` says whether an artifact is still **current**: its code version and inputs
are what the present code and files give, and its parameters are still valid; otherwise it is
**stale**, with the reasons (which modules changed, which inputs). A change to a presentation
module (the ``vrg_analysis.report`` package: figures, tables, theme, glue;
:func:`~vrg_analysis.studies.result_identity.computing_changes`) does not make it stale: the page
draws the stored result with the present presentation code. :func:`run_or_load` returns the
committed result when a current artifact matches the parameters, else runs the chapter, and says
which it did (:class:`Provenance`); :func:`load_committed` returns the committed result of a named
parameter set (``"full"``) for a page that shows it beside its quick run, or says why there is
none. A stale artifact is never used. A committed artifact that is
stale must be listed, with a reason, in ``data/results/STALE.txt`` (:func:`committed_problems`,
which a test runs over the repository's ``data/results``).

Fields that choose where a run executes, not what it computes (:data:`EXECUTION_FIELDS`: the
``device``), are left out of the parameters' key and match: a full-size run made on a GPU is the
result the CPU build of the book shows for the same parameters.

The format and the workflow are described in ``data/results/README.md``.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import io
import json
import logging
import math
import re
import time
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import yaml

from vrg_analysis.io import atomic_open
from vrg_analysis.layers import PACKAGE
from vrg_analysis.resources import notebooks_dir, results_dir
from vrg_analysis.studies.result_codec import (
    INLINE_MAX,
    TAG,
    Encoded,
    class_name,
    decode,
    encode,
    load_class,
    size_text,
)
from vrg_analysis.studies.result_identity import (
    EXECUTION_FIELDS,
    CodeVersion,
    Machine,
    changed_keys,
    chapter_inputs,
    code_version,
    computing_changes,
    keyed_params,
    machine_info,
    package_root,
    params_key,
    sha256_hex,
)

__all__ = [
    "FORMAT_VERSION",
    "INLINE_MAX",
    "LARGE_BYTES",
    "MAX_BYTES",
    "EXECUTION_FIELDS",
    "STALE_LIST",
    "Encoded",
    "encode",
    "decode",
    "CodeVersion",
    "code_version",
    "chapter_inputs",
    "Machine",
    "machine_info",
    "params_key",
    "ResultArtifact",
    "Freshness",
    "Provenance",
    "chapter_module",
    "params_from_set",
    "save_artifact",
    "read_artifact",
    "find_artifact",
    "check_artifact",
    "run_or_load",
    "load_committed",
    "committed_or",
    "run_study",
    "read_stale_list",
    "committed_problems",
]

log = logging.getLogger(__name__)

#: The artifact format's version; a file of another version is refused (regenerate it).
FORMAT_VERSION = 1
FORMAT_NAME = "vrg-analysis chapter result"
#: An artifact's ``.npz`` above this size is saved with a warning naming its largest arrays ...
LARGE_BYTES = 25 * 2**20
#: ... and above this one refused (GitHub refuses files over 100 MB): slim the Result instead.
MAX_BYTES = 95 * 2**20
#: The list of committed artifacts known to be stale, with a reason each, in the results folder.
STALE_LIST = "STALE.txt"

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_CHAPTER_PACKAGES = (f"{PACKAGE}.studies", f"{PACKAGE}.assumptions.chapters")


@dataclass(frozen=True, eq=False)
class ResultArtifact:
    """A saved chapter result and what made it (read with :func:`read_artifact`).

    ``params`` holds the ``Params`` fields (class ``params_class``); ``result()`` decodes the
    result; ``arrays`` are the ``.npz`` arrays (checked against the sha256 the JSON records);
    ``reduced_by`` names the chapter's ``artifact_result`` hook when it stored less than the
    whole result.
    """

    path: Path
    chapter: str
    chapter_name: str
    params_class: str
    params: Mapping[str, Any]
    params_key: str
    params_set: str
    code_version: str
    package_version: str
    modules: Mapping[str, str]
    inputs: Mapping[str, str]
    wall_time_s: float
    machine: Machine
    created: str
    document: Any = field(repr=False)
    params_document: Mapping[str, Any] = field(repr=False)
    arrays: Mapping[str, np.ndarray] = field(repr=False, default_factory=dict)
    npz_path: Path | None = None
    reduced_by: str | None = None

    def result(self) -> Any:
        """The chapter's ``Result``, rebuilt (refused, naming the file, where the classes no
        longer fit)."""
        return decode(self.document, self.arrays, source=str(self.path))

    def params_object(self, *, validate: bool = False) -> Any:
        """The ``Params`` as recorded; with ``validate``, built through ``Params(...)`` so that
        the present code's checks run (the :data:`EXECUTION_FIELDS` set to their defaults, so a
        GPU run is not refused on a machine without one): ``ValueError`` or ``TypeError`` when
        they refuse it."""
        doc = {TAG: "dataclass", "class": self.params_class, "fields": self.params_document}
        if not validate:
            return decode(doc, source=str(self.path))
        cls = load_class(self.params_class, source=str(self.path), root="params")
        gone = sorted(set(self.params) - {f.name for f in dataclasses.fields(cls)})
        if gone:
            raise ValueError(f"{self.params_class} no longer has the field(s) {', '.join(gone)}")
        kwargs = {}
        for f in dataclasses.fields(cls):
            if not f.init:
                continue
            if f.name in EXECUTION_FIELDS and f.default is not dataclasses.MISSING:
                kwargs[f.name] = f.default
            elif f.name in self.params:
                kwargs[f.name] = self.params[f.name]
        return cls(**kwargs)


def _json_text(body: Mapping[str, Any]) -> str:
    """One top-level key a line (the result on one line), then the sha256 of the content."""
    digest = sha256_hex(json.dumps(body, separators=(",", ":"), allow_nan=False).encode())
    items = [*body.items(), ("sha256", digest)]
    lines = [
        f"  {json.dumps(k)}: {json.dumps(v, separators=(',', ':'), allow_nan=False)}"
        for k, v in items
    ]
    return "{\n" + ",\n".join(lines) + "\n}\n"


def _npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, allow_pickle=False, **arrays)
    return buf.getvalue()


def _chapter_name(module: ModuleType) -> str:
    name = getattr(module, "CHAPTER", None)
    return (
        name if isinstance(name, str) and _NAME_RE.match(name) else module.__name__.split(".")[-1]
    )


def chapter_module(chapter: str | ModuleType) -> ModuleType:
    """A chapter module from itself, its dotted name, its module name in ``studies`` or
    ``assumptions.chapters``, or its ``CHAPTER`` name (the notebook's, e.g. ``audit_gaussian``)."""
    if isinstance(chapter, ModuleType):
        module = chapter
    elif not isinstance(chapter, str) or not chapter:
        raise TypeError(f"a chapter is a module or its name, got {chapter!r}")
    elif "." in chapter:
        if not chapter.startswith(PACKAGE + "."):
            raise ValueError(f"chapter {chapter!r} is not a vrg_analysis module")
        module = importlib.import_module(chapter)
    else:
        module = importlib.import_module(_find_chapter(chapter))  # a module of the package
    if not (hasattr(module, "Params") and callable(getattr(module, "run", None))):
        raise ValueError(f"{module.__name__} is not a chapter (it needs Params and run)")
    return module


def _find_chapter(name: str) -> str:
    pkg = package_root(None)
    for package in _CHAPTER_PACKAGES:
        if pkg.joinpath(*package.split(".")[1:], f"{name}.py").is_file() and name != "__init__":
            return f"{package}.{name}"
    known: dict[str, str] = {}
    for package in _CHAPTER_PACKAGES:
        folder = pkg.joinpath(*package.split(".")[1:])
        for path in sorted(folder.glob("*.py")):
            if path.stem == "__init__":
                continue
            module = f"{package}.{path.stem}"
            known[path.stem] = module
            for node in ast.parse(path.read_text(encoding="utf-8")).body:
                if (
                    isinstance(node, ast.Assign)
                    and any(isinstance(t, ast.Name) and t.id == "CHAPTER" for t in node.targets)
                    and isinstance(node.value, ast.Constant)
                    and isinstance(node.value.value, str)
                ):
                    known[node.value.value] = module
    if name not in known:
        raise ValueError(f"unknown chapter {name!r}; known: {', '.join(sorted(known))}")
    return known[name]


def params_from_set(
    chapter: str | ModuleType, params_set: str, overrides: Mapping[str, Any] | None = None
) -> Any:
    """A chapter's ``Params`` for a named parameter set: ``"quick"`` is its defaults, any other
    name reads ``notebooks/params/<set>/<CHAPTER>.yaml`` (the file papermill gets); ``overrides``
    are applied last. A missing file is refused with a ``FileNotFoundError``; a file that is not
    valid YAML (naming the line), not a mapping, or holds a field the chapter does not have or a
    value it refuses, with a ``ValueError`` naming the file."""
    module = chapter_module(chapter)
    values: dict[str, Any] = {}
    source = f"parameter set {params_set!r} of {module.__name__}"
    if params_set != "quick":
        path = notebooks_dir() / "params" / params_set / f"{_chapter_name(module)}.yaml"
        if not path.is_file():
            raise FileNotFoundError(f"no parameter set {params_set!r} for this chapter: {path}")
        source = str(path)
        values.update(_read_yaml(path))
    values.update(overrides or {})
    try:
        return module.Params(**values)
    except (TypeError, ValueError) as err:  # an unknown field, or a value the chapter refuses
        raise ValueError(f"{source}: {err}") from err


def _read_yaml(path: Path) -> dict[str, Any]:
    """A parameter file's mapping of names to values; a file that cannot be read, is not valid
    YAML (naming the line and column yaml gives) or is not such a mapping is refused with a
    ``ValueError`` naming it."""
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: cannot be read: {err}") from err
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = getattr(err, "problem", None) or str(err)
        raise ValueError(f"{where}: not valid YAML: {problem}") from err
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: expected a mapping of parameters, got {_kind(loaded)}")
    bad = [k for k in loaded if not isinstance(k, str)]
    if bad:
        raise ValueError(f"{path}: parameter names must be text, got {bad[0]!r}")
    return loaded


def _check_params(module: ModuleType, params: Any) -> None:
    if type(params) is not module.Params:
        raise TypeError(
            f"params must be {module.__name__}.Params, got {type(params).__module__}."
            f"{type(params).__qualname__}"
        )


def save_artifact(
    chapter: str | ModuleType,
    params: Any,
    result: Any,
    *,
    wall_time_s: float,
    params_set: str,
    directory: str | Path | None = None,
    code: CodeVersion | None = None,
    inputs: Mapping[str, str] | None = None,
    machine: Machine | None = None,
) -> Path:
    """Save a chapter's ``result`` for ``params`` as ``<directory>/<chapter>/<params-key>.json``
    (``directory`` defaults to :func:`~vrg_analysis.resources.results_dir`), with its large
    arrays in ``<params-key>.<sha256 prefix>.npz``; returns the JSON's path.

    ``code``, ``inputs`` and ``machine`` default to this process's (:func:`code_version`,
    :func:`chapter_inputs`, :func:`machine_info`); :func:`run_study` passes the code version and
    inputs read before the run, so an edit made while it ran leaves the artifact stale rather
    than wrongly current. The ``.npz`` is written first and the JSON last, each atomically; the
    previous pair's ``.npz`` is removed only after the new JSON is in place.

    A chapter module may define ``artifact_result(result) -> Result`` to store less than its
    whole result (what its pages need, e.g. without per-sample features): the artifact records
    that it did (``reduced_by``). Arrays over :data:`LARGE_BYTES` compressed are saved with a
    warning naming the largest; over :data:`MAX_BYTES`, refused.
    """
    module = chapter_module(chapter)
    _check_params(module, params)
    if not isinstance(params_set, str) or not _NAME_RE.match(params_set):
        raise ValueError(f"params_set must be a name (letters, digits, -_.), got {params_set!r}")
    if not (
        isinstance(wall_time_s, int | float) and math.isfinite(wall_time_s) and wall_time_s >= 0
    ):
        raise ValueError(f"wall_time_s must be a finite number >= 0, got {wall_time_s!r}")
    ran_with = getattr(result, "params", params)
    if dataclasses.is_dataclass(ran_with) and keyed_params(ran_with) != keyed_params(params):
        raise ValueError("the result was computed with other parameters than the ones given")
    key = params_key(params)
    reduce = getattr(module, "artifact_result", None)
    reduced_by = None
    if callable(reduce):  # the chapter keeps only what its pages need
        result = reduce(result)
        reduced_by = f"{module.__name__}.artifact_result"
    encoded = encode(result)
    code = code if code is not None else code_version(module)
    inputs = dict(inputs) if inputs is not None else chapter_inputs(params, module)
    machine = machine if machine is not None else machine_info(getattr(params, "device", "cpu"))
    folder = (Path(directory) if directory is not None else results_dir()) / _chapter_name(module)
    folder.mkdir(parents=True, exist_ok=True)

    arrays_entry = None
    npz_name = None
    if encoded.arrays:
        blob = _npz_bytes(encoded.arrays)
        size = f"{size_text(len(blob))} compressed (largest: {', '.join(encoded.largest())})"
        if len(blob) > MAX_BYTES:
            raise ValueError(
                f"the arrays of {module.__name__}'s result take {size}: too large to commit; "
                f"give {module.__name__} an artifact_result(result) hook that keeps only what the "
                "pages need (e.g. no per-sample features once the tables are made)"
            )
        if len(blob) > LARGE_BYTES:
            log.warning("the arrays of %s's result take %s", module.__name__, size)
        digest = sha256_hex(blob)
        npz_name = f"{key}.{digest[:16]}.npz"
        with atomic_open(folder / npz_name, "wb") as fh:
            fh.write(blob)
        arrays_entry = {
            "file": npz_name,
            "sha256": digest,
            "bytes": len(blob),
            "count": len(encoded.arrays),
        }
    body = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "chapter": module.__name__,
        "chapter_name": _chapter_name(module),
        "params_set": params_set,
        "params_key": key,
        "params": encode(params, root="params", inline_arrays=True).document,
        "created": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "wall_time_s": float(wall_time_s),
        "machine": machine.to_dict(),
        "package_version": code.package_version,
        "code_version": code.digest,
        "modules": dict(code.modules),
        "inputs": dict(inputs),
        "arrays": arrays_entry,
        "reduced_by": reduced_by,
        "result": encoded.document,
    }
    path = folder / f"{key}.json"
    _write_json(path, _json_text(body))
    for old in folder.glob(f"{key}.*.npz"):  # the previous pair's arrays, now unreferenced
        if old.name != npz_name:
            old.unlink(missing_ok=True)
    log.info("saved %s", path)
    return path


def _write_json(path: Path, text: str) -> None:
    with atomic_open(path, "wb") as fh:
        fh.write(text.encode("utf-8"))


def _bad(path: Path, key: str, why: str) -> ValueError:
    return ValueError(f"{path}: entry {key!r} {why} (damaged, or not written by this code?)")


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _entry(
    path: Path, doc: Mapping[str, Any], key: str, kind: Any, what: str, name: str = ""
) -> Any:
    """``doc[key]``, checked to be of ``kind``; else a ``ValueError`` naming the file and entry
    (``name``, default ``key``)."""
    name = name or key
    if not isinstance(doc, Mapping):
        raise _bad(path, name.rsplit(".", 1)[0], f"must be an object, got {_kind(doc)}")
    if key not in doc:
        raise _bad(path, name, "is missing")
    value = doc[key]
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise _bad(path, name, f"must be {what}, got {value!r}")
    if not isinstance(value, kind):
        raise _bad(path, name, f"must be {what}, got {_kind(value)}")
    return value


def _digests(path: Path, doc: Mapping[str, Any], key: str) -> dict[str, str]:
    value = _entry(path, doc, key, dict, "an object of name -> sha256")
    for k, v in value.items():
        if not isinstance(v, str):
            raise _bad(path, f"{key}.{k}", f"must be a sha256 string, got {_kind(v)}")
    return value


_MACHINE_KINDS: dict[str, tuple[Any, str]] = {
    "cpu": (str, "a string"),
    "cores": (int, "an integer"),
    "threads": (int, "an integer"),
    "torch": (str, "a string"),
    "device": (str, "a string"),
    "gpu": ((str, type(None)), "a string or null"),
    "platform": (str, "a string"),
    "python": (str, "a string"),
    "processes": (int, "an integer"),
}
#: Machine entries an artifact may lack (saved before they were recorded).
_MACHINE_OPTIONAL = ("processes",)


def _machine(path: Path, doc: Mapping[str, Any]) -> Machine:
    d = _entry(path, doc, "machine", dict, "an object")
    for f in dataclasses.fields(Machine):
        if f.name in _MACHINE_OPTIONAL and f.name not in d:
            continue
        kind, what = _MACHINE_KINDS[f.name]
        _entry(path, d, f.name, kind, what, f"machine.{f.name}")
    return Machine.from_dict(d)


def _read_arrays(path: Path, doc: Mapping[str, Any]) -> tuple[dict[str, np.ndarray], Path | None]:
    entry = _entry(path, doc, "arrays", (dict, type(None)), "an object or null")
    if not entry:
        return {}, None
    name = _entry(path, entry, "file", str, "a file name", "arrays.file")
    digest = _entry(path, entry, "sha256", str, "a sha256", "arrays.sha256")
    if Path(name).name != name or not name.endswith(".npz"):
        raise _bad(path, "arrays.file", f"is not an .npz file name beside it: {name!r}")
    if not _SHA256_RE.match(digest):
        raise _bad(path, "arrays.sha256", f"is not a sha256: {digest!r}")
    npz_path = path.parent / name
    if not npz_path.is_file():
        raise FileNotFoundError(f"{path}: its arrays {npz_path} are missing (torn pair?)")
    blob = npz_path.read_bytes()
    if sha256_hex(blob) != digest:
        raise ValueError(
            f"{npz_path}: does not match the sha256 that {path.name} records (damaged, or "
            "not the pair's .npz)"
        )
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as err:
        raise ValueError(f"{npz_path}: unreadable ({type(err).__name__}: {err})") from err
    except (AttributeError, TypeError) as err:  # a single .npy array, not an archive
        raise ValueError(f"{npz_path}: not an .npz archive ({err})") from err
    return arrays, npz_path


def read_artifact(path: str | Path) -> ResultArtifact:
    """The artifact at ``path`` (a JSON file), its ``.npz`` read and checked: a file that is not
    valid JSON, whose content or ``.npz`` does not match the sha256 the JSON records, of another
    format version, or whose structure is not an artifact's (an entry missing or of the wrong
    kind) is refused with a ``ValueError`` naming the file and the entry; a missing ``.npz`` with
    a ``FileNotFoundError``."""
    path = Path(path)
    try:
        doc = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise ValueError(f"{path}: not a readable artifact (damaged?): {err}") from err
    if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME:
        raise ValueError(f"{path}: not a {FORMAT_NAME} artifact")
    recorded = doc.pop("sha256", None)
    try:
        actual = sha256_hex(json.dumps(doc, separators=(",", ":"), allow_nan=False).encode())
    except ValueError as err:
        raise ValueError(f"{path}: holds values JSON does not allow (damaged?): {err}") from err
    if recorded != actual:
        raise ValueError(
            f"{path}: its content does not match the sha256 it records (changed or damaged "
            "after it was written); regenerate it, never edit it by hand"
        )
    if doc.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path}: format version {doc.get('format_version')!r}, this code reads "
            f"{FORMAT_VERSION}; regenerate it"
        )
    # the checksum only says the file is as written: check that it is an artifact's structure
    text = "a string"
    params_doc = _entry(path, doc, "params", dict, "an object")
    params_class = _entry(path, params_doc, "class", str, text, "params.class")
    params_fields = _entry(path, params_doc, "fields", dict, "an object", "params.fields")
    wall = _entry(path, doc, "wall_time_s", (int, float), "a number")
    if not (math.isfinite(wall) and wall >= 0):
        raise _bad(path, "wall_time_s", f"must be a finite number >= 0, got {wall!r}")
    if "result" not in doc:
        raise _bad(path, "result", "is missing")
    reduced_by = doc.get("reduced_by")
    if reduced_by is not None and not isinstance(reduced_by, str):
        raise _bad(path, "reduced_by", f"must be a string or null, got {_kind(reduced_by)}")
    artifact = {
        key: _entry(path, doc, key, str, text)
        for key in (
            "chapter",
            "chapter_name",
            "params_key",
            "params_set",
            "code_version",
            "package_version",
            "created",
        )
    }
    modules = _digests(path, doc, "modules")
    inputs = _digests(path, doc, "inputs")
    machine = _machine(path, doc)
    arrays, npz_path = _read_arrays(path, doc)
    params = {k: decode(v, source=str(path), root=f"params.{k}") for k, v in params_fields.items()}
    return ResultArtifact(
        path=path,
        params_class=params_class,
        params=params,
        modules=modules,
        inputs=inputs,
        wall_time_s=float(wall),
        machine=machine,
        document=doc["result"],
        params_document=params_fields,
        arrays=arrays,
        npz_path=npz_path,
        reduced_by=reduced_by,
        **artifact,
    )


def find_artifact(
    chapter: str | ModuleType, params: Any, directory: str | Path | None = None
) -> ResultArtifact | None:
    """The saved artifact of ``chapter`` whose parameters equal ``params`` (all fields but
    :data:`EXECUTION_FIELDS`), or ``None``; a damaged one is refused (``ValueError``)."""
    module = chapter_module(chapter)
    _check_params(module, params)
    folder = (Path(directory) if directory is not None else results_dir()) / _chapter_name(module)
    path = folder / f"{params_key(params)}.json"
    if not path.is_file():
        return None
    art = read_artifact(path)
    mine = {k: v for k, v in art.params_document.items() if k not in EXECUTION_FIELDS}
    if art.chapter != module.__name__ or art.params_class != class_name(type(params)):
        log.warning("%s belongs to %s, not %s; ignored", path, art.chapter, module.__name__)
        return None
    if mine != keyed_params(params):
        log.warning("%s records other parameters than its name says; ignored", path)
        return None
    return art


# ===================================================================== is it current?
@dataclass(frozen=True)
class Freshness:
    """Whether an artifact is what the present code and inputs would produce: ``status`` is
    ``"current"`` or ``"stale"``, with the ``reasons``, the modules whose source changed
    (``changed_modules``; new or removed ones marked) and the inputs that differ."""

    status: str
    reasons: tuple[str, ...] = ()
    changed_modules: tuple[str, ...] = ()
    changed_inputs: tuple[str, ...] = ()

    @property
    def current(self) -> bool:
        return self.status == "current"

    def __str__(self) -> str:
        return self.status if self.current else f"stale: {'; '.join(self.reasons)}"


def _listing(names: list[str], most: int = 6) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def _error_text(err: BaseException) -> str:
    """An error as text, with the file and line of a ``SyntaxError``."""
    if isinstance(err, SyntaxError):
        where = f"{err.filename}:{err.lineno}" if err.lineno else str(err.filename)
        return f"SyntaxError in {where}: {err.msg}"
    return f"{type(err).__name__}: {err}"


def check_artifact(artifact: ResultArtifact, *, root: str | Path | None = None) -> Freshness:
    """Whether ``artifact`` is current: its code version equals the present one of its chapter
    (source at ``root``, default this package) in every computing module (a presentation module
    may differ: :func:`~vrg_analysis.studies.result_identity.computing_changes`), its parameters
    still pass the chapter's checks, and its inputs equal what :func:`chapter_inputs` finds now.
    Otherwise stale, with why."""
    reasons: list[str] = []
    changed_modules: list[str] = []
    changed_inputs: list[str] = []
    try:
        module = chapter_module(artifact.chapter)
    except (ImportError, TypeError, ValueError) as err:
        return Freshness("stale", (f"chapter {artifact.chapter} cannot be loaded: {err}",))
    try:
        code = code_version(module, root=root)
    except (ValueError, SyntaxError, OSError) as err:  # a missing, unreadable or unparsable file
        code = None
        reasons.append(f"code version cannot be computed: {_error_text(err)}")
    if code is not None and code.digest != artifact.code_version:
        # a presentation module (the report package) draws what the result holds: no reason
        changed_modules = computing_changes(artifact.modules, code.modules)
        if changed_modules:
            reasons.append(
                f"code changed since the run ({len(changed_modules)} module(s): "
                f"{_listing(changed_modules)})"
            )
    try:
        params = artifact.params_object(validate=True)
    except (TypeError, ValueError) as err:
        reasons.append(f"params no longer valid: {err}")
    except Exception as err:  # noqa: BLE001 - parameters the present code cannot rebuild
        reasons.append(f"params no longer valid: {type(err).__name__}: {err}")
    else:
        try:
            now = chapter_inputs(params, module)
        except Exception as err:  # noqa: BLE001 - any failure to find an input makes it stale
            reasons.append(f"inputs cannot be read: {type(err).__name__}: {err}")
        else:
            changed_inputs = changed_keys(artifact.inputs, now)
            if changed_inputs:
                reasons.append(f"inputs differ: {_listing(changed_inputs)}")
    status = "stale" if reasons else "current"
    return Freshness(status, tuple(reasons), tuple(changed_modules), tuple(changed_inputs))


# ===================================================================== using it
def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes = seconds / 60
    if minutes < 60:
        return f"{int(minutes)} min {int(seconds % 60)} s"
    return f"{int(minutes // 60)} h {int(minutes % 60)} min"


@dataclass(frozen=True)
class Provenance:
    """Where a result shown in the book comes from: ``source`` is ``"committed"`` (a saved
    artifact, ``artifact``), ``"build"`` (this build ran the chapter) or ``"none"`` (no current
    committed result, :func:`load_committed`); ``text`` says it in a sentence for the page;
    ``freshness`` is the committed artifact's, when one matched."""

    source: str
    text: str
    params_set: str | None = None
    artifact: Path | None = None
    created: str | None = None
    machine: Machine | None = None
    wall_time_s: float | None = None
    freshness: Freshness | None = None

    @property
    def committed(self) -> bool:
        return self.source == "committed"

    def __str__(self) -> str:
        return self.text


def _display(path: Path) -> str:
    try:
        return path.resolve().relative_to(results_dir().parent.parent.resolve()).as_posix()
    except ValueError:
        return str(path)


def _committed_provenance(art: ResultArtifact, fresh: Freshness) -> Provenance:
    label = "full-size" if art.params_set == "full" else f"'{art.params_set}' parameter set"
    text = (
        f"committed {label} run of {art.created[:10]} on {art.machine.describe()}, "
        f"{_duration(art.wall_time_s)} ({_display(art.path)})"
    )
    return Provenance(
        "committed",
        text,
        params_set=art.params_set,
        artifact=art.path,
        created=art.created,
        machine=art.machine,
        wall_time_s=art.wall_time_s,
        freshness=fresh,
    )


def _call_run(module: ModuleType, params: Any, progress: bool) -> Any:
    if "progress" in inspect.signature(module.run).parameters:
        return module.run(params, progress=progress)
    return module.run(params)


def run_or_load(
    chapter: str | ModuleType,
    params: Any,
    *,
    directory: str | Path | None = None,
    progress: bool = False,
) -> tuple[Any, Provenance]:
    """The chapter's result for ``params``: the committed one when a *current* artifact matches
    them (the chapter does not run), else ``run(params)``; with the :class:`Provenance` that says
    which, and, when a matching artifact was stale, that it was not used and why. A damaged
    matching artifact is refused (``ValueError`` naming the file), never silently replaced."""
    module = chapter_module(chapter)
    _check_params(module, params)
    art = find_artifact(module, params, directory)
    fresh = check_artifact(art) if art is not None else None
    if art is not None and fresh is not None and fresh.current:
        return art.result(), _committed_provenance(art, fresh)
    result = _call_run(module, params, progress)
    text = "this build's run"
    if art is not None and fresh is not None:
        text += (
            f" (the committed run {_display(art.path)} of {art.created[:10]} matches these "
            f"parameters but is stale, so it is not shown: {'; '.join(fresh.reasons)})"
        )
    return result, Provenance(
        "build", text, params_set=None, artifact=art.path if art else None, freshness=fresh
    )


def load_committed(
    chapter: str | ModuleType,
    params_set: str = "full",
    *,
    directory: str | Path | None = None,
) -> tuple[Any | None, Provenance]:
    """The committed result of a named parameter set (:func:`params_from_set`), for a page that
    shows it beside this build's quick run: ``(result, provenance)`` when a current artifact
    matches, else ``(None, provenance)`` whose text says that there is none, or that the one
    there is stale and why. The chapter never runs. A parameter file that is there but cannot be
    used (not valid YAML, a value the chapter refuses) is refused with the ``ValueError`` of
    :func:`params_from_set`, naming the file (and the line), never shown as "no run"."""
    module = chapter_module(chapter)
    label = "full-size" if params_set == "full" else f"'{params_set}' parameter set"
    try:
        params = params_from_set(module, params_set)
    except FileNotFoundError:
        text = f"no parameter set {params_set!r} for this chapter"
        return None, Provenance("none", text, params_set)
    art = find_artifact(module, params, directory)
    if art is None:
        return None, Provenance("none", f"no committed {label} run yet", params_set)
    fresh = check_artifact(art)
    if not fresh.current:
        text = (
            f"the committed {label} run {_display(art.path)} of {art.created[:10]} is stale, so "
            f"it is not shown: {'; '.join(fresh.reasons)}"
        )
        return None, Provenance(
            "none", text, params_set, artifact=art.path, created=art.created, freshness=fresh
        )
    return art.result(), _committed_provenance(art, fresh)


def committed_or(
    chapter: str | ModuleType,
    fallback: Any,
    params_set: str | None = "full",
    *,
    directory: str | Path | None = None,
) -> tuple[Any, Provenance]:
    """The result a page shows: the current committed run of ``params_set``
    (:func:`load_committed`) when there is one, else ``fallback`` (the build's own run, e.g. at
    the quick parameters), with the :class:`Provenance` of what is shown; when it is the
    fallback, the text says so and why the committed run is not shown (none yet, or stale and
    why). So a page's figures and glued numbers always exist and always say where they come
    from. ``params_set=None`` shows ``fallback`` whatever is committed (an audit of the user's
    own model, ``python -m vrg_analysis audit``, must show and write that model's verdicts)."""
    if params_set is None:
        return fallback, Provenance("build", "this run (no committed run asked for)", None)
    result, prov = load_committed(chapter, params_set, directory=directory)
    if result is not None:
        return result, prov
    text = f"this build's run at the chapter's quick parameters ({prov.text})"
    return fallback, Provenance(
        "build",
        text,
        params_set=None,
        artifact=prov.artifact,
        created=prov.created,
        freshness=prov.freshness,
    )


def run_study(
    chapter: str | ModuleType,
    params: Any,
    params_set: str,
    directory: str | Path | None = None,
    *,
    progress: bool = False,
    prior_wall_s: float = 0.0,
) -> Path:
    """Run a chapter on ``params``, time it and save it (:func:`save_artifact`) as the named
    parameter set; returns the artifact's JSON path. The code version and inputs are read before
    the run: if the code or inputs change while it runs, the artifact is saved as made by the
    code it started with (so it reads as stale) and a warning says so. ``prior_wall_s``: seconds
    the run spent before this call (a study across processes runs its comparisons first,
    :mod:`vrg_analysis.studies.grid`), added to the recorded wall time."""
    if not (math.isfinite(prior_wall_s) and prior_wall_s >= 0.0):
        raise ValueError(f"prior_wall_s must be a finite number >= 0, got {prior_wall_s!r}")
    module = chapter_module(chapter)
    _check_params(module, params)
    code = code_version(module)
    inputs = chapter_inputs(params, module)
    start = time.perf_counter()
    result = _call_run(module, params, progress)
    wall = time.perf_counter() - start + prior_wall_s
    changed = computing_changes(code.modules, code_version(module).modules)
    if changed or chapter_inputs(params, module) != inputs:
        log.warning(
            "the code or inputs of %s changed while it ran: the artifact records those it "
            "started with and will read as stale",
            module.__name__,
        )
    return save_artifact(
        module,
        params,
        result,
        wall_time_s=wall,
        params_set=params_set,
        directory=directory,
        code=code,
        inputs=inputs,
    )


# ===================================================================== the committed folder
def read_stale_list(directory: str | Path | None = None) -> dict[str, str]:
    """``STALE.txt`` of the results folder: artifact path (relative, ``/``-separated) -> reason,
    from lines ``<chapter>/<key>.json: <reason>`` (``#`` starts a comment). A line without a
    reason is refused, naming the file and line."""
    folder = Path(directory) if directory is not None else results_dir()
    path = folder / STALE_LIST
    if not path.is_file():
        return {}
    out: dict[str, str] = {}
    for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, _, reason = line.partition(":")
        if not name.strip().endswith(".json") or not reason.strip():
            raise ValueError(f"{path}:{n}: expected '<chapter>/<key>.json: <reason>', got {raw!r}")
        out[name.strip()] = reason.strip()
    return out


def committed_problems(
    directory: str | Path | None = None, *, root: str | Path | None = None
) -> list[str]:
    """Everything wrong with a results folder (default the committed ``data/results``): an
    artifact that cannot be read, one that is stale but not listed in ``STALE.txt`` with a reason,
    one listed there that is current or missing, and an ``.npz`` no artifact refers to. Empty when
    every artifact is current or flagged."""
    folder = Path(directory) if directory is not None else results_dir()
    if not folder.is_dir():
        return []
    problems: list[str] = []
    try:
        stale = read_stale_list(folder)
    except ValueError as err:
        return [str(err)]
    referenced: set[Path] = set()
    seen: set[str] = set()
    for path in sorted(folder.rglob("*.json")):
        rel = path.relative_to(folder).as_posix()
        seen.add(rel)
        try:
            art = read_artifact(path)
        except (OSError, ValueError) as err:
            problems.append(f"{rel}: cannot be read: {err}")
            continue
        except Exception as err:  # noqa: BLE001 - reported, never a crash of the whole check
            problems.append(f"{rel}: cannot be read: {type(err).__name__}: {err}")
            continue
        if art.npz_path is not None:
            referenced.add(art.npz_path.resolve())
        try:
            fresh = check_artifact(art, root=root)
        except Exception as err:  # noqa: BLE001 - reported, never a crash of the whole check
            problems.append(f"{rel}: cannot be checked: {type(err).__name__}: {err}")
            continue
        if not fresh.current and rel not in stale:
            problems.append(
                f"{rel}: stale and not listed in {STALE_LIST} ({'; '.join(fresh.reasons)}); "
                "regenerate it or list it there with a reason"
            )
        elif fresh.current and rel in stale:
            problems.append(f"{rel}: listed in {STALE_LIST} but current; remove the line")
    for rel in sorted(set(stale) - seen):
        problems.append(f"{STALE_LIST} lists {rel}, which does not exist")
    for npz in sorted(folder.rglob("*.npz")):
        if npz.resolve() not in referenced:
            problems.append(f"{npz.relative_to(folder).as_posix()}: no artifact refers to it")
    return problems
