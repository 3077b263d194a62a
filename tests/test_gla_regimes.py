"""The pre-training objectives of the GLA-regime study and the study's worlds and rows (smoke world)."""

from __future__ import annotations

import dataclasses

import numpy as np
import open_clip
import pytest
import torch
from tolerances import U32, cross_entropy, gamma

from ltlib.errors import ConfigError
from ltlib.miniworld import gla_regimes, load_world
from ltlib.miniworld.pretrain import masked_clip_loss, pretrain


def features(n: int, d: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    a, b = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    return a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)


def test_the_masked_loss_is_clips_loss_when_every_label_differs():
    image, text = features(6)
    scale = torch.tensor(10.0)
    expected = open_clip.ClipLoss()(image, text, scale)
    # the same float32 logits (unit vectors of 8 entries, times 10) into two mean cross-entropies over 6 rows:
    # the dot products' rounding times the scale, plus the cross-entropy bound, for each of the two directions
    bound = 2 * (gamma(8, U32) * 10 + cross_entropy(6, 6, 10.0))
    assert float(masked_clip_loss(image, text, scale, np.arange(6))) == pytest.approx(float(expected), abs=bound)


def test_the_masked_loss_ignores_same_class_negatives():
    image, text = features(4)
    scale, labels = torch.tensor(10.0), np.array([0, 0, 1, 2])
    base = masked_clip_loss(image, text, scale, labels)
    moved = text.clone()
    moved[1] = image[0]  # make pair 1's caption a perfect match for image 0: a same-class "negative"
    # only the terms of pairs 0 and 1 could see it, and there it is masked: image 0's loss is unchanged
    logits = scale * image @ moved.T
    assert logits[0, 1] > logits[0, 0]
    changed = masked_clip_loss(image, moved, scale, labels)
    unmasked = open_clip.ClipLoss()(image, moved, scale)
    assert float(changed) < float(unmasked)  # the masked loss does not punish image 0 for its class-mate
    assert float(base) != float(changed)  # but pair 1's own term does change (its positive moved)


def test_an_unknown_objective_is_refused_by_name(pretrained_world):
    corpus = pretrained_world.corpus("mini-clip")
    config = dataclasses.replace(pretrained_world.config.pretrain, objective="mse")
    with pytest.raises(ConfigError, match="pretrain.objective"):
        pretrain(corpus, {}, config)


def test_regime_worlds_change_only_what_the_regime_lists():
    base = load_world("smoke", seed=3).config
    for regime in gla_regimes.REGIMES:
        world = gla_regimes.regime_world("smoke", 3, regime, corpus_images=512)
        config = world.config
        assert config.seed == 3 and config.corpus.num_images == 512
        assert config.pretrain == dataclasses.replace(base.pretrain, **dict(regime.pretrain))
        assert config.captions == dataclasses.replace(base.captions, **dict(regime.captions))
        assert (config.models, config.reference, config.tasks) == (base.models, base.reference, base.tasks)


def test_supervised_pretraining_reads_one_prompt_per_class(tmp_path):
    [regime] = [r for r in gla_regimes.REGIMES if r.key == "supervised"]
    world = gla_regimes.regime_world("smoke", 0, regime, corpus_images=256)
    corpus = world.corpus("mini-clip")
    view = world._training_view(corpus)
    assert view.captions == tuple(f"a photo of a {n}." for n in world.class_names)
    assert np.array_equal(view.caption_index, corpus.labels)


def test_the_study_writes_every_measure_per_world_and_regime(tmp_path, monkeypatch):
    monkeypatch.setenv("LTLIB_CACHE", str(tmp_path))
    regimes = gla_regimes.REGIMES[:2]
    worlds = gla_regimes.open_regime_worlds("smoke", [0, 1], regimes, corpus_images=256, workers=1)
    rows = gla_regimes.regime_rows(worlds)
    assert set(rows.world_seed) == {0, 1} and set(rows.method) == {r.key for r in regimes}
    table = rows.pivot_table(index=["world_seed", "method"], columns="metric", values="value", dropna=False)
    assert len(table) == 4 and table.zeroshot_top1.notna().all()
    # a model at chance has no calibrated estimate: every agreement measure is then NaN together, never a number
    fitted = table.spearman.notna()
    assert (table[fitted].notna().all(axis=1)).all() and table[~fitted].drop(columns="zeroshot_top1").isna().all().all()
    assert np.allclose(table.excess_spearman[fitted], (table.spearman - table.floor_spearman)[fitted])
    assert ((table.spearman[fitted] >= -1) & (table.spearman[fitted] <= 1)).all()
