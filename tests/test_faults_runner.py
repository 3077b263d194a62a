"""Fault cases (issue 14, items 5 and 6): the notebook runner never publishes a failed page as up to date and
never lets a ``--set`` key or value become code. Every test here is a ``fault`` case counted on the book's
reliability page."""

from __future__ import annotations

from pathlib import Path

import pytest

from ltlib.errors import LtlibError

pytestmark = pytest.mark.fault

HEADER = "# ---\n# jupyter:\n#   kernelspec:\n#     display_name: Python 3\n#     language: python\n" \
         "#     name: python3\n# ---\n"


@pytest.fixture
def plan(tmp_path) -> Path:
    nb = tmp_path / "notebooks"
    nb.mkdir()
    (nb / "page.py").write_text(HEADER + '\n# %% tags=["parameters"]\nflag = "flag.txt"\n\n# %%\n'
                                "from pathlib import Path\nprint('flag says', Path(flag).read_text())\n")
    (nb / "plan.yaml").write_text("settings:\n  quick: {}\nnotebooks:\n  - name: page\n")
    return nb / "plan.yaml"


def _run(plan, out, **kw):
    from ltlib.book.runner import load_plan, run_all
    return run_all(load_plan("quick", plan), out, log=lambda *_: None, **kw)


def test_a_forced_rerun_that_fails_leaves_no_stamp_vouching_for_a_failed_page(plan, tmp_path, monkeypatch):
    from ltlib.book.runner import is_up_to_date, load_plan
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    (tmp_path / "flag.txt").write_text("good")
    import ltlib.book.runner as runner
    monkeypatch.setattr(runner.execute, "__kwdefaults__", {"cwd": tmp_path, "timeout": None})
    assert list(_run(plan, out).status) == ["executed"]
    good = (out / "page.ipynb").read_text()
    (tmp_path / "flag.txt").unlink()  # the re-run fails
    with pytest.raises(LtlibError, match="notebook page .*FileNotFoundError"):
        _run(plan, out, force=True)
    page = (out / "page.ipynb").read_text() if (out / "page.ipynb").exists() else None
    assert page in (good, None)  # never the failed execution under the final name
    assert not is_up_to_date(load_plan("quick", plan)[0], out)  # the next build executes it again
    (tmp_path / "flag.txt").write_text("good again")
    assert list(_run(plan, out).status) == ["executed"]


def test_a_failing_notebook_leaves_no_partial_page(plan, tmp_path, monkeypatch):
    import ltlib.book.runner as runner
    monkeypatch.setattr(runner.execute, "__kwdefaults__", {"cwd": tmp_path, "timeout": None})
    with pytest.raises(LtlibError, match="notebook page"):
        _run(plan, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if p.suffix == ".ipynb") == []


@pytest.mark.parametrize("key", ["y\nopen('MARKER', 'w').close()\nz", "__import__('os')", "class", "a b"])
def test_set_keys_that_are_not_identifiers_are_refused(plan, tmp_path, key):
    from ltlib.book.runner import load_plan
    with pytest.raises(LtlibError, match="--set: parameter name .* is not a Python identifier"):
        load_plan("quick", plan, **{key: 1})


def test_set_keys_are_checked_on_the_command_line_before_anything_runs(plan, tmp_path, capsys, monkeypatch):
    from ltlib.cli import main
    monkeypatch.chdir(tmp_path)
    code = main(["run-notebooks", "--setting", "smoke", "--only", "nothing", "--out", str(tmp_path / "out"),
                 "--set", "y\nopen('MARKER', 'w').close()\nz=1"])
    assert code == 2 and "not a Python identifier" in capsys.readouterr().err
    assert not (tmp_path / "MARKER").exists()


@pytest.mark.parametrize("value", [{1: "a"}, object()])
def test_set_values_must_be_plain_literals(plan, value):
    from ltlib.book.runner import load_plan
    with pytest.raises(LtlibError, match="is not a plain literal"):
        load_plan("quick", plan, flag=value)
