"""Shared fixtures: the official reference data, where it is available beside the checkout."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vrg_analysis.resources import official_reference_dir

# The official VRG files (github.com/shifengxu/VRG, commit f771b57) are under a non-commercial
# licence and are never committed here: they are read from ../shared when present (as in CI), or
# from $VRG_REFERENCE_DIR. Tests that need only a few numbers embed them instead.


@pytest.fixture(scope="session")
def official_dir() -> Path:
    d = official_reference_dir()
    if d is None:
        pytest.skip("official VRG reference files not found (set VRG_REFERENCE_DIR)")
    return d


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny convolutions are dominated by thread overhead on a shared CPU: run them on one."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(autouse=True, scope="session")
def _private_artifact_cache(tmp_path_factory):
    """The tests' artifact cache is their own (a session folder), never the book's or the user's."""
    old = os.environ.get("VRG_CACHE_DIR")
    os.environ["VRG_CACHE_DIR"] = str(tmp_path_factory.mktemp("artifact-cache"))
    yield
    if old is None:
        os.environ.pop("VRG_CACHE_DIR", None)
    else:
        os.environ["VRG_CACHE_DIR"] = old
