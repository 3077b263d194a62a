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
SOLVER_TOL = 1e-10  # fit_prior's default tol: the exact solvers stop once the moment residual is ≤ this
EPS64 = float(np.finfo(np.float64).eps)
EPS32 = float(np.finfo(np.float32).eps)


def half_unit(printed: str) -> float:
    """Half a unit in the last printed digit of a reference value: how far the printed value may lie from it."""
    return 0.5 * 10.0 ** -len(printed.split(".")[1])


def objective_tol(z: np.ndarray, prior: np.ndarray | None = None) -> float:
    """Worst-case float64 error of one evaluation of L(π), valid for any summation order or kernel.

    L is a mean of N log-sum-exp terms, each at most max|z| + max|log π| + log C in size; any
    order of summing N float64 terms errs by at most γ_N ≤ N·eps₆₄ times the sum of their sizes
    (Higham, Accuracy and Stability, §4.2), and exp/log add a few eps₆₄ per term.
    """
    n, c = z.shape
    size = float(np.abs(z).max()) + np.log(c) + (0.0 if prior is None else float(np.abs(np.log(prior)).max()))
    return (n + 4) * EPS64 * size


def inverse_hessian_norm(z: np.ndarray, y: np.ndarray, prior: np.ndarray) -> float:
    """‖H⁺‖_∞ of the objective's Hessian in θ = log π at ``prior`` (book: Method, 'The GLA prior estimator').

    H = (1/N) Σ_i (diag p_i − p_i p_iᵀ) with p_i = softmax(z_i − θ); its kernel is the constant
    vector (the gauge), so on centred θ a gradient change Δg moves θ by Δθ = H⁺ Δg to first order
    and |Δθ|_∞ ≤ ‖H⁺‖_∞ |Δg|_∞ (max row sum of |H⁺|).
    """
    p = torch.softmax(torch.from_numpy(z).double() - torch.log(torch.as_tensor(prior)), dim=1).numpy()
    hessian = (np.diag(p.sum(0)) - p.T @ p) / len(y)
    return float(np.abs(np.linalg.pinv(hessian, hermitian=True)).sum(axis=1).max())


def solver_gap(z: np.ndarray, y: np.ndarray, *fits, gradient_shift: float = 0.0) -> float:
    """Largest |Δ log π̂| that two fits of (nearly) the same problem may differ by.

    Each exact solve stops with a gradient (moment residual) of at most its ``moment_residual``,
    so the two gradients differ by at most their sum (plus ``gradient_shift`` when the inputs
    differ); ‖H⁺‖_∞ turns that into a bound on the centred log priors. A class with a small
    posterior mass s̄_j has a small Hessian entry and hence a loose log prior: the bound grows
    like residual / s̄_j. Along the segment between the fits every p_ij changes by a factor
    e^{±2|Δθ|_∞} = 1 ± 1e-6 at most, so H⁺ does too; the factor 1.1 covers that second-order term.
    The residuals are themselves float64 sums (off by ≤ γ_N·max s̄ ≈ 1e-15, negligible next to them).
    """
    gradient_gap = sum(f.moment_residual for f in fits) + gradient_shift
    return 1.1 * inverse_hessian_norm(z, y, fits[0].prior) * gradient_gap


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
    # Two float64 evaluations of the same mean in different orders: each within objective_tol.
    assert gla_objective(z, y, prior) == pytest.approx(float(expected), abs=2 * objective_tol(z, prior))


def test_d11_uniform_value_and_scale_invariance(case200, exact200):
    z, y = case200
    # Spec values, printed to 10 decimals: off by half a unit there plus one float64 evaluation.
    uniform_tol = half_unit("1.7958592446") + objective_tol(z, np.full(200, 1 / 200))
    assert gla_objective(z, y, np.full(200, 1 / 200)) == pytest.approx(F_UNIFORM, abs=uniform_tol)
    # F_STAR is the spec script's value (16 digits) of L at its optimum; our optimum stops with a
    # gradient ≤ SOLVER_TOL, which raises L by ≤ ½·C·tol²·‖H⁺‖ ≈ 1e-15: the float64 evaluations dominate.
    star_tol = half_unit("1.585505112693285") + 2 * objective_tol(z, exact200.prior)
    assert gla_objective(z, y, exact200.prior) == pytest.approx(F_STAR, abs=star_tol)
    assert gla_objective(z, y, 0.3 * exact200.prior) == pytest.approx(F_STAR, abs=star_tol)


