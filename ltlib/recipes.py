"""Training recipes (LIFT; book: Method, 'Optimisation') as frozen dataclasses loaded from ``configs/methods``."""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import load_config
from .errors import ConfigError

LOSSES = ("CE", "LA", "GLA-Train", "BS")
ADAPTERS = ("adaptformer", "vpt")  # the paper's two parameter-efficient methods (§4.1); None: a linear probe
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# Settings that change how fast a run goes or what it logs, never its numbers: left out of a run's identity,
# so changing them resumes a run instead of starting a new one (micro-batches accumulate to the same batch).
RUNTIME_FIELDS = ("num_workers", "checkpoint_every", "log_every", "micro_batch_size", "eval_batch_size")


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
        _check(self.head_init in ("text", "random"), "head_init", self.head_init, "'text' or 'random'")
        for name, low in _INT_FIELDS.items():
            value = getattr(self, name)
            optional = name in ("bottleneck", "max_steps") and value is None
            _check(optional or (_is_int(value) and value >= low), name, value,
                   f"an integer >= {low}" + (" or None" if name in ("bottleneck", "max_steps") else ""))
        for name, (low, strict) in _REAL_FIELDS.items():
            value = getattr(self, name)
            ok = _is_real(value) and math.isfinite(value) and (value > low if strict else value >= low)
            _check(ok, name, value, f"a finite number {'>' if strict else '>='} {low}")
        _check(self.momentum < 1, "momentum", self.momentum, "a number in [0, 1)")
        for name in ("tte", "deterministic"):
            _check(isinstance(getattr(self, name), bool), name, getattr(self, name), "true or false")
        for name in ("adapter", "template"):
            _check(getattr(self, name) is None or isinstance(getattr(self, name), str), name, getattr(self, name),
                   "a string or null")
        _check(self.adapter in (*ADAPTERS, None), "adapter", self.adapter, f"one of {ADAPTERS} or null")
        _check(self.bottleneck is None or self.adapter == "adaptformer", "bottleneck", self.bottleneck,
               "null, or a positive width with adapter 'adaptformer'")


_INT_FIELDS = {"epochs": 1, "batch_size": 1, "micro_batch_size": 1, "eval_batch_size": 1, "log_every": 1,
               "resolution": 1, "tte_expand": 0, "num_workers": 0, "seed": 0, "checkpoint_every": 0,
               "bottleneck": 1, "max_steps": 1}
_REAL_FIELDS = {"lr": (0.0, True), "momentum": (0.0, False), "weight_decay": (0.0, False), "tau": (0.0, False),
                "cosine_scale": (0.0, True)}  # name: (lower bound, strictly above it)


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def recipe_identity(cfg: TrainConfig) -> dict[str, Any]:
    """The fields of ``cfg`` that decide a run's numbers (all but :data:`RUNTIME_FIELDS`), for hashing."""
    return {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.name not in RUNTIME_FIELDS}


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
