"""World configuration (book: The mini world): frozen dataclasses loaded from ``ltlib/configs/worlds/<key>.yaml``.

A world file has one section per dataclass below; every field has a default, so a file states only what
it changes. ``load_world_config("default")`` returns a :class:`WorldConfig`; the sections that shape a
model (with ``model_cache.CACHE_VERSION``) key the cache of pre-trained mini models.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import config_path, from_dict, load_yaml
from ..errors import ConfigError


@dataclass(frozen=True)
class PartsConfig:
    """The Latin square of part types (book: Mini world, item 1): K = num_part_types · group_size."""

    num_part_types: int = 10  # T head types and T body types
    group_size: int = 4  # G classes share each head type (and each body type)


@dataclass(frozen=True)
class RenderConfig:
    """Nuisance variation of the renderer (book: Mini world, item 3); sizes in pixels.

    Ranges are ``(low, high)`` of a uniform draw per image.
    """

    image_size: int = 32
    head_radius: tuple[float, float] = (4.0, 6.0)  # head size; body size follows with its own jitter
    body_aspect: tuple[float, float] = (1.2, 1.6)  # body half-width / head radius
    translate: float = 3.5  # max shift of the object centre from the image centre
    rotate: float = 0.3  # max rotation of the whole object, radians
    occlusion: tuple[float, float] = (0.7, 0.95)  # fraction of the non-dominant part that is covered
    clutter: int = 4  # max number of distractor blobs behind the object
    noise: tuple[float, float] = (0.02, 0.08)  # std of the per-pixel Gaussian luminance noise, [0, 1] units
    brightness: float = 0.2  # global brightness jitter (multiplicative, ±)
    colour_coded: bool = True  # part type t has its own hue t / T (plus jitter); False: random part colours
    hue_jitter: float = 0.03  # ± jitter of a colour-coded hue, in turns (T = 10 types are 0.1 apart)


@dataclass(frozen=True)
class CaptionConfig:
    """How a pre-training image is captioned (book: Mini world, item 5; the choice is argued in the YAML).

    Each caption names the class with probability ``name_rate`` and, independently, describes the
    part that is visible (e.g. "striped round head") with probability ``part_rate``; the words fill a
    template drawn uniformly from ``templates``. A caption with neither says "a photo of a thing.".
    """

    name_rate: float = 1.0
    part_rate: float = 0.0
    templates: tuple[str, ...] = ("a photo of a {}.",)


@dataclass(frozen=True)
class CorpusConfig:
    """Pre-training corpora (book: Mini world, item 5): size and the shape of the label priors π_m."""

    num_images: int = 24000  # images per foundation model's corpus
    profile: str = "exponential"  # π by rank: "exponential" (log-linear) or "zipf"
    imbalance_ratio: float = 1000.0  # max_k π_k / min_k π_k of the nominal prior
    order_correlation: float = 0.5  # correlation of the latent class popularity between two models
    min_count: int = 2  # every class appears at least this often (a name seen once cannot be learned)


@dataclass(frozen=True)
class FoundationModelConfig:
    """One mini foundation model: its registry name and what its corpus looks like."""

    name: str  # backbone registry key, e.g. "mini-clip"
    head_fraction: float  # P_m(C = head-dominant): the part bias of its corpus
    uniform_prior: bool = False  # the reference model: π = 1/K instead of the world's long-tailed profile
    description: str = ""
    copy: int = 0  # > 0: an independently pre-trained copy of the model of the same name without the
    #                "-copy<k>" suffix: same prior and part bias, its own images and initialisation


@dataclass(frozen=True)
class ArchitectureConfig:
    """A tiny open_clip CLIP: ViT image tower and causal text tower (book: Mini world, item 5)."""

    embed_dim: int = 64  # joint image-text space
    patch_size: int = 8  # 32 px → 4×4 patches + CLS; patch 4 learned less per CPU-second (worlds/default.yaml)
    vision_width: int = 64
    vision_layers: int = 2
    vision_head_width: int = 32  # open_clip's vision config takes the head width, not the head count
    text_width: int = 64
    text_layers: int = 2
    text_heads: int = 2
    context_length: int = 16  # 96% of the default captions fit; the longest (18 tokens) lose their last words
    mlp_ratio: float = 2.0


@dataclass(frozen=True)
class PretrainConfig:
    """Contrastive pre-training (open_clip.ClipLoss, AdamW, linear warm-up then cosine, per step)."""

    epochs: int = 3  # passes over the corpus (full batches only)
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.1  # on matrices and embeddings only (see pretrain.param_groups)
    warmup_fraction: float = 0.1
    seed: int = 0  # mixed with the world's seed and the model's name: each world pre-trains its own models
    objective: str = "contrastive"  # contrastive | contrastive_masked | supervised (ltlib.miniworld.pretrain)
    threads: int = 1  # torch threads while training (see ltlib.parallel.torch_threads): fixed, so in the cache key


@dataclass(frozen=True)
class TaskConfig:
    """Downstream long-tailed tasks (book: Mini world, item 6; OLTR groups, book: Method, 'Evaluation')."""

    max_count: int = 500  # n of the most frequent downstream class
    imbalance_ratio: float = 100.0  # n_max / n_min of the exponential profile
    head_fraction: float = 0.5  # P(C = head-dominant) in downstream data, independent of Y
    val_per_class: int = 20  # class-balanced validation split (GLA estimation, kNN bank)
    test_per_class: int = 100  # class-balanced test split (per-class accuracy SE ≈ 0.05)
    many_threshold: int = 100  # D-Many: n > 100 (OLTR)
    few_threshold: int = 20  # D-Few: n < 20 (OLTR)


@dataclass(frozen=True)
class ConfounderConfig:
    """The synthetic confounder study (book: Mini world, item 7; the paper's Fig. 12)."""

    classes: tuple[int, ...] = (0, 1, 2, 3, 4, 5)  # 6 classes as in the paper, with distinct heads and bodies
    train_per_class: int = 100  # A_train: 50 per factor per class (paper)
    test_per_class: int = 100
    majority: float = 0.9  # B: 90:10 head-dominant : body-dominant in every class


@dataclass(frozen=True)
class WorldConfig:
    """Everything that defines a mini world and its pre-trained foundation models."""

    name: str
    seed: int = 0
    parts: PartsConfig = field(default_factory=PartsConfig)
    render: RenderConfig = field(default_factory=RenderConfig)
    captions: CaptionConfig = field(default_factory=CaptionConfig)
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    models: tuple[FoundationModelConfig, ...] = ()
    reference: FoundationModelConfig = field(
        default_factory=lambda: FoundationModelConfig("mini-reference", 0.5, uniform_prior=True))
    architecture: ArchitectureConfig = field(default_factory=ArchitectureConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    tasks: TaskConfig = field(default_factory=TaskConfig)
    confounder: ConfounderConfig = field(default_factory=ConfounderConfig)

    def __post_init__(self) -> None:
        names = [m.name for m in self.models] + [self.reference.name]
        if not self.models:
            raise ConfigError(f"world {self.name!r}: 'models' must list at least one foundation model")
        if len(set(names)) != len(names):
            raise ConfigError(f"world {self.name!r}: model names must be distinct, got {names}")

    def model(self, name: str) -> FoundationModelConfig:
        """The foundation model (or the reference) called ``name``; ``<name>-copy<k>`` (k ≥ 1) is an
        independently pre-trained copy of ``<name>`` (:func:`copy_name`); ``<a>-with-prior-of-<b>`` has the part
        bias of ``a`` and the prior order of ``b`` (:func:`hybrid_name`)."""
        part, donor = split_hybrid_name(name)
        if donor:
            if donor not in [m.name for m in self.models] or part not in [m.name for m in self.models]:
                raise ConfigError(f"world {self.name!r}: hybrid {name!r} needs two of its foundation models, "
                                  f"known: {[m.name for m in self.models]}")
            m = self.model(part)
            return dataclasses.replace(m, name=name, description=f"{m.description}; the prior order of {donor}")
        base, k = split_copy_name(name)
        for m in (*self.models, self.reference):
            if m.name == base:
                return m if k == 0 else dataclasses.replace(m, name=name, copy=k,
                                                            description=f"{m.description} (copy {k})")
        known = [m.name for m in (*self.models, self.reference)]
        raise ConfigError(f"world {self.name!r} has no model {name!r}; known: {known}")


COPY_SUFFIX = "-copy"


def copy_name(name: str, k: int) -> str:
    """The name of the k-th independently pre-trained copy of model ``name`` (k = 0: the model itself)."""
    return name if k == 0 else f"{name}{COPY_SUFFIX}{k}"


def split_copy_name(name: str) -> tuple[str, int]:
    """(base model name, copy index) of a name from :func:`copy_name`."""
    base, sep, k = name.rpartition(COPY_SUFFIX)
    return (base, int(k)) if sep and k.isdigit() and int(k) > 0 else (name, 0)


HYBRID_SEP = "-with-prior-of-"


def hybrid_name(part_model: str, prior_model: str) -> str:
    """The name of a model pre-trained on a corpus with the part bias of ``part_model`` and the prior (class
    popularity order) of ``prior_model``, on its own images and initialisation (the factorial page's triples);
    the model itself when both are the same."""
    return part_model if part_model == prior_model else f"{part_model}{HYBRID_SEP}{prior_model}"


def split_hybrid_name(name: str) -> tuple[str, str]:
    """(part-bias model, prior model) of a name from :func:`hybrid_name`; ``(name, "")`` for any other name."""
    part, sep, donor = name.partition(HYBRID_SEP)
    return (part, donor) if sep else (name, "")


def load_world_config(key_or_path: str | Path, **overrides: Any) -> WorldConfig:
    """Load ``ltlib/configs/worlds/<key>.yaml`` (or a YAML path) into a :class:`WorldConfig`.

    Args:
        key_or_path: registry key (``"smoke"``, ``"default"``) or a ``.yaml`` file.
        **overrides: top-level sections or fields replacing the file's (a section as a dict or dataclass).
    Returns:
        The frozen config; ``name`` defaults to the key (the file's stem).
    """
    path = config_path("worlds", key_or_path)
    data = {"name": Path(path).stem, **_resolved_yaml(path), **overrides}
    return _build(WorldConfig, data, str(path))


def _resolved_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A world file's mapping with ``extends: <world key>`` resolved: the named world's sections, each updated
    field by field with this file's (so a variant names only what it changes)."""
    data = load_yaml(path)
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise ConfigError(f"{path}: 'extends' must name a world, got {parent!r}")
    base_path = config_path("worlds", parent)
    if base_path.resolve() in seen or base_path.resolve() == path.resolve():
        raise ConfigError(f"{path}: 'extends: {parent}' forms a cycle")
    base = _resolved_yaml(base_path, (*seen, path.resolve()))
    for key, value in data.items():
        base[key] = {**base[key], **value} if isinstance(base.get(key), dict) and isinstance(value, dict) else value
    return base


def _build(cls: type, data: dict[str, Any], source: str) -> Any:
    """``from_dict`` that also builds nested dataclass sections and tuples of them."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: section for {cls.__name__} must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    built = {}
    for key, value in data.items():
        hint = hints.get(key)
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            value = _build(hint, value, f"{source}: {key}")
        elif typing.get_origin(hint) is tuple and _is_dataclass_tuple(hint) and isinstance(value, list):
            item = typing.get_args(hint)[0]
            value = tuple(v if isinstance(v, item) else _build(item, v, f"{source}: {key}[{i + 1}]")
                          for i, v in enumerate(value))
        built[key] = value
    return from_dict(cls, built, source)


def _is_dataclass_tuple(hint: Any) -> bool:
    args = typing.get_args(hint)
    return len(args) == 2 and args[1] is Ellipsis and dataclasses.is_dataclass(args[0])
