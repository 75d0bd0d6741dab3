"""Artifacts on disk: atomic writers, provenance metadata, and the official VRG file formats.

Every writer writes to a temporary file in the destination folder and renames it into place, so an
interrupted run never leaves a half-written file (the design page, conventions).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import platform
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from vrg_analysis._version import __version__

if TYPE_CHECKING:
    import torch

__all__ = [
    "atomic_write_text",
    "atomic_open",
    "sha256_file",
    "sha256_array",
    "load_verified_state_dict",
    "read_idx",
    "read_json_object",
    "provenance",
    "read_official_columns",
    "read_official_trajectory_values",
    "load_user_data",
    "IMAGE_SUFFIXES",
]

logger = logging.getLogger(__name__)


@contextmanager
def atomic_open(path: Path, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file beside ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once at import: os.umask is process-wide, not thread-safe


def atomic_write_text(path: Path, text: str) -> Path:
    with atomic_open(path, "w") as fh:
        fh.write(text)
    return Path(path)


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_json_object(path: str | Path, what: str = "JSON file") -> dict[str, Any]:
    """A JSON object from ``path``; missing file, invalid JSON or a non-object each get a clear
    error naming ``what`` and the path."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {str(path)!r} not found")
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{what} {str(path)!r} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{what} {str(path)!r}: expected a JSON object, got {type(data).__name__}")
    return data


def load_verified_state_dict(path: str | Path, expected_sha256: str) -> dict[str, Any]:
    """``torch.load(weights_only=True)`` of the very bytes whose sha256 was checked.

    The file is read once: hashing it and then opening it again would let it change in between.
    A mismatch raises ``ValueError`` naming both digests.
    """
    import io as _io

    import torch

    path = Path(path)
    blob = path.read_bytes()
    actual = hashlib.sha256(blob).hexdigest()
    if actual != expected_sha256:
        raise ValueError(
            f"{path}: sha256 {actual} does not match the card's {expected_sha256} "
            "(file modified or card from another run)"
        )
    state = torch.load(_io.BytesIO(blob), map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"{path} does not hold a state_dict (got {type(state).__name__})")
    return state


def sha256_array(arr: NDArray) -> str:
    a = np.ascontiguousarray(arr)
    h = hashlib.sha256()
    h.update(str(a.dtype).encode())
    h.update(str(a.shape).encode())
    h.update(a.tobytes())
    return h.hexdigest()


def provenance() -> dict[str, str]:
    """Package and interpreter versions recorded in every artifact."""
    info = {
        "vrg_analysis": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
    }
    try:
        import torch

        info["torch"] = torch.__version__
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return info


def _text_lines(path: Path) -> list[str]:
    """The lines of a UTF-8 text file; a directory, a binary file or another encoding is refused
    with the path named."""
    if path.is_dir():
        raise ValueError(f"{path} is a folder, not a text file")
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read().splitlines()
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{path}: not a UTF-8 text file (byte {exc.start}: {exc.reason}); a binary file, or "
            "text in another encoding (e.g. UTF-16): save it as UTF-8"
        ) from exc


def _data_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, stripped text) of every non-empty, non-comment line."""
    for lineno, raw in enumerate(_text_lines(path), start=1):
        line = raw.strip()
        if line and not line.startswith("#"):
            if "\x00" in line:
                raise ValueError(f"{path}:{lineno}: holds a NUL byte: not a text file")
            yield lineno, line


def _header_field(path: Path, key: str) -> str | None:
    """Value of a ``# key : value`` header line of an official file, if present."""
    for raw in _text_lines(path):
        if not raw.strip():
            continue
        if not raw.startswith("#"):
            break
        body = raw[1:].strip()
        if ":" in body:
            k, v = body.split(":", 1)
            if k.strip() == key:
                return v.strip()
    return None


