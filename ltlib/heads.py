"""Classifier heads (book: Method, 'Cosine head', 'Backbones'): LIFT's cosine classifier, its text
initialisation, CLIP zero-shot."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import Backbone, flatten_crops, mean_over_crops
from .errors import ConfigError

Templates = str | Sequence[str]


class CosineClassifier(nn.Module):
    """``logits = scale · normalize(x) · normalize(W)ᵀ``, no bias; logits lie in
    [−scale, scale] (book: Method, 'Cosine head').

    Args:
        feature_dim: D, width of the features (768 for ViT-B/16 ``ln_post``).
        num_classes: C.
        scale: cosine scale; 25 is LIFT's config value (the class default there is 30; book: Method, 'Cosine head').
        seed: seeds the placeholder init, uniform(−1, 1) with unit rows, which the text init overwrites.
    """

    def __init__(self, feature_dim: int, num_classes: int, scale: float = 25.0, seed: int = 0) -> None:
        super().__init__()
        if feature_dim < 1 or num_classes < 1:
            raise ConfigError(f"CosineClassifier needs feature_dim >= 1 and num_classes >= 1, "
                              f"got {feature_dim}, {num_classes}")
        generator = torch.Generator().manual_seed(seed)
        placeholder = torch.empty(num_classes, feature_dim).uniform_(-1.0, 1.0, generator=generator)
        self.weight = nn.Parameter(F.normalize(placeholder, dim=-1))
        self.scale = float(scale)

    @property
    def num_classes(self) -> int:
        return int(self.weight.shape[0])

    @property
    def feature_dim(self) -> int:
        return int(self.weight.shape[1])

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Scaled cosine similarities (``F.normalize``, eps 1e-12, on features and class rows).

        Args:
            features: x [N, D].
        Returns:
            logits [N, C].
        """
        return self.scale * F.normalize(features, dim=-1) @ F.normalize(self.weight, dim=-1).t()

    @torch.no_grad()
    def apply_weight(self, weight: torch.Tensor) -> None:
        """Copy ``weight`` [C, D] into the existing Parameter (an optimizer built before keeps training it)."""
        if tuple(weight.shape) != tuple(self.weight.shape):
            raise ConfigError(f"weight: expected shape {tuple(self.weight.shape)}, got {tuple(weight.shape)}")
        self.weight.copy_(weight)

    def extra_repr(self) -> str:
        return f"feature_dim={self.feature_dim}, num_classes={self.num_classes}, scale={self.scale}"


def format_prompts(classnames: Sequence[str], template: str) -> list[str]:
    """Fill ``template`` with each class name, underscores read as spaces (hyphens stay)."""
    return [template.format(name.replace("_", " ")) for name in classnames]


def class_text_embeddings(backbone: Backbone, classnames: Sequence[str],
                          template: Templates | None = None) -> torch.Tensor:
    """Per-class text embeddings t_j: the mean over templates of the *normalised*
    embeddings (book: Method, 'Cosine head').

    With one template this is the unit embedding itself; with several the mean is not renormalised.

    Args:
        backbone: supplies the text tower and tokenizer.
        classnames: C names in label order.
        template: one template or a list (prompt ensemble); None: ``backbone.spec.template``.
    Returns:
        t [C, embed_dim] float32.
    """
    templates = _templates(backbone, template)
    per_template = [backbone.text_embeddings(format_prompts(classnames, t)) for t in templates]
    return torch.stack(per_template).mean(dim=0)


@torch.no_grad()
def text_head_weights(backbone: Backbone, classnames: Sequence[str],
                      template: Templates | None = None) -> torch.Tensor:
    """LIFT's text-initialised head rows ``w_j = normalize(P · t_j)`` (book: Method, 'Cosine head').

    Args:
        backbone: P = ``backbone.visual_projection`` [D, E] maps text back to the feature space.
        classnames: C names; template: as in :func:`class_text_embeddings`.
    Returns:
        W [C, D] float32, unit rows.
    """
    text = class_text_embeddings(backbone, classnames, template)
    return F.normalize(text @ backbone.visual_projection.detach().float().t(), dim=-1)


def init_head_from_text(head: CosineClassifier, backbone: Backbone, classnames: Sequence[str],
                        template: Templates | None = None) -> CosineClassifier:
    """Overwrite ``head`` with :func:`text_head_weights` in place (book: Method, 'Cosine head'); returns ``head``."""
    if len(classnames) != head.num_classes:
        raise ConfigError(f"classnames: {len(classnames)} names for a head of {head.num_classes} classes")
    head.apply_weight(text_head_weights(backbone, classnames, template).to(head.weight))
    return head


class ZeroShotClassifier(nn.Module):
    """CLIP zero-shot: ``logit_scale · cos(image embedding, text embedding)`` (book: Method, 'Backbones').

    The text side is computed once and kept as a (non-persistent) buffer. The image side always runs
    the pre-trained backbone without adapters, even when fine-tuned models share this backbone.

    Args:
        backbone: the frozen backbone.
        classnames: C names in label order.
        template: one template or a list; None: ``backbone.spec.template`` ("a photo of a {}.").
    """

    def __init__(self, backbone: Backbone, classnames: Sequence[str], template: Templates | None = None) -> None:
        super().__init__()
        self.backbone = backbone
        text = F.normalize(class_text_embeddings(backbone, classnames, template), dim=-1)
        self.register_buffer("text_weights", text, persistent=False)

    @property
    def num_classes(self) -> int:
        return int(self.text_weights.shape[0])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Zero-shot logits.

        Args:
            images: [B, 3, H, W] or crops [B, V, 3, H, W] (raw logits averaged over V, book: Method, 'Test-time crops').
        Returns:
            logits [B, C].
        """
        return self.logits_and_features(images)[0]

    def logits_and_features(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits [B, C] and the pre-trained ``ln_post`` features [B, feature_dim], both averaged over crops."""
        flat, num_crops = flatten_crops(images)
        features = self.backbone.image_features(flat)
        embeddings = F.normalize(features @ self.backbone.visual_projection, dim=-1)
        logits = self.backbone.logit_scale * embeddings @ self.text_weights.t()
        return mean_over_crops(logits, num_crops), mean_over_crops(features, num_crops)


def _templates(backbone: Backbone, template: Templates | None) -> list[str]:
    if template is None:
        return [backbone.spec.template]
    templates = [template] if isinstance(template, str) else list(template)
    if not templates or any("{}" not in t for t in templates):
        raise ConfigError(f"template: need one or more templates with '{{}}', got {template!r}")
    return templates
