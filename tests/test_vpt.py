"""Deep visual prompt tuning (VPT as LIFT runs it; the paper's §4.1): init, trainable set, token layout,
deep replacement, agreement with LIFT's append-at-the-end layout, seq-first blocks, training and resume
through the engine, the recipe and its refusals."""

from __future__ import annotations

import copy
import dataclasses
import math
from types import SimpleNamespace

import pytest
import torch
from tiny import tiny_backbone
from torch import nn
from torch.utils.data import Dataset

from ltlib.adapters import adapters_attached, build_adaptformers
from ltlib.backbones import Backbone
from ltlib.checkpoint import CHECKPOINT_NAME, load_trainable_state
from ltlib.engine import train
from ltlib.errors import ConfigError
from ltlib.model import LTClassifier, build_lift_model
from ltlib.prompts import VPT, VPT_LENGTH, build_vpts, remove_prompts, vpt_init_bound
from ltlib.recipes import TrainConfig, load_recipe
from ltlib.runs import RunSpec, _build_model

NAMES = [f"class_{i}" for i in range(6)]
NUM_TOKENS = 1 + (32 // 4) ** 2  # CLS + an 8x8 grid of patches
# Same float32 arithmetic with the keys of every attention in another order (softmax sums over <= 75 terms,
# then three blocks and ln_post): a relative rounding of ~75·2^-24 ≈ 5e-6 per sum, bounded well below 1e-4
# on ln_post's O(1) outputs.
REORDER_ATOL = 1e-4


@pytest.fixture(scope="module")
def tiny() -> Backbone:
    return tiny_backbone("tiny-vpt", layers=3, seed=4)


def images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def vpt_model(backbone: Backbone, seed: int = 0) -> LTClassifier:
    return build_lift_model(backbone, NAMES, adapter="vpt", head_init="random", seed=seed)


def lift_layout_features(backbone: Backbone, vpts: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
    """An independent reference written the way LIFT lays the tokens out: the prompts follow the patches;
    each block keeps the first ``NUM_TOKENS`` tokens and appends its own prompts; CLS after ln_post."""
    visual = backbone.visual
    tokens = visual._embeds(x)
    for block, vpt in zip(backbone.blocks, vpts):
        tokens = torch.cat([tokens[:, :NUM_TOKENS], vpt.prompts.expand(len(x), -1, -1)], dim=1)
        tokens = block(tokens)  # outside adapters_attached: the block's pristine forward
    return visual.ln_post(tokens[:, 0])


# --------------------------------------------------------------------------- initialisation
def test_init_bound_is_the_xavier_bound_of_a_patch() -> None:
    assert vpt_init_bound(16, 768) == 1 / 16  # sqrt(6 / (3·256 + 768)) = sqrt(1/256), exact in binary
    assert vpt_init_bound((4, 4), 64) == math.sqrt(6 / 112)
    assert vpt_init_bound((2, 8), 64) == vpt_init_bound(4, 64)
    with pytest.raises(ConfigError, match="positive patch size"):
        vpt_init_bound(0, 768)


def test_prompts_are_uniform_within_the_bound_and_seeded() -> None:
    vpt = VPT(VPT_LENGTH, 768, 1 / 16, generator=torch.Generator().manual_seed(0))
    values = vpt.prompts.detach()
    assert VPT_LENGTH == 10 and values.shape == (10, 768) and vpt.length == 10
    assert values.abs().max() <= 1 / 16
    # U(-b, b) has std b/√3; with 7,680 draws the sample std's relative standard error is
    # sqrt((kurtosis - 1) / (4 n)) = sqrt(0.8 / 30720) ≈ 0.005, so 2 % is four standard errors.
    assert values.std().item() == pytest.approx(1 / (16 * math.sqrt(3)), rel=0.02)
    first, again, other = (build_vpts(3, 64, 5, 4, seed=s) for s in (1, 1, 2))
    assert len(first) == 3 and first[0].prompts.shape == (5, 64)
    assert torch.equal(first[2].prompts, again[2].prompts)
    assert not torch.equal(first[0].prompts, first[1].prompts)
    assert not torch.equal(first[0].prompts, other[0].prompts)
    assert first[0].prompts.abs().max() <= vpt_init_bound(4, 64)
    with pytest.raises(ConfigError, match="length >= 1"):
        VPT(0, 64, 0.1)


# --------------------------------------------------------------------------- trainable set and shapes
def test_only_prompts_and_head_train(tiny: Backbone) -> None:
    model = vpt_model(tiny)
    assert all(isinstance(a, VPT) and a.length == VPT_LENGTH for a in model.adapters)
    trainable = {n: p.numel() for n, p in model.named_parameters() if p.requires_grad}
    assert set(trainable) == {f"adapters.{i}.prompts" for i in range(3)} | {"head.weight"}
    assert sum(trainable.values()) == 3 * 10 * 64 + 6 * 64  # L·length·D prompts + C·D head
    assert sum(p.numel() for p in model.trainable_parameters()) == 3 * 10 * 64 + 6 * 64
    assert set(model.trainable_state_dict()) == set(trainable)
    assert build_lift_model(tiny, NAMES, adapter="vpt", prompt_length=3).adapters[2].length == 3


def test_token_counts_through_the_tower(tiny: Backbone) -> None:
    model, seen = vpt_model(tiny), {}
    hooks = [block.register_forward_hook(lambda m, a, out, i=i: seen.update({i: (a[0].shape, out.shape)}))
             for i, block in enumerate(tiny.blocks)]
    hooks.append(tiny.visual.ln_post.register_forward_hook(lambda m, a, out: seen.update(ln_post=a[0].shape)))
    try:
        with torch.no_grad():
            logits, features = model.logits_and_features(images(2))
            crops = model(images(6).view(2, 3, 3, 32, 32))
    finally:
        for hook in hooks:
            hook.remove()
    assert logits.shape == (2, 6) and features.shape == (2, 64) and crops.shape == (2, 6)
    assert seen[0] == ((3 * 2, NUM_TOKENS, 64), (3 * 2, NUM_TOKENS + 10, 64))  # last call: 3 crops × 2
    assert seen[1][0] == seen[2][0] == seen[2][1] == (6, NUM_TOKENS + 10, 64)  # replaced, not accumulated
    assert seen["ln_post"] == (6, NUM_TOKENS, 64)  # the prompts are gone before ln_post
    assert all("forward" not in vars(block) for block in tiny.blocks)


def test_gradients_reach_prompts_but_not_the_backbone(tiny: Backbone) -> None:
    model = vpt_model(tiny)
    model.train()
    model(images(4)).logsumexp(dim=1).mean().backward()
    assert all(a.prompts.grad is not None and a.prompts.grad.abs().sum() > 0 for a in model.adapters)
    assert model.head.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.backbone.parameters())


# --------------------------------------------------------------------------- semantics
def test_features_equal_lifts_append_at_the_end_layout(tiny: Backbone) -> None:
    model, x = vpt_model(tiny, seed=1), images(3, seed=1)
    with torch.no_grad():
        ours, frozen = model.features(x), tiny.image_features(x)
        reference = lift_layout_features(tiny, model.adapters, x)
    torch.testing.assert_close(ours, reference, rtol=0, atol=REORDER_ATOL)
    assert (ours - frozen).abs().max() > 100 * REORDER_ATOL  # the prompts do change the features


def test_each_blocks_prompts_change_the_cls_feature(tiny: Backbone) -> None:
    """Block k's prompts reach the CLS token (its last-block prompts too), but only through ln_1: a block
    discards its prompts' outputs, so shifting every coordinate of a prompt by one constant (which
    LayerNorm removes) changes nothing."""
    model, x = vpt_model(tiny), images(2)
    generator = torch.Generator().manual_seed(6)
    with torch.no_grad():
        base = model.features(x)
        for block in range(3):
            moved = vpt_model(tiny)
            moved.adapters[block].prompts.add_(torch.randn(VPT_LENGTH, 64, generator=generator))
            assert (moved.features(x) - base).abs().max() > 100 * REORDER_ATOL, block
            shifted = vpt_model(tiny)
            shifted.adapters[block].prompts.add_(torch.randn(VPT_LENGTH, 1, generator=generator))
            # LayerNorm of p + c·1 equals that of p up to float32 rounding of the mean and variance
            torch.testing.assert_close(shifted.features(x), base, rtol=0, atol=REORDER_ATOL)


@pytest.mark.parametrize("block", [1, 2])
def test_previous_prompt_outputs_do_not_reach_the_next_block(tiny: Backbone, block: int) -> None:
    """Deep replacement: whatever block k-1 made of its prompts is discarded before block k computes."""
    model, x = vpt_model(tiny), images(2)
    generator = torch.Generator().manual_seed(block)

    def overwrite(start: int, stop: int):
        def hook(module, args):
            tokens = args[0].clone()
            tokens[:, start:stop] = 10 * torch.randn(tokens[:, start:stop].shape, generator=generator)
            return (tokens, *args[1:])
        return hook

    with torch.no_grad():
        base = model.features(x)
        for (start, stop), same in (((1, 1 + VPT_LENGTH), True), ((1 + VPT_LENGTH, 2 + VPT_LENGTH), False)):
            handle = tiny.blocks[block].register_forward_pre_hook(overwrite(start, stop))
            try:
                changed = model.features(x)
            finally:
                handle.remove()
            # the prompt slot: bit-for-bit the same computation; a patch token: a different one
            assert torch.equal(changed, base) if same else (changed - base).abs().max() > 1e-3


def test_sequence_first_blocks_give_the_same_features(tiny: Backbone) -> None:
    model, x = vpt_model(tiny, seed=2), images(2, seed=2)
    seq_first = copy.deepcopy(tiny)
    seq_first.visual.transformer.batch_first = False
    for block in seq_first.blocks:
        block.attn.batch_first = False
    other = LTClassifier(seq_first, model.head, model.adapters)
    with torch.no_grad():
        torch.testing.assert_close(other.features(x), model.features(x), rtol=0, atol=REORDER_ATOL)
        torch.testing.assert_close(seq_first.image_features(x), tiny.image_features(x), rtol=0, atol=REORDER_ATOL)
        assert (other.features(x) - seq_first.image_features(x)).abs().max() > 100 * REORDER_ATOL


def test_attaching_refuses_mixtures_and_wrong_counts(tiny: Backbone) -> None:
    mixed = nn.ModuleList([*build_vpts(2, 64, patch_size=4), *build_adaptformers(1, 64, 4)])
    with pytest.raises(ConfigError, match="cannot be mixed"), adapters_attached(tiny.blocks, mixed):
        pass
    with pytest.raises(ConfigError, match="2 adapters for 3"), \
            adapters_attached(tiny.blocks, build_vpts(2, 64, patch_size=4)):
        pass
    assert all("forward" not in vars(block) for block in tiny.blocks)
    tokens = torch.zeros(2, NUM_TOKENS + 4, 64)
    assert remove_prompts(tokens, build_vpts(3, 64, 4, 4), 1).shape == (2, NUM_TOKENS, 64)
    assert remove_prompts(tokens, build_adaptformers(3, 64, 4), 1) is tokens
    with pytest.raises(ConfigError, match="cannot hold"):
        VPT(2, 64, 0.1)(torch.zeros(1, 3, 64), num_prefix=1, replaced=5)


# --------------------------------------------------------------------------- engine, checkpoint, recipe
class RandomImages(Dataset):
    """Fixed noise images with labels; each item adds noise from torch's global RNG (a stand-in augmentation)."""

    def __init__(self, n: int = 12) -> None:
        self.x, self.y = images(n, seed=9), torch.arange(n) % len(NAMES)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        return self.x[i] + 0.1 * torch.randn(self.x[i].shape), self.y[i]


def test_training_and_resuming_through_the_engine(tiny: Backbone, tmp_path) -> None:
    config = dataclasses.replace(load_recipe("mini_lift_vpt"), epochs=1, batch_size=4, micro_batch_size=4,
                                 max_steps=3, checkpoint_every=1, log_every=1, precision="fp32", lr=0.5)
    full = vpt_model(tiny)
    initial = {k: v.clone() for k, v in full.trainable_state_dict().items()}
    train(full, RandomImages(), nn.CrossEntropyLoss(), config, tmp_path / "full", progress=False)
    trained = full.trainable_state_dict()
    assert all(not torch.equal(trained[f"adapters.{i}.prompts"], initial[f"adapters.{i}.prompts"]) for i in range(3))
    cut = vpt_model(tiny)
    train(cut, RandomImages(), nn.CrossEntropyLoss(), config, tmp_path / "cut", stop_after_steps=1, progress=False)
    resumed = vpt_model(tiny, seed=99)  # other initial prompts: only the checkpoint can make them equal
    train(resumed, RandomImages(), nn.CrossEntropyLoss(), config, tmp_path / "cut", progress=False)
    assert all(torch.equal(v, trained[k]) for k, v in resumed.trainable_state_dict().items())
    fresh = vpt_model(tiny, seed=5)
    saved = torch.load(tmp_path / "full" / CHECKPOINT_NAME, map_location="cpu", weights_only=False)["model"]
    assert {k for k in saved if k.startswith("adapters.")} == {f"adapters.{i}.prompts" for i in range(3)}
    load_trainable_state(fresh, saved)
    x = images(2, seed=3)
    with torch.no_grad():
        assert torch.equal(fresh(x), full(x))


def test_the_vpt_recipe_is_mini_lift_with_prompts(tiny: Backbone) -> None:
    recipe = load_recipe("mini_lift_vpt")
    assert recipe.adapter == "vpt" and recipe.bottleneck is None
    assert recipe == dataclasses.replace(load_recipe("mini_lift"), adapter="vpt")
    spec = RunSpec("toy", "tiny-vpt", "LA", 0, recipe)
    model = _build_model(spec, SimpleNamespace(classnames=NAMES), lambda name: tiny)
    assert all(isinstance(a, VPT) and a.length == VPT_LENGTH for a in model.adapters)


@pytest.mark.parametrize("make", [lambda: load_recipe("mini_lift", adapter="lora"),
                                  lambda: TrainConfig(adapter="lora")])
def test_an_unknown_adapter_is_one_line(make) -> None:
    with pytest.raises(ConfigError, match=r"adapter='lora'.*'adaptformer', 'vpt'") as error:
        make()
    assert "\n" not in str(error.value)


def test_sizes_belong_to_their_adapter(tiny: Backbone) -> None:
    with pytest.raises(ConfigError, match="adapter='lora'") as error:
        build_lift_model(tiny, NAMES, adapter="lora")
    assert "\n" not in str(error.value)
    with pytest.raises(ConfigError, match="bottleneck=8 applies to adapter='adaptformer' only"):
        build_lift_model(tiny, NAMES, adapter="vpt", bottleneck=8)
    with pytest.raises(ConfigError, match="prompt_length=4 applies to adapter='vpt' only"):
        build_lift_model(tiny, NAMES, prompt_length=4)
    with pytest.raises(ConfigError, match="bottleneck"):
        load_recipe("mini_lift_vpt", bottleneck=8)
