"""Disk cache of pre-trained mini foundation models, keyed by their full config (book: Mini world, item 8).

Layout: ``<root>/miniworld/<model name>-<key hash>/`` with

- ``<arch>.json``: the open_clip architecture (``ltlib.backbones.register_arch`` reads it);
- ``weights.pt``: the CLIP state dict;
- ``truth.json``: the ground truth, π_m (the corpus's class frequencies) and P_m(C), beside the weights;
- ``pretrain.json``: the training log with provenance, written last, so its presence marks a complete entry.

A config change gives a new key (a new directory, trained on first use); equal configs share one entry,
so every notebook reuses one pre-training. Writes are atomic and a per-entry file lock stops two
processes from training the same model at once. Delete the root to rebuild everything.
"""

from __future__ import annotations

import fcntl
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch

from ..provenance import config_hash, to_plain
from ..paths import cache_root
from ..storage import atomic_path, read_json, write_json

# Bump when code changes what a given config produces (generator, captions, corpus or training loop),
# so that stale cached models are not reused.
CACHE_VERSION = 2
WEIGHTS, TRUTH, LOG = "weights.pt", "truth.json", "pretrain.json"


def entry_dir(name: str, key: Any, root: str | Path | None = None) -> Path:
    """The directory of the model ``name`` whose full config is ``key`` (any dataclass / plain data)."""
    return Path(root or cache_root()) / "miniworld" / f"{name}-{key_hash(key)}"


def key_hash(key: Any) -> str:
    """Hash of the cache key together with ``CACHE_VERSION``."""
    return config_hash({"cache_version": CACHE_VERSION, "key": to_plain(key)})


@dataclass(frozen=True)
class CachedModel:
    """A complete cache entry.

    Attributes:
        directory: the entry; arch: open_clip architecture name (``<model>-<hash>``);
        model_config: the open_clip config; truth: ``truth.json``; log: ``pretrain.json``.
    """

    directory: Path
    arch: str
    model_config: dict[str, Any]
    truth: dict[str, Any]
    log: dict[str, Any]

    @property
    def weights(self) -> Path:
        return self.directory / WEIGHTS


def is_complete(directory: Path) -> bool:
    """True when the entry's log (written last) exists."""
    return (directory / LOG).is_file()


def load_entry(directory: Path) -> CachedModel:
    """Read a complete entry (no weights are loaded)."""
    arch = directory.name
    return CachedModel(directory, arch, read_json(directory / f"{arch}.json"), read_json(directory / TRUTH),
                       read_json(directory / LOG))


Builder = Callable[[], tuple[torch.nn.Module, dict[str, Any], dict[str, Any], dict[str, Any]]]


def get_or_build(directory: Path, build: Builder) -> tuple[CachedModel, bool]:
    """Return the entry at ``directory``, building it first when it is missing or incomplete.

    Args:
        directory: from :func:`entry_dir`.
        build: ``() -> (model, open_clip config, truth, log)``; called at most once, under the lock.
    Returns:
        (the entry, whether it was built now).
    """
    if is_complete(directory):
        return load_entry(directory), False
    with _locked(directory):
        if is_complete(directory):  # another process finished it while we waited
            return load_entry(directory), False
        model, model_config, truth, log = build()
        save_entry(directory, model, model_config, truth, log)
    return load_entry(directory), True


def save_entry(directory: Path, model: torch.nn.Module, model_config: dict[str, Any], truth: dict[str, Any],
               log: dict[str, Any]) -> None:
    """Write an entry atomically, the log last."""
    write_json(directory / f"{directory.name}.json", model_config)
    with atomic_path(directory / WEIGHTS) as tmp:
        torch.save(model.state_dict(), tmp)
    write_json(directory / TRUTH, truth)
    write_json(directory / LOG, log)


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``<directory>.lock`` (released on exit, also when the process dies)."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    with open(directory.with_name(directory.name + ".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
