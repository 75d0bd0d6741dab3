"""What a chapter's result depends on: its code, its inputs, its parameters, and where it ran.

* :func:`code_version`: a sha256 over the source of the chapter module and of every
  ``vrg_analysis`` module it imports, transitively (the import graph of
  :func:`vrg_analysis.layers.import_graph`, and the packages those modules sit in), with the
  sha256 of each module so that a change can be named; and the package version
  (:class:`CodeVersion`). The presentation modules (:data:`PRESENTATION_PACKAGES`: the
  ``vrg_analysis.report`` package, which only draws and formats what a result holds) are recorded
  but do not make an artifact stale (:func:`computing_changes`): a new figure size or colour
  does not change a number;
* :func:`chapter_inputs`: name -> sha256 of the model weights, data splits and reference
  statistics of every testbed the parameters name, and of every file or folder a path parameter
  names (:func:`path_fields`), by content, so that the same files give the same inputs from any
  working folder;
* :func:`params_key`: a sha256 of the ``Params`` class and fields, the artifact's file name; the
  fields are encoded with every array in full (:func:`keyed_params`), so the key covers each
  element of a large array.
  Fields that choose where a run executes, not what it computes (:data:`EXECUTION_FIELDS`: the
  ``device``), are left out of the key and match: a full-size run made on a GPU is the result the
  CPU build of the book shows for the same parameters;
* :func:`machine_info`: the CPU, cores, threads, torch, device and GPU of a run (:class:`Machine`).

Part of the committed results (:mod:`vrg_analysis.studies.artifacts`, which records these and
compares them with the present code and files to tell a current artifact from a stale one); see
``data/results/README.md``.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import importlib
import os
import platform
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePath
from types import ModuleType
from typing import Any

import torch

from vrg_analysis._version import __version__
from vrg_analysis.cache import canonical_params
from vrg_analysis.io import sha256_file
from vrg_analysis.layers import PACKAGE, import_graph
from vrg_analysis.profiling.strata import launched_processes
from vrg_analysis.studies.result_codec import canonical_json, class_name, encode
from vrg_analysis.testbeds import known_testbeds, make_testbed

__all__ = [
    "EXECUTION_FIELDS",
    "PRESENTATION_PACKAGES",
    "CodeVersion",
    "code_version",
    "computing_changes",
    "changed_keys",
    "is_presentation",
    "chapter_inputs",
    "Machine",
    "machine_info",
    "params_key",
    "keyed_params",
    "path_fields",
    "PATH_WORDS",
    "package_root",
    "sha256_hex",
]

#: Parameters that choose where a run executes, not what it computes: left out of the key.
EXECUTION_FIELDS: frozenset[str] = frozenset({"device"})

#: Words that, in a parameter's name (split at ``_``), say that it names a file or folder
#: (``model_path``, ``reference_dir``, ``verdict_dir``, ``data``, ``model``): only such
#: parameters, and those typed or valued as a ``Path``, are read as inputs (:func:`path_fields`).
PATH_WORDS: frozenset[str] = frozenset(
    {"path", "paths", "dir", "dirs", "folder", "folders", "file", "files", "data", "model"}
    | {"models", "checkpoint", "checkpoints", "ckpt", "root"}
)

_SHA_RE = re.compile(r"^[0-9a-f]{64}$")


def sha256_hex(data: bytes) -> str:
    """The sha256 of ``data``, in hex."""
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class CodeVersion:
    """The code a chapter runs: ``digest`` (sha256 over ``modules``, module name -> sha256 of its
    source, line endings normalised) and the package version."""

    digest: str
    modules: Mapping[str, str]
    package_version: str


#: Packages whose modules only present results (figures, tables, the book's theme, glue): they
#: import no computing module of the package (``tests/test_artifacts.py`` holds them to it) and a
#: chapter's ``run`` never calls them to make a stored value (they render only: a review rule),
#: so a change to one leaves a stored result as it was. Recorded in an artifact's ``modules``,
#: but no reason for staleness.
PRESENTATION_PACKAGES: tuple[str, ...] = (f"{PACKAGE}.report",)


def is_presentation(module: str) -> bool:
    """Whether ``module`` (a name as :class:`CodeVersion` records it) only presents results
    (:data:`PRESENTATION_PACKAGES`)."""
    return any(module == p or module.startswith(p + ".") for p in PRESENTATION_PACKAGES)


def changed_keys(old: Mapping[str, str], new: Mapping[str, str]) -> list[str]:
    """The keys whose digest differs between two name -> sha256 mappings, sorted: one only in
    ``old`` marked ``(no longer used)``, one only in ``new`` marked ``(new)``."""
    out = []
    for k in sorted(set(old) | set(new)):
        if k not in new:
            out.append(f"{k} (no longer used)")
        elif k not in old:
            out.append(f"{k} (new)")
        elif old[k] != new[k]:
            out.append(k)
    return out


def computing_changes(old: Mapping[str, str], new: Mapping[str, str]) -> list[str]:
    """The modules whose source differs between two :attr:`CodeVersion.modules`
    (:func:`changed_keys`), leaving out the presentation modules (:func:`is_presentation`): the
    changes that make a stored result stale."""
    return [k for k in changed_keys(old, new) if not is_presentation(k.split(" (", 1)[0])]


def package_root(root: str | Path | None) -> Path:
    """The ``vrg_analysis`` package folder: ``root``, else this package's."""
    return Path(root) if root is not None else Path(__file__).resolve().parent.parent


