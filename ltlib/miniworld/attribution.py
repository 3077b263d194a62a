"""Which part of an object a classifier relies on (the paper's Fig. 4/10; book: Mini world, decision 9): saliency
and occlusion vs part masks.

The paper shows attention heat-maps of three foundation models on a few birds and reads off that each
relies on a different part (its *incomplete semantic factor* C). Where head and body masks are known (the
mini world records them for every image), the same question has a number as its answer:

- :func:`saliency_maps`: gradient × input of the true-class score, one map per image;
- :func:`saliency_shares`: the share of saliency mass on each part, and the head's share once both
  parts are normalised by their visible area;
- :func:`part_reliance`: occlusion. Replace the visible head by the image's background colour, then the
  body; the drops of the true-class score give a head-reliance share in [0, 1] per image.

Why gradient × input, not attention rollout: at the mini world's 32 px a ViT with 8 px patches has a
4 × 4 token grid, coarser than a head (4–6 px radius), so rollout cannot separate the parts inside one
patch; input gradients are pixel-resolved and work for any differentiable classifier (zero-shot CLIP,
a fine-tuned ``LTClassifier``, a CNN). On normalised inputs (0 = the dataset mean colour) gradient ×
input is the first-order change of the score when a pixel is set to the mean colour, the same kind of
counterfactual as the occlusion measure, which is exact rather than first-order and gives the headline
number. Both are deterministic: no sampling (unlike SmoothGrad) and no random baselines.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..results import mean_ci

Classifier = Callable[[torch.Tensor], torch.Tensor]  # normalised images [B, 3, H, W] → logits [B, K]
HEAD, BODY = 0, 1  # channels of the part masks [N, 2, H, W] (ltlib.miniworld.generator.Renders.masks)
PARTS = {"head": HEAD, "body": BODY}
SCORES = ("log_prob", "logit")
FILLS = ("background", "mean")


# --------------------------------------------------------------------------- scores
def true_class_score(logits: torch.Tensor, targets: torch.Tensor, score: str = "log_prob") -> torch.Tensor:
    """The score whose sensitivity is measured: true-class log-probability (default) or raw logit.

    The log-probability ``z_y − logsumexp(z)`` ignores a shift shared by every class (e.g. a CLIP image
    embedding that moves away from all text embeddings at once when a part is removed), which leaves the
    decision unchanged; it counts only evidence for y relative to the other classes.

    Args:
        logits: [N, K]; targets: int64 [N]; score: ``"log_prob"`` or ``"logit"``.
    Returns:
        [N].
    """
    _check_choice("score", score, SCORES)
    values = logits.log_softmax(dim=1) if score == "log_prob" else logits
    return values.gather(1, targets.view(-1, 1)).squeeze(1)


@contextmanager
def _eval_mode(classifier: Classifier) -> Iterator[None]:
    """Put a module classifier in eval mode (no dropout, no batch statistics) and restore its modes after.

    Eval mode also makes the samples of a batch independent, which the batched gradients rely on.
    """
    modules = list(classifier.modules()) if isinstance(classifier, torch.nn.Module) else []
    modes = [m.training for m in modules]
    for m in modules:
        m.training = False
    try:
        yield
    finally:
        for m, mode in zip(modules, modes):
            m.training = mode


# --------------------------------------------------------------------------- saliency
def saliency_maps(classifier: Classifier, images: torch.Tensor, targets: torch.Tensor, score: str = "log_prob",
                  batch_size: int = 256) -> torch.Tensor:
    """Gradient × input saliency of the true-class score: ``|Σ_channels x ⊙ ∂s_y/∂x|`` (Fig. 4 analogue).

    Args:
        classifier: differentiable, normalised images [B, 3, H, W] → logits [B, K].
        images: normalised images [N, 3, H, W]; targets: int64 [N], the class whose score is explained.
        score: see :func:`true_class_score`. The log-probability's gradient vanishes where the softmax
            saturates (p_y → 1); for a very confident classifier explain the ``"logit"`` instead.
        batch_size: images per backward pass (the result does not depend on it).
    Returns:
        float32 [N, H, W], non-negative.
    """
    _check_batch(images, targets, batch_size)
    with _eval_mode(classifier):
        maps = [_saliency_batch(classifier, images[i:i + batch_size], targets[i:i + batch_size], score)
                for i in range(0, len(images), batch_size)]
    return torch.cat(maps) if maps else images.new_zeros(0, *images.shape[2:])


def _saliency_batch(classifier: Classifier, images: torch.Tensor, targets: torch.Tensor, score: str) -> torch.Tensor:
    """One batch of :func:`saliency_maps`: the summed scores' gradient is each image's own (eval mode)."""
    x = images.detach().float().clone().requires_grad_(True)
    with torch.enable_grad():
        total = true_class_score(classifier(x), targets, score).sum()
        (grad,) = torch.autograd.grad(total, x)
    return (grad * x.detach()).sum(dim=1).abs()


@dataclass(frozen=True)
class SaliencyShares:
    """Where the saliency mass lies, per image (float64 arrays [N]).

    Attributes:
        head_mass, body_mass: fraction of the image's saliency on the visible head / body pixels.
        head_density_share: ``d_head / (d_head + d_body)`` with ``d_part = mass / visible area``: the head's
            share once the parts' sizes are factored out (0.5: attended alike per pixel). NaN when a part
            has no visible pixel or neither part has saliency.
    """

    head_mass: np.ndarray
    body_mass: np.ndarray
    head_density_share: np.ndarray


def saliency_shares(saliency: torch.Tensor, masks: torch.Tensor) -> SaliencyShares:
    """Split saliency maps by part masks.

    Args:
        saliency: [N, H, W], non-negative (:func:`saliency_maps`).
        masks: bool [N, 2, H, W], visible (head, body) pixels.
    Returns:
        :class:`SaliencyShares`.
    """
    _check_masks(masks, saliency.shape[0], tuple(saliency.shape[1:]))
    saliency = saliency.double()
    part_mass = (saliency.unsqueeze(1) * masks).sum(dim=(2, 3))  # [N, 2]
    total = saliency.sum(dim=(1, 2)).clamp_min(torch.finfo(torch.float64).tiny)
    area = masks.sum(dim=(2, 3)).double()
    density = torch.where(area > 0, part_mass / area.clamp_min(1), torch.nan)
    return SaliencyShares((part_mass[:, HEAD] / total).numpy(), (part_mass[:, BODY] / total).numpy(),
                          _share(density[:, HEAD], density[:, BODY]).numpy())


# --------------------------------------------------------------------------- occlusion
def background_colour(images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Per-image mean colour of the pixels at least one pixel away from either part.

    Args:
        images: [N, 3, H, W]; masks: bool [N, 2, H, W].
    Returns:
        [N, 3]; an image without such pixels gets 0 (the dataset mean colour of normalised inputs).
    """
    _check_masks(masks, images.shape[0], tuple(images.shape[2:]))
    background = ~_dilate(masks.any(dim=1))  # [N, H, W]; the dilation drops the parts' anti-aliased rims
    weight = background.unsqueeze(1).to(images.dtype)
    return (images * weight).sum(dim=(2, 3)) / weight.sum(dim=(2, 3)).clamp_min(1)


