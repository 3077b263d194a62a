"""The exact environment: ``requirements.lock`` and the conda ``environment.yml`` generated from it.

``requirements.lock`` pins every package of the tested environment (``make setup`` installs with it as
constraints); ``pyproject.toml`` states ranges. ``python -m ltlib.lockfile > environment.yml``
(``make environment.yml``) regenerates the conda file, so the two never drift apart.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from .errors import ConfigError

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)$")
PYTHON_VERSION = "3.11"  # the interpreter the lock was resolved for (Makefile's PYTHON_BOOTSTRAP)


def read_lock(path: str | os.PathLike) -> dict[str, str]:
    """The pins of a lock file: ``{name: version}`` in file order.

    Args:
        path: ``requirements.lock``: one ``name==version`` per line; blank lines and ``#`` comments allowed.
    Raises:
        ConfigError: naming the file and line of anything other than an exact pin.
    """
    pins: dict[str, str] = {}
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        match = _PIN.match(text)
        if match is None:
            raise ConfigError(f"{path}, line {number}: expected 'name==version', got {line!r}")
        pins[match.group(1)] = match.group(2)
    return pins


def environment_yml(pins: dict[str, str]) -> str:
    """The conda environment file holding every pin of the lock, installed by pip, plus ltlib itself.

    Args:
        pins: from :func:`read_lock`.
    Returns:
        The YAML text (deterministic: same pins, same bytes).
    """
    header = ("# Generated from requirements.lock by `make environment.yml` (python -m ltlib.lockfile); do not\n"
              "# edit. The pip path (`make setup`) is the tested one; tests/test_lock.py checks that it is\n"
              "# current.\n")
    lines = [header, "name: ltlib\n", "channels:\n", "  - conda-forge\n", "dependencies:\n",
             f"  - python={PYTHON_VERSION}\n", "  - pip\n", "  - pip:\n"]
    lines += [f"      - {name}=={version}\n" for name, version in pins.items()]
    lines.append("      - -e .[book,test]\n")
    return "".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the ``environment.yml`` of ``requirements.lock`` (or of the lock named by ``argv[0]``)."""
    args = sys.argv[1:] if argv is None else argv
    lock = Path(args[0]) if args else Path(__file__).resolve().parent.parent / "requirements.lock"
    sys.stdout.write(environment_yml(read_lock(lock)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
