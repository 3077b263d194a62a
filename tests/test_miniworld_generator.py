"""The mini world's renderer: Latin-square layout, determinism, masks, visibility and the structure property."""

from __future__ import annotations

import numpy as np
import open_clip
import pytest
import torch

from ltlib.errors import ConfigError
from ltlib.miniworld import build_layout, load_world, render
from ltlib.miniworld.config import RenderConfig
from ltlib.miniworld.diagnostics import pixel_features, structure_probe
from ltlib.miniworld.names import CLASS_NAMES, part_words

CONFIG = RenderConfig()


def _batch(n: int = 64, seed: int = 0, num_classes: int = 40):
    rng = np.random.default_rng(seed)
    return rng.integers(0, num_classes, n), rng.integers(0, 2, n)


def test_layout_is_a_latin_square():
    layout = build_layout(10, 4)
    pairs = set(zip(layout.head_type, layout.body_type))
    assert layout.num_classes == 40 and len(pairs) == 40  # head + body identify the class
    for t in range(10):
        heads, bodies = layout.classes_with("head", t), layout.classes_with("body", t)
        assert len(heads) == 4 and len(bodies) == 4  # one part alone leaves G = 4 candidates
        assert len({layout.body_type[k] for k in heads}) == 4  # classes sharing a head differ in body
        assert len({layout.head_type[k] for k in bodies}) == 4


@pytest.mark.parametrize("types, group", [(1, 1), (11, 2), (4, 5)])
def test_layout_rejects_impossible_sizes(types, group):
    with pytest.raises(ConfigError, match="num_part_types|group_size"):
        build_layout(types, group)


def test_class_names_share_no_bpe_token():
    tokenizer = open_clip.SimpleTokenizer()
    tokens = [tokenizer.encode(name) for name in CLASS_NAMES]
    flat = [t for ts in tokens for t in ts]
    assert len(flat) == len(set(flat)) and max(map(len, tokens)) <= 3
    assert len(set(CLASS_NAMES)) == len(CLASS_NAMES)


def test_part_words():
    assert part_words("head", 0) == "round head"
    assert part_words("body", 6) == "checkered boxy body"


def test_same_seed_same_arrays_other_seed_other_arrays():
    layout = build_layout(10, 4)
    labels, visibility = _batch(300)  # more than one noise chunk
    a = render(layout, labels, visibility, CONFIG, seed=7)
    b = render(layout, labels, visibility, CONFIG, seed=7)
    c = render(layout, labels, visibility, CONFIG, seed=8)
    assert torch.equal(a.images, b.images) and torch.equal(a.masks, b.masks)
    assert not torch.equal(a.images, c.images)


def test_shapes_dtypes_and_ground_truth():
    layout = build_layout(10, 4)
    labels, visibility = _batch(50)
    out = render(layout, labels, visibility, CONFIG, seed=0)
    assert out.images.shape == (50, 3, 32, 32) and out.images.dtype == torch.uint8
    assert out.masks.shape == (50, 2, 32, 32) and out.masks.dtype == torch.bool
    assert torch.equal(out.labels, torch.from_numpy(labels))
    assert torch.equal(out.visibility, torch.from_numpy(visibility))
    assert len(out.subset(out.visibility == 0)) == int((visibility == 0).sum())
    assert out.images.float().std() > 20  # not blank


def test_masks_are_disjoint_and_follow_visibility():
    layout = build_layout(10, 4)
    labels = np.arange(400) % 40
    visibility = (np.arange(400) // 40) % 2
    out = render(layout, labels, visibility, CONFIG, seed=1)
    head, body = out.masks[:, 0], out.masks[:, 1]
    assert not (head & body).any()
    head_px, body_px = head.flatten(1).sum(1).float(), body.flatten(1).sum(1).float()
    share = head_px / (head_px + body_px)
    # C = 0 shows the head and hides most of the body; C = 1 the reverse
    assert share[visibility == 0].mean() > 0.6 and share[visibility == 1].mean() < 0.2
    assert 0 < share[visibility == 0].min() and share[visibility == 1].max() < 1  # never the whole other part


def test_single_part_renders_hide_the_other_part():
    layout = build_layout(10, 4)
    labels, visibility = _batch(40)
    heads = render(layout, labels, visibility, CONFIG, seed=2, parts="head")
    bodies = render(layout, labels, visibility, CONFIG, seed=2, parts="body")
    assert heads.masks[:, 0].any() and not heads.masks[:, 1].any()
    assert bodies.masks[:, 1].any() and not bodies.masks[:, 0].any()


def test_colour_coding_makes_part_hue_a_function_of_type():
    layout = build_layout(10, 4)
    labels = np.array([0, 10, 20, 30] * 20)  # all four classes with head type 0
    out = render(layout, labels, np.zeros_like(labels), CONFIG, seed=3, parts="head")
    pixels = out.images.permute(0, 2, 3, 1)[out.masks[:, 0]].float()
    # head type 0 has hue 0 (red) up to jitter and pattern darkening: red dominates the other channels
    assert (pixels[:, 0] > pixels[:, 1]).float().mean() > 0.9 and (pixels[:, 0] > pixels[:, 2]).float().mean() > 0.9


def test_render_validates_inputs():
    layout = build_layout(4, 2)
    with pytest.raises(ConfigError, match="labels must lie"):
        render(layout, np.array([8]), np.array([0]), CONFIG, seed=0)
    with pytest.raises(ConfigError, match="equal length"):
        render(layout, np.array([0, 1]), np.array([0]), CONFIG, seed=0)
    with pytest.raises(ConfigError, match="parts"):
        render(layout, np.array([0]), np.array([0]), CONFIG, seed=0, parts="tail")


@pytest.mark.parametrize("part", ["head", "body"])
def test_structure_property_one_part_narrows_to_its_group(part, tmp_path):
    """Book: Mini world, item 1: from one part, classes of different type separate, classes sharing it do not."""
    world = load_world("smoke", cache_root=tmp_path)  # K = 8, groups of G = 2
    result = structure_probe(world, part, features=pixel_features, per_class=60)
    assert result.type_accuracy > 80  # chance 1/T = 25%
    assert abs(result.within_type_accuracy - result.within_type_chance) < 15  # chance 1/G = 50%
