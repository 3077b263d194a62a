"""Visual prompt tuning (VPT, Jia et al., ECCV 2022), deep variant, as LIFT (Shi et al., ICML 2024) uses it.

The paper's §4.1 states that its parameter-imbalance analysis holds for two parameter-efficient
fine-tuning methods, AdaptFormer (:mod:`ltlib.adapters`) and VPT. Deep VPT gives every transformer
block of the frozen image tower its own ``length`` learnable tokens: before block i runs, the tokens
that block i-1 produced from its prompts are discarded and block i's prompts take their place, so
the CLS token attends over ``[CLS, prompts_i, patches]`` at every depth. The last block's prompt
outputs are dropped before ``ln_post`` and the CLS read-out (:func:`remove_prompts`).

LIFT's choices kept here: 10 tokens per block when no length is given (a constant, not a function
of the number of classes, unlike AdaptFormer's bottleneck), prompts in every block, no positional
embedding on the prompts, and a uniform initialisation with the Xavier-style bound of
:func:`vpt_init_bound`. LIFT appends the prompts after the patch tokens; this module places them
right after the CLS token, as the VPT paper draws it. Without an attention mask a block treats its
tokens as a set (positions enter once, before the first block), so the two layouts give the same
CLS feature up to floating-point summation order (``tests/test_vpt.py`` checks it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from open_clip.transformer import ResidualAttentionBlock
from torch import nn

from .errors import ConfigError

VPT_LENGTH = 10  # LIFT's prompt length when none is configured (its vpt_len default)


def vpt_init_bound(patch_size: int | tuple[int, int], width: int) -> float:
    """Half-width ``sqrt(6 / (3·p_h·p_w + width))`` of the prompts' uniform initialisation (VPT, LIFT).

    The Xavier-uniform bound of a map from one RGB patch (3·p_h·p_w inputs) to the token width.

    Args:
        patch_size: the ViT's patch side p, or (p_h, p_w).
        width: token width D (768 for ViT-B/16).
    Returns:
        the bound; exactly 1/16 for ViT-B/16 (p = 16, D = 768).
    """
    height, side = (patch_size, patch_size) if isinstance(patch_size, int) else patch_size
    if height < 1 or side < 1 or width < 1:
        raise ConfigError(f"vpt_init_bound needs a positive patch size and width, got {patch_size}, {width}")
    return math.sqrt(6.0 / (3 * height * side + width))


class VPT(nn.Module):
    """One block's learnable prompt tokens ``P [length, dim]``, drawn from ``U(-bound, bound)``.

    Args:
        length: number of prompt tokens (LIFT: :data:`VPT_LENGTH`).
        dim: token width of the block.
        bound: half-width of the uniform initialisation (:func:`vpt_init_bound`).
        generator: random source of the initialisation (explicit seeds).
    """

    def __init__(self, length: int, dim: int, bound: float, generator: torch.Generator | None = None) -> None:
        super().__init__()
        if length < 1 or dim < 1 or not bound > 0:
            raise ConfigError(f"VPT needs length >= 1, dim >= 1 and bound > 0, got length={length}, "
                              f"dim={dim}, bound={bound}")
        self.prompts = nn.Parameter(torch.empty(length, dim))
        with torch.no_grad():
            self.prompts.uniform_(-bound, bound, generator=generator)

    @property
    def length(self) -> int:
        return int(self.prompts.shape[0])

    def forward(self, tokens: torch.Tensor, num_prefix: int, replaced: int, seq_dim: int = 1) -> torch.Tensor:
        """Put this block's prompts right after the prefix, discarding the ``replaced`` tokens there.

        Args:
            tokens: ``[B, N, dim]`` (``seq_dim=1``) or ``[N, B, dim]`` (``seq_dim=0``), laid out as
                ``[prefix (num_prefix), previous prompt outputs (replaced), patches]``.
            num_prefix: tokens before the prompts (1: CLS).
            replaced: number of previous prompt outputs to drop (0 before the first block).
            seq_dim: the sequence axis, 1 for batch-first blocks, 0 for sequence-first ones.
        Returns:
            tokens with ``N - replaced + length`` entries on ``seq_dim``.
        """
        total = tokens.shape[seq_dim]
        if total < num_prefix + replaced:
            raise ConfigError(f"VPT: {total} tokens cannot hold {num_prefix} prefix and {replaced} prompt tokens")
        shape = list(tokens.shape)
        shape[seq_dim] = self.length
        prompts = self.prompts.to(tokens.dtype).unsqueeze(1 - seq_dim).expand(shape)
        prefix = tokens.narrow(seq_dim, 0, num_prefix)
        rest = tokens.narrow(seq_dim, num_prefix + replaced, total - num_prefix - replaced)
        return torch.cat([prefix, prompts, rest], dim=seq_dim)


def build_vpts(num_layers: int, dim: int, length: int = VPT_LENGTH, patch_size: int | tuple[int, int] = 16,
               seed: int = 0) -> nn.ModuleList:
    """Deep VPT: one :class:`VPT` per transformer block (LIFT's ``vpt_deep`` over every block).

    Args:
        num_layers: number of blocks L.
        dim: token width D.
        length: prompt tokens per block (10 in LIFT).
        patch_size: the ViT's patch size, which sets the initialisation bound.
        seed: seeds one generator drawn block after block, so the prompts are reproducible.
    Returns:
        ``nn.ModuleList`` of L prompt modules (``L · length · D`` parameters), index i for block i.
    """
    generator = torch.Generator().manual_seed(seed)
    bound = vpt_init_bound(patch_size, dim)
    return nn.ModuleList(VPT(length, dim, bound, generator) for _ in range(num_layers))


class _PromptedForward:
    """A block's forward that first swaps in its own prompts; installed by ``adapters_attached``.

    Holds the prompts by plain reference (registered only in the classifier that owns them) and
    calls the block class's own forward, so the block's submodules and hooks run as usual.
    """

    def __init__(self, block: ResidualAttentionBlock, vpt: VPT, num_prefix: int, replaced: int) -> None:
        self.block, self.vpt = block, vpt
        self.num_prefix, self.replaced = num_prefix, replaced

    def __call__(self, q_x: torch.Tensor, k_x: torch.Tensor | None = None, v_x: torch.Tensor | None = None,
                 attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        if k_x is not None or v_x is not None or attn_mask is not None:
            raise ConfigError("VPT blocks are unmasked self-attention blocks: k_x, v_x and attn_mask must be None")
        seq_dim = 1 if self.block.attn.batch_first else 0
        tokens = self.vpt(q_x, self.num_prefix, self.replaced, seq_dim)
        return type(self.block).forward(self.block, tokens)


def prompted_forwards(blocks: Sequence[ResidualAttentionBlock], vpts: Sequence[VPT],
                      num_prefix: int) -> list[Callable[..., torch.Tensor]]:
    """Deep replacement: block i drops block i-1's prompt outputs and inserts its own prompts.

    Args:
        blocks: the image tower's blocks, in order.
        vpts: one :class:`VPT` per block.
        num_prefix: tokens before the prompts (1: CLS).
    Returns:
        one forward per block, to install as the block's ``forward`` for one call.
    """
    replaced = [0] + [vpt.length for vpt in vpts[:-1]]
    return [_PromptedForward(block, vpt, num_prefix, r) for block, vpt, r in zip(blocks, vpts, replaced)]


def remove_prompts(tokens: torch.Tensor, adapters: Sequence[nn.Module] | None, num_prefix: int) -> torch.Tensor:
    """Drop the last block's prompt outputs from the image tower's output, before ``ln_post``.

    Args:
        tokens: ``[B, N, dim]`` batch first (the layout ``Transformer.forward`` returns).
        adapters: the modules the blocks ran with; a no-op unless they are :class:`VPT`.
        num_prefix: tokens before the prompts (1: CLS).
    Returns:
        ``[B, N - length, dim]``: the prefix and the patch tokens.
    """
    if not adapters or not isinstance(adapters[-1], VPT):
        return tokens
    length = adapters[-1].length
    return torch.cat([tokens[:, :num_prefix], tokens[:, num_prefix + length:]], dim=1)
