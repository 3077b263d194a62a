"""Numeric tolerances shared by the tests, each derived from the float format and the size of the computation.

A test compares two computations that are equal in exact arithmetic. Their difference is bounded by
rounding, not by what one machine printed: with unit round-off u (half the machine epsilon), summing
n terms in any order — sequential, pairwise, or split over however many vector lanes and threads the
CPU's kernel uses — errs by at most γ_n = n·u / (1 − n·u) times the sum of the terms' magnitudes
(Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed., §3.1 and §4.2). exp, log and
division add a few u each. `make test` reruns the numeric tests under torch's non-vectorised kernels
(ATEN_CPU_CAPABILITY=default, one thread) so that a bound met by one instruction set only fails here.
"""

from __future__ import annotations

import math

U32 = 2.0 ** -24  # float32 unit round-off (eps₃₂ / 2 ≈ 6.0e-8)
U64 = 2.0 ** -53  # float64 unit round-off (eps₆₄ / 2 ≈ 1.1e-16)


def gamma(n: int, u: float) -> float:
    """γ_n: relative error bound of a length-n sum or dot product (any order) with unit round-off u."""
    return n * u / (1.0 - n * u)


def f32_sum(n: int) -> float:
    """Relative error bound (w.r.t. Σ|terms|) of a float32 reduction over n terms, plus 4 u for exp/log/div."""
    return gamma(n + 4, U32)


def f64_sum(n: int) -> float:
    """As :func:`f32_sum`, in float64."""
    return gamma(n + 4, U64)


def log_prob(num_classes: int, magnitude: float, u: float = U32) -> float:
    """Absolute error bound of one log-softmax entry (or one row's cross-entropy) of C logits of size ≤ magnitude.

    log Σ_j e^{z_j − max} sums C terms in (0, 1] to a value ≥ 1, so its γ_{C+4} relative error becomes an
    absolute one after the log; the shifts z_j − max and the final subtraction are rounded at the size
    2·magnitude + log C.
    """
    return gamma(num_classes + 4, u) + 2 * u * (2 * magnitude + math.log(num_classes))


def cross_entropy(num_classes: int, batch: int, magnitude: float, u: float = U32) -> float:
    """Absolute error bound of a mean cross-entropy over ``batch`` rows: :func:`log_prob` per row, then a
    mean of ``batch`` values of size ≤ 2·magnitude + log C (γ_batch of that)."""
    return log_prob(num_classes, magnitude, u) + gamma(batch + 4, u) * (2 * magnitude + math.log(num_classes))


def matmul(x, weight) -> float:
    """Largest error of a float32 ``x @ weight.T`` (torch tensors): γ_{k+1} times Σ_k |x_k|·|w_k| per entry."""
    return gamma(x.shape[-1] + 1, U32) * float((x.abs() @ weight.abs().transpose(-1, -2)).max())


def network(values, width: int, layers: int) -> float:
    """Two float32 evaluations of the same network (other batch sizes or kernels, a fused vs a written-out
    attention) compared on ``values``: each of ``layers`` layers of dot products over ≤ ``width`` terms errs
    by ≤ γ_width relative to the size of its terms, which LayerNorm and normalised embeddings keep at the
    size of the compared values (first-order model; both sides counted)."""
    return 2 * layers * gamma(width + 4, U32) * float(values.abs().max())


# Closed forms in float64: each compared value is at most ~1000 float64 operations on values of size
# ≤ 100 (percentages, probabilities, correlations, counts), so it is off by ≤ γ_1000·100 ≈ 1.1e-11, and
# any real defect (a wrong class, weight or formula) moves it by orders more.
CLOSED_ABS = gamma(1000, U64) * 100


def sgd_trajectory(params, steps: int) -> float:
    """How far two float32 training runs that are equal in exact arithmetic may end apart, per parameter.

    They sum the same per-sample gradients in another order (micro-batches, a gloo all-reduce, a compiled
    graph), so each step's update differs by ≤ γ_B relative, far below one ulp of the parameter it is added
    to: per step a parameter may round to a neighbouring float32, one ulp of the largest parameter (pass all
    of a model's parameters: a zero-initialised bias is rounded at that scale too, not at its own). At the
    small learning rates of the tests an SGD step (I − lr·H) barely amplifies an earlier gap, so the gaps add
    up over the steps; factor 2 for both runs. ``params``: a tensor of the parameters.
    """
    import numpy as np

    return 2 * steps * float(np.spacing(np.float32(params.detach().abs().max())))
