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
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from .cache import SplitOutputs, has_split, load_split, save_split
from .distributed import DistContext, barrier
from .engine import evaluate, train
from .errors import ConfigError
from .provenance import config_hash, run_record
from .recipes import LOSSES, TrainConfig
from .storage import read_json, write_json
from .tasks import Task

METHODS = ("zeroshot",) + LOSSES
MODELS = ("lift", "scratch", "joint")
RUN_FILE = "run.json"
RUN_COLUMNS = ("task", "backbone", "method", "model", "seed", "recipe_hash", "status", "run_dir")
# Fields of a recipe that change a zero-shot evaluation (everything else only matters for training).
_EVAL_FIELDS = ("template", "resolution", "tte", "tte_expand", "eval_batch_size", "precision")


class RunInterrupted(RuntimeError):
    """Training stopped early (SIGTERM, Ctrl-C); the run is resumable by running the same command again."""


@dataclass(frozen=True)
class RunSpec:
    """What one stage-1 run is: ``method`` is ``"zeroshot"`` or a loss key (``"LA"``, ``"CE"``, …)."""

    task: str
    backbone: str            # a registry name; for model="joint", members joined by "+"
    method: str
    seed: int = 0
    recipe: TrainConfig = field(default_factory=TrainConfig)
    model: str = "lift"      # lift: LIFT on a pre-trained backbone; scratch: the image tower from random
                             # weights (Fig. 9 control); joint: the members' LIFT models trained together

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"unknown method {self.method!r}; expected one of {METHODS}")
        if self.model not in MODELS or (self.method == "zeroshot" and self.model != "lift"):
            raise ConfigError(f"unknown model {self.model!r} for method {self.method!r}; expected one of {MODELS} "
                              "(zero-shot runs use model='lift')")

    @property
    def members(self) -> tuple[str, ...]:
        """The backbone names the run uses (several for a jointly trained ensemble)."""
        return tuple(self.backbone.split("+"))

    def normalised(self) -> "RunSpec":
        """The canonical spec: the recipe's loss and seed follow the run; a zero-shot run keeps only the
        evaluation fields (it has no seed), so equal evaluations share one cache entry."""
        if self.method == "zeroshot":
            kept = {k: getattr(self.recipe, k) for k in _EVAL_FIELDS}
            return RunSpec(self.task, self.backbone, "zeroshot", 0, TrainConfig(**kept))
        recipe = dataclasses.replace(self.recipe, loss=self.method, seed=self.seed)
        return RunSpec(self.task, self.backbone, self.method, self.seed, recipe, self.model)

    def directory(self, root: str | Path) -> Path:
        """``root/<task>/<backbone>/<method>/seed<k>-<hash>``: readable, and a new recipe is a new run."""
        spec = self.normalised()
        safe_task = spec.task.replace("/", "__")
        method = spec.method if spec.model == "lift" else f"{spec.method}-{spec.model}"
        return Path(root) / safe_task / spec.backbone / method / f"seed{spec.seed}-{config_hash(spec, 8)}"


def is_complete(run_dir: str | Path, splits) -> bool:
    """True when ``run.json`` says complete and every split in ``splits`` is cached."""
    path = Path(run_dir) / RUN_FILE
    return path.is_file() and read_json(path).get("status") == "complete" and all(
        has_split(run_dir, s) for s in splits)


def run_stage1(spec: RunSpec, task: Task, backbone_loader: Callable[[str], torch.nn.Module], root: str | Path,
               ctx: DistContext = DistContext(), *, pretrain_prior: np.ndarray | None = None,
               progress: bool = True, compile_backend: str | None = None) -> Path:
    """Run (or reuse) one stage-1 run and return its directory.

    Args:
        spec: what to run; ``spec.task`` must equal ``task.key``.
        task: the downstream task.
        backbone_loader: name → ``ltlib.backbones.Backbone`` (called only when work is needed).
        root: the runs root folder.
        ctx: data-parallel context; every process must call this function.
        pretrain_prior: P̂_P for ``GLA-Train`` (see :func:`estimate_run_prior`).
        compile_backend: ``torch.compile`` backend for training (``ltlib.engine.train``); a speed option
            that is not part of the run's identity.
    Returns:
        The run directory. When training was interrupted (SIGTERM, Ctrl-C) the run is left resumable
        and :class:`RunInterrupted` (a ``RuntimeError``) is raised.
    """
    workers = spec.recipe.num_workers  # a runtime setting: zero-shot specs drop it when normalised
    spec = spec.normalised()
    if spec.task != task.key:
        raise ValueError(f"spec is for task {spec.task!r} but task {task.key!r} was given")
    run_dir = spec.directory(root)
    if is_complete(run_dir, task.eval_sets):
        return run_dir
    model = _build_model(spec, task, backbone_loader)
    if spec.method != "zeroshot":
        _train(spec, task, model, run_dir, ctx, pretrain_prior, progress, compile_backend)
    accuracies = {split: _evaluate_split(spec, model, ds, run_dir, split, ctx, progress, workers)
                  for split, ds in task.eval_sets.items()}
    if ctx.is_main:
        _write_run_record(run_dir, spec, task.classnames, task.class_counts, accuracies, task.info)
    barrier(ctx)
    return run_dir


