"""The performance page's data: this build's notebook times, the mini models' pre-training cost, the
committed benchmark tables (``python -m ltlib bench``) and the committed phase profile of a book build
(``ltlib.bench.profile``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..paths import benchmarks_dir, executed_dir, profile_dir
from ..storage import read_table

BENCHMARK_DIR = benchmarks_dir()
PROFILE_DIR = profile_dir()


def notebook_timings() -> pd.DataFrame:
    """This build's ``timings.csv`` so far (notebook, status, seconds, parameters hash, git SHA)."""
    path = executed_dir() / "timings.csv"
    if not path.is_file():
        return pd.DataFrame(columns=["notebook", "status", "seconds", "parameters", "git_sha"])
    return read_table(path)


def pretraining_times(world: str) -> pd.DataFrame:
    """Per mini model of ``world``: optimizer steps, wall and CPU seconds of its pre-training, from the
    records cached with the weights (pre-training them first if needed)."""
    from ..miniworld import load_world

    w = load_world(world)
    rows = []
    for name, entry in w.prepare().items():
        log = entry.log
        rows.append({"model": name, "steps": log.get("steps"), "wall_seconds": log.get("seconds"),
                     "cpu_seconds": log.get("cpu_seconds"), "generation_seconds": log.get("generation_seconds"),
                     "git_sha": (log.get("git_sha") or "")[:12]})
    return pd.DataFrame(rows).round(1)


def benchmark_table(directory: Path = BENCHMARK_DIR) -> pd.DataFrame:
    """The committed benchmark results (every ``*.csv`` directly under ``book/data/benchmarks``)."""
    paths = sorted(Path(directory).glob("*.csv"))
    if not paths:
        return pd.DataFrame({"note": ["no benchmark results committed yet: run `make bench`"]})
    return pd.concat([read_table(p) for p in paths], ignore_index=True)


def benchmark_view(bench: pd.DataFrame) -> pd.DataFrame:
    """The benchmark table as the page shows it: one row per measurement, values rounded and NaN shown as
    "not measured"; the provenance columns are shown once by :func:`benchmark_provenance`."""
    from ..bench.suite import format_value

    if "benchmark" not in bench:
        return bench
    view = bench.assign(value=bench["value"].map(format_value), note=bench["note"].fillna(""))
    return view[["benchmark", "case", "metric", "value", "unit", "note"]]


def benchmark_provenance(bench: pd.DataFrame) -> pd.DataFrame:
    """Where and when the benchmark rows were measured: one row per (device, git revision, time)."""
    if "benchmark" not in bench:
        return bench
    columns = ["device", "git_sha", "timestamp"]
    counts = bench.groupby(columns, sort=False).size().rename("rows").reset_index()
    return counts.assign(git_sha=counts["git_sha"].str[:12])


def full_scale_inputs(bench: pd.DataFrame) -> dict[str, float]:
    """The three CPU-measured inputs of ``ltlib.bench.suite.full_scale_estimates`` (NaN where not measured):
    ``gflops`` of one 224-px forward, ``loader_rate`` images/s of one core, ``saved_mib`` per image."""
    from ..bench.suite import FULL_SCALE_INPUTS, measured_value
    from ..errors import ConfigError

    out = {}
    for name, key in FULL_SCALE_INPUTS.items():
        try:
            out[name] = measured_value(bench, *key)
        except (ConfigError, KeyError):  # KeyError: a table without benchmark columns (nothing committed)
            out[name] = float("nan")
    return out


def full_scale_table(bench: pd.DataFrame) -> pd.DataFrame:
    """Estimated time, GPU memory and disk per dataset and stage (``ltlib.bench.suite.full_scale_estimates``) from
    the committed measurements, or a one-line note where they are missing."""
    from ..bench.suite import full_scale_estimates

    if any(pd.isna(v) for v in full_scale_inputs(bench).values()):
        return pd.DataFrame({"note": ["the train and inference benchmarks have not been run: `make bench`"]})
    table = full_scale_estimates(bench)
    return table.assign(value=table["value"].round(2))


