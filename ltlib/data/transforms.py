"""LIFT's image transforms (book: Method, 'Test-time crops'): CLIP normalisation, train augmentation, test
crops and TTE."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image
from torchvision import transforms as T
from torchvision.transforms import InterpolationMode

from ..errors import ConfigError

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# LIFT keeps torchvision's default bilinear resampling, not CLIP's bicubic (book: Method, 'Test-time crops').
_BILINEAR = InterpolationMode.BILINEAR


def train_transform(resolution: int = 224, mean: Sequence[float] = CLIP_MEAN,
                    std: Sequence[float] = CLIP_STD) -> T.Compose:
    """LIFT's training augmentation (book: Method, 'Test-time crops').

    RandomResizedCrop(resolution, scale (0.08, 1), ratio (3/4, 4/3), bilinear), RandomHorizontalFlip(0.5),
    ToTensor, Normalize. Randomness comes from torch's global generator, so seeding it per sample
    (``ltlib.engine.SeededSamples``) fixes the augmentation.

    Args:
        resolution: crop side in pixels.
        mean, std: per-channel normalisation (CLIP's by default).
    Returns:
        A transform mapping a PIL RGB image to a [3, resolution, resolution] float32 tensor.
    """
    _check_int("resolution", resolution, minimum=1)
    return T.Compose([
        T.RandomResizedCrop(resolution, scale=(0.08, 1.0), interpolation=_BILINEAR),
        T.RandomHorizontalFlip(),
        T.ToTensor(),
        T.Normalize(mean, std),
    ])


def test_transform(resolution: int = 224, tte: bool = False, expand: int = 24,
                   mean: Sequence[float] = CLIP_MEAN, std: Sequence[float] = CLIP_STD) -> T.Compose:
    """LIFT's evaluation crops, with a leading crop axis (book: Method, 'Test-time crops').

    Without TTE: Resize(resolution·8//7) of the shorter side, CenterCrop(resolution) → [1, 3, H, W].
    With TTE (five-crop): Resize(resolution + expand), FiveCrop(resolution) → [5, 3, H, W] in the order
    top-left, top-right, bottom-left, bottom-right, centre; no flips. The model averages raw logits over
    the crop axis.

    Args:
        resolution: crop side H = W.
        tte: five-crop test-time ensembling.
        expand: margin added before five-crop (24 for ViT-B/16, book: Method, 'Optimisation').
        mean, std: per-channel normalisation.
    Returns:
        A transform mapping a PIL RGB image to a [K, 3, resolution, resolution] float32 tensor, K = 5 or 1.
    """
    _check_int("resolution", resolution, minimum=1)
    _check_int("expand", expand, minimum=0)
    if tte:
        resize, crop = T.Resize(resolution + expand, interpolation=_BILINEAR), T.FiveCrop(resolution)
    else:
        resize, crop = T.Resize(resolution * 8 // 7, interpolation=_BILINEAR), T.CenterCrop(resolution)
    return T.Compose([resize, crop, StackCrops(mean, std)])


test_transform.__test__ = False  # type: ignore[attr-defined]  # not a pytest test despite its name


class StackCrops:
    """ToTensor and Normalize each crop, stacked on a leading crop axis: one image or a tuple → [K, 3, H, W]."""

    def __init__(self, mean: Sequence[float] = CLIP_MEAN, std: Sequence[float] = CLIP_STD) -> None:
        self.to_tensor, self.normalize = T.ToTensor(), T.Normalize(mean, std)

    def __call__(self, crops: Image.Image | Sequence[Image.Image]) -> torch.Tensor:
        crops = crops if isinstance(crops, (tuple, list)) else (crops,)
        return torch.stack([self.normalize(self.to_tensor(crop)) for crop in crops])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(mean={tuple(self.normalize.mean)}, std={tuple(self.normalize.std)})"


def five_crop_boxes(width: int, height: int, size: int) -> tuple[tuple[int, int, int, int], ...]:
    """The (left, top, right, bottom) boxes of torchvision's FiveCrop on a width × height image.

    Order: top-left, top-right, bottom-left, bottom-right, centre; the centre starts at
    round((H − size)/2), round((W − size)/2) (a 330×248 image with size 224 gives the centre box
    (53, 12, 277, 236)).
    """
    if size > min(width, height):
        raise ConfigError(f"crop size {size} exceeds the image ({width}×{height})")
    left, top = int(round((width - size) / 2.0)), int(round((height - size) / 2.0))
    right, bottom = width - size, height - size
    return ((0, 0, size, size), (right, 0, width, size), (0, bottom, size, height),
            (right, bottom, width, height), (left, top, left + size, top + size))


def _check_int(name: str, value: int, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"transform parameter {name}={value!r} must be an integer >= {minimum}")
