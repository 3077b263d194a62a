# ---
# jupyter:
#   jupytext:
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # Use it on your own data
#
# This page runs the whole method on a folder of images, with the command line only, exactly as you would
# on your own data: stage 1 (zero-shot evaluation and LIFT fine-tuning, logits cached), stage 2 (the
# backdoor adjustment, scored overall and per D- and P-group), export of each trained adapter and head,
# and prediction on new, unlabelled images. Every cell calls `ltlib.cli.run`, which runs the same code as
# `python -m ltlib <command>` in a shell.
#
# The images here are generated (one hue and stripe angle per class, four classes with 60, 20, 10 and 8
# images), and the backbone is `tiny`, a two-block ViT with **random weights**, because this book is built
# offline in minutes: the accuracies below say nothing about the method. On your data, use the paper's
# three pre-trained ViT-B/16s (`--backbone clip`, `openclip`, `metaclip`, each one fine-tuned model: one
# value of the semantic factor of the [method page](../method.md)) and drop `--random-init`; a GPU is used
# when there is one.

# %% tags=["parameters"]
setting = "default"
overrides = {}

# %%
from pathlib import Path

import pandas as pd

from ltlib.book import plots
from ltlib.book.display import human_columns
from ltlib.book.page import open_page
from ltlib.cli import run
from ltlib.data import make_image_folder
from ltlib.runs import find_runs
from ltlib.storage import read_table

page = open_page("06_own_data", setting, overrides)
work = page.out_dir / "own_data"
images = make_image_folder(work / "my images", class_counts=(60, 20, 10, 8),
                           classnames=("red stripes", "lime stripes", "cyan stripes", "violet stripes"))
new_images = make_image_folder(work / "new images", class_counts=(2, 2, 2, 2), seed=1)
runs = work / "runs"
pd.Series({folder.name: len(list(folder.glob("*.jpg"))) for folder in sorted(images.iterdir())},
          name="images").rename_axis("class folder").sort_values(ascending=False).to_frame()

# %% [markdown]
# ## Your images as a task
#
# `--dataset imagefolder:ROOT` reads one folder per class (`ROOT/<class>/<image>`, any depth, spaces
# allowed); with `train/`, `val/` and `test/` folders of class folders it uses those splits instead, and
# `--dataset csv:FILE` reads a table with columns `path,label[,split]`. Nothing else is needed: the class
# counts are counted, and without a test split a seeded 20 % of every class with two or more images is
# held out (`--test-fraction`, `--split-seed`). The class-balanced `val` split that the prior estimate
# needs is drawn from the training images, as many per class as the rarest class has.
#
# The D-groups of the paper (many: more than 100 training images; few: fewer than 20) would put every
# class of a small dataset in *few*; `--d-thresholds 20 10` sets them for this data, and `train` records
# them in the run, so `adjust` uses them too. With 20 % of each class held out, the four classes keep 48,
# 16, 8 and 6 training images: one *many* class, one *medium* and two *few*, and every group has at least
# four test images (a group of one class with one test image would score 0 or 100 % on that image alone). `--p-fractions` sets the shares of the P-groups (default the
# paper's 30 % and 30 %).

# %%
options = ("--backbone tiny --random-init --no-progress --d-thresholds 20 10 "
           f"--runs-root '{runs}' --set epochs=1 batch_size=8 num_workers=0 checkpoint_every=0")
run(f"train --dataset 'imagefolder:{images}' --method zeroshot {options}")
for seed in (0, 1):
    run(f"train --dataset 'imagefolder:{images}' --method LA --seed {seed} {options}")
index = find_runs(runs)
human_columns(index[["task", "backbone", "method", "seed", "status"]])

# %% [markdown]
# ## Stage 2: the backdoor adjustment
#
# `adjust` combines the fine-tuned models' cached test logits (here two seeds of the tiny model stand in
# for the three backbones) and scores every model alone and the combination, overall and per D-group and
# P-group; the P-groups come from the zero-shot run's estimate of the pre-training prior. It writes a JSON
# record and a tidy CSV. Each bar is labelled with its value: one epoch from random weights mostly learns
# the frequent classes, so the *few* bars may read 0.0, a measured value (no test image of those classes
# right), not a missing one.

# %%
la_runs = " ".join(f"'{d}'" for d in index[index["method"] == "LA"]["run_dir"])
run(f"adjust --runs {la_runs} --out '{work / 'stage2'}'")
scores = read_table(work / "stage2" / "stage2.csv")
by_group = scores[(scores["metric"] == "mean_class_accuracy") & (scores["p_group"] == "all")
                  & (scores["rule"] == "logit_sum")]
plots.grouped_bars(by_group, x="d_group", hue="combination", title="mean class accuracy by D-group (random weights)")

# %% [markdown]
# ## Export and predict
#
# `export` writes a trained run's adapters and head (the only weights LIFT trains) as `model.safetensors`
# with a `card.json` naming the backbone, the classes, the recipe and the accuracies; the frozen backbone
# is rebuilt from its name. `predict` applies one exported model, or the backdoor adjustment over several,
# to every image of a folder and writes one CSV row per image: the prediction, its probability and the
# top-k classes with theirs.

# %%
exports = []
for k, run_dir in enumerate(index[index["method"] == "LA"]["run_dir"]):
    exports.append(work / "exports" / f"model {k}")
    run(f"export --run '{run_dir}' --out '{exports[-1]}'")
models = " ".join(f"'{e}'" for e in exports)
run(f"predict --models {models} --images '{new_images}' --out '{work / 'predictions.csv'}' --top-k 3 --device cpu")
human_columns(pd.read_csv(work / "predictions.csv"))

# %% [markdown]
# The same steps from a shell are in the README (*Use it on your own data*), where a test runs them as
# written. For the full-scale datasets of the paper, see [running at full scale](../full_scale.md).
