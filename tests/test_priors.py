"""Tests of ltlib.priors on seeded synthetic logits (book: Method, 'The GLA prior estimator')."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ltlib.errors import ConfigError, ConvergenceError
from ltlib.priors import (calibrate_temperature, confidence, estimate_prior, fit_prior, gla_objective,
                          reference_lr, top1_accuracy)

F_UNIFORM = 1.7958592446  # F(uniform π), C=200 case; reference values from an independent float64 numpy computation
F_STAR = 1.585505112693285  # exact optimum, C=200 case
F_REFERENCE = 1.6404555856  # reference loop after 1000 iterations
SUM_REFERENCE = 0.94035
F_STAR_C1000 = 2.919673  # both members of the C=1000 pair (per-class bias equivariance)


def synthetic(num_classes: int, k: int, bias_std: float, seed: int, dim: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic zero-shot-like logits: k samples per class, logits with a per-class bias log q ~ N(0, bias_std²)."""
    g = np.random.default_rng(seed)
    y = np.repeat(np.arange(num_classes), k)
    log_q = g.normal(0, bias_std, num_classes)
    w = g.normal(0, 1, (num_classes, dim))
    x = g.normal(0, 1, (num_classes * k, dim)) + 0.6 * w[y]
    z = ((x @ w.T) * 0.35 + log_q[None, :]).astype(np.float32)
    return z, y


def calibration_inputs() -> tuple[np.ndarray, np.ndarray]:
    """One default_rng(0) stream, after the draws of tests/test_losses.py and tests/test_heads.py."""
    rng = np.random.default_rng(0)
    rng.normal(0, 5, (128, 1000)), rng.integers(0, 1000, 128)
    rng.normal(0, 1, (128, 768)), rng.normal(0, 1, (1000, 768))
    z = rng.normal(0, 1, (5000, 100))
    y = rng.integers(0, 100, 5000)
    z[np.arange(5000), y] += 2.0
    return z * 3.0, y


@pytest.fixture(scope="module")
def case200() -> tuple[np.ndarray, np.ndarray]:
    return synthetic(200, 20, 0.3, seed=2)


@pytest.fixture(scope="module")
def calib() -> tuple[np.ndarray, np.ndarray]:
    return calibration_inputs()


@pytest.fixture(scope="module")
def exact200(case200):
    return fit_prior(*case200, solver="exact", temperature=None)


# ---------------------------------------------------------------- objective


def test_d11_objective_equals_mean_cross_entropy(case200):
    z, y = case200
    theta = np.random.default_rng(3).normal(size=200)
    prior = np.exp(theta) / np.exp(theta).sum()
    expected = F.cross_entropy(torch.from_numpy(z).double() - torch.log(torch.from_numpy(prior)), torch.from_numpy(y))
    assert gla_objective(z, y, prior) == pytest.approx(float(expected), abs=1e-12)


def test_d11_uniform_value_and_scale_invariance(case200, exact200):
    z, y = case200
    assert gla_objective(z, y, np.full(200, 1 / 200)) == pytest.approx(F_UNIFORM, abs=1e-10)
    assert gla_objective(z, y, exact200.prior) == pytest.approx(F_STAR, abs=1e-12)
    assert gla_objective(z, y, 0.3 * exact200.prior) == pytest.approx(F_STAR, abs=1e-12)


def test_objective_rejects_non_positive_prior(case200):
    z, y = case200
    prior = np.full(200, 1 / 200)
    prior[7] = 0.0
    with pytest.raises(ConfigError, match=r"prior must be strictly positive; class\(es\) \[7\]"):
        gla_objective(z, y, prior)


# ---------------------------------------------------------------- exact vs GIS vs reference


def test_d12_exact_solver_optimum(exact200):
    fit = exact200
    assert fit.objective == pytest.approx(F_STAR, abs=1e-10)
    assert fit.moment_residual < 1e-8
    assert fit.prior.dtype == np.float64 and fit.prior.sum() == pytest.approx(1.0, abs=1e-12)
    assert (fit.prior > 0).all()
    assert abs(fit.log_prior.mean()) < 1e-12
    assert fit.temperature == 1.0 and fit.raw_sum == 1.0 and fit.solver == "exact"


