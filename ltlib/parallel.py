"""Process-level parallelism for grids of small CPU jobs (the mini world's runs).

On a 2-core machine two single-threaded processes beat one two-threaded process by a wide margin for
these tiny models (intra-op threading costs more than it gains), and results do not depend on the
thread count. Workers run with one torch thread and are never forked from the caller (forking a process
that has used torch's thread pools can deadlock): they come from a fork server, a clean single-threaded
process started once per caller that has imported torch, open_clip and the mini world's modules
(:data:`PRELOAD`), so a worker starts in milliseconds instead of re-importing them (seconds each, every
pool of every notebook). A worker takes the caller's environment at the pool's start (the fork server's
own is the caller's when the server started). Where there is no fork server (Windows), workers are
spawned.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any, Callable, Iterable, TypeVar

import torch

from .errors import ConfigError
from .phases import PARENT_VARIABLE, WORKER_STARTUP, phase, record_startup

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


# Imported once by the fork server; every worker forked from it starts with them. What the pools run.
PRELOAD = ("torch", "open_clip", "ltlib.miniworld.world", "ltlib.miniworld.experiments",
           "ltlib.miniworld.confounding")


START_METHOD_VARIABLE = "LTLIB_START_METHOD"  # "forkserver" (the default where there is one) or "spawn"


def _context() -> multiprocessing.context.BaseContext:
    """The fork-server context with :data:`PRELOAD` (its server started on first use), else spawn.

    The fork server keeps the ltlib it imported for the life of the calling process: after editing ltlib in
    a running Jupyter kernel, restart the kernel, or set ``LTLIB_START_METHOD=spawn`` (every pool imports
    afresh, seconds per worker).

    Raises:
        ConfigError: ``LTLIB_START_METHOD`` is neither ``forkserver`` nor ``spawn``.
    """
    method = os.environ.get(START_METHOD_VARIABLE, "").strip() or "forkserver"
    if method not in ("forkserver", "spawn"):
        raise ConfigError(f"{START_METHOD_VARIABLE}={method!r}: expected 'forkserver' or 'spawn'")
    if method == "spawn" or "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    if os.getpid() not in _SERVED:
        context.set_forkserver_preload(list(PRELOAD))
        with phase(WORKER_STARTUP, detail="fork server"):  # its imports, once per process
            # The server outlives the phase that starts it: without the caller's phase, its own import of
            # ltlib.phases records no start-up (each worker records its own, _init_worker).
            parent = os.environ.pop(PARENT_VARIABLE, None)
            try:
                multiprocessing.forkserver.ensure_running()
            finally:
                if parent is not None:
                    os.environ[PARENT_VARIABLE] = parent
            probe = context.Process(target=_nothing)  # returns once the server has imported PRELOAD
            probe.start()
            probe.join()
        _SERVED.add(os.getpid())
    return context


def start_fork_server() -> None:
    """Start this process's fork server now (it imports :data:`PRELOAD`) rather than at its first pool: a
    notebook kernel started ahead of its notebook does this while the previous notebook runs
    (``ltlib.book.runner``). Nothing to do under spawn or where there is no fork server."""
    _context()


_SERVED: set[int] = set()  # the processes whose fork server is running (a forked child needs its own)


def _nothing() -> None:
    """The fork server's readiness probe."""


def _init_worker(environment: dict[str, str]) -> None:
    """A worker's set-up: the caller's environment as the pool started (paths, the enclosing phase), one
    torch thread, and its ``worker start-up`` record (:func:`ltlib.phases.record_startup`)."""
    for name in set(os.environ) - set(environment):
        del os.environ[name]
    os.environ.update(environment)
    torch.set_num_threads(1)
    record_startup()


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
    with ProcessPoolExecutor(min(workers, len(items)), mp_context=_context(), initializer=_init_worker,
                             initargs=(dict(os.environ),)) as pool:
        return list(pool.map(fn, items))


def call(job: tuple[Callable[..., Any], tuple, dict]) -> Any:
    """Helper for :func:`run_parallel` over heterogeneous calls: ``job = (function, args, kwargs)``."""
    function, args, kwargs = job
    return function(*args, **kwargs)