def _build_model(spec: RunSpec, task: Task, backbone_loader: Callable[[str], torch.nn.Module]) -> torch.nn.Module:
    from .backbones import build_backbone
    from .heads import ZeroShotClassifier
    from .model import EnsembleClassifier, build_lift_model, build_scratch_model

    r, classnames = spec.recipe, list(task.classnames)
    if spec.model == "scratch":
        random_tower = build_backbone(backbone_loader(spec.backbone).spec, random_init=True, seed=spec.seed)
        return build_scratch_model(random_tower, len(classnames), scale=r.cosine_scale, seed=spec.seed)
    models = []
    for name in spec.members:
        backbone = backbone_loader(name)
        template = r.template or backbone.spec.template
        if spec.method == "zeroshot":
            return ZeroShotClassifier(backbone, classnames, template)
        models.append(build_lift_model(backbone, classnames, adapter=r.adapter, bottleneck=r.bottleneck,
                                       head_init=r.head_init, scale=r.cosine_scale, template=template,
                                       seed=spec.seed))
    return EnsembleClassifier(models) if spec.model == "joint" else models[0]


def _train(spec, task, model, run_dir, ctx, pretrain_prior, progress, compile_backend=None) -> None:
    from .losses import build_loss

    loss = build_loss(spec.method, task.class_counts, pretrain_prior=pretrain_prior, tau=spec.recipe.tau)
    result = train(model, task.train, loss, spec.recipe, run_dir, ctx, progress=progress,
                   compile_backend=compile_backend)
    if result.status != "completed":
        raise RunInterrupted(f"training of {run_dir} was interrupted at step {result.global_step}/"
                             f"{result.total_steps}; run the same command again to resume")


def _evaluate_split(spec, model, dataset, run_dir, split, ctx, progress, num_workers) -> float:
    out = evaluate(model, dataset, ctx, batch_size=spec.recipe.eval_batch_size,
                   num_workers=num_workers, with_features=True, progress=progress)
    if ctx.is_main:
        save_split(run_dir, split, out)
    return float((out.logits.argmax(1) == out.targets).mean() * 100)


def write_cached_run(root: str | Path, spec: RunSpec, outputs: dict[str, SplitOutputs], class_counts,
                     classnames: Sequence[str] | None = None, info: dict | None = None) -> Path:
    """Record outputs computed elsewhere as a complete stage-1 run (same layout as :func:`run_stage1`).

    Use it to bring logits from another code base (e.g. the official release) or synthetic logits
    (tests, benchmarks) to stage 2 and the notebooks.

    Args:
        root: the runs root.
        spec: the run's identity (its directory is ``spec.directory(root)``).
        outputs: split name → ``ltlib.cache.SplitOutputs`` (logits [N, C], targets [N]).
        class_counts: [C] training counts n_y.
        classnames: C names (default ``class_0`` …).
        info: recorded as the run's ``task_info``.
    Returns:
        The run directory.
    """
    spec = spec.normalised()
    run_dir = spec.directory(root)
    counts = np.asarray(class_counts, dtype=np.int64)
    names = list(classnames) if classnames is not None else [f"class_{j}" for j in range(len(counts))]
    accuracies = {split: float((out.logits.argmax(1) == out.targets).mean() * 100) for split, out in outputs.items()}
    for split, out in outputs.items():
        save_split(run_dir, split, out)
    _write_run_record(run_dir, spec, names, counts, accuracies, info or {})
    return run_dir


