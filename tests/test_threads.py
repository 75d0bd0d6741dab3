"""The one thread limit: it applies to torch and to BLAS, restores both, and refuses bad counts."""

from __future__ import annotations

import pytest
import torch
from threadpoolctl import threadpool_info

from vrg_analysis.threads import limit_threads


def test_limit_applies_and_restores() -> None:
    before = torch.get_num_threads()
    with limit_threads(1):
        assert torch.get_num_threads() == 1
        assert all(p["num_threads"] == 1 for p in threadpool_info())
    assert torch.get_num_threads() == before
    with limit_threads(None):
        assert torch.get_num_threads() == before


def test_limit_restores_after_an_error() -> None:
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError), limit_threads(1):
        raise RuntimeError("inside")
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("n", [0, -1, 1.5, True, "2"])
def test_bad_counts_are_refused(n: object) -> None:
    with pytest.raises((ValueError, TypeError), match="thread count|invalid literal|not supported"):
        with limit_threads(n):  # type: ignore[arg-type]
            pass
