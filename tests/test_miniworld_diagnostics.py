"""Diagnostics against the ground truth: closed forms, and consistency on the smoke world."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from ltlib.miniworld.diagnostics import parameter_imbalance, prior_recovery, zero_shot_accuracy, zero_shot_logits
from ltlib.priors import fit_prior, kl_divergence


def test_kl_divergence_closed_form():
    p, q = np.array([0.5, 0.5, 0.0]), np.array([0.25, 0.25, 0.5])
    assert kl_divergence(p, q) == pytest.approx(np.log(2))
    assert kl_divergence(q, q) == 0.0


def test_parameter_imbalance_is_the_difference_to_the_reference(pretrained_world):
    result = parameter_imbalance(pretrained_world, "mini-clip")
    model = zero_shot_accuracy(pretrained_world, "mini-clip").per_class
    reference = zero_shot_accuracy(pretrained_world, pretrained_world.reference_name).per_class
    assert np.allclose(result.difference, model - reference)
    expected = spearmanr(model - reference, pretrained_world.true_prior("mini-clip"))[0]
    assert result.rho == pytest.approx(expected, nan_ok=True)
    head, _, tail = np.array_split(np.argsort(-pretrained_world.true_prior("mini-clip"), kind="stable"), 3)
    assert result.tercile_difference[0] == pytest.approx((model - reference)[head].mean())
    assert result.tercile_difference[2] == pytest.approx((model - reference)[tail].mean())


@pytest.mark.parametrize("solver", ["exact", "reference"])
def test_prior_recovery_uses_gla_on_the_balanced_val_split(pretrained_world, solver):
    recovery = prior_recovery(pretrained_world, "mini-openclip", solver=solver)
    fit = fit_prior(zero_shot_logits(pretrained_world, "mini-openclip", "val"),
                    pretrained_world.split("val").labels.numpy(), solver=solver)
    assert np.allclose(recovery.estimate, fit.prior) and recovery.temperature == fit.temperature
    assert np.allclose(recovery.truth, pretrained_world.true_prior("mini-openclip"))
    assert recovery.kl == pytest.approx(kl_divergence(recovery.truth, recovery.estimate))
