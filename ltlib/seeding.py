"""Counter-based randomness: seeds and per-sample random numbers that depend only on their keys.

A sample's augmentation draws are a pure function of (run seed, epoch, sample index), whatever the
batch it lands in, the number of data-parallel processes, or the point where a run was resumed.
"""

from __future__ import annotations

import random

import numpy as np
import torch

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed python, numpy and torch (all devices); with ``deterministic`` also pin cuDNN."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def mix_seed(*values: int) -> int:
    """A 63-bit seed derived from integers (numpy SeedSequence: well mixed, order-sensitive)."""
    state = np.random.SeedSequence([int(v) for v in values]).generate_state(2, dtype=np.uint32)
    return int(state.view(np.uint64)[0] >> np.uint64(1))


def _splitmix64(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = x + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def sample_uniforms(key: int, indices: np.ndarray, count: int) -> np.ndarray:
    """``count`` uniform draws in [0, 1) per sample index, a pure function of (key, index, draw number).

    Args:
        key: e.g. ``mix_seed(seed, epoch)``.
        indices: [B] sample indices.
        count: draws per sample.
    Returns:
        float64 [B, count].
    """
    idx = np.asarray(indices, dtype=np.uint64).reshape(-1, 1)
    draw = np.arange(count, dtype=np.uint64).reshape(1, -1)
    with np.errstate(over="ignore"):
        counters = _splitmix64(np.uint64(key)) ^ (idx * np.uint64(count) + draw) * _GOLDEN
    return (_splitmix64(counters) >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
