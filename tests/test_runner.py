"""The notebook runner: parameters injected, up-to-date outputs skipped, failures name the notebook."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from html_pages import code_cells, table_rows
from ltlib.book.runner import NotebookError, load_plan, run_all
from ltlib.errors import ConfigError

HEADER = '''# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---
'''


def write_notebook(folder: Path, name: str, body: str) -> None:
    cell = '\n# %% tags=["parameters"]\nsetting = ""\noverrides = {"value": 1}\n\n# %%\nvalue = overrides["value"]\n'
    (folder / f"{name}.py").write_text(HEADER + cell + body)


@pytest.fixture
def plan(tmp_path) -> Path:
    nb = tmp_path / "notebooks"
    nb.mkdir()
    write_notebook(nb, "good", "print('value is', value * 2)\n\n# %% [markdown]\n# # A page title\n")
    write_notebook(nb, "bad", "raise ValueError('deliberate failure ' + str(value))\n")
    (nb / "plan.yaml").write_text(
        "settings:\n  quick: {value: 21}\n"
        "notebooks:\n  - name: good\n  - name: bad\n    settings: {quick: {value: 5}}\n")
    return nb / "plan.yaml"


def test_parameters_are_injected_and_the_cell_is_hidden(plan, tmp_path):
    [good, _] = load_plan("quick", plan)
    run_all([good], tmp_path / "out")
    nb = nbformat.read(tmp_path / "out" / "good.ipynb", as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "hide-input" in injected[0].metadata["tags"]
    assert 'setting = "quick"' in injected[0].source and '"value": 21' in injected[0].source
    # The overridden defaults are removed from the page; every other code cell is folded.
    [defaults] = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert "remove-cell" in defaults.metadata["tags"] and '"value": 1' in defaults.source
    body = [c for c in nb.cells if c.cell_type == "code" and c not in (defaults, injected[0])]
    assert body and all("hide-input" in c.metadata["tags"] for c in body)
    outputs = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "value is 42" in outputs


def test_the_built_page_folds_the_injected_values_and_drops_the_overridden_defaults(plan, tmp_path):
    # A one-page jupyter-book around the runner's output: what a reader of the real book gets.
    site = tmp_path / "site"
    [good, _] = load_plan("quick", plan)
    run_all([good], site / "executed")
    (site / "intro.md").write_text("# Intro\n")
    (site / "_config.yml").write_text("title: t\nexecute:\n  execute_notebooks: 'off'\n")
    (site / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n  - file: executed/good\n")
    jb = Path(sys.executable).parent / "jupyter-book"
    build = subprocess.run([str(jb), "build", str(site), "-W", "-n"], capture_output=True, text=True)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    cells = code_cells((site / "_build" / "html" / "executed" / "good.html").read_text())
    [injected] = [c for c in cells if "injected-parameters" in c.tags]
    assert '"value": 21' in injected.source and injected.folded and "hide-input" in injected.tags
    assert not [c for c in cells if "parameters" in c.tags], "the overridden defaults cell is on the page"
    assert not any('"value": 1}' in c.source for c in cells)
    assert all(c.has_input for c in cells) and len(cells) == 2


def test_html_pages_reads_folding_and_table_rows():
    # guards the page parser above: an open <details> is shown, a closed one folded
    html = ('<div class="cell tag_a"><details open><div class="cell_input">x = 1</div></details></div>'
            '<div class="cell tag_b"><details><div class="cell_input">y = 2</div></details></div>'
            '<table><tr><th>claim</th><td> one <b>two</b>\n</td></tr><tr><td>1<br>2</td></tr></table>')
    shown, folded = code_cells(html)
    assert (shown.tags, shown.source, shown.folded) == ({"a"}, "x = 1", False)
    assert (folded.tags, folded.source, folded.folded) == ({"b"}, "y = 2", True)
    assert table_rows(html) == [["claim", "one two"], ["12"]]


def test_up_to_date_notebooks_are_skipped_unless_forced(plan, tmp_path):
    [good, _] = load_plan("quick", plan)
    first = run_all([good], tmp_path / "out")
    again = run_all([good], tmp_path / "out")
    forced = run_all([good], tmp_path / "out", force=True)
    assert list(first.status) == ["executed"] and list(again.status) == ["up-to-date"]
    assert list(forced.status) == ["executed"]
    changed = load_plan("quick", plan, value=3)[0]
    assert list(run_all([changed], tmp_path / "out").status) == ["executed"]
    assert (tmp_path / "out" / "timings.csv").read_text().startswith("notebook,status,seconds")


def test_a_failing_notebook_is_named(plan, tmp_path):
    [_, bad] = load_plan("quick", plan)
    assert bad.parameters == {"value": 5}
    with pytest.raises(NotebookError, match=r"notebook bad .*ValueError: deliberate failure 5"):
        run_all([bad], tmp_path / "out")


def test_unknown_setting_and_missing_source_are_reported(plan):
    with pytest.raises(ConfigError, match="unknown setting 'nope'"):
        load_plan("nope", plan)
    plan.write_text(plan.read_text().replace("name: good", "name: missing"))
    with pytest.raises(ConfigError, match="notebook 'missing' has no source"):
        load_plan("quick", plan)


def test_the_books_plan_covers_every_notebook_in_the_toc(repo_root):
    toc = (repo_root / "_toc.yml").read_text()
    from ltlib.book import claims

    names = [j.name for j in load_plan("default")]
    # the report judges the rows of these notebooks, so they run before it (the plan's order is the run order)
    measured = {claims.NB00, claims.NB01, claims.NB02, claims.NB03, claims.NB08}
    assert measured <= set(names[:names.index("04_report")])
    assert len(names) == len(set(names)) and names[0] == "00_miniworld"
    for name in names:
        assert f"book/executed/{name}" in toc
    assert {j.name for j in load_plan("smoke")} == set(names)
    assert all(j.parameters["scale"] == "mini" for j in load_plan("smoke"))


def test_a_page_resolves_its_setting_and_overrides_like_the_runner(tmp_path):
    from ltlib.book.page import open_page, resolve_parameters

    [job] = load_plan("smoke", only=["04_report"], out_dir=str(tmp_path))
    assert job.injected() == {"setting": "smoke", "overrides": job.parameters}
    assert resolve_parameters("04_report", **job.injected()) == job.parameters
    assert resolve_parameters("00_miniworld", "full")["scale"] == "mini"  # the plan's per-notebook setting
    page = open_page("04_report", **job.injected())
    assert page.out_dir == tmp_path and page.scale == "mini" and page.seeds == [0] and page.world_seeds == [0, 1]
    assert page.study is None and page.table is None  # the report only reads the other pages' tables
    confounder = open_page("02_confounder", "smoke", {"out_dir": str(tmp_path)})
    assert confounder.table.world == confounder.world_config.name == "smoke"
    assert confounder.table.out_dir == tmp_path / "tables"
    assert confounder.table.world_seed == confounder.world_config.seed
    assert page.as_planned and confounder.as_planned  # other locations only
    assert not open_page("04_report", "smoke", {"out_dir": str(tmp_path), "worlds": [0, 1, 2]}).as_planned
def test_the_notebook_table_is_published_beside_the_executed_notebook(tmp_path):
    from ltlib.book.runner import NotebookJob, publish_table

    (tmp_path / "res" / "tables").mkdir(parents=True)
    (tmp_path / "res" / "tables" / "01_x.csv").write_text("metric,value\na,1\n")
    job = NotebookJob("01_x", tmp_path / "01_x.py", {"out_dir": "res"})
    published = publish_table(job, tmp_path / "executed", cwd=tmp_path)
    assert published == tmp_path / "executed" / "data" / "01_x.csv"
    assert published.read_text() == "metric,value\na,1\n"
    assert publish_table(NotebookJob("02_y", tmp_path / "02_y.py", {"out_dir": "res"}), tmp_path, cwd=tmp_path) is None


def test_time_left_adds_the_previous_times_and_counts_the_untimed():
    from ltlib.book.runner import time_left

    previous = {"a": 100.4, "b": 30.0}
    assert time_left(["a", "b"], previous) == "about 130 s left by the previous build's times"
    assert time_left(["b", "c", "d"], previous) == ("about 30 s left by the previous build's times"
                                                    " + 2 notebook(s) not timed before")
    assert time_left(["c"], previous) == "time left unknown: 1 notebook(s) not timed before"
    assert time_left([], previous) == "nothing left"


def test_previous_times_ignore_a_missing_broken_or_nan_timings_file(tmp_path):
    from ltlib.book.runner import previous_seconds

    assert previous_seconds(tmp_path) == {}
    (tmp_path / "timings.csv").write_text("notebook,status,seconds\na,executed,12.5\nb,executed,\nc,executed,x\n")
    assert previous_seconds(tmp_path) == {"a": 12.5}
    (tmp_path / "timings.csv").write_text("no,such,columns\n1,2,3\n")
    assert previous_seconds(tmp_path) == {}


def test_progress_lines_number_the_notebooks_and_estimate_from_the_previous_build(plan, tmp_path):
    [good, _] = load_plan("quick", plan)
    lines: list[str] = []
    first = run_all([good], tmp_path / "out", log=lines.append)
    assert lines[0].startswith("[runner] 1/1 good: executing (time left unknown: 1 notebook(s) not timed before)")
    assert lines[1].startswith(f"[runner] 1/1 good: done in {first['seconds'][0]:.1f} s (")
    assert lines[1].endswith(" s elapsed; nothing left)")
    lines.clear()
    run_all([good], tmp_path / "out", log=lines.append)
    assert lines == ["[runner] 1/1 good: up to date, skipped"]
    lines.clear()
    run_all([good], tmp_path / "out", force=True, log=lines.append)
    assert lines[0].startswith(f"[runner] 1/1 good: executing (about {first['seconds'][0]:.0f} s left by the "
                               "previous build's times)")


def test_progress_streams_without_a_terminal(plan, tmp_path):
    # stdout is a file, not a terminal: the second notebook reads it while the runner is still running, so
    # the first notebook's lines are there only if the runner flushed them (a pipe or file is block-buffered)
    log = tmp_path / "runner.log"
    write_notebook(plan.parent, "second", f"assert ': done in ' in open({str(log)!r}).read(), 'not streamed'\n")
    plan.write_text(plan.read_text().replace("  - name: bad\n    settings: {quick: {value: 5}}\n",
                                             "  - name: second\n"))
    script = ("import sys; from pathlib import Path; from ltlib.book.runner import load_plan, run_all; "
              "run_all(load_plan('quick', Path(sys.argv[1])), Path(sys.argv[2]))")
    repo = Path(__file__).resolve().parent.parent
    with log.open("w") as out:
        done = subprocess.run([sys.executable, "-c", script, str(plan), str(tmp_path / "out")], stdout=out,
                              stderr=subprocess.PIPE, text=True, cwd=tmp_path, timeout=300,
                              env={**__import__("os").environ, "PYTHONPATH": str(repo)})
    assert done.returncode == 0, done.stderr[-3000:]
    text = log.read_text().splitlines()
    assert [line.split(":")[0] for line in text] == ["[runner] 1/2 good"] * 2 + ["[runner] 2/2 second"] * 2


def _recording_prestart(monkeypatch) -> list:
    """Wrap the runner's prestart so a test sees every kernel it started ahead."""
    from ltlib.book import runner

    started, original = [], runner.prestart
    monkeypatch.setattr(runner, "prestart", lambda job, cwd=None: started.append(original(job, cwd)) or started[-1])
    return started