def test_objective_rejects_non_positive_prior(case200):
    z, y = case200
    prior = np.full(200, 1 / 200)
    prior[7] = 0.0
    with pytest.raises(ConfigError, match=r"prior must be strictly positive; class\(es\) \[7\]"):
        gla_objective(z, y, prior)


# ---------------------------------------------------------------- exact vs GIS vs reference


def test_d12_exact_solver_optimum(case200, exact200):
    fit = exact200
    z, _ = case200
    assert fit.objective == pytest.approx(F_STAR, abs=half_unit("1.585505112693285") + 2 * objective_tol(z, fit.prior))
    assert fit.moment_residual <= SOLVER_TOL  # the stopping rule was met, not the iteration cap
    # π̂ = exp(log_softmax θ): C = 200 terms, each within a few eps₆₄ relative, summed in float64.
    assert fit.prior.dtype == np.float64 and fit.prior.sum() == pytest.approx(1.0, abs=(200 + 4) * EPS64)
    assert (fit.prior > 0).all()
    # Centred in float64: the mean of 200 numbers of size ≤ max|log π̂| is zero up to γ_200 times that size.
    assert abs(fit.log_prior.mean()) <= (200 + 4) * EPS64 * np.abs(fit.log_prior).max()
    assert fit.temperature == 1.0 and fit.raw_sum == 1.0 and fit.solver == "exact"


def test_d12_fixed_point_agrees_with_lbfgs(case200, exact200):
    z, y = case200
    gis = fit_prior(z, y, solver="fixed_point", temperature=None)
    assert gis.moment_residual <= SOLVER_TOL
    # Both stopped within SOLVER_TOL of the same optimum (the spec saw ~1e-7 agreement).
    assert np.abs(gis.log_prior - exact200.log_prior).max() <= solver_gap(z, y, exact200, gis)
    assert gis.objective == pytest.approx(exact200.objective, abs=2 * objective_tol(z, exact200.prior))


def test_d12_reference_loop_replays_gla(case200, exact200):
    z, y = case200
    assert reference_lr(len(y), 200) == pytest.approx(4e-6, rel=4 * EPS64)  # three float64 operations
    ref = fit_prior(z, y, solver="reference", temperature=None)
    # The replay is a float32 descent: per step, another kernel (summation order, vector width) can
    # round each π_j differently by ≤ eps₃₂ relative, so after K steps log π_j may differ by ≤ K·eps₃₂
    # (the descent barely contracts at lr = 4e-6). That moves L by ≤ |∇_θ L|₁·K·eps₃₂ and Σπ by
    # ≤ Σπ·K·eps₃₂; add half a unit of the spec's printed digits.
    drift = ref.iterations * EPS32
    posterior = torch.softmax(torch.from_numpy(z).double() - torch.log(torch.from_numpy(ref.prior)), dim=1)
    gradient_l1 = float((torch.bincount(torch.from_numpy(y)) / len(y) - posterior.mean(0)).abs().sum())
    assert ref.objective == pytest.approx(F_REFERENCE, abs=half_unit("1.6404555856") + gradient_l1 * drift)
    assert ref.raw_sum == pytest.approx(SUM_REFERENCE, abs=half_unit("0.94035") + ref.raw_sum * drift)
    assert ref.iterations == 1000
    assert exact200.objective <= ref.objective
    # The truncated descent is far from the optimum: its moment residual is large.
    assert ref.moment_residual > 1e-3  # 10⁷ × SOLVER_TOL: far from any rounding effect


