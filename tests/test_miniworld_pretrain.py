"""Contrastive pre-training of tiny open_clip CLIPs, and the round trip cache → backbone → zero-shot → LIFT → GLA."""

from __future__ import annotations

import math

import numpy as np
import open_clip
import pytest
import torch
from tolerances import CLOSED_ABS, U32, network

from ltlib.backbones import build_backbone, get_spec
from ltlib.heads import ZeroShotClassifier, text_head_weights
from ltlib.miniworld.config import ArchitectureConfig, PretrainConfig
from ltlib.miniworld.diagnostics import prior_recovery, zero_shot_accuracy, zero_shot_logits
from ltlib.miniworld.pretrain import (CompactTokenEmbedding, build_clip, lr_at_step, open_clip_config, param_groups,
                                      pretrain)
from ltlib.model import build_lift_model
from ltlib.priors import estimate_prior


def test_lr_schedule_warms_up_then_decays_to_zero():
    lrs = [lr_at_step(s, 100, 1.0, 10) for s in range(100)]
    assert (
        lrs[0] == pytest.approx(0.1, abs=CLOSED_ABS)
        and lrs[9] == pytest.approx(1.0, abs=CLOSED_ABS)
        and lrs[10] == pytest.approx(1.0, abs=CLOSED_ABS)
    )
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:])) and lrs[-1] < 1e-3  # cosine at 89/90 of its way: ≈ 3e-4
    assert lr_at_step(55, 100, 1.0, 10) == pytest.approx(0.5, abs=CLOSED_ABS)  # half-way through the cosine


def test_open_clip_config_builds_a_real_clip():
    config = open_clip_config(ArchitectureConfig(), image_size=32)
    model = build_clip(config, seed=0)
    assert isinstance(model, open_clip.model.CLIP)
    tokens = open_clip.SimpleTokenizer(context_length=16)(["a photo of a zorbat."])
    assert model.encode_image(torch.zeros(2, 3, 32, 32)).shape == (2, 64)
    assert model.encode_text(tokens).shape == (1, 64)
    assert torch.equal(build_clip(config, 0).visual.conv1.weight, model.visual.conv1.weight)


def test_compact_embedding_trains_used_rows_exactly_like_the_full_table():
    config = open_clip_config(
        ArchitectureConfig(
            embed_dim=16,
            vision_width=16,
            vision_head_width=8,
            text_width=16,
            vision_layers=1,
            text_layers=1,
            patch_size=8,
        ),
        image_size=32,
    )
    tokens = open_clip.SimpleTokenizer(context_length=16)(["a photo of a zorbat.", "my glimmet with a ring head."])
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    used = torch.unique(tokens)
    models = [build_clip(config, seed=0) for _ in range(2)]
    full_embedding = models[1].token_embedding
    models[1].token_embedding = CompactTokenEmbedding(full_embedding, used)
    assert torch.equal(models[0].encode_text(tokens), models[1].encode_text(tokens))
    for model in models:  # one AdamW step on the same pair batch
        optimizer = torch.optim.AdamW(param_groups(model, 0.1), lr=1e-2)
        loss = open_clip.ClipLoss()(
            model.encode_image(images, normalize=True),
            model.encode_text(tokens, normalize=True),
            model.logit_scale.exp(),
        )
        loss.backward()
        optimizer.step()
    models[1].token_embedding.write_back(full_embedding)
    models[1].token_embedding = full_embedding
    first, second = models[0].state_dict(), models[1].state_dict()
    # The compact table gathers and scatters the same rows: the same float32 operations in the same order.
    assert torch.equal(first["token_embedding.weight"][used], second["token_embedding.weight"][used])
    assert all(torch.equal(first[k], second[k]) for k in first if k != "token_embedding.weight")


