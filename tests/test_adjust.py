"""Tests of ltlib.adjust: backdoor adjustment rules (the paper's Eq. 7) and GLA's post-hoc
rule (book: Method, 'The GLA prior estimator')."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ltlib.adjust import PRIOR_EPS, backdoor_adjust, gla_posthoc
from ltlib.errors import ConfigError


@pytest.fixture(scope="module")
def three_models() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.randn(50, 8, generator=g) * s for s in (1.0, 3.0, 0.5)]


# ---------------------------------------------------------------- backdoor_adjust


def test_single_model_identity(three_models):
    z = three_models[0]
    assert torch.equal(backdoor_adjust([z]), z)
    assert torch.allclose(backdoor_adjust([z], rule="prob_mean"), torch.log_softmax(z, dim=1), atol=1e-6)


def test_logit_sum_is_the_plain_sum_and_argmax_of_mean(three_models):
    combined = backdoor_adjust(three_models)
    total = three_models[0] + three_models[1] + three_models[2]
    assert torch.allclose(combined, total, atol=1e-6)
    assert torch.equal(combined.argmax(1), (total / 3).argmax(1))


def test_prob_mean_is_log_of_mean_probability(three_models):
    combined = backdoor_adjust(three_models, rule="prob_mean")
    mean_prob = torch.stack([torch.softmax(z, dim=1) for z in three_models]).mean(0)
    assert torch.allclose(combined, torch.log(mean_prob), atol=1e-6)
    assert torch.allclose(combined.exp().sum(1), torch.ones(50), atol=1e-6)


def test_prob_mean_of_identical_models_is_that_models_log_softmax(three_models):
    z = three_models[1]
    assert torch.allclose(backdoor_adjust([z, z, z], rule="prob_mean"), torch.log_softmax(z, dim=1), atol=1e-6)


def test_rules_can_disagree_on_argmax():
    # Model 1 is confident in class 0, models 2 and 3 prefer class 1 (sum: 10 vs 6).
    logits = [torch.tensor([[10.0, 0.0]]), torch.tensor([[0.0, 3.0]]), torch.tensor([[0.0, 3.0]])]
    assert backdoor_adjust(logits).argmax(1).item() == 0
    assert backdoor_adjust(logits, rule="prob_mean").argmax(1).item() == 1


def test_weights(three_models):
    a, b, c = three_models
    assert torch.allclose(backdoor_adjust(three_models, weights=[2.0, 0.0, 1.0]), 2 * a + c, atol=1e-6)
    # prob_mean normalises the weights; a zero weight drops the model.
    expected = torch.log(0.25 * torch.softmax(a, 1) + 0.75 * torch.softmax(c, 1))
    assert torch.allclose(backdoor_adjust(three_models, "prob_mean", weights=[1.0, 0.0, 3.0]), expected, atol=1e-6)


def test_numpy_inputs_and_dtypes():
    z = np.random.default_rng(1).normal(size=(4, 3))
    out = backdoor_adjust([z, z.astype(np.float32)])
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64
    assert backdoor_adjust([z.astype(np.float32)]).dtype == torch.float32


@pytest.mark.parametrize("logits_list, kwargs, match", [
    ([], {}, "empty"),
    ([torch.zeros(4, 3), torch.zeros(4, 3), torch.zeros(4, 5)], {}, r"logits_list\[2\] has shape \(4, 5\).*\(4, 3\)"),
    ([torch.zeros(4, 3)] * 2, {"weights": [1.0, -0.5]}, r"weights\[1\] = -0.5"),
    ([torch.zeros(4, 3)] * 2, {"weights": [1.0]}, "1 entries but logits_list has 2"),
    ([torch.zeros(4, 3)] * 2, {"weights": [0.0, 0.0]}, "all zero"),
    ([torch.zeros(4, 3)], {"rule": "max"}, "unknown rule 'max'"),
    ([torch.zeros(4)], {}, r"\[N, C\]"),
])
def test_backdoor_adjust_validation(logits_list, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        backdoor_adjust(logits_list, **kwargs)


# ---------------------------------------------------------------- gla_posthoc


@pytest.fixture(scope="module")
def posthoc_inputs() -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    rng = np.random.default_rng(2)
    ft = torch.from_numpy(rng.normal(0, 2, (200, 20)))
    zs = torch.from_numpy(rng.normal(0, 4, (200, 20)))
    prior = rng.dirichlet(np.ones(20))
    return ft, zs, prior


def test_gla_posthoc_formula(posthoc_inputs):
    ft, zs, prior = posthoc_inputs
    out = gla_posthoc(ft, zs, prior, ft_temperature=2.0, zs_temperature=0.5)
    expected = ft / 2.0 + zs / 0.5 - torch.log(torch.from_numpy(prior) + PRIOR_EPS)
    assert torch.allclose(out, expected, atol=1e-12)
    p = np.linspace(1, 2, 20) / np.linspace(1, 2, 20).sum()
    with_p = gla_posthoc(ft, zs, prior, train_prior=p)
    assert torch.allclose(with_p, gla_posthoc(ft, zs, prior) - torch.log(torch.from_numpy(p)), atol=1e-12)


def test_d15_argmax_invariant_to_prior_scale_and_uniform_train_prior(posthoc_inputs):
    ft, zs, prior = posthoc_inputs
    base = gla_posthoc(ft, zs, prior).argmax(1)
    for scale in (0.804057, 1e-3, 50.0):
        assert torch.equal(gla_posthoc(ft, zs, scale * prior).argmax(1), base)
    uniform = np.full(20, 1 / 20)
    assert torch.equal(gla_posthoc(ft, zs, prior, train_prior=uniform).argmax(1), base)
    # The prior does matter: subtracting log π changes some predictions.
    assert not torch.equal((ft + zs).argmax(1), base)


def test_gla_posthoc_tolerates_a_zero_prior_entry(posthoc_inputs):
    ft, zs, prior = posthoc_inputs
    prior = prior.copy()
    prior[3] = 0.0
    out = gla_posthoc(ft, zs, prior)
    assert torch.isfinite(out).all()
    assert (out.argmax(1) == 3).all()  # −log(1e-12) ≈ 27.6 dominates


@pytest.mark.parametrize("kwargs, match", [({"prior": -np.ones(20)}, "prior must be finite and non-negative"),
                                           ({"prior": np.ones(19)}, r"prior must have shape \[20\]"),
                                           ({"train_prior": np.zeros(20)}, "train_prior must be finite and positive"),
                                           ({"ft_temperature": 0.0}, "ft_temperature must be positive")])
def test_gla_posthoc_validation(posthoc_inputs, kwargs, match):
    ft, zs, prior = posthoc_inputs
    args = {"prior": prior, **kwargs}
    with pytest.raises(ConfigError, match=match):
        gla_posthoc(ft, zs, **args)


def test_gla_posthoc_shape_mismatch(posthoc_inputs):
    ft, zs, prior = posthoc_inputs
    with pytest.raises(ConfigError, match=r"logits_list\[1\]"):
        gla_posthoc(ft, zs[:, :10], prior)
