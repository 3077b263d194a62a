"""Grids of stage-1 runs for the book's notebooks, at either scale.

Mini scale: :func:`run_mini_grid` trains (or reuses) every requested run of a mini world in spawned,
single-threaded worker processes and returns a run index. Full scale: :func:`full_run_index` reads the
runs that ``make reproduce`` wrote. Both give the same table (one row per run: backbone, method, model,
seed, task, run_dir), which is all the analysis functions need.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import pandas as pd

from ..errors import ConfigError
from ..parallel import run_parallel
from ..recipes import load_recipe
from ..runs import RunSpec, estimate_run_prior, find_runs, run_stage1

INDEX_COLUMNS = ("backbone", "method", "model", "seed", "task_seed", "order", "recipe", "variant", "world_seed",
                 "task", "run_dir")
MAIN_RECIPE = "mini_lift"  # the book's LIFT recipe (AdaptFormer); other recipes are named in the index


@dataclass(frozen=True)
class MiniJob:
    """One stage-1 run in a mini world.

    Attributes:
        world: world config key (``"default"``, ``"smoke"``).
        backbone: mini model name, or members joined by ``+`` for ``model="joint"``.
        method: ``zeroshot`` | ``CE`` | ``LA`` | ``GLA-Train`` | ``BS``.
        seed: training seed.
        task_seed: which downstream draw (training images and, for ``independent``, class order).
        order: downstream class order relative to the pre-training prior (Tab. 13 scenarios).
        relative_to: the prior ``consistent`` / ``reverse`` follow (default: the world's first model).
        model: ``lift`` | ``scratch`` | ``joint`` (see ``ltlib.runs.RunSpec``).
        recipe: training recipe key; overrides: ``(field, value)`` pairs applied to it.
        variant: a short name for a run with ``overrides`` (e.g. ``matched scale``), "" for none.
        world_seed: the world's seed (None: the config's); the replicate of every world-level claim.
    """

    world: str
    backbone: str
    method: str
    seed: int = 0
    task_seed: int = 0
    order: str = "independent"
    relative_to: str | None = None
    model: str = "lift"
    recipe: str = "mini_lift"
    overrides: tuple[tuple[str, Any], ...] = field(default_factory=tuple)
    variant: str = ""
    world_seed: int | None = None


def run_mini_grid(jobs: Iterable[MiniJob], runs_root: str | Path, workers: int | None = None,
                  cache_root: str | Path | None = None) -> pd.DataFrame:
    """Run (or reuse) every job, in parallel worker processes; returns the run index.

    Pre-train the world's models first (``World.prepare``): workers only read the model cache.
    """
    jobs = list(jobs)
    run_dirs = run_parallel(_run_job, [(job, str(runs_root), cache_root) for job in jobs], workers)
    rows = [{"backbone": j.backbone, "method": j.method, "model": j.model, "seed": j.seed,
             "task_seed": j.task_seed, "order": j.order, "recipe": j.recipe, "variant": j.variant,
             "world_seed": -1 if j.world_seed is None else j.world_seed,
             "task": Path(d).parents[2].name.replace("__", "/"), "run_dir": Path(d)} for j, d in zip(jobs, run_dirs)]
    return pd.DataFrame(rows, columns=list(INDEX_COLUMNS))


def grid(world: str, backbones: Sequence[str], methods: Sequence[str], seeds: Sequence[int],
         **keys: Any) -> list[MiniJob]:
    """The product backbones × methods × seeds (task seed = training seed unless given in ``keys``)."""
    return [MiniJob(world, b, m, seed=s, **{"task_seed": s, **keys})
            for b in backbones for m in methods for s in seeds]


def full_run_index(runs_root: str | Path, dataset: str) -> pd.DataFrame:
    """The run index of a full-scale dataset from the runs ``make reproduce`` wrote under ``runs_root``."""
    runs = find_runs(runs_root, task=dataset)
    runs = runs.assign(task_seed=0, order="independent", recipe=MAIN_RECIPE, variant="", world_seed=-1)
    return runs[list(INDEX_COLUMNS)].reset_index(drop=True)


# ----------------------------------------------------------------------------- worker side
@functools.lru_cache(maxsize=4)
def _world(key: str, cache_root: str | None, world_seed: int | None = None):
    from . import load_world
    return load_world(key, cache_root=cache_root, **({} if world_seed is None else {"seed": world_seed}))


@functools.lru_cache(maxsize=32)
def _task(world_key: str, cache_root: str | None, world_seed: int | None, order: str, task_seed: int,
          relative_to: str | None):
    return _world(world_key, cache_root, world_seed).task(order, seed=task_seed, relative_to=relative_to)


def _run_job(args: tuple[MiniJob, str, str | None]) -> str:
    job, runs_root, cache_root = args
    world = _world(job.world, cache_root, job.world_seed)
    task = _task(job.world, cache_root, job.world_seed, job.order, job.task_seed, job.relative_to)
    recipe = load_recipe(job.recipe, **dict(job.overrides))
    prior = None
    if job.method == "GLA-Train":  # GLA-Train adds log P̂_P, estimated from the zero-shot run (book: Method, 'Losses')
        zero_shot = run_stage1(RunSpec(task.key, job.backbone, "zeroshot", 0, recipe), task, world.backbone,
                               runs_root, progress=False)
        prior = estimate_run_prior(zero_shot)
    spec = RunSpec(task.key, job.backbone, job.method, job.seed, recipe, job.model)
    return str(run_stage1(spec, task, world.backbone, runs_root, pretrain_prior=prior, progress=False))


# ----------------------------------------------------------------------------- the book's grids
VPT_RECIPE = "mini_lift_vpt"  # §4.1's second parameter-efficient method
SAME_BACKBONE_COPIES = 2  # independently pre-trained copies of one model beside it (the same-backbone control)


def control_backbone(backbones: Sequence[str], world_seed: int) -> str:
    """The model whose pre-trained copies form the same-backbone control: rotates with the world's seed."""
    return backbones[world_seed % len(backbones)]


