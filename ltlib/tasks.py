"""Downstream long-tailed tasks: what stage 1 fine-tunes on and evaluates, at either scale.

A task is the same object whether it comes from a real dataset on disk (ImageNet-LT, Places-LT,
iNaturalist 2018) or from the mini world: class names, training class counts (which define P_S and
the D-groups), a training set and named evaluation sets (``val``: class-balanced, used for GLA prior
estimation and as the kNN bank; ``test``: class-balanced).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
from torch.utils.data import Dataset

from .data import (CLIP_MEAN, CLIP_STD, DatasetConfig, Manifest, ManifestDataset, build_split, load_classnames,
                   load_dataset_config, test_transform, train_transform)
from .errors import ConfigError, ManifestError
from .recipes import TrainConfig, load_recipe


@dataclass(frozen=True, eq=False)
class Task:
    """A downstream task.

    Attributes:
        key: a stable identifier used in run directories (e.g. ``"places_lt"``, ``"mini-default/independent"``).
        classnames: label-ordered names, used for the text-initialised head and zero-shot prompts.
        class_counts: [C] training counts n_y (P_S = n / Σn; D-groups, book: Method, 'Evaluation').
        train: yields ``(image, label)`` with training augmentation.
        eval_sets: name → dataset yielding ``(image or crops, label)`` with the test transform.
        info: free-form facts recorded with every run (e.g. the world's true priors' provenance).
    """

    key: str
    classnames: tuple[str, ...]
    class_counts: np.ndarray
    train: Dataset
    eval_sets: Mapping[str, Dataset]
    info: Mapping[str, object] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classnames)

    @property
    def train_prior(self) -> np.ndarray:
        """P_S(y) = n_y / Σ n."""
        counts = np.asarray(self.class_counts, dtype=np.float64)
        return counts / counts.sum()


# --------------------------------------------------------------------------- real datasets (book: Method, 'Data lists')
# Where each dataset's class-balanced ``val`` split comes from (book: Method, 'The GLA prior estimator', which data):
#   "val"          the shipped val list (ImageNet-LT and Places-LT: 20 images per class);
#   "train_subset" a seeded class-balanced subset of the training list, as many images per class as
#                  the rarest class has (iNat2018: 2 per class, 16,284 images). These images are also
#                  trained on: harmless for the zero-shot prior estimate (the zero-shot model never sees
#                  them), optimistic for fine-tuned accuracies on ``val``;
#   "test"         the test list, as GLA's analysis trainer ``PpSolver`` does: uses test labels.
VAL_SOURCES = ("auto", "val", "train_subset", "test")
DatasetLike = str | os.PathLike | DatasetConfig


def default_val_source(config: DatasetConfig) -> str:
    """``"val"`` where the dataset ships a val list, else ``"train_subset"`` (iNat2018)."""
    return "val" if "val" in {s.name for s in config.splits} else "train_subset"


def task_key(dataset: DatasetLike, val_source: str = "auto") -> str:
    """The task's run-directory key: the dataset name, suffixed when ``val`` is not the default source.

    Args:
        dataset: registry key, dataset YAML path or ``DatasetConfig``.
        val_source: one of :data:`VAL_SOURCES`.
    Returns:
        e.g. ``"places_lt"``, ``"inat2018"`` or ``"inat2018-val_test"``.
    """
    config = _dataset_config(dataset)
    source = _resolve_val_source(config, val_source)
    return config.name if source == default_val_source(config) else f"{config.name}-val_{source}"


def build_task(dataset: DatasetLike, data_root: str | os.PathLike, *, train_list: str | os.PathLike | None = None,
               recipe: TrainConfig | None = None, val_source: str = "auto", seed: int = 0,
               mean: Sequence[float] = CLIP_MEAN, std: Sequence[float] = CLIP_STD) -> Task:
    """A :class:`Task` over a real dataset on disk (ImageNet-LT, Places-LT, iNat2018) or a fixture YAML.

    Transforms are LIFT's (book: Method, 'Test-time crops'): ``train`` RandomResizedCrop + flip; ``test``
    five-crop TTE when
    ``recipe.tte`` (else Resize + CenterCrop); ``val`` always a single centre crop, because GLA's prior
    estimator and the kNN bank use un-augmented single views (book: Method, 'The GLA prior estimator', 'The kNN probe').

    Args:
        dataset: registry key (``imagenet_lt`` | ``places_lt`` | ``inat2018``) or a dataset YAML path
            (e.g. ``make_fixture_dataset(...).config``).
        data_root: the image root, laid out as the config's ``image_layout`` says.
        train_list: the user's training manifest where it is not shipped (ImageNet-LT, iNat2018);
            validated and SHA-256 pinned (``ltlib.data.validate_user_manifest``).
        recipe: supplies ``resolution``, ``tte`` and ``tte_expand``; default the dataset's recipe.
        val_source: see :data:`VAL_SOURCES`; ``"auto"`` is :func:`default_val_source`.
        seed: seeds the ``train_subset`` draw.
        mean, std: input normalisation (CLIP's; all three backbones were trained with it).
    Returns:
        The task; ``info`` records the dataset, the val source and the train list used.
    Raises:
        ConfigError / ManifestError: unknown dataset or val source; missing, malformed or changed lists
            or images (the message names the file and line).
    """
    config = _dataset_config(dataset)
    _require_train_list(config, train_list)
    recipe = recipe or load_recipe(config.recipe)
    source = _resolve_val_source(config, val_source)
    norm = {"mean": tuple(mean), "std": tuple(std)}
    train = build_split(config, "train", data_root, train_transform(recipe.resolution, **norm), train_list)
    single = test_transform(recipe.resolution, tte=False, expand=recipe.tte_expand, **norm)
    crops = test_transform(recipe.resolution, tte=recipe.tte, expand=recipe.tte_expand, **norm)
    eval_sets = {"val": _val_set(config, source, train, data_root, single, seed),
                 "test": build_split(config, "test", data_root, crops)}
    info = {"dataset": config.name, "title": config.title, "val_source": source, "test_tte": bool(recipe.tte),
            "train_list": None if train_list is None else str(train_list), "data_root": str(data_root)}
    return Task(task_key(config, source), load_classnames(config), train.class_counts, train, eval_sets, info)


def _dataset_config(dataset: DatasetLike) -> DatasetConfig:
    return dataset if isinstance(dataset, DatasetConfig) else load_dataset_config(dataset)


def _require_train_list(config: DatasetConfig, train_list: str | os.PathLike | None) -> None:
    spec = config.split("train")
    if train_list is None and not spec.shipped:
        raise ManifestError(f"the {config.title} training list is not shipped with ltlib: pass it as train_list "
                            f"(command line: --train-list PATH). The standard file is {spec.standard_name}: "
                            f"{spec.obtain}")


def _resolve_val_source(config: DatasetConfig, val_source: str) -> str:
    if val_source not in VAL_SOURCES:
        raise ConfigError(f"invalid val_source={val_source!r}: expected one of {VAL_SOURCES}")
    source = default_val_source(config) if val_source == "auto" else val_source
    if source == "val" and "val" not in {s.name for s in config.splits}:
        raise ConfigError(f"val_source='val': dataset {config.name} ships no val list; use 'train_subset' or 'test'")
    return source


def _val_set(config: DatasetConfig, source: str, train: ManifestDataset, data_root: str | os.PathLike,
             transform, seed: int) -> Dataset:
    """The class-balanced ``val`` dataset drawn from ``source`` (see :data:`VAL_SOURCES`)."""
    if source in ("val", "test"):
        return build_split(config, source, data_root, transform)
    subset = balanced_subset(train.manifest, int(train.class_counts.min()), seed)
    return ManifestDataset(subset, data_root, transform, classnames=train.classnames)


def balanced_subset(manifest: Manifest, per_class: int, seed: int = 0) -> Manifest:
    """A seeded class-balanced subset of a manifest: ``per_class`` lines of every class, in file order.

    Args:
        manifest: every class must hold at least ``per_class`` lines.
        per_class: lines kept per class.
        seed: seeds which lines are kept.
    Returns:
        A new :class:`~ltlib.data.Manifest` of ``per_class · C`` lines (same source).
    """
    counts = np.bincount(manifest.labels, minlength=manifest.num_classes)
    if per_class < 1 or counts.min() < per_class:
        raise ConfigError(f"per_class={per_class}: every class needs that many lines; the rarest has {counts.min()}")
    keys = np.random.default_rng(seed).random(len(manifest))
    order = np.lexsort((keys, manifest.labels))  # grouped by class, random within a class
    rank = np.arange(len(order)) - np.repeat(np.cumsum(counts) - counts, counts)
    kept = np.sort(order[rank < per_class])
    labels = manifest.labels[kept]
    labels.setflags(write=False)
    return Manifest(manifest.source, tuple(manifest.paths[i] for i in kept), labels, manifest.num_classes)