def remove_part(images: torch.Tensor, masks: torch.Tensor, part: str, fill: str = "background") -> torch.Tensor:
    """Replace the visible ``part`` (grown by one pixel into everything but the other part) by a flat fill.

    Args:
        images: normalised [N, 3, H, W]; masks: bool [N, 2, H, W].
        part: ``"head"`` or ``"body"``.
        fill: ``"background"`` (:func:`background_colour` of each image) or ``"mean"`` (0: the dataset mean).
    Returns:
        A new tensor [N, 3, H, W]; pixels outside the filled region are unchanged.
    """
    _check_choice("part", part, tuple(PARTS))
    _check_choice("fill", fill, FILLS)
    own, other = masks[:, PARTS[part]], masks[:, 1 - PARTS[part]]
    region = (_dilate(own) & ~other).unsqueeze(1)  # [N, 1, H, W]
    colour = background_colour(images, masks) if fill == "background" else images.new_zeros(len(images), 3)
    return torch.where(region, colour[:, :, None, None], images)


def _dilate(mask: torch.Tensor) -> torch.Tensor:
    """Grow a bool mask [N, H, W] by one pixel (3 × 3 neighbourhood)."""
    return F.max_pool2d(mask.unsqueeze(1).float(), 3, stride=1, padding=1).squeeze(1) > 0


