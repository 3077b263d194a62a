"""Part attribution (the paper's Fig. 4/10): closed forms on hand-built models, invariants, the mini-world wrappers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from ltlib.miniworld.attribution import (PartReliance, attribute, background_colour, part_reliance, remove_part,
                               saliency_maps, saliency_shares, true_class_score)
from ltlib.backbones import BackboneSpec, build_backbone, register_arch
from ltlib.errors import ConfigError
from ltlib.heads import ZeroShotClassifier
from ltlib.miniworld import diagnostics, load_world
from ltlib.results import ResultsTable, mean_ci

SIZE, K = 12, 3
BACKGROUND = torch.tensor([0.2, -0.1, 0.5])


def scene(n: int = 4, head_value: float = 1.0, body_value: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Images [n,3,12,12] on a flat background, a 3×3 head at rows 1–3 and a 4×4 body at rows 6–9
    (separated by background), each part a flat value plus a per-image offset; masks [n,2,12,12]."""
    masks = torch.zeros(n, 2, SIZE, SIZE, dtype=torch.bool)
    masks[:, 0, 1:4, 4:7] = True
    masks[:, 1, 6:10, 3:7] = True
    offsets = 0.1 * torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1)
    images = BACKGROUND.view(1, 3, 1, 1).repeat(n, 1, SIZE, SIZE)
    images = torch.where(masks[:, :1], head_value + offsets, images)
    images = torch.where(masks[:, 1:], body_value + offsets, images)
    return images, masks


class RegionModel(nn.Module):
    """Logits ``w_k · Σ_{pixels in region} Σ_c (x − background)``: looks at one fixed region only."""

    def __init__(self, region: torch.Tensor, weights: tuple[float, ...] = (1.0, 0.0, -1.0)) -> None:
        super().__init__()
        self.register_buffer("region", region.float())
        self.register_buffer("weights", torch.tensor(weights))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        evidence = ((images - BACKGROUND.view(1, 3, 1, 1)) * self.region).sum(dim=(1, 2, 3))
        return evidence[:, None] * self.weights[None]


def region(part: int | None) -> torch.Tensor:
    """The pixels a :class:`RegionModel` reads: the head (0), the body (1) or both (None)."""
    _, masks = scene(1)
    return masks[0].any(0) if part is None else masks[0, part]


TARGETS = torch.zeros(4, dtype=torch.long)


# --------------------------------------------------------------------------- occlusion
@pytest.mark.parametrize("part, expected", [(0, 1.0), (1, 0.0)])
def test_a_model_that_reads_one_part_relies_on_it_alone(part, expected):
    images, masks = scene()
    reliance = part_reliance(RegionModel(region(part)), images, masks, TARGETS)
    assert np.allclose(reliance.head_share, expected)
    assert reliance.mean_head_share()[0] == pytest.approx(expected)
    assert reliance.pooled_head_share == pytest.approx(expected)
    ignored = reliance.body_drop if part == 0 else reliance.head_drop
    assert np.allclose(ignored, 0.0, atol=1e-6)


def test_head_share_of_a_linear_model_is_the_parts_evidence_ratio():
    # logit score, background fill: removing a part removes exactly its evidence area · value · channels
    images, masks = scene(head_value=1.0, body_value=0.5)
    reliance = part_reliance(RegionModel(region(None)), images, masks, TARGETS, score="logit")
    head = 9 * (images[:, :, 2, 5] - BACKGROUND).sum(1)  # 3×3 head
    body = 16 * (images[:, :, 7, 4] - BACKGROUND).sum(1)  # 4×4 body
    assert np.allclose(reliance.head_drop, head.numpy(), atol=1e-4)
    assert np.allclose(reliance.head_share, (head / (head + body)).numpy(), atol=1e-6)