def copies(backbones: Sequence[str], world_seed: int, n: int = SAME_BACKBONE_COPIES) -> list[str]:
    """The names of the copies :func:`main_table_jobs` fine-tunes (``ltlib.miniworld.config.copy_name``)."""
    from .config import copy_name
    base = control_backbone(backbones, world_seed)
    return [copy_name(base, k) for k in range(1, n + 1)]


def imbalance_jobs(world: str, backbones: Sequence[str], reference: str, seeds: Sequence[int],
                   world_seed: int | None = None) -> list[MiniJob]:
    """Notebook 01's runs: zero-shot, CE, LA and GLA-Train per foundation model and seed; LA with VPT instead
    of AdaptFormer; LA of the uniform-prior reference model (difficulty control); LA from scratch on the first
    model's architecture (the Fig. 9 control, trained with its own recipe)."""
    keys = {"world_seed": world_seed}
    jobs = grid(world, backbones, ("zeroshot", "CE", "LA", "GLA-Train"), seeds, **keys)
    jobs += grid(world, backbones, ("LA",), seeds, recipe=VPT_RECIPE, **keys)
    jobs += grid(world, (reference,), ("zeroshot", "LA"), seeds, **keys)
    jobs += grid(world, backbones[:1], ("LA",), seeds, model="scratch", recipe="mini_scratch", **keys)
    return jobs


def main_table_jobs(world: str, backbones: Sequence[str], reference: str, seeds: Sequence[int],
                    world_seed: int | None = None) -> list[MiniJob]:
    """Notebook 03's runs: zero-shot and LA per model and seed (shared with notebook 01); LA of the
    independently pre-trained copies of one model (the same-backbone control, :func:`copies`); the
    consistent / reverse / balanced scenarios (Tab. 13); the jointly trained ensemble at the recipe's cosine
    scale (its summed logits then have M times a single model's scale) and at scale / M (matched).
    (``reference`` is unused: the signature is shared with :func:`imbalance_jobs`.)"""
    keys = {"world_seed": world_seed}
    jobs = grid(world, backbones, ("zeroshot", "LA"), seeds, **keys)
    jobs += grid(world, copies(backbones, world_seed or 0), ("zeroshot", "LA"), seeds, **keys)
    for order in ("consistent", "reverse", "balanced"):
        jobs += grid(world, backbones, ("LA",), seeds, order=order, relative_to="consensus", **keys)
    members = ("+".join(backbones),)
    jobs += grid(world, members, ("LA",), seeds, model="joint", **keys)
    scale = load_recipe("mini_lift").cosine_scale / len(backbones)
    jobs += grid(world, members, ("LA",), seeds, model="joint", overrides=(("cosine_scale", scale),),
                 variant="matched scale", **keys)
    return jobs


# The factorial page's triples (the experiment the paper could not run): three pre-trained models that differ in
# one factor only, around the world's control model (:func:`control_backbone`, which rotates with the world seed).
FACTORS = ("pre-training seed", "prior order", "part bias")


def factorial_triples(backbones: Sequence[str], world_seed: int) -> dict[str, tuple[str, ...]]:
    """factor → the three models that differ only in it (:data:`FACTORS`), each triple containing the control
    model ``b`` (:func:`control_backbone`): its two independently pre-trained copies (seed); ``b``'s part bias
    with each other model's prior order (prior order, ``ltlib.miniworld.config.hybrid_name``); each other
    model's part bias with ``b``'s prior order (part bias). Every member has its own images and initialisation."""
    from .config import hybrid_name
    base = control_backbone(backbones, world_seed)
    others = [b for b in backbones if b != base]
    return {FACTORS[0]: (base, *copies(backbones, world_seed)),
            FACTORS[1]: (base, *(hybrid_name(base, o) for o in others)),
            FACTORS[2]: (base, *(hybrid_name(o, base) for o in others))}


