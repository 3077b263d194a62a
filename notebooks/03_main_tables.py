# ---
# jupyter:
#   jupytext:
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # Main tables and ablations
#
# The method (the backdoor adjustment over $M = 3$ fine-tuned foundation models) against each single
# fine-tuned model (the LIFT baseline), GLA's post-hoc combination and the probability-mean variant
# (Tab. 5–7, Tab. 3); overall, D-group and P-group accuracy (Tab. 11); $M = 1, 2, 3$ and every subset
# (Tab. 8); a control the paper lacks (an ensemble of one backbone fine-tuned with different seeds);
# the consistency / reverse / balance scenarios (Tab. 13); jointly trained versus post-hoc (rebuttal);
# and the measured inference cost against $M$.

# %% tags=["parameters"]
setting = "default"
overrides = {}

# %%
from ltlib.book import analysis, plots
from ltlib.book.glue import glue
from ltlib.book.page import open_page

page = open_page("03_main_tables", setting, overrides)
studies, table = page.studies, page.table
page.study.index.groupby(["order", "method", "model", "variant"]).size().rename("runs in the first world").to_frame()

# %% [markdown]
# Every number below is computed in each independent world (world seeds {glue:text}`world_seeds`) and
# shown as mean ± sd over worlds (and over the models for single models); the
# [reproduction report](04_report.ipynb) gives the intervals and verdicts.
#
# ## The method against its baselines (Tab. 5–7, Tab. 11)
#
# Every non-empty subset of the three LA-fine-tuned models, per world and seed, combined by summing logits
# (the official code's rule) and by averaging probabilities (the paper's equation). P-groups for every row
# come from one prior, the geometric mean of the three models' $\hat P_P$.

# %%
glue("world_seeds", ", ".join(map(str, page.world_seeds)), display=False)
subsets = analysis.over_worlds(studies, analysis.subset_table)
table.add_frame(subsets, metric="accuracy")
analysis.summary_cells(subsets[subsets.n_models.isin([1, len(page.study.backbones)])], index="label")

# %% [markdown]
# GLA post-hoc (each LA model combined with its own zero-shot model, $-\log \hat P_P$), for reference:

# %%
gla = analysis.over_worlds(studies, analysis.gla_posthoc_scores)
table.add_frame(gla, metric="accuracy")
analysis.summary_cells(gla)

# %%
for key, value in analysis.headline_gain(subsets).items():
    glue(key, value, display=False)

# %% [markdown]
# The backdoor adjustment reaches {glue:text}`acc_method:.2f` % against {glue:text}`acc_lift:.2f` % for
# the mean single LIFT model, a difference of {glue:text}`gain_overall:.2f` points (mean over worlds).
#
# ## Tab. 8: the number of foundation models
#
# Accuracy against $M$; each grey point is one subset, world and seed, the line the mean with a 95 % interval.

# %%
plots.tab8_subsets(subsets)

# %%
analysis.summary_cells(subsets[subsets.rule == "logit_sum"], index="n_models").rename_axis(index="M")

# %% [markdown]
# ## Different semantic factors, or plain ensembling?
#
# The paper attributes the gain to combining models with different incomplete semantic factors. An
# ensemble of three **independently pre-trained copies of one model** (same corpus recipe: the same prior
# and part bias; other images and initialisation; the model rotates with the world) gains from ensembling
# alone; if the different models do better, their difference matters beyond ensembling.

# %%
control = analysis.over_worlds(studies, analysis.same_backbone_control)
table.add_frame(control, metric="accuracy")
display(analysis.summary_cells(control, index="control"))
plots.grouped_bars(control, x="group", hue="control", title="ensembles of three fine-tuned models")

# %% [markdown]
# ## Tab. 13: consistency, reverse and balance
#
# Downstream training sets whose head classes are the pre-training head classes (consistent: the
# models' joint popularity order), their tail classes (reverse), or balanced (the same total, evenly);
# "independent" is the main setting. The paper reports Balance best and Reverse above Consistency.

# %%
scenarios = analysis.over_worlds(studies, analysis.scenario_scores)
table.add_frame(scenarios, metric="scenario_accuracy")
overall = analysis.with_labels(scenarios[scenarios.group == "overall"])
display(analysis.summary_cells(overall, index="scenario", columns="label"))
plots.grouped_bars(overall, x="scenario", hue="label", title="overall accuracy by scenario")

# %% [markdown]
# ## Jointly trained versus post-hoc
#
# The three LIFT models trained together with one LA loss on their summed logits, against the post-hoc
# sum of the separately trained models (same task and seed). Summing three cosine heads of scale 25 trains
# the joint model at an effective scale of 75 with the single model's learning rate; the *matched scale*
# run divides each member's scale by three (effective scale 25, as a single model). The report's verdict
# uses the matched run.

# %%
joint = analysis.over_worlds(studies, analysis.joint_vs_posthoc)
table.add_frame(joint, metric="accuracy")
analysis.summary_cells(joint, index="control")

# %% [markdown]
# ## Inference cost against $M$
#
# Measured floating-point operations per image and throughput of the image towers of $M$ models, in this
# process on this machine (mean over worlds; the models of every world have the same architecture), beside the
# GFLOPs the paper reports for $M$ ViT-B/16 models (`paper_gflops`, the dashed line; our ViT-B/16
# measurements are on the [performance page](05_performance.ipynb)).

# %%
cost = analysis.over_worlds(studies, analysis.world_cost)
if len(cost):
    table.add_frame(cost)
    display(plots.cost_vs_m(analysis.cost_table(cost)))

# %%
table.save();

# %% [markdown]
# Download the rows behind every number on this page:
# {download}`03_main_tables.csv <data/03_main_tables.csv>` (one row per measured value, with its world, seed,
# configuration hash, git revision and library versions).
