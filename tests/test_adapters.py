"""AdaptFormer (book: Method, 'AdaptFormer'): bottleneck rule, initialisation, identity at init, placement, scoping."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from tiny import tiny_backbone
import torch.nn.functional as F
from tolerances import U32, gamma, matmul, network

from ltlib.adapters import AdaptFormer, adaptformer_dim, adapters_attached, build_adaptformers
from ltlib.backbones import Backbone
from ltlib.errors import ConfigError
from ltlib.model import build_lift_model

NAMES = [f"class_{i}" for i in range(6)]
# Kaiming-uniform down-projection: std 1/48 over 768·32 = 24,576 draws, whose sample std has a relative
# sd of 1/√(2·24,576) ≈ 0.0045; 0.02 is 4.4 sd (statistical, not rounding; the draws are seeded).
STD_REL = 0.02


def residual_sum_tol(*terms: torch.Tensor) -> float:
    """Two float32 sums of the same residual-stream terms in other orders: γ_M·Σ|terms| each."""
    return 2 * gamma(len(terms), U32) * float(sum(t.abs() for t in terms).max())


def adapter_branch_tol(adapter: AdaptFormer, normed: torch.Tensor) -> float:
    """A written-out AdaptFormer branch vs the module (nn.Linear may fuse the bias): both matmuls' γ_k
    bounds, the first carried through ReLU (1-Lipschitz) and the up-projection, times the scale, twice."""
    down = F.relu(normed @ adapter.down_proj.weight.t() + adapter.down_proj.bias)
    err_down = matmul(normed, adapter.down_proj.weight) + float(adapter.down_proj.bias.abs().max()) * U32
    err_up = err_down * float(adapter.up_proj.weight.abs().sum(1).max()) + matmul(down, adapter.up_proj.weight)
    return 2 * abs(float(adapter.scale)) * (err_up + float(adapter.up_proj.bias.abs().max()) * U32)


@pytest.fixture(scope="module")
def tiny() -> Backbone:
    return tiny_backbone("tiny-adapters", layers=3, seed=0)


def images(n: int, size: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def randomise_(adapter: AdaptFormer, seed: int) -> None:
    """Give a zero-initialised adapter a non-zero up-projection and scale."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        adapter.up_proj.weight.copy_(0.05 * torch.randn(adapter.up_proj.weight.shape, generator=generator))
        adapter.up_proj.bias.copy_(0.05 * torch.randn(adapter.up_proj.bias.shape, generator=generator))
        adapter.scale.fill_(1.7)


# --------------------------------------------------------------------------- bottleneck rule
def test_bottleneck_rule_closed_forms() -> None:
    assert [adaptformer_dim(c) for c in (1000, 365, 8142, 100)] == [32, 8, 256, 4]
    assert [adaptformer_dim(c) for c in (1, 23, 24, 47, 48, 95, 96)] == [1, 1, 1, 1, 2, 2, 4]
    assert adaptformer_dim(40, num_layers=2) == 8


def test_bottleneck_rule_matches_the_float_formula() -> None:
    for num_layers in (1, 2, 3, 12):
        for num_classes in range(1, 3000, 7):
            expected = 2 ** max(0, math.floor(math.log2(num_classes / (2 * num_layers))))
            assert adaptformer_dim(num_classes, num_layers) == expected


def test_bottleneck_rule_rejects_nonsense() -> None:
    with pytest.raises(ConfigError, match="num_classes"):
        adaptformer_dim(0)
    with pytest.raises(ConfigError, match="num_layers"):
        adaptformer_dim(10, num_layers=0)


# --------------------------------------------------------------------------- module and init
def test_initialisation_follows_lift() -> None:
    adapter = AdaptFormer(768, 32, generator=torch.Generator().manual_seed(0))
    assert adapter.ln.eps == 1e-5 and adapter.ln.elementwise_affine
    assert torch.equal(adapter.ln.weight, torch.ones(768)) and torch.equal(adapter.ln.bias, torch.zeros(768))
    assert adapter.scale.item() == 1.0 and adapter.scale.numel() == 1
    assert not adapter.up_proj.weight.any() and not adapter.up_proj.bias.any() and not adapter.down_proj.bias.any()
    assert adapter.down_proj.weight.std().item() == pytest.approx(1 / 48, rel=STD_REL)
    assert sum(p.numel() for p in adapter.parameters()) == 2305 + 1537 * 32
    hidden = torch.randn(2, 5, 768)
    assert torch.equal(adapter(hidden), torch.zeros(2, 5, 768))


