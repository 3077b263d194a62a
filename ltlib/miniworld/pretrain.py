"""Contrastive pre-training of tiny open_clip CLIPs on a mini-world corpus (book: Mini world, item 5).

The model is a genuine ``open_clip.model.CLIP`` (ViT image tower, causal text tower, the real BPE
tokenizer) trained with ``open_clip.ClipLoss``; the result plugs into ``ltlib.backbones`` through
:func:`ltlib.backbones.register_arch` and a saved state dict.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

from ..errors import ConfigError
from .config import ArchitectureConfig, PretrainConfig
from .corpora import Corpus
from ..parallel import torch_threads


def open_clip_config(arch: ArchitectureConfig, image_size: int) -> dict[str, Any]:
    """The open_clip model config (the JSON a registered architecture is made of).

    Args:
        arch: tower sizes; image_size: S (the world's images are S × S).
    Returns:
        ``{"embed_dim", "vision_cfg", "text_cfg"}`` for ``open_clip.model.CLIP(**cfg)`` or
        :func:`ltlib.backbones.register_arch`.
    """
    if image_size % arch.patch_size:
        raise ConfigError(f"architecture.patch_size={arch.patch_size} must divide image_size={image_size}")
    vision = dict(image_size=image_size, patch_size=arch.patch_size, width=arch.vision_width,
                  layers=arch.vision_layers, head_width=arch.vision_head_width, mlp_ratio=arch.mlp_ratio)
    text = dict(context_length=arch.context_length, vocab_size=49408, width=arch.text_width,
                heads=arch.text_heads, layers=arch.text_layers, mlp_ratio=arch.mlp_ratio)
    return {"embed_dim": arch.embed_dim, "vision_cfg": vision, "text_cfg": text}


def build_clip(model_config: dict[str, Any], seed: int) -> open_clip.model.CLIP:
    """A randomly initialised CLIP, seeded without touching the global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return open_clip.model.CLIP(**model_config)


def lr_at_step(step: int, total: int, base_lr: float, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 0 at ``total`` (0-based ``step``)."""
    if step < warmup:
        return base_lr * (step + 1) / warmup
    progress = (step - warmup) / max(total - warmup, 1)
    return 0.5 * base_lr * (1.0 + math.cos(math.pi * progress))


def normalise(images: torch.Tensor) -> torch.Tensor:
    """uint8 [B,3,S,S] → float32 normalised with CLIP's mean/std (what the backbone expects)."""
    mean = torch.tensor(OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(OPENAI_DATASET_STD).view(1, 3, 1, 1)
    return (images.float() / 255.0 - mean) / std


@dataclass(frozen=True)
class PretrainLog:
    """What a pre-training run did: steps, wall and CPU time, loss curve (mean per epoch), final logit scale.

    With one thread the CPU time is what the run costs on an idle core; the wall time also counts the
    time other processes held the CPU.
    """

    steps: int
    seconds: float
    cpu_seconds: float
    epoch_loss: tuple[float, ...]
    logit_scale: float


# The pre-training objectives (the GLA-regime study of the book asks under which one GLA's estimate sees π):
#   contrastive        open_clip's symmetric InfoNCE over the batch's image-caption pairs (the default);
#   contrastive_masked the same, with every other pair of the same class removed from the negatives;
#   supervised         cross-entropy of each image against the text embeddings of all K class prompts
#                      (the corpus's captions are replaced by one prompt per class, caption index = label).
OBJECTIVES = ("contrastive", "contrastive_masked", "supervised")


def pretrain(corpus: Corpus, model_config: dict[str, Any], config: PretrainConfig,
             progress: bool = False) -> tuple[open_clip.model.CLIP, PretrainLog]:
    """Train a CLIP contrastively on ``corpus``; deterministic given the corpus and ``config``.

    Each step takes a full batch of B image–caption pairs (seeded permutation per epoch); the text
    tower encodes each distinct caption of the batch once. Loss: ``open_clip.ClipLoss`` (symmetric
    InfoNCE); the logit scale is clamped to ≤ 100 after each step, as open_clip does. Runs with
    ``config.threads`` torch threads (``ltlib.parallel.torch_threads``).

    Args:
        corpus: images, captions; model_config: :func:`open_clip_config`; config: optimisation.
        progress: print one line per epoch.
    Returns:
        (the trained model in eval mode, its :class:`PretrainLog`).
    """
    if config.threads < 1:
        raise ConfigError(f"pretrain.threads must be >= 1, got {config.threads}")
    if config.objective not in OBJECTIVES:
        raise ConfigError(f"pretrain.objective must be one of {list(OBJECTIVES)}, got {config.objective!r}")
    with torch_threads(config.threads):
        return _pretrain(corpus, model_config, config, progress)


def _report_epoch(done: int, epochs: int, loss: float, elapsed: float) -> None:
    """One line per epoch with the time left, on the process's real stderr: inside a notebook kernel that is
    the terminal running the book, not the notebook's output."""
    eta = elapsed / done * (epochs - done)
    print(f"[pretrain pid {os.getpid()}] epoch {done}/{epochs}: loss {loss:.3f}, {elapsed:.0f} s elapsed, "
          f"about {eta:.0f} s left", file=sys.__stderr__ or sys.stderr, flush=True)


def _pretrain(corpus: Corpus, model_config: dict[str, Any], config: PretrainConfig,
              progress: bool) -> tuple[open_clip.model.CLIP, PretrainLog]:
    """The training loop of :func:`pretrain`, run under the thread setting."""
    steps_per_epoch = len(corpus) // config.batch_size
    if steps_per_epoch == 0:
        raise ConfigError(f"pretrain.batch_size={config.batch_size} exceeds the corpus size {len(corpus)}")
    model = build_clip(model_config, config.seed).train()
    context_length = model_config["text_cfg"]["context_length"]
    tokens = open_clip.SimpleTokenizer(context_length=context_length)(list(corpus.captions))  # [U, L]
    full_embedding = model.token_embedding
    model.token_embedding = CompactTokenEmbedding(full_embedding, torch.unique(tokens))
    optimizer = torch.optim.AdamW(param_groups(model, config.weight_decay), lr=config.lr, betas=(0.9, 0.98),
                                  eps=1e-6, fused=True)
    total = config.epochs * steps_per_epoch
    warmup = max(1, round(config.warmup_fraction * total))
    loss_fn, rng, epoch_loss = open_clip.ClipLoss(), np.random.default_rng(config.seed), []
    start, cpu_start = time.perf_counter(), time.process_time()
    for epoch in range(config.epochs):
        batches = rng.permutation(len(corpus))[:steps_per_epoch * config.batch_size].reshape(steps_per_epoch, -1)
        losses = []
        for i, batch in enumerate(batches):
            lr = lr_at_step(epoch * steps_per_epoch + i, total, config.lr, warmup)
            losses.append(_step(model, corpus, tokens, batch, optimizer, loss_fn, lr, config.objective))
        epoch_loss.append(float(np.mean(losses)))
        if progress:
            _report_epoch(epoch + 1, config.epochs, epoch_loss[-1], time.perf_counter() - start)
    model.token_embedding.write_back(full_embedding)
    model.token_embedding = full_embedding
    log = PretrainLog(total, time.perf_counter() - start, time.process_time() - cpu_start, tuple(epoch_loss),
                      float(model.logit_scale.detach().exp()))
    return model.eval(), log


class CompactTokenEmbedding(torch.nn.Module):
    """Train only the rows of CLIP's 49,408-token embedding that the corpus uses.

    The full table's dense gradient (zeroed and updated every step) cost a quarter of a step on the
    CPU. This module holds the used rows; :meth:`write_back` copies them into the full table. Rows of
    tokens absent from the corpus keep their initialisation (full-table AdamW would only have decayed
    them); every used row receives exactly the updates it would have received in the full table.

    Args:
        full: the model's ``token_embedding``; used: sorted unique token ids (int64 [V]).
    """

    def __init__(self, full: torch.nn.Embedding, used: torch.Tensor) -> None:
        super().__init__()
        self.used = used
        lookup = torch.full((full.num_embeddings,), -1, dtype=torch.long)
        lookup[used] = torch.arange(len(used))
        self.register_buffer("lookup", lookup, persistent=False)
        self.weight = torch.nn.Parameter(full.weight.detach()[used].clone())

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Embeddings [..., width] of token ids [...] (all of which must be in ``used``)."""
        return torch.nn.functional.embedding(self.lookup[ids], self.weight)

    @torch.no_grad()
    def write_back(self, full: torch.nn.Embedding) -> None:
        """Copy the trained rows into ``full``."""
        full.weight[self.used] = self.weight


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW parameter groups by open_clip's rule: decay weight matrices and embedding tables, not
    gains, biases (1-d parameters) or the logit scale.

    Args:
        model: the CLIP; weight_decay: the decay of the first group.
    Returns:
        ``[{"params": decayed, "weight_decay": weight_decay}, {"params": the rest, "weight_decay": 0}]``.
    """
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        exclude = p.ndim < 2 or "bn" in name or "ln" in name or "bias" in name or "logit_scale" in name
        (no_decay if exclude else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _step(model: open_clip.model.CLIP, corpus: Corpus, tokens: torch.Tensor, batch: np.ndarray,
          optimizer: torch.optim.Optimizer, loss_fn: torch.nn.Module, lr: float,
          objective: str = "contrastive") -> float:
    """One optimizer step on the pairs ``batch`` with ``objective`` (:data:`OBJECTIVES`); returns the loss."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    image_features = model.encode_image(normalise(corpus.images[batch]), normalize=True)
    if objective == "supervised":
        loss = _supervised_loss(model, image_features, tokens, corpus.labels[batch])
    else:
        distinct, inverse = np.unique(corpus.caption_index[batch], return_inverse=True)
        text_features = model.encode_text(tokens[distinct], normalize=True)[torch.from_numpy(inverse)]
        if objective == "contrastive_masked":
            loss = masked_clip_loss(image_features, text_features, model.logit_scale.exp(), corpus.labels[batch])
        else:
            loss = loss_fn(image_features, text_features, model.logit_scale.exp())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        model.logit_scale.clamp_(0, math.log(100))
    return float(loss.detach())


def masked_clip_loss(image_features: torch.Tensor, text_features: torch.Tensor, scale: torch.Tensor,
                     labels: np.ndarray) -> torch.Tensor:
    """Symmetric InfoNCE in which the other pairs of an image's own class are not negatives (their logits
    are −∞ in both directions); with distinct labels it equals ``open_clip.ClipLoss``."""
    logits = scale * image_features @ text_features.T
    same = torch.from_numpy(labels[:, None] == labels[None, :])
    logits = logits.masked_fill(same & ~torch.eye(len(labels), dtype=torch.bool), float("-inf"))
    target = torch.arange(len(labels))
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def _supervised_loss(model: open_clip.model.CLIP, image_features: torch.Tensor, tokens: torch.Tensor,
                     labels: np.ndarray) -> torch.Tensor:
    """Cross-entropy of the images against all K class prompts (``tokens`` row k is class k's prompt)."""
    class_features = model.encode_text(tokens, normalize=True)
    logits = model.logit_scale.exp() * image_features @ class_features.T
    return F.cross_entropy(logits, torch.from_numpy(labels))
