"""Heads (book: Method, 'Cosine head', 'Backbones'): cosine classifier, text initialisation, CLIP zero-shot."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny import tiny_backbone
import torch.nn.functional as F

from tolerances import U32, f32_sum, gamma, matmul, network

from ltlib.backbones import Backbone
from ltlib.errors import ConfigError
from ltlib.heads import (CosineClassifier, ZeroShotClassifier, class_text_embeddings, format_prompts,
                         init_head_from_text, text_head_weights)
from ltlib.model import build_lift_model

NAMES = ["tench", "great_white_shark", "apartment_building-outdoor", "goldfish", "jay"]
# The tiny towers: patch embedding, 2 blocks of 6 dot-product layers (qkv, scores, weighted sum, out, fc,
# proj; ≤ 128 terms each), final projection and head: 16 layers of width ≤ 128 (tolerances.network).
TINY_WIDTH, TINY_LAYERS = 128, 16
# 25·cos of 768-dim rows in float32: the float64 inputs rounded (2u), two normalisations and the dot of
# unit vectors (Σ|x̂_i ŵ_i| ≤ 1 by Cauchy–Schwarz), γ₇₇₂ each; the float64 reference rounded once (u).
COSINE_768 = 25 * (3 * gamma(772, U32) + 3 * U32)


@pytest.fixture(scope="module")
def tiny() -> Backbone:
    return tiny_backbone("tiny-heads", layers=2, seed=4)


def images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def spec_g_inputs() -> tuple[np.ndarray, np.ndarray]:
    """x [128, 768] and W [1000, 768] from default_rng(0) after the draws of tests/test_losses.py."""
    rng = np.random.default_rng(0)
    rng.normal(0, 5, (128, 1000)), rng.integers(0, 1000, 128)  # check 1's draws come first
    return rng.normal(0, 1, (128, 768)), rng.normal(0, 1, (1000, 768))


# --------------------------------------------------------------------------- cosine head
def test_cosine_head_is_25_cos_and_scale_invariant() -> None:
    x, w = spec_g_inputs()
    expected = 25 * (x / np.linalg.norm(x, axis=1, keepdims=True)) @ (w / np.linalg.norm(w, axis=1, keepdims=True)).T
    head = CosineClassifier(768, 1000)
    head.apply_weight(torch.from_numpy(w).float())
    xt = torch.from_numpy(x).float()
    with torch.no_grad():
        logits = head(xt)
        torch.testing.assert_close(logits, torch.from_numpy(expected).float(), rtol=0, atol=COSINE_768)
        assert logits.abs().max() <= 25.0
        torch.testing.assert_close(head(3 * xt), logits, rtol=0, atol=2 * COSINE_768)  # two float32 evaluations
        head.apply_weight(torch.from_numpy(7 * w).float())
        torch.testing.assert_close(head(xt), logits, rtol=0, atol=2 * COSINE_768)


def test_cosine_head_reaches_its_bounds_and_has_no_bias() -> None:
    head = CosineClassifier(4, 2, scale=25.0)
    head.apply_weight(torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0]]))
    with torch.no_grad():
        logits = head(torch.tensor([[2.0, 0, 0, 0], [0, -5.0, 0, 0], [0, 0, 1.0, 0]]))
    # Axis-aligned rows: normalising and the dot products are exact but for the division (≤ u relative).
    torch.testing.assert_close(logits, torch.tensor([[25.0, 0.0], [0.0, -25.0], [0.0, 0.0]]), rtol=2 * U32, atol=0)
    assert [name for name, _ in head.named_parameters()] == ["weight"]


def test_placeholder_init_is_seeded_with_unit_rows() -> None:
    first, again, other = (CosineClassifier(16, 5, seed=1), CosineClassifier(16, 5, seed=1),
                           CosineClassifier(16, 5, seed=2))
    # normalise, then a norm: two float32 reductions over 16 terms
    torch.testing.assert_close(first.weight.norm(dim=1), torch.ones(5), rtol=0, atol=2 * f32_sum(16))
    assert torch.equal(first.weight, again.weight) and not torch.equal(first.weight, other.weight)


def test_apply_weight_keeps_the_parameter_an_optimizer_already_holds() -> None:
    head = CosineClassifier(8, 3)
    parameter = head.weight
    optimizer = torch.optim.SGD(head.parameters(), lr=0.5)
    new = torch.randn(3, 8, generator=torch.Generator().manual_seed(0))
    head.apply_weight(new)
    assert head.weight is parameter and torch.equal(head.weight, new)
    head(torch.randn(4, 8)).logsumexp(dim=1).sum().backward()
    optimizer.step()
    assert not torch.equal(head.weight, new)
    with pytest.raises(ConfigError, match="weight: expected shape"):
        head.apply_weight(torch.zeros(3, 9))


# --------------------------------------------------------------------------- text init
def test_prompts_read_underscores_as_spaces() -> None:
    assert format_prompts(NAMES[1:3], "a photo of a {}.") == [
        "a photo of a great white shark.", "a photo of a apartment building-outdoor."]


def test_text_head_weights_are_normalised_projected_text(tiny: Backbone) -> None:
    weights = text_head_weights(tiny, NAMES)
    text = tiny.text_embeddings(format_prompts(NAMES, "a photo of a {}."))
    projection = tiny.visual_projection.detach()
    assert weights.shape == (5, 64)
    # Both project and normalise in float32: the projection errs by matmul() before normalising by |t P|.
    size = float((text @ projection.t()).norm(dim=1).min())
    tol = 2 * (matmul(text, projection) / size + f32_sum(32))
    torch.testing.assert_close(weights, F.normalize(text @ projection.t(), dim=-1), rtol=0, atol=tol)
    hidden = torch.randn(200, 64, generator=torch.Generator().manual_seed(1))
    head = init_head_from_text(CosineClassifier(64, 5), tiny, NAMES)
    with torch.no_grad():
        lift = head(hidden).argmax(dim=1)
    reference = ((hidden @ projection) @ text.t() / (text @ projection.t()).norm(dim=1)).argmax(dim=1)
    assert torch.equal(lift, reference)  # exact argmax agreement


def test_text_init_differs_from_zero_shot_only_by_per_class_norms(tiny: Backbone) -> None:
    # book: Method, 'Cosine head': LIFT logit_j ∝ h·P t_j / (|h| |P t_j|), zero-shot ∝ hP·t_j / |hP|.
    model, zero_shot = build_lift_model(tiny, NAMES), ZeroShotClassifier(tiny, NAMES)
    x = images(6)
    with torch.no_grad():
        lift, features = model.logits_and_features(x)
        zs = zero_shot(x)
    text = class_text_embeddings(tiny, NAMES)
    class_norms = (text @ tiny.visual_projection.detach().t()).norm(dim=1)
    lhs = lift * features.norm(dim=1, keepdim=True) * class_norms / 25.0
    rhs = zs * (features @ tiny.visual_projection).norm(dim=1, keepdim=True) / tiny.logit_scale
    # Both sides pass the tiny tower and a few norms and products in float32.
    torch.testing.assert_close(lhs, rhs, rtol=0, atol=network(rhs, TINY_WIDTH, TINY_LAYERS + 4))


def test_template_ensemble_is_an_unnormalised_mean(tiny: Backbone) -> None:
    templates = ["a photo of a {}.", "a drawing of a {}.", "{}"]
    mean = class_text_embeddings(tiny, NAMES, templates)
    singles = [class_text_embeddings(tiny, NAMES, t) for t in templates]
    # The same text embeddings (the tower may batch the 3 prompts differently), then a 3-term mean.
    torch.testing.assert_close(mean, sum(singles) / 3, rtol=0, atol=network(mean, TINY_WIDTH, TINY_LAYERS) + f32_sum(3))
    # A mean of unit vectors is shorter than 1 unless they coincide; 1e-4 is 50× the rounding of a norm (γ₃₆).
    assert (mean.norm(dim=1) < 1 - 1e-4).all()
    torch.testing.assert_close(singles[0].norm(dim=1), torch.ones(5), rtol=0, atol=2 * f32_sum(32))


def test_text_init_checks_its_arguments(tiny: Backbone) -> None:
    with pytest.raises(ConfigError, match="classnames: 5 names for a head of 4"):
        init_head_from_text(CosineClassifier(64, 4), tiny, NAMES)
    with pytest.raises(ConfigError, match="template"):
        text_head_weights(tiny, NAMES, ["a photo"])


# --------------------------------------------------------------------------- zero-shot (F)
def test_zero_shot_is_clip_logits(tiny: Backbone) -> None:
    zero_shot = ZeroShotClassifier(tiny, NAMES)
    x = images(3)
    with torch.no_grad():
        logits = zero_shot(x)
        tokens = tiny.tokenizer(format_prompts(NAMES, "a photo of a {}."))
        image = tiny.clip.encode_image(x, normalize=True)
        expected = tiny.clip.logit_scale.exp() * image @ tiny.clip.encode_text(tokens, normalize=True).t()
    torch.testing.assert_close(logits, expected, rtol=0, atol=network(expected, TINY_WIDTH, TINY_LAYERS))
    assert "text_weights" in dict(zero_shot.named_buffers()) and "text_weights" not in zero_shot.state_dict()


def test_zero_shot_text_is_computed_once(tiny: Backbone, monkeypatch: pytest.MonkeyPatch) -> None:
    zero_shot = ZeroShotClassifier(tiny, NAMES)

    def refuse(*args, **kwargs):
        raise AssertionError("the text tower ran again")

    monkeypatch.setattr(tiny, "text_embeddings", refuse)
    with torch.no_grad():
        assert zero_shot(images(2)).shape == (2, 5)


def test_zero_shot_averages_crops_and_ignores_adapters(tiny: Backbone) -> None:
    zero_shot = ZeroShotClassifier(tiny, NAMES)
    crops = torch.randn(2, 4, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        per_crop = torch.stack([zero_shot(crops[:, v]) for v in range(4)], dim=1)
        # One batch of 8 crops vs 4 batches of 2: the same tower, other kernel blocking; then a 4-term mean.
        tol = network(per_crop, TINY_WIDTH, TINY_LAYERS) + f32_sum(4) * float(per_crop.abs().max())
        torch.testing.assert_close(zero_shot(crops), per_crop.mean(dim=1), rtol=0, atol=tol)
        model = build_lift_model(tiny, NAMES)
        model.adapters[0].up_proj.bias.copy_(torch.linspace(-1, 1, 64))  # not constant: LN would remove it
        before = zero_shot(crops[:, 0])
        model(crops[:, 0])
        assert torch.equal(zero_shot(crops[:, 0]), before)
        plain = tiny.image_features(crops[:, 0])
        bound = network(plain, TINY_WIDTH, TINY_LAYERS)
        assert not torch.allclose(model.features(crops[:, 0]), plain, rtol=0, atol=bound)
