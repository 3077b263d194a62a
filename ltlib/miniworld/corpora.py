"""Pre-training corpora with known label prior π_m and part bias P_m(C) (book: Mini world, item 5)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ConfigError
from .captions import sample_captions
from .config import CaptionConfig, RenderConfig
from .generator import PartLayout, render

PROFILES = ("exponential", "zipf", "uniform")


def prior_profile(num_classes: int, profile: str, imbalance_ratio: float) -> np.ndarray:
    """Label prior by popularity rank (rank 0 = most frequent).

    Args:
        num_classes: K.
        profile: ``"exponential"`` (π_r ∝ ρ^(−r/(K−1)), log-linear like the OLTR benchmarks),
            ``"zipf"`` (π_r ∝ (r+1)^(−s), s = log ρ / log K) or ``"uniform"``.
        imbalance_ratio: ρ = π_0 / π_{K−1} ≥ 1.
    Returns:
        float64 [K], descending, sums to 1.
    """
    if profile not in PROFILES:
        raise ConfigError(f"corpus.profile must be one of {PROFILES}, got {profile!r}")
    if imbalance_ratio < 1:
        raise ConfigError(f"corpus.imbalance_ratio must be >= 1, got {imbalance_ratio}")
    rank = np.arange(num_classes, dtype=np.float64)
    if profile == "exponential":
        weights = imbalance_ratio ** (-rank / max(num_classes - 1, 1))
    elif profile == "zipf":
        weights = (rank + 1) ** (-math.log(imbalance_ratio) / math.log(max(num_classes, 2)))
    else:
        weights = np.ones(num_classes)
    return weights / weights.sum()


def popularity_orders(num_classes: int, num_models: int, correlation: float, seed: int) -> np.ndarray:
    """Class orders (most to least frequent) of several models with controllable overlap.

    A latent popularity z_m = √c · z_0 + √(1−c) · ε_m (Gaussian, per class) is ranked for each model, so
    any two models' latent popularities have correlation c: 0 gives independent orders, 1 identical ones.

    Args:
        num_classes: K; num_models: M; correlation: c in [0, 1]; seed: randomness.
    Returns:
        int64 [M, K]; row m lists class ids from the most to the least frequent in corpus m.
    """
    if not 0.0 <= correlation <= 1.0:
        raise ConfigError(f"corpus.order_correlation must lie in [0, 1], got {correlation}")
    rng = np.random.default_rng(seed)
    shared = rng.standard_normal(num_classes)
    own = rng.standard_normal((num_models, num_classes))
    latent = math.sqrt(correlation) * shared + math.sqrt(1 - correlation) * own
    return np.argsort(-latent, axis=1, kind="stable")


def prior_for_order(profile_by_rank: np.ndarray, order: np.ndarray) -> np.ndarray:
    """π indexed by class: class ``order[r]`` gets ``profile_by_rank[r]``; float64 [K]."""
    prior = np.empty_like(profile_by_rank)
    prior[order] = profile_by_rank
    return prior


def integer_counts(prior: np.ndarray, total: int, min_count: int = 0) -> np.ndarray:
    """Counts that sum to ``total``: ``min_count`` each plus a largest-remainder split of the rest by ``prior``.

    Args:
        prior: float [K], non-negative, sums to 1.
        total: N ≥ K · min_count.
        min_count: floor per class.
    Returns:
        int64 [K].
    """
    spare = total - min_count * len(prior)
    if spare < 0:
        raise ConfigError(f"cannot give {len(prior)} classes {min_count} images each out of {total}")
    exact = spare * np.asarray(prior, dtype=np.float64)
    counts = np.floor(exact).astype(np.int64)
    leftover = spare - int(counts.sum())
    counts[np.argsort(-(exact - counts), kind="stable")[:leftover]] += 1
    return counts + min_count


def split_by_fraction(counts: np.ndarray, fraction: float) -> np.ndarray:
    """Per class, how many of ``counts`` get C = 0 (head-dominant): ``round(n_k · fraction)``; int64 [K]."""
    if not 0.0 <= fraction <= 1.0:
        raise ConfigError(f"head_fraction must lie in [0, 1], got {fraction}")
    return np.floor(np.asarray(counts) * fraction + 0.5).astype(np.int64)


def labels_and_visibility(counts: np.ndarray, head_counts: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled labels and C with exactly ``counts[k]`` images of class k, ``head_counts[k]`` of them C=0.

    Returns:
        (labels int64 [N], visibility int64 [N]).
    """
    labels = np.repeat(np.arange(len(counts)), counts)
    visibility = np.concatenate([np.r_[np.zeros(h, np.int64), np.ones(n - h, np.int64)]
                                 for n, h in zip(counts, head_counts)]) if len(counts) else np.zeros(0, np.int64)
    perm = np.random.default_rng(seed).permutation(len(labels))
    return labels[perm], visibility[perm]


@dataclass(frozen=True, eq=False)
class Corpus:
    """Image–caption pairs of one foundation model's pre-training corpus, with their ground truth."""

    images: torch.Tensor  # uint8 [N, 3, S, S]
    labels: np.ndarray  # int64 [N]
    visibility: np.ndarray  # int64 [N], C
    captions: tuple[str, ...]  # distinct captions
    caption_index: np.ndarray  # int64 [N] into ``captions``

    def __len__(self) -> int:
        return len(self.labels)

    def class_counts(self, num_classes: int) -> np.ndarray:
        """int64 [K] images per class."""
        return np.bincount(self.labels, minlength=num_classes)


def build_corpus(layout: PartLayout, render_config: RenderConfig, caption_config: CaptionConfig,
                 counts: np.ndarray, head_fraction: float, seed: int) -> Corpus:
    """Render a corpus with exactly ``counts[k]`` images of class k, a fraction ``head_fraction`` of each
    class head-dominant (so C is independent of Y within the corpus), and one caption per image.

    Args:
        layout: the classes; render_config: nuisances; caption_config: caption scheme.
        counts: int [K] images per class (see :func:`integer_counts`).
        head_fraction: P_m(C = 0).
        seed: seeds labels, rendering and captions (three derived streams).
    Returns:
        The :class:`Corpus`.
    """
    seeds = np.random.SeedSequence(seed).generate_state(3)
    labels, visibility = labels_and_visibility(counts, split_by_fraction(counts, head_fraction), int(seeds[0]))
    images = render(layout, labels, visibility, render_config, int(seeds[1])).images
    captions, index = sample_captions(layout, labels, visibility, caption_config, int(seeds[2]))
    return Corpus(images, labels, visibility, captions, index)
