"""K small fine-tuning runs at once: the trainable parameters of K LIFT classifiers stacked along a new first
axis and trained with ``torch.func.functional_call`` under ``vmap`` (one batched matmul per layer instead
of K small ones), beside the same K runs one after another (the ``batched`` benchmark).

The K models share one frozen backbone and differ in their adapters and head (e.g. K fine-tuning seeds).
The optimiser is the recipe's SGD (momentum, weight decay on every trainable tensor, LIFT's per-epoch
cosine learning rate, ``ltlib.engine.lr_at_epoch``) written out over the stacked tensors: its update is
elementwise, so applying it to a stack of K parameters is applying it to each of them. What batching can
change is only the order of float32 additions inside the batched matmuls (see ``tests/test_batched.py``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch.func import functional_call, stack_module_state

from ..engine import BatchDataset, epoch_batches, lr_at_epoch, total_steps
from ..errors import ConfigError
from ..losses import build_loss
from ..model import LTClassifier, build_lift_model
from ..recipes import TrainConfig
from ..seeding import mix_seed


@dataclass
class StackedState:
    """The trainable parameters of K models stacked on axis 0 (name → [K, ...]) and their momentum buffers."""

    params: dict[str, torch.Tensor]
    momentum: dict[str, torch.Tensor] | None = None

    @property
    def num_models(self) -> int:
        return int(next(iter(self.params.values())).shape[0])


def stack_trainable(models: Sequence[LTClassifier]) -> StackedState:
    """Stack the adapters' and heads' parameters of ``models`` (one shared frozen backbone).

    Raises:
        ConfigError: no models, or models on different backbone objects.
    """
    if not models or any(m.backbone is not models[0].backbone for m in models):
        raise ConfigError("models: need at least one classifier, all on the same backbone object")
    params, _ = stack_module_state([_TrainableView(m) for m in models])
    return StackedState({k: v.detach().clone() for k, v in params.items()})


class _TrainableView(torch.nn.Module):
    """Registers only a classifier's trainable parameters, under their names in the classifier."""

    def __init__(self, model: LTClassifier) -> None:
        super().__init__()
        for name, p in model.named_parameters():
            if name.startswith(model.trainable_prefixes):
                self.register_parameter(name.replace(".", "__"), p)

    def named_parameters(self, *args, **kwargs):  # names as in the classifier (dots restored)
        for name, p in super().named_parameters(*args, **kwargs):
            yield name.replace("__", "."), p


def unstack_into(state: StackedState, models: Sequence[LTClassifier]) -> None:
    """Copy model k's slice of ``state`` into ``models[k]`` (e.g. to evaluate or save it)."""
    with torch.no_grad():
        for k, model in enumerate(models):
            own = dict(model.named_parameters())
            for name, value in state.params.items():
                own[name].copy_(value[k])


