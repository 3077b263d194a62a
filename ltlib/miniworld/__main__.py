"""``python -m ltlib.miniworld prepare [WORLD]``: pre-train a world's mini models into the cache, in parallel."""

from __future__ import annotations

import argparse
import time

from .world import load_world


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the command; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m ltlib.miniworld", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    prepare = sub.add_parser("prepare", help="pre-train every model of a world that is not cached yet")
    prepare.add_argument("world", nargs="?", default="default", help="world key or YAML path (default: default)")
    prepare.add_argument("--workers", type=int, default=None, help="parallel processes (default: one per core)")
    prepare.add_argument("--cache-root", default=None, help="cache folder (default: $LTLIB_CACHE or .cache/ltlib)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    world = load_world(args.world, cache_root=args.cache_root, progress=True)
    for name, entry in world.prepare(workers=args.workers).items():
        print(f"{name}: {entry.directory} ({entry.log['seconds']:.0f} s when trained)")
    print(f"{world.config.name}: ready in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