def test_scale_multiplies_the_up_bias_too() -> None:
    adapter = AdaptFormer(16, 4)
    with torch.no_grad():
        adapter.up_proj.bias.copy_(torch.arange(16.0))
        adapter.scale.fill_(2.5)
    # Zero up-projection weights: the branch is exactly 2.5·(0 + bias), small integers times 2.5, exact in float32.
    torch.testing.assert_close(adapter(torch.randn(3, 16)), 2.5 * torch.arange(16.0).expand(3, 16), rtol=0, atol=0)


def test_build_adaptformers_is_seeded_per_block() -> None:
    first, again, other = build_adaptformers(3, 64, 8, seed=1), build_adaptformers(3, 64, 8, seed=1), \
        build_adaptformers(3, 64, 8, seed=2)
    assert len(first) == 3
    assert torch.equal(first[2].down_proj.weight, again[2].down_proj.weight)
    assert not torch.equal(first[0].down_proj.weight, first[1].down_proj.weight)
    assert not torch.equal(first[0].down_proj.weight, other[0].down_proj.weight)


def test_identity_at_init_on_vit_b16(vit_b16: Backbone) -> None:
    model = build_lift_model(vit_b16, NAMES, head_init="random")
    assert model.adapters[0].down_proj.out_features == 1  # 6 classes: 2**max(0, floor(log2(6/24)))
    x = images(1, 224)
    with torch.no_grad():
        difference = (model.features(x) - vit_b16.image_features(x)).abs().max().item()
    assert difference == 0.0
    for adapter in build_lift_model(vit_b16, [f"c{i}" for i in range(1000)], head_init="random").adapters:
        assert adapter.down_proj.weight.shape == (32, 768)
        assert adapter.down_proj.weight.std().item() == pytest.approx(1 / 48, rel=STD_REL)


# --------------------------------------------------------------------------- placement
def test_placement_matches_the_manual_formula_on_vit_b16(vit_b16: Backbone) -> None:
    model = build_lift_model(vit_b16, NAMES, head_init="random")
    adapter, block = model.adapters[0], vit_b16.blocks[0]
    randomise_(adapter, seed=0)
    captured = {}
    hook = block.register_forward_hook(lambda module, args, output: captured.update(x=args[0], out=output))
    x = images(1, 224)
    try:
        with torch.no_grad():
            adapted = model.features(x)
    finally:
        hook.remove()
    with torch.no_grad():
        pristine = vit_b16.image_features(x)
    tokens = captured["x"]
    with torch.no_grad():
        hidden = tokens + block.attn(*(3 * [block.ln_1(tokens)]), need_weights=False)[0]
        mlp = block.mlp.c_proj(block.mlp.gelu(block.mlp.c_fc(block.ln_2(hidden))))
        normed = F.layer_norm(hidden, (768,), adapter.ln.weight, adapter.ln.bias, 1e-5)
        branch = F.relu(normed @ adapter.down_proj.weight.t() + adapter.down_proj.bias)
        branch = adapter.scale * (branch @ adapter.up_proj.weight.t() + adapter.up_proj.bias)
        expected = hidden + mlp + branch
        tol = residual_sum_tol(hidden, mlp, branch) + adapter_branch_tol(adapter, normed)
    torch.testing.assert_close(captured["out"], expected, rtol=0, atol=tol)
    # the adapter really changed the features (without one the two paths agree exactly, test above)
    assert (adapted - pristine).abs().max() > 1e-3


