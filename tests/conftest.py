"""Shared pytest setup: offline, single-threaded-deterministic torch, repo paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    """Refuse to run under an ATEN_CPU_CAPABILITY that torch ignored (`make test-numeric-alt` relies on it)."""
    wanted = os.environ.get("ATEN_CPU_CAPABILITY", "").strip().lower()
    if wanted:
        import torch

        got = torch.backends.cpu.get_cpu_capability().lower()
        if got != wanted:
            raise pytest.UsageError(f"ATEN_CPU_CAPABILITY={wanted} was not honoured: torch uses {got} kernels "
                                    "(this CPU lacks that instruction set, or torch was imported before)")


def pytest_report_header(config: pytest.Config) -> str:
    import torch

    return f"torch CPU kernels: {torch.backends.cpu.get_cpu_capability()}, threads: {torch.get_num_threads()}"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="module")
def pretrained_world(tmp_path_factory):
    """The smoke world with its mini models pre-trained into a fresh cache (once per test module)."""
    from ltlib.miniworld import load_world

    world = load_world("smoke", cache_root=tmp_path_factory.mktemp("cache"))
    world.prepare(workers=1)  # tiny models: spawning worker processes would cost more than training
    return world