def test_pretraining_is_deterministic_and_learns(pretrained_world):
    corpus = pretrained_world.corpus("mini-reference")
    config = open_clip_config(pretrained_world.config.architecture, 32)
    settings = PretrainConfig(epochs=2, batch_size=64, lr=2e-3, seed=3)
    first, log = pretrain(corpus, config, settings)
    second, _ = pretrain(corpus, config, settings)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))
    assert log.steps == 2 * (len(corpus) // 64) and len(log.epoch_loss) == 2
    assert log.epoch_loss[-1] < math.log(64)  # below the loss of a model that knows nothing
    # Clamped at log 100 ≈ 4.6 in float32 (rounded by ≤ 4.6·u), then exp (≤ u more): ≤ 100·(1 + 5.6·u₃₂).
    assert not first.training and log.logit_scale <= 100.0 * (1 + 5.6 * U32)


def test_cached_model_round_trips_through_the_backbone_registry(pretrained_world):
    entry = pretrained_world.pretrained("mini-clip")
    backbone = pretrained_world.backbone("mini-clip")
    rebuilt = build_backbone(get_spec("mini-clip"), weights=entry.weights)  # registered by pretrained_world.backbone
    saved = torch.load(entry.weights, weights_only=True)
    assert all(torch.equal(saved[k], v) for k, v in backbone.clip.state_dict().items())
    images, _ = pretrained_world.split("val").tensors()
    # The same weights through the same modules: the same float32 operations, bit for bit.
    assert torch.equal(backbone.image_features(images[:8]), rebuilt.image_features(images[:8]))
    assert backbone.feature_dim == pretrained_world.config.architecture.vision_width and backbone.image_size == 32


def test_truth_is_saved_beside_the_weights(pretrained_world):
    truth = pretrained_world.pretrained("mini-openclip").truth
    assert truth["prior"] == pytest.approx(pretrained_world.true_prior("mini-openclip").tolist(), abs=CLOSED_ABS)
    assert truth["class_counts"] == pretrained_world.corpus_counts("mini-openclip").tolist()
    assert sum(truth["class_counts"]) == pretrained_world.config.corpus.num_images
    # Statistical, not rounding: seeded draws of the part shown per image (numpy's generator, the same on every
    # CPU); 0.02 is the part-bias accuracy the world's design asks of a corpus.
    assert abs(truth["realised_head_fraction"] - pretrained_world.part_bias("mini-openclip")) < 0.02
    assert truth["popularity"] == pretrained_world.popularity("mini-openclip").tolist()


def test_zero_shot_round_trip(pretrained_world):
    logits = zero_shot_logits(pretrained_world, "mini-clip", "test")
    classifier = ZeroShotClassifier(pretrained_world.backbone("mini-clip"), pretrained_world.class_names)
    images, labels = pretrained_world.split("test").tensors()
    assert logits.shape == (len(labels), pretrained_world.num_classes)
    arch = pretrained_world.config.architecture  # the mini tower: ~6 dot-product layers per block, width ≤ 4·width
    tol = network(torch.from_numpy(logits[:16]), 4 * arch.vision_width, 6 * arch.vision_layers + 4)
    assert np.allclose(logits[:16], classifier(images[:16]).numpy(), rtol=0, atol=tol)  # other batch sizes
    accuracy = zero_shot_accuracy(pretrained_world, "mini-clip")
    assert set(accuracy.by_visibility) == {"head", "body"}
    assert accuracy.overall == pytest.approx(np.mean(accuracy.per_class), abs=CLOSED_ABS)  # balanced test split, in %
    # C balanced too
    assert accuracy.overall == pytest.approx(np.mean(list(accuracy.by_visibility.values())), abs=CLOSED_ABS)


def test_lift_model_and_prior_estimate_on_a_mini_backbone(pretrained_world):
    backbone = pretrained_world.backbone("mini-metaclip")
    model = build_lift_model(backbone, pretrained_world.class_names)
    images, _ = pretrained_world.split("val").tensors()
    assert model(images[:4]).shape == (4, pretrained_world.num_classes)
    # The head is initialised from these very text weights (a copy).
    assert torch.equal(model.head.weight.detach(), text_head_weights(backbone, pretrained_world.class_names))
    prior = estimate_prior(
        zero_shot_logits(pretrained_world, "mini-metaclip", "val"), pretrained_world.split("val").labels.numpy()
    )
    assert prior.shape == (pretrained_world.num_classes,) and prior.sum() == pytest.approx(1.0, abs=CLOSED_ABS)
    recovery = prior_recovery(pretrained_world, "mini-metaclip")
    assert np.allclose(recovery.estimate, prior, rtol=0, atol=CLOSED_ABS)
    assert recovery.kl_uniform == pytest.approx(
        float(np.sum(recovery.truth * np.log(recovery.truth * pretrained_world.num_classes))), abs=CLOSED_ABS
    )
