"""The book: every notebook executed at the smoke setting through the runner, a strict jupyter-book
build, and the HTML checked the way a reader sees it (pages, figures, local MathJax, a screenshot)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from browser import rendered_dom, screenshot
from html_pages import code_cells, table_rows
from ltlib.book.registry import load_registry
from ltlib.book.report import OTHER_SCALE, UNINFORMATIVE
from ltlib.book.registry import (INCONCLUSIVE, NO_VERDICT, NOT_MEASURED, NOT_REPRODUCED, REPRODUCED,
                                 SINGLE_RUN)
from ltlib.book.runner import load_plan, run_all

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow

# Folders that `make test`, linters, coverage or Jupyter leave in a clone, at the root and below it.
TOOL_CACHES = (".pytest_cache", ".mypy_cache", ".ruff_cache", ".hypothesis", ".ipynb_checkpoints", "htmlcov",
               ".tox", ".nox", "__pycache__", "ltlib.egg-info", "book/.ipynb_checkpoints", "book/__pycache__")


def plant_tool_caches(root: Path) -> list[Path]:
    """Create every tool cache under ``root`` with a Markdown file inside, as pytest's own cache has.

    Returns:
        The planted cache folders and files (``.coverage`` is a file, not a folder).
    """
    planted = []
    for name in TOOL_CACHES:
        (root / name).mkdir(parents=True, exist_ok=True)
        (root / name / "README.md").write_text("# A tool cache\n\nNot a page of the book.\n")
        planted.append(root / name)
    (root / ".coverage").write_text("coverage data\n")
    return planted + [root / ".coverage"]


def strict_build(root: Path) -> subprocess.CompletedProcess:
    jb = Path(sys.executable).parent / "jupyter-book"
    return subprocess.run(
        [str(jb), "build", str(root), "-W", "-n", "--keep-going"], capture_output=True, text=True, check=False
    )


def toc_files() -> list[str]:
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [c["file"] for c in part["chapters"]]
    return files


@pytest.fixture(scope="session")
def smoke_site(tmp_path_factory, pretrained_world) -> Path:
    """A copy of the book sources with the smoke notebooks executed into it, built strictly. The notebooks
    find the smoke world's models in the session's cache (``pretrained_world``): pre-trained once per run."""
    root = tmp_path_factory.mktemp("site")
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(REPO / name, root / name)
    shutil.copytree(REPO / "book", root / "book", ignore=shutil.ignore_patterns("executed"))
    jobs = load_plan("smoke", out_dir=str(root / "results"), runs_root=str(root / "runs"))
    run_all(jobs, root / "book" / "executed", force=True)
    plant_tool_caches(root)  # as `make test` before `make book` leaves them in one clone
    build = strict_build(root)
    assert build.returncode == 0, f"strict book build failed:\n{build.stdout[-4000:]}\n{build.stderr[-4000:]}"
    return root


def html_of(site: Path, toc_file: str) -> Path:
    return site / "_build" / "html" / f"{toc_file}.html"


def test_every_page_in_the_toc_exists(smoke_site):
    missing = [f for f in toc_files() if not html_of(smoke_site, f).is_file()]
    assert not missing, f"pages in _toc.yml without HTML: {missing}"


def test_the_books_stylesheet_is_served_and_linked(smoke_site):
    """book/_static/ltlib.css (long names in table cells wrap) is copied into the site and every page links it."""
    assert (smoke_site / "_build" / "html" / "_static" / "ltlib.css").read_text() == \
        (REPO / "book" / "_static" / "ltlib.css").read_text()
    for f in toc_files():
        assert re.search(r'href="[./]*_static/ltlib\.css', html_of(smoke_site, f).read_text()), f


def test_each_notebook_page_shows_its_figures(smoke_site):
    for f in toc_files():
        if "executed/" not in f or f.endswith(("04_report", "09_sensitivity")):  # tables of verdicts only
            continue
        html = html_of(smoke_site, f).read_text()
        images = re.findall(r'<img[^>]+src="([^"]+\.(?:png|svg))"', html)
        assert images, f"{f}: no figure on the page"
        for src in images:
            assert (html_of(smoke_site, f).parent / src).is_file(), f"{f}: broken image {src}"
        assert "Traceback (most recent call last)" not in html, f"{f}: a cell raised"


def test_the_injected_parameters_are_folded_and_the_overridden_defaults_absent(smoke_site):
    cells = code_cells(html_of(smoke_site, "book/executed/01_imbalance").read_text())
    [injected] = [c for c in cells if "injected-parameters" in c.tags]
    assert injected.folded and '"world": "smoke"' in injected.source
    assert not [c for c in cells if "parameters" in c.tags], "the notebook's defaults cell is on the page"
    assert not any('setting = "default"' in c.source for c in cells)  # the notebook's own default


def test_the_report_shows_the_preregistered_registry_with_its_margins(smoke_site):
    rows = table_rows(html_of(smoke_site, "book/executed/04_report").read_text())
    registry = load_registry()
    [header] = [row for row in rows if "rule" in row and "priors" in row]
    rules = ("> 0", "< 0", "no verdict")
    body = [row for row in rows if len(row) == len(header) and row[header.index("claim")] in
            {c.statement for c in registry} and (row[header.index("rule")] in rules or
                                                 row[header.index("rule")].startswith("|x| <"))]
    assert len(body) == len(registry)
    [reasons] = [row for row in rows if "why this size" in row]
    margins = {row[reasons.index("claim")]: row[reasons.index("margin")] for row in rows if len(row) == len(reasons)}
    assert all(margins[c.statement] == f"±{c.margin:g} {c.unit}" for c in registry if c.direction == "equivalent")


def test_math_is_rendered_by_the_local_mathjax(smoke_site):
    page = html_of(smoke_site, "book/method")
    html = page.read_text()
    assert "mathjax/tex-chtml.js" in html and "cdn.jsdelivr" not in html
    assert (smoke_site / "_build" / "html" / "_static" / "mathjax" / "tex-chtml.js").is_file()
    dom = rendered_dom(page)
    assert dom.count("<mjx-container") >= 5, "MathJax did not typeset the method page"


def test_the_report_gives_every_claim_of_the_registry_a_verdict(smoke_site):
    rows = table_rows(html_of(smoke_site, "book/executed/04_report").read_text())
    headers = [row for row in rows if "verdict" in row and "each world" in row and "note" in row]
    header = headers[0]  # the claims' table and the controls' table share it
    column = header.index("verdict")
    verdicts = {REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, UNINFORMATIVE, SINGLE_RUN, NOT_MEASURED, NO_VERDICT,
                OTHER_SCALE}
    for claim in load_registry():
        # the headline row of this claim: the variant and registry tables repeat statements with other columns
        stated = [row for row in rows if claim.statement in row and len(row) == len(header)]
        matching = [row for row in stated if row[column] in verdicts]
        assert len(matching) == 1, f"claim {claim.key!r}: no single row with a verdict among {stated}"


def test_reproduction_report_screenshot(smoke_site, tmp_path):
    page = html_of(smoke_site, "book/executed/04_report")
    png = screenshot(page, tmp_path / "report_smoke.png")
    pixels = np.asarray(Image.open(png).convert("L"), dtype=float)
    assert pixels.shape[0] > 500 and pixels.std() > 10, "the screenshot of the report is blank"


def test_each_result_page_offers_its_table_as_a_csv_download(smoke_site):
    for name in ("00_miniworld", "01_imbalance", "02_confounder", "03_main_tables"):
        page = html_of(smoke_site, f"book/executed/{name}")
        links = re.findall(rf'href="([^"]*_downloads/[^"]*/{name}\.csv)"', page.read_text())
        assert links, f"{name}: no download link to its result table"
        target = (page.parent / links[0]).resolve()
        rows = target.read_text().splitlines()
        assert len(rows) > 1 and "metric" in rows[0] and "git_sha" in rows[0], f"{name}: {target} is not its table"


def test_strict_build_ignores_tool_caches(tmp_path):
    """`make test` then `make html` in one clone: a one-page book under the real _config.yml with every
    tool cache planted still builds strictly (a stray README.md would be a page outside the toc)."""
    shutil.copy(REPO / "_config.yml", tmp_path / "_config.yml")
    (tmp_path / "book").mkdir()
    shutil.copy(REPO / "book" / "references.bib", tmp_path / "book" / "references.bib")
    shutil.copytree(REPO / "book" / "_static", tmp_path / "book" / "_static")  # the config's static path
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: book/intro\n")
    (tmp_path / "book" / "intro.md").write_text("# Intro\n\nOne page.\n")
    plant_tool_caches(tmp_path)
    build = strict_build(tmp_path)
    assert build.returncode == 0, (
        f"strict build stopped on a tool cache:\n{build.stdout[-3000:]}\n{build.stderr[-3000:]}"
    )
    assert (tmp_path / "_build" / "html" / "book" / "intro.html").is_file()
    assert not list((tmp_path / "_build" / "html").rglob("README.html"))


def test_make_clean_removes_every_tool_cache(tmp_path):
    shutil.copy(REPO / "Makefile", tmp_path / "Makefile")
    planted = plant_tool_caches(tmp_path)
    (tmp_path / "book" / "intro.md").write_text("# kept\n")
    done = subprocess.run(["make", "-s", "clean"], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert [str(p.relative_to(tmp_path)) for p in planted if p.exists()] == []
    assert (tmp_path / "book" / "intro.md").is_file() and (tmp_path / "Makefile").is_file()


def test_a_sensitivity_cell_runs_the_grids_notebooks_and_is_judged_beside_the_book(smoke_site, tmp_path):
    from ltlib.book.sensitivity import cell_verdicts, grid_table, load_grid, run_cell
    from ltlib.recipes import load_recipe
    from ltlib.runs import find_runs
    from ltlib.storage import read_json

    path = tmp_path / "grid.yaml"
    path.write_text("setting: smoke\nnotebooks: [01_imbalance]\ncells:\n  - {name: default, world: smoke}\n"
                    "  - {name: steps × 2, world: smoke, finetune_epochs_factor: 2}\n")
    grid = load_grid(path)
    run_cell(grid.cells[1], grid, tmp_path / "out", runs_root=tmp_path / "runs")
    runs = find_runs(tmp_path / "runs")
    trained = list(runs.run_dir[runs.method != "zeroshot"])  # a zero-shot run trains nothing: shared by recipes
    epochs = {read_json(r / "run.json")["config"]["recipe"]["epochs"] for r in trained}
    smoke_recipes = {2 * load_recipe(k).epochs for k in ("mini_lift", "mini_lift_vpt", "mini_scratch")}
    assert trained and epochs <= smoke_recipes  # every trained run of the cell ran twice its recipe's epochs
    verdicts = cell_verdicts(grid, tmp_path / "out", smoke_site / "results")
    assert list(dict.fromkeys(verdicts.cell)) == ["default", "steps × 2"]
    both = verdicts.groupby("key").cell.nunique()
    assert (both == 2).all() and len(both) >= 5  # the claims notebook 01 measures, judged in each cell
    assert set(grid_table(verdicts).columns) >= {"claim", "default", "steps × 2", "depends on the grid"}
