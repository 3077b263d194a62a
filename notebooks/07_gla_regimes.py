# ---
# jupyter:
#   jupytext:
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # When does GLA see the prior?
#
# The paper's analysis of parameter imbalance rests on a premise it cannot check: that GLA's estimate
# $\hat P_P$, fitted on a foundation model's zero-shot logits on a class-balanced labelled set, measures the
# label prior of the model's pre-training data. In the book's mini world it tracks the true prior $\pi$ only
# weakly (the [reproduction report](04_report.ipynb), claim "GLA's P̂_P tracks the pre-training label prior").
# This page asks under which pre-training the premise can hold.
#
# For each regime below and in each independent world, one imbalanced foundation model (the one whose
# corpus shows heads and bodies alike, so no part bias is involved) and the uniform-prior reference model
# are pre-trained on corpora of {glue:text}`corpus_images` images (a quarter of the book's, so that every
# regime fits the time budget), GLA's estimate is fitted on each model's zero-shot logits, and compared with
# the imbalanced model's true $\pi$. The reference model has no prior to find: its agreement with $\pi$ is
# the **noise floor** of the estimator; the measure is the imbalanced model's Spearman ρ minus that floor.
# The default world is chosen by the regime card, not by this result.
#
# - **contrastive**: open_clip's symmetric InfoNCE, as the book's models. At its optimum a contrastive loss
#   learns a pointwise-mutual-information score, which carries no label prior; what remains comes from rare
#   classes being learned less well.
# - **same-class negatives masked**: the other pairs of an image's class are removed from its negatives.
# - **batch 256**: four times the book's batch (more negatives per step, fewer steps).
# - **supervised**: cross-entropy of each image against all class prompts: a classifier whose bias learns the
#   label prior, as a softmax classifier trained on imbalanced data does.
# - **captions name the class half the time**: a noisier text signal.

# %% tags=["parameters"]
setting = "default"
overrides = {}

# %%
from ltlib.book import plots
from ltlib.book.display import human_columns
from ltlib.book.glue import glue
from ltlib.book.page import open_page
from ltlib.miniworld import gla_regimes
from ltlib.results import summarize

page = open_page("07_gla_regimes", setting, overrides)
table = page.table
corpus_images = min(gla_regimes.CORPUS_IMAGES, page.world_config.corpus.num_images)
glue("corpus_images", f"{corpus_images:,}", display=False)
worlds = gla_regimes.open_regime_worlds(page.world_config.name, page.world_seeds, corpus_images=corpus_images)
rows = gla_regimes.regime_rows(worlds)
table.add_frame(rows)
table.save();

# %% [markdown]
# ## GLA's estimate against the truth, per regime
#
# Mean and 95 % interval over the independent worlds (world seeds {glue:text}`world_seeds`) of each
# measure: the imbalanced model's Spearman ρ(P̂_P, π), the reference model's (the floor), their difference,
# KL(π ‖ P̂_P) beside KL(π ‖ uniform), and the model's zero-shot top-1 (%) so that a regime that simply
# learns less is visible.

# %%
glue("world_seeds", ", ".join(map(str, page.world_seeds)), display=False)
summary = summarize(rows.dropna(subset=["value"]), by=("group", "metric"))  # one value per world and regime
summary["cell"] = [f"{m:.3g} [{lo:.3g}, {hi:.3g}]" for m, lo, hi in zip(summary["mean"], summary["ci_low"],
                                                                          summary["ci_high"])]
human_columns(summary.pivot(index="group", columns="metric", values="cell")
              .reindex(columns=["excess_spearman", "spearman", "floor_spearman", "kl", "kl_uniform", "zeroshot_top1"])
              .rename_axis(index="pre-training regime", columns=None),
              {"excess_spearman": "ρ − floor", "spearman": "Spearman ρ(P̂_P, π)", "floor_spearman": "noise floor ρ",
               "kl": "KL(π ‖ P̂_P)", "kl_uniform": "KL(π ‖ uniform)", "zeroshot_top1": "zero-shot top-1 (%)"})

# %%
plots.grouped_bars(rows[rows.metric.isin(["spearman", "floor_spearman"])].assign(
    estimate=lambda f: f.metric.map({"spearman": "imbalanced model", "floor_spearman": "reference (floor)"})),
    x="method", hue="estimate", title="Spearman ρ(P̂_P, π) by pre-training regime", ylabel="Spearman ρ")

# %% [markdown]
# A regime whose ρ − floor interval lies above zero gives an estimate that sees the pre-training prior
# beyond what the estimator produces with no prior at all; one whose interval straddles zero does not, in
# these worlds. A model left at chance by its regime has no calibrated estimate (GLA's temperature cannot
# be fitted); its world is then missing from that regime's interval. Download the rows: {download}`07_gla_regimes.csv <data/07_gla_regimes.csv>`.
