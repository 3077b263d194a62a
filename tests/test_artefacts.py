"""The book's index of paper artefacts (issue 13) names only functions and claims that exist, lists every
registered claim, links only pages that the table of contents builds; page titles are unique."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from ltlib.adjust import backdoor_adjust
from ltlib.prompts import build_vpts
from ltlib.book import plots
from ltlib.book.registry import load_registry

CLAIMS = load_registry()

REPO = Path(__file__).resolve().parent.parent
INDEX = REPO / "book" / "artefacts.md"


def index_rows() -> list[list[str]]:
    lines = [line for line in INDEX.read_text().splitlines() if line.startswith("| ") and "---" not in line]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[1:]]


def toc_files() -> set[str]:
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    return {toc["root"], *(c["file"] for part in toc["parts"] for c in part["chapters"])}


def test_every_function_named_in_the_index_exists():
    named = {name for row in index_rows() for name in re.findall(r"`([a-z_0-9.]+)`", row[3])}  # noqa: E501
    assert "fig2_dp_matrix" in named and "ltlib.adjust.backdoor_adjust" in named
    for name in named - {"ltlib.book.analysis", "ltlib.adjust.backdoor_adjust", "ltlib.prompts.build_vpts"}:
        assert callable(getattr(plots, name, None)), f"ltlib.book.plots has no {name}"
    assert callable(backdoor_adjust) and callable(build_vpts)


def test_the_index_lists_exactly_the_registered_claims():
    listed = {key for row in index_rows() for key in re.findall(r"`([a-z_0-9]+)`", row[4])}
    assert listed == {claim.key for claim in CLAIMS}


def test_every_linked_page_is_in_the_table_of_contents():
    links = set(re.findall(r"\]\(([^)#]+)\)", INDEX.read_text()))
    pages = {f"book/{link.rsplit('.', 1)[0]}" for link in links}
    assert pages <= toc_files(), pages - toc_files()
    assert "book/artefacts" in toc_files()


def test_page_titles_are_unique():
    titles = {}
    for page in toc_files():
        source, heading = REPO / f"{page}.md", r"# (.+)"
        if not source.is_file():  # an executed notebook: the first markdown heading of its jupytext source
            source, heading = REPO / "notebooks" / f"{Path(page).name}.py", r"# # (.+)"
        title = next(m.group(1).strip() for line in source.read_text().splitlines()
                     if (m := re.fullmatch(heading, line)))
        titles.setdefault(title, []).append(page)
    assert all(len(pages) == 1 for pages in titles.values()), {t: p for t, p in titles.items() if len(p) > 1}


def test_the_readme_first_screen_quotes_the_registry_and_the_measured_costs():
    import pandas as pd

    readme = (REPO / "README.md").read_text()
    assert f"checks {len(CLAIMS)} registered claims" in readme
    bench = pd.read_csv(REPO / "book" / "data" / "benchmarks" / "bench.csv")
    totals = bench[bench["metric"] == "seconds_notebooks_total"].set_index("case")["value"]
    default = next(v for case, v in totals.items() if case.startswith("world default"))
    smoke = next(v for case, v in totals.items() if case.startswith("world smoke"))
    assert f"**{default:.0f} s** at the default scale ({smoke:.0f} s at the smoke scale" in readme
    estimates = pd.read_csv(REPO / "book" / "data" / "benchmarks" / "estimates" / "full_scale.csv")
    stage1 = estimates[estimates["stage"] == "stage 1: 3 backbones × (zero-shot + LA)"].set_index("dataset")["value"]
    quoted = f"{stage1['places_lt']:.1f} h (Places-LT), {stage1['imagenet_lt']:.1f} h (ImageNet-LT) and " \
             f"{stage1['inat2018']:.1f} h"
    assert quoted in readme
    profile = pd.read_csv(REPO / "book" / "data" / "profile" / "profile.csv")  # the latest `make profile`
    assert f"**{profile['wall_s'].sum():.0f} s** from a clean cache" in readme