def test_log_prob_score_ignores_a_shift_shared_by_every_class():
    images, masks = scene()
    shifted = RegionModel(region(None), weights=(1.0, 1.0, 1.0))  # the part moves every logit alike
    assert np.allclose(part_reliance(shifted, images, masks, TARGETS).head_drop, 0.0, atol=1e-6)
    assert not np.allclose(part_reliance(shifted, images, masks, TARGETS, score="logit").head_drop, 0.0)


def test_share_is_undefined_when_no_part_matters():
    images, masks = scene()
    reliance = part_reliance(RegionModel(torch.zeros(SIZE, SIZE)), images, masks, TARGETS)
    assert np.isnan(reliance.head_share).all() and np.isnan(reliance.pooled_head_share)
    mean, low, high, n = reliance.mean_head_share()
    assert n == 0 and np.isnan(mean) and np.isnan(low) and np.isnan(high)


def test_mean_head_share_skips_undefined_images_and_uses_a_student_t_interval():
    shares = np.array([0.2, np.nan, 0.6, 0.9])
    reliance = PartReliance(np.zeros(4), np.array([1.0, 0, 3, 9]), np.array([4.0, 0, 2, 1]), shares)
    mean, _, low, high, n = mean_ci([0.2, 0.6, 0.9])
    assert reliance.mean_head_share() == pytest.approx((mean, low, high, n))
    assert reliance.pooled_head_share == pytest.approx(13 / 20)


def test_remove_part_fills_the_grown_part_and_spares_the_other():
    images, masks = scene(n=2)
    images[:, :, 4, 5] = 7.0  # a rim pixel just below the head: filled, and not counted as background
    out = remove_part(images, masks, "head")
    grown = torch.zeros(SIZE, SIZE, dtype=torch.bool)
    grown[0:5, 3:8] = True
    assert torch.allclose(out[:, :, grown], BACKGROUND.view(1, 3, 1).expand(2, 3, int(grown.sum())))
    assert torch.equal(out[:, :, ~grown], images[:, :, ~grown])
    assert torch.allclose(background_colour(images, masks), BACKGROUND.expand(2, 3))
    assert torch.equal(remove_part(images, masks, "body", fill="mean")[:, :, 7, 4], torch.zeros(2, 3))


def test_remove_part_never_touches_the_other_part_where_they_meet():
    images, masks = scene(n=1)
    masks[:, 1, 4:6, 4:7] = True  # the body now touches the head
    images[:, :, 4:6, 4:7] = 3.0
    out = remove_part(images, masks, "head")
    assert torch.equal(out[:, :, 4:6, 4:7], images[:, :, 4:6, 4:7])


# --------------------------------------------------------------------------- saliency
def test_saliency_lies_on_the_part_the_model_reads():
    images, masks = scene()
    saliency = saliency_maps(RegionModel(region(0)), images, TARGETS, score="logit")
    assert saliency.shape == (4, SIZE, SIZE) and saliency.dtype == torch.float32
    assert torch.equal(saliency > 0, masks[:, 0])
    shares = saliency_shares(saliency, masks)
    assert np.allclose(shares.head_mass, 1.0) and np.allclose(shares.body_mass, 0.0)
    assert np.allclose(shares.head_density_share, 1.0)


def test_saliency_is_gradient_times_input_and_density_share_normalises_area():
    images, masks = scene(head_value=1.0, body_value=1.0)  # equal value per pixel, areas 9 and 16
    saliency = saliency_maps(RegionModel(region(None)), images, TARGETS, score="logit")
    assert torch.allclose(saliency[:, 2, 5], images[:, :, 2, 5].sum(1).abs())  # ∂z_0/∂x = 1 on every channel
    assert torch.equal(saliency[:, 0, 0], torch.zeros(4))  # the model does not read the background
    shares = saliency_shares(saliency, masks)
    assert np.allclose(shares.head_mass, 9 / 25) and np.allclose(shares.head_density_share, 0.5)


def test_density_share_is_undefined_for_a_hidden_part():
    images, masks = scene(n=2)
    masks[1, 1] = False
    shares = saliency_shares(saliency_maps(RegionModel(region(None)), images, TARGETS[:2], score="logit"), masks)
    assert not np.isnan(shares.head_density_share[0]) and np.isnan(shares.head_density_share[1])


