"""Training recipes (LIFT; book: Method, 'Optimisation') as frozen dataclasses loaded from ``configs/methods``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import load_config
from .errors import ConfigError

LOSSES = ("CE", "LA", "GLA-Train", "BS")
ADAPTERS = ("adaptformer", "vpt")  # the paper's two parameter-efficient methods (§4.1); None: a linear probe
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass(frozen=True)
class TrainConfig:
    """One fine-tuning recipe. Defaults are LIFT's ViT-B/16 recipe (book: Method, 'Optimisation')."""

    epochs: int = 10                  # cosine schedule length; iNat2018 uses 20 (book: Method, 'Optimisation')
    batch_size: int = 128             # global batch (all processes together) per optimizer step
    micro_batch_size: int = 128       # per-process forward/backward chunk; accumulation when smaller
    lr: float = 0.01                  # SGD, both param groups (book: Method, 'Optimisation')
    momentum: float = 0.9
    weight_decay: float = 5e-4        # applied to every trainable tensor, as LIFT does
    loss: str = "LA"                  # CE | LA | GLA-Train | BS (ltlib.losses.build_loss)
    tau: float = 1.0                  # logit-adjustment strength; LIFT's constructor default
    adapter: str | None = "adaptformer"  # "adaptformer" | "vpt" (deep, 10 prompts per block); None: head only
    bottleneck: int | None = None     # AdaptFormer only; None: LIFT's rule from the number of classes
    head_init: str = "text"           # "text": the backbone's own text tower (book: Method, 'Cosine head'); or "random"
    cosine_scale: float = 25.0        # LIFT's config value 25 overrides its class default 30
    template: str | None = None       # None: the backbone's template ("a photo of a {}.")
    precision: str = "auto"           # auto: bf16 autocast on CUDA where supported, else fp16; fp32 on CPU
    resolution: int = 224             # training crop; the mini world uses its own image size
    tte: bool = True                  # five-crop test-time ensembling at evaluation (book: Method, 'Test-time crops')
    tte_expand: int = 24              # Resize(resolution + expand) before FiveCrop (book: Method, 'Optimisation')
    num_workers: int = 8              # data-loading processes per training process
    eval_batch_size: int = 64
    seed: int = 0
    deterministic: bool = True        # cudnn.deterministic and deterministic algorithms (book: Method, 'Optimisation')
    max_steps: int | None = None      # cap on optimizer steps (smoke runs and tests); None = full schedule
    checkpoint_every: int = 200       # also checkpoint every N steps inside an epoch (0: per epoch only)
    log_every: int = 10               # JSON-lines record every N steps

    def __post_init__(self) -> None:
        _check(self.loss in LOSSES, "loss", self.loss, f"one of {LOSSES}")
        _check(self.precision in PRECISIONS, "precision", self.precision, f"one of {PRECISIONS}")
        _check(self.adapter in (*ADAPTERS, None), "adapter", self.adapter, f"one of {ADAPTERS} or null")
        _check(self.bottleneck is None or (self.adapter == "adaptformer" and self.bottleneck > 0), "bottleneck",
               self.bottleneck, "null, or a positive width with adapter 'adaptformer'")
        for name in ("epochs", "batch_size", "micro_batch_size", "eval_batch_size", "log_every"):
            _check(getattr(self, name) > 0, name, getattr(self, name), "a positive integer")
        _check(self.lr > 0, "lr", self.lr, "positive")
        _check(self.max_steps is None or self.max_steps > 0, "max_steps", self.max_steps, "None or positive")
        _check(self.head_init in ("text", "random"), "head_init", self.head_init, "'text' or 'random'")


def load_recipe(key_or_path: str | Path = "lift", **overrides: Any) -> TrainConfig:
    """Load a recipe from ``ltlib/configs/methods/<key>.yaml`` (or a YAML path) with overrides.

    Args:
        key_or_path: registry key such as ``"lift"`` / ``"lift_inat"`` / ``"mini_lift"``, or a file.
        **overrides: field values that replace the file's (e.g. ``loss="CE", seed=1``).
    """
    return load_config(TrainConfig, "methods", key_or_path, **overrides)


def _check(ok: bool, name: str, value: Any, expected: str) -> None:
    if not ok:
        raise ConfigError(f"invalid training parameter {name}={value!r}: expected {expected}")
