"""A user's data for profiling: image folders and arrays, with clear errors for bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vrg_analysis.io import load_user_data


def _png_folder(
    folder: Path, n: int, size: tuple[int, int] = (8, 6), mode: str = "L", seed: int = 0
) -> np.ndarray:
    """Write ``n`` random PNGs (width x height = size); return them as uint8 [n, C, H, W]."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    w, h = size
    shape = (h, w) if mode == "L" else (h, w, 3)
    arrays = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
    for i, a in enumerate(arrays):
        Image.fromarray(a, mode=mode).save(folder / f"img_{i:03d}.png")
    return arrays[:, None] if mode == "L" else arrays.transpose(0, 3, 1, 2)


def test_png_folder_grayscale(tmp_path: Path) -> None:
    ref = _png_folder(tmp_path / "imgs", 5)
    (tmp_path / "imgs" / "notes.txt").write_text("ignored")
    x = load_user_data(tmp_path / "imgs", expected_shape=(1, 6, 8))
    assert x.dtype == torch.float32 and x.shape == (5, 1, 6, 8)
    np.testing.assert_allclose(x.numpy(), ref / 127.5 - 1.0, rtol=0, atol=1e-6)
    assert float(x.min()) >= -1.0 and float(x.max()) <= 1.0


def test_png_folder_rgb_and_custom_range(tmp_path: Path) -> None:
    ref = _png_folder(tmp_path / "rgb", 3, size=(4, 4), mode="RGB")
    x = load_user_data(tmp_path / "rgb", value_range=(0.0, 1.0))
    assert x.shape == (3, 3, 4, 4)
    np.testing.assert_allclose(x.numpy(), ref / 255.0, rtol=0, atol=1e-6)


def test_jpeg_is_read(tmp_path: Path) -> None:
    (tmp_path / "j").mkdir()
    Image.fromarray(np.full((4, 4, 3), 200, np.uint8)).save(tmp_path / "j" / "a.JPG")
    x = load_user_data(tmp_path / "j")
    assert x.shape == (1, 3, 4, 4)
    np.testing.assert_allclose(x.numpy(), 200 / 127.5 - 1, atol=0.05)  # lossy


def test_mixed_sizes_name_the_first_mismatching_file(tmp_path: Path) -> None:
    _png_folder(tmp_path / "m", 2, size=(8, 8))
    Image.fromarray(np.zeros((7, 8), np.uint8)).save(tmp_path / "m" / "img_005.png")
    Image.fromarray(np.zeros((5, 8), np.uint8)).save(tmp_path / "m" / "img_009.png")
    with pytest.raises(ValueError, match=r"img_005\.png.*\(1, 7, 8\).*'img_000\.png'"):
        load_user_data(tmp_path / "m")


def test_mixed_gray_and_rgb(tmp_path: Path) -> None:
    _png_folder(tmp_path / "m", 1, size=(4, 4))
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "m" / "z.png")
    with pytest.raises(ValueError, match=r"z\.png.*same size and channels"):
        load_user_data(tmp_path / "m")


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "readme.md").write_text("no images")
    with pytest.raises(ValueError, match="no images in folder"):
        load_user_data(tmp_path / "e")


def test_unreadable_image(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"cannot read image .*broken\.png"):
        load_user_data(tmp_path / "b")


