"""Inference cost of the backdoor adjustment: floating-point operations and throughput of M models.

The paper's rebuttal reports the cost of M = 1, 2, 3 ViT-B/16 models (:data:`PAPER_GFLOPS`); the book's
main-tables page and ``python -m ltlib bench`` measure theirs with :func:`ensemble_cost`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

# GFLOPs per image of the backdoor adjustment with M = 1, 2, 3 ViT-B/16 models, as the rebuttal reports them.
PAPER_GFLOPS = {1: 239.06, 2: 478.13, 3: 717.19}


def count_gflops(fn: Callable[[], Any]) -> float:
    """GFLOPs of ``fn()`` counted by ``torch.utils.flop_counter`` (2 per multiply-add; matmuls, convolutions
    and attention only: layer norms, activations and softmax are not counted).

    Fused attention kernels are invisible to the counter on some devices (``nn.MultiheadAttention``'s
    inference fast path; the CPU flash kernel), so counting runs the plain-matmul attention path instead:
    the arithmetic is the same.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with sdpa_kernel([SDPBackend.MATH]), FlopCounterMode(display=False) as counter:
            fn()
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    return counter.get_total_flops() / 1e9


@torch.no_grad()
def ensemble_cost(models: Sequence[Callable[[torch.Tensor], torch.Tensor]], images: torch.Tensor,
                  repeats: int = 1) -> dict[str, float]:
    """Cost of summing the outputs of ``models`` (the official rule: summed raw logits), M = len(models).

    Args:
        models: M callables images → logits (or features).
        images: a batch; GFLOPs are counted on its first image, throughput timed on all of it after one
            warm-up call (best of ``repeats``; CUDA synchronised on both sides).
    Returns:
        ``gflops_per_image`` and ``images_per_second``.
    """
    def forward(x: torch.Tensor) -> torch.Tensor:
        return sum(m(x) for m in models)

    gflops = count_gflops(lambda: forward(images[:1]))
    forward(images[:1])  # warm-up
    seconds = min(timed(lambda: forward(images))[1] for _ in range(repeats))
    return {"gflops_per_image": gflops, "images_per_second": len(images) / seconds}


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """``(fn(), wall seconds)``; on CUDA the device is synchronised on both sides."""
    _synchronize()
    start = time.perf_counter()
    out = fn()
    _synchronize()
    return out, time.perf_counter() - start


def _synchronize() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()
