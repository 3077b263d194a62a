"""Backbones (book: Method, 'Backbones'): registry, activations, offline weights, local checkpoints,
feature interface."""

from __future__ import annotations

import open_clip
import pytest
import torch
from tiny import TINY_CFG
import torch.nn.functional as F
from open_clip.transformer import QuickGELU
from safetensors.torch import save_file
from tolerances import U32, f32_sum, network
from torch import nn

from ltlib import backbones
from ltlib.backbones import (Backbone, BackboneSpec, build_backbone, flatten_crops, get_spec, list_backbones,
                             mean_over_crops, register_arch, register_backbone)
from ltlib.errors import ConfigError, WeightsNotFoundError

# The tiny towers: patch embedding, 2 blocks of 6 dot-product layers (≤ 128 terms), final projection:
# 16 layers of width ≤ 128 for tolerances.network.
TINY_WIDTH, TINY_LAYERS = 128, 16


@pytest.fixture()
def isolated_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backbones, "_REGISTERED", {})


@pytest.fixture(scope="module")
def tiny_spec() -> BackboneSpec:
    return BackboneSpec("tiny-test", arch=register_arch("ltlib-test-tiny", TINY_CFG))


def images(n: int = 2, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------- registry
def test_registry_holds_the_papers_three_backbones() -> None:
    assert {"clip", "openclip", "metaclip"} <= set(list_backbones())
    expected = {"clip": ("ViT-B-16-quickgelu", "openai"), "openclip": ("ViT-B-16", "laion2b_s34b_b88k"),
                "metaclip": ("ViT-B-16-quickgelu", "metaclip_400m")}
    for name, (arch, tag) in expected.items():
        spec = get_spec(name)
        assert (spec.name, spec.arch, spec.pretrained, spec.template) == (name, arch, tag, "a photo of a {}.")


@pytest.mark.parametrize("name, activation", [("clip", QuickGELU), ("openclip", nn.GELU), ("metaclip", QuickGELU)])
def test_registry_entry_builds_with_its_training_activation(name: str, activation: type) -> None:
    backbone = build_backbone(name, random_init=True)
    blocks = list(backbone.blocks) + list(backbone.clip.transformer.resblocks)
    assert all(type(block.mlp.gelu) is activation for block in blocks)
    assert (backbone.feature_dim, backbone.embed_dim, backbone.image_size, len(backbone.blocks)) == (768, 512, 224, 12)
    assert tuple(backbone.visual_projection.shape) == (768, 512)
    assert all(p.dtype == torch.float32 and not p.requires_grad for p in backbone.parameters())


def test_tag_trained_with_another_activation_is_refused() -> None:
    # The official release forced QuickGELU on a GELU model (book: Method, 'What we changed from the
    # official release'); the reverse is as wrong.
    with pytest.raises(ConfigError, match="QuickGELU"):
        build_backbone(BackboneSpec("wrong-act", arch="ViT-B-16", pretrained="openai"), random_init=True)
    with pytest.raises(ConfigError, match="no pre-trained tag"):
        build_backbone(BackboneSpec("wrong-tag", arch="ViT-B-16-quickgelu", pretrained="laion2b_s34b_b88k"),
                       weights="unused.pt")


def test_register_backbone_is_idempotent_and_guards_names(isolated_registry: None, tiny_spec: BackboneSpec) -> None:
    register_backbone(tiny_spec)
    register_backbone(tiny_spec)  # a notebook re-running its set-up cell
    assert get_spec("tiny-test") is tiny_spec and "tiny-test" in list_backbones()
    other = BackboneSpec("tiny-test", arch=tiny_spec.arch, template="a {}.")
    with pytest.raises(ConfigError, match="already registered"):
        register_backbone(other)
    assert register_backbone(other, overwrite=True) is other and get_spec("tiny-test") is other
    with pytest.raises(ConfigError, match="already registered"):
        register_backbone(BackboneSpec("clip", arch="ViT-B-16"))  # shadows a YAML entry
    with pytest.raises(ConfigError, match="unknown backbone 'nope'.*clip"):
        get_spec("nope")


def test_spec_and_arch_validation() -> None:
    with pytest.raises(ConfigError, match="template"):
        BackboneSpec("x", arch="ViT-B-16", template="a photo")
    with pytest.raises(ConfigError, match="lacks key"):
        register_arch("ltlib-test-bad", {"embed_dim": 8})
    with pytest.raises(ConfigError, match="different config"):
        register_arch("ViT-B-16", TINY_CFG)
    with pytest.raises(ConfigError, match="no arch"):
        build_backbone(BackboneSpec("x", arch="ltlib-no-such-arch"), random_init=True)


# --------------------------------------------------------------------------- weights
def test_offline_hub_tag_fails_at_once_naming_the_local_file_option(monkeypatch: pytest.MonkeyPatch,
                                                                     tmp_path) -> None:
    def no_network(*args, **kwargs):
        raise AssertionError("open_clip was asked to build/download while offline")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(open_clip, "create_model", no_network)
    with pytest.raises(WeightsNotFoundError) as info:
        build_backbone("clip", cache_dir=tmp_path)
    message = str(info.value)
    assert "HF_HUB_OFFLINE" in message and "--weights PATH" in message and "weights='/path/to/" in message
    assert "huggingface.co/timm/vit_base_patch16_clip_224.openai" in message


def test_offline_hub_tag_is_read_from_the_local_cache(monkeypatch: pytest.MonkeyPatch, tmp_path,
                                                     tiny_spec: BackboneSpec) -> None:
    # Resolution only: loading a .safetensors path for real is covered by the round-trip test below.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    repo = tmp_path / "models--laion--CLIP-ViT-B-16-laion2B-s34B-b88K"
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    cached = repo / "snapshots" / "abc123" / "open_clip_model.safetensors"
    cached.write_bytes(b"stand-in")
    calls, create_model = [], open_clip.create_model

    def record(arch, **kwargs):
        calls.append((arch, kwargs))
        return create_model(tiny_spec.arch)

    monkeypatch.setattr(open_clip, "create_model", record)
    build_backbone("openclip", cache_dir=tmp_path)
    (arch, kwargs), = calls
    assert arch == "ViT-B-16" and kwargs["pretrained"] == str(cached) and kwargs["precision"] == "fp32"
    assert kwargs["force_preprocess_cfg"]["mean"] == open_clip.OPENAI_DATASET_MEAN


def test_local_checkpoint_round_trip_in_three_formats(tiny_spec: BackboneSpec, tmp_path) -> None:
    source = build_backbone(tiny_spec, random_init=True, seed=1)
    state = source.clip.state_dict()
    torch.save(state, tmp_path / "plain.pt")
    save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "weights.safetensors")
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "ckpt.pt")
    x, prompts = images(), ["a photo of a dog.", "a photo of a cat."]
    with torch.no_grad():
        expected = (source.image_features(x), source.text_embeddings(prompts))
        other = build_backbone(tiny_spec, random_init=True, seed=2).image_features(x)
    # the comparison below can fail
    assert not torch.allclose(other, expected[0], rtol=0, atol=network(expected[0], TINY_WIDTH, TINY_LAYERS))
    for name in ("plain.pt", "weights.safetensors", "ckpt.pt"):
        loaded = build_backbone(tiny_spec, weights=tmp_path / name)
        with torch.no_grad():
            assert torch.equal(loaded.image_features(x), expected[0])
            assert torch.equal(loaded.text_embeddings(prompts), expected[1])


