"""Tidy result tables with provenance: one row per (run, method, seed, metric, group) number.

Every number the book reports is a row here, carrying the run id, notebook, world or dataset,
backbone(s), method, seed, git SHA, config hash and library versions. Summaries (mean ± sd and
confidence intervals over seeds) are computed from these rows, never typed.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from .provenance import config_hash, git_sha, library_versions
from .storage import write_text

COLUMNS = ("run_id", "notebook", "scale", "world", "backbones", "method", "seed", "metric", "group", "value",
           "git_sha", "config_hash", "versions")


def backbone_key(backbones: str | Sequence[str]) -> str:
    """Canonical name of a set of backbones (``"clip+metaclip"``); order-free for ensembles."""
    return backbones if isinstance(backbones, str) else "+".join(sorted(backbones))


@dataclass
class ResultsTable:
    """Collects the rows of one notebook execution and writes them to ``<out_dir>/<notebook>.csv``."""

    notebook: str
    scale: str
    world: str
    out_dir: Path
    rows: list[dict[str, Any]] = field(default_factory=list)
    run_id: str = ""

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        self.run_id = self.run_id or f"{self.notebook}-{time.strftime('%Y%m%dT%H%M%S')}-{git_sha(short=True)}"

    def add(self, metric: str, value: float, *, method: str, backbones: str | Sequence[str] = "",
            seed: int | None = None, group: str = "all", config: Any = None) -> None:
        """Record one number; ``config`` (any plain data or dataclass) is hashed for provenance."""
        self.rows.append({"run_id": self.run_id, "notebook": self.notebook, "scale": self.scale,
                          "world": self.world, "backbones": backbone_key(backbones), "method": method,
                          "seed": -1 if seed is None else int(seed), "metric": metric, "group": group,
                          "value": float(value), "git_sha": git_sha(),
                          "config_hash": config_hash(config) if config is not None else "",
                          "versions": json.dumps(library_versions(), sort_keys=True)})

    def add_many(self, values: dict[str, float], **keys: Any) -> None:
        """Record several metrics that share method / backbones / seed / group / config."""
        for metric, value in values.items():
            self.add(metric, value, **keys)

    def add_frame(self, frame: pd.DataFrame, metric: str | None = None, config: Any = None) -> None:
        """Record every row of a tidy frame with columns ``value``, ``method`` and optionally ``metric``
        (else the ``metric`` argument), ``backbone``/``backbones``, ``seed`` and ``group``."""
        for row in frame.to_dict("records"):
            self.add(row.get("metric", metric), row["value"], method=row["method"],
                     backbones=row.get("backbones", row.get("backbone", "")), seed=row.get("seed"),
                     group=str(row.get("group", "all")), config=config)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=list(COLUMNS))

    def save(self) -> Path:
        """Write the table atomically; returns its path."""
        path = self.out_dir / f"{self.notebook}.csv"
        write_text(path, self.frame().to_csv(index=False))
        return path


def load_tables(table_dir: str | Path, notebooks: Iterable[str] | None = None) -> pd.DataFrame:
    """Concatenate the result tables in ``table_dir`` (optionally only ``notebooks``)."""
    paths = sorted(Path(table_dir).glob("*.csv"))
    if notebooks is not None:
        wanted = set(notebooks)
        paths = [p for p in paths if p.stem in wanted]
    text = {c: str for c in ("run_id", "notebook", "scale", "world", "backbones", "method", "metric", "group",
                             "git_sha", "config_hash", "versions")}
    frames = [pd.read_csv(p, dtype=text).fillna({c: "" for c in text}) for p in paths]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(COLUMNS))


def mean_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float, float, int]:
    """Mean, sample sd, and a Student-t confidence interval over independent seeds.

    Returns:
        (mean, sd, low, high, n); with n = 1 the sd and interval are NaN (a single run has none).
    """
    x = np.asarray(values, dtype=float)
    n, mean = len(x), float(np.mean(x)) if len(x) else float("nan")
    if n < 2:
        return mean, float("nan"), float("nan"), float("nan"), n
    sd = float(np.std(x, ddof=1))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * sd / np.sqrt(n))
    return mean, sd, mean - half, mean + half, n


def summarize(frame: pd.DataFrame, by: Sequence[str] = ("world", "backbones", "method", "metric", "group"),
              level: float = 0.95) -> pd.DataFrame:
    """Aggregate rows over seeds: columns ``mean, sd, ci_low, ci_high, n`` per ``by`` group."""
    out = []
    for keys, part in frame.groupby(list(by), sort=False):
        mean, sd, low, high, n = mean_ci(part["value"].to_numpy(), level)
        out.append({**dict(zip(by, keys if isinstance(keys, tuple) else (keys,))), "mean": mean, "sd": sd,
                    "ci_low": low, "ci_high": high, "n": n})
    return pd.DataFrame(out)


def format_mean_sd(mean: float, sd: float, digits: int = 2) -> str:
    """``"52.31 ± 0.84"``; a single run prints its value alone."""
    return f"{mean:.{digits}f}" if np.isnan(sd) else f"{mean:.{digits}f} ± {sd:.{digits}f}"
