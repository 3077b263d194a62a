"""The mini world as one object (book: The mini world): ``load_world("default")`` → backbones, true priors, tasks."""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

from ..backbones import Backbone, BackboneSpec, build_backbone, register_arch, register_backbone
from ..errors import ConfigError
from ..paths import PROGRESS_VARIABLE
from ..metrics import d_groups
from ..parallel import run_parallel
from ..phases import phase
from ..provenance import config_hash, run_record, to_plain
from ..tasks import Task
from .config import WorldConfig, load_world_config, split_copy_name, split_hybrid_name
from .confounder import ConfounderStudy, build_confounder_study
from .corpora import (Corpus, build_corpus, integer_counts, labels_and_visibility, popularity_orders,
                      prior_for_order, prior_profile)
from .generator import PartLayout, Renders, build_layout, render
from .model_cache import CachedModel, entry_dir, get_or_build, is_complete
from .pretrain import open_clip_config, pretrain
from .seeds import derive_seed
from .tasks import WorldImages, balanced_split, split_by_fraction, train_counts

TEMPLATE = "a photo of a {}."  # the zero-shot / head-init prompt of every mini model (book: Method, 'Cosine head')
SPLITS = ("val", "test")
CONSENSUS = "consensus"  # relative_to value: the foundation models' joint popularity order


