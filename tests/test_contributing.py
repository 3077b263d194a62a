"""CONTRIBUTING.md's layout stays true: every module of the package has exactly one line there, and every
module named there exists."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENTRY = re.compile(r"^- `(ltlib/[\w/]+\.py)`: \S", re.MULTILINE)  # "- `ltlib/x.py`: what it is"


def listed_modules() -> Counter:
    text = (ROOT / "CONTRIBUTING.md").read_text()
    return Counter(ENTRY.findall(text))


def package_modules() -> set[str]:
    return {p.relative_to(ROOT).as_posix() for p in (ROOT / "ltlib").rglob("*.py") if "__pycache__" not in p.parts}


def test_the_entry_pattern_reads_a_layout_line():
    assert ENTRY.findall("- `ltlib/a/b.py`: does a thing\n- `ltlib/c.py` no colon\n") == ["ltlib/a/b.py"]


def test_every_module_is_listed_once_and_every_listed_module_exists():
    listed, present = listed_modules(), package_modules()
    assert len(present) > 40  # guards against an empty scan
    assert not sorted(present - set(listed)), f"modules missing from CONTRIBUTING.md: {sorted(present - set(listed))}"
    assert not sorted(set(listed) - present), f"CONTRIBUTING.md lists modules that do not exist: " \
                                              f"{sorted(set(listed) - present)}"
    assert not [m for m, n in listed.items() if n > 1], "a module is listed twice"
