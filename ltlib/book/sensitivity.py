"""The sensitivity grid (book: Sensitivity): each registered claim judged again with the world's settings moved
one at a time (``ltlib/configs/sensitivity/grid.yaml``, fixed before its numbers).

A cell is a world key (a variant of the default world that ``extends`` it, sharing its pre-trained models) and a
factor on every run's fine-tuning epochs. :func:`run_cell` executes the grid's notebooks for one cell with the
book's runner into ``<out>/<cell>/`` (resumable: an up-to-date notebook is skipped); :func:`cell_verdicts` judges
the registry on each cell's result rows with the report's rules (``ltlib.book.report.evaluate``), the default cell
from the book's own results; :func:`grid_table` is the page's claim × cell table. ``make sensitivity`` runs it all
and commits nothing by itself: ``book/data/sensitivity/verdicts.csv`` is what the page and the report read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from ..config import CONFIG_ROOT, from_dict, load_yaml
from ..errors import ConfigError
from ..results import load_tables
from ..storage import read_table
from .registry import load_registry
from .report import evaluate

GRID_PATH = CONFIG_ROOT / "sensitivity" / "grid.yaml"
DEFAULT_CELL = "default"
VERDICT_COLUMNS = ("cell", "world", "finetune_epochs_factor", "key", "statement", "role", "verdict", "firm", "mean",
                   "low", "high", "n_worlds", "unit", "git_sha")


@dataclass(frozen=True)
class Cell:
    """One setting of the grid: ``world`` (a world key) and ``finetune_epochs_factor`` (× every recipe's epochs)."""

    name: str
    world: str
    finetune_epochs_factor: int = 1
    description: str = ""

    @property
    def slug(self) -> str:
        """The cell's folder name (letters, digits and dashes)."""
        return re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-") or "cell"


@dataclass(frozen=True)
class Grid:
    """The notebooks each cell executes, the cells (the first being the book's own setting) and the plan setting
    they modify (``default``; the tests use ``smoke``)."""

    notebooks: tuple[str, ...]
    cells: tuple[Cell, ...]
    setting: str = "default"


def load_grid(path: str | Path = GRID_PATH) -> Grid:
    """Read the grid; raises ``ConfigError`` naming the file for a malformed one."""
    data = load_yaml(path)
    try:
        cells = tuple(from_dict(Cell, c, f"{path}: cells[{i + 1}]") for i, c in enumerate(data.get("cells") or []))
        grid = Grid(tuple(data.get("notebooks") or ()), cells, str(data.get("setting", "default")))
    except (TypeError, AttributeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if not grid.cells or grid.cells[0].name != DEFAULT_CELL or not grid.notebooks:
        raise ConfigError(f"{path}: needs 'notebooks' and 'cells', the first cell named {DEFAULT_CELL!r}")
    if len({c.slug for c in grid.cells}) != len(grid.cells):
        raise ConfigError(f"{path}: cell names must differ in letters and digits")
    for cell in grid.cells:
        if not isinstance(cell.finetune_epochs_factor, int) or cell.finetune_epochs_factor < 1:
            raise ConfigError(f"{path}: cell {cell.name!r}: finetune_epochs_factor must be a positive integer")
    return grid


def cell_parameters(cell: Cell, out_root: str | Path, runs_root: str | Path | None = None) -> dict[str, Any]:
    """The plan parameters that turn the grid's setting into ``cell`` (its world, epochs and result folder; the
    runs go under the plan's ``runs_root`` unless given: their folders are keyed by world and recipe)."""
    params = {"world": cell.world, "finetune_epochs_factor": cell.finetune_epochs_factor,
              "out_dir": str(Path(out_root) / cell.slug / "results")}
    return {**params, "runs_root": str(runs_root)} if runs_root is not None else params


def run_cell(cell: Cell, grid: Grid, out_root: str | Path, force: bool = False,
             runs_root: str | Path | None = None) -> pd.DataFrame:
    """Execute the grid's notebooks for ``cell`` (the grid's setting with :func:`cell_parameters`); returns the
    runner's timings. Executed notebooks go to ``<out_root>/<cell>/executed``."""
    from .runner import load_plan, run_all

    jobs = load_plan(grid.setting, only=list(grid.notebooks), **cell_parameters(cell, out_root, runs_root))
    return run_all(jobs, Path(out_root) / cell.slug / "executed", force=force)


def cell_results(cell: Cell, out_root: str | Path, book_results: str | Path) -> Path:
    """The folder of ``cell``'s result tables: the book's own for the default cell, else the cell's."""
    root = Path(book_results) if cell.name == DEFAULT_CELL else Path(out_root) / cell.slug / "results"
    return root / "tables"


def cell_verdicts(grid: Grid, out_root: str | Path, book_results: str | Path) -> pd.DataFrame:
    """Each cell's headline verdict of every claim measured from the grid's notebooks (columns
    :data:`VERDICT_COLUMNS`); a cell whose tables are missing raises ``ConfigError`` naming the folder."""
    registry = load_registry()
    frames = []
    for cell in grid.cells:
        folder = cell_results(cell, out_root, book_results)
        rows = load_tables(folder, grid.notebooks)
        if rows.empty:
            raise ConfigError(f"{folder}: no result tables of {list(grid.notebooks)}; run `make sensitivity` "
                              f"(and `make book` for the default cell) first")
        report = evaluate(registry, rows, "mini")
        report = report[report.headline & (report.n_worlds > 0)]
        shas = sorted(set(rows.git_sha))
        frames.append(report.assign(cell=cell.name, world=cell.world,
                                    finetune_epochs_factor=cell.finetune_epochs_factor,
                                    git_sha=shas[0] if len(shas) == 1 else "+".join(s[:12] for s in shas)))
    return pd.concat(frames, ignore_index=True)[list(VERDICT_COLUMNS)]


def depends_on_grid(verdicts: pd.DataFrame) -> pd.Series:
    """Per claim key: True when its verdict is not the same in every cell (decisive in one and inconclusive in
    another counts: a verdict that holds only in some settings)."""
    return verdicts.groupby("key", sort=False)["verdict"].agg(lambda v: len(set(v)) > 1)


def grid_table(verdicts: pd.DataFrame, cells: Sequence[str] | None = None) -> pd.DataFrame:
    """The page's table: one line per claim (its role in brackets unless it is a claim), whether its verdict
    depends on the grid, and a column per cell: the verdict, then ``firm`` where firm and the mean on a second
    line (narrow enough for the book's text column with four cells)."""
    cells = list(cells or dict.fromkeys(verdicts.cell))
    text = verdicts.assign(shown=[f"{v}<br>{'firm, ' if f else ''}{m:+.2f}" if pd.notna(m) else v
                                  for v, f, m in zip(verdicts.verdict, verdicts.firm, verdicts["mean"])])
    table = text.pivot(index="key", columns="cell", values="shown")[cells]
    order = list(dict.fromkeys(verdicts.key))
    table = table.loc[order]
    statements = verdicts.drop_duplicates("key").set_index("key").loc[order]
    table.insert(0, "claim", [s if r == "claim" else f"{s} ({r})" for s, r in zip(statements.statement,
                                                                                  statements.role)])
    table.insert(1, "depends on the grid", depends_on_grid(verdicts).loc[order].map({True: "yes", False: ""}))
    return table.reset_index(drop=True)


def read_verdicts(path: str | Path) -> pd.DataFrame:
    """The verdicts file :func:`cell_verdicts` wrote (its revisions as text); empty when it does not exist yet."""
    path = Path(path)
    return read_table(path, ("git_sha", "key", "cell", "verdict")) if path.is_file() else pd.DataFrame()


def grid_notes(path: str | Path) -> dict[str, str]:
    """Per claim key, the report's note for a claim whose verdict depends on the grid (from the committed
    verdicts file); empty when the file does not exist yet."""
    verdicts = read_verdicts(path)
    if verdicts.empty:
        return {}
    notes = {}
    for key, depends in depends_on_grid(verdicts).items():
        if depends:
            part = verdicts[verdicts.key == key]
            notes[key] = "depends on the sensitivity grid: " + "; ".join(f"{c}: {v}" for c, v in
                                                                          zip(part.cell, part.verdict))
    return notes
