"""The synthetic confounder study, done with a known generator (MINIWORLD.md property 7; PAPER.md Fig. 12).

Designs, each a propensity P(C = head-dominant | Y = k) per class:

- ``A``: 0.5 in every class (the paper's balanced design);
- ``B``: ``majority`` (0.9) in every class. C is then independent of Y, so B is *not* confounded: it only
  shifts the marginal P(C) (the reviewer's objection);
- ``confounded``: ``majority`` for the first half of the classes and ``1 − majority`` for the second, so
  P(C | Y) differs by class and C, which shapes X, is associated with Y.

Test sets: one per design with that design's propensity (the observational regime), plus
``interventional``: C drawn independently of Y from the confounded design's marginal P(C) (= 0.5),
i.e. images sampled under do(C); accuracy there is the P(Y | do(X))-regime accuracy. Every split is
rendered with its own seed, so no image is shared between splits.
"""

from __future__ import annotations

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

DESIGNS = ("A", "B", "confounded")
TEST_SETS = (*DESIGNS, "interventional")


def propensities(config: ConfounderConfig) -> dict[str, np.ndarray]:
    """P(C = 0 | Y = k) of every design and of the interventional test set; float64 [K'] each."""
    if not 0.5 <= config.majority <= 1.0:
        raise ConfigError(f"confounder.majority must lie in [0.5, 1], got {config.majority}")
    num = len(config.classes)
    first_half = np.arange(num) < num // 2
    confounded = np.where(first_half, config.majority, 1 - config.majority)
    return {"A": np.full(num, 0.5), "B": np.full(num, config.majority), "confounded": confounded,
            "interventional": np.full(num, float(confounded.mean()))}


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


def build_confounder_study(layout: PartLayout, render_config: RenderConfig, config: ConfounderConfig,
                           mean: Sequence[float], std: Sequence[float], world_seed: int, seed: int = 0,
                           augment: bool = True) -> ConfounderStudy:
    """Render every split of the study.

    Args:
        layout: the world's classes; render_config: its nuisances; config: study sizes and majority.
        mean, std: normalisation of the model that will be trained (CLIP's for the ResNet-32 too).
        world_seed, seed: seeds (the study's images depend on both).
        augment: pad-crop-flip augmentation on the training sets.
    Returns:
        A :class:`ConfounderStudy`.
    """
    classes = tuple(int(k) for k in config.classes)
    if len(set(classes)) != len(classes) or not classes or min(classes) < 0 or max(classes) >= layout.num_classes:
        raise ConfigError(f"confounder.classes must be distinct ids in [0, {layout.num_classes}), got {classes}")
    props = propensities(config)

    def split(name: str, per_class: int, train: bool) -> WorldImages:
        counts = np.full(len(classes), per_class, dtype=np.int64)
        heads = np.floor(counts * props[name] + 0.5).astype(np.int64)
        purpose = f"confounder/{'train' if train else 'test'}/{name}"
        local, visibility = labels_and_visibility(counts, heads, derive_seed(world_seed, purpose + "/labels", seed))
        renders = render(layout, np.asarray(classes)[local], visibility, render_config,
                         derive_seed(world_seed, purpose, seed))
        return WorldImages(_relabel(renders, local), mean, std, augment=train and augment)

    return ConfounderStudy(classes, tuple(layout.class_names[k] for k in classes), props,
                           {d: split(d, config.train_per_class, True) for d in DESIGNS},
                           {t: split(t, config.test_per_class, False) for t in TEST_SETS})


def _relabel(renders: Renders, local_labels: np.ndarray) -> Renders:
    """The same renders with labels 0..K'−1 (the study's own label space)."""
    return Renders(renders.images, torch.from_numpy(local_labels), renders.visibility, renders.masks)
