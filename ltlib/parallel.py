"""Process-level parallelism for grids of small CPU jobs (the mini world's runs).

On a 2-core machine two single-threaded processes beat one two-threaded process by a wide margin for
these tiny models (intra-op threading costs more than it gains), and results do not depend on the
thread count. Workers are spawned (not forked: forking a process that has used torch's thread pools
can deadlock) and run with one torch thread.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any, Callable, Iterable, TypeVar

import torch

T = TypeVar("T")
R = TypeVar("R")


@contextmanager
def torch_threads(num_threads: int) -> Iterator[None]:
    """Run the block with ``num_threads`` intra-op threads, then restore the previous setting.

    Why: the mini world's renderer and tiny CLIPs issue many small tensor ops. On a 2-core machine whose
    other core is busy, every parallel op waits for a descheduled worker thread: measured here, rendering
    ran at ~10,000 images/s on one thread and ~500 on two. One thread also makes pre-trained weights
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


def default_workers() -> int:
    """Worker processes to use: ``$LTLIB_WORKERS`` if set, else the number of CPU cores (at most 8)."""
    return int(os.environ.get("LTLIB_WORKERS", min(os.cpu_count() or 1, 8)))


def _init_worker() -> None:
    torch.set_num_threads(1)


def run_parallel(fn: Callable[[T], R], items: Iterable[T], workers: int | None = None) -> list[R]:
    """``[fn(item) for item in items]`` over single-threaded worker processes, results in input order.

    ``fn`` must be a module-level function and items picklable. With ``workers <= 1`` (or one item)
    everything runs in this process, single-threaded, which is also the path errors are easiest to read in.
    """
    items = list(items)
    workers = default_workers() if workers is None else workers
    if workers <= 1 or len(items) <= 1:
        with torch_threads(1):
            return [fn(item) for item in items]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(min(workers, len(items)), mp_context=context, initializer=_init_worker) as pool:
        return list(pool.map(fn, items))


def call(job: tuple[Callable[..., Any], tuple, dict]) -> Any:
    """Helper for :func:`run_parallel` over heterogeneous calls: ``job = (function, args, kwargs)``."""
    function, args, kwargs = job
    return function(*args, **kwargs)