def test_adapter_reads_the_post_attention_stream_not_ln2(tiny: Backbone) -> None:
    block, adapter = copy.deepcopy(tiny.blocks[1]), AdaptFormer(64, 4)
    randomise_(adapter, seed=1)
    generator = torch.Generator().manual_seed(2)
    with torch.no_grad():  # a pre-trained LN2 has a non-trivial affine map, so LN_af(LN2(h)) != LN_af(h)
        block.ln_2.weight.copy_(1 + torch.rand(64, generator=generator))
        block.ln_2.bias.copy_(torch.randn(64, generator=generator))
    tokens = torch.randn(2, 65, 64, generator=generator)
    with torch.no_grad(), adapters_attached([block], [adapter]):
        out = block(tokens)
    with torch.no_grad():
        hidden = tokens + block.attention(block.ln_1(tokens))
        right = hidden + block.mlp(block.ln_2(hidden)) + adapter(hidden)
        wrong = hidden + block.mlp(block.ln_2(hidden)) + adapter(block.ln_2(hidden))
        # the same modules, other sum order
        tol = residual_sum_tol(hidden, block.mlp(block.ln_2(hidden)), adapter(hidden))
    torch.testing.assert_close(out, right, rtol=0, atol=tol)
    assert (out - wrong).abs().max() > tol  # the wrong wiring is told apart beyond rounding


# --------------------------------------------------------------------------- scoping and registration
def test_adapters_apply_only_inside_the_models_forward(tiny: Backbone) -> None:
    model = build_lift_model(tiny, NAMES)
    randomise_(model.adapters[2], seed=3)
    x = images(2, 32)
    with torch.no_grad():
        before = tiny.image_features(x)
        adapted = model.features(x)
        after = tiny.image_features(x)
    assert torch.equal(before, after) and not torch.allclose(adapted, before, rtol=0, atol=network(before, 128, 16))
    assert all("forward" not in vars(block) for block in tiny.blocks)


def test_attaching_checks_its_inputs(tiny: Backbone) -> None:
    with pytest.raises(ConfigError, match="2 adapters for 3"):
        with adapters_attached(tiny.blocks, build_adaptformers(2, 64, 4)):
            pass
    adapters = build_adaptformers(3, 64, 4)
    with pytest.raises(ConfigError, match="nested"):
        with adapters_attached(tiny.blocks, adapters), adapters_attached(tiny.blocks, adapters):
            pass
    assert all("forward" not in vars(block) for block in tiny.blocks)  # restored after the error
    tiny.clip.visual.set_grad_checkpointing(True)
    try:
        with pytest.raises(ConfigError, match="checkpointing"):
            tiny.image_features(images(1, 32), adapters)
    finally:
        tiny.clip.visual.set_grad_checkpointing(False)


def test_adapters_are_the_classifiers_submodules(tiny: Backbone) -> None:
    model = build_lift_model(tiny, NAMES)
    adapter_params = {id(p) for p in model.adapters.parameters()}
    assert adapter_params <= {id(p) for p in model.parameters()}
    keys = model.state_dict().keys()
    assert sum(k.startswith("adapters.") for k in keys) == 3 * 7  # scale, ln (2), down (2), up (2)
    assert not any(".adapter" in k for k in keys if k.startswith("backbone."))
    clone = copy.deepcopy(model)
    randomise_(clone.adapters[0], seed=5)
    x = images(2, 32)
    with torch.no_grad():
        assert torch.equal(model.features(x), tiny.image_features(x))
        bound = network(model.features(x), 128, 16)
        assert not torch.allclose(clone.features(x), model.features(x), rtol=0, atol=bound)
    assert clone.double().adapters[0].up_proj.weight.dtype == torch.float64  # .to() reaches them


def test_gradients_reach_adapters_but_not_the_backbone(tiny: Backbone) -> None:
    model = build_lift_model(tiny, NAMES, bottleneck=8)  # r=1 could leave a block's single ReLU unit dead
    model.train()
    model(images(4, 32)).logsumexp(dim=1).mean().backward()
    assert all(a.up_proj.weight.grad.abs().sum() > 0 for a in model.adapters)
    assert model.head.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.backbone.parameters())
