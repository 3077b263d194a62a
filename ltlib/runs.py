"""Stage 1 of the method as cached runs: one directory per (task, backbone, method, seed, recipe).

A run fine-tunes one foundation model with the LIFT recipe (or evaluates it zero-shot), then caches
logits, targets and features for every evaluation split (``ltlib.cache``) together with ``run.json``
(the spec, the class counts, accuracies and provenance). A complete run is never recomputed; an
interrupted one resumes from its checkpoint. Stage 2 (the backdoor adjustment), the group metrics and
prior estimation read only these caches.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .cache import has_split, load_split, save_split
from .distributed import DistContext, barrier
from .engine import evaluate, train
from .provenance import config_hash, run_record
from .recipes import LOSSES, TrainConfig
from .storage import read_json, write_json
from .tasks import Task

METHODS = ("zeroshot",) + LOSSES
RUN_FILE = "run.json"
# Fields of a recipe that change a zero-shot evaluation (everything else only matters for training).
_EVAL_FIELDS = ("template", "resolution", "tte", "tte_expand", "eval_batch_size", "precision")


@dataclass(frozen=True)
class RunSpec:
    """What one stage-1 run is: ``method`` is ``"zeroshot"`` or a loss key (``"LA"``, ``"CE"``, …)."""

    task: str
    backbone: str
    method: str
    seed: int = 0
    recipe: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            from .errors import ConfigError
            raise ConfigError(f"unknown method {self.method!r}; expected one of {METHODS}")

    def normalised(self) -> "RunSpec":
        """The canonical spec: the recipe's loss and seed follow the run; a zero-shot run keeps only the
        evaluation fields (it has no seed), so equal evaluations share one cache entry."""
        if self.method == "zeroshot":
            kept = {k: getattr(self.recipe, k) for k in _EVAL_FIELDS}
            return RunSpec(self.task, self.backbone, "zeroshot", 0, TrainConfig(**kept))
        recipe = dataclasses.replace(self.recipe, loss=self.method, seed=self.seed)
        return RunSpec(self.task, self.backbone, self.method, self.seed, recipe)

    def directory(self, root: str | Path) -> Path:
        """``root/<task>/<backbone>/<method>/seed<k>-<hash>``: readable, and a new recipe is a new run."""
        spec = self.normalised()
        safe_task = spec.task.replace("/", "__")
        return Path(root) / safe_task / spec.backbone / spec.method / f"seed{spec.seed}-{config_hash(spec, 8)}"


def is_complete(run_dir: str | Path, splits) -> bool:
    """True when ``run.json`` says complete and every split in ``splits`` is cached."""
    path = Path(run_dir) / RUN_FILE
    return path.is_file() and read_json(path).get("status") == "complete" and all(
        has_split(run_dir, s) for s in splits)


def run_stage1(spec: RunSpec, task: Task, backbone_loader: Callable[[str], torch.nn.Module], root: str | Path,
               ctx: DistContext = DistContext(), *, pretrain_prior: np.ndarray | None = None,
               progress: bool = True) -> Path:
    """Run (or reuse) one stage-1 run and return its directory.

    Args:
        spec: what to run; ``spec.task`` must equal ``task.key``.
        task: the downstream task.
        backbone_loader: name → ``ltlib.backbones.Backbone`` (called only when work is needed).
        root: the runs root folder.
        ctx: data-parallel context; every process must call this function.
        pretrain_prior: P̂_P for ``GLA-Train`` (see :func:`estimate_run_prior`).
    Returns:
        The run directory. When training was interrupted (SIGTERM, Ctrl-C) the run is left resumable
        and ``RuntimeError`` is raised.
    """
    spec = spec.normalised()
    if spec.task != task.key:
        raise ValueError(f"spec is for task {spec.task!r} but task {task.key!r} was given")
    run_dir = spec.directory(root)
    if is_complete(run_dir, task.eval_sets):
        return run_dir
    model = _build_model(spec, task, backbone_loader(spec.backbone))
    if spec.method != "zeroshot":
        _train(spec, task, model, run_dir, ctx, pretrain_prior, progress)
    accuracies = {split: _evaluate_split(spec, model, ds, run_dir, split, ctx, progress)
                  for split, ds in task.eval_sets.items()}
    if ctx.is_main:
        write_json(run_dir / RUN_FILE, {**run_record(spec, seed=spec.seed), "status": "complete",
                                        "task": task.key, "backbone": spec.backbone, "method": spec.method,
                                        "classnames": list(task.classnames),
                                        "class_counts": np.asarray(task.class_counts).tolist(),
                                        "accuracy": accuracies, "task_info": dict(task.info)})
    barrier(ctx)
    return run_dir


def _build_model(spec: RunSpec, task: Task, backbone) -> torch.nn.Module:
    from .heads import ZeroShotClassifier
    from .model import build_lift_model

    template = spec.recipe.template or backbone.spec.template
    if spec.method == "zeroshot":
        return ZeroShotClassifier(backbone, list(task.classnames), template)
    r = spec.recipe
    return build_lift_model(backbone, list(task.classnames), adapter=r.adapter, bottleneck=r.bottleneck,
                            head_init=r.head_init, scale=r.cosine_scale, template=template)


def _train(spec, task, model, run_dir, ctx, pretrain_prior, progress) -> None:
    from .losses import build_loss

    loss = build_loss(spec.method, task.class_counts, pretrain_prior=pretrain_prior, tau=spec.recipe.tau)
    result = train(model, task.train, loss, spec.recipe, run_dir, ctx, progress=progress)
    if result.status != "completed":
        raise RuntimeError(f"training of {run_dir} was interrupted at step {result.global_step}/"
                           f"{result.total_steps}; run the same command again to resume")


def _evaluate_split(spec, model, dataset, run_dir, split, ctx, progress) -> float:
    out = evaluate(model, dataset, ctx, batch_size=spec.recipe.eval_batch_size,
                   num_workers=spec.recipe.num_workers, with_features=True, progress=progress)
    if ctx.is_main:
        save_split(run_dir, split, out)
    return float((out.logits.argmax(1) == out.targets).mean() * 100)


def load_run(run_dir: str | Path) -> dict:
    """The ``run.json`` of a complete run (spec, class names and counts, accuracies, provenance)."""
    return read_json(Path(run_dir) / RUN_FILE)


def estimate_run_prior(run_dir: str | Path, split: str = "val", solver: str = "exact") -> np.ndarray:
    """GLA's P̂_P from a zero-shot run's cached logits on a class-balanced split (spec C.4)."""
    from .priors import estimate_prior

    out = load_split(run_dir, split)
    return estimate_prior(out.logits, out.targets, solver=solver)
