"""Train and evaluate loops (LIFT recipe, book: Method, 'Optimisation'): SGD with a per-epoch cosine learning rate,
gradient accumulation, mixed precision on CUDA, data-parallel training, atomic resumable checkpoints.

Determinism: the order of samples is a pure function of (seed, epoch) and each sample's augmentation a
pure function of (seed, epoch, index). An interrupted run that is resumed therefore sees exactly the
batches and augmentations of an uninterrupted one, and N data-parallel processes see the same global
batches as one process (each takes a contiguous slice of every global batch).
"""

from __future__ import annotations

import contextlib
import math
import random
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Protocol, runtime_checkable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from .cache import SplitOutputs
from .checkpoint import CHECKPOINT_NAME, Position, load_checkpoint, model_fingerprint, save_checkpoint
from .distributed import DistContext, all_reduce_sum, any_rank, gather_rows
from .errors import LtlibError, NonFiniteError
from .phases import phase, phase_part
from .provenance import config_hash, run_record
from .recipes import TrainConfig, recipe_identity
from .seeding import mix_seed as _mix
from .seeding import seed_everything
from .storage import append_jsonl, exclusive_lock


# --------------------------------------------------------------------------- schedule and seeding
def lr_at_epoch(epoch: int, epochs: int, base_lr: float) -> float:
    """Learning rate used during 0-based ``epoch``: CosineAnnealingLR(T_max=epochs) stepped once per
    epoch, no warm-up, eta_min 0 (book: Method, 'Optimisation'): ``0.5 · base_lr · (1 + cos(π · epoch / epochs))``."""
    return 0.5 * base_lr * (1.0 + math.cos(math.pi * epoch / epochs))


