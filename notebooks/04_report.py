# ---
# jupyter:
#   jupytext:
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # Reproduction report
#
# Each claim of the paper, the number the paper reports, what we measured with its 95 % interval over
# **independent worlds**, and a verdict. Everything on this page is computed from the result tables the
# other pages wrote; the rules that turn the numbers into verdicts were committed, with every claim's
# direction, unit and (for a claim of *no* effect) equivalence margin, before the numbers existed: the
# claims registry `ltlib/configs/claims/registry.yaml`, applied by `ltlib.book.registry.decide`.
#
# - **The replicate is a world.** A world seed draws the pre-training corpora, pre-trains every model from
#   its own initialisation and batch order, and draws the downstream data; fine-tuning seeds nest inside a
#   world and are averaged there first, with the models. One value per world enters the interval.
# - **A claimed effect** is *reproduced* when the 95 % t-interval over worlds lies on the claimed side of
#   zero, *not reproduced* when it lies on the other side, and **inconclusive** otherwise.
# - **A claimed absence of an effect** is reproduced only when the 90 % interval lies inside ±margin (two
#   one-sided tests at 5 %); not reproduced when the 95 % interval lies entirely beyond the margin;
#   inconclusive otherwise. A wide interval is never a success.
# - **Firm**: decisive, every world's own value lies on the verdict's side (inside the margin, for a claim of
#   no effect), and the committed build of this default setting made with torch's other CPU kernels reaches the
#   same verdict. Another machine's float rounding moves every world's value, and an interval close to zero can
#   then widen past it; a verdict that moves so is not firm, and its note gives the other build's verdict (the
#   [reliability page](../reliability.md) compares the two builds). The summary counts firm verdicts separately.
# - **Controls and sanity checks** (a positive control that must come out a known way; a quantity true by
#   construction) are shown with their role and left out of the counts. A claim whose precondition fails
#   (the from-scratch control must learn) is **uninformative**.
# - **Truth beside the estimate**: a claim that ranks classes by the pre-training prior is computed with
#   GLA's estimate (the headline, as the paper does), with the world's true π and with the uniform-prior
#   reference model's estimate (the estimator's noise floor); group-wise claims also at a τ chosen on the
#   validation split. A verdict that changes with the variant says so in the note.
# - **Sensitivity**: a claim whose verdict changes when the world's downstream counts or fine-tuning steps
#   are moved (the [sensitivity grid](09_sensitivity.ipynb), run with `make sensitivity`) says so in the note.

# %% tags=["parameters"]
setting = "default"
overrides = {}

# %%
from ltlib.book import plots
from ltlib.book.glue import glue
from ltlib.book.page import open_page
from ltlib.book.registry import load_registry, margin_reasons, registry_table
from ltlib.book.report import (add_notes, evaluate, headline_table, per_world_counts,
                               provenance_table, summary_counts, variant_table, verdict_records)
from ltlib.book.sensitivity import grid_notes
from ltlib.paths import sensitivity_verdicts_path
from ltlib.results import load_tables
from ltlib.storage import write_text

page = open_page("04_report", setting, overrides)
rows = load_tables(page.out_dir / "tables")
registry = load_registry()
# the committed sensitivity grid (make sensitivity) and the builds with other CPU kernels were run in the default
# setting as planned (no --set): their notes, and the rounding check of firmness, belong there only
report = evaluate(registry, rows, page.scale)
if page.compares_with_committed_builds:
    report = add_notes(report, grid_notes(sensitivity_verdicts_path()))
report = page.check_rounding(report)
write_text(page.out_dir / "downloads" / "04_report" / "verdicts.csv", verdict_records(report).to_csv(index=False))
counts = summary_counts(report)
for name, value in counts.items():
    glue(f"n_{name.replace(' ', '_')}", value, display=False)
glue("n_worlds", int(report.n_worlds.max()), display=False)

# %% [markdown]
# Of {glue:text}`n_claims` claims, over {glue:text}`n_worlds` independent worlds:
# **{glue:text}`n_reproduced` reproduced** ({glue:text}`n_firm_reproduced` firm),
# **{glue:text}`n_not_reproduced` not reproduced** ({glue:text}`n_firm_not_reproduced` firm),
# **{glue:text}`n_inconclusive` inconclusive**, {glue:text}`n_uninformative` uninformative,
# {glue:text}`n_not_measured` not measured here and {glue:text}`n_full_scale_only` about the real datasets only.
#
# ## The claims

# %%
def colour(value):
    return (f"background-color: {plots.VERDICT_COLOURS[value]}; color: white"
            if value in plots.VERDICT_COLOURS else "")


headline_table(report, "claim").style.map(colour, subset=["verdict"]).hide(axis="index")

# %% [markdown]
# ## Effects at a glance
#
# The headline effect of every measured claim with its 95 % interval over worlds (each in its own unit), coloured
# by verdict; the small dots are the worlds.

# %%
plots.registry_forest(report[report.headline & (report.role == "claim")])

# %% [markdown]
# ## Each world on its own
#
# How many claims each world, read alone, puts on the claimed side (✓) or not (✗): a claim whose worlds
# disagree cannot be firm.

# %%
per_world_counts(report)

# %% [markdown]
# ## Every variant: the truth and the noise floor beside the estimate, and calibration
#
# The same claims measured with each prior source (the model's own estimate P̂_P, the world's true π, the
# uniform-prior reference model's estimate) and at each calibration (the paper's fixed rule, or a τ chosen
# on the validation split).

# %%
variant_table(report).style.map(colour, subset=["verdict"]).hide(axis="index")

# %% [markdown]
# ## Controls, sanity checks and descriptive rows
#
# Shown with their role; not counted above. A positive control must come out as stated if the measurement
# works; a sanity check is true by construction (balanced data spreads the same total evenly; M identical
# towers cost M times one).

# %%
headline_table(report[report.role != "claim"]).style.map(colour, subset=["verdict"]).hide(axis="index")

# %% [markdown]
# ## The registry
#
# The pre-registered rules, as committed before the numbers (git history is the record): the role, the unit,
# the rule and the prior sources of every claim, then each equivalence margin with the reason for its size.

# %%
registry_table(registry).style.hide(axis="index")

# %%
margin_reasons(registry).style.hide(axis="index")

# %% [markdown]
# ## Provenance
#
# The result rows behind this report: which notebook wrote them, at which git revision, from how many
# runs, worlds and fine-tuning seeds. Every row also carries the library versions and a config hash.
# {download}`verdicts.csv <data/verdicts.csv>` holds this page's verdicts, one line per claim and variant.

# %%
provenance_table(rows)
