"""Transforms: CLIP normalisation, LIFT's train augmentation, test crops and five-crop
TTE (book: Method, 'Test-time crops')."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T
from torchvision.transforms import InterpolationMode

from ltlib.data import CLIP_MEAN, CLIP_STD, five_crop_boxes, test_transform, train_transform
from ltlib.errors import ConfigError


def _normalised(image: Image.Image) -> torch.Tensor:
    return T.Normalize(CLIP_MEAN, CLIP_STD)(T.ToTensor()(image))


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    """A 500×375 (W×H) image of seeded noise, an ImageNet-sized photo."""
    pixels = np.random.default_rng(0).integers(0, 256, (375, 500, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def test_d10_five_crop_geometry_and_values(photo):
    resized = T.Resize(248, interpolation=InterpolationMode.BILINEAR)(photo)
    assert resized.size == (330, 248)
    boxes = five_crop_boxes(330, 248, 224)
    assert boxes == ((0, 0, 224, 224), (106, 0, 330, 224), (0, 24, 224, 248), (106, 24, 330, 248),
                     (53, 12, 277, 236))
    crops = test_transform(tte=True)(photo)
    assert crops.shape == (5, 3, 224, 224) and crops.dtype == torch.float32
    torchvision_crops = T.FiveCrop(224)(resized)
    for k, box in enumerate(boxes):
        assert torch.equal(crops[k], _normalised(resized.crop(box)))
        assert torch.equal(crops[k], _normalised(torchvision_crops[k]))


def test_d10_no_tte_is_resize_256_centre_crop(photo):
    crops = test_transform()(photo)
    assert crops.shape == (1, 3, 224, 224)
    resized = T.Resize(256, interpolation=InterpolationMode.BILINEAR)(photo)
    assert resized.size == (341, 256)
    assert torch.equal(crops[0], _normalised(resized.crop(five_crop_boxes(341, 256, 224)[4])))


def test_normalisation_is_clip_mean_std_closed_form():
    image = Image.new("RGB", (300, 260), (200, 100, 50))
    expected = (torch.tensor([200, 100, 50]) / 255 - torch.tensor(CLIP_MEAN)) / torch.tensor(CLIP_STD)
    for out in (test_transform()(image)[0], test_transform(tte=True)(image)[3], train_transform()(image)):
        assert torch.allclose(out, expected[:, None, None].expand_as(out), atol=1e-6)


def test_custom_resolution_mean_std_and_expand():
    image = Image.new("RGB", (50, 40), (255, 255, 255))
    out = test_transform(resolution=32, tte=True, expand=4, mean=(0.5,) * 3, std=(0.25,) * 3)(image)
    assert out.shape == (5, 3, 32, 32)
    assert torch.allclose(out, torch.full_like(out, 2.0))  # (1 - 0.5) / 0.25


def test_train_transform_is_lift_recipe_and_seeded(photo):
    transform = train_transform()
    crop, flip = transform.transforms[0], transform.transforms[1]
    assert crop.size == (224, 224) and crop.scale == (0.08, 1.0)
    assert crop.ratio == pytest.approx((3 / 4, 4 / 3)) and crop.interpolation == InterpolationMode.BILINEAR
    assert flip.p == 0.5
    torch.manual_seed(3)
    first = transform(photo)
    torch.manual_seed(3)
    assert torch.equal(first, transform(photo))
    assert first.shape == (3, 224, 224)
    assert not torch.equal(first, transform(photo))  # the generator moved on: a new crop


def test_horizontal_flip_happens_about_half_the_time():
    # Left half black, right half white: a flipped crop is brighter on its left side.
    pixels = np.zeros((64, 64, 3), dtype=np.uint8)
    pixels[:, 32:] = 255
    image, transform = Image.fromarray(pixels), train_transform(resolution=16)
    torch.manual_seed(0)
    flipped = [float(out[:, :, :8].mean() > out[:, :, 8:].mean()) for out in (transform(image) for _ in range(400))]
    assert 0.4 < np.mean(flipped) < 0.6


def test_transforms_pickle_for_worker_processes(photo):
    restored = pickle.loads(pickle.dumps(test_transform(tte=True)))
    assert torch.equal(restored(photo), test_transform(tte=True)(photo))


@pytest.mark.parametrize("kwargs, name", [({"resolution": 0}, "resolution"), ({"expand": -1}, "expand"),
                                          ({"resolution": 224.0}, "resolution")])
def test_invalid_parameters_are_named(kwargs, name):
    with pytest.raises(ConfigError, match=name):
        test_transform(**kwargs)


def test_five_crop_larger_than_image_is_rejected():
    with pytest.raises(ConfigError, match="exceeds"):
        five_crop_boxes(100, 80, 96)
