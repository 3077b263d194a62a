"""GLA label-prior estimation and temperature calibration (Zhu et al., NeurIPS 2023).

The pre-training prior P̂_P(Y) is the π that minimises L(π) = mean_i CE(z_i − log π, y_i) on a
class-balanced labelled set. With θ = log π the problem is convex and unconstrained,
so the default solver is L-BFGS on θ in float64; ``"fixed_point"`` (generalised iterative scaling)
is a second exact solver for cross-checks, and ``"reference"`` replays GLA's truncated float32
Lagrangian descent step by step for bit-level comparison with the released code. The book states the
objective, the solvers and how to compare them (book: Method, 'The GLA prior estimator').
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy import optimize, stats

from .errors import ConfigError, ConvergenceError, NonFiniteError
from .phases import phase

SOLVERS = ("exact", "fixed_point", "reference")
CALIBRATIONS = ("brent", "reference")

# Rows per chunk are chosen so that one float64 working block holds about this many entries
# (32 MiB): the solvers never materialise a second N×C array, which matters at iNat scale.
_CHUNK_ELEMENTS = 1 << 22
# Above this moment residual an exact solve that stopped early is reported as a warning.
_RESIDUAL_WARNING = 1e-8
_DEFAULT_MAX_ITER = {"exact": 1000, "fixed_point": 20_000, "reference": 1000}
# Fixed-point steps allowed after L-BFGS to finish the last digits (usually 0–3 are used).
_MAX_POLISH_STEPS = 50
# GLA's Calibrater starts from these bounds and widens them by this factor.
_REFERENCE_BOUNDS = (0.1, 10.0)
_REFERENCE_WIDEN = 1.1
_MAX_CALIBRATION_ROUNDS = 10_000


@dataclasses.dataclass(frozen=True, eq=False)
class PriorFit:
    """The result of one prior estimation (what the book and the benchmark read).

    Attributes:
        prior: estimated prior π̂, float64 [C], normalised to sum 1.
        log_prior: centred log prior log π̂ − mean(log π̂), float64 [C] (the gauge-free
            quantity to compare across solvers).
        temperature: the temperature T the logits were divided by before solving.
        objective: L(π̂) on the temperature-scaled logits, float64.
        iterations: solver iterations (L-BFGS / fixed-point steps, or reference descent steps).
        evaluations: passes over the N×C logits spent by the solver.
        moment_residual: max_j |n_j/N − mean_i softmax(z_i − log π̂)_j|, the optimality gap.
        raw_sum: Σπ before normalisation; 1 for the exact solvers, the drifted sum for
            ``"reference"``.
        solver: the solver key that produced the fit.
    """

    prior: np.ndarray
    log_prior: np.ndarray
    temperature: float
    objective: float
    iterations: int
    evaluations: int
    moment_residual: float
    raw_sum: float
    solver: str


@dataclasses.dataclass(frozen=True, eq=False)
class _Problem:
    """Validated inputs of the GLA objective: logits [N, C] (float), targets [N] (long)."""

    logits: torch.Tensor
    targets: torch.Tensor
    class_freq: torch.Tensor  # n_j / N, float64 [C]
    mean_target_logit: float  # mean_i z_{i, y_i}, float64

    @property
    def num_classes(self) -> int:
        return self.logits.shape[1]


# --------------------------------------------------------------------------------------------
# Objective
# --------------------------------------------------------------------------------------------


def gla_objective(logits: Any, targets: Any, prior: Any) -> float:
    """GLA's objective L(π) = (1/N) Σ_i CE(z_i − log π, y_i), computed in float64.

    L is invariant to π ↦ c·π for any c > 0, so ``prior`` need not sum to 1.

    Args:
        logits: z, [N, C] numpy array or torch tensor (already divided by any temperature).
        targets: y, [N] integer class indices.
        prior: π, [C] strictly positive.

    Returns:
        L(π) as a Python float.
    """
    problem = _problem(logits, targets)
    prior64 = _as_float64_vector(prior, "prior", problem.num_classes, problem.logits.device)
    _check_positive(prior64, "prior")
    value, _ = _objective_and_mean_posterior(problem, torch.log(prior64))
    return value


def _objective_and_mean_posterior(problem: _Problem, theta: torch.Tensor) -> tuple[float, torch.Tensor]:
    """F(θ) and s̄(θ) in one chunked float64 pass over the logits.

    Args:
        problem: validated logits/targets.
        theta: θ = log π up to a constant, float64 [C] on the logits' device.

    Returns:
        (F(θ), s̄) with s̄_j = (1/N) Σ_i softmax(z_i − θ)_j, float64 [C]; ∇F(θ) = n/N − s̄.
    """
    lse_total = torch.zeros((), dtype=torch.float64, device=theta.device)
    posterior_sum = torch.zeros_like(theta)
    for (block,) in _row_blocks(problem.logits):
        shifted = torch.sub(block, theta)  # promotes to float64
        row_max = shifted.amax(dim=1, keepdim=True)
        weights = shifted.sub_(row_max).exp_()
        row_sums = weights.sum(dim=1)
        lse_total += (row_max.squeeze(1) + row_sums.log()).sum()
        posterior_sum.addmv_(weights.T, row_sums.reciprocal())
    n = problem.logits.shape[0]
    value = lse_total / n - problem.mean_target_logit + torch.dot(problem.class_freq, theta)
    return float(value), posterior_sum / n


def _row_blocks(*tensors: torch.Tensor) -> Iterator[tuple[torch.Tensor, ...]]:
    """Aligned row blocks of tensors sharing N rows, sized for ``_CHUNK_ELEMENTS`` logits entries.

    The block height is set by the first tensor (the logits [N, C]); the others are split alike.
    """
    rows = max(1, _CHUNK_ELEMENTS // max(1, tensors[0].shape[1]))
    yield from zip(*(torch.split(t, rows, dim=0) for t in tensors))


# --------------------------------------------------------------------------------------------
# Public estimators
# --------------------------------------------------------------------------------------------


def estimate_prior(logits: Any, targets: Any, solver: str = "exact",
                   temperature: str | float | None = "calibrate", **options: Any) -> np.ndarray:
    """Estimate the pre-training label prior P̂_P(Y) with GLA (calibrate, then solve).

    By default the logits are first calibrated (confidence = accuracy), as GLA's
    ``pp_estimate`` does, then the objective is minimised exactly.

    Args:
        logits: zero-shot logits z, [N, C] numpy array or torch tensor, on a labelled
            (ideally class-balanced) held-out set; every class must occur in ``targets``.
        targets: y, [N] integer labels in [0, C).
        solver: ``"exact"`` (L-BFGS on θ = log π), ``"fixed_point"`` (GIS) or ``"reference"``
            (GLA's truncated float32 descent).
        temperature: ``"calibrate"``, a positive float T, or None (T = 1).
        **options: keyword options of :func:`fit_prior` (``calibration``, ``tol``, ``max_iter``, ``lr``).

    Returns:
        π̂, np.float64 [C], strictly positive and summing to 1.
    """
    return fit_prior(logits, targets, solver=solver, temperature=temperature, **options).prior


@phase("prior estimation")
def fit_prior(logits: Any, targets: Any, solver: str = "exact", temperature: str | float | None = "calibrate",
              *, calibration: str | None = None, tol: float = 1e-10, max_iter: int | None = None,
              lr: float | None = None) -> PriorFit:
    """Calibrate (optionally) and solve GLA's prior-estimation problem, with diagnostics.

    Args:
        logits: z, [N, C] numpy array or torch tensor; computation runs on its device.
        targets: y, [N] integer labels; every class needs at least one sample (otherwise
            no minimiser exists).
        solver: one of ``SOLVERS`` (see :func:`estimate_prior`).
        temperature: ``"calibrate"``, a positive float, or None (= 1).
        calibration: calibration method when ``temperature="calibrate"``; None follows the
            solver (``"reference"`` for the reference solver, ``"brent"`` otherwise).
        tol: stop the exact solvers once the moment residual max_j |n_j/N − s̄_j| ≤ tol.
        max_iter: iteration cap; defaults 1000 (exact), 20,000 (fixed_point) and GLA's 1000
            descent steps (reference, always run in full).
        lr: step size of the reference descent; default GLA's 1e-5·(N/C)/50.

    Returns:
        A :class:`PriorFit`.
    """
    _check_choice(solver, SOLVERS, "solver")
    problem = _problem(logits, targets)
    _check_all_classes_present(problem)
    temp = _resolve_temperature(problem, temperature, calibration or _default_calibration(solver))
    if temp != 1.0:
        problem = _problem(problem.logits / temp, problem.targets)
    cap = _DEFAULT_MAX_ITER[solver] if max_iter is None else int(max_iter)
    if solver == "reference":
        raw_prior = _solve_reference(problem, lr, cap)
        return _make_fit(problem, torch.log(raw_prior), temp, solver, (cap, cap), float(raw_prior.sum()))
    solve = _solve_lbfgs if solver == "exact" else _solve_fixed_point
    theta, iterations, evaluations = solve(problem, tol, cap)
    fit = _make_fit(problem, theta, temp, solver, (iterations, evaluations), 1.0)
    _warn_if_unconverged(fit, tol)
    return fit


def _make_fit(problem: _Problem, theta: torch.Tensor, temperature: float, solver: str,
              counts: tuple[int, int], raw_sum: float) -> PriorFit:
    """Package θ (float64 [C], any gauge) into a :class:`PriorFit` with objective and residual.

    Args:
        counts: (iterations, evaluations) spent by the solver.
    """
    value, mean_posterior = _objective_and_mean_posterior(problem, theta)
    residual = float((problem.class_freq - mean_posterior).abs().max())
    log_prior = torch.log_softmax(theta, dim=0)
    return PriorFit(prior=log_prior.exp().cpu().numpy(), log_prior=(log_prior - log_prior.mean()).cpu().numpy(),
                    temperature=float(temperature), objective=value, iterations=int(counts[0]),
                    evaluations=int(counts[1]), moment_residual=residual, raw_sum=float(raw_sum), solver=solver)


def _warn_if_unconverged(fit: PriorFit, tol: float) -> None:
    if fit.moment_residual > max(tol, _RESIDUAL_WARNING):
        warnings.warn(f"solver={fit.solver!r} stopped after {fit.iterations} iterations with moment residual "
                      f"{fit.moment_residual:.3g} > tol={tol:g}; raise max_iter or use solver='exact'",
                      RuntimeWarning, stacklevel=3)


# --------------------------------------------------------------------------------------------
# Exact solvers
# --------------------------------------------------------------------------------------------


def _initial_theta(problem: _Problem) -> tuple[torch.Tensor, int]:
    """One fixed-point step from the uniform prior: θ¹ = log s̄(0) − log(n/N), centred.

    Returns:
        (θ¹ float64 [C], number of evaluations spent = 1). It is a diagonal Newton-like step
        that removes most of the bias before L-BFGS starts.
    """
    zero = torch.zeros_like(problem.class_freq)
    _, mean_posterior = _objective_and_mean_posterior(problem, zero)
    theta = torch.log(mean_posterior) - torch.log(problem.class_freq)
    return theta - theta.mean(), 1


def _solve_lbfgs(problem: _Problem, tol: float, max_iter: int) -> tuple[torch.Tensor, int, int]:
    """Minimise F(θ) with scipy's L-BFGS-B on the analytic gradient ∇F = n/N − s̄ (exact solver 1).

    F is strictly convex on 1^⊥ and every L-BFGS direction is a combination of gradients, which
    sum to zero, so the iterates stay in the gauge of the start. L-BFGS stops when F stalls at
    float64 round-off (its line search needs visible decreases); a few fixed-point steps, which
    need no line search, then take the moment residual below ``tol``.

    Returns:
        (θ* float64 [C] centred, iterations, objective evaluations).
    """
    theta0, spent = _initial_theta(problem)
    result = optimize.minimize(_numpy_objective(problem), theta0.cpu().numpy(), jac=True, method="L-BFGS-B",
                               options={"maxiter": max_iter, "gtol": tol, "ftol": 1e-15, "maxcor": 20})
    theta = torch.as_tensor(result.x, dtype=torch.float64, device=problem.logits.device)
    theta, polish_steps, polish_evals = _solve_fixed_point(problem, tol, _MAX_POLISH_STEPS, theta)
    return theta, int(result.nit) + polish_steps, spent + int(result.nfev) + polish_evals


def _numpy_objective(problem: _Problem) -> Callable[[np.ndarray], tuple[float, np.ndarray]]:
    """Wrap F for scipy: θ (np.float64 [C]) → (F(θ), ∇F(θ) np.float64 [C])."""
    device = problem.logits.device

    def value_and_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
        value, mean_posterior = _objective_and_mean_posterior(problem, torch.as_tensor(theta, device=device))
        return value, (problem.class_freq - mean_posterior).cpu().numpy()

    return value_and_grad


def _solve_fixed_point(problem: _Problem, tol: float, max_iter: int, theta: torch.Tensor | None = None
                       ) -> tuple[torch.Tensor, int, int]:
    """Generalised iterative scaling θ ← θ + log s̄(θ) − log(n/N) (exact solver 2).

    Monotone in F (Darroch–Ratcliff) and linearly convergent; used to cross-check L-BFGS and to
    polish its result.

    Args:
        theta: start, float64 [C]; default the uniform prior (θ = 0).

    Returns:
        (θ float64 [C] centred, iterations, evaluations).
    """
    theta = torch.zeros_like(problem.class_freq) if theta is None else theta
    log_freq = torch.log(problem.class_freq)
    for step in range(max_iter + 1):
        _, mean_posterior = _objective_and_mean_posterior(problem, theta)
        if step == max_iter or float((problem.class_freq - mean_posterior).abs().max()) <= tol:
            return theta - theta.mean(), step, step + 1
        theta = theta + torch.log(mean_posterior) - log_freq
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------------------------
# Reference solver: GLA's constrained descent, replayed
# --------------------------------------------------------------------------------------------


def reference_lr(num_samples: int, num_classes: int) -> float:
    """GLA's step size lr = 1e-5 · (N/C) / 50; e.g. 4e-6 for 20 samples per class."""
    return 1e-5 * (num_samples / num_classes) / 50


def _solve_reference(problem: _Problem, lr: float | None, iterations: int) -> torch.Tensor:
    """Replay GLA's simultaneous Lagrangian descent in float32 and return the raw π.

    π⁰ = 1/C, λ = 0, μ = 0; each step uses the gradients at the current iterate:
    π ← π − lr·(∇L(π) − μ − λ), λ ← λ + lr·(1 − Σπ_old), μ ← max(0, μ − lr·π_old).

    Returns:
        Raw π, float64 [C] (not renormalised: its sum drifts).

    Raises:
        ConfigError: π_j ≤ 0 at some step (log π would be NaN): the descent diverged.
    """
    logits = problem.logits.float()
    n, c = logits.shape
    step = reference_lr(n, c) if lr is None else float(lr)
    prior = torch.full((c,), 1.0 / c, dtype=torch.float32, device=logits.device, requires_grad=True)
    eq_multiplier = torch.zeros((), dtype=torch.float32, device=logits.device)
    ineq_multiplier = torch.zeros(c, dtype=torch.float32, device=logits.device)
    for it in range(1, iterations + 1):
        loss = F.cross_entropy(logits - torch.log(prior), problem.targets)
        (grad,) = torch.autograd.grad(loss, prior)
        with torch.no_grad():
            old = prior.detach().clone()
            prior -= step * (grad - ineq_multiplier - eq_multiplier)
            eq_multiplier += step * (1.0 - old.sum())
            ineq_multiplier = torch.clamp(ineq_multiplier - step * old, min=0.0)
        _check_reference_step(prior.detach(), it)
    return prior.detach().double()


def _check_reference_step(prior: torch.Tensor, iteration: int) -> None:
    bad = torch.nonzero(~(prior > 0)).flatten().tolist()
    if bad:
        raise ConvergenceError(
            f"solver='reference' diverged at iteration {iteration}: the prior became non-positive (or NaN) "
            f"for {len(bad)} class(es), first {bad[:5]}, so log π is undefined. GLA's truncated Lagrangian "
            "descent is unstable on these logits; use solver='exact', which always converges.")


# --------------------------------------------------------------------------------------------
# Temperature calibration
# --------------------------------------------------------------------------------------------


def top1_accuracy(logits: Any, targets: Any) -> float:
    """Top-1 accuracy in % of the argmax of ``logits`` [N, C] against ``targets`` [N]."""
    return _accuracy(_problem(logits, targets))


def _accuracy(problem: _Problem) -> float:
    return 100.0 * float((problem.logits.argmax(dim=1) == problem.targets).double().mean())


def confidence(logits: Any, temperature: float) -> float:
    """c(T) = mean_i max_j softmax(z_i / T)_j in %, float64 and chunked.

    Monotonically non-increasing in T: from 100 (T → 0, no ties) down to 100/C (T → ∞).

    Args:
        logits: z, [N, C] numpy array or torch tensor.
        temperature: T > 0.

    Returns:
        The mean confidence in percent.
    """
    z = _as_logits(logits)
    return _confidence_fn(z)(_check_temperature(temperature))


def _confidence_fn(logits: torch.Tensor) -> Callable[[float], float]:
    """c(·) over fixed logits; each call is one chunked pass (max-softmax = 1/Σ_j e^{(z_j − max z)/T})."""
    row_max = logits.amax(dim=1, keepdim=True)
    n = logits.shape[0]

    def conf(temperature: float) -> float:
        total = 0.0
        for block, block_max in _row_blocks(logits, row_max):
            gaps = (block.double() - block_max).div_(temperature)
            total += float(gaps.exp_().sum(dim=1).reciprocal().sum())
        return 100.0 * total / n

    return conf


def calibrate_temperature(logits: Any, targets: Any, method: str = "brent", tol: float = 0.1) -> float:
    """Find T with confidence c(T) = top-1 accuracy (both in %), GLA's calibration.

    Args:
        logits: z, [N, C] numpy array or torch tensor (raw, T = 1).
        targets: y, [N] integer labels.
        method: ``"brent"`` (root of the monotone c(T) − acc to machine precision) or
            ``"reference"`` (GLA's regula-falsi-like search from [0.1, 10], returning the first
            T with |c(T) − acc| ≤ tol).
        tol: accepted gap |c(T) − acc| in percentage points (GLA: 0.1; 1.0 for fine-tuned models).

    Returns:
        The temperature T > 0 (divide the logits by it).

    Raises:
        ConfigError: the accuracy cannot be matched (e.g. it is below chance, 100/C), or the
            reference search hit its round cap.
    """
    _check_choice(method, CALIBRATIONS, "method")
    problem = _problem(logits, targets)
    search = _brent_temperature if method == "brent" else _reference_temperature
    return search(_confidence_fn(problem.logits), _accuracy(problem), float(tol))


def _brent_temperature(conf: Callable[[float], float], acc: float, tol: float) -> float:
    """Brent's method on c(T) − acc inside a bracket widened from [0.1, 10] by factors of 2."""
    low, high = _REFERENCE_BOUNDS
    for _ in range(64):
        gap_low, gap_high = conf(low) - acc, conf(high) - acc
        for bound, gap in ((low, gap_low), (high, gap_high)):
            if abs(gap) <= tol and gap_low * gap_high > 0:
                return bound  # the root is out of reach but this bound is within tol
        if gap_low >= 0 >= gap_high:
            root = optimize.brentq(lambda t: conf(t) - acc, low, high, xtol=1e-12, rtol=1e-14)
            return float(root)
        low, high = (low / 2, high) if gap_low < 0 else (low, high * 2)
    raise ConvergenceError(f"calibrate_temperature: accuracy {acc:.4f}% cannot be matched by the confidence on "
                      f"T in [{low:.3g}, {high:.3g}] (it lies in (100/C, 100]); pass a fixed temperature")


def _reference_temperature(conf: Callable[[float], float], acc: float, tol: float) -> float:
    """GLA's ``Calibrater.search_T``, written as a loop with a round cap."""
    low, high = _REFERENCE_BOUNDS
    for _ in range(_MAX_CALIBRATION_ROUNDS):
        conf_low, conf_high = conf(low), conf(high)
        gap_low, gap_high = abs(conf_low - acc), abs(conf_high - acc)
        if gap_low + gap_high == 0:
            return low
        mid = low + gap_low / (gap_low + gap_high) * (high - low)
        if abs(conf(mid) - acc) <= tol:
            return mid
        if conf_high > acc:
            high *= _REFERENCE_WIDEN
        elif conf_low < acc:
            low /= _REFERENCE_WIDEN
        elif gap_low < gap_high:
            high = mid
        else:
            low = mid
    raise ConvergenceError(f"calibrate_temperature(method='reference'): no T within tol={tol} of accuracy "
                      f"{acc:.4f}% after {_MAX_CALIBRATION_ROUNDS} rounds; use method='brent'")


def _resolve_temperature(problem: _Problem, temperature: str | float | None, calibration: str) -> float:
    if temperature is None:
        return 1.0
    if isinstance(temperature, str):
        if temperature != "calibrate":
            raise ConfigError(f"temperature must be 'calibrate', a positive number or None, got {temperature!r}")
        return calibrate_temperature(problem.logits, problem.targets, method=calibration)
    return _check_temperature(temperature)


def _default_calibration(solver: str) -> str:
    return "reference" if solver == "reference" else "brent"


# --------------------------------------------------------------------------------------------
# Input validation
# --------------------------------------------------------------------------------------------


def _as_logits(logits: Any) -> torch.Tensor:
    """``logits`` as a floating [N, C] tensor (half precision is widened to float32)."""
    z = torch.as_tensor(logits)
    if z.ndim != 2 or z.shape[0] == 0 or z.shape[1] == 0:
        raise ConfigError(f"logits must be a non-empty [N, C] array, got shape {tuple(z.shape)}")
    if not z.is_floating_point() or z.dtype in (torch.float16, torch.bfloat16):
        z = z.float()
    bad = ~torch.isfinite(z)
    if bool(bad.any()):
        row, col = (int(i) for i in torch.nonzero(bad)[0])
        raise NonFiniteError(f"logits hold {int(bad.sum())} non-finite value(s) (NaN or infinity), first at row "
                             f"{row}, class {col} ({float(z[row, col])}); the prior and its calibration need "
                             "finite logits (did the model diverge?)")
    return z


def _problem(logits: Any, targets: Any) -> _Problem:
    """Validate logits [N, C] and targets [N]; compute class frequencies and mean target logit."""
    z = _as_logits(logits)
    y = torch.as_tensor(targets, device=z.device)
    if y.ndim != 1 or y.shape[0] != z.shape[0] or y.is_floating_point():
        raise ConfigError(f"targets must be integer labels of shape [{z.shape[0]}] to match logits "
                          f"{tuple(z.shape)}, got {y.dtype} {tuple(y.shape)}")
    y = y.long()
    if int(y.min()) < 0 or int(y.max()) >= z.shape[1]:
        raise ConfigError(f"targets must lie in [0, {z.shape[1]}) (logits have C={z.shape[1]} columns), "
                          f"got range [{int(y.min())}, {int(y.max())}]")
    freq = torch.bincount(y, minlength=z.shape[1]).double() / y.shape[0]
    target_mean = float(z.gather(1, y[:, None]).double().mean())
    return _Problem(logits=z, targets=y, class_freq=freq, mean_target_logit=target_mean)


def _check_all_classes_present(problem: _Problem) -> None:
    missing = torch.nonzero(problem.class_freq == 0).flatten().tolist()
    if missing:
        raise ConfigError(f"targets: {len(missing)} class(es) have no sample, e.g. {missing[:10]}; the GLA "
                          "objective then has no minimiser (π_j → ∞ relative to the rest). "
                          "Estimate on a set that covers every class.")


def _as_float64_vector(values: Any, name: str, size: int, device: torch.device) -> torch.Tensor:
    vector = torch.as_tensor(values, dtype=torch.float64, device=device)
    if vector.ndim != 1 or vector.shape[0] != size:
        raise ConfigError(f"{name} must have shape [{size}] (one entry per class), got {tuple(vector.shape)}")
    return vector


def _check_positive(vector: torch.Tensor, name: str) -> None:
    bad = torch.nonzero(~(vector > 0)).flatten().tolist()
    if bad:
        raise ConfigError(f"{name} must be strictly positive; class(es) {bad[:10]} are not")


def _check_temperature(temperature: Any) -> float:
    value = float(temperature)
    if not value > 0 or not np.isfinite(value):
        raise ConfigError(f"temperature must be a finite positive number, got {temperature!r}")
    return value


def _check_choice(value: str, allowed: tuple[str, ...], name: str) -> None:
    if value not in allowed:
        raise ConfigError(f"unknown {name} {value!r}; choose one of {', '.join(allowed)}")


# --------------------------------------------------------------------------- agreement with a known prior
def kl_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """KL(p ‖ q) = Σ p log(p/q) in nats, for strictly positive q; terms with p = 0 count 0."""
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    mask = p > 0
    return float(np.sum(p[mask] * np.log(p[mask] / q[mask])))


def prior_agreement(estimate: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """How well an estimated prior (GLA's P̂_P) tracks a known one (the mini world's π_m).

    Args:
        estimate, truth: [C] priors (truth strictly positive).
    Returns:
        ``spearman`` ρ and its p-value ``spearman_p``, ``kl`` = KL(truth ‖ estimate) and ``kl_uniform``, the
        KL of a uniform guess: the baseline to beat.
    """
    rho, p = stats.spearmanr(estimate, truth)
    uniform = np.full(len(truth), 1.0 / len(truth))
    return {"spearman": float(rho), "spearman_p": float(p), "kl": kl_divergence(truth, estimate),
            "kl_uniform": kl_divergence(truth, uniform)}
