"""Process-level parallelism for grids of small CPU jobs (the mini world's runs).

On a 2-core machine two single-threaded processes beat one two-threaded process by a wide margin for
these tiny models (intra-op threading costs more than it gains), and results do not depend on the
thread count. Workers are spawned (not forked: forking a process that has used torch's thread pools
can deadlock) and run with one torch thread.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable, Iterable, TypeVar

import torch

T = TypeVar("T")
R = TypeVar("R")


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
        previous = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return [fn(item) for item in items]
        finally:
            torch.set_num_threads(previous)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(min(workers, len(items)), mp_context=context, initializer=_init_worker) as pool:
        return list(pool.map(fn, items))


def call(job: tuple[Callable[..., Any], tuple, dict]) -> Any:
    """Helper for :func:`run_parallel` over heterogeneous calls: ``job = (function, args, kwargs)``."""
    function, args, kwargs = job
    return function(*args, **kwargs)