class World:
    """A mini world: its classes, its foundation models (pre-trained on demand, cached) and its tasks.

    Args:
        config: the world (see ``ltlib/configs/worlds``).
        cache_root: where pre-trained models live (default ``$LTLIB_CACHE`` or ``<repo>/.cache/ltlib``).
        progress: print pre-training progress (one line per epoch with the time left) to stderr; default:
            when ``$LTLIB_PROGRESS`` is 1, as the notebook runner sets it.
    """

    def __init__(self, config: WorldConfig, cache_root: str | Path | None = None, progress: bool | None = None) -> None:
        self.config, self.cache_root = config, cache_root
        self.progress = progress if progress is not None else os.environ.get(PROGRESS_VARIABLE) == "1"
        self.layout: PartLayout = build_layout(config.parts.num_part_types, config.parts.group_size)
        self.mean, self.std = tuple(OPENAI_DATASET_MEAN), tuple(OPENAI_DATASET_STD)
        self._backbones: dict[str, Backbone] = {}
        self._splits: dict[str, WorldImages] = {}

    def __repr__(self) -> str:
        return (f"World({self.config.name!r}, K={self.num_classes}, models={list(self.model_names)}, "
                f"reference={self.reference_name!r})")

    # ------------------------------------------------------------------ structure
    @property
    def class_names(self) -> tuple[str, ...]:
        return self.layout.class_names

    @property
    def num_classes(self) -> int:
        return self.layout.num_classes

    @property
    def model_names(self) -> tuple[str, ...]:
        """The foundation models (without the reference), e.g. ``("mini-clip", "mini-openclip", "mini-metaclip")``."""
        return tuple(m.name for m in self.config.models)

    @property
    def reference_name(self) -> str:
        return self.config.reference.name

    @functools.cached_property
    def key(self) -> str:
        """``mini-<name>-<hash>``: names the world in task keys, so a changed world never reuses old runs."""
        return f"mini-{self.config.name}-{config_hash(self.config, 8)}"

    @phase("downstream image generation")
    def render(self, labels: np.ndarray, visibility: np.ndarray, seed: int, parts: str = "both") -> Renders:
        """Render images of this world (see :func:`ltlib.miniworld.generator.render`)."""
        return render(self.layout, labels, visibility, self.config.render, seed, parts)

    # ------------------------------------------------------------------ ground truth of the corpora
    @functools.cached_property
    def _orders(self) -> np.ndarray:
        c = self.config
        return popularity_orders(self.num_classes, len(c.models), c.corpus.order_correlation,
                                 derive_seed(c.seed, "corpus/popularity"))

    def nominal_prior(self, name: str) -> np.ndarray:
        """The prior π_m the corpus of model ``name`` was drawn to (before rounding); float64 [K]."""
        model, c = self.config.model(name), self.config.corpus
        if model.uniform_prior:
            return np.full(self.num_classes, 1.0 / self.num_classes)
        profile = prior_profile(self.num_classes, c.profile, c.imbalance_ratio)
        return prior_for_order(profile, self._orders[self._order_row(name)])

    def _order_row(self, name: str) -> int:
        """The row of :attr:`_orders` that ranks the classes of ``name``'s corpus: its own model's, a copy's
        original's, a hybrid's prior model's (``ltlib.miniworld.config.hybrid_name``); -1 for the reference."""
        part, donor = split_hybrid_name(name)
        base = donor or split_copy_name(part)[0]
        return self.model_names.index(base) if base in self.model_names else -1

    def corpus_counts(self, name: str) -> np.ndarray:
        """Images per class in the corpus of ``name``; int64 [K]."""
        c = self.config.corpus
        return integer_counts(self.nominal_prior(name), c.num_images, c.min_count)

    def true_prior(self, name: str) -> np.ndarray:
        """π_m: the class frequencies of the corpus of ``name`` (the ground truth for P̂_P); float64 [K]."""
        counts = self.corpus_counts(name)
        return counts / counts.sum()

    def popularity(self, name: str) -> np.ndarray:
        """Classes from the most to the least frequent in the corpus of ``name``; int64 [K].

        ``name="consensus"`` ranks by the mean log-prior of the foundation models: the classes that are
        frequent for the models together (Tab. 13's scenarios for an ensemble of all of them).
        """
        if name == CONSENSUS:
            mean_log = np.mean([np.log(self.true_prior(m)) for m in self.model_names], axis=0)
            return np.argsort(-mean_log, kind="stable")
        return np.argsort(-self.corpus_counts(name), kind="stable")

    def part_bias(self, name: str) -> float:
        """P_m(C = head-dominant) of the corpus of ``name`` (exact up to per-class rounding)."""
        return float(self.config.model(name).head_fraction)

    def corpus(self, name: str) -> Corpus:
        """Render the pre-training corpus of ``name`` (image–caption pairs)."""
        model, (base, k) = self.config.model(name), split_copy_name(name)
        seed = derive_seed(self.config.seed, f"corpus/{base}", *([k] if k else []))
        return build_corpus(self.layout, self.config.render, self.config.captions, self.corpus_counts(name),
                            model.head_fraction, seed)

    def pretrain_seed(self, name: str) -> int:
        """The seed of the initialisation and batch order of ``name``'s pre-training: a function of the world's
        seed, the model (copies included) and ``PretrainConfig.seed``, so every world is an independent draw."""
        return derive_seed(self.config.seed, f"pretrain/{name}", self.config.pretrain.seed)

    # ------------------------------------------------------------------ pre-trained models
    def model_key(self, name: str) -> dict[str, Any]:
        """Everything that determines the pre-trained model ``name`` (its cache key)."""
        c = self.config
        return {"name": name, "order_row": self._order_row(name), "model": c.model(name), "seed": c.seed,
                "parts": c.parts, "render": c.render, "captions": c.captions, "corpus": c.corpus,
                "num_models": len(c.models),
                "architecture": c.architecture, "pretrain": c.pretrain, "pretrain_seed": self.pretrain_seed(name)}

    def pretrained(self, name: str) -> CachedModel:
        """The cache entry of ``name``, pre-training it first if needed (a few tens of seconds)."""
        entry, _ = get_or_build(entry_dir(name, self.model_key(name), self.cache_root), lambda: self._pretrain(name))
        return entry

    def prepare(self, names: Sequence[str] | None = None, workers: int | None = None) -> dict[str, CachedModel]:
        """Pre-train every model that is not cached yet, several at a time.

        Each model trains single-threaded (``PretrainConfig.threads``), so ``workers`` processes use
        ``workers`` cores and the weights do not depend on ``workers``. Call it once before the
        notebooks (e.g. ``python -m ltlib.miniworld prepare default``): on two idle cores the four
        default models then take about half the time of training them one by one.

        Args:
            names: models to prepare; default all foundation models and the reference.
            workers: parallel processes; default one per CPU core, at most one per missing model.
        Returns:
            name → cache entry.
        """
        names = list(names) if names is not None else [*self.model_names, self.reference_name]
        missing = [n for n in names if not is_complete(entry_dir(n, self.model_key(n), self.cache_root))]
        workers = min(len(missing), workers or os.cpu_count() or 1)
        if self.progress and missing:
            print(f"[mini world {self.config.name}] pre-training {len(missing)} model(s) ({', '.join(missing)}) in "
                  f"{max(workers, 1)} process(es); one line per epoch follows", file=sys.__stderr__ or sys.stderr,
                  flush=True)
        if workers > 1:  # else each model trains below, in this process
            run_parallel(_pretrain_in_worker, [(self.config, self.cache_root, self.progress, n) for n in missing],
                         workers)
        return {n: self.pretrained(n) for n in names}

    def backbone(self, name: str) -> Backbone:
        """The frozen pre-trained mini model ``name`` as an ``ltlib.backbones.Backbone`` (memoised).

        The model is also registered (``register_backbone``, replacing an entry of the same name), so
        ``ltlib.backbones.build_backbone(name, weights=world.pretrained(name).weights)`` works too.
        """
        if name not in self._backbones:
            entry = self.pretrained(name)
            arch = register_arch(entry.arch, entry.model_config, directory=entry.directory)
            spec = register_backbone(BackboneSpec(name, arch, None, TEMPLATE, self.config.model(name).description),
                                     overwrite=True)
            backbone = build_backbone(spec, weights=entry.weights)
            if backbone.mean != self.mean or backbone.std != self.std:  # the world's datasets normalise with these
                raise ConfigError(f"backbone {name!r} normalises with {backbone.mean}/{backbone.std}, "
                                  f"the world's datasets with {self.mean}/{self.std}")
            self._backbones[name] = backbone
        return self._backbones[name]

    def reference_backbone(self) -> Backbone:
        """The uniform-prior reference model (controls per-class difficulty)."""
        return self.backbone(self.reference_name)

    def _pretrain(self, name: str) -> tuple[Any, dict[str, Any], dict[str, Any], dict[str, Any]]:
        """Render the corpus and pre-train; returns what ``model_cache.save_entry`` writes."""
        start = time.perf_counter()
        with phase("pre-training: image generation"):
            corpus = self.corpus(name)
        generation = time.perf_counter() - start
        model_config = open_clip_config(self.config.architecture, self.config.render.image_size)
        truth = self._truth(name, corpus)
        with phase("pre-training: training steps"):
            schedule = dataclasses.replace(self.config.pretrain, seed=self.pretrain_seed(name))
            model, log = pretrain(self._training_view(corpus), model_config, schedule, progress=self.progress)
        record = run_record(self.model_key(name), seed=schedule.seed, world=self.config.name,
                            model=name, generation_seconds=generation, **to_plain(log))
        return model, model_config, truth, record

    def _training_view(self, corpus: Corpus) -> Corpus:
        """The corpus as the pre-training objective reads it: supervised pre-training replaces the captions by
        one prompt per class (:data:`TEMPLATE`), caption index = label (``ltlib.miniworld.pretrain``)."""
        if self.config.pretrain.objective != "supervised":
            return corpus
        prompts = tuple(TEMPLATE.format(n) for n in self.class_names)
        return dataclasses.replace(corpus, captions=prompts, caption_index=np.asarray(corpus.labels))

    def _truth(self, name: str, corpus: Corpus) -> dict[str, Any]:
        """The ground truth saved beside the weights: π_m (realised and nominal), P_m(C), caption statistics."""
        named = [self.class_names[y] in corpus.captions[i] for y, i in zip(corpus.labels, corpus.caption_index)]
        counts = corpus.class_counts(self.num_classes)
        return {"model": name, "class_names": list(self.class_names), "class_counts": counts.tolist(),
                "prior": (counts / counts.sum()).tolist(), "nominal_prior": self.nominal_prior(name).tolist(),
                "popularity": self.popularity(name).tolist(), "head_fraction": self.part_bias(name),
                "realised_head_fraction": float(np.mean(corpus.visibility == 0)),
                "num_images": len(corpus), "num_distinct_captions": len(corpus.captions),
                "named_fraction": float(np.mean(named))}

    # ------------------------------------------------------------------ downstream data
    def split(self, name: str) -> WorldImages:
        """The class-balanced ``"val"`` or ``"test"`` split shared by every task (C independent of Y)."""
        if name not in SPLITS:
            raise ConfigError(f"split must be one of {SPLITS}, got {name!r}")
        if name not in self._splits:
            t = self.config.tasks
            per_class = t.val_per_class if name == "val" else t.test_per_class
            labels, visibility = balanced_split(self.num_classes, per_class, t.head_fraction,
                                                derive_seed(self.config.seed, f"split/{name}/labels"))
            renders = self.render(labels, visibility, derive_seed(self.config.seed, f"split/{name}"))
            self._splits[name] = WorldImages(renders, self.mean, self.std)
        return self._splits[name]

    def task(self, order: str | Sequence[int] = "independent", seed: int = 0, relative_to: str | None = None) -> Task:
        """A downstream long-tailed task (``ltlib.tasks.Task``) of this world.

        Args:
            order: ``independent`` / ``consistent`` / ``reverse`` / ``balanced`` (the paper's Tab. 13), or an
                explicit permutation (downstream rank → class).
            seed: draws the independent order and the training images.
            relative_to: the foundation model whose π_m ``consistent`` / ``reverse`` follow (default: the first),
                or ``"consensus"`` (all of them, see :meth:`popularity`).
        Returns:
            The task; ``train`` is augmented, ``eval_sets`` holds the shared ``val`` and ``test`` splits;
            ``info`` records the order, D-groups, thresholds and the world.
        """
        relative_to = relative_to or self.model_names[0]
        t, k = self.config.tasks, self.num_classes
        # an explicit order is named by its hash, so two custom orders never share cached runs
        order_name = order if isinstance(order, str) else f"custom-{config_hash([int(k) for k in order], 8)}"
        popularity = self.popularity(relative_to) if order_name in ("consistent", "reverse") else None
        counts = train_counts(t, order, k, popularity, derive_seed(self.config.seed, "task/order", seed))
        labels, visibility = labels_and_visibility(counts, split_by_fraction(counts, t.head_fraction),
                                                   derive_seed(self.config.seed, f"task/{order_name}/labels", seed))
        renders = self.render(labels, visibility, derive_seed(self.config.seed, f"task/{order_name}/train", seed))
        suffix = f"-{relative_to}" if popularity is not None else ""
        info = {"world": self.config.name, "world_key": self.key, "order": order_name, "relative_to": relative_to,
                "seed": seed, "many_threshold": t.many_threshold, "few_threshold": t.few_threshold,
                "d_groups": d_groups(counts, t.many_threshold, t.few_threshold).labels.tolist()}
        return Task(f"{self.key}/{order_name}{suffix}/seed{seed}", self.class_names, counts,
                    WorldImages(renders, self.mean, self.std, augment=True),
                    {s: self.split(s) for s in SPLITS}, info)

    def confounder_study(self, seed: int = 0) -> ConfounderStudy:
        """The datasets of the confounder study (book: Mini world, item 7)."""
        return build_confounder_study(self.layout, self.config.render, self.config.confounder, self.mean, self.std,
                                      self.config.seed, seed)


