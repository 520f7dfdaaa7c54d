"""torch's intra-op thread count for one block of work, restored afterwards (a trial's or an
extractor's setting must not leak into the process that called it: tests, the local executor)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with `n` threads (None: leave torch's count as it is)."""
    import torch

    previous = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
