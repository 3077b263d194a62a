"""Downstream long-tailed tasks of the mini world (book: Mini world, item 6; the paper's Tab. 13 scenarios).

A task has a long-tailed training split (exponential profile P_S, imbalance ratio ρ), a class-balanced
validation split (GLA estimation, kNN bank) and a class-balanced test split. Its class order relative to
a foundation model's pre-training prior π_m is a parameter:

- ``independent``: a seeded random order, unrelated to π_m;
- ``consistent``: the downstream head classes are π_m's head classes;
- ``reverse``: the downstream head classes are π_m's tail classes;
- ``balanced``: every class gets the same count (the long-tailed total split evenly).

The val and test splits depend only on the world (not on the order or the task seed), so every
scenario is evaluated on the same images.

Training augmentation: the CIFAR recipe (pad 4, random 32×32 crop, horizontal flip) instead of LIFT's
``RandomResizedCrop(scale=(0.08, 1))``. At 32 px a crop of 8% of the area routinely cuts the object's
head or body out of view, i.e. it would change the part-visibility variable C that the world controls.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..errors import ConfigError
from ..seeding import sample_uniforms
from .config import TaskConfig
from .corpora import integer_counts, labels_and_visibility, prior_profile, split_by_fraction
from .generator import Renders

ORDERS = ("independent", "consistent", "reverse", "balanced")
PAD = 4  # pixels of zero padding (the mean colour after normalisation) before the random crop


class WorldImages(Dataset):
    """``(image, label)`` pairs over rendered images; the ground truth stays available as attributes.

    Args:
        renders: images uint8 [N,3,S,S], labels, C and part masks.
        mean, std: per-channel normalisation of the backbone that will see the images.
        augment: random pad-4 crop and horizontal flip, drawn from torch's global RNG (so
            ``ltlib.engine.SeededSamples`` fixes them per sample).
    Attributes:
        labels, visibility: int64 [N]; masks: bool [N, 2, S, S] (head, body visible pixels).
    """

    def __init__(self, renders: Renders, mean: Sequence[float], std: Sequence[float], augment: bool = False):
        self.renders, self.augment = renders, augment
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.renders)

    @property
    def labels(self) -> torch.Tensor:
        return self.renders.labels

    @property
    def visibility(self) -> torch.Tensor:
        return self.renders.visibility

    @property
    def masks(self) -> torch.Tensor:
        return self.renders.masks

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = (self.renders.images[index].float() / 255.0 - self.mean) / self.std
        if self.augment:
            image = random_crop_flip(image)
        return image, int(self.renders.labels[index])

    def get_batch(self, indices: np.ndarray, key: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        """A whole batch at once (``ltlib.engine.BatchDataset``): normalised images [B,3,S,S] and labels.

        With a ``key`` (training), each image gets the pad-4 crop and flip of :func:`random_crop_flip`,
        its draws taken from ``ltlib.seeding.sample_uniforms(key, indices, 3)``, so they depend only on
        (seed, epoch, index); without a key (evaluation) the images are returned as they are.
        """
        idx = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        images = (self.renders.images[idx].float() / 255.0 - self.mean) / self.std
        if self.augment and key is not None:
            images = batch_crop_flip(images, torch.from_numpy(sample_uniforms(key, indices, 3)))
        return images, self.renders.labels[idx]

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All images normalised, without augmentation, and the labels: ([N,3,S,S] float32, [N] int64)."""
        images = (self.renders.images.float() / 255.0 - self.mean) / self.std
        return images, self.renders.labels


def random_crop_flip(image: torch.Tensor, pad: int = PAD) -> torch.Tensor:
    """CIFAR augmentation of one normalised image [3,S,S]: zero-pad, random S×S crop, flip with p=0.5."""
    size = image.shape[-1]
    padded = F.pad(image, (pad, pad, pad, pad))
    top, left = (int(v) for v in torch.randint(0, 2 * pad + 1, (2,)))
    crop = padded[:, top:top + size, left:left + size]
    return crop.flip(-1) if bool(torch.rand(()) < 0.5) else crop


