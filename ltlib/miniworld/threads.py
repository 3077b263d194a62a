"""Torch's intra-op thread count for the mini world's CPU work (rendering, pre-training)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def torch_threads(num_threads: int) -> Iterator[None]:
    """Run the block with ``num_threads`` intra-op threads, then restore the previous setting.

    Why: the renderer and the tiny CLIPs issue many small tensor ops. On a 2-core machine whose other
    core is busy, every parallel op waits for a descheduled worker thread: measured here, rendering ran
    at ~10,000 images/s on one thread and ~500 on two. One thread also makes the pre-trained weights
    independent of the machine's core count.

    Args:
        num_threads: threads to use inside the block (≥ 1).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
