"""The LIFT classifier (book: Method, 'Implementation details'): trainable set, parameter counts, crops,
state, training."""

from __future__ import annotations

import pytest
import torch
from tiny import TINY_CFG, tiny_backbone
import torch.nn.functional as F

from tolerances import U32, f32_sum, gamma, network

from ltlib.adapters import build_adaptformers
from ltlib.backbones import Backbone, BackboneSpec, build_backbone, register_arch
from ltlib.errors import ConfigError
from ltlib.heads import CosineClassifier, text_head_weights
from ltlib.model import LTClassifier, build_lift_model

NAMES = [f"class_{i}" for i in range(40)]
# The tiny tower (patch embedding, 2 blocks of 6 dot-product layers of ≤ 128 terms, projection, adapters and
# head): 18 layers of width ≤ 128 for tolerances.network.
TINY_WIDTH, TINY_LAYERS = 128, 18


@pytest.fixture(scope="module")
def tiny() -> Backbone:
    return tiny_backbone("tiny-model", layers=2, seed=7)


def images(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def perturb_adapters_(model: LTClassifier, seed: int = 0) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for adapter in model.adapters:
            adapter.up_proj.weight.normal_(0, 0.1, generator=generator)
            adapter.up_proj.bias.normal_(0, 0.1, generator=generator)


def count(parameters) -> int:
    return sum(p.numel() for p in parameters)


# --------------------------------------------------------------------------- trainable set and counts on ViT-B/16
@pytest.mark.parametrize("num_classes, bottleneck, tuner, head", [
    (1000, 32, 617_868, 768_000), (365, 8, 175_212, 280_320), (8142, 256, 4_749_324, 6_253_056)])
def test_parameter_counts_on_vit_b16(vit_b16: Backbone, num_classes: int, bottleneck: int, tuner: int,
                                     head: int) -> None:
    model = build_lift_model(vit_b16, [f"c{i}" for i in range(num_classes)], head_init="random")
    assert len(model.adapters) == 12
    assert {a.down_proj.out_features for a in model.adapters} == {bottleneck}
    assert (count(model.adapters.parameters()), count(model.head.parameters())) == (tuner, head)
    assert count(model.trainable_parameters()) == tuner + head
    assert count(p for p in model.parameters() if p.requires_grad) == tuner + head


@pytest.mark.parametrize("num_classes", [1000, 365])
def test_vpt_parameter_counts_on_vit_b16(vit_b16: Backbone, num_classes: int) -> None:
    """Deep VPT as LIFT sizes it: 10 prompts of width 768 in each of the 12 blocks, whatever C is."""
    model = build_lift_model(vit_b16, [f"c{i}" for i in range(num_classes)], adapter="vpt", head_init="random")
    assert vit_b16.patch_size == (16, 16) and len(model.adapters) == 12
    assert count(model.adapters.parameters()) == 12 * 10 * 768 == 92_160
    assert count(p for p in model.parameters() if p.requires_grad) == 92_160 + num_classes * 768
    assert max(float(a.prompts.detach().abs().max()) for a in model.adapters) <= 1 / 16  # sqrt(6/(3·16²+768))
    with torch.no_grad():
        features = model.features(images(1, 3, 224, 224))
    assert features.shape == (1, 768) and torch.isfinite(features).all()


def test_only_adapters_and_head_train(vit_b16: Backbone) -> None:
    model = build_lift_model(vit_b16, ["tench", "goldfish"])
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(name.startswith(("adapters.", "head.")) for name in trainable)
    frozen = dict(model.backbone.clip.named_parameters())
    for name in ("visual.ln_post.weight", "visual.proj", "logit_scale", "text_projection", "token_embedding.weight"):
        assert not frozen[name].requires_grad
    model.train()
    assert model.adapters.training and model.head.training and not model.backbone.training


# --------------------------------------------------------------------------- forward, crops
def test_forward_averages_raw_logits_over_crops(tiny: Backbone) -> None:
    model = build_lift_model(tiny, NAMES)
    perturb_adapters_(model)
    crops = images(3, 5, 3, 32, 32)
    with torch.no_grad():
        per_crop = torch.stack([model(crops[:, v]) for v in range(5)], dim=1)
        per_crop_features = torch.stack([model.features(crops[:, v]) for v in range(5)], dim=1)
        logits, features = model.logits_and_features(crops)
        # One batch of 15 crops vs 5 batches of 3: the same layers, other kernel blocking; then a 5-term mean.
        logit_tol = network(per_crop, TINY_WIDTH, TINY_LAYERS) + f32_sum(5) * float(per_crop.abs().max())
        feature_tol = network(per_crop_features, TINY_WIDTH, TINY_LAYERS) + f32_sum(5) * float(
            per_crop_features.abs().max()
        )
        torch.testing.assert_close(model(crops), per_crop.mean(dim=1), rtol=0, atol=logit_tol)
        torch.testing.assert_close(logits, per_crop.mean(dim=1), rtol=0, atol=logit_tol)
        torch.testing.assert_close(model.features(crops), per_crop_features.mean(dim=1), rtol=0, atol=feature_tol)
        torch.testing.assert_close(features, per_crop_features.mean(dim=1), rtol=0, atol=feature_tol)
        # averaging logits is not classifying the averaged feature (the head normalises per crop)
        assert not torch.allclose(model.head(features), logits, rtol=0, atol=logit_tol)  # a gap beyond rounding


def test_forward_equals_head_of_adapted_features(tiny: Backbone) -> None:
    model = build_lift_model(tiny, NAMES)
    perturb_adapters_(model, seed=1)
    x = images(4, 3, 32, 32)
    with torch.no_grad():
        features = tiny.image_features(x, model.adapters)
        torch.testing.assert_close(model(x), model.head(features), rtol=0, atol=0)
        plain = tiny.image_features(x)
        # beyond rounding
        assert not torch.allclose(features, plain, rtol=0, atol=network(plain, TINY_WIDTH, TINY_LAYERS))


# --------------------------------------------------------------------------- trainable state
def test_trainable_state_round_trip(tiny: Backbone) -> None:
    model = build_lift_model(tiny, NAMES, seed=0)
    perturb_adapters_(model, seed=2)
    state = model.trainable_state_dict()
    assert state and all(key.startswith(("adapters.", "head.")) for key in state)
    assert len(state) == 2 * 7 + 1
    fresh = build_lift_model(tiny, NAMES, head_init="random", seed=9)
    x = images(2, 3, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(fresh(x), model(x), rtol=0, atol=network(model(x), TINY_WIDTH, TINY_LAYERS))
        fresh.load_trainable_state_dict(state)
        assert torch.equal(fresh(x), model(x))
    with pytest.raises(ConfigError, match="missing keys.*head.weight"):
        fresh.load_trainable_state_dict({k: v for k, v in state.items() if k != "head.weight"})
    with pytest.raises(ConfigError, match="unexpected keys.*backbone"):
        fresh.load_trainable_state_dict({**state, "backbone.clip.logit_scale": torch.zeros(())})


# --------------------------------------------------------------------------- build options
def test_build_options(tiny: Backbone) -> None:
    auto = build_lift_model(tiny, NAMES)
    assert auto.adapters[0].down_proj.out_features == 8  # 2**floor(log2(40 / (2·2 blocks)))
    assert build_lift_model(tiny, NAMES, bottleneck=3).adapters[1].down_proj.out_features == 3
    probe = build_lift_model(tiny, NAMES, adapter=None)
    assert probe.adapters is None and count(probe.trainable_parameters()) == 40 * 64
    torch.testing.assert_close(auto.head.weight.detach(), text_head_weights(tiny, NAMES), rtol=0, atol=0)
    random_head = build_lift_model(tiny, NAMES, head_init="random", seed=3).head.weight
    assert torch.equal(random_head, CosineClassifier(64, 40, seed=3).weight)
    assert build_lift_model(tiny, NAMES, scale=30.0).head.scale == 30.0
    with pytest.raises(ConfigError, match="adapter='lora'"):
        build_lift_model(tiny, NAMES, adapter="lora")
    with pytest.raises(ConfigError, match="head_init='zeros'"):
        build_lift_model(tiny, NAMES, head_init="zeros")
    with pytest.raises(ConfigError, match="3 adapters for 2 blocks"):
        LTClassifier(tiny, CosineClassifier(64, 40), build_adaptformers(3, 64, 4))


def test_a_few_sgd_steps_lower_the_loss_and_leave_the_backbone_alone(tiny: Backbone) -> None:
    model = build_lift_model(tiny, NAMES[:4], bottleneck=8)
    backbone_before = {k: v.clone() for k, v in tiny.state_dict().items()}
    optimizer = torch.optim.SGD(model.trainable_parameters(), lr=0.01, momentum=0.9)  # LIFT's
    x, y = images(16, 3, 32, 32, seed=5), torch.arange(16) % 4
    losses = []
    model.train()
    for _ in range(15):
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.1  # measured: 1.42 -> 1.19 on this noise batch
    assert any(a.up_proj.weight.abs().sum() > 0 for a in model.adapters)
    assert all(torch.equal(v, backbone_before[k]) for k, v in tiny.state_dict().items())


def test_scratch_and_joint_classifiers_train_the_right_weights(tmp_path):
    import torch

    from ltlib.model import EnsembleClassifier, build_lift_model, build_scratch_model

    first, second = (
        build_backbone(
            BackboneSpec("tiny-model", arch=register_arch("ltlib-test-tiny", TINY_CFG)), random_init=True, seed=s
        )
        for s in (1, 2)
    )
    names = ["cat", "dog", "bird"]
    joint = EnsembleClassifier([build_lift_model(first, names, seed=0), build_lift_model(second, names, seed=1)])
    x = torch.randn(2, 3, first.image_size, first.image_size)
    # The same two forward passes, then one float32 addition (≤ u of the sum's size).
    summed = joint.members[0](x) + joint.members[1](x)
    assert torch.allclose(joint(x), summed, rtol=0, atol=2 * gamma(2, U32) * float(summed.detach().abs().max()))
    state = joint.trainable_state_dict()
    assert all(k.startswith(("members.0.", "members.1.")) for k in state)
    joint.load_trainable_state_dict({k: torch.zeros_like(v) for k, v in state.items()})
    assert all(float(v.abs().sum()) == 0 for v in joint.trainable_state_dict().values())
    scratch = build_scratch_model(build_backbone(first.spec, random_init=True, seed=3), num_classes=3)
    trainable = {n for n, p in scratch.named_parameters() if p.requires_grad}
    assert any(n.startswith("backbone.clip.visual.") for n in trainable)
    assert not any(n.startswith("backbone.clip.transformer.") for n in trainable)  # text tower stays frozen
    assert set(scratch.trainable_state_dict()) == {
        n for n in scratch.state_dict() if n.startswith(("backbone.clip.visual.", "head."))
    }
