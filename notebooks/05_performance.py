# ---
# jupyter:
#   jupytext:
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # Performance
#
# How long this book took to build, what pre-training the mini models cost, and the benchmark table of
# `python -m ltlib bench` (each figure a ratio measured side by side in one run). Benchmarks are not
# tests: nothing fails on a time.

# %% tags=["parameters"]
setting = "default"
overrides = {}

# %%
import pandas as pd
from ltlib.book import perf, plots
from ltlib.book.display import human_columns
from ltlib.book.glue import glue
from ltlib.book.page import open_page

page = open_page("05_performance", setting, overrides)
pd.set_option("display.max_rows", 500)  # show every benchmark row, and whole case names
pd.set_option("display.max_colwidth", None)
timings = perf.notebook_timings()
glue("notebook_seconds", timings["seconds"].sum(), display=False)

# %% [markdown]
# ## This build
#
# Wall time of each notebook in the build that produced this page (seconds; "up-to-date" rows were
# skipped by the runner and show the time of the build that produced them). The notebooks before this one
# took {glue:text}`notebook_seconds:.0f` s in total on this machine. Pre-trained mini models (`.cache/`)
# and stage-1 runs (`runs/`) are cached and reused by every later build, so a rebuild can be much faster
# than a first build; the `book` rows of the benchmark table below record a build from a clean clone.

# %%
human_columns(timings[["notebook", "status", "seconds"]].round(1))

# %%
plots.notebook_times(timings)

# %% [markdown]
# ## Where the time of a clean build goes
#
# The committed phase profile of one `make profile` run (a `make book` from a clean cache with the phase
# timer on; `ltlib.phases`, summarised by `ltlib.bench.profile`): wall seconds attributed to each phase
# (time shared by parallel processes is split between the phases running at that instant, so the shares add
# up to 100 %), the CPU seconds spent in it, and how many cores it kept busy on average.

# %%
human_columns(perf.profile_comparison(), {"arithmetic_percent": "model arithmetic (%)",
                                          "outside_percent": "outside model arithmetic (%)"})

# %% [markdown]
# The phases of the latest profiled build (after), then of the one before the worlds-as-replicates and
# performance work (before). "Model arithmetic" is pre-training and fine-tuning forward/backward steps and
# evaluation; everything else (data generation, start-up, notebook code, plotting, idle cores) is outside it.
#
# Since the profile kept from c86346f, each notebook's kernel starts, imports and starts its fork server while
# the previous notebook runs (`ltlib.book.runner.prestart`). Those seconds now overlap the previous notebook's
# model arithmetic, and an instant two phases share is split between them: most of the drop in the share
# outside model arithmetic between those two rows is that overlap, not work removed. Compare their total wall
# times for what the build gained; the warm rebuild below, mostly start-up, gained more.

# %%
human_columns(perf.build_profile())

# %%
human_columns(perf.build_profile(perf.PROFILE_DIR / "before"))

# %% [markdown]
# ### Rebuilds
#
# Right after its clean build, `make profile` times the two rebuilds a reader meets next, in the same clone
# (`ltlib.bench.rebuild`). First, every notebook is executed again with the pre-trained models and the
# fine-tuning runs cached (`make book FORCE=1`): what a change to the notebooks' code costs. Second, nothing
# has changed, so the runner skips every notebook and only the HTML is built again (`make book`).

# %%
human_columns(perf.rebuild_times())

# %% [markdown]
# ## Pre-training the mini foundation models
#
# Read from the records saved with each cached model (CPU seconds of its own process; the models are
# pre-trained two at a time on two cores).

# %%
human_columns(perf.pretraining_times(page.parameters["world"])) if page.scale == "mini" else \
    "not applicable at full scale"

# %% [markdown]
# ## Benchmarks
#
# The last run of `python -m ltlib bench` on the machine named in each row (committed under
# `book/data/benchmarks/` with its git revision); GPU rows say "not measured" when no GPU was available.

# %%
bench = perf.benchmark_table()
human_columns(perf.benchmark_provenance(bench))

# %%
human_columns(perf.benchmark_view(bench))

# %% [markdown]
# ### How the book's time grows with the mini world
#
# `make book` at the smoke and default world sizes (notebook time, pre-training included), as recorded
# by `python -m ltlib bench --only book`.

# %%
human_columns(perf.book_scaling(bench))

# %% [markdown]
# ## Full-scale estimates
#
# No GPU was available to us, so the time, memory and disk of the full-scale runs are **estimates**
# (`ltlib.bench.suite.full_scale_estimates`) computed from three quantities measured by the benchmark above and
# the assumptions stated on [the full-scale page](../full_scale.md): one 224-px ViT-B/16 forward with
# AdaptFormer and a 1,000-class head costs {glue:text}`bench_gflops:.1f` GFLOPs; one CPU core decodes and
# augments {glue:text}`bench_loader_rate:.1f` ImageNet-sized JPEGs per second; a training forward keeps
# {glue:text}`bench_saved_mib:.0f` MiB per image for the backward pass (fp32).

# %%
for key, value in perf.full_scale_inputs(bench).items():
    glue(f"bench_{key}", value, display=False)
human_columns(perf.full_scale_table(bench))
