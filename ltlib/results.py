"""Tidy result tables with provenance: one row per (run, method, seed, metric, group) number.

Every number the book reports is a row here, carrying the run id, notebook, world or dataset, the world's
seed, backbone(s), how many models were combined and by which rule, the scenario and control it belongs to,
the prior that defined its P-groups, the seed, git SHA, config hash and library versions. Every value that
selects a row has its own column (:data:`COLUMNS`); display labels are derived from them
(:func:`display_label`), never parsed. Summaries (mean ± sd and confidence intervals over seeds) are
computed from these rows, never typed.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from .provenance import config_hash, git_sha, library_versions
from .storage import write_text

COLUMNS = ("run_id", "notebook", "scale", "world", "world_seed", "backbones", "n_models", "method", "rule", "scenario",
           "control", "prior_source", "calibration", "seed", "metric", "group", "value", "git_sha", "config_hash",
           "versions")
# The columns that describe a row, with their value when a row does not set them:
#   world_seed: the mini world's seed (the replicate of a world-level claim); -1 at full scale.
#   n_models: models combined by the backdoor adjustment (1: a single model; 0: no model, e.g. a generator check).
#   rule: the combination rule (``logit_sum`` / ``prob_mean``, ``ltlib.adjust.RULES``); "" when none applies.
#   scenario: the downstream class order (Tab. 13: consistent / reverse / balanced); "" is the main setting.
#   control: the arm of a control experiment ("same backbone, different seeds", "from scratch", …); "" is
#     the main experiment.
#   prior_source: the prior that defined the row's P-groups (``ltlib.stage2.PRIOR_POLICY``; in the registry's
#     group-wise rows estimate / truth / reference, ``ltlib.book.measures``); "" when none.
#   calibration: "" for the paper's fixed rule; "val" for a post-hoc τ chosen on the validation split.
DEFAULTS = {"world_seed": -1, "n_models": 0, "rule": "", "scenario": "", "control": "", "prior_source": "",
            "calibration": "", "seed": -1, "group": "all", "backbones": "", "config_hash": ""}
TEXT_COLUMNS = ("run_id", "notebook", "scale", "world", "backbones", "method", "rule", "scenario", "control",
                "prior_source", "calibration", "metric", "group", "git_sha", "config_hash", "versions")
KEY_COLUMNS = ("rule", "scenario", "control", "prior_source", "calibration")  # free-text keys a row may set


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
    world_seed: int = -1

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        self.run_id = self.run_id or f"{self.notebook}-{time.strftime('%Y%m%dT%H%M%S')}-{git_sha(short=True)}"

    def add(self, metric: str, value: float, *, method: str, backbones: str | Sequence[str] = "",
            seed: int | None = None, group: str = "all", config: Any = None, n_models: int | None = None,
            world_seed: int | None = None, **keys: Any) -> None:
        """Record one number; ``config`` (any plain data or dataclass) is hashed for provenance.

        Args:
            backbones: one backbone (a string, possibly a :func:`backbone_key`), or the members of a
                combination (stored as their :func:`backbone_key`).
            n_models: models combined; default: 1 for a string, the number of members for a sequence, 0 for
                none.
            world_seed: the world the number comes from (default: the table's).
            keys: any of :data:`KEY_COLUMNS` (see :data:`DEFAULTS`).
        """
        unknown = set(keys) - set(KEY_COLUMNS)
        if unknown:
            raise TypeError(f"ResultsTable.add: unknown columns {sorted(unknown)}")
        if isinstance(backbones, str):
            members = [backbones] if backbones else []
        else:
            members = list(backbones)
        self.rows.append({**DEFAULTS, "run_id": self.run_id, "notebook": self.notebook, "scale": self.scale,
                          "world": self.world, "world_seed": int(self.world_seed if world_seed is None else world_seed),
                          "backbones": backbone_key(members),
                          "n_models": len(members) if n_models is None else int(n_models), "method": method,
                          **{k: str(v) for k, v in keys.items()}, "seed": -1 if seed is None else int(seed),
                          "metric": metric, "group": group, "value": float(value), "git_sha": git_sha(),
                          "config_hash": config_hash(config) if config is not None else "",
                          "versions": json.dumps(library_versions(), sort_keys=True)})

    def add_many(self, values: dict[str, float], **keys: Any) -> None:
        """Record several metrics that share method / backbones / seed / group / config."""
        for metric, value in values.items():
            self.add(metric, value, **keys)

    def add_frame(self, frame: pd.DataFrame, metric: str | None = None, config: Any = None) -> None:
        """Record every row of a tidy frame with columns ``value``, ``method`` and optionally ``metric``
        (else the ``metric`` argument), ``backbone``/``backbones``, ``seed``, ``world_seed``, ``group``,
        ``n_models`` and the :data:`KEY_COLUMNS`."""
        optional = KEY_COLUMNS
        for row in frame.to_dict("records"):
            self.add(row.get("metric", metric), row["value"], method=row["method"],
                     backbones=row.get("backbones", row.get("backbone", "")), seed=row.get("seed"),
                     group=str(row.get("group", "all")), config=config, n_models=_given(row.get("n_models")),
                     world_seed=_given(row.get("world_seed")),
                     **{k: row[k] for k in optional if isinstance(row.get(k), str)})  # NaN: not set

    def frame(self) -> pd.DataFrame:
        """The rows as a DataFrame with :data:`COLUMNS`."""
        return pd.DataFrame(self.rows, columns=list(COLUMNS))

    def save(self) -> Path:
        """Write the table atomically; returns its path."""
        path = self.out_dir / f"{self.notebook}.csv"
        write_text(path, self.frame().to_csv(index=False))
        return path


def _given(value: Any) -> int | None:
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else int(value)


def load_tables(table_dir: str | Path, notebooks: Iterable[str] | None = None) -> pd.DataFrame:
    """Concatenate the result tables in ``table_dir`` (optionally only ``notebooks``)."""
    paths = sorted(Path(table_dir).glob("*.csv"))
    if notebooks is not None:
        wanted = set(notebooks)
        paths = [p for p in paths if p.stem in wanted]
    text = {c: str for c in TEXT_COLUMNS}
    frames = [normalized(pd.read_csv(p, dtype=text).fillna({c: "" for c in TEXT_COLUMNS})) for p in paths]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(COLUMNS))


def select(rows: pd.DataFrame, **keys: Any) -> pd.DataFrame:
    """Rows matching every ``column=value`` (a list/tuple/set value matches any of its items)."""
    mask = pd.Series(True, index=rows.index)
    for column, value in keys.items():
        mask &= rows[column].isin(value) if isinstance(value, (list, tuple, set)) else rows[column] == value
    return rows[mask]


def normalized(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` with every descriptive column of :data:`COLUMNS` present and filled (missing columns and empty
    cells at :data:`DEFAULTS`), so that selecting by a column never depends on who wrote the rows."""
    missing = {c: v for c, v in DEFAULTS.items() if c not in rows.columns}
    return rows.assign(**missing).fillna({c: v for c, v in DEFAULTS.items() if c not in missing})


def display_label(row: Mapping[str, Any]) -> str:
    """The label a page shows for a row: the control arm if any; else ``backdoor adjustment (<rule>)`` for a
    combination of several models; ``LIFT (single model)`` for one model scored by stage 2 (a rule is set);
    else the method."""
    if row.get("control"):
        return str(row["control"])
    if int(row.get("n_models", 0)) > 1:
        return f"backdoor adjustment ({row['rule']})" if row.get("rule") else "backdoor adjustment"
    return "LIFT (single model)" if row.get("rule") else str(row["method"])


def with_labels(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` with a derived ``label`` column (:func:`display_label`), for tables and figures only."""
    rows = normalized(rows)
    return rows.assign(label=[display_label(r) for r in rows.to_dict("records")])


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


def interval_side(values: Sequence[float], level: float = 0.95) -> tuple[str, dict[str, float]]:
    """Where the Student-t interval of replicate values lies relative to zero: the one rule behind every
    verdict of the book (the reproduction report, ``ltlib.book.report.verdict``; the confounder study,
    ``ltlib.miniworld.confounding.verdict``).

    Returns:
        (side, stats): side ``"above"`` (the interval excludes 0, above it), ``"below"``, ``"contains"`` (it
        includes 0), ``"single"`` (one value: no interval) or ``"none"`` (no values); stats ``mean, sd,
        ci_low, ci_high, n`` ({} when there are no values).
    """
    if len(values) == 0:
        return "none", {}
    mean, sd, low, high, n = mean_ci(values, level)
    stats = {"mean": mean, "sd": sd, "ci_low": low, "ci_high": high, "n": n}
    if n < 2:
        return "single", stats
    return ("above" if low > 0 else "below" if high < 0 else "contains"), stats


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
