# ---
# jupyter:
#   jupytext:
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # Semantic or diversity? The factorial experiment
#
# The paper explains the gain of its backdoor adjustment causally: foundation models pre-trained on
# different data rely on different semantic factors (parts), so combining them averages the confounder
# out (§4). An ensemble of *any* different models also gains, from diversity alone. With real foundation
# models the two cannot be told apart: CLIP, OpenCLIP and MetaCLIP differ in everything at once. The mini
# world can separate them. In each world we pre-train three triples of models around one model $b$ (the
# world's control model, which rotates with the world seed). The three models of a triple differ in one
# factor only:
#
# - **pre-training seed**: $b$ and two independently pre-trained copies of it (the same prior and part
#   bias, other images and initialisation: the report's same-backbone control);
# - **prior order**: $b$'s part bias with the prior order of each of the other two models;
# - **part bias**: $b$'s prior order with the part bias (head fraction) of each of the other two models.
#
# Each member has its own images and initialisation, is fine-tuned with LA and the book's LIFT recipe, and the
# triple is combined by summing logits. The causal story predicts the ensemble gain ordered part bias >
# prior order > pre-training seed. The two comparisons are claims of the registry
# (`factorial_part_over_prior`, `factorial_prior_over_seed`), fixed before these numbers existed; the
# [reproduction report](04_report.ipynb) judges them with the other claims.

# %% tags=["parameters"]
setting = "default"
overrides = {}

# %%
from ltlib.book import analysis, plots
from ltlib.book.display import human_columns
from ltlib.book.glue import glue
from ltlib.book.page import open_page
from ltlib.book.registry import load_registry
from ltlib.book.report import evaluate, headline_table

page = open_page("08_factorial", setting, overrides)
studies, table = page.studies, page.table
glue("world_seeds", ", ".join(map(str, page.world_seeds)), display=False)
glue("n_worlds", len(studies), display=False)

# %% [markdown]
# ## The triples
#
# In the first world: each member's part bias and how its prior order agrees with the first member's
# (Spearman correlation of the log priors; 1 is the same order). Within a triple only one of the two
# columns varies.

# %%
human_columns(analysis.factorial_members(page.study)).style.hide(axis="index")

# %% [markdown]
# ## Ensemble gain per factor
#
# For each world (seeds {glue:text}`world_seeds`) and factor: the overall accuracy of the members alone and of
# the triple, and the triple's gain over its members' mean and over its best member. The members' mean
# accuracy is shown beside the gains because the triples cannot be matched on it exactly: a weaker triple
# has more to gain.

# %%
rows = analysis.over_worlds(studies, analysis.factorial_rows)
table.add_frame(rows, metric="accuracy")
gains = analysis.factorial_gains(rows)
human_columns(gains).style.format(precision=2).hide(axis="index")

# %% [markdown]
# Over the {glue:text}`n_worlds` worlds (mean and 95 % interval, worlds as replicates):

# %%
mean_gain = gains.groupby("factor").gain_over_mean.mean()
for name, factor in (("seed", "pre-training seed"), ("prior", "prior order"), ("part", "part bias")):
    glue(f"gain_{name}", float(mean_gain[factor]), display=False)
human_columns(analysis.factorial_summary(gains))

# %% [markdown]
# On average over the worlds a triple gains {glue:text}`gain_seed:.1f` points over its members' mean when they
# differ only in their pre-training seed, {glue:text}`gain_prior:.1f` when they differ only in their prior order
# and {glue:text}`gain_part:.1f` when they differ only in their part bias. The seed triple is the diversity
# baseline: an ensemble of equally biased models gains that much without any semantic difference. Only the
# excess over it can be credited to the factor the causal story names.

# %%
overall = rows[(rows.group == "overall")].assign(
    ensemble=lambda f: f.n_models.map({1: "members alone (mean)", 3: "triple (logit sum)"}))
plots.grouped_bars(overall, x="control", hue="ensemble", title="overall accuracy by the factor the triple varies")

# %% [markdown]
# ## The two claims
#
# Each is the difference between two factors' ensemble gains (over the members' mean), one value per world,
# judged by the report's rule: reproduced when the 95 % interval over worlds lies above zero, not reproduced
# when it lies below, otherwise inconclusive. As in the report, a verdict is firm only when every world reads the
# same way and the committed build with other CPU kernels (another CPU's float rounding) reaches the same verdict;
# a note gives that build's verdict where it differs (see the book's reliability page).

# %%
claims = [spec for spec in load_registry() if spec.key.startswith("factorial_")]
verdicts = page.check_rounding(evaluate(claims, table.frame(), page.scale))
headline_table(verdicts).style.hide(axis="index")

# %%
table.save();

# %% [markdown]
# Download the rows behind every number on this page:
# {download}`08_factorial.csv <data/08_factorial.csv>` (one row per measured value, with its world, seed,
# configuration hash, git revision and library versions).