def test_the_next_notebooks_kernel_starts_ahead_and_runs_it_with_the_environment_of_its_turn(plan, tmp_path,
                                                                                             monkeypatch):
    write_notebook(plan.parent, "env", "import os\nprint('mark', os.environ.get('LTLIB_TEST_MARK'), os.getpid())\n")
    plan.write_text("settings:\n  quick: {value: 21}\nnotebooks:\n  - name: good\n  - name: env\n")
    started = _recording_prestart(monkeypatch)
    monkeypatch.delenv("LTLIB_TEST_MARK", raising=False)

    def log(line: str) -> None:  # the runner's environment changes after the kernel of "env" was started
        if "2/2 env: executing" in line:
            monkeypatch.setenv("LTLIB_TEST_MARK", "late")
    run_all(load_plan("quick", plan), tmp_path / "out", log=log)
    assert [kernel.name for kernel in started] == ["env"]
    nb = nbformat.read(tmp_path / "out" / "env.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", [])).split()
    assert printed[:2] == ["mark", "late"]
    assert [c.execution_count for c in nb.cells if c.cell_type == "code"] == [1, 2, 3]  # the warm-up not counted
    assert not started[0].manager.is_alive()  # shut down after its notebook


def test_a_failing_notebook_leaves_no_kernel_started_ahead_running(plan, tmp_path, monkeypatch):
    plan.write_text("settings:\n  quick: {value: 21}\nnotebooks:\n  - name: bad\n  - name: good\n")
    started = _recording_prestart(monkeypatch)
    with pytest.raises(NotebookError, match="bad"):
        run_all(load_plan("quick", plan), tmp_path / "out")
    assert [kernel.name for kernel in started] == ["good"] and not started[0].manager.is_alive()


