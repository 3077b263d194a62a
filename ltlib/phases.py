"""Always-on, cheap phase timing: where the wall and CPU time of a build goes (the performance page).

``with phase("fine-tuning"):`` appends one JSON line to the file named by ``LTLIB_PHASES`` when the block
ends (nothing at all when the variable is unset): the phase, its start (Unix time), wall seconds, process
CPU seconds, the process id and the enclosing phase. The enclosing phase is passed to child processes
(notebook kernels, worker pools) through ``LTLIB_PHASE_PARENT``, so a summary can subtract a child's time
from its parent's (``ltlib.bench.profile``). ``with phase_part("data"):`` inside a phase adds to a
per-phase total instead of writing a line: for the steps of an inner loop, where one line per step would
cost more than the step.

A process that imports this module with a parent phase from another process also writes one start-up
record: from the process's creation to this import. It is a ``kernel start-up`` when the process is a
direct child of the one that opened the parent phase (the runner's ``notebook`` phase starts a kernel:
its start-up and the first cell's imports up to the first ltlib module that times a phase), else a
``worker start-up`` (e.g. a process pool's workers, forked by ``ltlib.parallel``'s fork server for a kernel;
workers spawned directly by the kernel, ``LTLIB_START_METHOD=spawn``, cannot be told from a kernel and count as
kernel start-up). Each process writes at most one start-up record.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

FILE_VARIABLE = "LTLIB_PHASES"
PARENT_VARIABLE = "LTLIB_PHASE_PARENT"
KERNEL_STARTUP = "kernel start-up"  # a direct child of the process whose phase encloses it (a notebook kernel)
WORKER_STARTUP = "worker start-up"  # started further down (e.g. a process pool inside a kernel)
_counter = itertools.count()
_open_parts: list[dict[str, list[float]]] = []  # the parts totals of this process's open phases, innermost last


def enabled() -> bool:
    """True when ``LTLIB_PHASES`` names a file to record into."""
    return bool(os.environ.get(FILE_VARIABLE))


@contextmanager
def phase(name: str, detail: str = "") -> Iterator[None]:
    """Time the block as phase ``name`` (one JSON line at its end, also when it raises).

    Also a decorator (``@phase("evaluation")``): each call is timed.

    Args:
        name: the phase, e.g. ``"fine-tuning"`` (the summary groups records by it).
        detail: which one (e.g. the notebook's name), kept in the record.
    """
    if not enabled():
        yield
        return
    record_id, parent = f"{os.getpid()}:{next(_counter)}", os.environ.get(PARENT_VARIABLE)
    os.environ[PARENT_VARIABLE] = record_id
    parts: dict[str, list[float]] = {}
    _open_parts.append(parts)
    start, wall, cpu = time.time(), time.perf_counter(), time.process_time()
    try:
        yield
    finally:
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        _open_parts.pop()
        _restore(parent)
        _write({"id": record_id, "parent": parent, "phase": name, "start": start, "wall": wall, "cpu": cpu,
                "pid": os.getpid(), "parts": parts, "detail": detail})


@contextmanager
def phase_part(name: str) -> Iterator[None]:
    """Add the block's wall and CPU seconds to part ``name`` of the innermost open phase (no file write).

    Its record then carries ``parts: {name: [wall, cpu, count]}``; outside any phase this does nothing.
    """
    if not _open_parts:
        yield
        return
    totals = _open_parts[-1].setdefault(name, [0.0, 0.0, 0])
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        yield
    finally:
        totals[0] += time.perf_counter() - wall
        totals[1] += time.process_time() - cpu
        totals[2] += 1


def _restore(parent: str | None) -> None:
    if parent is None:
        os.environ.pop(PARENT_VARIABLE, None)
    else:
        os.environ[PARENT_VARIABLE] = parent


def _write(record: dict) -> None:
    """Append one line with a single ``write`` on an O_APPEND descriptor (concurrent processes don't interleave)."""
    line = (json.dumps(record, sort_keys=True) + "\n").encode()
    fd = os.open(os.environ[FILE_VARIABLE], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def process_start_time() -> float | None:
    """This process's creation time (Unix seconds, to a clock tick) from ``/proc``; None without ``/proc``."""
    try:
        with open("/proc/self/stat") as stat, open("/proc/uptime") as uptime:
            ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
            up = float(uptime.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return time.time() - (up - ticks / os.sysconf("SC_CLK_TCK"))


def record_startup() -> None:
    """The ``start-up`` record of a child process (see the module docstring): written once, on import, and
    again by a process forked from a fork server (which imported this module before the child existed)
    once it has taken its caller's environment (``ltlib.parallel``)."""
    global _startup_written
    parent, born = os.environ.get(PARENT_VARIABLE, ""), process_start_time()
    if not enabled() or born is None or not parent or parent.split(":")[0] == str(os.getpid()) \
            or _startup_written == os.getpid():  # a spawned worker: written on import already
        return
    _startup_written = os.getpid()
    now = time.time()
    name = KERNEL_STARTUP if parent.split(":")[0] == str(os.getppid()) else WORKER_STARTUP
    _write({"id": f"{os.getpid()}:start", "parent": parent, "phase": name, "start": born,
            "wall": max(now - born, 0.0), "cpu": time.process_time(), "pid": os.getpid(), "parts": {}, "detail": ""})


_startup_written: int | None = None  # the process that wrote its start-up record
record_startup()


def run_command(name: str, argv: list[str]) -> int:
    """Run ``argv`` as phase ``name`` (CPU seconds: the command's, from ``RUSAGE_CHILDREN``); its exit status.

    Used by the Makefile for steps outside Python (the HTML build).
    """
    import resource
    import subprocess

    before, start, wall = resource.getrusage(resource.RUSAGE_CHILDREN), time.time(), time.perf_counter()
    status = subprocess.call(argv)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if enabled():
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        _write({"id": f"{os.getpid()}:command", "parent": os.environ.get(PARENT_VARIABLE), "phase": name,
                "start": start, "wall": time.perf_counter() - wall, "cpu": cpu, "pid": os.getpid(), "parts": {},
                "detail": " ".join(argv[:2])})
    return status


if __name__ == "__main__":  # python -m ltlib.phases NAME -- COMMAND [ARGS...]
    import sys

    if len(sys.argv) < 4 or sys.argv[2] != "--":
        print("usage: python -m ltlib.phases NAME -- COMMAND [ARGS...]", file=sys.stderr)
        sys.exit(2)
    sys.exit(run_command(sys.argv[1], sys.argv[3:]))