def book_scaling(bench: pd.DataFrame) -> pd.DataFrame:
    """The ``book`` benchmark rows: notebook time of ``make book`` per world size."""
    if "benchmark" not in bench:
        return bench
    book = bench[(bench["benchmark"] == "book") & (bench["metric"] == "seconds_notebooks_total")]
    return book[["case", "value", "unit", "note"]].reset_index(drop=True)


ARITHMETIC_PHASES = ("fine-tuning: forward/backward", "pre-training: training steps", "evaluation")
# The profiles the performance page compares: before the worlds-as-replicates and performance work (one world,
# three fine-tuning seeds), three worlds with spawned pool workers (kept from 75e7220), three worlds with each
# kernel started when its notebook runs (kept from c86346f) and the latest ``make profile`` (every world of the
# plan).
PROFILES = {"before (one world × 3 fine-tuning seeds, commit 190d6f9)": PROFILE_DIR / "before",
            "three worlds, workers spawned per pool (commit 75e7220)": PROFILE_DIR / "75e7220",
            "three worlds, kernels started when their notebook runs (commit c86346f)": PROFILE_DIR / "c86346f",
            "after (the plan's worlds, this revision's make profile)": PROFILE_DIR}


def profile_comparison(profiles: dict[str, Path] | None = None) -> pd.DataFrame:
    """One row per committed profile: total wall seconds of the build, the share of it spent in model
    arithmetic (:data:`ARITHMETIC_PHASES`) and outside it (data generation, plumbing, start-up, plotting,
    idle cores), and the mean number of busy cores; a profile not committed is left out."""
    rows = []
    for name, directory in (profiles or PROFILES).items():
        path = Path(directory) / "profile.csv"
        if not path.is_file():
            continue
        table = pd.read_csv(path)
        inside = float(table.loc[table["phase"].isin(ARITHMETIC_PHASES), "share"].sum())
        wall = float(table["wall_s"].sum())
        busy = float((table["cpu_s"].fillna(0).sum()) / wall) if wall else float("nan")
        rows.append({"build": name, "wall_s": round(wall, 1), "arithmetic_percent": round(100 * inside, 1),
                     "outside_percent": round(100 * (1 - inside), 1), "cores_busy": round(busy, 2)})
    return pd.DataFrame(rows)


def build_profile(directory: Path = PROFILE_DIR) -> pd.DataFrame:
    """Where each minute of a profiled ``make book`` went: one row per phase (wall and CPU seconds, share of
    the build's wall time, cores busy), from the committed ``profile.csv``; a one-line note when none is.

    Recorded with ``LTLIB_PHASES=$PWD/results/profile/phases.jsonl make book`` and summarised with
    ``python -m ltlib.bench.profile results/profile/phases.jsonl --out book/data/profile`` (both: ``make profile``).
    """
    path = Path(directory) / "profile.csv"
    if not path.is_file():
        return pd.DataFrame({"note": ["no profile committed yet: see ltlib.bench.profile"]})
    table = pd.read_csv(path)
    return table.assign(wall_s=table["wall_s"].round(1), cpu_s=table["cpu_s"].round(1),
                        share=(100 * table["share"]).round(1), cores_busy=table["cores_busy"].round(2)
                        ).rename(columns={"share": "share_percent"})


def rebuild_times(directory: Path = PROFILE_DIR) -> pd.DataFrame:
    """The rebuilds timed right after the committed profile's clean build (``ltlib.bench.rebuild``): one row
    per rebuild (what was rebuilt, the command, wall seconds, exit status, revision); a note when none is."""
    path = Path(directory) / "rebuilds.csv"
    if not path.is_file():
        return pd.DataFrame({"note": ["no rebuild timed yet: `make profile` times them after its clean build"]})
    return read_table(path)