# --------------------------------------------------------------------------- a real (tiny, random) CLIP
@pytest.fixture(scope="module")
def zero_shot() -> ZeroShotClassifier:
    cfg = {"embed_dim": 16, "vision_cfg": {"image_size": SIZE, "patch_size": 4, "width": 32, "layers": 1,
                                           "head_width": 16, "mlp_ratio": 2.0},
           "text_cfg": {"context_length": 8, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    spec = BackboneSpec("tiny-attribution", arch=register_arch("ltlib-test-attribution", cfg))
    return ZeroShotClassifier(build_backbone(spec, random_init=True, seed=1), ["cat", "dog", "jay"])


def test_attribution_of_a_clip_is_batch_free_deterministic_and_shaped(zero_shot):
    images, masks = scene(n=5)
    images = images + 0.3 * torch.randn(images.shape, generator=torch.Generator().manual_seed(0))
    targets = torch.tensor([0, 1, 2, 0, 1])
    whole = attribute(zero_shot, images, masks, targets, batch_size=5)
    one_by_one = attribute(zero_shot, images, masks, targets, batch_size=1)
    again = attribute(zero_shot, images, masks, targets, batch_size=5)
    assert whole.saliency.shape == (5, SIZE, SIZE) and whole.reliance.head_share.shape == (5,)
    assert torch.allclose(whole.saliency, one_by_one.saliency, atol=1e-5)
    assert np.allclose(whole.reliance.head_drop, one_by_one.reliance.head_drop, atol=1e-5)
    assert torch.equal(whole.saliency, again.saliency)
    assert np.array_equal(whole.reliance.head_share, again.reliance.head_share, equal_nan=True)
    assert whole.saliency.abs().sum() > 0
    assert set(whole.summary()) >= {"head_reliance", "head_reliance_ci_low", "saliency_head_density_share"}


def test_dropout_is_off_during_attribution_and_the_mode_is_restored():
    images, masks = scene()
    model = nn.Sequential(nn.Dropout(0.5), RegionModel(region(None)))
    model.train()
    first = part_reliance(model, images, masks, TARGETS)
    assert np.array_equal(first.head_drop, part_reliance(model, images, masks, TARGETS).head_drop)
    assert np.allclose(first.head_drop, part_reliance(model[1], images, masks, TARGETS).head_drop)
    assert model.training and model[0].training


def test_arguments_are_checked():
    images, masks = scene()
    model = RegionModel(region(0))
    with pytest.raises(ConfigError, match="masks"):
        part_reliance(model, images, masks[:, :1], TARGETS)
    with pytest.raises(ConfigError, match="score"):
        true_class_score(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), score="prob")
    with pytest.raises(ConfigError, match="fill"):
        remove_part(images, masks, "head", fill="noise")
    with pytest.raises(ConfigError, match="part"):
        remove_part(images, masks, "tail")
    with pytest.raises(ConfigError, match="targets"):
        saliency_maps(model, images, TARGETS[:2])


# --------------------------------------------------------------------------- mini-world wrappers
@pytest.fixture(scope="module")
def world():
    return load_world("smoke")


@pytest.fixture(scope="module")
def trained(pretrained_world):
    return pretrained_world


def test_latin_square_holds_every_class_once_with_g_per_row_and_column(world):
    grid = diagnostics.latin_square(world)
    filled = grid != ""
    g = world.config.parts.group_size
    assert sorted(grid.to_numpy()[filled.to_numpy()]) == sorted(world.class_names)
    assert (filled.sum(axis=0) == g).all() and (filled.sum(axis=1) == g).all()


def test_part_neighbours_share_exactly_one_part(world):
    k, *others = diagnostics.part_neighbours(world, 1)
    layout, g = world.layout, world.config.parts.group_size
    assert len(others) == 2 * (g - 1) and k == 1
    for c in others:
        same = (layout.head_type[c] == layout.head_type[k]) + (layout.body_type[c] == layout.body_type[k])
        assert same == 1


def test_example_renders_alternate_visibility_class_by_class(world):
    renders = diagnostics.example_renders(world, (2, 5))
    assert renders.labels.tolist() == [2, 2, 5, 5] and renders.visibility.tolist() == [0, 1, 0, 1]


def test_generation_check_reports_determinism(world):
    check = diagnostics.generation_check(world, num_images=64, seed=3)
    assert check.identical and check.seed_changes_images and check.num_images == 64
    assert check.images_per_second == pytest.approx(64 / check.seconds)


def test_unoccluded_images_show_both_parts_in_full(world):
    probe = diagnostics.unoccluded_images(world, per_class=20, seed=0)
    test = world.split("test")
    area, test_area = probe.masks.sum((2, 3)).float(), test.masks.sum((2, 3)).float()
    assert (area > 0).all() and len(probe) == 20 * world.num_classes
    full_head = test_area[test.visibility == 0, 0].mean()  # heads in full view in head-dominant images
    full_body = test_area[test.visibility == 1, 1].mean()
    assert area[:, 0].mean() == pytest.approx(float(full_head), rel=0.15)
    assert area[:, 1].mean() == pytest.approx(float(full_body), rel=0.15)
    assert area[:, 1].mean() > 3 * test_area[test.visibility == 0, 1].mean()  # vs a mostly occluded body


def test_split_subset_keeps_the_first_images_of_each_class(world):
    subset = diagnostics.split_subset(world, "test", per_class=3)
    labels = world.split("test").labels.numpy()
    index = np.sort(np.concatenate([np.flatnonzero(labels == k)[:3] for k in range(world.num_classes)]))
    assert torch.equal(subset.renders.images, world.split("test").renders.images[index])
    assert np.bincount(subset.labels.numpy()).tolist() == [3] * world.num_classes


def test_parameter_imbalance_reuses_given_accuracies(trained):
    accuracies = {n: diagnostics.zero_shot_accuracy(trained, n) for n in ("mini-clip", trained.reference_name)}
    reused = diagnostics.parameter_imbalance(trained, "mini-clip", accuracies=accuracies)
    fresh = diagnostics.parameter_imbalance(trained, "mini-clip")
    assert np.array_equal(reused.difference, fresh.difference)


def test_part_attribution_rows_go_into_a_results_table(trained, tmp_path):
    data = diagnostics.split_subset(trained, "test", per_class=4)
    result = diagnostics.part_attribution(trained, "mini-clip", data, "test", seed=0, by_visibility=True)
    rows = diagnostics.tidy([result], "zero-shot")
    assert set(rows["group"]) == {"test", "test:head", "test:body"}
    head = rows[(rows["group"] == "test") & (rows["metric"] == "head_reliance")]["value"].item()
    assert head == pytest.approx(result.attribution.reliance.mean_head_share()[0], nan_ok=True)
    share = result.attribution.reliance.head_share[result.visibility == 0]
    head_dominant = rows.query("group == 'test:head' and metric == 'head_reliance'")["value"].item()
    assert head_dominant == pytest.approx(share[~np.isnan(share)].mean(), nan_ok=True)
    table = ResultsTable("00_test", "mini", "smoke", tmp_path)
    table.add_frame(rows)
    saved = pd.read_csv(table.save())
    assert len(saved) == len(rows) and set(saved["backbones"]) == {"mini-clip"} and set(saved["seed"]) == {0}


def test_pretraining_record_reads_the_cache(trained):
    record = diagnostics.pretraining_record(trained, "mini-openclip")
    assert record.head_fraction == trained.part_bias("mini-openclip")
    prior = trained.true_prior("mini-openclip")
    assert record.imbalance_ratio == pytest.approx(prior.max() / prior.min())
    assert record.num_images == trained.config.corpus.num_images and record.seconds > 0
