"""Arithmetic rates of the mini world beside this CPU's large-matmul rate, measured in one run (a goal of
the performance page), and the ``batched`` benchmark's rows (``ltlib.bench.batched``).

The peak probe times a 2048 × 2048 float32 matmul (2 · 2048³ FLOPs); the achieved rates divide the FLOPs
of one training step (``ltlib.flops.count_gflops``: matmuls and attention only) by its measured
time, for a mini-world pre-training step (contrastive, AdamW) and a LIFT fine-tuning step (SGD), both on
random inputs of the default world's sizes and architecture.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from ..flops import count_gflops
from ..parallel import torch_threads
from .suite import BenchOptions, row

MATMUL_SIZE = 2048


def thread_counts() -> tuple[int, ...]:
    """1 (how the mini world pre-trains) and the configured count, if larger."""
    configured = torch.get_num_threads()
    return (1,) if configured == 1 else (1, configured)


def seconds_per_call(fn: Callable[[], Any], repeats: int) -> float:
    """Mean wall seconds of ``fn()`` over ``repeats`` calls after one warm-up call."""
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def matmul_gflops_per_second(threads: int, repeats: int, size: int = MATMUL_SIZE) -> float:
    """GFLOP/s of a ``size``² float32 matmul on ``threads`` threads."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(size, size, generator=g), torch.randn(size, size, generator=g)
    with torch_threads(threads):
        seconds = seconds_per_call(lambda: a @ b, repeats)
    return 2 * size ** 3 / seconds / 1e9


def pretrain_step(world: str = "default", seed: int = 0) -> tuple[Callable[[], float], int]:
    """One contrastive pre-training step of ``world``'s CLIP on random images and captions (B distinct
    captions: an upper bound on the text tower's work, as the corpus repeats captions); (step, B)."""
    import open_clip

    from ..miniworld import load_world_config
    from ..miniworld.pretrain import build_clip, open_clip_config, param_groups

    config = load_world_config(world)
    model_config = open_clip_config(config.architecture, config.render.image_size)
    model, batch = build_clip(model_config, seed).train(), config.pretrain.batch_size
    optimizer = torch.optim.AdamW(param_groups(model, 0.1), lr=config.pretrain.lr)
    g = torch.Generator().manual_seed(seed)
    size, length = config.render.image_size, model_config["text_cfg"]["context_length"]
    images = torch.randn(batch, 3, size, size, generator=g)
    tokens = torch.randint(1, 49406, (batch, length), generator=g)
    loss_fn = open_clip.ClipLoss()

    def step() -> float:
        loss = loss_fn(model.encode_image(images, normalize=True), model.encode_text(tokens, normalize=True),
                       model.logit_scale.exp())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    return step, batch


def finetune_step(world: str = "default", seed: int = 0) -> tuple[Callable[[], float], int]:
    """One LIFT fine-tuning step (mini recipe: batch 128, SGD) on ``world``'s architecture; (step, B)."""
    from ..losses import build_loss
    from ..recipes import load_recipe
    from .batched import lift_models, mini_world_backbone, sequential_train_step

    backbone, config = mini_world_backbone(world, seed)
    cfg = load_recipe("mini_lift")
    num_classes = config.parts.num_part_types * config.parts.group_size
    (model,) = lift_models(backbone, num_classes, (seed,), cfg)
    optimizer = torch.optim.SGD(model.trainable_parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                weight_decay=cfg.weight_decay)
    g = torch.Generator().manual_seed(seed)
    size = config.render.image_size
    images = torch.randn(cfg.batch_size, 3, size, size, generator=g)
    targets = torch.randint(0, num_classes, (cfg.batch_size,), generator=g)
    loss_fn = build_loss("LA", torch.linspace(300, 3, num_classes).round())
    return (lambda: sequential_train_step(model, optimizer, loss_fn, images, targets, cfg, 0)), cfg.batch_size


def bench_rates(options: BenchOptions) -> list[dict[str, Any]]:
    """Peak matmul GFLOP/s and the achieved GFLOP/s of pre-training and fine-tuning steps, per thread count."""
    repeats = 2 if options.quick else 20
    rows = []
    for threads in thread_counts():
        peak = matmul_gflops_per_second(threads, repeats)
        rows.append(row("rates", f"{threads} thread(s)", "matmul_gflops_per_second", peak, "GFLOP/s",
                        f"{MATMUL_SIZE}² float32 matmul"))
        for name, build in (("pre-training", pretrain_step), ("fine-tuning", finetune_step)):
            rows += _achieved_rows(name, build, threads, repeats, peak, options.seed)
    return rows


def _achieved_rows(name: str, build, threads: int, repeats: int, peak: float, seed: int) -> list[dict[str, Any]]:
    step, batch = build(seed=seed)
    with torch_threads(threads):
        gflops = count_gflops(step)
        seconds = seconds_per_call(step, repeats)
    case = f"{threads} thread(s), mini-world {name} step (batch {batch})"
    rate = gflops / seconds
    return [row("rates", case, "gflops_per_step", gflops, "GFLOPs", "counted: matmuls and attention only"),
            row("rates", case, "achieved_gflops_per_second", rate, "GFLOP/s", "counted FLOPs / measured step time"),
            row("rates", case, "fraction_of_matmul_rate", rate / peak, "x",
                "beside the matmul row of this thread count")]


def bench_batched(options: BenchOptions) -> list[dict[str, Any]]:
    """Images/s of K mini-world LIFT fine-tuning runs one by one and batched (``ltlib.bench.batched``), on
    1 and the configured number of threads."""
    steps, batch = (2, 32) if options.quick else (20, 128)
    rows = []
    for threads in thread_counts():
        for k in (1, 3, 9):
            rows += _batched_rows(k, steps, batch, threads, options.seed)
    return rows


def _batched_rows(k: int, steps: int, batch: int, threads: int, seed: int) -> list[dict[str, Any]]:
    from .batched import measure_throughput

    with torch_threads(threads):
        result = measure_throughput(k, steps, batch, seed=seed)
    case = f"K={k} runs, batch {batch}, {threads} thread(s)"
    return [row("batched", case, "images_per_second_sequential", result.sequential, "img/s", "one run after another"),
            row("batched", case, "images_per_second_sequential_math_attention", result.sequential_math, "img/s",
                "one run after another, the batched path's attention kernel"),
            row("batched", case, "images_per_second_batched", result.batched, "img/s",
                "vmap over stacked adapters + heads"),
            row("batched", case, "speedup_batched_vs_sequential", result.speedup, "x", f"{steps} steps each")]


# The runners ``python -m ltlib bench`` passes to ``ltlib.bench.suite.run_benchmarks``.
RUNNERS = {"rates": bench_rates, "batched": bench_batched}