def epoch_batches(num_samples: int, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """The global batches of one epoch: a seeded permutation cut into ``batch_size`` chunks, the last
    one possibly shorter (LIFT: shuffle=True, drop_last=False)."""
    order = np.random.default_rng(_mix(seed, epoch, 0x5EED)).permutation(num_samples)
    return [order[i:i + batch_size] for i in range(0, num_samples, batch_size)]


def local_share(batch: np.ndarray, ctx: DistContext) -> tuple[np.ndarray, float]:
    """This process's contiguous slice of a global batch and its loss weight.

    The weight is ``world_size · len(slice) / len(batch)`` so that DDP's gradient average equals the
    mean over the whole global batch. A process whose slice is empty (a last batch smaller than the
    number of processes) takes one sample with weight 0 so that every process still joins the step.
    """
    part = np.array_split(batch, ctx.world_size)[ctx.rank]
    if len(part) == 0:
        return batch[:1], 0.0
    return part, ctx.world_size * len(part) / len(batch)


@runtime_checkable
class BatchDataset(Protocol):
    """A dataset that builds whole batches at once (in-memory tensors, e.g. the mini world).

    ``get_batch(indices, key)`` returns ``(images, targets)`` for ``indices``; random augmentation must
    come from ``ltlib.seeding.sample_uniforms(key, indices, k)`` so each sample's draws depend only on
    (seed, epoch, index), as with :class:`SeededSamples`; ``key`` is None at evaluation (no augmentation).
    """

    def __len__(self) -> int: ...

    def get_batch(self, indices: np.ndarray, key: int | None) -> tuple[torch.Tensor, torch.Tensor]: ...


class SeededSamples(Dataset):
    """Wraps a dataset so each item's random augmentation depends only on (seed, epoch, index)."""

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset, self.seed, self.epoch = dataset, seed, 0

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        with torch.random.fork_rng(devices=[]):
            # Only the CPU generator: torch.manual_seed would also queue a lazy CUDA seeding that
            # captures a stack trace per call (milliseconds per sample).
            torch.random.default_generator.manual_seed(_mix(self.seed, self.epoch, int(index)))
            return self.dataset[index]


# --------------------------------------------------------------------------- precision
def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` → bf16 on CUDA where supported, else fp16 (with a GradScaler); always fp32 on CPU."""
    if device.type != "cuda":
        return "fp32"
    if precision == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return precision


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The autocast context for a resolved precision (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


# --------------------------------------------------------------------------- logging and stopping
class RunLog:
    """JSON-lines run log (main process only): a provenance header, then step and epoch records."""

    def __init__(self, path: Path, ctx: DistContext) -> None:
        self.path, self.enabled = path, ctx.is_main

    def write(self, kind: str, **fields) -> None:
        if self.enabled:
            append_jsonl(self.path, {"kind": kind, "time": time.time(), **fields})


class GracefulStop:
    """Turns SIGINT/SIGTERM into a flag checked between optimizer steps, so the run can checkpoint a
    consistent state and exit instead of dying mid-update (pre-emption, Ctrl-C)."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "GracefulStop":
        if _in_main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum, frame) -> None:
        self.requested = True


def _in_main_thread() -> bool:
    import threading
    return threading.current_thread() is threading.main_thread()


# --------------------------------------------------------------------------- training
@dataclass(frozen=True)
class TrainResult:
    """Outcome of :func:`train`: ``status`` is ``"completed"`` or ``"interrupted"`` (resumable)."""

    status: str
    global_step: int
    total_steps: int
    final_loss: float
    wall_seconds: float
    images_per_second: float


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.SGD:
    """SGD over every parameter that requires grad (adapters + head for LIFT; book: Method, 'Optimisation');
    weight decay applies to all of them, as in LIFT."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters")
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def total_steps(num_samples: int, cfg: TrainConfig) -> int:
    """Optimizer steps of the whole schedule: epochs · ⌈N / batch⌉, capped by ``max_steps``."""
    steps = cfg.epochs * math.ceil(num_samples / cfg.batch_size)
    return steps if cfg.max_steps is None else min(steps, cfg.max_steps)


def train(model: torch.nn.Module, train_set: Dataset, loss_fn: torch.nn.Module, cfg: TrainConfig,
          run_dir: str | Path, ctx: DistContext = DistContext(), *, stop_after_steps: int | None = None,
          progress: bool = True, compile_backend: str | None = None) -> TrainResult:
    """Fine-tune ``model`` on ``train_set`` with ``loss_fn``, resuming from ``run_dir`` if possible.

    Args:
        model: maps images [B,3,H,W] to logits [B,C]; only parameters with ``requires_grad`` train.
        train_set: yields ``(image, label)`` with random augmentation drawn from torch's global RNG.
        loss_fn: ``(logits [B,C], targets [B]) -> scalar`` mean loss (``ltlib.losses``).
        cfg: the recipe; its hash (runtime-only fields left out, ``ltlib.recipes.RUNTIME_FIELDS``) and the
            model's fingerprint guard the checkpoint against resuming with another recipe or model.
        run_dir: holds ``checkpoint.pt`` and ``log.jsonl``.
        ctx: the data-parallel context (``ltlib.distributed.init_distributed``).
        stop_after_steps: simulate an interruption after this many global steps (tests, demos).
        progress: show a tqdm bar (images/s and ETA) on the main process.
        compile_backend: ``torch.compile`` the training forward with this backend (``"inductor"`` on
            a GPU); None runs eagerly. A speed option only: it is not part of the recipe or its hash, so a
            run may be resumed with or without it.
    Returns:
        A :class:`TrainResult`; the trained weights stay in ``model`` and ``checkpoint.pt``.
    Raises:
        NonFiniteError: the loss became NaN or infinite (naming the step); nothing after it is saved.
        ConfigError / CheckpointError: the checkpoint in ``run_dir`` belongs to another recipe or model, or
            is damaged, unsafe or of an older format (naming the file).
        StorageError: another process holds ``run_dir``, or a file cannot be written (full disk).
    """
    with exclusive_lock(run_dir, ".train.lock", enabled=ctx.is_main):
        return _train_locked(model, train_set, loss_fn, cfg, Path(run_dir), ctx, stop_after_steps, progress,
                             compile_backend)


def _train_locked(model, train_set, loss_fn, cfg, run_dir, ctx, stop_after_steps, progress, compile_backend
                  ) -> TrainResult:
    """:func:`train` while holding the run folder's lock (no second process writes the same checkpoint)."""
    seed_everything(cfg.seed, cfg.deterministic)
    model.to(ctx.device).train()
    loss_fn.to(ctx.device)
    optimizer = build_optimizer(model, cfg)
    precision = resolve_precision(cfg.precision, ctx.device)
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
    chash, ckpt = config_hash(recipe_identity(cfg)), run_dir / CHECKPOINT_NAME
    fingerprint = model_fingerprint(model)
    position = load_checkpoint(ckpt, model, optimizer, scaler, chash, fingerprint) if ckpt.is_file() else Position()
    steps = total_steps(len(train_set), cfg)
    log = RunLog(run_dir / "log.jsonl", ctx)
    log.write("start", **run_record(cfg, seed=cfg.seed, world_size=ctx.world_size, precision=precision,
                                    resumed_from=position.__dict__, num_samples=len(train_set)))
    wrapped = _compiled(_wrap_ddp(model, ctx), compile_backend)
    loop = _Loop(wrapped, model, loss_fn, cfg, optimizer, scaler, precision, ctx, log, ckpt, (chash, fingerprint))
    with phase("fine-tuning"):
        return loop.run(SeededSamples(train_set, cfg.seed), position, steps, stop_after_steps, progress)


def _wrap_ddp(model: torch.nn.Module, ctx: DistContext) -> torch.nn.Module:
    if not ctx.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, broadcast_buffers=False)


def _compiled(module: torch.nn.Module, backend: str | None) -> torch.nn.Module:
    # The compiled wrapper shares parameters with ``module`` and forwards attribute access to it
    # (``no_sync`` for DDP), so checkpoints and the optimizer keep using the plain module.
    return module if backend is None else torch.compile(module, backend=backend)


class _Loop:
    """The state of one training run; ``run`` reads top to bottom like the recipe."""

    def __init__(self, wrapped, model, loss_fn, cfg, optimizer, scaler, precision, ctx, log, ckpt, chash):
        self.wrapped, self.model, self.loss_fn, self.cfg = wrapped, model, loss_fn, cfg
        self.optimizer, self.scaler, self.precision, self.ctx = optimizer, scaler, precision, ctx
        self.log, self.ckpt, self.chash = log, ckpt, chash

    def run(self, samples: SeededSamples, position: Position, steps: int, stop_after: int | None,
            progress: bool) -> TrainResult:
        start, images_seen, loss = time.perf_counter(), 0, float("nan")
        bar = tqdm(total=steps, initial=position.global_step, unit="step", dynamic_ncols=True,
                   disable=not (progress and self.ctx.is_main), desc="train")
        with GracefulStop() as stop, bar:
            while position.global_step < steps:
                self._set_lr(position.epoch)
                for images, targets, weight in self._batches(samples, position):
                    with phase_part("forward/backward"):
                        loss = self._step(images, targets, weight)
                    self._check_finite(loss, position.global_step + 1)
                    images_seen += len(targets) * self.ctx.world_size
                    position = Position(position.epoch, position.step_in_epoch + 1, position.global_step + 1)
                    rate = images_seen / max(time.perf_counter() - start, 1e-9)
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.4f}", img_s=f"{rate:.0f}", epoch=position.epoch)
                    self._maybe_log(position, loss, rate)
                    interrupted = any_rank(stop.requested, self.ctx) or (
                        stop_after is not None and position.global_step >= stop_after)
                    if interrupted or position.global_step >= steps:
                        return self._finish(position, steps, loss, start, images_seen, interrupted)
                    if self.cfg.checkpoint_every and position.global_step % self.cfg.checkpoint_every == 0:
                        self._save(position)
                position = Position(position.epoch + 1, 0, position.global_step)
                self._save(position)
                self.log.write("epoch", epoch=position.epoch - 1, loss=loss, global_step=position.global_step)
        return self._finish(position, steps, loss, start, images_seen, False)

    def _set_lr(self, epoch: int) -> None:
        lr = lr_at_epoch(epoch, self.cfg.epochs, self.cfg.lr)
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def _batches(self, samples: SeededSamples, position: Position) -> Iterator:
        samples.epoch = position.epoch
        plan = epoch_batches(len(samples), self.cfg.batch_size, self.cfg.seed, position.epoch)
        shares = [local_share(b, self.ctx) for b in plan[position.step_in_epoch:]]
        if isinstance(samples.dataset, BatchDataset):
            key = _mix(self.cfg.seed, position.epoch)
            for indices, weight in shares:
                with phase_part("data"):
                    batch = samples.dataset.get_batch(indices, key)
                yield (*batch, weight)
            return
        loader = DataLoader(samples, batch_sampler=[s[0].tolist() for s in shares],
                            num_workers=self.cfg.num_workers, pin_memory=self.ctx.device.type == "cuda",
                            worker_init_fn=_worker_init)
        for (images, targets), (_, weight) in zip(_unwrapped(loader), shares):
            yield images, targets, weight

    def _step(self, images: torch.Tensor, targets: torch.Tensor, weight: float) -> float:
        dev = self.ctx.device
        images, targets = images.to(dev, non_blocking=True), targets.to(dev, non_blocking=True)
        chunks = list(zip(images.split(self.cfg.micro_batch_size), targets.split(self.cfg.micro_batch_size)))
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for i, (x, y) in enumerate(chunks):
            sync = i == len(chunks) - 1 or not self.ctx.enabled
            with (contextlib.nullcontext() if sync else self.wrapped.no_sync()), autocast(self.precision, dev):
                loss = self.loss_fn(self.wrapped(x).float(), y)
            scaled = loss * (weight * len(y) / len(targets))
            (self.scaler.scale(scaled) if self.scaler else scaled).backward()
            total += float(loss.detach()) * len(y)
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        return total / len(targets)

    def _check_finite(self, loss: float, step: int) -> None:
        """Stop on a NaN or infinite loss (every process agrees), before it is checkpointed or logged: the
        last checkpoint stays the last finite state and the run is never marked complete."""
        bad = torch.tensor([0.0 if math.isfinite(loss) else 1.0], device=self.ctx.device)
        if self.ctx.enabled:
            bad = all_reduce_sum(bad, self.ctx)
        if float(bad) > 0:
            self.log.write("error", global_step=step, loss=loss, message="non-finite loss")
            raise NonFiniteError(f"{self.ckpt.parent}: the training loss became non-finite ({loss}) at step {step}; "
                                 f"lower lr (now {self.cfg.lr}) or check tau and the data; the run resumes from "
                                 "its last finite checkpoint")

    def _maybe_log(self, position: Position, loss: float, rate: float) -> None:
        if position.global_step % self.cfg.log_every == 0:
            mean = all_reduce_sum(torch.tensor([loss], device=self.ctx.device), self.ctx) / self.ctx.world_size
            self.log.write("step", epoch=position.epoch, global_step=position.global_step, loss=float(mean),
                           lr=self.optimizer.param_groups[0]["lr"], images_per_second=rate)

    def _save(self, position: Position) -> None:
        if self.ctx.is_main:
            save_checkpoint(self.ckpt, self.model, self.optimizer, self.scaler, position, *self.chash)

    def _finish(self, position, steps, loss, start, images_seen, interrupted) -> TrainResult:
        self._save(position)
        wall = time.perf_counter() - start
        result = TrainResult("interrupted" if interrupted else "completed", position.global_step, steps,
                             float(loss), wall, images_seen / max(wall, 1e-9))
        self.log.write("end", **result.__dict__)
        return result


def _unwrapped(loader) -> Iterator:
    """Iterate ``loader``; an ltlib error raised in a worker process (an undecodable image naming its
    manifest line) is re-raised with its own one-line message instead of the worker's traceback."""
    try:
        yield from loader
    except LtlibError as exc:
        lines = str(exc).strip().splitlines()
        if len(lines) > 1 and lines[0].startswith("Caught "):
            raise type(exc)(lines[-1].partition(": ")[2] or lines[-1]) from None
        raise


def _worker_init(worker_id: int) -> None:
    # Per-sample seeding (SeededSamples) makes results independent of the worker count; this only
    # keeps numpy/python RNGs of different workers apart for user transforms that use them.
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


# --------------------------------------------------------------------------- evaluation
@torch.no_grad()
@phase("evaluation")
def evaluate(model: torch.nn.Module, dataset: Dataset, ctx: DistContext = DistContext(), *,
             batch_size: int = 64, num_workers: int = 0, with_features: bool = False,
             precision: str = "fp32", progress: bool = True) -> SplitOutputs:
    """Run ``model`` over ``dataset`` (sharded over processes) and return logits and targets.

    Evaluation runs in fp32 without autocast by default, as LIFT does (book: Method, 'Optimisation'). Items may
    carry a crop axis ([V,3,H,W], five-crop TTE); the model averages raw logits over it
    (book: Method, 'Test-time crops').

    Args:
        model: maps images to logits; with ``with_features`` it must offer
            ``logits_and_features(images) -> (logits [B,C], features [B,D])``.
        dataset: yields ``(image, label)``.
    Returns:
        :class:`ltlib.cache.SplitOutputs` in dataset order, identical on every process.
    """
    model.to(ctx.device).eval()
    shard = np.array_split(np.arange(len(dataset)), ctx.world_size)[ctx.rank]
    if isinstance(dataset, BatchDataset):
        loader = (dataset.get_batch(shard[i:i + batch_size], None) for i in range(0, len(shard), batch_size))
    else:
        loader = DataLoader(Subset(dataset, shard.tolist()), batch_size=batch_size, shuffle=False,
                            num_workers=num_workers, pin_memory=ctx.device.type == "cuda")
    logits, targets, features = [], [], []
    for images, labels in tqdm(_unwrapped(loader), desc="eval", unit="batch", disable=not (progress and ctx.is_main),
                               total=-(-len(shard) // batch_size)):
        images = images.to(ctx.device, non_blocking=True)
        with autocast(resolve_precision(precision, ctx.device), ctx.device):
            if with_features:
                out, feats = model.logits_and_features(images)
                features.append(feats.float())
            else:
                out = model(images)
        logits.append(out.float())
        targets.append(labels.to(ctx.device))
    gathered = [gather_rows(_cat(t, ctx.device), ctx) for t in (logits, targets, features)]
    arrays = [g.cpu().numpy() if g.numel() else None for g in gathered]
    return SplitOutputs(logits=arrays[0], targets=arrays[1].astype(np.int64),
                        features=arrays[2] if with_features else None)


def _cat(parts: list[torch.Tensor], device: torch.device) -> torch.Tensor:
    return torch.cat(parts) if parts else torch.zeros(0, device=device)
