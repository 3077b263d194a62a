"""Shared pytest setup: offline, every working location in a temporary folder, and the expensive objects
(the pre-trained smoke world, a full-size ViT-B/16) built once per session."""

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


@pytest.fixture(scope="session", autouse=True)
def working_root(tmp_path_factory) -> Path:
    """The cache, runs and results of this session (``ltlib.paths`` reads these variables), so that no
    test and no notebook a test executes writes into the repository or the user's home."""
    root = tmp_path_factory.mktemp("ltlib-work")
    patch = pytest.MonkeyPatch()
    for variable, folder in (("LTLIB_CACHE", "cache"), ("LTLIB_RUNS", "runs"), ("LTLIB_RESULTS", "results")):
        patch.setenv(variable, str(root / folder))
    yield root
    patch.undo()


@pytest.fixture(scope="session")
def pretrained_world(working_root):
    """The smoke world with its mini models pre-trained once per session into the session's cache, which
    the smoke notebooks of the book test then reuse. Read-only: a test that needs a fresh or modified
    cache builds its own world under ``tmp_path``."""
    from ltlib.miniworld import load_world

    world = load_world("smoke", cache_root=working_root / "cache")
    world.prepare(workers=1)  # tiny models: spawning worker processes would cost more than training
    return world


@pytest.fixture(scope="session")
def vit_b16():
    """A full-size ViT-B/16 (the ``clip`` registry entry, random weights), built once per session. Tests
    wrap it (adapters, heads) but never modify it."""
    from ltlib.backbones import build_backbone

    return build_backbone("clip", random_init=True)