def _module_files(pkg: Path) -> dict[str, Path]:
    """Module name -> file, named as :mod:`vrg_analysis.layers` names them."""
    out: dict[str, Path] = {}
    for p in sorted(pkg.rglob("*.py")):
        if "_bundled" in p.parts:
            continue
        parts = list(p.relative_to(pkg.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1] if len(parts) > 2 else [PACKAGE, "__init__"]
        out[".".join(parts)] = p
    return out


_GRAPHS: dict[tuple[str, str], dict[str, set[str]]] = {}


def _edges(pkg: Path, files: Mapping[str, Path], hashes: Mapping[str, str]) -> dict[str, set[str]]:
    """Module -> the package modules it imports (``from package import module`` included),
    cached by the sources' hashes."""
    key = (str(pkg.resolve()), sha256_hex(canonical_json(dict(hashes))))
    if key in _GRAPHS:
        return _GRAPHS[key]

    def resolve(target: str) -> str | None:
        while target not in files and "." in target:
            target = target.rsplit(".", 1)[0]
        if target == PACKAGE:
            target = f"{PACKAGE}.__init__"
        return target if target in files else None

    from_names: dict[str, dict[int, list[str]]] = {}

    def names_at(importer: str, line: int) -> list[str]:
        if importer not in from_names:
            path = files[importer]
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            found: dict[int, list[str]] = {}
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.module:
                    found.setdefault(node.lineno, []).extend(
                        f"{node.module}.{a.name}" for a in node.names
                    )
            from_names[importer] = found
        return from_names[importer].get(line, [])

    edges: dict[str, set[str]] = {m: set() for m in files}
    for imp in import_graph(pkg):
        if imp.importer not in files:
            continue
        target = resolve(imp.imported)
        if target is not None:
            edges[imp.importer].add(target)
        if target is not None and files[target].name == "__init__.py":
            for sub in names_at(imp.importer, imp.line):  # from package import module
                if sub in files:
                    edges[imp.importer].add(sub)
    if len(_GRAPHS) >= 4:
        _GRAPHS.pop(next(iter(_GRAPHS)))
    _GRAPHS[key] = edges
    return edges


def _source_hash(path: Path) -> str:
    return sha256_hex(path.read_bytes().replace(b"\r\n", b"\n"))


def code_version(chapter: str | ModuleType, *, root: str | Path | None = None) -> CodeVersion:
    """The :class:`CodeVersion` of a chapter module: every ``vrg_analysis`` module it imports,
    transitively (at module level or inside functions), and every package those modules sit in
    (whose ``__init__`` runs on import), read from the source at ``root`` (default this package)."""
    name = chapter.__name__ if isinstance(chapter, ModuleType) else str(chapter)
    pkg = package_root(root)
    files = _module_files(pkg)
    if name not in files:
        raise ValueError(f"{name!r} is not a module of the package at {pkg}")
    hashes = {m: _source_hash(p) for m, p in files.items()}
    edges = _edges(pkg, files, hashes)
    seen: set[str] = set()
    todo = [name]
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        parts = m.split(".")
        parents = [".".join(parts[:i]) for i in range(2, len(parts))]
        parents.append(f"{PACKAGE}.__init__")
        todo.extend(p for p in parents if p in files)
        todo.extend(edges.get(m, ()))
    modules = {m: hashes[m] for m in sorted(seen)}
    return CodeVersion(sha256_hex(canonical_json(modules)), modules, __version__)


def _chapter_of(params: Any) -> ModuleType:
    return importlib.import_module(type(params).__module__)


def _testbed_names(value: Any) -> list[str]:
    names = known_testbeds()
    if isinstance(value, str) and value in names:
        return [value]
    if isinstance(value, tuple | list):
        return [v for v in value if isinstance(v, str) and v in names]
    return []


def _digest_of(value: Any) -> str:
    if isinstance(value, str) and _SHA_RE.match(value):
        return value
    return sha256_hex(canonical_params({"value": value}).encode())


def _testbed_inputs(name: str) -> dict[str, str]:
    bed = make_testbed(name)
    out: dict[str, str] = {}
    entries = [("", bed.fingerprint), ("scoring/", dict(bed.scoring().fingerprint))]
    for prefix, fp in entries:
        for key, value in fp.items():
            if key == "testbed":
                continue
            if (
                isinstance(value, Mapping)
                and value
                and all(isinstance(v, str) and _SHA_RE.match(v) for v in value.values())
            ):
                for sub, digest in value.items():
                    out[f"testbed {name}: {prefix}{key}/{sub}"] = digest
            else:
                out[f"testbed {name}: {prefix}{key}"] = _digest_of(value)
    return out


def _path_digest(path: Path) -> str:
    if path.is_file():
        return sha256_file(path)
    files: list[Path] = []
    for folder, dirs, names in os.walk(path):
        dirs[:] = [d for d in dirs if not d.startswith(".")]  # .git, .ipynb_checkpoints, ...
        files += [Path(folder) / n for n in names if not n.startswith(".")]
    h = hashlib.sha256()
    for p in sorted(files, key=lambda q: q.relative_to(path).as_posix()):
        if p.is_file():
            rel = p.relative_to(path).as_posix()
            h.update(rel.encode() + b"\0" + sha256_file(p).encode() + b"\n")
    return h.hexdigest()


def _hook_digest(name: str, value: Any) -> str:
    if isinstance(value, bytes):
        return sha256_hex(value)
    if isinstance(value, str) and _SHA_RE.match(value):
        return value
    if isinstance(value, str | PurePath) and Path(value).exists():
        return _path_digest(Path(value))
    raise ValueError(
        f"artifact_inputs: input {name!r} must be a sha256, bytes or an existing path, "
        f"got {value!r}"
    )


def path_fields(params: Any) -> list[str]:
    """The fields of a ``Params`` dataclass that name a file or folder by intent: those valued or
    typed as a ``Path``, and those whose name holds one of :data:`PATH_WORDS` (``model_path``,
    ``reference_dir``, ``data``, ``model``); never :data:`EXECUTION_FIELDS` (``device``). Other
    strings (a sampler, a schedule, a device) are never read as paths, even where a file or folder
    of that name happens to exist."""
    if not dataclasses.is_dataclass(params) or isinstance(params, type):
        return []
    out = []
    for f in dataclasses.fields(params):
        if f.name in EXECUTION_FIELDS:
            continue
        typed = "Path" in str(f.type)  # "str | Path" (a string under postponed annotations)
        named = bool(PATH_WORDS & set(f.name.lower().split("_")))
        if typed or named or isinstance(getattr(params, f.name), PurePath):
            out.append(f.name)
    return out


def chapter_inputs(params: Any, chapter: ModuleType | None = None) -> dict[str, str]:
    """Name -> sha256 of everything outside the code a chapter's run reads, found generically:

    * every testbed named by a parameter (a string or list field holding a testbed name) or by a
      module constant whose name ends in ``TESTBED`` (e.g. ``bias_sensitivity.TESTBED``): its
      fingerprint (model weights, data split, mixture) and its scorer's (feature classifier,
      reference statistics), entry by entry;
    * every existing file or folder a path parameter (:func:`path_fields`: ``model_path``,
      ``reference_dir``, ``data``, ...) names, as ``"<field>: <value as given>"`` -> the sha256 of
      its content (a folder: of its files' relative names and contents). A relative path is read
      where the chapter reads it, from the working folder; the name and the digest hold no
      absolute location, so the same files give the same inputs from any working folder. An
      empty value is no path (the chapters resolve it to a default in their ``Params``, which
      then holds the absolute path they read); execution fields (``device``) and other strings
      are never paths;
    * whatever the chapter module's optional ``artifact_inputs(params)`` returns (name -> a
      sha256, bytes, or a file or folder), for inputs that no parameter names.

    ``chapter`` defaults to the module that defines ``type(params)``.
    """
    module = chapter if chapter is not None else _chapter_of(params)
    testbeds: list[str] = []
    out: dict[str, str] = {}
    fields = dataclasses.fields(params) if dataclasses.is_dataclass(params) else ()
    paths = set(path_fields(params))
    for f in fields:
        if f.name in EXECUTION_FIELDS:
            continue
        value = getattr(params, f.name)
        found = _testbed_names(value)
        testbeds += found
        if found or f.name not in paths:
            continue
        if isinstance(value, str | PurePath) and str(value):
            path = Path(value)  # relative: from the working folder, as the chapter opens it
            if path.exists():
                out[f"{f.name}: {value}"] = _path_digest(path)
    for const, value in vars(module).items():
        if const.isupper() and const.endswith("TESTBED"):
            testbeds += _testbed_names(value)
    for name in dict.fromkeys(testbeds):
        out.update(_testbed_inputs(name))
    hook = getattr(module, "artifact_inputs", None)
    if callable(hook):
        for name, value in dict(hook(params)).items():
            out[str(name)] = _hook_digest(str(name), value)
    return dict(sorted(out.items()))


@dataclass(frozen=True)
class Machine:
    """Where a run was made."""

    cpu: str
    cores: int
    threads: int
    torch: str
    device: str
    gpu: str | None
    platform: str
    python: str
    processes: int = 1

    def describe(self) -> str:
        """One line: the GPU (if the run used one) or the CPU, its cores, torch's threads and,
        for a run across processes (``torchrun``), their number."""
        threads = f"{self.threads} torch thread" + ("" if self.threads == 1 else "s")
        if self.processes > 1:
            threads = f"{self.processes} processes of {threads}"
        where = f"{self.cpu} ({self.cores} cores, {threads})"
        if self.gpu and not self.device.startswith("cpu"):
            where = f"{self.gpu}, {where}"
        return f"{where}, torch {self.torch}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Machine:
        """From :meth:`to_dict`; ``processes`` may be absent (a run saved before it was recorded
        ran in one process)."""
        return cls(**{f.name: d.get(f.name) for f in dataclasses.fields(cls) if f.name in d})


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine_info(device: str = "cpu") -> Machine:
    """This machine, for a run on ``device`` (in ``$WORLD_SIZE`` processes under ``torchrun``)."""
    gpu = None
    if torch.cuda.is_available():
        try:
            index = torch.device(device).index if device.startswith("cuda") else None
            gpu = torch.cuda.get_device_name(index)
        except (RuntimeError, AssertionError, ValueError):  # pragma: no cover - odd CUDA setups
            gpu = None
    return Machine(
        cpu=_cpu_name(),
        cores=os.cpu_count() or 0,
        threads=torch.get_num_threads(),
        torch=str(torch.__version__),
        device=str(device),
        gpu=gpu,
        platform=platform.platform(),
        python=platform.python_version(),
        processes=launched_processes(),
    )


def keyed_params(params: Any) -> dict[str, Any]:
    """The parameters' encoded fields, without :data:`EXECUTION_FIELDS`: what the key covers.
    Every array is encoded in full (``encode(..., inline_arrays=True)``, as the artifact stores
    the parameters), so two parameter sets that differ in one element of a large array differ
    here; a field the JSON cannot hold exactly is refused (``TypeError`` naming it)."""
    if not dataclasses.is_dataclass(params) or isinstance(params, type):
        raise TypeError(f"params must be a chapter's Params dataclass, got {type(params).__name__}")
    fields = encode(params, root="params", inline_arrays=True).document["fields"]
    return {k: v for k, v in fields.items() if k not in EXECUTION_FIELDS}


def params_key(params: Any) -> str:
    """The file name of a chapter's artifact for ``params``: 16 hex digits of the sha256 of the
    class and every field but :data:`EXECUTION_FIELDS` (stable across processes and machines)."""
    doc = {"class": class_name(type(params)), "params": keyed_params(params)}
    return sha256_hex(canonical_json(doc))[:16]
