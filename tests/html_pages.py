"""Read a built book page the way a reader sees it: its code cells (tags, source, folded or not) and the
rows of its tables, parsed from jupyter-book's HTML with the standard library."""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


@dataclass
class CodeCell:
    """One notebook code cell on a page: its tags (``tag_*`` classes), the text of its input, and whether
    that input sits inside a closed ``<details>`` (folded: one click away, not shown)."""

    tags: set[str]
    source: str = ""
    folded: bool = False
    has_input: bool = False


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.cells: list[CodeCell] = []
        self.rows: list[list[str]] = []
        self._stack: list[tuple[str, str | None]] = []  # (tag, role) of every open element

    def _roles(self) -> list[str | None]:
        return [role for _, role in self._stack]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        classes = (attributes.get("class") or "").split()
        role = None
        if tag == "div" and "cell" in classes:
            self.cells.append(CodeCell(tags={c[4:] for c in classes if c.startswith("tag_")}))
            role = "cell"
        elif tag == "div" and "cell_input" in classes and "cell" in self._roles():
            after_cell = self._roles()[len(self._roles()) - 1 - self._roles()[::-1].index("cell"):]
            self.cells[-1].folded = "details" in after_cell
            self.cells[-1].has_input = True
            role = "input"
        elif tag == "details" and "open" not in attributes:
            role = "details"
        elif tag == "tr":
            self.rows.append([])
            role = "row"
        elif tag in ("td", "th") and "row" in self._roles():
            self.rows[-1].append("")
            role = "cell_of_row"
        if tag not in VOID:
            self._stack.append((tag, role))

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self._stack) - 1, -1, -1):  # tolerate unclosed inner elements
            if self._stack[depth][0] == tag:
                del self._stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        roles = self._roles()
        if "input" in roles:
            self.cells[-1].source += data
        if "cell_of_row" in roles:
            self.rows[-1][-1] += data


def code_cells(html: str) -> list[CodeCell]:
    page = _Page()
    page.feed(html)
    return page.cells


def table_rows(html: str) -> list[list[str]]:
    """Every table row as its cells' text, whitespace collapsed."""
    page = _Page()
    page.feed(html)
    return [[re.sub(r"\s+", " ", text).strip() for text in row] for row in page.rows]
