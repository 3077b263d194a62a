"""The synthetic confounder study, done with a known generator (book: Mini world, item 7; the paper's Fig. 12).

The study's classes form a *part cycle* (:func:`check_part_cycle`): listed in order, consecutive classes
(and the last and the first) share a head or a body type, and every head and body type occurs in exactly
two classes. An image showing mostly one part therefore leaves two candidate classes, and only the
occluded remnant of the other part tells them apart: the semantic factor C matters.

Designs, each a propensity P(C = head-dominant | Y = k) per class:

- ``A``: 0.5 in every class (the paper's balanced design);
- ``B``: ``majority`` (0.9) in every class. C is then independent of Y, so B is *not* confounded: it only
  shifts the marginal P(C) (the reviewer's objection);
- ``B_body``: ``1 − majority`` in every class, B's mirror (a body-biased training set: it pre-trains the
  body-relying member of the multi-model proxy, as ``B`` pre-trains the head-relying one);
- ``confounded``: ``majority`` and ``1 − majority`` alternating along the cycle, so P(C | Y) differs by
  class and the two classes that share a part always have opposite propensities: C, which shapes X, is
  associated with Y exactly where the visible part leaves Y ambiguous (a shortcut through C).

Test sets: ``A``, ``B`` and ``confounded`` with their design's propensity (the observational regimes),
plus ``interventional``: C drawn independently of Y from the confounded design's marginal P(C) (= 0.5),
i.e. images sampled under do(C); accuracy there is the P(Y | do(X))-regime accuracy. Every split is
rendered with its own seed, so no image is shared between splits.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ConfigError
from .config import ConfounderConfig, RenderConfig
from .corpora import labels_and_visibility
from .generator import PartLayout, Renders, render
from .seeds import derive_seed
from .tasks import WorldImages

DESIGNS = ("A", "B", "confounded")  # designs with an observational test set
TRAIN_SETS = (*DESIGNS, "B_body")
TEST_SETS = (*DESIGNS, "interventional")


def check_part_cycle(layout: PartLayout, classes: Sequence[int]) -> None:
    """Raise ``ConfigError`` unless ``classes`` (in order) form a part cycle of ``layout``.

    A part cycle: every head type and every body type used occurs in exactly two of the classes, and
    consecutive classes (cyclically) share a part. Then the two classes sharing any part are neighbours
    in the order, so alternating propensities split every such pair.

    Args:
        layout: the world's Latin square; classes: world class ids, in cycle order.
    """
    classes = [int(k) for k in classes]
    if len(set(classes)) != len(classes) or not classes or min(classes) < 0 or max(classes) >= layout.num_classes:
        raise ConfigError(f"confounder.classes must be distinct ids in [0, {layout.num_classes}), got {classes}")
    for part, types in (("head", layout.head_type), ("body", layout.body_type)):
        uses = Counter(types[k] for k in classes)
        if set(uses.values()) != {2}:
            raise ConfigError(f"confounder.classes {classes}: every {part} type must occur in exactly two classes, "
                              f"got {dict(sorted(uses.items()))} ({part} type: count)")
    for i, (a, b) in enumerate(zip(classes, classes[1:] + classes[:1]), start=1):
        if layout.head_type[a] != layout.head_type[b] and layout.body_type[a] != layout.body_type[b]:
            raise ConfigError(f"confounder.classes {classes}: entries {i} and {i % len(classes) + 1} "
                              f"(classes {a}, {b}) share no part; list the classes in cycle order")


def part_partners(layout: PartLayout, classes: Sequence[int]) -> dict[str, np.ndarray]:
    """For each study class, the study-local index of the other class with the same head / body.

    Args:
        layout: the world's Latin square; classes: a part cycle (:func:`check_part_cycle`).
    Returns:
        ``{"head": int64 [K'], "body": int64 [K']}``.
    """
    check_part_cycle(layout, classes)
    out = {}
    for part, types in (("head", layout.head_type), ("body", layout.body_type)):
        t = np.asarray(types)[np.asarray(classes)]
        out[part] = np.array([np.flatnonzero((t == t[i]) & (np.arange(len(t)) != i))[0] for i in range(len(t))])
    return out


def propensities(config: ConfounderConfig) -> dict[str, np.ndarray]:
    """P(C = 0 | Y = k) of every training design and test set; float64 [K'] each (module docstring)."""
    if not 0.5 <= config.majority <= 1.0:
        raise ConfigError(f"confounder.majority must lie in [0.5, 1], got {config.majority}")
    num = len(config.classes)
    confounded = np.where(np.arange(num) % 2 == 0, config.majority, 1 - config.majority)
    return {"A": np.full(num, 0.5), "B": np.full(num, config.majority), "B_body": np.full(num, 1 - config.majority),
            "confounded": confounded, "interventional": np.full(num, float(confounded.mean()))}


@dataclass(frozen=True, eq=False)
class ConfounderStudy:
    """Datasets of the study; labels are 0..K'−1 in the order of ``classes``.

    Attributes:
        classes: world class ids used; class_names: their names.
        propensity: design or test-set name → P(C = 0 | Y) [K'].
        train: design → training set; test: test-set name → test set. Each dataset exposes C
            (``.visibility``) and the part masks.
    """

    classes: tuple[int, ...]
    class_names: tuple[str, ...]
    propensity: Mapping[str, np.ndarray]
    train: Mapping[str, WorldImages]
    test: Mapping[str, WorldImages]

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def render_study_split(layout: PartLayout, render_config: RenderConfig, config: ConfounderConfig, name: str,
                       train: bool, mean: Sequence[float], std: Sequence[float], world_seed: int, seed: int = 0,
                       augment: bool = True, copy: int = 0) -> WorldImages:
    """Render one split of the study (the same images :func:`build_confounder_study` gives).

    Args:
        layout, render_config, config: the world's classes, nuisances and study section.
        name: a design of ``TRAIN_SETS`` (``train``) or a test set of ``TEST_SETS``.
        train: training split (``train_per_class`` images per class, augmented) or test split.
        mean, std: normalisation of the model that will be trained.
        world_seed, seed: seeds (the images depend on both, and on ``name`` and ``train``).
        augment: pad-crop-flip augmentation on a training split.
        copy: 0 for the study's split; k > 0 for an independent draw of the same design (fresh labels order,
            C assignment and images), as the training set of an independently trained copy of a CNN.
    Returns:
        The split, labels 0..K'−1, class-balanced, C realising the propensity of ``name``.
    """
    check_part_cycle(layout, config.classes)
    props = propensities(config)
    if name not in (TRAIN_SETS if train else TEST_SETS):
        raise ConfigError(f"unknown {'training design' if train else 'test set'} {name!r}; "
                          f"choose one of {TRAIN_SETS if train else TEST_SETS}")
    counts = np.full(len(config.classes), config.train_per_class if train else config.test_per_class, dtype=np.int64)
    heads = np.floor(counts * props[name] + 0.5).astype(np.int64)
    if copy < 0:
        raise ConfigError(f"copy must be >= 0, got {copy}")
    purpose = f"confounder/{'train' if train else 'test'}/{name}" + (f"/copy{copy}" if copy else "")
    local, visibility = labels_and_visibility(counts, heads, derive_seed(world_seed, purpose + "/labels", seed))
    renders = render(layout, np.asarray(config.classes)[local], visibility, render_config,
                     derive_seed(world_seed, purpose, seed))
    return WorldImages(_relabel(renders, local), mean, std, augment=train and augment)


def build_confounder_study(layout: PartLayout, render_config: RenderConfig, config: ConfounderConfig,
                           mean: Sequence[float], std: Sequence[float], world_seed: int, seed: int = 0,
                           augment: bool = True) -> ConfounderStudy:
    """Render every split of the study (arguments as in :func:`render_study_split`).

    Returns:
        A :class:`ConfounderStudy` with the ``TRAIN_SETS`` and ``TEST_SETS``.
    """
    check_part_cycle(layout, config.classes)

    def split(name: str, train: bool) -> WorldImages:
        return render_study_split(layout, render_config, config, name, train, mean, std, world_seed, seed, augment)

    classes = tuple(int(k) for k in config.classes)
    return ConfounderStudy(classes, tuple(layout.class_names[k] for k in classes), propensities(config),
                           {d: split(d, True) for d in TRAIN_SETS}, {t: split(t, False) for t in TEST_SETS})


def _relabel(renders: Renders, local_labels: np.ndarray) -> Renders:
    """The same renders with labels 0..K'−1 (the study's own label space)."""
    return Renders(renders.images, torch.from_numpy(local_labels), renders.visibility, renders.masks)
