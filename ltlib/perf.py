"""The performance page's data: this build's notebook times, the mini models' pre-training cost, and the
committed benchmark tables (``python -m ltlib bench``)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from .runner import EXECUTED_DIR_VARIABLE, REPO_ROOT
BENCHMARK_DIR = REPO_ROOT / "book" / "data" / "benchmarks"


def executed_dir() -> Path:
    """Where the running build writes executed notebooks and ``timings.csv``."""
    return Path(os.environ.get(EXECUTED_DIR_VARIABLE, REPO_ROOT / "book" / "executed"))


def notebook_timings() -> pd.DataFrame:
    """This build's ``timings.csv`` so far (notebook, status, seconds, parameters hash, git SHA)."""
    path = executed_dir() / "timings.csv"
    if not path.is_file():
        return pd.DataFrame(columns=["notebook", "status", "seconds", "parameters", "git_sha"])
    return pd.read_csv(path)


def pretraining_times(world: str) -> pd.DataFrame:
    """Per mini model of ``world``: optimizer steps, wall and CPU seconds of its pre-training, from the
    records cached with the weights (pre-training them first if needed)."""
    from .miniworld import load_world

    w = load_world(world)
    rows = []
    for name, entry in w.prepare().items():
        log = entry.log
        rows.append({"model": name, "steps": log.get("steps"), "wall_seconds": log.get("seconds"),
                     "cpu_seconds": log.get("cpu_seconds"), "generation_seconds": log.get("generation_seconds"),
                     "git_sha": log.get("git_sha")})
    return pd.DataFrame(rows)


def benchmark_table(directory: Path = BENCHMARK_DIR) -> pd.DataFrame:
    """The committed benchmark results (every ``*.csv`` under ``book/data/benchmarks``)."""
    paths = sorted(Path(directory).glob("*.csv"))
    if not paths:
        return pd.DataFrame({"note": ["no benchmark results committed yet: run `make bench`"]})
    return pd.concat([pd.read_csv(p) for p in paths], ignore_index=True)


def book_scaling(bench: pd.DataFrame) -> pd.DataFrame:
    """The ``book`` benchmark rows: notebook time of ``make book`` per world size."""
    if "benchmark" not in bench:
        return bench
    book = bench[(bench["benchmark"] == "book") & (bench["metric"] == "seconds_notebooks_total")]
    return book[["case", "value", "unit", "note"]].reset_index(drop=True)
