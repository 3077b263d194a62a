"""Diagnostics against the ground truth: closed forms, and consistency on the smoke world."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr
from tolerances import CLOSED_ABS  # float64 closed forms

from ltlib.miniworld.diagnostics import (PriorRecovery, parameter_imbalance, prior_recovery, recovery_summary,
                                        zero_shot_accuracy, zero_shot_logits)
from ltlib.errors import ConfigError
from ltlib.priors import fit_prior, kl_divergence


def test_kl_divergence_closed_form():
    p, q = np.array([0.5, 0.5, 0.0]), np.array([0.25, 0.25, 0.5])
    assert kl_divergence(p, q) == pytest.approx(np.log(2), abs=CLOSED_ABS)
    assert kl_divergence(q, q) == 0.0


def test_parameter_imbalance_is_the_difference_to_the_reference(pretrained_world):
    result = parameter_imbalance(pretrained_world, "mini-clip")
    model = zero_shot_accuracy(pretrained_world, "mini-clip").per_class
    reference = zero_shot_accuracy(pretrained_world, pretrained_world.reference_name).per_class
    assert np.allclose(result.difference, model - reference, rtol=0, atol=CLOSED_ABS)
    expected = spearmanr(model - reference, pretrained_world.true_prior("mini-clip"))[0]
    assert result.rho == pytest.approx(expected, abs=CLOSED_ABS, nan_ok=True)
    head, _, tail = np.array_split(np.argsort(-pretrained_world.true_prior("mini-clip"), kind="stable"), 3)
    assert result.tercile_difference[0] == pytest.approx((model - reference)[head].mean(), abs=CLOSED_ABS)
    assert result.tercile_difference[2] == pytest.approx((model - reference)[tail].mean(), abs=CLOSED_ABS)


@pytest.mark.parametrize("solver", ["exact", "reference"])
def test_prior_recovery_uses_gla_on_the_balanced_val_split(pretrained_world, solver):
    recovery = prior_recovery(pretrained_world, "mini-openclip", solver=solver)
    fit = fit_prior(zero_shot_logits(pretrained_world, "mini-openclip", "val"),
                    pretrained_world.split("val").labels.numpy(), solver=solver)
    assert (
        np.allclose(recovery.estimate, fit.prior, rtol=0, atol=CLOSED_ABS) and recovery.temperature == fit.temperature
    )
    assert np.allclose(recovery.truth, pretrained_world.true_prior("mini-openclip"), rtol=0, atol=CLOSED_ABS)
    assert recovery.kl == pytest.approx(kl_divergence(recovery.truth, recovery.estimate), abs=CLOSED_ABS)


def test_recovery_summary_counts_what_the_world_page_states():
    truth = np.array([0.5, 0.3, 0.2])

    def recovery(model: str, solver: str, rho: float, p: float, kl: float) -> PriorRecovery:
        return PriorRecovery(model, solver, np.array([0.4, 0.35, 0.25]), truth, rho, p, kl, 0.1, 1.0)

    recoveries = [recovery("a", "exact", 0.6, 0.01, 0.05), recovery("b", "exact", -0.2, 0.3, 0.2),
                  recovery("c", "exact", 0.3, 0.2, 0.08), recovery("a", "reference", 0.9, 0.001, 0.01)]
    summary = recovery_summary(recoveries, "exact")
    assert (summary["rho_min"], summary["rho_max"], summary["p_min"]) == (-0.2, 0.6, 0.01)
    assert summary["significant"] == 1 and summary["beats_uniform"] == 2  # the reference fit is not counted
    assert summary["kl_mean"] == pytest.approx((0.05 + 0.2 + 0.08) / 3, abs=CLOSED_ABS)
    with pytest.raises(ConfigError, match="no prior recovery"):
        recovery_summary(recoveries, "fixed-point")
