"""The book's reliability page states how many fault cases the suite holds (tests/test_faults_*.py, marker
``fault``); this test counts them the way pytest collects them and requires the page to say that number."""

from __future__ import annotations

import importlib
import inspect
import math
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PAGE = REPO / "book" / "reliability.md"


def count_fault_cases() -> int:
    """Test functions of the ``tests/test_faults_*.py`` modules (all marked ``fault``), each parametrised
    one counted once per parameter set, as pytest collects them."""
    sys.path.insert(0, str(REPO / "tests"))
    total = 0
    for path in sorted((REPO / "tests").glob("test_faults_*.py")):
        module = importlib.import_module(path.stem)
        assert getattr(module, "pytestmark", None) is not None and module.pytestmark.name == "fault", \
            f"{path.name} is not marked fault as a whole"
        for name, function in inspect.getmembers(module, inspect.isfunction):
            if name.startswith("test_") and function.__module__ == module.__name__:
                marks = [m for m in getattr(function, "pytestmark", []) if m.name == "parametrize"]
                total += math.prod(len(m.args[1]) for m in marks)
    return total


def test_the_reliability_page_states_the_number_of_fault_cases():
    stated = re.findall(r"\*\*(\d+) fault cases\*\*", PAGE.read_text(encoding="utf-8"))
    assert stated == [str(count_fault_cases())], f"book/reliability.md states {stated}"


def test_the_reliability_page_is_in_the_toc_and_names_existing_tests():
    assert "file: book/reliability" in (REPO / "_toc.yml").read_text()
    text = PAGE.read_text(encoding="utf-8")
    named = set(re.findall(r"`(test_faults_\w+)\.py::(\w+)`", text))
    assert len(named) >= 20
    for module, test in named:
        assert re.search(rf"^def {test}\(", (REPO / "tests" / f"{module}.py").read_text(), re.M), (module, test)


def test_the_five_world_check_quotes_the_committed_verdicts():
    """The page's five-world paragraph quotes each factorial verdict over five worlds with either rounding; every
    quoted interval is a line of ``book/data/factorial-five-worlds.csv``, and the three-world lines are the
    committed reports' own (default build: ``verdicts.csv``; non-vectorised kernels: ``verdicts-aten-default.csv``)."""
    import pandas as pd

    judged = pd.read_csv(REPO / "book" / "data" / "factorial-five-worlds.csv")
    text = PAGE.read_text(encoding="utf-8").replace("−", "-")
    paragraph = text[text.index("**Five worlds instead of three"):text.index("**Verdicts in other settings")]
    quoted = re.findall(r"([+-]\d\.\d\d) \[([+-]\d\.\d\d), ([+-]\d\.\d\d)\]", paragraph)
    five = judged[judged.worlds_used == 5]
    assert len(quoted) == len(five) == 4
    lines = {(f"{m:+.2f}", f"{lo:+.2f}", f"{hi:+.2f}") for m, lo, hi in zip(five["mean"], five.low, five.high)}
    assert set(quoted) == lines
    assert (five[five.key == "factorial_prior_over_seed"].verdict == "reproduced").all() and five.firm.any()
    for label, name in (("default kernels", "verdicts.csv"), ("non-vectorised kernels", "verdicts-aten-default.csv")):
        committed = pd.read_csv(REPO / "book" / "data" / name)
        committed = committed[committed.headline & committed.key.str.startswith("factorial")].set_index("key")
        three = judged[(judged.worlds_used == 3) & (judged.label == label)].set_index("key")
        assert (three.verdict == committed.loc[three.index, "verdict"]).all()
        assert (three.per_world == committed.loc[three.index, "per_world"]).all()
