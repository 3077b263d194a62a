"""The README's verdict summary, computed from the reproduction report's ``verdicts.csv`` (book:
*Reproduction report*): counts of the paper's claims by verdict and a compact table of them.

``python -m ltlib summary --verdicts FILE`` prints it; ``--write-readme README.md`` replaces the block
between :data:`START` and :data:`END` in the README, so the README's numbers are rendered, never typed.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pandas as pd

from ..errors import ConfigError
from ..storage import write_text
from .registry import INCONCLUSIVE, NO_VERDICT, NOT_MEASURED, NOT_REPRODUCED, REPRODUCED, ROLES, SINGLE_RUN

COLUMNS = ("key", "statement", "artefact", "role", "prior_source", "calibration", "verdict", "firm", "mean",
           "low", "high", "n_worlds", "per_world", "unit")
UNINFORMATIVE, OTHER_SCALE = "uninformative", "full scale only"  # as ltlib.book.report writes them
VERDICTS = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, SINGLE_RUN, NOT_MEASURED, NO_VERDICT, UNINFORMATIVE,
            OTHER_SCALE)
COUNTED = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_MEASURED)  # the summary's headline counts
DECISIVE = (REPRODUCED, NOT_REPRODUCED)
PRIMARY_PRIOR_SOURCES = ("", "estimate")  # the paper's own variant: GLA's estimate of the prior, uncalibrated
START, END = "<!-- verdicts:start -->", "<!-- verdicts:end -->"
_TRUE, _FALSE = {"true", "1", "yes"}, {"false", "0", "no", ""}


def read_verdicts(path: str | Path) -> pd.DataFrame:
    """Read and check a ``verdicts.csv`` written by the report page.

    Args:
        path: the CSV (columns :data:`COLUMNS`; extra columns are kept).
    Returns:
        One row per claim variant; ``firm`` bool, ``mean``/``low``/``high`` float (NaN where empty),
        ``n_worlds`` int, ``per_world`` a tuple of floats; text columns with "" for empty.
    Raises:
        ConfigError: a missing file or column, or a value that is not what its column holds, naming the
            file and the 1-based line.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such verdicts file (the report page writes <out_dir>/verdicts.csv)")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not a readable CSV ({exc})") from exc
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise ConfigError(f"{path}: missing column(s) {missing}; expected {list(COLUMNS)}")
    rows = [_parse_row(row, path, line) for line, row in enumerate(table.to_dict("records"), start=2)]
    return pd.DataFrame(rows, columns=list(table.columns))


def _parse_row(row: dict, path: Path, line: int) -> dict:
    """One CSV row with typed values; errors name ``path`` and the 1-based ``line``."""
    where = f"{path}, line {line}"
    if row["role"] not in ROLES:
        raise ConfigError(f"{where}: role {row['role']!r} is not one of {list(ROLES)}")
    if row["verdict"] not in VERDICTS:
        raise ConfigError(f"{where}: verdict {row['verdict']!r} is not one of {list(VERDICTS)}")
    if row["firm"].strip().lower() not in _TRUE | _FALSE:
        raise ConfigError(f"{where}: firm {row['firm']!r} is not true or false")
    out = {**row, "firm": row["firm"].strip().lower() in _TRUE}
    for column in ("mean", "low", "high"):
        out[column] = _number(row[column], f"{where}: {column}")
    n_worlds = _number(row["n_worlds"], f"{where}: n_worlds")
    if not (n_worlds >= 0 and float(n_worlds).is_integer()):
        raise ConfigError(f"{where}: n_worlds {row['n_worlds']!r} is not a count")
    out["n_worlds"] = int(n_worlds)
    out["per_world"] = _per_world(row["per_world"], where)
    return out


def _number(text: str, where: str) -> float:
    """``text`` as a float; "" and "nan" are NaN (not measured), anything else unparsable is an error."""
    text = text.strip()
    if text == "" or text.lower() == "nan":
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"{where} {text!r} is not a number") from None


def _per_world(text: str, where: str) -> tuple[float, ...]:
    """The JSON list of per-world values ("" or "[]" for none)."""
    if not text.strip():
        return ()
    try:
        values = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where}: per_world is not a JSON list ({exc.msg})") from None
    if not isinstance(values, list) or not all(isinstance(v, (int, float)) or v is None for v in values):
        raise ConfigError(f"{where}: per_world {text!r} is not a JSON list of numbers")
    return tuple(math.nan if v is None else float(v) for v in values)


def primary_claims(table: pd.DataFrame) -> pd.DataFrame:
    """The rows the headline counts: the paper's claims (``role == "claim"``) in their headline variant (the
    report's ``headline`` column: the first prior source the claim lists, at the fixed rule); without that
    column, GLA's estimated prior (``prior_source`` "" or "estimate") without calibration."""
    if "headline" in table:
        keep = (table["role"] == "claim") & table["headline"].astype(str).str.lower().eq("true")
        return table[keep].reset_index(drop=True)
    keep = (table["role"] == "claim") & table["prior_source"].isin(PRIMARY_PRIOR_SOURCES) \
        & (table["calibration"] == "")
    return table[keep].reset_index(drop=True)


