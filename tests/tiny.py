"""The tiny open_clip towers the module tests build (random weights, seconds to construct), in one place."""

from __future__ import annotations

from ltlib.backbones import Backbone, BackboneSpec, build_backbone, register_arch


def tiny_cfg(layers: int = 2) -> dict:
    """A 32-px CLIP: patch 4 (an 8×8 grid), vision width 64 with ``layers`` blocks, a 2-block text tower."""
    return {"embed_dim": 32,
            "vision_cfg": {"image_size": 32, "patch_size": 4, "width": 64, "layers": layers, "head_width": 32,
                           "mlp_ratio": 2.0},
            "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2}}


TINY_CFG = tiny_cfg(2)


def tiny_spec(name: str, layers: int = 2) -> BackboneSpec:
    """A registry entry for the tiny tower with ``layers`` vision blocks (architecture registered once)."""
    return BackboneSpec(name, arch=register_arch(f"ltlib-test-tiny{'' if layers == 2 else layers}", tiny_cfg(layers)))


def tiny_backbone(name: str, layers: int = 2, seed: int = 4) -> Backbone:
    """The tiny backbone with seeded random weights."""
    return build_backbone(tiny_spec(name, layers), random_init=True, seed=seed)