@dataclass(frozen=True)
class PartReliance:
    """Occlusion part reliance per image (float64 arrays [N]).

    Attributes:
        score: the true-class score of the intact image.
        head_drop, body_drop: score lost when the head (body) is replaced by background.
        head_share: ``h⁺ / (h⁺ + b⁺)`` with ``x⁺ = max(x, 0)``: 1 relies on the head only, 0 on the body
            only; NaN when removing either part costs nothing (no reliance on either to share out).
    """

    score: np.ndarray
    head_drop: np.ndarray
    body_drop: np.ndarray
    head_share: np.ndarray

    def mean_head_share(self, level: float = 0.95) -> tuple[float, float, float, int]:
        """Mean per-image head share over the images where it is defined, with a Student-t CI.

        Returns:
            (mean, ci_low, ci_high, n); NaNs when fewer than two images qualify.
        """
        mean, _, low, high, n = mean_ci(self.head_share[~np.isnan(self.head_share)], level)
        return mean, low, high, n

    @property
    def pooled_head_share(self) -> float:
        """``Σ h⁺ / (Σ h⁺ + Σ b⁺)``: the head's share of all the evidence removed, dominated by the
        images the classifier depends on most (NaN when nothing is lost)."""
        head, body = np.clip(self.head_drop, 0, None).sum(), np.clip(self.body_drop, 0, None).sum()
        return float(head / (head + body)) if head + body > 0 else float("nan")


def part_reliance(classifier: Classifier, images: torch.Tensor, masks: torch.Tensor, targets: torch.Tensor,
                  score: str = "log_prob", fill: str = "background", batch_size: int = 256) -> PartReliance:
    """Occlusion test: how much of the true-class score each part carries (Fig. 4 analogue, as a number).

    Each batch runs once with the intact, head-removed and body-removed images stacked (3B images).

    Args:
        classifier: normalised images [B, 3, H, W] → logits [B, K].
        images: normalised [N, 3, H, W]; masks: bool [N, 2, H, W] (visible head, body); targets: int64 [N].
        score: see :func:`true_class_score`; fill: see :func:`remove_part`.
        batch_size: images per forward pass (the result does not depend on it).
    Returns:
        :class:`PartReliance`.
    """
    _check_batch(images, targets, batch_size)
    _check_masks(masks, images.shape[0], tuple(images.shape[2:]))
    _check_choice("score", score, SCORES)
    with _eval_mode(classifier), torch.no_grad():
        scores = torch.cat([_occlusion_batch(classifier, images[i:i + batch_size], masks[i:i + batch_size],
                                             targets[i:i + batch_size], score, fill)
                            for i in range(0, len(images), batch_size)] or [torch.zeros(0, 3)]).double()
    head_drop, body_drop = scores[:, 0] - scores[:, 1], scores[:, 0] - scores[:, 2]
    return PartReliance(scores[:, 0].numpy(), head_drop.numpy(), body_drop.numpy(),
                        _share(head_drop.clamp_min(0), body_drop.clamp_min(0)).numpy())


