"""Shared pytest setup: offline, single-threaded-deterministic torch, repo paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parent.parent


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
