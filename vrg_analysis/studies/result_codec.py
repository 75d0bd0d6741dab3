"""The lossless codec of committed chapter results: a value as JSON data plus a set of arrays.

:func:`encode` turns a chapter's ``Result`` (or its ``Params``) into JSON data and the arrays it
refers to by key (:class:`Encoded`); :func:`decode` rebuilds it. It stores dataclasses of the
package by module and qualified name, pandas frames, series and indexes with their dtypes, numpy
arrays (up to :data:`INLINE_MAX` elements inline, the rest by key, each shared array once), tuples,
sets, dicts with any keys, non-finite floats, numpy scalars, CPU tensors, paths and bytes. Nothing
is pickled: what has no data representation (a live torch model, a function) is refused, naming
where it sits in the value. On reading, only classes of ``vrg_analysis`` are rebuilt; anything else
is refused, naming the file and the entry.

Part of the committed results (:mod:`vrg_analysis.studies.artifacts`, which writes the arrays to
the companion ``.npz``); the format is described in ``data/results/README.md``.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
import torch

from vrg_analysis.layers import PACKAGE

__all__ = [
    "INLINE_MAX",
    "TAG",
    "Encoded",
    "encode",
    "decode",
    "load_class",
    "class_name",
    "canonical_json",
    "size_text",
]

#: Arrays of at most this many elements (booleans, integers, floats, text) are written inline in
#: the JSON; larger ones, and those of other dtypes, go into the companion ``.npz``.
INLINE_MAX = 64
#: The key that marks an encoded entry of a type JSON lacks (``{"$type": "tuple", ...}``).
TAG = "$type"


@dataclass(frozen=True, eq=False)
class Encoded:
    """A value as JSON data (``document``) and the arrays it refers to by key (``arrays``, what
    goes into the ``.npz``)."""

    document: Any
    arrays: Mapping[str, np.ndarray]
    #: where each array sits in the value (its first occurrence), for messages
    paths: Mapping[str, str] = field(default_factory=dict)

    def largest(self, n: int = 5) -> list[str]:
        """The ``n`` largest arrays, as ``"<path> (<MB>)"``."""
        keys = sorted(self.arrays, key=lambda k: -self.arrays[k].nbytes)[:n]
        return [f"{self.paths.get(k, k)} ({size_text(self.arrays[k].nbytes)})" for k in keys]


def size_text(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 2**10:.1f} kB"


class _Refused(TypeError):
    """A value with no data representation."""


def class_name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _allowed_class(cls: type) -> bool:
    mod = cls.__module__ or ""
    return (mod == PACKAGE or mod.startswith(PACKAGE + ".")) and "<locals>" not in cls.__qualname__


def _inline_dtype(dtype: np.dtype) -> bool:
    """Whether arrays of ``dtype`` can be written as JSON numbers or text, exactly."""
    return (dtype.kind in "biuf" and dtype.itemsize <= 8) or dtype.kind == "U"


def _float_doc(x: float) -> Any:
    if math.isfinite(x):
        return x
    return {TAG: "float", "value": "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")}


class _Encoder:
    def __init__(self, *, inline_arrays: bool = False) -> None:
        self.inline_arrays = inline_arrays
        self.arrays: dict[str, np.ndarray] = {}
        self.paths: dict[str, str] = {}
        self._memo: dict[int, str] = {}
        self._keep: list[Any] = []  # keeps every array alive, so an id is never reused
        self._stack: set[int] = set()

    def refuse(self, path: str, x: Any, why: str) -> _Refused:
        return _Refused(
            f"cannot store {path}: {why} ({type(x).__module__}.{type(x).__qualname__}). Results "
            "are stored as data (JSON and NPZ), never pickled: keep such objects out of the "
            "chapter's Result, or store what they computed"
        )

    # ------------------------------------------------------------- arrays
    def array(self, a: np.ndarray, path: str, *, flags: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {TAG: "ndarray"}
        if a.dtype.hasobject:
            if a.dtype != np.dtype(object):
                raise self.refuse(path, a, f"a structured array with objects (dtype {a.dtype})")
            out["dtype"] = "object"
            out["shape"] = list(a.shape)
            out["items"] = [self.value(v, f"{path}.flat[{i}]") for i, v in enumerate(a.flat)]
        elif (a.size <= INLINE_MAX or self.inline_arrays) and _inline_dtype(a.dtype):
            data = a.ravel().tolist()
            if a.dtype.kind == "f":
                data = [_float_doc(v) for v in data]
            out.update(dtype=a.dtype.str, shape=list(a.shape), data=data)
        elif self.inline_arrays:
            raise self.refuse(
                path,
                a,
                f"an array of dtype {a.dtype}, which cannot be written inline in the JSON (where "
                "the parameters are stored, every array in full); pass booleans, integers, "
                "floats or text",
            )
        else:
            key = self._memo.get(id(a))
            if key is None:
                key = f"a{len(self.arrays)}"
                self.arrays[key] = np.ascontiguousarray(a)
                self.paths[key] = path
                self._memo[id(a)] = key
                self._keep.append(a)
            out["npz"] = key
        if flags and not a.flags.writeable:
            out["readonly"] = True
        return out

    # ------------------------------------------------------------- pandas
    def column(self, values: Any, path: str) -> dict[str, Any]:
        """The values of a series, index or frame column with their dtype."""
        dtype = values.dtype
        if isinstance(dtype, pd.CategoricalDtype):
            cat = pd.Categorical(values)
            return {
                "kind": "categorical",
                "codes": self.array(np.asarray(cat.codes), f"{path}.codes", flags=False),
                "categories": self.index(cat.categories, f"{path}.categories"),
                "ordered": bool(cat.ordered),
            }
        if isinstance(dtype, np.dtype):
            arr = np.asarray(values)
            if dtype == np.dtype(object):
                items = [self.value(v, f"{path}[{i}]") for i, v in enumerate(arr)]
                return {"kind": "object", "items": items}
            return {"kind": "numpy", "array": self.array(arr, path, flags=False)}
        items = [self.value(v, f"{path}[{i}]") for i, v in enumerate(values.array)]
        if isinstance(dtype, pd.StringDtype):
            na = "NA" if dtype.na_value is pd.NA else "nan"
            return {"kind": "string", "storage": dtype.storage, "na_value": na, "items": items}
        return {"kind": "extension", "dtype": str(dtype), "items": items}

    def index(self, idx: pd.Index, path: str) -> dict[str, Any]:
        if type(idx) is pd.RangeIndex:
            return {
                TAG: "rangeindex",
                "start": int(idx.start),
                "stop": int(idx.stop),
                "step": int(idx.step),
                "name": self.value(idx.name, f"{path}.name"),
            }
        if isinstance(idx, pd.MultiIndex):
            return {
                TAG: "multiindex",
                "levels": [
                    self.index(lv, f"{path}.levels[{i}]") for i, lv in enumerate(idx.levels)
                ],
                "codes": [
                    self.array(np.asarray(c), f"{path}.codes[{i}]", flags=False)
                    for i, c in enumerate(idx.codes)
                ],
                "names": [self.value(n, f"{path}.names[{i}]") for i, n in enumerate(idx.names)],
            }
        if type(idx) not in (pd.Index, pd.CategoricalIndex):
            raise self.refuse(path, idx, "an index of a kind the codec does not store")
        return {
            TAG: "index",
            "values": self.column(idx, path),
            "name": self.value(idx.name, f"{path}.name"),
        }

    def frame(self, df: pd.DataFrame, path: str) -> dict[str, Any]:
        data = [
            self.column(df.iloc[:, i], f"{path}[{df.columns[i]!r}]") for i in range(df.shape[1])
        ]
        out: dict[str, Any] = {
            TAG: "dataframe",
            "index": self.index(df.index, f"{path}.index"),
            "columns": self.index(df.columns, f"{path}.columns"),
            "data": data,
        }
        if df.attrs:
            out["attrs"] = self.value(dict(df.attrs), f"{path}.attrs")
        return out

    def series(self, s: pd.Series, path: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            TAG: "series",
            "index": self.index(s.index, f"{path}.index"),
            "values": self.column(s, path),
            "name": self.value(s.name, f"{path}.name"),
        }
        if s.attrs:
            out["attrs"] = self.value(dict(s.attrs), f"{path}.attrs")
        return out

    # ------------------------------------------------------------- everything
    def value(self, x: Any, path: str) -> Any:
        t = type(x)
        if x is None or t is bool or t is int or t is str:
            return x
        if t is float:
            return _float_doc(x)
        if isinstance(x, enum.Enum):
            if not _allowed_class(t):
                raise self.refuse(path, x, "an enum from outside vrg_analysis")
            return {TAG: "enum", "class": class_name(t), "name": x.name}
        if isinstance(x, np.generic):
            return {TAG: "npscalar", "array": self.array(np.asarray(x), path, flags=False)}
        if isinstance(x, bool):  # pragma: no cover - bool cannot be subclassed
            return bool(x)
        if isinstance(x, str):  # a str subclass (e.g. torch's TorchVersion): its text
            return str(x)
        if isinstance(x, int):
            return int(x)
        if isinstance(x, float):
            return _float_doc(float(x))
        if t is complex:
            return {TAG: "complex", "real": _float_doc(x.real), "imag": _float_doc(x.imag)}
        if x is pd.NA:
            return {TAG: "NA"}
        if x is pd.NaT:
            return {TAG: "NaT"}
        if t is bytes:
            return {TAG: "bytes", "hex": x.hex()}
        if isinstance(x, PurePath):
            return {TAG: "path", "value": str(x)}
        if id(x) in self._stack:
            raise self.refuse(path, x, "a value that contains itself")
        self._stack.add(id(x))
        try:
            return self._container(x, t, path)
        finally:
            self._stack.discard(id(x))

    def _container(self, x: Any, t: type, path: str) -> Any:
        if t is list:
            return [self.value(v, f"{path}[{i}]") for i, v in enumerate(x)]
        if t is tuple:
            return {
                TAG: "tuple",
                "items": [self.value(v, f"{path}[{i}]") for i, v in enumerate(x)],
            }
        if isinstance(x, tuple) and hasattr(t, "_fields"):
            if not _allowed_class(t):
                raise self.refuse(path, x, "a named tuple from outside vrg_analysis")
            items = [self.value(v, f"{path}.{n}") for n, v in zip(t._fields, x, strict=True)]
            return {TAG: "namedtuple", "class": class_name(t), "items": items}
        if t is dict or t is MappingProxyType:
            out = self._dict(x, path)
            return {TAG: "mappingproxy", "value": out} if t is MappingProxyType else out
        if t is set or t is frozenset:
            items = [self.value(v, f"{path}{{{i}}}") for i, v in enumerate(x)]
            return {TAG: t.__name__, "items": items}
        if t is np.ndarray:
            return self.array(x, path)
        if isinstance(x, torch.nn.Module):
            raise self.refuse(path, x, "a live torch model")
        if isinstance(x, torch.Tensor):
            return self._tensor(x, path)
        if t is pd.DataFrame:
            return self.frame(x, path)
        if t is pd.Series:
            return self.series(x, path)
        if isinstance(x, pd.Index):
            return self.index(x, path)
        if dataclasses.is_dataclass(x) and not isinstance(x, type):
            if not _allowed_class(t):
                raise self.refuse(path, x, "a dataclass from outside vrg_analysis")
            names = [f.name for f in dataclasses.fields(x)]
            fields = {n: self.value(getattr(x, n), f"{path}.{n}") for n in names}
            out = {TAG: "dataclass", "class": class_name(t), "fields": fields}
            extra = {k: v for k, v in getattr(x, "__dict__", {}).items() if k not in fields}
            if extra:
                out["attributes"] = {k: self.value(v, f"{path}.{k}") for k, v in extra.items()}
            return out
        if callable(x):
            raise self.refuse(path, x, "a function or other callable")
        raise self.refuse(path, x, "a value of a type the codec does not store")

    def _dict(self, x: Mapping[Any, Any], path: str) -> Any:
        if all(type(k) is str for k in x) and TAG not in x:
            return {k: self.value(v, f"{path}[{k!r}]") for k, v in x.items()}
        items = [
            [self.value(k, f"{path}.keys[{i}]"), self.value(v, f"{path}[{k!r}]")]
            for i, (k, v) in enumerate(x.items())
        ]
        return {TAG: "dict", "items": items}

    def _tensor(self, x: torch.Tensor, path: str) -> dict[str, Any]:
        if x.requires_grad:
            raise self.refuse(path, x, "a tensor that requires grad (a model's parameter?)")
        if x.layout != torch.strided or x.is_quantized:
            raise self.refuse(path, x, f"a {x.layout} tensor")
        t = x.detach().cpu()
        if t.dtype == torch.bfloat16:
            t = t.float()  # exact: bfloat16 is a truncated float32
        return {
            TAG: "tensor",
            "dtype": str(x.dtype).removeprefix("torch."),
            "array": self.array(t.numpy(), path, flags=False),
        }


def encode(value: Any, *, root: str = "result", inline_arrays: bool = False) -> Encoded:
    """``value`` as JSON data and a set of arrays, losslessly (see the module docstring); raises
    ``TypeError`` naming the path (from ``root``) of anything that has no data representation.

    With ``inline_arrays`` every array is written in full in the JSON, whatever its size, and
    ``arrays`` is empty: the document alone holds the value (how a chapter's ``Params`` are
    stored and keyed, so that the key covers every element); an array whose dtype has no exact
    JSON form (complex, bytes, dates, ...) is then refused, naming its path."""
    enc = _Encoder(inline_arrays=inline_arrays)
    try:
        doc = enc.value(value, root)
    except _Refused as err:
        raise TypeError(str(err)) from None
    return Encoded(doc, dict(enc.arrays), dict(enc.paths))


class _Decoder:
    def __init__(self, arrays: Mapping[str, np.ndarray], source: str) -> None:
        self.arrays = arrays
        self.source = source
        self._memo: dict[str, np.ndarray] = {}

    def fail(self, path: str, why: str) -> ValueError:
        return ValueError(f"{self.source}: {path}: {why}")

    def cls(self, name: Any, path: str) -> type:
        if not isinstance(name, str) or ":" not in name:
            raise self.fail(path, f"malformed class name {name!r}")
        module, qualname = name.split(":", 1)
        inside = module == PACKAGE or module.startswith(PACKAGE + ".")
        if not inside or "__main__" in module.split(".") or "<" in qualname:
            raise self.fail(
                path, f"class {name!r} is not a vrg_analysis class; refusing to load it"
            )
        try:
            obj: Any = importlib.import_module(module)
            for part in qualname.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as err:
            raise self.fail(path, f"class {name!r} no longer exists ({err})") from err
        if not isinstance(obj, type):
            raise self.fail(path, f"{name!r} is not a class")
        return obj

    def array(self, d: Mapping[str, Any], path: str) -> np.ndarray:
        if "npz" in d:
            key = d["npz"]
            if key not in self._memo:
                if key not in self.arrays:
                    raise self.fail(path, f"array {key!r} is missing from the .npz")
                self._memo[key] = np.array(self.arrays[key])  # a private, writable copy
            a = self._memo[key]
        elif d.get("dtype") == "object":
            a = np.empty(len(d["items"]), dtype=object)
            for i, v in enumerate(d["items"]):
                a[i] = self.value(v, f"{path}.flat[{i}]")
            a = a.reshape(d["shape"])
        else:
            dtype = np.dtype(d["dtype"])
            data = [self.value(v, path) for v in d["data"]]
            a = np.array(data, dtype=dtype).reshape(d["shape"])
        if d.get("readonly"):
            a.flags.writeable = False
        return a

    def column(self, d: Mapping[str, Any], path: str) -> Any:
        kind = d.get("kind")
        if kind == "numpy":
            return self.array(d["array"], path)
        if kind == "object":
            items = [self.value(v, f"{path}[{i}]") for i, v in enumerate(d["items"])]
            out = np.empty(len(items), dtype=object)
            for i, v in enumerate(items):
                out[i] = v
            return out
        if kind == "categorical":
            cats = self.index(d["categories"], f"{path}.categories")
            codes = self.array(d["codes"], f"{path}.codes")
            return pd.Categorical.from_codes(codes, categories=cats, ordered=d["ordered"])
        items = [self.value(v, f"{path}[{i}]") for i, v in enumerate(d["items"])]
        if kind == "string":
            na = pd.NA if d["na_value"] == "NA" else np.nan
            return pd.array(items, dtype=pd.StringDtype(d["storage"], na_value=na))
        if kind == "extension":
            return pd.array(items, dtype=pd.api.types.pandas_dtype(d["dtype"]))
        raise self.fail(path, f"unknown column kind {kind!r}")

    def index(self, d: Mapping[str, Any], path: str) -> pd.Index:
        tag = d.get(TAG)
        if tag == "rangeindex":
            name = self.value(d["name"], path)
            return pd.RangeIndex(d["start"], d["stop"], d["step"], name=name)
        if tag == "multiindex":
            levels = [self.index(lv, f"{path}.levels") for lv in d["levels"]]
            codes = [self.array(c, f"{path}.codes") for c in d["codes"]]
            names = [self.value(n, f"{path}.names") for n in d["names"]]
            return pd.MultiIndex(levels=levels, codes=codes, names=names, verify_integrity=False)
        if tag == "index":
            values = self.column(d["values"], path)
            return pd.Index(values, dtype=values.dtype, name=self.value(d["name"], path))
        raise self.fail(path, f"expected an index, got {tag!r}")

    def frame(self, d: Mapping[str, Any], path: str) -> pd.DataFrame:
        idx = self.index(d["index"], f"{path}.index")
        cols = self.index(d["columns"], f"{path}.columns")
        data = [self.column(c, f"{path}[{i}]") for i, c in enumerate(d["data"])]
        if len(data) != len(cols):
            raise self.fail(path, f"{len(data)} columns of data for {len(cols)} column labels")
        df = pd.DataFrame(
            {i: pd.Series(v, index=idx, dtype=v.dtype, copy=False) for i, v in enumerate(data)},
            index=idx,
        )
        df.columns = cols
        if "attrs" in d:
            df.attrs = self.value(d["attrs"], f"{path}.attrs")
        return df

    def value(self, d: Any, path: str) -> Any:
        if d is None or isinstance(d, bool | int | float | str):
            return d
        if isinstance(d, list):
            return [self.value(v, f"{path}[{i}]") for i, v in enumerate(d)]
        if not isinstance(d, dict):
            raise self.fail(path, f"unexpected JSON value of type {type(d).__name__}")
        tag = d.get(TAG)
        if tag is None:
            return {k: self.value(v, f"{path}[{k!r}]") for k, v in d.items()}
        try:
            return self._tagged(tag, d, path)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError) as err:
            if isinstance(err, ValueError) and str(err).startswith(self.source):
                raise
            raise self.fail(path, f"malformed {tag!r} entry ({type(err).__name__}: {err})") from err

    def _tagged(self, tag: str, d: dict[str, Any], path: str) -> Any:
        if tag == "float":
            return float(d["value"])
        if tag == "tuple":
            return tuple(self.value(v, f"{path}[{i}]") for i, v in enumerate(d["items"]))
        if tag == "dict":
            return {
                self._key(self.value(k, f"{path}.keys")): self.value(v, f"{path}[{i}]")
                for i, (k, v) in enumerate(d["items"])
            }
        if tag == "mappingproxy":
            return MappingProxyType(self.value(d["value"], path))
        if tag in ("set", "frozenset"):
            items = [self._key(self.value(v, path)) for v in d["items"]]
            return set(items) if tag == "set" else frozenset(items)
        if tag == "ndarray":
            return self.array(d, path)
        if tag == "npscalar":
            return self.array(d["array"], path)[()]
        if tag == "tensor":
            arr = self.array(d["array"], path)
            dtype = getattr(torch, d["dtype"])
            return torch.from_numpy(np.array(arr)).to(dtype)
        if tag == "dataframe":
            return self.frame(d, path)
        if tag == "series":
            values = self.column(d["values"], path)
            s = pd.Series(
                values,
                index=self.index(d["index"], f"{path}.index"),
                dtype=values.dtype,
                name=self.value(d["name"], path),
                copy=False,
            )
            if "attrs" in d:
                s.attrs = self.value(d["attrs"], f"{path}.attrs")
            return s
        if tag in ("index", "rangeindex", "multiindex"):
            return self.index(d, path)
        if tag == "complex":
            return complex(self.value(d["real"], path), self.value(d["imag"], path))
        if tag == "NA":
            return pd.NA
        if tag == "NaT":
            return pd.NaT
        if tag == "bytes":
            return bytes.fromhex(d["hex"])
        if tag == "path":
            return Path(d["value"])
        if tag == "enum":
            cls = self.cls(d["class"], path)
            if not issubclass(cls, enum.Enum):
                raise self.fail(path, f"{d['class']!r} is not an enum")
            return cls[d["name"]]
        if tag == "namedtuple":
            cls = self.cls(d["class"], path)
            if not (issubclass(cls, tuple) and hasattr(cls, "_fields")):
                raise self.fail(path, f"{d['class']!r} is not a named tuple")
            return cls(*(self.value(v, path) for v in d["items"]))
        if tag == "dataclass":
            return self.dataclass(d, path)
        raise self.fail(path, f"unknown entry type {tag!r}")

    @staticmethod
    def _key(k: Any) -> Any:
        return tuple(k) if isinstance(k, list) else k

    def dataclass(self, d: Mapping[str, Any], path: str) -> Any:
        cls = self.cls(d["class"], path)
        if not dataclasses.is_dataclass(cls):
            raise self.fail(path, f"{d['class']!r} is not a dataclass")
        names = [f.name for f in dataclasses.fields(cls)]
        stored = d["fields"]
        missing = [n for n in names if n not in stored]
        unknown = [n for n in stored if n not in names]
        if missing or unknown:
            raise self.fail(
                path,
                f"the fields of {d['class']} changed since the artifact was written (missing: "
                f"{', '.join(missing) or 'none'}; no longer there: {', '.join(unknown) or 'none'})",
            )
        obj = cls.__new__(cls)  # as pickle does: the stored state, no __init__ re-run
        for n in names:
            object.__setattr__(obj, n, self.value(stored[n], f"{path}.{n}"))
        for n, v in d.get("attributes", {}).items():
            object.__setattr__(obj, n, self.value(v, f"{path}.{n}"))
        return obj


def decode(
    document: Any,
    arrays: Mapping[str, np.ndarray] | None = None,
    *,
    source: str = "<memory>",
    root: str = "result",
) -> Any:
    """The value :func:`encode` encoded. Only classes of ``vrg_analysis`` are rebuilt (dataclasses
    from their stored fields, without re-running ``__init__``); any other class, a field set that
    no longer matches the class, or a malformed entry is refused with a ``ValueError`` naming
    ``source`` (the file) and the path of the entry (from ``root``)."""
    return _Decoder(arrays or {}, source).value(document, root)


def load_class(name: Any, *, source: str = "<memory>", root: str = "result") -> type:
    """The class a document names (``"module:qualname"``, :func:`class_name`), imported with the
    checks :func:`decode` applies: anything but an existing ``vrg_analysis`` class is refused with
    a ``ValueError`` naming ``source`` and ``root``."""
    return _Decoder({}, source).cls(name, root)


def canonical_json(doc: Any) -> bytes:
    """A JSON document as canonical bytes (sorted keys, no spaces, no NaN), for hashing."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()
