# ---
# jupyter:
#   jupytext:
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # Sensitivity: the verdicts when the world's settings move
#
# Every verdict of the [reproduction report](04_report.ipynb) is reached in one world setting. Some of those
# settings were chosen with the regime card (downstream counts, the fine-tuning budget), so a reader should
# know whether a verdict survives when they move. The grid `ltlib/configs/sensitivity/grid.yaml`, fixed
# before its numbers, moves one setting at a time around the default world, with the same independent worlds
# and the same pre-trained models:
#
# - **downstream counts** 300 → 3 (the default), 500 → 5 and 1000 → 10 images per class, the D-group
#   thresholds scaled with them (the same classes in each D-group);
# - **fine-tuning steps** × 1 and × 3 (LIFT's 10 epochs, or 30).
#
# In each cell the notebooks [01](01_imbalance.ipynb) and [03](03_main_tables.ipynb) run again and every claim
# they measure is judged by the report's rules. A claim whose verdict is not the same in every cell *depends
# on the grid*, and its line in the report says so. The grid costs about 40 minutes on two cores, so `make book`
# does not run it: `make sensitivity` does, and writes `book/data/sensitivity/verdicts.csv`, which this page
# shows. Left out, to keep that time: the pre-training batch (each cell would pre-train its own models), the
# crossing of counts and steps, and the factorial page.

# %% tags=["parameters"]
setting = "default"
overrides = {}

# %%
import pandas as pd

from ltlib.book.glue import glue
from ltlib.book.sensitivity import depends_on_grid, grid_table, load_grid, read_verdicts
from ltlib.paths import sensitivity_verdicts_path

grid = load_grid()
path = sensitivity_verdicts_path()
verdicts = read_verdicts(path)
pd.DataFrame([{"cell": c.name, "world": c.world, "fine-tuning epochs ×": c.finetune_epochs_factor,
               "setting": c.description} for c in grid.cells]).style.hide(axis="index")

# %% [markdown]
# ## Each claim in each cell
#
# The headline verdict of every claim that notebooks 01 and 03 measure, with its mean over worlds (in the
# claim's unit), per cell: "firm" means decisive and every world on the verdict's side. A role other than
# "claim" (a positive control, a sanity check) is named in brackets after the statement.

# %%
depends = depends_on_grid(verdicts) if len(verdicts) else pd.Series(dtype=bool)
glue("n_grid_claims", len(depends), display=False)
glue("n_grid_depends", int(depends.sum()), display=False)
glue("grid_revisions", ", ".join(sorted(set(verdicts.git_sha.astype(str).str[:12]))) if len(verdicts) else "none",
     display=False)
if verdicts.empty:
    print(f"{path} does not exist yet: run `make sensitivity` (after `make book`) to fill this page.")
else:
    display(grid_table(verdicts).style.hide(axis="index"))

# %% [markdown]
# Of {glue:text}`n_grid_claims` claims measured in every cell, {glue:text}`n_grid_depends` depend on the
# grid. The cells were computed at git revision(s) {glue:text}`grid_revisions` (the default cell is the book
# build that `make sensitivity` followed; a revision marked dirty in the CSV had uncommitted changes, such as
# the phase profile that `make profile` writes before the grid runs).
# Every cell's verdicts, with their intervals and the revision they were computed at, are in the repository's
# `book/data/sensitivity/verdicts.csv`.
