"""A from-scratch CIFAR ResNet-32 (He et al. 2016, §4.2) for the confounder study and the Fig. 9 control.

Three stages of five basic blocks with 16 / 32 / 64 channels, 3×3 convolutions, batch norm, global average
pooling and a linear head: 6·5 + 2 = 32 layers. Shortcuts that change shape use option A of the paper
(stride-2 subsampling and zero-padded channels, no parameters), as the long-tail literature's ResNet-32
(LDAM, LA) does. ``blocks_per_stage`` = n gives the 6n + 2-layer member of the family (n = 1: ResNet-8),
and ``in_channels`` = 4 lets the confounder study feed C as a constant extra input plane.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError

STAGE_WIDTHS = (16, 32, 64)


class BasicBlock(nn.Module):
    """Two 3×3 conv–BN layers with an identity (or option-A) shortcut: ``relu(F(x) + shortcut(x))``."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.stride, self.extra_channels = stride, out_channels - in_channels

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        """Option A: subsample by the stride and zero-pad the new channels (half on each side)."""
        if self.stride == 1 and self.extra_channels == 0:
            return x
        x = x[:, :, ::self.stride, ::self.stride]
        half = self.extra_channels // 2
        return F.pad(x, (0, 0, 0, 0, half, self.extra_channels - half))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet32(nn.Module):
    """CIFAR ResNet-32: images [B,3,S,S] → logits [B,K]; features are the pooled 64-d vector.

    Args:
        num_classes: K.
        blocks_per_stage: 5 gives ResNet-32 (n = 5 in 6n + 2); smaller values give quick variants.
        seed: seeds the (Kaiming) initialisation without touching the global RNG.
        in_channels: input planes (3 for RGB; 4 for RGB plus a constant plane holding C).
    """

    def __init__(self, num_classes: int, blocks_per_stage: int = 5, seed: int = 0, in_channels: int = 3) -> None:
        super().__init__()
        if num_classes < 1 or blocks_per_stage < 1 or in_channels < 1:
            raise ConfigError(f"ResNet32 needs num_classes, blocks_per_stage and in_channels >= 1, "
                              f"got {num_classes}, {blocks_per_stage} and {in_channels}")
        self.depth = 6 * blocks_per_stage + 2
        self.stem = nn.Sequential(nn.Conv2d(in_channels, STAGE_WIDTHS[0], 3, padding=1, bias=False),
                                  nn.BatchNorm2d(STAGE_WIDTHS[0]), nn.ReLU())
        blocks, channels = [], STAGE_WIDTHS[0]
        for stage, width in enumerate(STAGE_WIDTHS):
            for i in range(blocks_per_stage):
                blocks.append(BasicBlock(channels, width, stride=2 if stage > 0 and i == 0 else 1))
                channels = width
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(channels, num_classes)
        self._init(seed)

    def _init(self, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight, generator=generator)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    @property
    def num_classes(self) -> int:
        return self.fc.out_features

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Globally pooled features [B, 64]."""
        return self.blocks(self.stem(images)).mean(dim=(2, 3))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits [B, K]."""
        return self.fc(self.features(images))

    def logits_and_features(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits [B,K], features [B,64]), the interface ``ltlib.engine.evaluate`` reads with features."""
        features = self.features(images)
        return self.fc(features), features
