"""Derived seeds: every random stream of the mini world is a pure function of the world seed and a purpose."""

from __future__ import annotations

import zlib

from ..seeding import mix_seed


def derive_seed(world_seed: int, purpose: str, *values: int) -> int:
    """A 63-bit seed for one purpose (e.g. ``"corpus/mini-clip"``, ``"task/train"``), well mixed.

    Args:
        world_seed: the world's ``seed``.
        purpose: a stable name of the random stream (hashed with CRC-32, so it does not depend on
            Python's per-process string hashing).
        *values: further integers (a task seed, a split index).
    Returns:
        int in [0, 2**63): ``ltlib.seeding.mix_seed(world_seed, crc32(purpose), *values)``, the one seed
        mixer of the package.
    """
    return mix_seed(world_seed, zlib.crc32(purpose.encode("utf-8")), *values)