def _write_run_record(run_dir: Path, spec: RunSpec, classnames: Sequence[str], class_counts: Any,
                      accuracies: dict[str, float], info: Mapping[str, Any]) -> None:
    """Write ``run.json``, the mark of a complete run: provenance (``ltlib.provenance.run_record``), the
    run's identity, class names and counts, accuracies per split and the task's description."""
    write_json(run_dir / RUN_FILE, {**run_record(spec, seed=spec.seed), "status": "complete", "task": spec.task,
                                    "backbone": spec.backbone, "method": spec.method, "model": spec.model,
                                    "classnames": list(classnames),
                                    "class_counts": np.asarray(class_counts).tolist(), "accuracy": accuracies,
                                    "task_info": dict(info)})


def load_run(run_dir: str | Path) -> dict:
    """The ``run.json`` of a complete run (spec, class names and counts, accuracies, provenance)."""
    return read_json(Path(run_dir) / RUN_FILE)


def estimate_run_prior(run_dir: str | Path, split: str = "val", solver: str = "exact") -> np.ndarray:
    """GLA's P̂_P from a zero-shot run's cached logits on a class-balanced split
    (book: Method, 'The GLA prior estimator')."""
    from .priors import estimate_prior

    out = load_split(run_dir, split)
    return estimate_prior(out.logits, out.targets, solver=solver)


# --------------------------------------------------------------------------- discovery
def find_runs(root: str | Path, task: str | None = None, *, backbone: str | None = None,
              method: str | None = None, include_incomplete: bool = False) -> pd.DataFrame:
    """The stage-1 runs under ``root`` (the notebooks' entry point at full scale).

    Args:
        root: the runs root (``--runs-root``), laid out as :meth:`RunSpec.directory` writes it.
        task, backbone, method: keep only runs with these values (None keeps all).
        include_incomplete: also list runs without a complete ``run.json`` (in progress or interrupted).
    Returns:
        One row per run, columns :data:`RUN_COLUMNS` (``status`` is ``complete`` or ``incomplete``),
        sorted by task, backbone, method, seed; ``run_dir`` holds ``Path`` objects.
    """
    rows = [_run_row(d) for d in sorted(Path(root).glob("*/*/*/seed*-*")) if d.is_dir()]
    frame = pd.DataFrame([r for r in rows if include_incomplete or r["status"] == "complete"],
                         columns=list(RUN_COLUMNS))
    for column, value in (("task", task), ("backbone", backbone), ("method", method)):
        if value is not None:
            frame = frame[frame[column] == value]
    return frame.sort_values(["task", "backbone", "method", "seed"], kind="stable").reset_index(drop=True)


def _run_row(run_dir: Path) -> dict:
    """Identity of one run directory: from ``run.json`` when complete, else from its path."""
    seed, _, recipe_hash = run_dir.name.removeprefix("seed").partition("-")
    method_dir = run_dir.parent.name
    model = next((m for m in MODELS if method_dir.endswith(f"-{m}")), "lift")
    path_keys = {"task": run_dir.parents[2].name.replace("__", "/"), "backbone": run_dir.parents[1].name,
                 "method": method_dir.removesuffix(f"-{model}"), "model": model}
    record = read_json(run_dir / RUN_FILE) if (run_dir / RUN_FILE).is_file() else {}
    complete = record.get("status") == "complete"
    keys = {k: record.get(k, path_keys[k]) for k in path_keys} if complete else path_keys
    return {**keys, "seed": int(seed) if seed.isdigit() else -1, "recipe_hash": recipe_hash,
            "status": "complete" if complete else "incomplete", "run_dir": run_dir}


def select_run(runs: pd.DataFrame, **keys) -> Path:
    """The one run of ``runs`` (from :func:`find_runs`) matching ``keys`` (e.g. ``backbone="clip"``).

    Raises:
        ConfigError: no run or several runs match (the message lists them).
    """
    match = runs
    for column, value in keys.items():
        match = match[match[column] == value]
    if len(match) != 1:
        found = ", ".join(str(p) for p in match["run_dir"]) or "none"
        raise ConfigError(f"expected exactly one run with {keys}, found {len(match)}: {found}")
    return Path(match["run_dir"].iloc[0])