def test_no_kernel_starts_ahead_with_prestart_off_or_for_a_single_notebook(plan, tmp_path, monkeypatch):
    started = _recording_prestart(monkeypatch)
    run_all(load_plan("quick", plan)[:1], tmp_path / "one")
    monkeypatch.setenv("LTLIB_PRESTART", "0")
    plan.write_text("settings:\n  quick: {value: 21}\nnotebooks:\n  - name: good\n  - name: good2\n")
    write_notebook(plan.parent, "good2", "print(value)\n")
    run_all(load_plan("quick", plan), tmp_path / "off")
    assert started == [] and (tmp_path / "off" / "good2.ipynb").is_file()


def test_the_warm_up_starts_the_fork_server_only_for_pages_with_worker_pools(monkeypatch):
    from ltlib import parallel
    from ltlib.book.page import POOL_PAGES, warm_up

    started = []
    monkeypatch.setattr(parallel, "start_fork_server", lambda: started.append(True))
    monkeypatch.setenv("LTLIB_WORKERS", "2")
    warm_up("04_report")
    assert started == []
    warm_up("01_imbalance")
    assert started == [True] and {"00_miniworld", "01_imbalance", "02_confounder", "03_main_tables",
                                  "07_gla_regimes", "08_factorial"} == set(POOL_PAGES)
    monkeypatch.setenv("LTLIB_WORKERS", "1")  # one worker runs in the page's own process: no pool
    warm_up("03_main_tables")
    assert started == [True]


def test_only_the_default_setting_as_planned_is_checked_against_the_other_kernels_build(tmp_path, monkeypatch):
    """The committed builds with other CPU kernels are of the default setting as planned: a page of that setting
    loses firmness where they differ (here the factorial verdict that flips there), any other page keeps it."""
    import pandas as pd
    import torch

    from ltlib.book.page import open_page

    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    line = pd.DataFrame({"key": ["factorial_prior_over_seed"], "prior_source": [""], "calibration": [""],
                         "headline": [True], "verdict": ["reproduced"], "firm": [True], "note": [""]})
    default = open_page("04_report", "default", {"out_dir": str(tmp_path)})
    assert default.compares_with_committed_builds
    checked = default.check_rounding(line)
    assert not checked.firm.any() and "non-vectorised kernels" in checked.note.iloc[0]
    for page in (open_page("04_report", "smoke", {"out_dir": str(tmp_path)}),
                 open_page("04_report", "default", {"out_dir": str(tmp_path), "worlds": [0, 1, 2, 3, 4]})):
        assert not page.compares_with_committed_builds and page.check_rounding(line) is line
