"""Tests of ltlib.losses: LA loss on a seeded input, τ scaling, no re-weighting, BS = LA, GLA-Train, validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ltlib.errors import ConfigError
from ltlib.losses import (LOSS_NAMES, BalancedSoftmaxLoss, CrossEntropy, GLATrainLoss, LogitAdjustedLoss,
                          build_loss, log_frequencies)

D1_EXPECTED = 17.725190227433334  # mean CE of z + log(counts/Σcounts), computed independently in float64 numpy


@pytest.fixture(scope="module")
def d1_inputs() -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """A seeded input, default_rng(0): z ~ N(0, 5²) [128, 1000], y, long-tailed counts."""
    rng = np.random.default_rng(0)
    z = rng.normal(0, 5, (128, 1000))
    y = rng.integers(0, 1000, 128)
    counts = np.maximum(5, (1280 * np.exp(-np.arange(1000) / 180.0)).astype(int))
    return torch.from_numpy(z), torch.from_numpy(y), counts


def test_d1_la_loss_matches_spec_value(d1_inputs):
    z, y, counts = d1_inputs
    loss = LogitAdjustedLoss(counts)(z, y)
    assert loss.dtype == torch.float64
    assert float(loss) == pytest.approx(D1_EXPECTED, rel=1e-6)
    assert float(LogitAdjustedLoss(counts)(z.float(), y)) == pytest.approx(D1_EXPECTED, rel=1e-6)


def test_d1_both_forms_agree(d1_inputs):
    z, y, counts = d1_inputs
    log_n = torch.from_numpy(np.log(counts))
    by_frequency = F.cross_entropy(z + log_n - np.log(counts.sum()), y)
    by_count = F.cross_entropy(z + log_n, y)
    assert float(by_frequency) == pytest.approx(D1_EXPECTED, rel=1e-6)
    assert float(by_count) == pytest.approx(D1_EXPECTED, rel=1e-6)


def test_d1_default_tau_is_one(d1_inputs):
    z, y, counts = d1_inputs
    assert LogitAdjustedLoss(counts).tau == 1.0
    assert float(LogitAdjustedLoss(counts)(z, y)) == pytest.approx(float(LogitAdjustedLoss(counts, tau=1.0)(z, y)))


@pytest.mark.parametrize("tau", [0.0, 0.5, 2.0])
def test_tau_scales_the_log_prior(d1_inputs, tau):
    z, y, counts = d1_inputs
    log_pi = torch.from_numpy(np.log(counts / counts.sum()))
    expected = F.cross_entropy(z.float() + tau * log_pi.float(), y)
    assert float(LogitAdjustedLoss(counts, tau=tau)(z, y)) == pytest.approx(float(expected), rel=1e-6)


def test_tau_zero_is_plain_cross_entropy(d1_inputs):
    z, y, counts = d1_inputs
    assert float(LogitAdjustedLoss(counts, tau=0.0)(z, y)) == pytest.approx(float(F.cross_entropy(z, y)), rel=1e-6)
    assert float(CrossEntropy(1000)(z, y)) == pytest.approx(float(F.cross_entropy(z, y)), rel=1e-6)


def test_no_reweighting_loss_is_unweighted_mean_of_per_sample_terms():
    torch.manual_seed(0)
    counts = np.array([1000, 100, 10, 1])
    z, y = torch.randn(64, 4), torch.randint(0, 4, (64,))
    shifted = z + torch.from_numpy(np.log(counts / counts.sum())).float()
    per_sample = -torch.log_softmax(shifted, dim=1)[torch.arange(64), y]
    loss = LogitAdjustedLoss(counts)(z, y)
    assert float(loss) == pytest.approx(float(per_sample.mean()), rel=1e-6)
    # A rare-class sample changes the mean by exactly its own term / N, no class weight.
    assert float(loss) * 64 == pytest.approx(float(per_sample.sum()), rel=1e-6)


def test_balanced_softmax_equals_la_with_tau_one(d1_inputs):
    z, y, counts = d1_inputs
    bs = BalancedSoftmaxLoss(counts)(z, y)
    la = LogitAdjustedLoss(counts, tau=1.0)(z, y)
    assert float(bs) == pytest.approx(float(la), rel=1e-6)
    # Its offset is log n, not log π: the two differ by the constant log Σn.
    offset_gap = BalancedSoftmaxLoss(counts).log_adjust - LogitAdjustedLoss(counts).log_adjust
    assert torch.allclose(offset_gap, torch.full_like(offset_gap, float(np.log(counts.sum()))))


def test_gla_train_adds_both_log_priors():
    torch.manual_seed(1)
    counts = np.array([50, 20, 5])
    pretrain = np.array([0.2, 0.5, 0.3])
    z, y = torch.randn(32, 3), torch.randint(0, 3, (32,))
    expected = F.cross_entropy(z + 0.7 * torch.log(torch.tensor(counts / counts.sum())).float()
                               + torch.log(torch.tensor(pretrain)).float(), y)
    assert float(GLATrainLoss(counts, pretrain, tau=0.7)(z, y)) == pytest.approx(float(expected), rel=1e-6)


def test_gla_train_is_invariant_to_pretrain_prior_scale():
    torch.manual_seed(2)
    counts, prior = np.array([9, 3, 1]), np.array([0.1, 0.3, 0.6])
    z, y = torch.randn(16, 3), torch.randint(0, 3, (16,))
    assert float(GLATrainLoss(counts, prior)(z, y)) == pytest.approx(float(GLATrainLoss(counts, 5 * prior)(z, y)),
                                                                      rel=1e-6)


def test_buffers_are_non_persistent_and_move_with_the_module():
    loss = LogitAdjustedLoss([3, 2, 1])
    assert "log_adjust" not in loss.state_dict()
    assert loss.log_adjust.dtype == torch.float32
    assert loss.to(torch.device("cpu")).log_adjust.device.type == "cpu"


def test_sum_is_fp32_under_autocast():
    torch.manual_seed(3)
    counts = np.array([4000, 400, 40, 5])
    z = (torch.randn(8, 4) * 20)
    y = torch.randint(0, 4, (8,))
    reference = LogitAdjustedLoss(counts)(z, y)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        low = LogitAdjustedLoss(counts)(z.bfloat16(), y)
    assert low.dtype == torch.float32
    # Only the bf16 rounding of z itself remains (no bf16 sum / softmax).
    expected = F.cross_entropy(z.bfloat16().float() + LogitAdjustedLoss(counts).log_adjust, y)
    assert float(low) == pytest.approx(float(expected), rel=1e-6)
    assert float(low) == pytest.approx(float(reference), rel=2e-2)


def test_gradients_flow_to_logits():
    z = torch.randn(4, 3, requires_grad=True)
    LogitAdjustedLoss([5, 3, 1])(z, torch.tensor([0, 1, 2, 2])).backward()
    assert z.grad is not None and torch.allclose(z.grad.sum(dim=1), torch.zeros(4), atol=1e-6)


@pytest.mark.parametrize("bad, index", [([5, 0, 3], 1), ([5, 3, -2], 2), ([np.nan, 1, 1], 0)])
def test_non_positive_count_names_the_class(bad, index):
    with pytest.raises(ConfigError, match=f"class {index} "):
        LogitAdjustedLoss(bad)


def test_logits_width_mismatch_names_both_sizes():
    with pytest.raises(ConfigError, match=r"\[N, 3\].*\(4, 5\)"):
        LogitAdjustedLoss([3, 2, 1])(torch.zeros(4, 5), torch.zeros(4, dtype=torch.long))


def test_build_loss_covers_every_key():
    counts, prior = [10, 5, 1], [0.5, 0.3, 0.2]
    built = {name: build_loss(name, counts, pretrain_prior=prior if name == "GLA-Train" else None)
             for name in LOSS_NAMES}
    assert isinstance(built["CE"], CrossEntropy)
    assert isinstance(built["LA"], LogitAdjustedLoss)
    assert isinstance(built["GLA-Train"], GLATrainLoss)
    assert isinstance(built["BS"], BalancedSoftmaxLoss)
    assert build_loss("LA", counts, tau=0.5).tau == 0.5


def test_build_loss_unknown_key_lists_the_keys():
    with pytest.raises(ConfigError, match="CE, LA, GLA-Train, BS"):
        build_loss("focal", [1, 2])


@pytest.mark.parametrize("name, kwargs", [("GLA-Train", {}), ("LA", {"pretrain_prior": [0.5, 0.5]}),
                                          ("CE", {"tau": 2.0}), ("BS", {"tau": 0.5})])
def test_build_loss_rejects_inconsistent_arguments(name, kwargs):
    with pytest.raises(ConfigError, match=name):
        build_loss(name, [3, 1], **kwargs)


def test_log_frequencies_sum_to_one():
    log_pi = log_frequencies([4980, 5, 100])
    assert float(log_pi.exp().sum()) == pytest.approx(1.0, abs=1e-12)
    assert log_pi.dtype == torch.float64