def test_d12_reference_approaches_exact_with_more_iterations(case200, exact200):
    z, y = case200
    short = fit_prior(z, y, solver="reference", temperature=None, max_iter=50)
    longer = fit_prior(z, y, solver="reference", temperature=None, max_iter=200)
    assert exact200.objective < longer.objective < short.objective < F_UNIFORM


def test_public_estimate_prior_normalises(case200, exact200):
    z, y = case200
    prior = estimate_prior(z, y, temperature=None)
    assert isinstance(prior, np.ndarray) and prior.shape == (200,)
    # Normalising adds one common shift to log π̂, so π̂_j moves by ≤ 2 × the centred gap, relatively.
    assert np.allclose(prior, exact200.prior, rtol=2 * solver_gap(z, y, exact200, exact200), atol=0)


def test_torch_inputs_give_the_same_fit(case200, exact200):
    z, y = case200
    fit = fit_prior(torch.from_numpy(z), torch.from_numpy(y), temperature=None)
    assert np.abs(fit.log_prior - exact200.log_prior).max() <= solver_gap(z, y, exact200, fit)


def test_chunked_evaluation_matches_a_single_block(case200, exact200, calib, monkeypatch):
    import ltlib.priors as priors_module

    z, y = case200
    conf_single = confidence(calib[0], 1.3)
    monkeypatch.setattr(priors_module, "_CHUNK_ELEMENTS", 7 * 200 + 3)  # ragged blocks of 7 rows
    # Another blocking sums the same terms in another order: each result within its float64 bound.
    assert gla_objective(z, y, exact200.prior) == pytest.approx(exact200.objective,
                                                                abs=2 * objective_tol(z, exact200.prior))
    calib_z = calib[0]
    conf_tol = 2 * (len(calib_z) + 4) * EPS64 * 100.0  # mean of N terms in (0, 100], twice
    assert confidence(calib_z, 1.3) == pytest.approx(conf_single, abs=conf_tol)
    # Not bit-identical: rounding may stop the solver one step earlier or later, anywhere below
    # SOLVER_TOL, and a class with little posterior mass then moves most (solver_gap).
    chunked = fit_prior(z, y, temperature=None)
    assert np.abs(chunked.log_prior - exact200.log_prior).max() <= solver_gap(z, y, exact200, chunked)


# ---------------------------------------------------------------- equivariance


def test_d13_per_class_bias_shifts_centred_log_prior():
    z_low, y = synthetic(1000, 20, 0.3, seed=1)
    z_high, _ = synthetic(1000, 20, 1.0, seed=1)
    bias = (z_high.astype(np.float64) - z_low).mean(axis=0)
    # The pair differs by a per-class bias up to the float32 rounding of both logits (½ ulp each).
    rounding = np.abs(z_high.astype(np.float64) - z_low - bias[None, :]).max()
    ulp = np.spacing(np.float32(max(np.abs(z_low).max(), np.abs(z_high).max())))
    assert rounding <= ulp
    low, high = (fit_prior(z, y, temperature=None) for z in (z_low, z_high))
    assert low.objective == pytest.approx(F_STAR_C1000, abs=half_unit("2.919673") + objective_tol(z_low, low.prior))
    # Moving every logit by ≤ `rounding` moves L by ≤ 2·rounding (log-sum-exp and target logit).
    assert high.objective == pytest.approx(low.objective, abs=2 * rounding + 2 * objective_tol(z_high, high.prior))
    # ... and each softmax_ij by ≤ 2·rounding·p_ij, so the gradient by ≤ 2·rounding·max_j n_j/N = 2·rounding/C.
    shift = high.log_prior - low.log_prior
    gap = solver_gap(z_low, y, low, high, gradient_shift=2 * rounding / 1000)
    assert np.abs(shift - (bias - bias.mean())).max() <= gap