def test_npz_under_key_x_or_single_array(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    data = rng.uniform(-1, 1, size=(4, 1, 8, 8)).astype(np.float32)
    np.savez(tmp_path / "a.npz", x=data, labels=np.arange(4))
    np.savez(tmp_path / "b.npz", images=data)
    np.save(tmp_path / "c.npy", data.astype(np.float64))
    for name in ("a.npz", "b.npz", "c.npy"):
        x = load_user_data(tmp_path / name, expected_shape=(1, 8, 8))
        assert x.dtype == torch.float32
        np.testing.assert_array_equal(x.numpy(), data)


def test_npz_with_several_arrays_and_no_x(tmp_path: Path) -> None:
    np.savez(tmp_path / "a.npz", a=np.zeros((2, 1, 4, 4)), b=np.zeros(2))
    with pytest.raises(ValueError, match=r"holds arrays \['a', 'b'\].*key 'x'"):
        load_user_data(tmp_path / "a.npz")


def test_uint8_channels_last_and_hw_arrays(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    nhwc = rng.integers(0, 256, size=(3, 5, 5, 3), dtype=np.uint8)
    np.save(tmp_path / "nhwc.npy", nhwc)
    x = load_user_data(tmp_path / "nhwc.npy", expected_shape=(3, 5, 5))
    np.testing.assert_allclose(x.numpy(), nhwc.transpose(0, 3, 1, 2) / 127.5 - 1, atol=1e-6)
    np.save(tmp_path / "nhw.npy", np.zeros((2, 5, 5)))
    assert load_user_data(tmp_path / "nhw.npy").shape == (2, 1, 5, 5)


def test_bad_range_names_min_and_max(tmp_path: Path) -> None:
    np.savez(tmp_path / "r.npz", x=np.linspace(0, 255, 2 * 16).reshape(2, 1, 4, 4))
    with pytest.raises(ValueError, match=r"values span \[0, 255\].*\[-1, 1\].*\[0, 255\] pixel"):
        load_user_data(tmp_path / "r.npz")
    np.savez(tmp_path / "s.npz", x=np.linspace(-1.5, 0.5, 16).reshape(1, 1, 4, 4))
    with pytest.raises(ValueError, match=r"values span \[-1.5, 0.5\], outside value_range"):
        load_user_data(tmp_path / "s.npz")
    np.savez(tmp_path / "u.npz", x=np.linspace(0, 1, 16).reshape(1, 1, 4, 4))
    with pytest.raises(ValueError, match=r"values span \[0, 1\], outside value_range \[0, 0.5\]"):
        load_user_data(tmp_path / "u.npz", value_range=(0, 0.5))


def test_zero_one_data_in_minus_one_one_range_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    np.savez(tmp_path / "u.npz", x=np.linspace(0, 1, 16).reshape(1, 1, 4, 4))
    with caplog.at_level("WARNING", logger="vrg_analysis.io"):
        x = load_user_data(tmp_path / "u.npz")
    assert "2 * x - 1" in caplog.text
    assert float(x.max()) == 1.0
    caplog.clear()
    with caplog.at_level("WARNING", logger="vrg_analysis.io"):
        load_user_data(tmp_path / "u.npz", value_range=(0, 1))
    assert caplog.text == ""


def test_nan_is_refused(tmp_path: Path) -> None:
    data = np.zeros((3, 1, 4, 4))
    data[2, 0, 1, 1] = np.nan
    np.savez(tmp_path / "n.npz", x=data)
    with pytest.raises(ValueError, match=r"1 NaN or infinite value\(s\), the first in sample 2"):
        load_user_data(tmp_path / "n.npz")


def test_shape_mismatch(tmp_path: Path) -> None:
    np.savez(tmp_path / "s.npz", x=np.zeros((2, 1, 4, 4)))
    with pytest.raises(ValueError, match=r"\(C, H, W\) = \(1, 4, 4\).*expects \(3, 32, 32\)"):
        load_user_data(tmp_path / "s.npz", expected_shape=(3, 32, 32))
    _png_folder(tmp_path / "p", 1, size=(4, 4))
    with pytest.raises(ValueError, match=r"expects \(1, 8, 8\)"):
        load_user_data(tmp_path / "p", expected_shape=(1, 8, 8))


@pytest.mark.parametrize(
    ("make", "kwargs", "exc", "match"),
    [
        (lambda p: np.save(p / "d.npy", np.zeros((0, 1, 4, 4))), {}, ValueError, "empty"),
        (lambda p: np.save(p / "d.npy", np.zeros((4, 4))), {}, ValueError, "expected \\[n, C"),
        (lambda p: np.save(p / "d.npy", np.zeros((1, 1, 4, 4))), {"value_range": (1, 0)},
         ValueError, "low < high"),
        (lambda p: np.save(p / "d.npy", np.zeros((1, 1, 4, 4))), {"expected_shape": (1, 4)},
         ValueError, "three positive integers"),
        (lambda p: np.save(p / "d.npy", np.array(["a"])), {}, ValueError, "not numeric"),
        (lambda p: (p / "d.txt").write_text("1"), {}, ValueError, "unsupported data file"),
    ],
)  # fmt: skip
def test_bad_inputs(tmp_path: Path, make, kwargs: dict, exc: type, match: str) -> None:
    make(tmp_path)
    (target,) = [p for p in tmp_path.iterdir()]
    with pytest.raises(exc, match=match):
        load_user_data(target, **kwargs)


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_user_data(tmp_path / "nothing.npz")


def _write_idx(path: Path, arr: np.ndarray) -> None:
    """Write ``arr`` (uint8) in the IDX format, gzip-compressed when ``path`` ends in .gz."""
    import gzip

    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(d.to_bytes(4, "big") for d in arr.shape)
    data = header + arr.astype(np.uint8).tobytes()
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as fh:
            fh.write(data)
    else:
        path.write_bytes(data)


@pytest.mark.parametrize("name", ["train-images-idx3-ubyte.gz", "imgs-idx3-ubyte", "my.idx"])
def test_idx_images_are_read_like_the_fashion_mnist_files(tmp_path: Path, name: str) -> None:
    rng = np.random.default_rng(3)
    arr = rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    _write_idx(tmp_path / name, arr)
    x = load_user_data(tmp_path / name, expected_shape=(1, 28, 28))
    assert x.shape == (5, 1, 28, 28) and x.dtype == torch.float32
    np.testing.assert_allclose(x.numpy()[:, 0], arr / 127.5 - 1.0, atol=1e-6)


def test_idx_labels_file_and_truncated_idx_are_refused_naming_the_file(tmp_path: Path) -> None:
    _write_idx(tmp_path / "labels-idx1-ubyte", np.arange(10, dtype=np.uint8))
    with pytest.raises(ValueError, match=r"labels-idx1-ubyte.*labels file"):
        load_user_data(tmp_path / "labels-idx1-ubyte")
    bad = tmp_path / "cut-idx3-ubyte"
    _write_idx(bad, np.zeros((4, 6, 6), dtype=np.uint8))
    bad.write_bytes(bad.read_bytes()[:-5])
    with pytest.raises(ValueError, match=r"cut-idx3-ubyte: IDX payload has 139 bytes"):
        load_user_data(bad)


def test_the_shipped_fashion_mnist_test_images_load_when_installed() -> None:
    path = Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")
    if not path.is_file():
        pytest.skip("Debian's dataset-fashion-mnist is not installed (make data)")
    x = load_user_data(path, expected_shape=(1, 28, 28))
    assert x.shape == (10_000, 1, 28, 28)
    assert float(x.min()) == -1.0 and float(x.max()) == 1.0
