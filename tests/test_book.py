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
from ltlib.book.claims import CLAIMS
from ltlib.book.report import MISSING, NOT_REPRODUCED, PARTIAL, PENDING, REPRODUCED
from ltlib.book.runner import load_plan, run_all

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


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
    jb = Path(sys.executable).parent / "jupyter-book"
    build = subprocess.run([str(jb), "build", str(root), "-W", "-n", "--keep-going"], capture_output=True,
                           text=True)
    assert build.returncode == 0, f"strict book build failed:\n{build.stdout[-4000:]}\n{build.stderr[-4000:]}"
    return root


def html_of(site: Path, toc_file: str) -> Path:
    return site / "_build" / "html" / f"{toc_file}.html"


def test_every_page_in_the_toc_exists(smoke_site):
    missing = [f for f in toc_files() if not html_of(smoke_site, f).is_file()]
    assert not missing, f"pages in _toc.yml without HTML: {missing}"


def test_each_notebook_page_shows_its_figures(smoke_site):
    for f in toc_files():
        if "executed/" not in f or f.endswith("04_report"):
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
    assert injected.folded and 'world = "smoke"' in injected.source
    assert not [c for c in cells if "parameters" in c.tags], "the notebook's defaults cell is on the page"
    assert not any('world = "default"' in c.source for c in cells)


def test_math_is_rendered_by_the_local_mathjax(smoke_site):
    page = html_of(smoke_site, "book/method")
    html = page.read_text()
    assert "mathjax/tex-chtml.js" in html and "cdn.jsdelivr" not in html
    assert (smoke_site / "_build" / "html" / "_static" / "mathjax" / "tex-chtml.js").is_file()
    dom = rendered_dom(page)
    assert dom.count("<mjx-container") >= 5, "MathJax did not typeset the method page"


def test_the_report_gives_every_claim_of_the_registry_a_verdict(smoke_site):
    rows = table_rows(html_of(smoke_site, "book/executed/04_report").read_text())
    [header] = [row for row in rows if "verdict (mini world)" in row]  # the smoke book is at mini scale
    column = header.index("verdict (mini world)")
    verdicts = {REPRODUCED, PARTIAL, NOT_REPRODUCED, PENDING, MISSING}
    for claim in CLAIMS:
        matching = [row for row in rows if claim.statement in row]
        assert len(matching) == 1, f"claim {claim.key!r}: {len(matching)} rows of the report state it"
        assert len(matching[0]) == len(header) and matching[0][column] in verdicts, \
            f"claim {claim.key!r}: no verdict in its row {matching[0]}"


def test_reproduction_report_screenshot(smoke_site, tmp_path):
    page = html_of(smoke_site, "book/executed/04_report")
    png = screenshot(page, tmp_path / "report_smoke.png")
    pixels = np.asarray(Image.open(png).convert("L"), dtype=float)
    assert pixels.shape[0] > 500 and pixels.std() > 10, "the screenshot of the report is blank"
