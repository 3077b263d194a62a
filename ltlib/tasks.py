"""Downstream long-tailed tasks: what stage 1 fine-tunes on and evaluates, at either scale.

A task is the same object whether it comes from a real dataset on disk (ImageNet-LT, Places-LT,
iNaturalist 2018) or from the mini world: class names, training class counts (which define P_S and
the D-groups), a training set and named evaluation sets (``val``: class-balanced, used for GLA prior
estimation and as the kNN bank; ``test``: class-balanced).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
from torch.utils.data import Dataset


@dataclass(frozen=True, eq=False)
class Task:
    """A downstream task.

    Attributes:
        key: a stable identifier used in run directories (e.g. ``"places_lt"``, ``"mini-default/independent"``).
        classnames: label-ordered names, used for the text-initialised head and zero-shot prompts.
        class_counts: [C] training counts n_y (P_S = n / Σn; D-groups, spec A.11).
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
