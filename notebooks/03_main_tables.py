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
scale = "mini"
world = "default"
dataset = ""
seeds = [0, 1, 2]
out_dir = "results/default"
runs_root = "runs"

# %%
import pandas as pd
import torch
from ltlib.book.glue import glue

from ltlib.book import analysis, plots
from ltlib.bench.suite import PAPER_GFLOPS
from ltlib.miniworld.experiments import main_table_jobs, open_study
from ltlib.results import ResultsTable, summarize

torch.set_num_threads(1)
study = open_study(scale, world, dataset, seeds, runs_root, jobs_for=main_table_jobs)
table = ResultsTable(notebook="03_main_tables", scale=scale, world=study.label, out_dir=f"{out_dir}/tables")
p_hat, _ = analysis.prior_fits(study, solvers=("exact",))
study.index.groupby(["order", "method", "model"]).size().rename("runs").to_frame()

# %% [markdown]
# ## The method against its baselines (Tab. 5–7, Tab. 11)
#
# Every non-empty subset of the three LA-fine-tuned models, per seed, combined by summing logits (the
# official code's rule) and by averaging probabilities (the paper's equation). P-groups for every row come
# from one prior, the geometric mean of the three models' $\hat P_P$. Mean ± sd over seeds (and over the
# backbones for single models).

# %%
subsets = analysis.subset_scores(study, p_hat)
table.add_frame(subsets, metric="accuracy")
main = subsets[subsets.M.isin([1, len(study.backbones)])]
analysis.summary_cells(main)

# %% [markdown]
# GLA post-hoc (each LA model combined with its own zero-shot model, $-\log \hat P_P$), for reference:

# %%
gla = analysis.method_scores(study, p_hat, methods=("LA",))
gla = gla[gla.method == "GLA post-hoc"]
table.add_frame(gla, metric="accuracy")
analysis.summary_cells(gla)

# %%
means = summarize(subsets.assign(world=study.label), by=("method", "M", "group")).set_index(["method", "M", "group"])["mean"]
M = len(study.backbones)
gain = means["backdoor adjustment (logit_sum)", M, "overall"] - means["LIFT (single model)", 1, "overall"]
glue("gain_overall", gain, display=False)
glue("acc_method", means["backdoor adjustment (logit_sum)", M, "overall"], display=False)
glue("acc_lift", means["LIFT (single model)", 1, "overall"], display=False)

# %% [markdown]
# The backdoor adjustment reaches {glue:text}`acc_method:.2f` % against {glue:text}`acc_lift:.2f` % for
# the mean single LIFT model, a difference of {glue:text}`gain_overall:.2f` points (the report gives the
# interval over seeds).
#
# ## Tab. 8: the number of foundation models
#
# Accuracy against $M$; each grey point is one subset and seed, the line the mean with a 95 % interval.

# %%
plots.tab8_subsets(subsets)

# %%
analysis.summary_cells(subsets[subsets.method != "backdoor adjustment (prob_mean)"], index="M")

# %% [markdown]
# ## Different semantic factors, or plain ensembling?
#
# The paper attributes the gain to combining models with different incomplete semantic factors. An
# ensemble of equally many fine-tunings of a *single* backbone (different seeds, same task) gains from
# ensembling alone; if the different backbones do better, their difference matters beyond ensembling.

# %%
control = analysis.same_backbone_control(study)
table.add_frame(control, metric="accuracy")
display(analysis.summary_cells(control))
plots.grouped_bars(control, x="group", hue="method", title="ensembles of three fine-tuned models")

# %% [markdown]
# ## Tab. 13: consistency, reverse and balance
#
# Downstream training sets whose head classes are the pre-training head classes (consistent: the
# models' joint popularity order), their tail classes (reverse), or balanced (the same total, evenly);
# "independent" is the main setting. The paper reports Balance best and Reverse above Consistency.

# %%
scenarios = analysis.scenario_scores(study)
table.add_frame(scenarios.rename(columns={"order": "backbones"}), metric="scenario_accuracy")
display(analysis.summary_cells(scenarios[scenarios.group == "overall"], index="order", columns="method"))
plots.grouped_bars(scenarios[scenarios.group == "overall"], x="order", hue="method", title="overall accuracy by scenario")

# %% [markdown]
# ## Jointly trained versus post-hoc
#
# The three LIFT models trained together with one LA loss on their summed logits, against the post-hoc
# sum of the separately trained models (same task and seed).

# %%
joint = analysis.joint_vs_posthoc(study)
table.add_frame(joint, metric="accuracy")
analysis.summary_cells(joint)

# %% [markdown]
# ## Inference cost against $M$
#
# Measured floating-point operations per image and throughput of the image towers of $M$ models, in this
# process on this machine; the paper's ViT-B/16 figures are shown for scale (the ViT-B/16 measurements
# are on the [performance page](05_performance.ipynb)).

# %%
backbones = [study.world.backbone(b) for b in study.backbones] if study.world is not None else []
if backbones:
    cost = analysis.inference_cost(backbones, backbones[0].image_size)
    cost_rows = cost.melt(id_vars="M", var_name="metric")
    table.add_frame(cost_rows.assign(method="M=" + cost_rows.M.astype(str), group="inference"))
    display(cost.round(4))
    display(plots.cost_vs_m(cost))

# %%
table.save();

# %% [markdown]
# Download the rows behind every number on this page:
# {download}`03_main_tables.csv <data/03_main_tables.csv>` (one row per measured value, with its seed, configuration
# hash, git revision and library versions).
