"""Every location ltlib reads or writes, in one place, each with its environment override.

Two kinds of location:

- **Repository locations** (a source checkout): the notebooks and their plan, the shipped split files,
  the executed notebooks of the book, the committed benchmark tables. They are found relative to the
  package, one level above ``ltlib/``.
- **Working locations**: the cache (pre-trained mini models, pinned SHA-256 of user lists), stage-1
  runs and result tables. One cache root, ``$LTLIB_CACHE`` or ``~/.cache/ltlib``; the Makefile points
  it into the clone (``.cache/ltlib``) so that a fresh clone starts from a clean cache.

Relative defaults (``runs``, ``results``) are relative to the current directory, as a command-line
user expects; the book's notebooks run with the repository as their working directory.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent

CACHE_VARIABLE = "LTLIB_CACHE"
RUNS_VARIABLE = "LTLIB_RUNS"
RESULTS_VARIABLE = "LTLIB_RESULTS"
EXECUTED_VARIABLE = "LTLIB_EXECUTED_DIR"  # set by the runner: where the running build's notebooks go


def _from_env(variable: str, default: Path) -> Path:
    value = os.environ.get(variable, "").strip()
    return Path(value).expanduser() if value else default


def cache_root() -> Path:
    """``$LTLIB_CACHE`` or ``~/.cache/ltlib``: pre-trained mini models and pinned list checksums."""
    return _from_env(CACHE_VARIABLE, Path.home() / ".cache" / "ltlib")


def runs_root() -> Path:
    """``$LTLIB_RUNS`` or ``runs``: stage-1 run folders (one per task, backbone, method, seed, recipe)."""
    return _from_env(RUNS_VARIABLE, Path("runs"))


def results_root() -> Path:
    """``$LTLIB_RESULTS`` or ``results``: result tables, stage-2 scores, benchmark output."""
    return _from_env(RESULTS_VARIABLE, Path("results"))


def manifests_dir() -> Path:
    """The shipped split files of Places-LT, ImageNet-LT and iNaturalist 2018, with their checksums."""
    return REPO_ROOT / "data_manifests"


def notebooks_dir() -> Path:
    """The jupytext sources of the book's notebooks."""
    return REPO_ROOT / "notebooks"


def plan_path() -> Path:
    """The runner's plan: the notebooks in order and the parameters of each setting."""
    return notebooks_dir() / "plan.yaml"


def executed_dir() -> Path:
    """Where the running build writes executed notebooks and ``timings.csv`` (default ``book/executed``)."""
    return _from_env(EXECUTED_VARIABLE, REPO_ROOT / "book" / "executed")


def book_executed_dir() -> Path:
    """The executed notebooks that the book's table of contents names."""
    return REPO_ROOT / "book" / "executed"


def smoke_executed_dir() -> Path:
    """Where ``make bench`` writes the smoke-scale build whose timings the performance page shows."""
    return REPO_ROOT / "results" / "executed-smoke"


def benchmarks_dir() -> Path:
    """The committed benchmark tables (``make bench``) that the performance page reads."""
    return REPO_ROOT / "book" / "data" / "benchmarks"


def profile_dir() -> Path:
    """The committed phase profile of a ``make book`` (``python -m ltlib.bench.profile … --out``) that the
    performance page reads; apart from :func:`benchmarks_dir`, whose every CSV is a benchmark table."""
    return REPO_ROOT / "book" / "data" / "profile"
