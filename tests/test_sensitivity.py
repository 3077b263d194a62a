"""The sensitivity grid: world variants that extend the default, fine-tuning epochs scaled in every job, the grid
file's checks, and the claim × cell table and notes (the cells' execution is tested with the smoke book)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ltlib.book.report import add_notes
from ltlib.book.sensitivity import Cell, depends_on_grid, grid_notes, grid_table, load_grid
from ltlib.errors import ConfigError
from ltlib.miniworld import load_world
from ltlib.miniworld.config import load_world_config
from ltlib.miniworld.experiments import imbalance_jobs, scaled_epochs
from ltlib.recipes import load_recipe

MODELS = ("mini-clip", "mini-openclip", "mini-metaclip")


@pytest.mark.parametrize("key,factor", [("default-counts500", 5 / 3), ("default-counts1000", 10 / 3)])
def test_the_grids_worlds_change_only_the_downstream_counts_and_share_the_pretrained_models(key, factor):
    base, variant = load_world_config("default"), load_world_config(key)
    assert variant.name == key and variant.tasks.max_count == round(base.tasks.max_count * factor)
    assert (variant.tasks.many_threshold, variant.tasks.few_threshold) == (
        round(base.tasks.many_threshold * factor), round(base.tasks.few_threshold * factor))
    for section in ("parts", "captions", "corpus", "models", "reference", "architecture", "pretrain", "confounder"):
        assert getattr(variant, section) == getattr(base, section), section
    assert variant.tasks.imbalance_ratio == base.tasks.imbalance_ratio
    w, b = load_world(key), load_world("default")
    assert w.model_key("mini-clip") == b.model_key("mini-clip")  # one cache entry: the same pre-trained model
    assert w.task().info["d_groups"] == b.task().info["d_groups"]  # scaled thresholds: the same D-groups


def test_extends_rejects_a_cycle_and_a_non_name(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(f"extends: {b}\n")
    b.write_text(f"extends: {a}\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_world_config(a)
    a.write_text("extends: [default]\n")
    with pytest.raises(ConfigError, match="must name a world"):
        load_world_config(a)


def test_scaled_epochs_multiplies_every_recipes_epochs_and_changes_the_run_identity():
    jobs = imbalance_jobs("smoke", MODELS, "mini-reference", (0,), world_seed=0)
    assert scaled_epochs(jobs, 1) == jobs
    tripled = scaled_epochs(jobs, 3)
    for job, new in zip(jobs, tripled):
        assert dict(new.overrides)["epochs"] == 3 * load_recipe(job.recipe).epochs and new != job
        assert (new.recipe, new.variant) == (job.recipe, job.variant)  # the analyses still pick them up
    for bad in (0, 1.5, True):
        with pytest.raises(ConfigError, match="finetune_epochs_factor"):
            scaled_epochs(jobs, bad)


def test_the_committed_grid_starts_with_the_default_and_names_existing_worlds():
    grid = load_grid()
    assert grid.cells[0] == Cell("default", "default", 1, grid.cells[0].description) and grid.setting == "default"
    assert set(grid.notebooks) == {"01_imbalance", "03_main_tables"}
    for cell in grid.cells:
        load_world_config(cell.world)
    assert len({(c.world, c.finetune_epochs_factor) for c in grid.cells}) == len(grid.cells)


@pytest.mark.parametrize("text,match", [
    ("notebooks: [01_imbalance]\ncells: [{name: other, world: default}]\n", "first cell named 'default'"),
    ("notebooks: [01_imbalance]\ncells: [{name: default, world: default}, {name: Default!, world: default}]\n",
     "differ"),
    ("notebooks: [01_imbalance]\ncells: [{name: default, world: default, finetune_epochs_factor: 0}]\n",
     "positive integer"),
    ("notebooks: [01_imbalance]\ncells: [{name: default, world: default, steps: 3}]\n", "steps"),
])
def test_a_malformed_grid_is_named(tmp_path, text, match):
    path = tmp_path / "grid.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match) as info:
        load_grid(path)
    assert str(path) in str(info.value)


def _verdicts() -> pd.DataFrame:
    rows = []
    for cell in ("default", "steps × 3"):
        for key, verdict in (("a", "reproduced"), ("b", "reproduced" if cell == "default" else "inconclusive")):
            rows.append({"cell": cell, "key": key, "statement": f"claim {key}", "verdict": verdict,
                         "role": "claim" if key == "a" else "positive control",
                         "firm": verdict == "reproduced", "mean": 1.0, "git_sha": "abc"})
    return pd.DataFrame(rows)


def test_a_claim_depends_on_the_grid_when_any_cell_differs_and_the_report_says_so(tmp_path):
    verdicts = _verdicts()
    assert depends_on_grid(verdicts).to_dict() == {"a": False, "b": True}
    table = grid_table(verdicts)
    assert list(table.columns) == ["claim", "depends on the grid", "default", "steps × 3"]
    assert list(table.claim) == ["claim a", "claim b (positive control)"]
    assert list(table["depends on the grid"]) == ["", "yes"] and table.loc[1, "steps × 3"].startswith("inconclusive")
    assert table.loc[0, "default"] == "reproduced<br>firm, +1.00" and table.loc[1, "steps × 3"].endswith(">+1.00")
    path = tmp_path / "verdicts.csv"
    verdicts.to_csv(path, index=False)
    notes = grid_notes(path)
    assert list(notes) == ["b"] and "steps × 3: inconclusive" in notes["b"]
    assert grid_notes(tmp_path / "missing.csv") == {}
    report = pd.DataFrame({"key": ["b", "b", "a"], "headline": [True, False, True], "note": ["earlier", "", ""]})
    noted = add_notes(report, notes)
    assert noted.note.tolist() == [f"earlier; {notes['b']}", "", ""]
    assert np.array_equal(report.note, ["earlier", "", ""])  # the input is left as it was