def test_equivariance_exactly_on_small_case(case200, exact200):
    z, y = case200
    bias = np.random.default_rng(4).normal(0, 2, 200)
    shifted = fit_prior(z.astype(np.float64) + bias, y, temperature=None)
    # In float64 the shifted logits are exact to eps₆₄·|z + b| ≈ 1e-15 (negligible next to SOLVER_TOL),
    # so the two fits differ only by where each solver stopped.
    gap = solver_gap(z, y, exact200, shifted)
    assert np.abs(shifted.log_prior - exact200.log_prior - (bias - bias.mean())).max() <= gap
    objective_gap = objective_tol(z + bias, shifted.prior) + objective_tol(z, exact200.prior)
    assert shifted.objective == pytest.approx(exact200.objective, abs=objective_gap)


# ---------------------------------------------------------------- calibration


def test_d14_accuracy_and_both_temperatures(calib):
    z, y = calib
    acc = top1_accuracy(z, y)
    assert acc * len(y) / 100 == 1606  # an exact count (argmax of float64 logits): 32.12 %
    t_ref = calibrate_temperature(z, y, method="reference")
    t_brent = calibrate_temperature(z, y, method="brent")
    # Spec values printed to 6 (3) decimals; float64 rounding in c(T) (≤ γ_N·100 ≈ 1e-10) is far below.
    assert t_ref == pytest.approx(1.514494, abs=half_unit("1.514494"))
    assert t_brent == pytest.approx(1.514436, abs=half_unit("1.514436"))
    assert confidence(z, t_ref) == pytest.approx(32.118, abs=half_unit("32.118"))
    for t in (t_ref, t_brent):
        assert abs(confidence(z, t) - acc) <= 0.1  # GLA's acceptance rule (book: Method, 'The GLA prior estimator')
    # Brent stops within xtol = 1e-12 (+ rtol 1e-14·T) of the root of c(T) − acc; c's slope there
    # turns that into a gap, and each c(T) evaluation adds ≤ γ_N·100.
    slope = abs(confidence(z, t_brent * 1.001) - confidence(z, t_brent / 1.001)) / (0.002 * t_brent)
    brent_tol = 2 * slope * (1e-12 + 4e-14 * t_brent) + (len(y) + 4) * EPS64 * 100.0
    assert abs(confidence(z, t_brent) - acc) <= brent_tol


def test_d14_confidence_is_monotone_decreasing(calib):
    z, _ = calib
    values = [confidence(z, t) for t in np.geomspace(0.05, 50, 25)]
    assert all(a > b for a, b in zip(values, values[1:]))
    # Limits: 100% as T → 0 (no ties), chance 100/C = 1% as T → ∞. The margins are the data's
    # distance from the limits at these T (≈ 1e-3 relative), not rounding.
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
    assert fit.temperature == t  # the same deterministic calibration on the same float32 logits
    direct = fit_prior(z * 4.0 / t, y, temperature=None)
    # z·4/T is rounded once (float32 division inside fit_prior vs float64 here): logits differ by ≤ 1 ulp.
    rounding = float(np.spacing(np.float32(np.abs(z * 4.0 / t).max())))
    gap = solver_gap(z * 4.0 / t, y, direct, fit, gradient_shift=2 * rounding * 20 / len(y))
    assert np.abs(fit.log_prior - direct.log_prior).max() <= gap
    fixed = fit_prior(z, y, temperature=2.0)
    assert fixed.temperature == 2.0


# ---------------------------------------------------------------- failure modes


def test_reference_divergence_raises_and_suggests_exact():
    z, y = synthetic(300, 10, 3.0, seed=0)
    with pytest.raises(ConvergenceError, match=r"diverged at iteration \d+.*solver='exact'"):
        fit_prior(z, y, solver="reference", temperature=None)
    assert fit_prior(z, y, solver="exact", temperature=None).moment_residual <= SOLVER_TOL


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


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"solver": "newton"}, "unknown solver"),
        ({"temperature": "auto"}, "temperature"),
        ({"temperature": -1.0}, "temperature"),
    ],
)
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