def factorial_jobs(world: str, backbones: Sequence[str], reference: str, seeds: Sequence[int],
                   world_seed: int | None = None) -> list[MiniJob]:
    """The factorial page's runs: LA with the book's recipe for every member of :func:`factorial_triples`
    (the control model's and its copies' runs are notebook 03's, reused from the run cache)."""
    members = sorted({m for triple in factorial_triples(backbones, world_seed or 0).values() for m in triple})
    return grid(world, members, ("LA",), seeds, world_seed=world_seed)


def scaled_epochs(jobs: Sequence[MiniJob], factor: int) -> list[MiniJob]:
    """``jobs`` with ``factor`` × their recipe's fine-tuning epochs (the same batch: ``factor`` × the steps);
    unchanged for a factor of 1. The override is part of each run's identity, so such runs never share a folder
    with the recipe's own."""
    if not isinstance(factor, int) or isinstance(factor, bool) or factor < 1:
        raise ConfigError(f"finetune_epochs_factor must be a positive integer, got {factor!r}")
    if factor == 1:
        return list(jobs)
    return [dataclasses.replace(j, overrides=(*j.overrides, ("epochs", factor * load_recipe(j.recipe).epochs)))
            for j in jobs]


@dataclass(frozen=True, eq=False)
class Study:
    """What a notebook analyses in one world (or one real dataset), whatever the scale.

    Attributes:
        scale: ``mini`` or ``full``; label: the world or dataset name used in result tables.
        backbones: the foundation models; reference: the mini world's uniform-prior model (None at full scale).
        index: the run index (``INDEX_COLUMNS``).
        true_priors: backbone → true π (mini world only, copies included; None at full scale).
        world: the mini ``World`` (None at full scale).
        world_seed: the world's seed (the replicate of the book's claims); -1 at full scale.
    """

    scale: str
    label: str
    backbones: tuple[str, ...]
    index: pd.DataFrame
    reference: str | None = None
    true_priors: dict[str, Any] | None = None
    world: Any = None
    world_seed: int = -1

    def runs(self, **keys: Any) -> pd.DataFrame:
        """Rows of the index matching ``keys`` (e.g. ``method="LA", model="lift"``)."""
        mask = pd.Series(True, index=self.index.index)
        for column, value in keys.items():
            mask &= self.index[column] == value
        return self.index[mask]


def open_study(scale: str, world: str, dataset: str, seeds: Sequence[int], runs_root: str | Path,
               jobs_for=imbalance_jobs, workers: int | None = None, world_seed: int | None = None) -> Study:
    """Resolve a notebook's parameters into a :class:`Study` (one world; :func:`open_studies` for several).

    Mini scale: load and pre-train the world (cached), then run ``jobs_for(world, backbones, …, seeds)``.
    Full scale: read the runs of ``dataset`` that ``make reproduce`` wrote under ``runs_root``.
    """
    return open_studies(scale, world, dataset, seeds, runs_root, jobs_for, workers,
                        None if world_seed is None else [world_seed])[0]


def open_studies(scale: str, world: str, dataset: str, seeds: Sequence[int], runs_root: str | Path,
                 jobs_for=imbalance_jobs, workers: int | None = None,
                 world_seeds: Sequence[int] | None = None, epochs_factor: int = 1) -> list[Study]:
    """One :class:`Study` per independent world (``world_seeds``; default: the world config's own seed).

    Every world's models (with the copies its jobs use) are pre-trained first, several at a time, then every
    run of every world goes through one pool of worker processes, so no core idles between worlds.
    ``epochs_factor`` multiplies every run's fine-tuning epochs (the sensitivity grid's "steps × 3").
    """
    if scale == "full":
        index = full_run_index(runs_root, dataset)
        backbones = tuple(sorted(set(index.loc[index["model"] == "lift", "backbone"]) - {""}))
        return [Study("full", dataset, backbones, index)]
    from . import load_world
    from .world import prepare_worlds
    worlds = [load_world(world, **({} if ws is None else {"seed": ws})) for ws in (world_seeds or [None])]
    jobs = {w.config.seed: scaled_epochs(jobs_for(world, w.model_names, w.reference_name, seeds,
                                                  world_seed=w.config.seed), epochs_factor)
            for w in worlds}
    prepare_worlds({w: sorted({b for j in jobs[w.config.seed] for b in j.backbone.split("+")}) for w in worlds},
                   workers)
    index = run_mini_grid([j for js in jobs.values() for j in js], runs_root, workers)
    studies = []
    for w in worlds:
        own = index[index.world_seed == w.config.seed].reset_index(drop=True)
        names = sorted({*own.backbone, *w.model_names, w.reference_name} - {""})
        truths = {b: w.true_prior(b) for b in names if "+" not in b}
        studies.append(Study("mini", world, tuple(w.model_names), own, w.reference_name, truths, w, w.config.seed))
    return studies
