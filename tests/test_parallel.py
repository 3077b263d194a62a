"""ltlib.parallel: results in input order, one torch thread per worker, the in-process path restores the
caller's thread count, and errors surface in the caller. One test starts a real pool (spawned processes
import torch, a few seconds each); the others stay in process."""

from __future__ import annotations

import math

import pytest
import torch

from ltlib.parallel import call, default_workers, run_parallel


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
