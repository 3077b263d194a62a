"""Training losses: CE, logit adjustment, GLA-Train (book: Method, 'Losses') and Balanced Softmax."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError

LOSS_NAMES = ("CE", "LA", "GLA-Train", "BS")


class _AdjustedCrossEntropy(nn.Module):
    """Mean CE of ``logits + log_adjust`` with a fixed per-class offset, summed and reduced in fp32.

    Args:
        log_adjust: the additive per-class offset, [C]; stored as a non-persistent float32 buffer
            so that ``.to(device)`` moves it and checkpoints do not carry it.
    """

    def __init__(self, log_adjust: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("log_adjust", log_adjust.float(), persistent=False)

    @property
    def num_classes(self) -> int:
        return self.log_adjust.shape[0]

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of the adjusted logits.

        Args:
            logits: z, [N, C] (any float dtype; fp16/bf16, e.g. under autocast, is widened first).
            targets: y, [N] class indices.

        Returns:
            Scalar loss (1/N) Σ_i CE(z_i + offset, y_i), every sample with weight 1; fp32
            (fp64 for fp64 logits).
        """
        _check_logits_width(logits, self.num_classes)
        # book: Method, 'Losses' precision note: the sum and the softmax run in fp32 even under autocast.
        with torch.autocast(device_type=logits.device.type, enabled=False):
            wide = logits if logits.dtype == torch.float64 else logits.float()
            return F.cross_entropy(wide + self.log_adjust.to(wide.dtype), targets)


class CrossEntropy(_AdjustedCrossEntropy):
    """Plain cross-entropy, mean reduction, computed in fp32 (the "CE" baseline).

    Args:
        num_classes: C; the width of the logits is checked against it.
    """

    def __init__(self, num_classes: int) -> None:
        if int(num_classes) < 1:
            raise ConfigError(f"num_classes must be at least 1, got {num_classes}")
        super().__init__(torch.zeros(int(num_classes)))


class LogitAdjustedLoss(_AdjustedCrossEntropy):
    """Logit-adjusted CE (Menon et al. 2021; LIFT's "LA"): mean_i CE(z_i + τ·log π, y_i) (book: Method, 'Losses').

    π_j = n_j / Σn are the training label frequencies; since CE ignores a common shift of the
    logits this equals CE(z + τ·log n). At test time the raw logits are used.

    Args:
        class_counts: n, [C] training counts, all positive.
        tau: τ, the adjustment strength (LIFT: 1.0).
    """

    def __init__(self, class_counts: Any, tau: float = 1.0) -> None:
        super().__init__(float(tau) * log_frequencies(class_counts))
        self.tau = float(tau)

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, tau={self.tau}"


class GLATrainLoss(_AdjustedCrossEntropy):
    """The paper's "GLA-Train": mean_i CE(z_i + τ·log P_S + log P̂_P, y_i) (book: Method, 'Losses').

    Args:
        class_counts: n, [C] downstream training counts (P_S = n / Σn).
        pretrain_prior: P̂_P, [C] positive estimate of the pre-training prior (any scale: CE is
            invariant to adding log c to every logit).
        tau: τ on the downstream term (the official code: 1.0).
    """

    def __init__(self, class_counts: Any, pretrain_prior: Any, tau: float = 1.0) -> None:
        log_train = log_frequencies(class_counts)
        log_pretrain = log_frequencies(pretrain_prior, name="pretrain_prior")
        if log_pretrain.shape != log_train.shape:
            raise ConfigError(f"pretrain_prior has {log_pretrain.shape[0]} entries but class_counts has "
                              f"{log_train.shape[0]}")
        super().__init__(float(tau) * log_train + log_pretrain)
        self.tau = float(tau)

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, tau={self.tau}"


class BalancedSoftmaxLoss(_AdjustedCrossEntropy):
    """Balanced Softmax (Ren et al. 2020): softmax with n_j·e^{z_j}, i.e. mean_i CE(z_i + log n, y_i).

    It equals :class:`LogitAdjustedLoss` with τ = 1 (the two offsets differ by the constant log Σn).

    Args:
        class_counts: n, [C] training counts, all positive.
    """

    def __init__(self, class_counts: Any) -> None:
        counts = _as_counts(class_counts)
        super().__init__(torch.from_numpy(np.log(counts)))


def log_frequencies(class_counts: Any, name: str = "class_counts") -> torch.Tensor:
    """log(n / Σn) in float64, [C], after checking every entry is positive.

    Args:
        class_counts: n, [C] counts (or any positive per-class weights, e.g. a prior).
        name: the parameter name used in error messages.

    Returns:
        float64 tensor [C].
    """
    counts = _as_counts(class_counts, name)
    return torch.from_numpy(np.log(counts) - np.log(counts.sum()))


def build_loss(name: str, class_counts: Any, pretrain_prior: Any = None, tau: float = 1.0) -> nn.Module:
    """Build a training loss by key: ``"CE"``, ``"LA"``, ``"GLA-Train"`` or ``"BS"``.

    Args:
        name: one of ``LOSS_NAMES``.
        class_counts: n, [C] training counts (CE uses only their number).
        pretrain_prior: P̂_P, [C]; required by ``"GLA-Train"`` and rejected by the others.
        tau: τ for ``"LA"`` and ``"GLA-Train"``; ``"CE"`` and ``"BS"`` have none (must stay 1.0).

    Returns:
        An ``nn.Module`` with ``forward(logits [N, C], targets [N]) -> scalar``.
    """
    if name not in LOSS_NAMES:
        raise ConfigError(f"unknown loss {name!r}; choose one of {', '.join(LOSS_NAMES)}")
    if (pretrain_prior is not None) != (name == "GLA-Train"):
        raise ConfigError(f"loss {name!r}: pretrain_prior is {'required' if name == 'GLA-Train' else 'not used'}")
    if name in ("CE", "BS") and float(tau) != 1.0:
        raise ConfigError(f"loss {name!r} has no tau; got tau={tau}")
    if name == "CE":
        return CrossEntropy(len(_as_counts(class_counts)))
    if name == "BS":
        return BalancedSoftmaxLoss(class_counts)
    if name == "LA":
        return LogitAdjustedLoss(class_counts, tau=tau)
    return GLATrainLoss(class_counts, pretrain_prior, tau=tau)


def _as_counts(values: Any, name: str = "class_counts") -> np.ndarray:
    """``values`` as a float64 [C] array with every entry finite and > 0 (error names the class)."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    counts = np.asarray(values, dtype=np.float64)
    if counts.ndim != 1 or counts.size == 0:
        raise ConfigError(f"{name} must be a non-empty 1-D sequence (one entry per class), got shape {counts.shape}")
    bad = np.flatnonzero(~(np.isfinite(counts) & (counts > 0)))
    if bad.size:
        raise ConfigError(f"{name} must be positive for every class; class {int(bad[0])} has "
                          f"{counts[bad[0]]:g}" + (f" ({bad.size} such classes)" if bad.size > 1 else ""))
    return counts


def _check_logits_width(logits: torch.Tensor, num_classes: int) -> None:
    if logits.ndim != 2 or logits.shape[1] != num_classes:
        raise ConfigError(f"logits must have shape [N, {num_classes}] to match the {num_classes} classes of "
                          f"the loss, got {tuple(logits.shape)} ({logits.shape[-1] if logits.ndim else 0} classes)")
