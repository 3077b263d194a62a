"""Where the minutes of a build go: the summary of ``ltlib.phases`` records (the performance page's profile).

``make profile`` records a ``make book`` from a clean cache (``LTLIB_PHASES=$PWD/results/profile/phases.jsonl``)
and summarises it into ``book/data/profile`` (``python -m ltlib.bench.profile PHASES --timings CSV --out DIR``).

How wall time is attributed: every instant between the first record's start and the last record's end is
split equally among the phases running at that instant that have no running child phase (a phase's child
may run in another process: a notebook kernel's phases are children of the runner's ``notebook``). So
the rows partition the build's wall time and the shares sum to 1; an instant with no phase running is
``other (not instrumented)``. Two processes fine-tuning at once each get half of that instant, and
their CPU seconds make "cores busy" (CPU s / wall s) about 2. A phase's ``parts`` (inner-loop totals,
``ltlib.phases.phase_part``) split the phase's attributed wall time in proportion to their share of its
wall time. CPU seconds are exclusive: a record's process CPU time less that of its children in the same
process and of its parts.

A row is a phase's exclusive time: the runner's ``notebook`` row is what no phase inside the notebook
covers (papermill, and notebook code outside the timed phases: tables, display, figure rendering);
``kernel start-up`` runs from a kernel's creation to its first ltlib import that times a phase;
``worker start-up`` the same for processes started inside a notebook (process pools). A kernel the runner starts
ahead of its notebook (``ltlib.book.runner.prestart``) records its start-up, and its fork server's, under the
runner's ``notebooks`` phase while the previous notebook runs; its imports after that are in no phase, so the
instants they share are attributed to the previous notebook's phases.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Sequence

import pandas as pd

from ..errors import ConfigError
from ..storage import read_table, write_text

OTHER = "other (not instrumented)"
PROFILE_COLUMNS = ("phase", "wall_s", "cpu_s", "share", "cores_busy")
_REQUIRED = {"id": str, "phase": str, "start": float, "wall": float, "cpu": float, "pid": int}


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """The records of a ``LTLIB_PHASES`` file.

    Raises:
        ConfigError: naming the file and line of a malformed record.
    """
    records = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            records.append(_check_record(line, f"{path}:{number}"))
    return records


def _check_record(line: str, where: str) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where}: not a JSON record ({exc.msg})") from None
    for key, kind in _REQUIRED.items():
        value = record.get(key) if isinstance(record, dict) else None
        if not isinstance(value, (int, float) if kind is float else kind) or isinstance(value, bool):
            raise ConfigError(f"{where}: field {key!r} missing or not {kind.__name__}")
    if record["wall"] < 0 or record["wall"] != record["wall"]:
        raise ConfigError(f"{where}: wall {record['wall']} is negative or NaN")
    return record


def attributed_wall(records: Sequence[dict[str, Any]]) -> tuple[dict[str, float], float]:
    """Wall seconds attributed to each record (by id) and to no record, by the sweep of the module docstring.

    Returns:
        (id → attributed seconds, seconds with no phase running); together they sum to the span.
    """
    by_id = {r["id"]: r for r in records}
    ancestors = {r["id"]: _ancestors(r["id"], by_id) for r in records}
    events = sorted([(r["start"], 1, r["id"]) for r in records] + [(r["start"] + r["wall"], 0, r["id"])
                                                                   for r in records])
    out, idle, active, previous = defaultdict(float), 0.0, set(), None
    for time, kind, record_id in events:
        if previous is not None and time > previous:
            covered = set().union(*(ancestors[a] for a in active)) if active else set()
            leaves = [a for a in active if a not in covered]
            for leaf in leaves:
                out[leaf] += (time - previous) / len(leaves)
            idle += 0.0 if leaves else time - previous
        (active.add if kind else active.discard)(record_id)
        previous = time
    return dict(out), idle


def _ancestors(record_id: str, by_id: dict[str, dict[str, Any]]) -> set[str]:
    found, parent = set(), by_id[record_id].get("parent")
    while parent in by_id and parent not in found:
        found.add(parent)
        parent = by_id[parent].get("parent")
    return found


def exclusive_cpu(records: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Each record's CPU seconds less its same-process children's and its parts' (id → seconds, ≥ 0)."""
    pids = {r["id"]: r["pid"] for r in records}
    out = {r["id"]: r["cpu"] - sum(p[1] for p in r.get("parts", {}).values()) for r in records}
    for r in records:
        parent = r.get("parent")
        if parent in out and pids[parent] == r["pid"]:
            out[parent] -= r["cpu"]
    return {k: max(v, 0.0) for k, v in out.items()}


