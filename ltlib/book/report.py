"""The reproduction report: each claim of the paper, the paper's number, our measured number with its
uncertainty, and a verdict, computed from the result tables (``ltlib.results``), never typed.

A claim is a measurement (a function of the result rows returning one value per replicate, e.g. per
seed) and a rule that turns its confidence interval into a verdict. Rules were written before the
default-scale numbers were seen and are the same for every claim of a kind:

- ``positive``: reproduced when the 95 % interval lies above zero; partially when the mean is positive
  but the interval includes zero; not reproduced otherwise.
- ``null``: (a claim of *no* effect) reproduced when the interval includes zero; not reproduced otherwise.
- ``zero``: (a deterministic quantity that should be 0, e.g. a cost ratio minus its expected value)
  reproduced when |mean| ≤ 0.05, else not reproduced.

With a single replicate there is no interval: ``positive`` gives at most "partially reproduced".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from ..results import interval_side, normalized

REPRODUCED, PARTIAL, NOT_REPRODUCED, PENDING, MISSING = (
    "reproduced", "partially reproduced", "not reproduced", "pending at full scale", "not measured")


@dataclass(frozen=True)
class Claim:
    """One claim of the paper.

    Attributes:
        key: short identifier; artefact: where the paper makes it; statement: the claim in our words.
        paper: what the paper reports (a number, or "not reported" / a qualitative statement).
        measure: how we measure it (shown in the report).
        values: result rows → one value per replicate (an empty array when not measured).
        rule: ``positive`` or ``null`` (see the module docstring).
        full_scale: whether the claim is about the real datasets' numbers (then the full-scale column is
            pending until ``make reproduce`` has run).
        unit: the unit of the measured values (``Spearman ρ``, ``accuracy points``, ``ratio``).
    """

    key: str
    artefact: str
    statement: str
    paper: str
    measure: str
    values: Callable[[pd.DataFrame], np.ndarray]
    rule: str = "positive"
    full_scale: bool = False
    unit: str = "accuracy points"


def verdict(values: np.ndarray, rule: str) -> tuple[str, dict[str, float]]:
    """Apply ``rule`` to the replicate values (``ltlib.results.interval_side``); returns the verdict and the
    statistics behind it."""
    values = np.asarray(values, dtype=float)
    side, stats = interval_side(values[~np.isnan(values)])
    if side == "none":
        return MISSING, {}
    if rule == "zero":
        return (REPRODUCED if abs(stats["mean"]) <= 0.05 else NOT_REPRODUCED), stats
    if side == "single":
        return (PARTIAL if (stats["mean"] > 0) == (rule == "positive") else NOT_REPRODUCED), stats
    if rule == "null":
        return (REPRODUCED if side == "contains" else NOT_REPRODUCED), stats
    if side == "above":
        return REPRODUCED, stats
    return (PARTIAL if stats["mean"] > 0 else NOT_REPRODUCED), stats


def evaluate_claims(claims: list[Claim], rows: pd.DataFrame, scale: str) -> pd.DataFrame:
    """One line per claim: the paper's number, ours (mean [95 % CI], n), and the verdict at this scale."""
    lines, rows = [], normalized(rows)
    for claim in claims:
        result, stats = verdict(claim.values(rows), claim.rule)
        measured = _format(stats)
        full = (result if scale == "full" else PENDING) if claim.full_scale else "—"
        lines.append({"claim": claim.statement, "artefact": claim.artefact, "paper": claim.paper,
                      "how we measure": claim.measure, "measured": measured,
                      "verdict" if scale == "full" else "verdict (mini world)": result,
                      "full scale": full, "key": claim.key, "unit": claim.unit,
                      **{f"stat_{k}": v for k, v in stats.items()}})
    return pd.DataFrame(lines)


def _format(stats: dict[str, float]) -> str:
    if not stats:
        return "not measured"
    if np.isnan(stats["sd"]):
        return f"{stats['mean']:.3f} (n = 1)"
    return f"{stats['mean']:.3f} [{stats['ci_low']:.3f}, {stats['ci_high']:.3f}] (n = {stats['n']})"


# ----------------------------------------------------------------------------- selecting result rows
def select(rows: pd.DataFrame, **keys) -> pd.DataFrame:
    """Rows matching every ``column=value`` (a list/tuple value matches any of its items)."""
    mask = pd.Series(True, index=rows.index)
    for column, value in keys.items():
        mask &= rows[column].isin(value) if isinstance(value, (list, tuple, set)) else rows[column] == value
    return rows[mask]


def per_replicate(rows: pd.DataFrame, by: tuple[str, ...] = ("backbones", "seed")) -> pd.Series:
    """Values indexed by replicate (default: backbone × seed), averaging duplicates."""
    return rows.groupby(list(by))["value"].mean()


def paired_difference(a: pd.DataFrame, b: pd.DataFrame, by: tuple[str, ...] = ("seed",)) -> np.ndarray:
    """Per replicate, mean(a) − mean(b) over the replicates both have (paired by ``by``)."""
    left, right = per_replicate(a, by), per_replicate(b, by)
    common = left.index.intersection(right.index)
    return (left[common] - right[common]).to_numpy()


def provenance_table(rows: pd.DataFrame, sha_digits: int = 12) -> pd.DataFrame:
    """Per notebook and git revision (shortened to ``sha_digits``; ``-dirty`` kept): how many result rows,
    distinct run ids and which seeds stand behind the report."""
    short = rows["git_sha"].map(lambda sha: sha[:sha_digits] + ("-dirty" if sha.endswith("-dirty") else ""))
    table = rows.assign(git_sha=short).groupby(["notebook", "git_sha"]).agg(
        rows=("value", "size"), run_ids=("run_id", "nunique"), seeds=("seed", lambda s: sorted(set(s) - {-1})))
    return table.reset_index()