def _occlusion_batch(classifier: Classifier, images: torch.Tensor, masks: torch.Tensor, targets: torch.Tensor,
                     score: str, fill: str) -> torch.Tensor:
    """Scores [B, 3] of the (intact, without head, without body) images."""
    images = images.float()
    stacked = torch.cat([images, remove_part(images, masks, "head", fill), remove_part(images, masks, "body", fill)])
    values = true_class_score(classifier(stacked), targets.repeat(3), score)
    return values.view(3, -1).t()


def _share(head: torch.Tensor, body: torch.Tensor) -> torch.Tensor:
    """``head / (head + body)`` for non-negative inputs; NaN where the sum is 0 or either is NaN."""
    total = head + body
    return torch.where(total > 0, head / total.where(total > 0, torch.ones_like(total)), torch.nan)


# --------------------------------------------------------------------------- both at once
@dataclass(frozen=True)
class PartAttribution:
    """Saliency maps, their part shares and the occlusion reliance of one classifier on one image set."""

    saliency: torch.Tensor  # [N, H, W]
    shares: SaliencyShares
    reliance: PartReliance

    def summary(self, index: np.ndarray | None = None, level: float = 0.95) -> dict[str, float]:
        """The page's numbers over the images at ``index`` (bool or int; default all).

        Returns:
            ``head_reliance`` (mean per-image head share) with ``head_reliance_ci_low/high`` and
            ``head_reliance_n``; ``pooled_head_reliance``; ``saliency_head_density_share`` (mean over the
            images where it is defined); ``saliency_head_mass`` and ``saliency_body_mass`` (means).
        """
        index = np.arange(len(self.reliance.score)) if index is None else np.asarray(index)
        r, s = self.reliance, self.shares
        part = PartReliance(r.score[index], r.head_drop[index], r.body_drop[index], r.head_share[index])
        mean, low, high, n = part.mean_head_share(level)
        density = s.head_density_share[index]
        return {"head_reliance": mean, "head_reliance_ci_low": low, "head_reliance_ci_high": high,
                "head_reliance_n": float(n), "pooled_head_reliance": part.pooled_head_share,
                "saliency_head_density_share": _nanmean(density),
                "saliency_head_mass": _nanmean(s.head_mass[index]), "saliency_body_mass": _nanmean(s.body_mass[index])}


def attribute(classifier: Classifier, images: torch.Tensor, masks: torch.Tensor, targets: torch.Tensor,
              score: str = "log_prob", fill: str = "background", batch_size: int = 256) -> PartAttribution:
    """:func:`saliency_maps`, :func:`saliency_shares` and :func:`part_reliance` of one classifier.

    Args:
        classifier, images, masks, targets, score, fill, batch_size: as in :func:`part_reliance`.
    Returns:
        :class:`PartAttribution` (saliency [N, H, W]).
    """
    saliency = saliency_maps(classifier, images, targets, score, batch_size)
    return PartAttribution(saliency, saliency_shares(saliency, masks),
                           part_reliance(classifier, images, masks, targets, score, fill, batch_size))


# --------------------------------------------------------------------------- checks
def _nanmean(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else float("nan")


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {choices}, got {value!r}")


def _check_batch(images: torch.Tensor, targets: torch.Tensor, batch_size: int) -> None:
    if images.ndim != 4:
        raise ConfigError(f"images: expected [N, 3, H, W], got shape {tuple(images.shape)}")
    if targets.shape != (images.shape[0],):
        raise ConfigError(f"targets: expected shape ({images.shape[0]},), got {tuple(targets.shape)}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")


def _check_masks(masks: torch.Tensor, n: int, size: tuple[int, ...]) -> None:
    if masks.dtype != torch.bool or tuple(masks.shape) != (n, 2, *size):
        raise ConfigError(f"masks: expected bool [{n}, 2, {size[0]}, {size[1]}] (head, body), "
                          f"got {masks.dtype} {tuple(masks.shape)}")