def test_bad_weights_files_are_named(tiny_spec: BackboneSpec, tmp_path) -> None:
    with pytest.raises(WeightsNotFoundError, match="missing.pt"):
        build_backbone(tiny_spec, weights=tmp_path / "missing.pt")
    wider = BackboneSpec("wider", arch=register_arch("ltlib-test-wider", {**TINY_CFG, "embed_dim": 48}))
    torch.save(build_backbone(wider, random_init=True).clip.state_dict(), tmp_path / "wider.pt")
    with pytest.raises(ConfigError, match="wider.pt.*ltlib-test-tiny"):
        build_backbone(tiny_spec, weights=tmp_path / "wider.pt")
    with pytest.raises(WeightsNotFoundError, match="names no hub weights"):
        build_backbone(tiny_spec)


def test_random_init_is_seeded_and_leaves_the_global_rng_alone(tiny_spec: BackboneSpec) -> None:
    state = torch.get_rng_state()
    first, again, other = (build_backbone(tiny_spec, random_init=True, seed=s) for s in (5, 5, 6))
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(first.visual_projection, again.visual_projection)
    assert not torch.equal(first.visual_projection, other.visual_projection)


# --------------------------------------------------------------------------- feature interface
def test_features_are_ln_post_cls_without_projection(tiny_spec: BackboneSpec) -> None:
    backbone = build_backbone(tiny_spec, random_init=True)
    visual, x = backbone.clip.visual, images(3)
    with torch.no_grad():
        features = backbone.image_features(x)
        tokens = visual.transformer(visual._embeds(x))
        manual = F.layer_norm(tokens[:, 0], (64,), visual.ln_post.weight, visual.ln_post.bias, visual.ln_post.eps)
        encoded = backbone.clip.encode_image(x, normalize=True)
    assert features.shape == (3, backbone.feature_dim) == (3, 64)
    torch.testing.assert_close(features, manual, rtol=0, atol=network(manual, TINY_WIDTH, TINY_LAYERS))
    torch.testing.assert_close(backbone.image_embeddings(x), encoded, rtol=0,
                               atol=network(encoded, TINY_WIDTH, TINY_LAYERS))


