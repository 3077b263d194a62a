"""The LIFT classifier (book: Method, 'Implementation details'): frozen backbone + AdaptFormer (or deep VPT)
in every block + cosine head."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .adapters import adaptformer_dim, build_adaptformers
from .backbones import Backbone, flatten_crops, mean_over_crops
from .errors import ConfigError
from .heads import CosineClassifier, Templates, init_head_from_text
from .prompts import VPT_LENGTH, build_vpts
from .recipes import ADAPTERS

HEAD_INITS = ("text", "random")


class LTClassifier(nn.Module):
    """Images → logits through a frozen backbone, optional adapters and a trainable head (book: Method, 'AdaptFormer').

    Only ``adapters`` and ``head`` train; the backbone (image and text towers, ``ln_post``, ``proj``,
    ``logit_scale``) is frozen. The adapters are submodules of this classifier (``parameters()``,
    ``state_dict()``, ``.to()`` and DDP see them) and are applied inside the backbone's blocks only
    during this model's forward, so a backbone shared with a zero-shot classifier stays pre-trained.

    Args:
        backbone: the frozen backbone (frozen again here).
        head: maps features [N, feature_dim] to logits [N, C].
        adapters: one module per backbone block, or None (head only: a linear probe).
    """

    trainable_prefixes: tuple[str, ...] = ("adapters.", "head.")

    def __init__(self, backbone: Backbone, head: nn.Module, adapters: nn.ModuleList | None = None) -> None:
        super().__init__()
        if adapters is not None and len(adapters) != len(backbone.blocks):
            raise ConfigError(f"adapters: {len(adapters)} adapters for {len(backbone.blocks)} blocks")
        self.backbone = backbone.requires_grad_(False)
        self.adapters = adapters
        self.head = head

    @property
    def num_classes(self) -> int:
        return int(self.head.num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits; with crops, the mean of the per-crop raw logits (LIFT's TTE rule, book: Method, 'Test-time crops').

        Args:
            images: [B, 3, H, W] or crops [B, V, 3, H, W].
        Returns:
            logits [B, C].
        """
        return self.logits_and_features(images)[0]

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Adapted ``ln_post`` CLS features (the head's input, book: Method, 'Backbones'); crops are averaged.

        Note that ``head(features(crops))`` is not ``forward(crops)``: the head normalises each crop's
        feature, so the mean of logits differs from the logits of the mean feature.

        Args:
            images: [B, 3, H, W] or crops [B, V, 3, H, W].
        Returns:
            features [B, feature_dim].
        """
        flat, num_crops = flatten_crops(images)
        return mean_over_crops(self.backbone.image_features(flat, self.adapters), num_crops)

    def logits_and_features(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward` and :meth:`features` from one backbone pass: ([B, C], [B, feature_dim])."""
        flat, num_crops = flatten_crops(images)
        features = self.backbone.image_features(flat, self.adapters)
        return mean_over_crops(self.head(features), num_crops), mean_over_crops(features, num_crops)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The adapters' and the head's parameters (book: Method, 'AdaptFormer'), in registration order."""
        return [p for name, p in self.named_parameters() if name.startswith(self.trainable_prefixes)]

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """State of the adapters and the head only, keyed as in ``state_dict()`` (``adapters.*``, ``head.*``)."""
        return {k: v for k, v in self.state_dict().items() if k.startswith(self.trainable_prefixes)}

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Inverse of :meth:`trainable_state_dict`; keys must match exactly (no silent partial loads)."""
        expected, given = set(self.trainable_state_dict()), set(state)
        if expected != given:
            raise ConfigError(f"state: missing keys {sorted(expected - given)[:5]}, unexpected keys "
                              f"{sorted(given - expected)[:5]} (adapters + head expected)")
        self.load_state_dict(state, strict=False)


def build_lift_model(backbone: Backbone, classnames: Sequence[str], adapter: str | None = "adaptformer",
                     bottleneck: int | None = None, head_init: str = "text", scale: float = 25.0,
                     template: Templates | None = None, seed: int = 0,
                     prompt_length: int | None = None) -> LTClassifier:
    """LIFT's model: AdaptFormer in every block, cosine head initialised from text
    (book: Method, 'Implementation details').

    With ``adapter="vpt"`` the blocks get deep visual prompts instead (VPT, Jia et al., ECCV 2022, as
    LIFT implements it): the paper's §4.1 states its imbalance analysis for both methods.

    Args:
        backbone: frozen backbone; its text tower initialises the head (each backbone its own).
        classnames: C names in label order.
        adapter: ``"adaptformer"``, ``"vpt"`` or None (head only).
        bottleneck: AdaptFormer width r; None: :func:`~ltlib.adapters.adaptformer_dim` with
            L = the backbone's number of blocks (12 for ViT-B/16, book: Method, 'AdaptFormer').
        prompt_length: VPT tokens per block; None: LIFT's constant 10 (:data:`~ltlib.prompts.VPT_LENGTH`).
        head_init: ``"text"`` or ``"random"`` (the seeded placeholder; book: Method, 'Cosine head').
        scale: cosine scale (25, book: Method, 'Cosine head').
        template: prompt(s) for the text init; None: ``backbone.spec.template``.
        seed: seeds the adapters' (or prompts') and the placeholder head's initialisation.
    Returns:
        an :class:`LTClassifier` on the backbone's device.
    """
    _check_choice("adapter", adapter, (*ADAPTERS, None))
    _check_choice("head_init", head_init, HEAD_INITS)
    _check_sizes(adapter, bottleneck, prompt_length)
    adapters = _build_adapters(backbone, adapter, len(classnames), bottleneck, prompt_length, seed)
    head = CosineClassifier(backbone.feature_dim, len(classnames), scale=scale, seed=seed)
    if head_init == "text":
        init_head_from_text(head, backbone, classnames, template)
    return LTClassifier(backbone, head, adapters).to(backbone.device)


def _build_adapters(backbone: Backbone, adapter: str | None, num_classes: int, bottleneck: int | None,
                    prompt_length: int | None, seed: int) -> nn.ModuleList | None:
    """One AdaptFormer or one VPT per block (or None), sized by LIFT's rules when no size is given."""
    num_blocks = len(backbone.blocks)
    if adapter == "adaptformer":
        width = bottleneck if bottleneck is not None else adaptformer_dim(num_classes, num_blocks)
        return build_adaptformers(num_blocks, backbone.feature_dim, width, seed=seed)
    if adapter == "vpt":
        length = prompt_length if prompt_length is not None else VPT_LENGTH
        return build_vpts(num_blocks, backbone.feature_dim, length, backbone.patch_size, seed=seed)
    return None


def _check_sizes(adapter: str | None, bottleneck: int | None, prompt_length: int | None) -> None:
    if bottleneck is not None and adapter != "adaptformer":
        raise ConfigError(f"bottleneck={bottleneck} applies to adapter='adaptformer' only, not {adapter!r}")
    if prompt_length is not None and adapter != "vpt":
        raise ConfigError(f"prompt_length={prompt_length} applies to adapter='vpt' only, not {adapter!r}")


class ScratchClassifier(LTClassifier):
    """A backbone's image tower trained from random weights, with a cosine head: no pre-training and
    hence no parameter imbalance (the paper's from-scratch control, Fig. 9). Everything in the image
    tower trains; the (random) text tower is unused."""

    trainable_prefixes = ("backbone.clip.visual.", "head.")

    def __init__(self, backbone: Backbone, head: nn.Module) -> None:
        super().__init__(backbone, head, adapters=None)
        backbone.clip.visual.requires_grad_(True)


def build_scratch_model(backbone: Backbone, num_classes: int, scale: float = 25.0, seed: int = 0) -> ScratchClassifier:
    """The from-scratch control: ``backbone`` should be built with ``random_init=True``; the head is the
    seeded random cosine classifier (a random text tower carries no class knowledge)."""
    head = CosineClassifier(backbone.feature_dim, num_classes, scale=scale, seed=seed)
    return ScratchClassifier(backbone, head).to(backbone.device)


class EnsembleClassifier(nn.Module):
    """M classifiers whose raw logits are summed (the official stage-2 rule), as one trainable model.

    Trained end to end with one loss on the summed logits, this is the "jointly trained ensemble" the
    paper compares with its post-hoc adjustment (rebuttal). Features are the members' concatenated.
    """

    def __init__(self, members: Sequence[LTClassifier]) -> None:
        super().__init__()
        if not members or len({m.num_classes for m in members}) != 1:
            raise ConfigError("members: need at least one classifier, all with the same number of classes")
        self.members = nn.ModuleList(members)

    @property
    def num_classes(self) -> int:
        return self.members[0].num_classes

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Σ_m logits_m [B, C]."""
        return torch.stack([m(images) for m in self.members]).sum(0)

    def logits_and_features(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(Σ_m logits_m [B, C], concatenated features [B, Σ_m D_m])."""
        outputs = [m.logits_and_features(images) for m in self.members]
        return torch.stack([o[0] for o in outputs]).sum(0), torch.cat([o[1] for o in outputs], dim=1)

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """The members' trainable states, keyed ``members.<i>.<key>``."""
        return {f"members.{i}.{k}": v for i, m in enumerate(self.members) for k, v in m.trainable_state_dict().items()}

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Inverse of :meth:`trainable_state_dict`."""
        for i, member in enumerate(self.members):
            prefix = f"members.{i}."
            member.load_trainable_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})


def _check_choice(name: str, value: object, choices: tuple) -> None:
    if value not in choices:
        raise ConfigError(f"invalid {name}={value!r}: expected one of {choices}")
