"""Provenance recorded beside every number: git revision, config hash, seed and library versions."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import platform
import subprocess
from pathlib import Path
from typing import Any

from .paths import REPO_ROOT as _REPO_ROOT


@functools.lru_cache(maxsize=1)
def git_sha(short: bool = False) -> str:
    """Return the current git revision, with ``-dirty`` when the work tree has uncommitted changes.

    Returns ``"unknown"`` outside a git checkout (e.g. an installed wheel).
    """
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=_REPO_ROOT, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=_REPO_ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    sha = sha[:10] if short else sha
    return f"{sha}-dirty" if dirty else sha


def to_plain(obj: Any) -> Any:
    """Convert dataclasses, paths, tuples and NumPy values into JSON-ready plain Python."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and getattr(obj, "ndim", 1) == 0:
        return obj.item()
    return obj


def config_hash(obj: Any, length: int = 12) -> str:
    """A stable short hash of a config (dataclass or plain data): equal configs give equal hashes."""
    blob = json.dumps(to_plain(obj), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


@functools.lru_cache(maxsize=1)
def library_versions() -> dict[str, str]:
    """Versions of the libraries that decide the numbers (python, torch, open_clip, numpy, ltlib)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("torch", "torchvision", "open_clip_torch", "numpy", "scipy", "ltlib"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "missing"
    return out


def run_record(config: Any, seed: int | None = None, **extra: Any) -> dict[str, Any]:
    """The header written at the start of every run log: git SHA, seed, config, its hash, versions."""
    return {"git_sha": git_sha(), "seed": seed, "config": to_plain(config),
            "config_hash": config_hash(config), "versions": library_versions(), **extra}
