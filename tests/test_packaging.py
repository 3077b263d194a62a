"""The three dependency lists agree: pyproject.toml (what the package asks for), requirements.lock (the
tested, fully pinned environment) and environment.yml (the same pins for conda users)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent


def pyproject_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project.get("optional-dependencies", {})
    return [Requirement(line) for line in project["dependencies"] + [r for group in extras.values() for r in group]]


def parse_pins(lines: list[str], source: str) -> dict[str, Version]:
    """``name==version`` lines as {canonical name: version}; any other requirement line is an error."""
    pins: dict[str, Version] = {}
    for number, line in enumerate(lines, start=1):
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-e ") or line in {"-e .", "."}:
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)", line)
        assert match, f"{source}:{number}: not an exact pin: {line!r}"
        name = canonicalize_name(match.group(1))
        assert name not in pins, f"{source}:{number}: {name} pinned twice"
        pins[name] = Version(match.group(2))
    return pins


def lock_pins() -> dict[str, Version]:
    return parse_pins((ROOT / "requirements.lock").read_text().splitlines(), "requirements.lock")


def conda_pins() -> dict[str, Version]:
    spec = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_sections = [entry["pip"] for entry in spec["dependencies"] if isinstance(entry, dict) and "pip" in entry]
    assert len(pip_sections) == 1, "environment.yml: expected exactly one pip: section"
    return parse_pins([str(item) for item in pip_sections[0]], "environment.yml")


def test_parse_pins_rejects_a_range_and_names_the_line():
    with pytest.raises(AssertionError, match="lock:2: not an exact pin"):
        parse_pins(["numpy==2.4.6", "scipy>=1.10"], "lock")
    assert parse_pins(["Foo_Bar==1.0  # why", "", "-e ."], "lock") == {"foo-bar": Version("1.0")}


def test_conda_pins_equal_the_lock():
    lock, conda = lock_pins(), conda_pins()
    assert conda, "environment.yml lists no pip pins"
    missing = sorted(set(conda) - set(lock))
    assert not missing, f"environment.yml pins packages the lock does not: {missing}"
    differ = {name: (str(conda[name]), str(lock[name])) for name in conda if conda[name] != lock[name]}
    assert not differ, f"environment.yml vs requirements.lock: {differ}"


def test_every_pyproject_requirement_is_satisfied_by_the_lock():
    lock = lock_pins()
    for requirement in pyproject_requirements():
        name = canonicalize_name(requirement.name)
        assert name in lock, f"pyproject.toml requires {requirement}, which requirements.lock does not pin"
        assert requirement.specifier.contains(lock[name], prereleases=True), \
            f"pyproject.toml requires {requirement}; requirements.lock pins {lock[name]}"


def test_every_pyproject_requirement_is_in_the_conda_environment():
    conda = conda_pins()
    missing = sorted(str(r) for r in pyproject_requirements() if canonicalize_name(r.name) not in conda)
    assert not missing, f"environment.yml lacks {missing}"