def prepare_worlds(models: dict[World, Sequence[str]], workers: int | None = None) -> None:
    """Pre-train the named models of several worlds in one pool of processes (as :meth:`World.prepare` does
    for one world): every missing model of every world is one job, so both cores stay busy across worlds."""
    jobs = [(w.config, w.cache_root, w.progress, n) for w, names in models.items() for n in names
            if not is_complete(entry_dir(n, w.model_key(n), w.cache_root))]
    workers = min(len(jobs), workers or os.cpu_count() or 1)
    if jobs and workers > 1:
        run_parallel(_pretrain_in_worker, jobs, workers)
    for w, names in models.items():
        w.prepare(names, workers=1)


def _pretrain_in_worker(job: tuple[WorldConfig, str | Path | None, bool, str]) -> str:
    """Process-pool entry point of :meth:`World.prepare`: pre-train (or find) one model; returns its name."""
    config, cache_root, progress, name = job
    World(config, cache_root, progress).pretrained(name)
    return name


def load_world(key_or_config: str | Path | WorldConfig = "default", cache_root: str | Path | None = None,
               progress: bool | None = None, **overrides: Any) -> World:
    """Load a world by registry key (``"smoke"``, ``"default"``), YAML path or config.

    Args:
        key_or_config: what to load.
        cache_root: the model cache (default ``$LTLIB_CACHE`` or ``<repo>/.cache/ltlib``).
        progress: print pre-training progress (one line per epoch with the time left) to stderr; default:
            when ``$LTLIB_PROGRESS`` is 1, as the notebook runner sets it.
        **overrides: top-level config sections or fields (only with a key or path).
    Returns:
        A :class:`World`; nothing is pre-trained until a backbone is asked for.
    """
    if isinstance(key_or_config, WorldConfig):
        if overrides:
            raise ConfigError("overrides are only accepted with a world key or YAML path")
        return World(key_or_config, cache_root, progress)
    return World(load_world_config(key_or_config, **overrides), cache_root, progress)