def batch_crop_flip(images: torch.Tensor, uniforms: torch.Tensor, pad: int = PAD) -> torch.Tensor:
    """:func:`random_crop_flip` for a batch [B,3,S,S], driven by uniforms [B,3] (top, left, flip).

    One gather from a strided view of every image's (2p+1)² crop windows, then the flipped images are
    mirrored in place: a third of the time of indexing rows and columns per pixel, the same values.
    """
    b, channels, size, _ = images.shape
    padded = F.pad(images, (pad, pad, pad, pad))                             # [B, 3, S+2p, S+2p]
    s = padded.stride()
    windows = padded.as_strided((b, channels, 2 * pad + 1, 2 * pad + 1, size, size),
                                (s[0], s[1], s[2], s[3], s[2], s[3]))        # [B, 3, top, left, S, S]
    offsets = (uniforms[:, :2] * (2 * pad + 1)).long().clamp_(max=2 * pad)  # top, left in [0, 2p]
    crops = windows[torch.arange(b), :, offsets[:, 0], offsets[:, 1]]        # [B, 3, S, S], contiguous
    flip = uniforms[:, 2] < 0.5
    crops[flip] = crops[flip].flip(-1)
    return crops


def downstream_counts(config: TaskConfig, num_classes: int) -> np.ndarray:
    """Training counts by downstream rank (rank 0 = most frequent): exponential from ``max_count`` to
    ``max_count / imbalance_ratio``, rounded; int64 [K], non-increasing."""
    profile = prior_profile(num_classes, "exponential", config.imbalance_ratio)
    return np.maximum(np.round(config.max_count * profile / profile[0]), 1).astype(np.int64)


def class_order(order: str | Sequence[int], num_classes: int, popularity: np.ndarray | None, seed: int) -> np.ndarray:
    """Downstream rank → class id (row 0 = the downstream head class).

    Args:
        order: one of ``ORDERS`` or an explicit permutation of ``range(K)``.
        num_classes: K.
        popularity: int [K], classes from the most to the least frequent under π_m (needed by
            ``consistent`` / ``reverse``).
        seed: draws the ``independent`` order.
    Returns:
        int64 [K], a permutation.
    """
    if not isinstance(order, str):
        perm = np.asarray(order, dtype=np.int64)
        if sorted(perm.tolist()) != list(range(num_classes)):
            raise ConfigError(f"order: an explicit order must be a permutation of range({num_classes})")
        return perm
    if order not in ORDERS:
        raise ConfigError(f"order must be one of {ORDERS} or a permutation, got {order!r}")
    if order in ("independent", "balanced"):
        return np.random.default_rng(seed).permutation(num_classes)
    if popularity is None:
        raise ConfigError(f"order={order!r} needs the pre-training popularity of a foundation model (relative_to)")
    return np.asarray(popularity if order == "consistent" else popularity[::-1], dtype=np.int64)


def train_counts(config: TaskConfig, order: str | Sequence[int], num_classes: int, popularity: np.ndarray | None,
                 seed: int) -> np.ndarray:
    """n_y of the training split, indexed by class; int64 [K].

    ``balanced`` splits the long-tailed total evenly (so every scenario trains on about as many images).
    """
    by_rank = downstream_counts(config, num_classes)
    if isinstance(order, str) and order == "balanced":
        return integer_counts(np.full(num_classes, 1.0 / num_classes), int(by_rank.sum()))
    counts = np.empty(num_classes, dtype=np.int64)
    counts[class_order(order, num_classes, popularity, seed)] = by_rank
    return counts


def balanced_split(num_classes: int, per_class: int, head_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels and C of a class-balanced split with C independent of Y; (int64 [K·per_class], same)."""
    counts = np.full(num_classes, per_class, dtype=np.int64)
    return labels_and_visibility(counts, split_by_fraction(counts, head_fraction), seed)