def test_text_embeddings_are_unit_fp32_and_batch_independent(tiny_spec: BackboneSpec) -> None:
    backbone = build_backbone(tiny_spec, random_init=True)
    prompts = [f"a photo of a class {i}." for i in range(5)]
    text = backbone.text_embeddings(prompts)
    chunked = backbone.text_embeddings(prompts, batch_size=2)
    with torch.no_grad():
        reference = backbone.clip.encode_text(backbone.tokenizer(prompts), normalize=True)
    assert text.shape == (5, 32) and text.dtype == torch.float32 and not text.requires_grad
    torch.testing.assert_close(text.norm(dim=-1), torch.ones(5), rtol=0, atol=2 * f32_sum(32))  # normalise, then a norm
    torch.testing.assert_close(text, reference, rtol=0, atol=network(reference, TINY_WIDTH, TINY_LAYERS))
    torch.testing.assert_close(chunked, text, rtol=0, atol=network(text, TINY_WIDTH, TINY_LAYERS))  # other batch sizes
    assert backbone.tokenizer(["x"]).shape == (1, 16)  # the custom arch's context length


def test_from_clip_wraps_a_model_built_elsewhere_and_stays_frozen() -> None:
    torch.manual_seed(0)
    clip = open_clip.model.CLIP(
        embed_dim=TINY_CFG["embed_dim"],
        vision_cfg=TINY_CFG["vision_cfg"],
        text_cfg=TINY_CFG["text_cfg"],
        output_dict=True,
    )
    backbone = Backbone.from_clip(clip, BackboneSpec("mini-clip", arch="in-memory"))
    backbone.train()
    assert not backbone.training and not backbone.clip.visual.training
    assert not any(p.requires_grad for p in backbone.parameters())
    assert backbone.mean == open_clip.OPENAI_DATASET_MEAN and backbone.std == open_clip.OPENAI_DATASET_STD
    # Stored as float32 log(1/0.07) ≈ 2.66 (rounded by ≤ 2.66·u), then exp (≤ u): relative ≤ 3.66·u, in float32.
    assert backbone.logit_scale == pytest.approx(1 / 0.07, rel=5 * U32)
    with pytest.raises(ConfigError, match="ViT image tower"):
        Backbone.from_clip(nn.Module(), BackboneSpec("no-vit", arch="x"))


def test_crop_helpers_fold_and_average() -> None:
    crops = torch.arange(2 * 3 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 3, 2, 2)
    flat, num_crops = flatten_crops(crops)
    assert flat.shape == (6, 3, 2, 2) and num_crops == 3
    assert torch.equal(flat[4], crops[1, 1])
    per_crop = flat.flatten(1)
    # Sums of small integers are exact in float32; only the division by 3 rounds (≤ u, on each side).
    torch.testing.assert_close(mean_over_crops(per_crop, 3), crops.flatten(2).mean(dim=1), rtol=2 * U32, atol=0)
    assert flatten_crops(crops[:, 0])[1] == 1
    with pytest.raises(ConfigError, match="images"):
        flatten_crops(torch.zeros(3, 2, 2))
