"""Test-time logit combination: the backdoor adjustment (the paper's Eq. 7) and GLA's post-hoc rule
(book: Method, 'The GLA prior estimator')."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .errors import ConfigError

RULES = ("logit_sum", "prob_mean")
# GLA adds this inside the log so a zero prior entry stays finite (book: Method, 'The GLA prior estimator').
PRIOR_EPS = 1e-12


def backdoor_adjust(logits_list: Sequence[Any], rule: str = "logit_sum", weights: Sequence[float] | None = None
                    ) -> torch.Tensor:
    """Combine the logits of M foundation models fine-tuned separately (one per value of c).

    ``"logit_sum"``: Σ_m w_m z_m with w_m = 1 by default, the official code's plain sum of raw
    logits (book: Method, 'Stage 2: the backdoor adjustment in practice'). Its argmax equals the
    argmax of the mean, so accuracy is the same either way.
    ``"prob_mean"``: log Σ_m w_m softmax(z_m), the paper's P(Y|do(X)) = Σ_c P(Y|X,c) P(c) with
    P(c) = w (default 1/M; given weights are normalised to sum 1), returned as log-probabilities
    so that argmax and accuracy code apply unchanged.

    Args:
        logits_list: M ≥ 1 logits arrays, each [N, C] (numpy or torch), all the same shape.
        rule: ``"logit_sum"`` or ``"prob_mean"``.
        weights: M non-negative weights (not all zero), or None for the defaults above.

    Returns:
        Combined scores, [N, C] float tensor (float64 if any input is float64, else float32) on
        the first input's device.
    """
    if rule not in RULES:
        raise ConfigError(f"unknown rule {rule!r}; choose one of {', '.join(RULES)}")
    stacked = _stack(logits_list)
    if rule == "logit_sum":
        w = _weights(weights, stacked.shape[0], default=1.0).to(stacked)
        return torch.einsum("m,mnc->nc", w, stacked)
    w = _weights(weights, stacked.shape[0], default=1.0 / stacked.shape[0]).to(stacked)
    log_w = torch.log(w / w.sum())
    return torch.logsumexp(log_w[:, None, None] + torch.log_softmax(stacked, dim=2), dim=0)


def gla_posthoc(ft_logits: Any, zs_logits: Any, prior: Any, ft_temperature: float = 1.0, zs_temperature: float = 1.0,
                train_prior: Any = None) -> torch.Tensor:
    """GLA's post-hoc combination ft/T_ft + zs/T_zs − log(π + 1e-12) [− log p]
    (book: Method, 'The GLA prior estimator').

    Args:
        ft_logits: fine-tuned model logits, [N, C].
        zs_logits: zero-shot logits, [N, C] (raw: they are divided by ``zs_temperature`` here).
        prior: π, the estimated pre-training prior, [C] (any positive scale: a constant factor
            shifts every logit equally and leaves the argmax unchanged).
        ft_temperature: T_ft.
        zs_temperature: T_zs (the temperature π was estimated at).
        train_prior: p, the downstream label distribution, [C], for a model trained with plain CE
            on imbalanced data; leave None for a logit-adjusted (LA) model, whose logits are
            already balanced, so that log p is not subtracted twice.

    Returns:
        Debiased scores, [N, C] float tensor on ``ft_logits``' device.
    """
    ft, zs = _stack([ft_logits, zs_logits])
    for name, value in (("ft_temperature", ft_temperature), ("zs_temperature", zs_temperature)):
        if not float(value) > 0:
            raise ConfigError(f"{name} must be positive, got {value}")
    scores = ft / float(ft_temperature) + zs / float(zs_temperature) - _log_vector(prior, "prior", ft, PRIOR_EPS)
    if train_prior is not None:
        scores = scores - _log_vector(train_prior, "train_prior", ft, 0.0)
    return scores


def _stack(logits_list: Sequence[Any]) -> torch.Tensor:
    """Stack M logits arrays of one shape [N, C] into [M, N, C] (float32 unless one is float64)."""
    if len(logits_list) == 0:
        raise ConfigError("logits_list is empty; pass the logits of at least one model")
    tensors = [torch.as_tensor(z) for z in logits_list]
    shape = tuple(tensors[0].shape)
    if len(shape) != 2:
        raise ConfigError(f"logits_list[0] must be [N, C], got shape {shape}")
    for index, tensor in enumerate(tensors[1:], start=1):
        if tuple(tensor.shape) != shape:
            raise ConfigError(f"logits_list[{index}] has shape {tuple(tensor.shape)} but logits_list[0] has {shape}")
    dtype = torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32
    device = tensors[0].device
    return torch.stack([t.to(device=device, dtype=dtype) for t in tensors])


def _weights(weights: Sequence[float] | None, count: int, default: float) -> torch.Tensor:
    """Validated weights, float64 [M]: M finite non-negative values, not all zero."""
    if weights is None:
        return torch.full((count,), default, dtype=torch.float64)
    w = torch.as_tensor(weights, dtype=torch.float64).flatten()
    if w.numel() != count:
        raise ConfigError(f"weights has {w.numel()} entries but logits_list has {count} models")
    bad = torch.nonzero(~(torch.isfinite(w) & (w >= 0))).flatten().tolist()
    if bad:
        raise ConfigError(f"weights must be finite and non-negative; weights[{bad[0]}] = {float(w[bad[0]])}")
    if float(w.sum()) == 0:
        raise ConfigError("weights are all zero; at least one model needs a positive weight")
    return w


def _log_vector(values: Any, name: str, like: torch.Tensor, eps: float) -> torch.Tensor:
    """log(values + eps) in float64, checked to be [C] and positive, cast to ``like``'s dtype/device."""
    vector = torch.as_tensor(values, dtype=torch.float64)
    if vector.shape != (like.shape[1],):
        raise ConfigError(f"{name} must have shape [{like.shape[1]}] (one entry per class), got {tuple(vector.shape)}")
    bad = torch.nonzero(~(vector + eps > 0) | ~torch.isfinite(vector)).flatten().tolist()
    if bad:
        kind = "finite and non-negative" if eps > 0 else "finite and positive"
        raise ConfigError(f"{name} must be {kind}; class {bad[0]} has {float(vector[bad[0]])}")
    return torch.log(vector + eps).to(device=like.device, dtype=like.dtype)