def read_official_columns(
    path: str | Path, ncols: int
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Rows of whitespace-separated numbers (comments ``#`` skipped) as an ``(n, ncols)`` array,
    with the 1-based line number of each row (for error messages)."""
    path = Path(path)
    rows: list[list[float]] = []
    linenos: list[int] = []
    for lineno, line in _data_lines(path):
        parts = line.split()
        if len(parts) != ncols:
            raise ValueError(
                f"{path}:{lineno}: expected {ncols} columns, found {len(parts)}: {line!r}"
            )
        try:
            values = [float(p) for p in parts]
        except ValueError as exc:
            raise ValueError(f"{path}:{lineno}: not a number in {line!r}") from exc
        if not all(np.isfinite(values)):
            raise ValueError(f"{path}:{lineno}: non-finite value in {line!r}")
        rows.append(values)
        linenos.append(lineno)
    if not rows:
        raise ValueError(f"{path}: no data rows found (empty or truncated file)")
    return np.asarray(rows, dtype=np.float64), np.asarray(linenos, dtype=np.int64)


def read_official_trajectory_values(
    path: str | Path, first_is_t0: bool | None = None
) -> tuple[NDArray[np.float64], bool, NDArray[np.int64]]:
    """alpha_bar values of an official trajectory file, least noisy first, as written.

    Two layouts exist: the DPM-Solver files (one value a line, the first belonging to timestep 0,
    with a ``# steps : K`` header) and the optimiser's output (``alpha_bar : ts: ...`` lines, every
    value a step). Returns the values and whether the first one is the timestep-0 entry. When the
    header states ``steps``, the count decides (so a truncated file is reported as such). A file
    of bare values with no ``steps`` header is ambiguous (is the first value a step?): it is
    refused unless ``first_is_t0`` says which it is.
    """
    path = Path(path)
    values: list[float] = []
    linenos: list[int] = []
    detailed: bool | None = None
    for lineno, line in _data_lines(path):
        is_detailed = ":" in line
        if detailed is None:
            detailed = is_detailed
        elif detailed != is_detailed:
            raise ValueError(f"{path}:{lineno}: mixes the two trajectory layouts: {line!r}")
        token = line.split(":", 1)[0].strip() if is_detailed else line
        try:
            v = float(token)
        except ValueError as exc:
            raise ValueError(f"{path}:{lineno}: not an alpha_bar value: {line!r}") from exc
        values.append(v)
        linenos.append(lineno)
    if not values:
        raise ValueError(f"{path}: no alpha_bar values found (empty or truncated file)")
    has_t0 = not detailed
    steps = _header_field(path, "steps")
    if first_is_t0 is not None:
        has_t0 = bool(first_is_t0)
    elif not detailed and steps is None:
        raise ValueError(
            f"{path}: {len(values)} bare alpha_bar values and no '# steps : K' header, so it is "
            "ambiguous whether the first value is the timestep-0 entry of a DPM-Solver file "
            "(not a step) or a step: add the header, or pass first_is_t0=True/False "
            "(command line: --first-is-t0 / --all-steps)"
        )
    if steps is not None:
        try:
            expected = int(steps) + (1 if has_t0 else 0)
        except ValueError as exc:
            raise ValueError(f"{path}: header 'steps' is not an integer: {steps!r}") from exc
        if len(values) != expected:
            raise ValueError(
                f"{path}: header says {steps} steps, so {expected} values, but found {len(values)}"
                " (truncated or malformed file)"
            )
    return np.asarray(values, dtype=np.float64), has_t0, np.asarray(linenos, dtype=np.int64)


# --------------------------------------------------------------------------- user data
#: Image file suffixes :func:`load_user_data` reads from a folder (case-insensitive).
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg")
_ARRAY_SUFFIXES = (".npz", ".npy")
#: an IDX file (LeCun's MNIST format) by its usual names: ``*-idx3-ubyte[.gz]``, ``*.idx[.gz]``
_IDX_NAME = re.compile(r"(idx\d-ubyte|\.idx)(\.gz)?$", re.IGNORECASE)


def read_idx(path: str | Path) -> NDArray[np.uint8]:
    """Read an IDX file (LeCun's MNIST format; gzip-compressed when the name ends in ``.gz``).

    Only unsigned-byte data (type code 0x08) is accepted; the magic number, the dimension count
    and the payload length are checked, and a mismatch names the file.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:
        raise ValueError(f"{path}: cannot read the IDX file ({exc})") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path}: not an IDX file (bad magic number)")
    if raw[2] != 0x08:
        raise ValueError(f"{path}: IDX type code 0x{raw[2]:02x} is not unsigned bytes (0x08)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim < 1 or len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header ({ndim} dimensions)")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    size = int(np.prod(shape))
    if len(raw) - header != size:
        raise ValueError(
            f"{path}: IDX payload has {len(raw) - header} bytes, the header's shape {shape} "
            f"needs {size}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _check_value_range(value_range: object) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value_range)  # type: ignore[attr-defined]
    except (TypeError, ValueError) as exc:
        raise TypeError(f"value_range must be a pair of numbers, got {value_range!r}") from exc
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"value_range must be finite with low < high, got {value_range!r}")
    return lo, hi


def _check_expected_shape(expected_shape: object) -> tuple[int, int, int] | None:
    if expected_shape is None:
        return None
    try:
        shape = tuple(expected_shape)  # type: ignore[call-overload]
    except TypeError as exc:
        raise TypeError(f"expected_shape must be (C, H, W), got {expected_shape!r}") from exc
    if len(shape) != 3 or not all(
        isinstance(s, int | np.integer) and not isinstance(s, bool) and s > 0 for s in shape
    ):
        raise ValueError(f"expected_shape must be three positive integers (C, H, W), got {shape!r}")
    return int(shape[0]), int(shape[1]), int(shape[2])


def _read_array_file(path: Path) -> NDArray:
    try:
        if path.suffix.lower() == ".npy":
            return np.load(path, allow_pickle=False)
        with np.load(path, allow_pickle=False) as npz:
            keys = list(npz.files)
            if "x" in keys:
                return npz["x"]
            if len(keys) == 1:
                return npz[keys[0]]
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read array file {str(path)!r}: {exc}") from exc
    raise ValueError(
        f"{str(path)!r} holds arrays {keys}; expected one under key 'x' or a single array"
    )


def _read_image_folder(folder: Path) -> NDArray[np.uint8]:
    from PIL import Image, UnidentifiedImageError

    files = sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not files:
        raise ValueError(
            f"no images in folder {str(folder)!r} (looked for {', '.join(IMAGE_SUFFIXES)} files)"
        )
    images: list[NDArray[np.uint8]] = []
    first: tuple[str, tuple[int, ...]] | None = None
    for p in files:
        try:
            with Image.open(p) as im:
                im.load()
                mode = im.mode
                if mode in ("1", "L"):
                    arr = np.asarray(im.convert("L"), dtype=np.uint8)[None]
                elif mode in ("RGB", "P"):
                    arr = np.asarray(im.convert("RGB"), dtype=np.uint8).transpose(2, 0, 1)
                elif mode in ("LA", "RGBA"):
                    alpha = np.asarray(im.getchannel("A"))
                    if alpha.min() < 255:
                        raise ValueError(
                            f"image {str(p)!r} has a transparent alpha channel (mode {mode}); "
                            "expected grayscale or RGB"
                        )
                    target = "L" if mode == "LA" else "RGB"
                    arr = np.asarray(im.convert(target), dtype=np.uint8)
                    arr = arr[None] if target == "L" else arr.transpose(2, 0, 1)
                else:
                    raise ValueError(
                        f"image {str(p)!r} has unsupported mode {mode!r}; "
                        "expected 8-bit grayscale or RGB"
                    )
        except (OSError, UnidentifiedImageError) as exc:
            raise ValueError(f"cannot read image {str(p)!r}: {exc}") from exc
        if first is None:
            first = (p.name, arr.shape)
        elif arr.shape != first[1]:
            raise ValueError(
                f"image {str(p)!r} has shape (C, H, W) = {arr.shape}, but {first[0]!r} has "
                f"{first[1]}; all images in the folder must have the same size and channels"
            )
        images.append(arr)
    logger.info("read %d images of shape %s from %s", len(images), images[0].shape, folder)
    return np.stack(images)


def load_user_data(
    path: str | os.PathLike[str],
    *,
    expected_shape: tuple[int, int, int] | None = None,
    value_range: tuple[float, float] = (-1.0, 1.0),
) -> torch.Tensor:
    """A user's data set for profiling (Algorithm 1) as a float32 ``[n, C, H, W]`` tensor.

    ``path`` is an ``.npz`` file (the array under key ``x``, or its only array), an ``.npy`` file,
    an IDX images file (``*-idx3-ubyte`` or ``*.idx``, gzip-compressed when it ends in ``.gz``: the
    format Fashion-MNIST and MNIST ship in, e.g. Debian's
    ``/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz``), or a folder of PNG / JPEG
    images (grayscale or RGB, all the same size, read in sorted file-name order). Arrays are
    ``[n, C, H, W]``, ``[n, H, W]`` (one channel) or channels-last ``[n, H, W, C]``, recognised when
    ``expected_shape`` says so or, without it, when the last axis has 1, 3 or 4 entries and the
    second does not.

    ``uint8`` data (all images) is mapped linearly from ``[0, 255]`` onto ``value_range``
    (``[-1, 1]`` by default, the DDPM convention). Floating-point (or other integer) data must
    already lie in ``value_range``: otherwise a ``ValueError`` names its min and max. NaN or
    infinite values, an empty data set, and a per-sample shape other than ``expected_shape``
    ``(C, H, W)`` are ``ValueError`` as well.
    """
    import torch

    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    lo, hi = _check_value_range(value_range)
    shape = _check_expected_shape(expected_shape)
    p = Path(path)
    if p.is_dir():
        arr: NDArray = _read_image_folder(p)
    elif p.is_file():
        if _IDX_NAME.search(p.name):
            arr = read_idx(p)
            if arr.ndim < 3:
                raise ValueError(
                    f"{p}: an IDX file of shape {arr.shape} holds no images (a labels file?); "
                    "give the images file (e.g. train-images-idx3-ubyte.gz)"
                )
        elif p.suffix.lower() in _ARRAY_SUFFIXES:
            arr = _read_array_file(p)
        else:
            raise ValueError(
                f"unsupported data file {str(p)!r}; expected .npz, .npy, an IDX images file "
                "(*-idx3-ubyte[.gz], as Fashion-MNIST and MNIST ship) or a folder of images"
            )
    else:
        raise FileNotFoundError(f"user data {str(p)!r} does not exist")

    if arr.dtype.kind not in "fiub":
        raise ValueError(f"{str(p)!r}: data of dtype {arr.dtype} is not numeric")
    if arr.ndim == 3:
        arr = arr[:, None]
    if arr.ndim != 4:
        raise ValueError(
            f"{str(p)!r}: data has shape {arr.shape}; expected [n, C, H, W], [n, H, W] "
            "or [n, H, W, C]"
        )
    if arr.shape[0] == 0:
        raise ValueError(f"{str(p)!r}: the data set is empty (shape {arr.shape})")
    channels_last = (
        shape is not None
        and arr.shape[1:] != shape
        and arr.shape[1:] == (shape[1], shape[2], shape[0])
    ) or (shape is None and arr.shape[3] in (1, 3, 4) and arr.shape[1] not in (1, 3, 4))
    if channels_last:
        logger.info("%s: reading shape %s as channels-last [n, H, W, C]", p, arr.shape)
        arr = arr.transpose(0, 3, 1, 2)
    if shape is not None and arr.shape[1:] != shape:
        raise ValueError(
            f"{str(p)!r}: samples have shape (C, H, W) = {tuple(arr.shape[1:])}, but the model "
            f"expects {shape}"
        )

    if arr.dtype == np.uint8:
        x = lo + (hi - lo) * (arr.astype(np.float64) / 255.0)
    else:
        x = arr.astype(np.float64)
        finite = np.isfinite(x)
        if not finite.all():
            n_bad = int((~finite).sum())
            first = np.unravel_index(int(np.flatnonzero(~finite)[0]), x.shape)
            raise ValueError(
                f"{str(p)!r}: {n_bad} NaN or infinite value(s), the first in sample {first[0]}"
            )
        xmin, xmax = float(x.min()), float(x.max())
        tol = 1e-6 * (hi - lo)
        if xmin < lo - tol or xmax > hi + tol:
            hint = ""
            if xmin >= 0.0 and xmax > 1.0 + tol and xmax <= 255.0:
                hint = " (looks like [0, 255] pixel values: pass uint8 data or rescale)"
            raise ValueError(
                f"{str(p)!r}: values span [{xmin:.6g}, {xmax:.6g}], outside value_range "
                f"[{lo:g}, {hi:g}]{hint}"
            )
        if lo < 0.0 < hi and xmin >= 0.0:
            # in range, yet only the non-negative part of it: most likely [0, 1] data
            logger.warning(
                "%s: values span [%.6g, %.6g], none below 0 although value_range is [%g, %g]; "
                "if this is [0, 1] data, rescale it with 2 * x - 1",
                p, xmin, xmax, lo, hi,
            )  # fmt: skip
        x = np.clip(x, lo, hi)
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
