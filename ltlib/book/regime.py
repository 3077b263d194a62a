"""The regime card measured in each mini world (book: The mini world, 'The regime card').

The card (``configs/regimes/paper.yaml``, ``ltlib.book.registry.load_regime``) states bands that put a mini
world near the paper's regime; this module measures one world's values from its cached stage-1 runs:

- ``zeroshot_top1``: zero-shot top-1 of each imbalanced model on the class-balanced test split (mean);
- ``finetune_gain``: LIFT (LA) overall accuracy minus zero-shot, paired per model and seed (mean);
- ``scratch_over_chance``: the from-scratch control's accuracy divided by chance 100 / K (Fig. 9);
- ``dfew_share`` / ``dmany_share``: classes in D-Few / D-Many (%), from the downstream training counts and
  the thresholds the task records (``ltlib.metrics.d_groups``, ``ltlib.stage2.task_thresholds``);
- ``finetune_steps``: optimiser steps of one LIFT run (its training log, else epochs · ⌈N / batch⌉);
- ``book_minutes``: the whole book's wall time, a property of the build rather than of one world: from the
  committed profile of the last ``make profile`` (:func:`profiled_book_minutes`).

The runs are those of :func:`regime_jobs`, a subset of notebook 01's grid with the same job fields, so
the world page trains them and notebook 01 reuses them (same run directories).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..metrics import d_groups
from ..miniworld.experiments import MAIN_RECIPE, MiniJob, Study, grid, open_studies
from ..runs import load_run
from ..stage2 import task_thresholds
from .perf import PROFILE_DIR
from .registry import RegimeProperty, check_regime

MEAN_COLUMN = "mean of worlds"
SHORT_NAMES = {"zeroshot_top1": "zero-shot top-1", "finetune_gain": "fine-tuning gain",
               "scratch_over_chance": "from scratch over chance", "dfew_share": "D-Few share",
               "dmany_share": "D-Many share", "finetune_steps": "fine-tuning steps", "book_minutes": "book minutes"}


def regime_jobs(world: str, backbones: Sequence[str], reference: str, seeds: Sequence[int],
                world_seed: int | None = None) -> list[MiniJob]:
    """The runs the regime card reads: zero-shot and LA per foundation model and seed, and the from-scratch
    control (LA on the first model's architecture, its own recipe). Every job is also one of
    ``ltlib.miniworld.experiments.imbalance_jobs`` (same fields, hence the same run directory).
    (``reference`` is unused: the signature is ``open_studies``' ``jobs_for``.)"""
    keys = {"world_seed": world_seed}
    jobs = grid(world, backbones, ("zeroshot", "LA"), seeds, **keys)
    jobs += grid(world, backbones[:1], ("LA",), seeds, model="scratch", recipe="mini_scratch", **keys)
    return jobs


def open_world_studies(parameters: Mapping, workers: int | None = None) -> list[Study]:
    """One study per world of the plan (``worlds``; default the world config's seed) with the runs of
    :func:`regime_jobs`, trained or reused (``ltlib.miniworld.experiments.open_studies``).

    Args:
        parameters: a page's resolved plan parameters (``world``, ``dataset``, ``seeds``, ``runs_root``,
            ``worlds``); the world page is at mini scale in every setting.
    """
    return open_studies("mini", parameters["world"], parameters["dataset"], parameters["seeds"],
                        parameters["runs_root"], jobs_for=regime_jobs, workers=workers,
                        world_seeds=parameters.get("worlds") or None)


def split_accuracy(run_dir: str | Path) -> float:
    """The run's overall top-1 accuracy (%) on its class-balanced test split, as its ``run.json`` records it."""
    return float(load_run(run_dir)["accuracy"]["test"])


def finetune_steps(run_dir: str | Path) -> int:
    """Optimiser steps of a fine-tuning run: ``total_steps`` of its log's ``end`` event when it has one, else
    epochs · ⌈N / batch⌉ (capped by ``max_steps``) from the recipe and class counts its ``run.json`` records."""
    log = Path(run_dir) / "log.jsonl"
    if log.is_file():
        records = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]
        ends = [r for r in records if r.get("kind") == "end" and "total_steps" in r]
        if ends:
            return int(ends[-1]["total_steps"])
    record = load_run(run_dir)
    recipe = record["config"]["recipe"]
    steps = int(recipe["epochs"]) * math.ceil(int(np.sum(record["class_counts"])) / int(recipe["batch_size"]))
    return steps if recipe.get("max_steps") is None else min(steps, int(recipe["max_steps"]))


def d_group_shares(run_dir: str | Path) -> dict[str, float]:
    """Share of classes (%) in each D-group of the run's downstream task (``d<group>_share``)."""
    record = load_run(run_dir)
    groups = d_groups(record["class_counts"], *task_thresholds(record))
    return {f"d{name}_share": 100.0 * len(members) / groups.num_classes
            for name, members in zip(groups.names, groups.indices)}


def measure_regime(study: Study) -> dict[str, float]:
    """The regime card's per-world properties (module docstring) from the runs of one mini-world study.

    Args:
        study: a mini-world ``Study`` whose index holds at least :func:`regime_jobs`.
    Returns:
        property → value (NaN where the study lacks the runs); ``book_minutes`` is not per world (see
        :func:`profiled_book_minutes`).
    """
    zero_shot = _main_runs(study, "zeroshot").set_index(["backbone", "seed"])["run_dir"]
    tuned = _main_runs(study, "LA").set_index(["backbone", "seed"])["run_dir"]
    scratch = study.runs(method="LA", model="scratch")["run_dir"]
    paired = tuned.index.intersection(zero_shot.index)
    gains = [split_accuracy(tuned[k]) - split_accuracy(zero_shot[k]) for k in paired]
    shares = [d_group_shares(d) for d in tuned]
    chance = 100.0 / study.world.num_classes if study.world is not None else float("nan")
    return {"zeroshot_top1": _mean([split_accuracy(d) for d in zero_shot]),
            "finetune_gain": _mean(gains),
            "scratch_over_chance": _mean([split_accuracy(d) / chance for d in scratch]),
            "dfew_share": _mean([s["dfew_share"] for s in shares]),
            "dmany_share": _mean([s["dmany_share"] for s in shares]),
            "finetune_steps": _mean([finetune_steps(d) for d in tuned])}


def _main_runs(study: Study, method: str) -> pd.DataFrame:
    """The study's LIFT-recipe runs of ``method`` of its foundation models, main setting (independent order)."""
    runs = study.runs(method=method, model="lift", recipe=MAIN_RECIPE, order="independent", variant="")
    return runs[runs["backbone"].isin(study.backbones)]


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


def profiled_book_minutes(directory: str | Path = PROFILE_DIR) -> float:
    """Wall minutes of the last profiled ``make book`` (the committed ``profile.csv``: its phases partition the
    build's wall time, ``ltlib.bench.profile``); NaN when no profile is committed."""
    path = Path(directory) / "profile.csv"
    if not path.is_file():
        return float("nan")
    return float(pd.read_csv(path)["wall_s"].sum()) / 60.0


def regime_rows(measured: Mapping[int, Mapping[str, float]]) -> pd.DataFrame:
    """Tidy rows (``ResultsTable.add_frame``) of the measured card: one per world and property, method
    ``regime``, with the world's seed."""
    return pd.DataFrame([{"metric": key, "value": float(value), "method": "regime", "world_seed": int(ws)}
                         for ws, values in measured.items() for key, value in values.items()],
                        columns=["metric", "value", "method", "world_seed"])


def regime_table(measured: Mapping[int, Mapping[str, float]], card: Sequence[RegimeProperty],
                 shared: Mapping[str, float] | None = None) -> pd.DataFrame:
    """The card, target against measured: one row per property, a column per world and their mean.

    Args:
        measured: world seed → :func:`measure_regime` values.
        card: ``ltlib.book.registry.load_regime()``.
        shared: properties of the whole build (``book_minutes``), the same in every world.
    Returns:
        Columns ``property``, ``what``, ``target``, ``world <seed>`` …, :data:`MEAN_COLUMN`, ``met``
        (``check_regime`` on the mean of the worlds), ``paper``.
    """
    shared = dict(shared or {})
    per_world = {f"world {ws}": {**dict(values), **shared} for ws, values in measured.items()}
    frame = pd.DataFrame(per_world).reindex(_display_order([p.key for p in card]))
    mean = frame.mean(axis=1, skipna=False).to_dict()
    checked = check_regime({k: v for k, v in mean.items() if not np.isnan(v)}, card).set_index("property")
    table = frame.assign(**{MEAN_COLUMN: pd.Series(mean)}).join(checked[["what", "target", "met", "paper"]])
    table = table.rename_axis("property").reset_index()
    return table[["property", "what", "target", *per_world, MEAN_COLUMN, "met", "paper"]]


_D_GROUP_ORDER = ("dmany_share", "dmedium_share", "dfew_share")


def _display_order(keys: Sequence[str]) -> list[str]:
    """The card's order, with the D-group shares in many / medium / few order where the first of them stands."""
    shares = [k for k in _D_GROUP_ORDER if k in keys]
    out = []
    for key in keys:
        if key in shares:
            out += [] if shares[0] in out else shares
        else:
            out.append(key)
    return out


def regime_view(table: pd.DataFrame, card: Sequence[RegimeProperty]) -> pd.DataFrame:
    """:func:`regime_table` as the page shows it: the property's description as the row label, each measured
    value rounded with ✓ (inside the band) or ✗, and the paper's value."""
    bands = {p.key: p for p in card}
    measured = [c for c in table.columns if c.startswith("world ") or c == MEAN_COLUMN]

    def mark(key: str, value: float) -> str:
        digits = 0 if key == "finetune_steps" else 1
        return "not measured" if np.isnan(value) else f"{value:.{digits}f} {'✓' if bands[key].holds(value) else '✗'}"

    view = table.set_index("what")[["target", *measured, "paper"]].copy()
    for column in measured:
        view[column] = [mark(k, v) for k, v in zip(table["property"], table[column])]
    return view.rename_axis("property").rename(columns={"target": "target band", "paper": "the paper"})


def unmet(table: pd.DataFrame) -> str:
    """The properties of :func:`regime_table` whose mean over worlds lies outside the band, by short name
    (``"none"`` when every one is met)."""
    keys = table.loc[~table["met"].astype(bool), "property"]
    return ", ".join(SHORT_NAMES.get(k, k) for k in keys) or "none"
