"""Thread limits for CPU work.

Many small tensor operations (a 2-D mixture's exact predictor, a solve over a few dozen ratios,
small batches on a few cores) run many times faster on one thread than on several when anything
else runs on the machine, and reductions on one thread add in one fixed order, so the same inputs
give the same bits whatever ``OMP_NUM_THREADS`` says.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from threadpoolctl import threadpool_limits

__all__ = ["limit_threads"]


@contextmanager
def limit_threads(n: int | None = 1) -> Iterator[None]:
    """Run the block on ``n`` torch threads and ``n`` BLAS/OpenMP threads (``threadpoolctl``),
    restoring both afterwards; ``None`` changes nothing."""
    if n is None:
        yield
        return
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"thread count must be a positive integer or None, got {n!r}")
    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        with threadpool_limits(int(n)):
            yield
    finally:
        torch.set_num_threads(old)