def test_d12_fixed_point_agrees_with_lbfgs(case200, exact200):
    gis = fit_prior(*case200, solver="fixed_point", temperature=None)
    assert gis.moment_residual < 1e-8
    assert np.abs(gis.log_prior - exact200.log_prior).max() < 1e-6
    assert gis.objective == pytest.approx(exact200.objective, abs=1e-12)


def test_d12_reference_loop_replays_gla(case200, exact200):
    z, y = case200
    assert reference_lr(len(y), 200) == pytest.approx(4e-6)
    ref = fit_prior(z, y, solver="reference", temperature=None)
    assert ref.objective == pytest.approx(F_REFERENCE, abs=1e-7)
    assert ref.raw_sum == pytest.approx(SUM_REFERENCE, abs=5e-6)
    assert ref.iterations == 1000
    assert exact200.objective <= ref.objective
    # The truncated descent is far from the optimum: its moment residual is large.
    assert ref.moment_residual > 1e-3


def test_d12_reference_approaches_exact_with_more_iterations(case200, exact200):
    z, y = case200
    short = fit_prior(z, y, solver="reference", temperature=None, max_iter=50)
    longer = fit_prior(z, y, solver="reference", temperature=None, max_iter=200)
    assert exact200.objective < longer.objective < short.objective < F_UNIFORM


def test_public_estimate_prior_normalises(case200, exact200):
    prior = estimate_prior(*case200, temperature=None)
    assert isinstance(prior, np.ndarray) and prior.shape == (200,)
    assert np.allclose(prior, exact200.prior, rtol=1e-6)


def test_torch_inputs_give_the_same_fit(case200, exact200):
    z, y = case200
    fit = fit_prior(torch.from_numpy(z), torch.from_numpy(y), temperature=None)
    assert np.abs(fit.log_prior - exact200.log_prior).max() < 1e-8


def test_chunked_evaluation_matches_a_single_block(case200, exact200, calib, monkeypatch):
    import ltlib.priors as priors_module

    z, y = case200
    conf_single = confidence(calib[0], 1.3)
    monkeypatch.setattr(priors_module, "_CHUNK_ELEMENTS", 7 * 200 + 3)  # ragged blocks of 7 rows
    assert gla_objective(z, y, exact200.prior) == pytest.approx(exact200.objective, abs=1e-13)
    assert confidence(calib[0], 1.3) == pytest.approx(conf_single, abs=1e-12)
    chunked = fit_prior(z, y, temperature=None)
    assert np.abs(chunked.log_prior - exact200.log_prior).max() < 1e-8


# ---------------------------------------------------------------- equivariance


def test_d13_per_class_bias_shifts_centred_log_prior():
    z_low, y = synthetic(1000, 20, 0.3, seed=1)
    z_high, _ = synthetic(1000, 20, 1.0, seed=1)
    bias = (z_high.astype(np.float64) - z_low).mean(axis=0)
    assert np.allclose(z_high - z_low, bias[None, :], atol=1e-5)  # the pair differs by a per-class bias
    low, high = (fit_prior(z, y, temperature=None) for z in (z_low, z_high))
    assert low.objective == pytest.approx(F_STAR_C1000, abs=1e-6)
    assert high.objective == pytest.approx(low.objective, abs=1e-9)
    shift = high.log_prior - low.log_prior
    assert np.abs(shift - (bias - bias.mean())).max() < 1e-5


def test_equivariance_exactly_on_small_case(case200, exact200):
    z, y = case200
    bias = np.random.default_rng(4).normal(0, 2, 200)
    shifted = fit_prior(z.astype(np.float64) + bias, y, temperature=None)
    assert np.abs(shifted.log_prior - exact200.log_prior - (bias - bias.mean())).max() < 1e-7
    assert shifted.objective == pytest.approx(exact200.objective, abs=1e-10)


# ---------------------------------------------------------------- calibration