def profile_table(records: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """The profile: one row per phase (and phase part), largest wall time first, then ``other``.

    Returns:
        Columns :data:`PROFILE_COLUMNS`: wall seconds attributed, exclusive CPU seconds, share of the
        build's wall time (rows sum to 1), cores busy (CPU s / wall s).
    """
    wall, idle = attributed_wall(records)
    cpu = exclusive_cpu(records)
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for r in records:
        for label, seconds, cpu_seconds in _split_parts(r, wall.get(r["id"], 0.0), cpu[r["id"]]):
            totals[label][0] += seconds
            totals[label][1] += cpu_seconds
    rows = sorted(([k, *v] for k, v in totals.items()), key=lambda x: -x[1]) + [[OTHER, idle, float("nan")]]
    table = pd.DataFrame(rows, columns=["phase", "wall_s", "cpu_s"])
    span = table["wall_s"].sum()
    share = table["wall_s"] / span if span > 0 else table["wall_s"] * 0.0
    return table.assign(share=share, cores_busy=table["cpu_s"] / table["wall_s"].where(table["wall_s"] > 0))


def _split_parts(record: dict[str, Any], attributed: float, cpu: float) -> Iterable[tuple[str, float, float]]:
    """(label, attributed wall, CPU) of a record's own remainder and of each of its parts."""
    parts = record.get("parts") or {}
    scale = attributed / record["wall"] if record["wall"] > 0 else 0.0
    remainder = attributed - sum(min(p[0], record["wall"]) * scale for p in parts.values())
    yield record["phase"] + (" (rest)" if parts else ""), max(remainder, 0.0), cpu
    for name, (part_wall, part_cpu, _) in parts.items():
        yield f"{record['phase']}: {name}", min(part_wall, record["wall"]) * scale, part_cpu


def notebook_table(records: Sequence[dict[str, Any]], timings: pd.DataFrame | None = None) -> pd.DataFrame:
    """Attributed wall seconds per notebook (rows) and phase (columns), beside the runner's own time.

    A record belongs to the notebook whose runner ``notebook`` record is among its ancestors; records of
    no notebook (the HTML build) are left out.

    Args:
        timings: the runner's ``timings.csv`` (notebook, status, seconds); adds ``runner_seconds``, which
            should match ``total`` up to the runner's own bookkeeping around papermill.
    Returns:
        One row per notebook: a column per phase, ``total`` and (with ``timings``) ``runner_seconds``.
    """
    wall, _ = attributed_wall(records)
    by_id = {r["id"]: r for r in records}
    cells: dict[tuple[str, str], float] = defaultdict(float)
    for r in records:
        owner = next((by_id[a] for a in {r["id"]} | _ancestors(r["id"], by_id) if by_id[a]["phase"] == "notebook"),
                     None)
        if owner is not None:
            cells[(owner.get("detail", ""), r["phase"])] += wall.get(r["id"], 0.0)
    table = pd.Series(cells, dtype=float).unstack(fill_value=0.0) if cells else pd.DataFrame()
    table = table.assign(total=table.sum(axis=1)) if len(table) else table
    if timings is not None and len(table):
        table = table.join(timings.set_index("notebook")["seconds"].rename("runner_seconds"))
    return table.rename_axis("notebook")


def markdown(table: pd.DataFrame) -> str:
    """The profile as a markdown table (seconds to 0.1, shares in percent)."""
    lines = ["| phase | wall s | CPU s | share | cores busy |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {r.phase} | {r.wall_s:.1f} | {_fmt(r.cpu_s, '.1f')} | {100 * r.share:.1f} % | "
              f"{_fmt(r.cores_busy, '.2f')} |" for r in table.itertuples()]
    return "\n".join(lines) + f"\n\nTotal wall time: {table['wall_s'].sum():.1f} s.\n"


def _fmt(value: float, spec: str) -> str:
    return "–" if value != value else format(value, spec)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ltlib.bench.profile PHASES.jsonl [--timings CSV] [--out DIR]``: print the profile and the
    per-notebook table; with ``--out`` also write ``profile.csv``, ``profile.md`` and ``notebooks.csv``."""
    parser = argparse.ArgumentParser(prog="python -m ltlib.bench.profile", description=main.__doc__)
    parser.add_argument("records", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--timings", type=Path, help="the runner's timings.csv (per-notebook cross-check)")
    args = parser.parse_args(argv)
    if not args.records.is_file():
        parser.exit(2, f"error: {args.records}: no such file (set LTLIB_PHASES to record a build)\n")
    try:
        records = read_records(args.records)
        table = profile_table(records)
    except ConfigError as exc:
        parser.exit(2, f"error: {exc}\n")
    print(markdown(table))
    timings = read_table(args.timings) if args.timings and args.timings.is_file() else None
    notebooks = notebook_table(records, timings).round(1)
    print(notebooks.to_markdown() if len(notebooks) else "(no notebook records)")
    if args.out:
        write_text(args.out / "profile.csv", table.to_csv(index=False))
        write_text(args.out / "profile.md", markdown(table))
        write_text(args.out / "notebooks.csv", notebooks.to_csv())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
