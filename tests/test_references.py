"""Every reference in the repository can be followed from the repository: code, tests, notebooks and
docs cite the paper or the book's own pages, never a document that does not ship with them."""

from __future__ import annotations

import re
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("ltlib", "tests", "book", "notebooks", "data_manifests", ".ci")
TOP_LEVEL = ("README.md", "CONTRIBUTING.md", "Makefile", "pyproject.toml", "environment.yml",
             "_config.yml", "_toc.yml", "requirements.lock")
SUFFIXES = {".py", ".md", ".yaml", ".yml", ".toml", ".txt", ".csv", ".bib", ""}
GENERATED = {"executed", "_build", "__pycache__", ".ipynb_checkpoints"}  # ignored build output
# Names of working documents that never shipped, assembled so that this file does not match itself.
EXTERNAL = re.compile("|".join([
    r"\b(?:PAPER|MINIWORLD|STATS|STYLE|TOOLING)\." + "md",
    "LIFT_GLA" + "_SPEC",
    r"\bspec\s*§?[A-G]\.\d",          # a section letter and number after the word "spec"
]))


def shipped_text_files() -> list[Path]:
    files = [ROOT / name for name in TOP_LEVEL if (ROOT / name).is_file()]
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*")):
            if (path.is_file() and path.suffix in SUFFIXES
                    and not GENERATED.intersection(path.relative_to(ROOT).parts)):
                files.append(path)
    return files


def external_references(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8", errors="replace")
    return [f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)}"
            for m in EXTERNAL.finditer(text)]


def test_the_pattern_recognises_each_kind_of_reference(tmp_path):
    # guards the test below against passing because the pattern matches nothing
    sample = tmp_path / "sample.py"
    for text in ("see MINIWORLD" + ".md", "(LIFT_GLA" + "_SPEC B.4)", "(sp" + "ec A.11)", "sp" + "ec §C.8"):
        sample.write_text(text)
        assert EXTERNAL.search(sample.read_text()), text
    assert not EXTERNAL.search("get_spec(backbone); the paper's Fig. 2; book: Method, 'Groups'")


def test_the_scan_covers_code_tests_notebooks_and_docs():
    names = {path.relative_to(ROOT).as_posix() for path in shipped_text_files()}
    assert {"ltlib/priors.py", "tests/conftest.py", "book/method.md", "notebooks/00_miniworld.py",
            "README.md", "pyproject.toml"} <= names


def test_no_reference_to_documents_outside_the_repository():
    found = [ref for path in shipped_text_files() for ref in external_references(path)]
    assert not found, "references to documents that do not ship:\n" + "\n".join(found)