def stacked_logits(base: LTClassifier, params: dict[str, torch.Tensor], images: torch.Tensor) -> torch.Tensor:
    """Logits of the K models: ``images`` [K, B, 3, H, W] (model k sees its own batch) → [K, B, C].

    Args:
        base: any of the K classifiers (its frozen backbone and structure are used, its own trainable
            parameters are not).
        params: name → [K, ...] trainable parameters.
    """
    def one(p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return functional_call(base, p, (x,))

    return torch.vmap(one, in_dims=(0, 0))(params, images)


def sgd_step(state: StackedState, grads: dict[str, torch.Tensor], lr: float, momentum: float,
             weight_decay: float) -> None:
    """``torch.optim.SGD``'s update (dampening 0, no Nesterov) applied in place to the stacked tensors:
    ``g ← g + wd·θ; b ← g`` (first step) or ``b ← μ·b + g``; ``θ ← θ − lr·b`` (book: Method, 'Optimisation')."""
    first = state.momentum is None
    if first:
        state.momentum = {}
    with torch.no_grad():
        for name, param in state.params.items():
            grad = grads[name].add(param, alpha=weight_decay) if weight_decay else grads[name]
            if first:
                state.momentum[name] = torch.clone(grad).detach()
            else:
                state.momentum[name].mul_(momentum).add_(grad)
            param.add_(state.momentum[name], alpha=-lr)


def batched_train_step(base: LTClassifier, state: StackedState, loss_fn: torch.nn.Module, images: torch.Tensor,
                       targets: torch.Tensor, cfg: TrainConfig, epoch: int) -> torch.Tensor:
    """One optimizer step of all K models on their own batches; returns the K mean losses [K].

    Args:
        images: [K, B, 3, H, W]; targets: [K, B]; cfg: lr, momentum, weight decay and epochs (the
            learning rate of 0-based ``epoch`` is ``lr_at_epoch(epoch, cfg.epochs, cfg.lr)``).
    """
    params = {k: v.detach().requires_grad_(True) for k, v in state.params.items()}
    with _no_attention_fastpath():
        logits = stacked_logits(base, params, images)
    losses = torch.vmap(loss_fn, in_dims=(0, 0))(logits, targets)
    grads = torch.autograd.grad(losses.sum(), list(params.values()))
    state.params = {k: v.detach() for k, v in params.items()}
    sgd_step(state, dict(zip(params, grads)), lr_at_epoch(epoch, cfg.epochs, cfg.lr), cfg.momentum,
             cfg.weight_decay)
    return losses.detach()


@contextmanager
def _no_attention_fastpath() -> Iterator[None]:
    """``nn.MultiheadAttention``'s inference fast path has no derivative; under ``vmap`` the frozen tower's
    attention cannot see that its input requires grad and would take it, so it is switched off. The CPU
    flash-attention kernel has no batching rule (``vmap`` would loop over the K models); the math kernel
    is plain batched matmuls."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    enabled = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with sdpa_kernel([SDPBackend.MATH]):
            yield
    finally:
        torch.backends.mha.set_fastpath_enabled(enabled)


def sequential_train_step(model: LTClassifier, optimizer: torch.optim.Optimizer, loss_fn: torch.nn.Module,
                          images: torch.Tensor, targets: torch.Tensor, cfg: TrainConfig, epoch: int) -> float:
    """The same step for one model, as ``ltlib.engine`` takes it (module forward, ``torch.optim.SGD``)."""
    for group in optimizer.param_groups:
        group["lr"] = lr_at_epoch(epoch, cfg.epochs, cfg.lr)
    optimizer.zero_grad(set_to_none=True)
    loss = loss_fn(model(images), targets)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def seeded_batches(dataset: BatchDataset, seeds: Sequence[int], cfg: TrainConfig,
                   epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The batches ``ltlib.engine.train`` gives the run of seed ``seeds[k]`` in ``epoch`` (one process), stacked.

    Yields:
        (images [K, B, 3, H, W], targets [K, B]) per step: run k's order and augmentation (its seed's).
    """
    plans = [epoch_batches(len(dataset), cfg.batch_size, seed, epoch) for seed in seeds]
    for step in zip(*plans):
        pairs = [dataset.get_batch(indices, mix_seed(seed, epoch)) for indices, seed in zip(step, seeds)]
        yield torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])


def train_batched(models: Sequence[LTClassifier], dataset: BatchDataset, loss_fn: torch.nn.Module,
                  cfg: TrainConfig, seeds: Sequence[int]) -> StackedState:
    """Train ``models[k]`` as ``ltlib.engine.train`` would with ``cfg`` and seed ``seeds[k]``, all at once.

    The schedule is the recipe's (``cfg.epochs``, capped by ``cfg.max_steps``); the trained parameters are
    copied back into ``models``. No checkpoints or logs: a benchmark and test path, not a run.
    """
    state, steps, done = stack_trainable(models), total_steps(len(dataset), cfg), 0
    for epoch in range(cfg.epochs):
        for images, targets in seeded_batches(dataset, seeds, cfg, epoch):
            if done == steps:
                break
            batched_train_step(models[0], state, loss_fn, images, targets, cfg, epoch)
            done += 1
    unstack_into(state, models)
    return state


