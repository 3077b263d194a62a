"""The environment files agree (issue 13): ``requirements.lock`` satisfies every range of ``pyproject.toml``,
``environment.yml`` is exactly what ``ltlib.lockfile`` generates from the lock, and the licence and
citation files the metadata promises exist."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from ltlib.errors import ConfigError
from ltlib.lockfile import environment_yml, read_lock

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def project() -> dict:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]


@pytest.fixture(scope="module")
def lock() -> dict[str, str]:
    return {canonicalize_name(k): v for k, v in read_lock(REPO_ROOT / "requirements.lock").items()}


def requirements(project: dict) -> list[Requirement]:
    extras = [r for group in project["optional-dependencies"].values() for r in group]
    return [Requirement(r) for r in project["dependencies"] + extras]


def test_every_dependency_is_a_range_that_the_lock_satisfies(project, lock):
    for requirement in requirements(project):
        name = canonicalize_name(requirement.name)
        assert name in lock, f"{requirement.name} is not pinned in requirements.lock"
        assert requirement.specifier.contains(lock[name]), f"lock {name}=={lock[name]} outside {requirement}"
        assert "==" not in str(requirement.specifier), f"{requirement}: pyproject states ranges, the lock pins"


def test_python_311_and_312_are_allowed(project):
    from packaging.specifiers import SpecifierSet

    allowed = SpecifierSet(project["requires-python"])
    assert "3.11.7" in allowed and "3.12.1" in allowed and "3.10.13" not in allowed


def test_environment_yml_is_generated_from_the_lock():
    text = (REPO_ROOT / "environment.yml").read_text()
    pins = read_lock(REPO_ROOT / "requirements.lock")
    assert text == environment_yml(pins), "environment.yml is stale: run `make environment.yml`"
    listed = yaml.safe_load(text)["dependencies"][-1]["pip"]
    assert len(listed) == len(pins) + 1 and all("==" in item for item in listed[:-1])


def test_a_lock_line_that_is_not_a_pin_is_refused(tmp_path):
    (tmp_path / "bad.lock").write_text("numpy==2.0\n\ntorch>=2\n")
    with pytest.raises(ConfigError, match=r"bad.lock, line 3"):
        read_lock(tmp_path / "bad.lock")


def test_licence_and_citation(project):
    assert project["license"] == "MIT" and "MIT License" in (REPO_ROOT / "LICENSE").read_text()
    citation = yaml.safe_load((REPO_ROOT / "CITATION.cff").read_text())
    assert citation["cff-version"] == "1.2.0" and citation["license"] == "MIT"
    assert citation["version"] == project["version"]
    assert "Long-tailed" in citation["preferred-citation"]["title"]