def test_d14_accuracy_and_both_temperatures(calib):
    z, y = calib
    acc = top1_accuracy(z, y)
    assert acc == pytest.approx(32.12, abs=1e-9)
    t_ref = calibrate_temperature(z, y, method="reference")
    t_brent = calibrate_temperature(z, y, method="brent")
    assert t_ref == pytest.approx(1.514494, abs=5e-7)
    assert t_brent == pytest.approx(1.514436, abs=5e-7)
    assert confidence(z, t_ref) == pytest.approx(32.118, abs=5e-4)
    for t in (t_ref, t_brent):
        assert abs(confidence(z, t) - acc) <= 0.1
    assert abs(confidence(z, t_brent) - acc) < 1e-8


def test_d14_confidence_is_monotone_decreasing(calib):
    z, _ = calib
    values = [confidence(z, t) for t in np.geomspace(0.05, 50, 25)]
    assert all(a > b for a, b in zip(values, values[1:]))
    # Limits: 100% as T → 0 (no ties), chance 100/C = 1% as T → ∞.
    assert confidence(z, 1e-3) > 99.9 and confidence(z, 1e4) < 1.001


def test_calibration_needs_widening_beyond_the_initial_bounds():
    # Nearly separable logits: accuracy ~100%, so the root lies below T = 0.1.
    rng = np.random.default_rng(9)
    y = rng.integers(0, 10, 400)
    z = rng.normal(0, 0.01, (400, 10))
    z[np.arange(400), y] += 0.05
    acc = top1_accuracy(z, y)
    for method in ("brent", "reference"):
        t = calibrate_temperature(z, y, method=method)
        assert t < 0.1 and abs(confidence(z, t) - acc) <= 0.1


def test_calibration_below_chance_raises():
    y = np.zeros(50, dtype=np.int64)
    z = np.zeros((50, 4))
    z[:, 1] = 1.0  # always wrong: accuracy 0% < chance 25%
    with pytest.raises(ConvergenceError, match="cannot be matched"):
        calibrate_temperature(z, y)


def test_estimate_prior_calibrates_by_default(case200):
    z, y = case200
    fit = fit_prior(z * 4.0, y)
    t = calibrate_temperature(z * 4.0, y)
    assert fit.temperature == pytest.approx(t)
    direct = fit_prior(z * 4.0 / t, y, temperature=None)
    assert np.abs(fit.log_prior - direct.log_prior).max() < 1e-5
    fixed = fit_prior(z, y, temperature=2.0)
    assert fixed.temperature == 2.0


# ---------------------------------------------------------------- failure modes


def test_reference_divergence_raises_and_suggests_exact():
    z, y = synthetic(300, 10, 3.0, seed=0)
    with pytest.raises(ConvergenceError, match=r"diverged at iteration \d+.*solver='exact'"):
        fit_prior(z, y, solver="reference", temperature=None)
    assert fit_prior(z, y, solver="exact", temperature=None).moment_residual < 1e-8


@pytest.mark.slow
def test_reference_divergence_spec_case():
    """C = 1000, bias std 1.0 diverges (π turns negative); the exact solver does not."""
    z, y = synthetic(1000, 20, 1.0, seed=1)
    with pytest.raises(ConvergenceError, match="diverged"):
        fit_prior(z, y, solver="reference", temperature=None)


def test_zero_count_class_has_no_minimiser(case200):
    z, y = case200
    keep = (y != 5) & (y != 17)
    with pytest.raises(ConfigError, match=r"2 class\(es\) have no sample, e.g. \[5, 17\]"):
        estimate_prior(z[keep], y[keep], temperature=None)


@pytest.mark.parametrize("kwargs, match", [({"solver": "newton"}, "unknown solver"),
                                           ({"temperature": "auto"}, "temperature"),
                                           ({"temperature": -1.0}, "temperature")])
def test_argument_validation(case200, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        fit_prior(*case200, **kwargs)


def test_target_shape_and_range_validation(case200):
    z, y = case200
    with pytest.raises(ConfigError, match="targets must be integer labels"):
        fit_prior(z, y[:-1], temperature=None)
    with pytest.raises(ConfigError, match=r"targets must lie in \[0, 200\)"):
        fit_prior(z, y + 1, temperature=None)


def test_unconverged_exact_solver_warns(case200):
    with pytest.warns(RuntimeWarning, match="moment residual"):
        fit_prior(*case200, solver="fixed_point", temperature=None, max_iter=3)