# --------------------------------------------------------------------------- the benchmark
def mini_world_backbone(world: str = "default", seed: int = 0):
    """A random-init backbone of ``world``'s architecture (``ltlib.miniworld`` config; no pre-training)."""
    from ..backbones import Backbone, BackboneSpec
    from ..miniworld import load_world_config
    from ..miniworld.pretrain import build_clip, open_clip_config

    config = load_world_config(world)
    clip = build_clip(open_clip_config(config.architecture, config.render.image_size), seed)
    return Backbone.from_clip(clip, BackboneSpec(f"{world}-random", "mini-random")), config


def lift_models(backbone, num_classes: int, seeds: Sequence[int], cfg: TrainConfig) -> list[LTClassifier]:
    """One LIFT classifier per seed on ``backbone`` (AdaptFormer by LIFT's width rule, random cosine head)."""
    names = [f"class {j}" for j in range(num_classes)]
    return [build_lift_model(backbone, names, adapter=cfg.adapter, bottleneck=cfg.bottleneck, head_init="random",
                             scale=cfg.cosine_scale, seed=s).train() for s in seeds]


@dataclass(frozen=True)
class Throughput:
    """Images per second of K runs: one after another (as ``ltlib.engine`` trains; and with the batched
    path's attention kernel, to tell batching from the kernel choice) and batched; a step's GFLOPs per image."""

    num_models: int
    sequential: float
    sequential_math: float
    batched: float
    gflops_per_image: float

    @property
    def speedup(self) -> float:
        return self.batched / self.sequential


def measure_throughput(num_models: int, steps: int, batch_size: int, world: str = "default",
                       seed: int = 0) -> Throughput:
    """Time ``steps`` training steps of K = ``num_models`` mini-world LIFT runs both ways (after one
    warm-up step each), on the same random batches."""
    from ..flops import count_gflops

    backbone, config = mini_world_backbone(world, seed)
    cfg = TrainConfig(batch_size=batch_size, adapter="adaptformer")
    num_classes = config.parts.num_part_types * config.parts.group_size
    counts = torch.linspace(300, 3, num_classes).round()
    loss_fn = build_loss("LA", counts)
    size = config.render.image_size
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(steps + 1, num_models, batch_size, 3, size, size, generator=g)
    targets = torch.randint(0, num_classes, (steps + 1, num_models, batch_size), generator=g)
    models = lift_models(backbone, num_classes, range(num_models), cfg)
    optimizers = [torch.optim.SGD(m.trainable_parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                  weight_decay=cfg.weight_decay) for m in models]

    def sequential(t: int) -> None:
        for k, model in enumerate(models):
            sequential_train_step(model, optimizers[k], loss_fn, images[t, k], targets[t, k], cfg, 0)

    def sequential_math(t: int) -> None:
        with _no_attention_fastpath():
            sequential(t)

    state = stack_trainable(models)
    gflops = count_gflops(lambda: sequential_train_step(models[0], optimizers[0], loss_fn, images[0, 0],
                                                        targets[0, 0], cfg, 0)) / batch_size
    seconds = {}
    for name, step in (("sequential", sequential), ("sequential_math", sequential_math),
                       ("batched", lambda t: batched_train_step(models[0], state, loss_fn, images[t], targets[t],
                                                                cfg, 0))):
        step(0)  # warm-up
        start = time.perf_counter()
        for t in range(1, steps + 1):
            step(t)
        seconds[name] = time.perf_counter() - start
    rate = steps * num_models * batch_size
    return Throughput(num_models, rate / seconds["sequential"], rate / seconds["sequential_math"],
                      rate / seconds["batched"], gflops)
