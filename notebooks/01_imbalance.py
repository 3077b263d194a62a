# ---
# jupyter:
#   jupytext:
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # Parameter imbalance versus data imbalance
#
# This page re-derives the paper's imbalance analysis: Fig. 3 (per-class accuracy sorted by the
# downstream prior $P_S$ and by the estimated pre-training prior $\hat P_P$, for zero-shot, CE, LA and
# GLA-Train), Fig. 2 (the 3×3 D-group × P-group matrix), Tab. 3 (CE vs LA vs GLA-Train vs GLA post-hoc),
# Tab. 4 (kNN feature quality per D-group) and Fig. 9 (a model trained from scratch). In the mini world
# the true pre-training prior $\pi_m$ is known, so each analysis made with $\hat P_P$ is repeated with
# the truth.

# %% tags=["parameters"]
setting = "default"
overrides = {}

# %%
import pandas as pd
from ltlib.book import analysis, measures, plots
from ltlib.book.display import human_columns
from ltlib.book.glue import glue
from ltlib.book.page import open_page
from ltlib.results import summarize

page = open_page("01_imbalance", setting, overrides)
studies, table = page.studies, page.table
pd.DataFrame({"world seed": page.world_seeds, "fine-tuning seeds": [page.seeds] * len(studies),
              "runs": [len(s.index) for s in studies]}).set_index("world seed")

# %% [markdown]
# Each row above is an **independent world**: its own pre-training corpora, pre-trained models and downstream
# draws. Worlds are the replicates of every claim the [reproduction report](04_report.ipynb) judges;
# fine-tuning seeds nest inside a world. Every run is a cached stage-1 run (a directory with its seed, recipe
# hash and git revision in `run.json`); an existing run is reused, a missing one is trained. The runs of
# the first world:

# %%
page.study.index.groupby(["backbone", "method", "model", "recipe"]).size().rename("runs").to_frame()

# %% [markdown]
# ## Estimating the pre-training prior
#
# GLA's estimate $\hat P_P$ is fitted on each model's zero-shot logits on the class-balanced validation
# split after temperature calibration, with the exact solver and with GLA's own truncated loop
# ("reference"). In the mini world it is compared with the truth: Spearman's ρ, the KL divergence
# $\mathrm{KL}(\pi_m \Vert \hat P_P)$, and the KL of a uniform guess as the baseline to beat. The
# **noise floor** row is the estimate of the uniform-prior reference model (pre-trained on a balanced
# corpus, so it has no prior to find) scored against each model's π: agreement at that level is what the
# estimator produces with no imbalance to measure.

# %%
prior_rows = analysis.over_worlds(studies, analysis.prior_rows)
table.add_frame(prior_rows)
agreement = prior_rows[prior_rows.method == "gla-exact"].pivot_table(
    index=["group", "backbone"], columns="metric", values="value", aggfunc="mean")
human_columns(agreement.rename(index={"prior": "P̂_P of the model", "reference floor": "noise floor"}),
              {"spearman": "Spearman ρ", "kl": "KL(π ‖ P̂_P)", "kl_uniform": "KL(π ‖ uniform)"}).round(3)

# %% [markdown]
# ## Fig. 3: per-class accuracy sorted by $P_S$ and by $\hat P_P$
#
# In every run, classes are sorted from the most to the least frequent under each prior and cut into
# five equal bins; a line is the mean per-class accuracy of a bin over models and worlds (band: ±1 sd
# over runs). The right-hand panels (mini world only) sort by the true $\pi_m$ and by the reference
# model's estimate (the noise floor).

# %%
keys = ("p_s", "p_hat", "pi", "p_ref") if page.scale == "mini" else ("p_s", "p_hat")
labels = {"p_s": "$P_S$", "p_hat": r"$\hat P_P$", "pi": r"true $\pi_m$", "p_ref": r"reference's $\hat P_P$"}
per_class = analysis.over_worlds(studies, analysis.per_class_runs)
main = per_class[per_class.method.isin(["zeroshot", "CE", "LA", "GLA-Train"])]
binned = pd.concat([analysis.binned_accuracy(main, k) for k in keys])
plots.fig3_sorted_accuracy(binned, keys, labels)

# %% [markdown]
# The same trends as numbers: Spearman's ρ between per-class accuracy and each prior in each run (ρ > 0:
# frequent classes do better); mean ± sd over models and worlds. "LA (VPT)" is LA with deep visual prompt
# tuning instead of AdaptFormer, the paper's second parameter-efficient method (§4.1).

# %%
trends = analysis.over_worlds(studies, analysis.world_trends)
table.add_frame(trends)
analysis.summary_cells(trends[trends.metric == "trend_rho"], digits=3)

# %%
trend_means = summarize(trends[trends.metric == "trend_rho"].assign(world="w"),
                        by=("method", "group")).set_index(["method", "group"])["mean"]
glue("rho_ce_ps", trend_means["CE", "p_s"], display=False)
glue("rho_la_ps", trend_means["LA", "p_s"], display=False)
glue("rho_la_phat", trend_means["LA", "p_hat"], display=False)

