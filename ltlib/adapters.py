"""AdaptFormer as LIFT implements it (book: Method, 'AdaptFormer'): a bottleneck adapter parallel to each ViT
block's MLP.

:func:`adapters_attached` also runs the blocks with deep visual prompts (:mod:`ltlib.prompts`), the
paper's other parameter-efficient method (§4.1)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from open_clip.transformer import ResidualAttentionBlock
from torch import nn

from .errors import ConfigError
from .prompts import VPT, prompted_forwards


def adaptformer_dim(num_classes: int, num_layers: int = 12) -> int:
    """LIFT's automatic bottleneck width ``r = 2 ** max(0, floor(log2(C / (2 L))))`` (book: Method, 'AdaptFormer').

    Computed in integers, so powers of two on the boundary are exact.

    Args:
        num_classes: C, the number of downstream classes.
        num_layers: L, the number of adapted transformer blocks (12 for ViT-B/16).
    Returns:
        r: 32 for C=1000, 8 for C=365, 256 for C=8142, 4 for C=100 (all with L=12).
    """
    if num_classes < 1:
        raise ConfigError(f"num_classes must be >= 1, got {num_classes}")
    if num_layers < 1:
        raise ConfigError(f"num_layers must be >= 1, got {num_layers}")
    # floor(log2(x)) of a rational x >= 1 equals that of floor(x), i.e. its bit length minus one.
    return 2 ** max(0, (num_classes // (2 * num_layers)).bit_length() - 1)


class AdaptFormer(nn.Module):
    """``AF(h) = s · Up(ReLU(Down(LN(h))))`` with LIFT's initialisation (book: Method, 'AdaptFormer').

    ``Down`` gets ``kaiming_normal_(a=√5)`` (std ``1/(√3·√dim)``, 1/48 at dim 768) and a zero bias;
    ``Up`` is all zeros, so ``AF ≡ 0`` at initialisation and the adapted network equals the frozen one.
    The learnable scalar ``scale`` (s, initialised to 1) multiplies the up-projection's bias too.
    Parameters: ``2·dim + (dim·r + r) + (r·dim + dim) + 1 = 3·dim + 1 + (2·dim + 1)·r``.

    Args:
        dim: width of the block's residual stream (768 for ViT-B/16).
        bottleneck: r, the hidden width (see :func:`adaptformer_dim`).
        generator: random source of the down-projection init (explicit seeds, CONTRIBUTING.md).
    """

    def __init__(self, dim: int, bottleneck: int, generator: torch.Generator | None = None) -> None:
        super().__init__()
        if dim < 1 or bottleneck < 1:
            raise ConfigError(f"AdaptFormer needs dim >= 1 and bottleneck >= 1, "
                              f"got dim={dim}, bottleneck={bottleneck}")
        self.ln = nn.LayerNorm(dim, eps=1e-5)
        self.down_proj = nn.Linear(dim, bottleneck)
        self.up_proj = nn.Linear(bottleneck, dim)
        self.scale = nn.Parameter(torch.ones(()))
        with torch.no_grad():
            nn.init.kaiming_normal_(self.down_proj.weight, a=math.sqrt(5), generator=generator)
            nn.init.zeros_(self.down_proj.bias)
            nn.init.zeros_(self.up_proj.weight)
            nn.init.zeros_(self.up_proj.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """Adapter branch.

        Args:
            hidden: h [B, N, dim], the block's post-attention residual stream ``x + Attn(LN1(x))``.
        Returns:
            AF(h) [B, N, dim].
        """
        return self.scale * self.up_proj(F.relu(self.down_proj(self.ln(hidden))))


def build_adaptformers(num_layers: int, dim: int, bottleneck: int, seed: int = 0) -> nn.ModuleList:
    """One :class:`AdaptFormer` per transformer block (LIFT: every block; book: Method, 'AdaptFormer').

    Args:
        num_layers: number of blocks L.
        dim: residual width of the blocks.
        bottleneck: r for every block.
        seed: seeds one generator drawn block after block, so the adapters are reproducible.
    Returns:
        ``nn.ModuleList`` of L adapters, index i for block i.
    """
    generator = torch.Generator().manual_seed(seed)
    return nn.ModuleList(AdaptFormer(dim, bottleneck, generator) for _ in range(num_layers))


def adapted_block_forward(block: ResidualAttentionBlock, x: torch.Tensor, adapter: nn.Module,
                          attn_mask: torch.Tensor | None = None) -> torch.Tensor:
    """One ViT block with the adapter parallel to its MLP, on the post-attention stream (book: Method, 'AdaptFormer').

    ``h = x + Attn(LN1(x))``; ``out = h + MLP(LN2(h)) + AF(h)``. The block's own submodules are used
    (and their hooks fire); open_clip's layer-scale modules are kept (identity for CLIP).

    Args:
        block: an open_clip ``ResidualAttentionBlock`` (self-attention, batch first).
        x: tokens [B, N, dim].
        adapter: maps h [B, N, dim] to [B, N, dim].
        attn_mask: optional attention mask (None for image towers).
    Returns:
        tokens [B, N, dim].
    """
    hidden = x + block.ls_1(block.attention(q_x=block.ln_1(x), attn_mask=attn_mask))
    return hidden + block.ls_2(block.mlp(block.ln_2(hidden))) + adapter(hidden)


class _AdaptedForward:
    """A block's forward with its adapter, installed on the block instance by :func:`adapters_attached`.

    Holds the adapter by plain reference, so the adapter stays registered only where its owner
    (the classifier) registered it: no duplicate state-dict entries, and ``.to()`` / DDP see it once.
    """

    def __init__(self, block: ResidualAttentionBlock, adapter: nn.Module) -> None:
        self.block = block
        self.adapter = adapter

    def __call__(self, q_x: torch.Tensor, k_x: torch.Tensor | None = None, v_x: torch.Tensor | None = None,
                 attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        if k_x is not None or v_x is not None:
            raise ConfigError("AdaptFormer blocks are self-attention blocks: k_x and v_x must be None")
        return adapted_block_forward(self.block, q_x, self.adapter, attn_mask)


@contextmanager
def adapters_attached(blocks: Sequence[nn.Module], adapters: Sequence[nn.Module] | None,
                      num_prefix_tokens: int = 1) -> Iterator[None]:
    """Run ``blocks`` with ``adapters`` (block i with adapter i) inside the ``with`` body only.

    The patch is scoped to one call on purpose: a backbone shared by a zero-shot classifier and one
    or more fine-tuned models stays the pristine pre-trained network outside each model's forward.
    ``adapters=None`` is a no-op. Gradient checkpointing does not mix with this scoping (its
    backward-time recomputation runs after the body), so ``Backbone.image_features`` refuses the two together.

    Args:
        blocks: the image tower's residual blocks (open_clip ``ResidualAttentionBlock``).
        adapters: one module per block (all AdaptFormer-like, or all :class:`~ltlib.prompts.VPT`), or None.
        num_prefix_tokens: tokens before the patches (1: CLS); VPT inserts its prompts after them.
    Raises:
        ConfigError: length mismatch, unsupported block type, mixed prompts and adapters, or blocks
            already adapted (nesting).
    """
    if adapters is None:
        yield
        return
    _check_attachable(blocks, adapters)
    forwards = _block_forwards(blocks, adapters, num_prefix_tokens)
    try:
        for block, forward in zip(blocks, forwards):
            block.forward = forward
        yield
    finally:
        for block in blocks:
            vars(block).pop("forward", None)


def _block_forwards(blocks: Sequence[nn.Module], adapters: Sequence[nn.Module], num_prefix_tokens: int) -> list:
    """One replacement forward per block: deep prompts when every adapter is a VPT, else AdaptFormer-style."""
    prompts = [isinstance(adapter, VPT) for adapter in adapters]
    if all(prompts):
        return prompted_forwards(blocks, adapters, num_prefix_tokens)
    if any(prompts):
        raise ConfigError("adapters: VPT prompts and other adapters cannot be mixed in one image tower")
    return [_AdaptedForward(block, adapter) for block, adapter in zip(blocks, adapters)]


def _check_attachable(blocks: Sequence[nn.Module], adapters: Sequence[nn.Module]) -> None:
    if len(adapters) != len(blocks):
        raise ConfigError(f"adapters: got {len(adapters)} adapters for {len(blocks)} transformer blocks; "
                          "AdaptFormer and VPT need exactly one per block")
    for index, block in enumerate(blocks):
        if not isinstance(block, ResidualAttentionBlock):
            raise ConfigError(f"block {index} is a {type(block).__name__}; adapters support open_clip's "
                              "ResidualAttentionBlock only")
        if "forward" in vars(block):
            raise ConfigError(f"block {index} already runs with adapters (nested adapters_attached)")
