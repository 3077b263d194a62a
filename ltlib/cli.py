"""Command-line interface: ``python -m ltlib <command>`` (``--help`` lists the commands).

Each command is a small function registered in ``COMMANDS``; argument parsing stays next to it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from .errors import LtlibError

COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int], str]] = {}


def command(name: str, help_text: str, configure: Callable[[argparse.ArgumentParser], None]):
    """Decorator registering ``run(args)`` under ``name``, with ``configure(parser)`` adding its options."""
    def wrap(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        COMMANDS[name] = (configure, run, help_text)
        return run
    return wrap


def _configure_notebooks(p: argparse.ArgumentParser) -> None:
    p.add_argument("--setting", default="default", help="plan setting: smoke | default | full (notebooks/plan.yaml)")
    p.add_argument("--out", type=Path, default=None, help="folder for executed notebooks (default: book/executed)")
    p.add_argument("--force", action="store_true", help="re-execute notebooks that are up to date")
    p.add_argument("--only", nargs="*", default=None, help="execute only these notebooks (names)")


@command("run-notebooks", "execute the book's notebooks through papermill", _configure_notebooks)
def _run_notebooks(args: argparse.Namespace) -> int:
    from .runner import REPO_ROOT, load_plan, run_all

    jobs = load_plan(args.setting)
    if args.only:
        jobs = [j for j in jobs if j.name in set(args.only)]
    out = args.out or REPO_ROOT / "book" / "executed"
    table = run_all(jobs, out, force=args.force)
    print(table.to_string(index=False))
    print(f"[runner] total {table['seconds'].sum():.1f} s over {len(table)} notebooks -> {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ltlib", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (configure, run, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        configure(p)
        p.set_defaults(_run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the command; ltlib errors print one clear line and exit 2."""
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except LtlibError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