# %% [markdown]
# With CE, accuracy follows $P_S$ (mean ρ = {glue:text}`rho_ce_ps:.2f`); with LA that trend is
# {glue:text}`rho_la_ps:.2f`, and the trend against $\hat P_P$ after LA is {glue:text}`rho_la_phat:.2f`.
# The [reproduction report](04_report.ipynb) turns these into verdicts with intervals over worlds.
#
# ### Controlling for class difficulty (mini world)
#
# Some classes are harder in this world whatever their frequency. The uniform-prior reference model,
# on the same task and seed (zero-shot against zero-shot, LA against every fine-tuned method), measures that
# difficulty; a model's *excess* accuracy over the reference isolates the effect of its own pre-training
# prior. Mean ± sd of ρ(excess accuracy, prior) over models and worlds:

# %%
excess = trends[trends.metric == "excess_trend_rho"]
if len(excess):
    display(analysis.summary_cells(excess, digits=3))

# %% [markdown]
# ## Fig. 2: D-group × P-group accuracy
#
# D-groups come from the downstream training counts (the task's thresholds), P-groups from $\hat P_P$ (top
# 30 %, next 30 %, rest). A cell is the mean per-class accuracy of its classes, averaged over models and
# worlds. The backdoor adjustment sums the fine-tuned LA models' logits; its P-groups use the geometric mean
# of their estimates.

# %%
dp = analysis.over_worlds(studies, analysis.dp_table)
table.add_frame(dp.drop(columns="label"), metric="dp_accuracy")
plots.fig2_dp_matrix(analysis.dp_figure_from_rows(dp))

# %% [markdown]
# The report's group-wise claims (Fig. 2's gaps, parameter against data imbalance, the method's gains per
# cell) read the same accuracies computed three ways and at two calibrations
# (`ltlib.book.measures`): with P-groups from each model's own $\hat P_P$, from the true π and from the
# reference model's $\hat P_P$ (a grouping with no pre-training imbalance in it: the noise floor), and
# at the paper's fixed rule or after a post-hoc $z - t \log P_S$ with $t$ chosen on the validation split.
# The $t$ chosen per model and world:

# %%
groups = analysis.over_worlds(studies, measures.group_accuracy_rows)
table.add_frame(groups.drop(columns="tau"))
taus = groups[groups.calibration == "val"].drop_duplicates(["world_seed", "method", "backbones", "seed"])
taus.pivot_table(index=["method", "backbones"], columns="world_seed", values="tau").rename_axis(
    columns="world seed").round(2)

# %% [markdown]
# ## Tab. 3: where should the pre-training prior go?
#
# CE and LA fine-tuning; GLA-Train (cross-entropy on $z + \log P_S + \log \hat P_P$); and GLA's post-hoc
# combination of the LA model with the zero-shot model, $z_{ft}/T_{ft} + z_{zs}/T_{zs} - \log \hat P_P$.
# Accuracy (%) overall and per D-group, mean ± sd over models and worlds.

# %%
tab3 = analysis.over_worlds(studies, analysis.method_scores)
table.add_frame(tab3, metric="accuracy")
analysis.summary_cells(tab3)

# %% [markdown]
# ## Tab. 4: kNN feature quality per D-group
#
# A weighted kNN classifier (k = 200, temperature 0.1) on each model's classifier-input features, with the
# class-balanced validation split as the memory bank, scored on the test split; "pre-trained" is the
# frozen backbone before fine-tuning.

# %%
knn = analysis.over_worlds(studies, analysis.knn_scores)
table.add_frame(knn, metric="knn_accuracy")
display(analysis.summary_cells(knn))
plots.tab4_knn(knn)

# %% [markdown]
# ## Fig. 9: a model trained from scratch
#
# The mini models' image tower trained from random weights (no pre-training, so no parameter imbalance)
# with the LA loss. If the trend of the fine-tuned models against $\hat P_P$ or $\pi_m$ comes from
# pre-training, this model should show none, provided it learned something: the report calls the claim
# uninformative when its accuracy is below five times chance.

# %%
scratch = analysis.over_worlds(studies, analysis.scratch_rows)
scratch_acc = chance = float("nan")
if len(scratch):
    table.add_frame(scratch)
    display(analysis.summary_cells(scratch[scratch.metric == "trend_rho"], digits=3))
    scratch_acc = scratch.loc[scratch.metric == "accuracy", "value"].mean()
    chance = scratch.loc[scratch.metric == "chance", "value"].mean()
glue("scratch_accuracy", scratch_acc, display=False)
glue("chance_accuracy", chance, display=False)
table.save();

# %% [markdown]
# The from-scratch model's class-mean test accuracy is {glue:text}`scratch_accuracy:.1f`% (mean over worlds;
# chance {glue:text}`chance_accuracy:.1f`%).
#
# Download the rows behind every number on this page:
# {download}`01_imbalance.csv <data/01_imbalance.csv>` (one row per measured value, with its world, seed,
# configuration hash, git revision and library versions).
