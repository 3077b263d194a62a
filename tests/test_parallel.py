"""ltlib.parallel: results in input order, one torch thread per worker, the in-process path restores the
caller's thread count, errors surface in the caller, and workers forked from the fork server take the
caller's environment and folder as each pool starts. The pool tests share one fork server (started by the
first, a few seconds of imports); the others stay in process."""

from __future__ import annotations

import json
import math
import multiprocessing
import os

import pytest
import torch

from ltlib.errors import ConfigError
from ltlib.parallel import call, default_workers, run_parallel
from ltlib.phases import KERNEL_STARTUP, WORKER_STARTUP, phase


def test_in_process_runs_in_order_single_threaded_and_restores_the_thread_count():
    before = torch.get_num_threads()
    seen = run_parallel(call, [(torch.get_num_threads, (), {}), (math.factorial, (5,), {})], workers=1)
    assert seen == [1, 120]
    assert torch.get_num_threads() == before


def test_worker_processes_return_results_in_input_order_with_one_thread_each():
    jobs = [(math.factorial, (n,), {}) for n in (6, 1, 4, 3)] + [(torch.get_num_threads, (), {})]
    assert run_parallel(call, jobs, workers=2) == [720, 1, 24, 6, 1]


def test_an_error_reaches_the_caller():
    # in-process: a pool's exception travels the same way (concurrent.futures re-raises it in map)
    with pytest.raises(ValueError, match="factorial"):
        run_parallel(call, [(math.factorial, (3,), {}), (math.factorial, (-1,), {})], workers=1)


def test_a_single_item_or_no_item_never_starts_a_pool():
    assert run_parallel(call, [(math.factorial, (3,), {})], workers=8) == [6]
    assert run_parallel(call, [], workers=8) == []


def test_default_workers_follows_the_environment(monkeypatch):
    monkeypatch.setenv("LTLIB_WORKERS", "3")
    assert default_workers() == 3
    monkeypatch.delenv("LTLIB_WORKERS")
    assert 1 <= default_workers() <= 8


def test_workers_take_the_callers_environment_and_folder_as_each_pool_starts(monkeypatch, tmp_path):
    # The fork server keeps the environment it started with; each pool's workers must see the caller's now
    # (the notebooks' paths and the enclosing phase travel this way).
    jobs = [(os.getenv, ("LTLIB_TEST_VALUE",), {}), (os.getcwd, (), {})]
    monkeypatch.setenv("LTLIB_TEST_VALUE", "first")
    assert run_parallel(call, jobs, workers=2) == ["first", os.getcwd()]
    monkeypatch.setenv("LTLIB_TEST_VALUE", "second")
    monkeypatch.chdir(tmp_path)
    assert run_parallel(call, jobs, workers=2) == ["second", str(tmp_path)]
    monkeypatch.delenv("LTLIB_TEST_VALUE")
    assert run_parallel(call, jobs, workers=2)[0] is None


@pytest.mark.skipif("forkserver" not in multiprocessing.get_all_start_methods(), reason="no fork server here")
def test_workers_come_from_one_fork_server_not_from_the_caller():
    parents = run_parallel(call, [(os.getppid, (), {})] * 2, workers=2)
    again = run_parallel(call, [(os.getppid, (), {})] * 2, workers=2)
    assert os.getpid() not in parents  # never forked from this (threaded) process
    assert len(set(parents) | set(again)) == 1  # every pool's workers from the same server


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_worker_start_up_is_recorded_once_under_the_enclosing_phase(method, monkeypatch, tmp_path):
    monkeypatch.setenv("LTLIB_START_METHOD", method)
    monkeypatch.setenv("LTLIB_PHASES", str(tmp_path / "phases.jsonl"))
    with phase("outer"):
        parents = run_parallel(call, [(os.getppid, (), {})] * 2, workers=2)
    assert (set(parents) == {os.getpid()}) == (method == "spawn")  # spawned here, or forked by the server
    records = [json.loads(line) for line in (tmp_path / "phases.jsonl").read_text().splitlines()]
    outer = next(r for r in records if r["phase"] == "outer")
    # A spawned worker is a direct child of the phase's process, which its record cannot tell from a kernel.
    kind = WORKER_STARTUP if method == "forkserver" else KERNEL_STARTUP
    workers = [r for r in records if r["phase"] in (WORKER_STARTUP, KERNEL_STARTUP) and r["detail"] != "fork server"]
    assert len(workers) == len({r["pid"] for r in workers}) == 2  # one record per worker, not one per import
    assert all(r["phase"] == kind and r["parent"] == outer["id"] and r["pid"] != os.getpid() for r in workers)


def test_the_start_method_is_forkserver_or_spawn(monkeypatch):
    monkeypatch.setenv("LTLIB_START_METHOD", "fork")
    with pytest.raises(ConfigError, match="LTLIB_START_METHOD='fork'"):
        run_parallel(call, [(os.getppid, (), {})] * 2, workers=2)