def verdict_counts(claims: pd.DataFrame) -> dict[str, int]:
    """Claims per verdict (every verdict of :data:`VERDICTS`, zero included) and ``firm``: decisive
    verdicts (reproduced or not reproduced) that are firm."""
    counts = {verdict: int((claims["verdict"] == verdict).sum()) for verdict in VERDICTS}
    counts["firm"] = int((claims["verdict"].isin(DECISIVE) & claims["firm"]).sum())
    return counts


def render_summary(table: pd.DataFrame, source: str = "book/data/verdicts.csv") -> str:
    """The markdown summary: one paragraph of counts and one table of the primary claims.

    Args:
        table: :func:`read_verdicts` rows (every variant; the summary keeps :func:`primary_claims`).
        source: the file named in the summary as the numbers' origin.
    Returns:
        Markdown text ending in a newline.
    """
    claims = primary_claims(table)
    lines = [_headline(claims, source), "", "| claim | verdict | firm | mean [interval over worlds] |",
             "|---|---|---|---|"]
    for row in claims.itertuples(index=False):
        firm = ("yes" if row.firm else "no") if row.verdict in DECISIVE else "–"
        lines.append(f"| {_cell(row.statement)} | {row.verdict} | {firm} | {_interval(row)} |")
    return "\n".join(lines) + "\n"


def _headline(claims: pd.DataFrame, source: str) -> str:
    counts = verdict_counts(claims)
    decisive = counts[REPRODUCED] + counts[NOT_REPRODUCED]
    parts = ", ".join(f"**{counts[v]} {v}**" for v in COUNTED)
    others = "".join(f", {counts[v]} {v}" for v in VERDICTS if v not in COUNTED and counts[v])
    ours = int(claims["artefact"].astype(str).str.startswith("our experiment").sum()) if "artefact" in claims else 0
    origin = f" ({len(claims) - ours} of the paper's, {ours} of our own experiment)" if ours else " of the paper's"
    return (f"Of the **{len(claims)} registered claims**{origin} checked in the mini world ({_worlds(claims)}; "
            f"GLA's estimated prior, uncalibrated): {parts}{others}. **{counts['firm']} of the {decisive} "
            f"decisive verdicts are firm** (every world's own value on the verdict's side and, in the default build, "
            f"the same verdict with another CPU's float rounding). "
            f"Computed from `{source}` by `python -m ltlib summary`.")


def _worlds(claims: pd.DataFrame) -> str:
    """"N independent worlds", or the range when claims were measured over different numbers of worlds."""
    n = sorted(set(claims["n_worlds"]) - {0})
    if not n:
        return "no world measured"
    span = str(n[0]) if len(n) == 1 else f"{n[0]}–{n[-1]}"
    return f"{span} independent world{'s' if n[-1] != 1 else ''}"


def _interval(row) -> str:
    """``mean [low, high] unit`` with three significant digits; "–" for what was not measured."""
    if math.isnan(row.mean):
        return "–"
    interval = "" if math.isnan(row.low) or math.isnan(row.high) else f" [{row.low:.3g}, {row.high:.3g}]"
    return f"{row.mean:.3g}{interval} {_cell(row.unit)}".rstrip()


def _cell(text: str) -> str:
    """``text`` safe inside a markdown table cell (one line, no bare pipes)."""
    return re.sub(r"\s+", " ", str(text)).replace("|", "\\|").strip()


def replace_block(text: str, block: str, where: str = "README.md") -> str:
    """``text`` with the lines between :data:`START` and :data:`END` replaced by ``block``.

    Raises:
        ConfigError: naming ``where`` when the markers are missing, repeated or out of order.
    """
    _check_markers(text, where)
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{block.rstrip()}\n{END}{tail}"


def _check_markers(text: str, where: str) -> None:
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        raise ConfigError(f"{where}: expected one {START} line followed by one {END} line")


def readme_block(text: str, where: str = "README.md") -> str:
    """The block currently between the markers of ``text`` (without the marker lines)."""
    _check_markers(text, where)
    return text.split(START, 1)[1].split(END, 1)[0].strip("\n") + "\n"


def write_readme(readme: str | Path, block: str) -> Path:
    """Replace the verdict block of ``readme`` with ``block``, atomically (``ltlib.storage``)."""
    readme = Path(readme)
    if not readme.is_file():
        raise ConfigError(f"{readme}: no such README")
    return write_text(readme, replace_block(readme.read_text(encoding="utf-8"), block, str(readme)))
