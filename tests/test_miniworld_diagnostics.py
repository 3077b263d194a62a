"""Diagnostics against the ground truth: closed forms, and consistency on the smoke world."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from ltlib.miniworld import load_world
from ltlib.miniworld.diagnostics import (kl_divergence, parameter_imbalance, prior_recovery, zero_shot_accuracy,
                                         zero_shot_logits)
from ltlib.priors import fit_prior


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    world = load_world("smoke", cache_root=tmp_path_factory.mktemp("cache"))
    world.prepare(workers=1)  # tiny models: spawning worker processes would cost more than training
    return world


def test_kl_divergence_closed_form():
    p, q = np.array([0.5, 0.5, 0.0]), np.array([0.25, 0.25, 0.5])
    assert kl_divergence(p, q) == pytest.approx(np.log(2))
    assert kl_divergence(q, q) == 0.0


def test_parameter_imbalance_is_the_difference_to_the_reference(world):
    result = parameter_imbalance(world, "mini-clip")
    model = zero_shot_accuracy(world, "mini-clip").per_class
    reference = zero_shot_accuracy(world, world.reference_name).per_class
    assert np.allclose(result.difference, model - reference)
    assert result.rho == pytest.approx(spearmanr(model - reference, world.true_prior("mini-clip"))[0], nan_ok=True)
    head, _, tail = np.array_split(np.argsort(-world.true_prior("mini-clip"), kind="stable"), 3)
    assert result.tercile_difference[0] == pytest.approx((model - reference)[head].mean())
    assert result.tercile_difference[2] == pytest.approx((model - reference)[tail].mean())


@pytest.mark.parametrize("solver", ["exact", "reference"])
def test_prior_recovery_uses_gla_on_the_balanced_val_split(world, solver):
    recovery = prior_recovery(world, "mini-openclip", solver=solver)
    fit = fit_prior(zero_shot_logits(world, "mini-openclip", "val"), world.split("val").labels.numpy(), solver=solver)
    assert np.allclose(recovery.estimate, fit.prior) and recovery.temperature == fit.temperature
    assert np.allclose(recovery.truth, world.true_prior("mini-openclip"))
    assert recovery.kl == pytest.approx(kl_divergence(recovery.truth, recovery.estimate))
