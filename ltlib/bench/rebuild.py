"""How long a rebuild takes once the caches are warm (the performance page's rebuild table).

``make profile`` times a ``make book`` from a clean cache; right after it, in the same clone, this module
times the two rebuilds a user meets next, each with the command a user would type:

- ``make book FORCE=1``: every notebook executed again, with the pre-trained mini models (``.cache/``) and the
  fine-tuning runs (``runs/``) of the clean build reused;
- ``make book``: nothing changed, every notebook up to date (the runner skips it) and the HTML rebuilt.

``python -m ltlib.bench.rebuild --out book/data/profile/rebuilds.csv [--make make]`` writes one row per
rebuild: its name, the command, wall seconds, exit status, the git revision and the time it started.
"""

from __future__ import annotations

import argparse
import subprocess
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from ..provenance import git_sha
from ..storage import write_text

REBUILDS = (
    ("warm caches, every notebook executed again", ("book", "FORCE=1")),
    ("nothing changed", ("book",)),
)
COLUMNS = ("build", "command", "seconds", "returncode", "git_sha", "started")


def time_rebuilds(make: Sequence[str] = ("make",), rebuilds=REBUILDS) -> pd.DataFrame:
    """Run each rebuild in order (in the current folder) and time it; stops at the first that fails.

    Args:
        make: the make command (e.g. ``("make", "-s")``); rebuilds: ``(name, make arguments)`` pairs.
    Returns:
        One row per rebuild run (:data:`COLUMNS`); a failed one is the last row, with its exit status.
    """
    rows = []
    for name, arguments in rebuilds:
        command = [*make, *arguments]
        started, start = datetime.now(timezone.utc).isoformat(timespec="seconds"), time.perf_counter()
        returncode = subprocess.call(command)
        rows.append({"build": name, "command": " ".join(command), "seconds": round(time.perf_counter() - start, 1),
                     "returncode": returncode, "git_sha": git_sha(), "started": started})
        if returncode:
            break
    return pd.DataFrame(rows, columns=list(COLUMNS))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ltlib.bench.rebuild --out CSV [--make MAKE]``: time the rebuilds after a clean build; exit
    status 1 when one of them failed (its row is still written)."""
    parser = argparse.ArgumentParser(prog="python -m ltlib.bench.rebuild", description=main.__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--make", default="make", help="the make command (default: make)")
    args = parser.parse_args(argv)
    table = time_rebuilds(args.make.split())
    write_text(args.out, table.to_csv(index=False))
    print(table.to_markdown(index=False))
    return int(bool((table["returncode"] != 0).any()))


if __name__ == "__main__":
    raise SystemExit(main())
