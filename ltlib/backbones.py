"""Foundation-model backbones (book: Method, 'Backbones'): frozen open_clip CLIPs behind one interface."""

from __future__ import annotations

import functools
import json
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import open_clip
import torch
import torch.nn.functional as F
from huggingface_hub import constants as hf_constants
from huggingface_hub import try_to_load_from_cache
from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME, OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from open_clip.transformer import VisionTransformer
from torch import nn

from .adapters import adapters_attached
from .config import CONFIG_ROOT, list_configs, load_config
from .errors import ConfigError, WeightsNotFoundError
from .prompts import remove_prompts
from .storage import write_json

DEFAULT_TEMPLATE = "a photo of a {}."
NUM_PREFIX_TOKENS = 1  # open_clip's ViT puts one class token before the patches (and no register tokens)
_PREPROCESS_KEYS = ("mean", "std", "interpolation", "resize_mode")


@dataclass(frozen=True)
class BackboneSpec:
    """A registry entry: which open_clip architecture, which weights, which prompt (book: Method, 'Backbones').

    Attributes:
        name: registry key (``clip``, ``openclip``, ``metaclip``, or e.g. ``mini-clip``).
        arch: open_clip model name (built-in, or added with :func:`register_arch`). The activation is
            part of it: ``ViT-B-16-quickgelu`` for QuickGELU checkpoints, ``ViT-B-16`` for native GELU.
        pretrained: open_clip pre-trained tag (e.g. ``openai``), or None for models whose weights only
            exist as a local file (``build_backbone(..., weights=path)``).
        template: the single zero-shot / head-init prompt (book: Method, 'Cosine head').
        description: one line for tables and the book.
    """

    name: str
    arch: str
    pretrained: str | None = None
    template: str = DEFAULT_TEMPLATE
    description: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("BackboneSpec.name must be a non-empty string")
        if "{}" not in self.template:
            raise ConfigError(f"backbone {self.name!r}: template {self.template!r} has no '{{}}' "
                              "for the class name")


# --------------------------------------------------------------------------- crops (book: Method, 'Test-time crops')
def flatten_crops(images: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Fold a crop axis into the batch so a backbone sees ordinary image batches.

    Args:
        images: [B, 3, H, W] or five-crop / ten-crop test input [B, V, 3, H, W].
    Returns:
        (images [B·V, 3, H, W], V); V = 1 for 4-d input.
    """
    if images.ndim == 4:
        return images, 1
    if images.ndim == 5:
        return images.flatten(0, 1), images.shape[1]
    raise ConfigError(f"images: expected [B,3,H,W] or [B,V,3,H,W], got shape {tuple(images.shape)}")


def mean_over_crops(values: torch.Tensor, num_crops: int) -> torch.Tensor:
    """Average per-crop outputs back to one row per image (book: Method, 'Test-time crops': mean of raw logits).

    Args:
        values: [B·V, K] outputs in :func:`flatten_crops` order.
        num_crops: V.
    Returns:
        [B, K].
    """
    if num_crops == 1:
        return values
    return values.unflatten(0, (-1, num_crops)).mean(dim=1)


# --------------------------------------------------------------------------- the frozen backbone
class Backbone(nn.Module):
    """A frozen open_clip CLIP exposing LIFT's feature interface (book: Method, 'Backbones', 'Cosine head').

    ``image_features`` is the classifier input: ``ln_post`` of the CLS token, *without* the visual
    projection (768-d for ViT-B/16). Every weight is fp32 and frozen; ``train()`` keeps it in eval mode.
    Build one with :func:`build_backbone` (registry, hub tag or local file) or wrap a model built
    elsewhere (e.g. a mini-world CLIP) with :meth:`from_clip`.

    Attributes:
        spec: the registry entry.
        clip: the wrapped ``open_clip.model.CLIP`` (``clip.encode_image`` is never adapted).
        tokenizer: maps a list of strings to token ids [T, context_length].
        mean, std: per-channel input normalisation (from the checkpoint's preprocess config).
    """

    def __init__(self, clip: nn.Module, spec: BackboneSpec, tokenizer: Callable[..., torch.Tensor] | None = None):
        super().__init__()
        _check_supported(clip, spec)
        self.spec = spec
        self.clip = clip.float().requires_grad_(False).eval()
        context_length = open_clip.get_model_tokenize_cfg(clip).get("context_length")
        self.tokenizer = tokenizer or _default_tokenizer(context_length)
        preprocess = open_clip.get_model_preprocess_cfg(clip)
        self.mean = tuple(float(v) for v in preprocess.get("mean", OPENAI_DATASET_MEAN))
        self.std = tuple(float(v) for v in preprocess.get("std", OPENAI_DATASET_STD))

    @classmethod
    def from_clip(cls, clip_model: nn.Module, spec: BackboneSpec,
                  tokenizer: Callable[..., torch.Tensor] | None = None) -> Backbone:
        """Wrap a CLIP built elsewhere (e.g. a tiny mini-world model trained in-process).

        Args:
            clip_model: ``open_clip.model.CLIP`` with a ViT image tower (class-token pooling).
            spec: its registry entry (``arch`` is descriptive here; nothing is loaded).
            tokenizer: defaults to open_clip's BPE tokenizer at the model's context length.
        """
        return cls(clip_model, spec, tokenizer)

    @property
    def visual(self) -> VisionTransformer:
        return self.clip.visual

    @property
    def blocks(self) -> nn.ModuleList:
        """The image tower's residual blocks (12 for ViT-B/16), where AdaptFormers attach."""
        return self.clip.visual.transformer.resblocks

    @property
    def feature_dim(self) -> int:
        """Width of :meth:`image_features` (visual width: 768 for ViT-B/16)."""
        return int(self.clip.visual.transformer.width)

    @property
    def embed_dim(self) -> int:
        """Width of the joint image-text space (512 for ViT-B/16)."""
        return int(self.clip.visual.proj.shape[1])

    @property
    def visual_projection(self) -> nn.Parameter:
        """P [feature_dim, embed_dim]: ``image_embedding = normalize(feature @ P)`` (book: Method, 'Cosine head')."""
        return self.clip.visual.proj

    @property
    def patch_size(self) -> tuple[int, int]:
        """The ViT's patch size (16, 16) for ViT-B/16; it sets the VPT initialisation bound."""
        height, width = self.clip.visual.patch_size
        return int(height), int(width)

    @property
    def image_size(self) -> int:
        return int(self.clip.visual.image_size[0])

    @property
    def logit_scale(self) -> float:
        """CLIP's zero-shot temperature ``exp(logit_scale)`` (100 for the released ViT-B/16s)."""
        return float(self.clip.logit_scale.exp())

    @property
    def device(self) -> torch.device:
        return self.clip.visual.proj.device

    def train(self, mode: bool = True) -> Backbone:
        """Stay in eval mode whatever ``mode`` is: nothing in a frozen backbone trains (book: Method, 'AdaptFormer')."""
        return super().train(False)

    def image_features(self, images: torch.Tensor, adapters: Sequence[nn.Module] | None = None) -> torch.Tensor:
        """Classifier-input features: ``ln_post`` of the CLS token, no projection (book: Method, 'Backbones').

        Args:
            images: normalised images [B, 3, H, W].
            adapters: one module per block (AdaptFormer, book: Method, 'AdaptFormer', or deep VPT prompts,
                the paper's §4.1), applied for this call only; None gives the pre-trained network. VPT
                prompts sit after the CLS token and are removed again before ``ln_post`` and the CLS read-out.
        Returns:
            features [B, feature_dim].
        """
        visual = self.clip.visual
        if adapters is not None and visual.transformer.grad_checkpointing:
            raise ConfigError("adapters: gradient checkpointing of the image tower is not supported with "
                              "adapters (its recomputation would run without them)")
        tokens = visual._embeds(images)
        with adapters_attached(self.blocks, adapters, NUM_PREFIX_TOKENS):
            tokens = visual.transformer(tokens)
        return visual._pool(remove_prompts(tokens, adapters, NUM_PREFIX_TOKENS))[0]

    def image_embeddings(self, images: torch.Tensor, adapters: Sequence[nn.Module] | None = None) -> torch.Tensor:
        """Joint-space image embeddings ``normalize(image_features @ P)`` (CLIP's ``encode_image``).

        Args:
            images: [B, 3, H, W]; adapters: as in :meth:`image_features`.
        Returns:
            [B, embed_dim], unit rows.
        """
        return F.normalize(self.image_features(images, adapters) @ self.visual_projection, dim=-1)

    @torch.no_grad()
    def text_embeddings(self, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        """Text-tower embeddings in fp32 without autocast (book: Method, 'Cosine head'), L2-normalised.

        Args:
            texts: T prompts, already formatted (e.g. ``"a photo of a tench."``).
            batch_size: prompts per text-tower call (bounds memory for 8,142 iNat classes).
        Returns:
            [T, embed_dim] float32, unit rows.
        """
        if len(texts) == 0:
            raise ConfigError("texts: need at least one prompt")
        chunks = []
        with torch.autocast(self.device.type, enabled=False):
            for start in range(0, len(texts), batch_size):
                tokens = self.tokenizer(list(texts[start:start + batch_size])).to(self.device)
                chunks.append(self.clip.encode_text(tokens).float())
        return F.normalize(torch.cat(chunks), dim=-1)


@functools.lru_cache(maxsize=None)
def _default_tokenizer(context_length: int | None) -> Callable[..., torch.Tensor]:
    # Parsing the BPE vocabulary costs ~0.4 s; tokenizers are stateless apart from a memo, so share them.
    return open_clip.SimpleTokenizer(context_length=context_length)


@functools.lru_cache(maxsize=None)
def _arch_tokenizer(arch: str) -> Callable[..., torch.Tensor]:
    return open_clip.get_tokenizer(arch)


def _check_supported(clip: nn.Module, spec: BackboneSpec) -> None:
    visual = getattr(clip, "visual", None)
    if not isinstance(visual, VisionTransformer):
        raise ConfigError(f"backbone {spec.name!r}: LIFT needs an open_clip ViT image tower, "
                          f"got {type(visual).__name__}")
    if visual.attn_pool is not None or visual.pool_type != "tok" or visual.proj is None:
        raise ConfigError(f"backbone {spec.name!r}: LIFT needs class-token pooling and a linear visual "
                          "projection")
    height, width = visual.image_size
    if height != width:
        raise ConfigError(f"backbone {spec.name!r}: square inputs expected, got image_size {visual.image_size}")


# --------------------------------------------------------------------------- registry
_REGISTERED: dict[str, BackboneSpec] = {}
_ARCH_DIR: tempfile.TemporaryDirectory | None = None


def register_backbone(spec: BackboneSpec, overwrite: bool = False) -> BackboneSpec:
    """Add ``spec`` to this process's registry (beside the YAML entries in ``configs/backbones``).

    Re-registering an identical spec is a no-op, so notebooks can re-run their set-up cell.

    Args:
        spec: the entry; ``spec.arch`` must be known to open_clip (see :func:`register_arch`).
        overwrite: replace a different spec of the same name instead of refusing.
    Returns:
        ``spec``.
    """
    existing = _REGISTERED.get(spec.name) or _yaml_spec(spec.name)
    if existing is not None and existing != spec and not overwrite:
        raise ConfigError(f"backbone {spec.name!r} is already registered as {existing}; "
                          "pass overwrite=True or choose another name")
    _REGISTERED[spec.name] = spec
    return spec


def list_backbones() -> list[str]:
    """Registry keys: the YAML entries plus those registered in this process."""
    return sorted(set(list_configs("backbones")) | set(_REGISTERED))


def get_spec(name: str | Path) -> BackboneSpec:
    """Look up a backbone by registry key (in-process first, then YAML) or load a ``.yaml`` file.

    Raises:
        ConfigError: unknown key (the message lists the known ones) or an invalid file.
    """
    key = str(name)
    if key in _REGISTERED:
        return _REGISTERED[key]
    if Path(key).suffix in {".yaml", ".yml"}:
        return load_config(BackboneSpec, "backbones", key)
    spec = _yaml_spec(key)
    if spec is None:
        raise ConfigError(f"unknown backbone {key!r}; known: {', '.join(list_backbones())}. Register a new "
                          "one with register_backbone(BackboneSpec(name, arch, ...)).")
    return spec


def _yaml_spec(key: str) -> BackboneSpec | None:
    path = CONFIG_ROOT / "backbones" / f"{key}.yaml"
    if not path.is_file():
        return None
    spec = load_config(BackboneSpec, "backbones", path)
    if spec.name != key:
        raise ConfigError(f"{path}: name {spec.name!r} differs from the file's registry key {key!r}")
    return spec


def register_arch(name: str, model_cfg: Mapping[str, Any], directory: str | Path | None = None) -> str:
    """Make a custom open_clip architecture (e.g. a tiny mini-world CLIP) buildable by name.

    Writes ``<directory>/<name>.json`` and adds it with ``open_clip.add_model_config``; then
    ``open_clip.create_model(name)``, ``open_clip.get_tokenizer(name)`` and :func:`build_backbone` with a
    spec whose ``arch`` is ``name`` all work. Registering an identical config again is a no-op.

    Args:
        name: architecture name; must not clash with a different existing open_clip config.
        model_cfg: open_clip config with ``embed_dim``, ``vision_cfg`` and ``text_cfg`` (vision
            heads are given as ``head_width``).
        directory: where the JSON lives (e.g. next to the cached checkpoint); default: a temporary
            directory removed when the process exits.
    Returns:
        ``name``.
    """
    missing = sorted({"embed_dim", "vision_cfg", "text_cfg"} - set(model_cfg))
    if missing:
        raise ConfigError(f"model_cfg for arch {name!r} lacks key(s) {missing}")
    plain = _json_round_trip(model_cfg)
    existing = open_clip.get_model_config(name)
    if existing is not None:
        if existing != plain:
            raise ConfigError(f"arch {name!r} already exists in open_clip with a different config")
        return name
    path = write_json(Path(directory or _arch_dir()) / f"{name}.json", plain)
    open_clip.add_model_config(path)
    return name


def _json_round_trip(model_cfg: Mapping[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(model_cfg))


def _arch_dir() -> str:
    global _ARCH_DIR
    if _ARCH_DIR is None:
        _ARCH_DIR = tempfile.TemporaryDirectory(prefix="ltlib-archs-")
    return _ARCH_DIR.name


# --------------------------------------------------------------------------- building
def build_backbone(name_or_spec: str | BackboneSpec, weights: str | Path | None = None,
                   random_init: bool = False, device: str | torch.device = "cpu", *,
                   seed: int = 0, cache_dir: str | Path | None = None) -> Backbone:
    """Build a frozen fp32 :class:`Backbone` from the registry.

    Args:
        name_or_spec: registry key (``clip`` / ``openclip`` / ``metaclip`` / registered), a ``.yaml``
            path, or a :class:`BackboneSpec`.
        weights: a local checkpoint (``.safetensors``, ``.bin`` / ``.pt`` state dict, or an open_clip
            training checkpoint); fully offline. None: the spec's hub tag.
        random_init: random weights (tests, smoke runs); ``weights`` and the tag are ignored.
        device: where the backbone lives.
        seed: seeds the random initialisation (the global RNG is left untouched).
        cache_dir: Hugging Face cache to look the hub tag up in (default: the user's cache).
    Raises:
        WeightsNotFoundError: the weights are not available locally while the hub is offline
            (``HF_HUB_OFFLINE=1``), the download failed, or ``weights`` does not exist. The message says
            how to pass a local file (``weights=PATH`` / ``--weights PATH``).
        ConfigError: unknown name, arch or tag, a tag whose activation differs from the arch's, or a
            file that does not fit the arch.
    """
    spec = name_or_spec if isinstance(name_or_spec, BackboneSpec) else get_spec(name_or_spec)
    if open_clip.get_model_config(spec.arch) is None:
        raise ConfigError(f"backbone {spec.name!r}: open_clip has no arch {spec.arch!r}; add a custom one "
                          "with ltlib.backbones.register_arch(name, model_cfg)")
    tag_cfg = _tag_config(spec)  # checked whatever the weights' source: the spec itself must be coherent
    if random_init:
        clip = _random_clip(spec.arch, tag_cfg, seed)
    elif weights is not None:
        clip = _clip_from_file(spec, tag_cfg, Path(weights))
    else:
        clip = _clip_from_hub(spec, tag_cfg, cache_dir)
    return Backbone.from_clip(clip, spec, _arch_tokenizer(spec.arch)).to(device)


def _create(arch: str, tag_cfg: Mapping[str, Any], **kwargs: Any) -> nn.Module:
    """fp32 on CPU, with the tag's normalisation (mean / std) whatever file the weights come from."""
    preprocess = {k: tag_cfg[k] for k in _PREPROCESS_KEYS if k in tag_cfg}
    return open_clip.create_model(arch, precision="fp32", device="cpu", force_preprocess_cfg=preprocess, **kwargs)


def _random_clip(arch: str, tag_cfg: Mapping[str, Any], seed: int) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _create(arch, tag_cfg, pretrained=None)


def _clip_from_file(spec: BackboneSpec, tag_cfg: Mapping[str, Any], path: Path) -> nn.Module:
    if not path.is_file():
        raise WeightsNotFoundError(f"weights file not found: {path} (backbone {spec.name!r}, arch {spec.arch!r})")
    try:
        return _create(spec.arch, tag_cfg, pretrained=str(path))
    except Exception as exc:  # torch / safetensors raise several types; all mean "not this arch's weights"
        raise ConfigError(f"{path}: cannot load it into open_clip arch {spec.arch!r} "
                          f"(backbone {spec.name!r}): {exc}") from exc


def _clip_from_hub(spec: BackboneSpec, tag_cfg: Mapping[str, Any], cache_dir: str | Path | None) -> nn.Module:
    if spec.pretrained is None:
        raise WeightsNotFoundError(f"backbone {spec.name!r} names no hub weights. " + _local_file_hint(spec))
    if _hub_offline():
        local = _cached_hub_file(tag_cfg, cache_dir)
        if local is None:
            raise WeightsNotFoundError(
                f"backbone {spec.name!r} needs the pre-trained weights {spec.pretrained!r} of open_clip arch "
                f"{spec.arch!r}, but the Hugging Face hub is offline (HF_HUB_OFFLINE=1) and they are not in "
                "the local cache. " + _local_file_hint(spec, tag_cfg))
        return _create(spec.arch, tag_cfg, pretrained=local)
    try:
        return _create(spec.arch, tag_cfg, pretrained=spec.pretrained, cache_dir=_optional_str(cache_dir))
    except RuntimeError as exc:
        raise WeightsNotFoundError(f"backbone {spec.name!r}: could not fetch {spec.pretrained!r} ({exc}). "
                                   + _local_file_hint(spec, tag_cfg)) from exc


def _tag_config(spec: BackboneSpec) -> dict[str, Any]:
    """open_clip's record of the tag ({} without one); refuses a tag trained with another activation
    than the arch's (the official release forced QuickGELU on a GELU model; book: Method,
    'What we changed from the official release')."""
    if spec.pretrained is None:
        return {}
    tag_cfg = open_clip.get_pretrained_cfg(spec.arch, spec.pretrained)
    if not tag_cfg:
        tags = open_clip.list_pretrained_tags_by_model(spec.arch)
        raise ConfigError(f"backbone {spec.name!r}: open_clip has no pre-trained tag {spec.pretrained!r} for "
                          f"arch {spec.arch!r}; available: {tags}")
    arch_quick_gelu = bool(open_clip.get_model_config(spec.arch).get("quick_gelu", False))
    if bool(tag_cfg.get("quick_gelu", False)) != arch_quick_gelu:
        wanted = "a -quickgelu arch" if tag_cfg.get("quick_gelu") else "the native-GELU arch"
        raise ConfigError(f"backbone {spec.name!r}: weights {spec.pretrained!r} were trained with "
                          f"{'QuickGELU' if tag_cfg.get('quick_gelu') else 'GELU'}, arch {spec.arch!r} differs; "
                          f"use {wanted}")
    return tag_cfg


def _hub_offline() -> bool:
    flag = os.environ.get("HF_HUB_OFFLINE", "").strip().upper()
    return bool(hf_constants.HF_HUB_OFFLINE) or flag in {"1", "ON", "YES", "TRUE"}


def _hub_location(tag_cfg: Mapping[str, Any]) -> tuple[str, list[str]]:
    """(repo id, candidate file names, safetensors first) as open_clip would download them."""
    repo_id, filename = os.path.split(tag_cfg.get("hf_hub", ""))
    if not filename:
        return repo_id, [HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME]
    if filename.endswith((".bin", ".pth")):
        return repo_id, [filename[:-4] + ".safetensors", filename]
    return repo_id, [filename]


def _cached_hub_file(tag_cfg: Mapping[str, Any], cache_dir: str | Path | None) -> str | None:
    """The tag's weights in the local Hugging Face cache, found without touching the network."""
    repo_id, names = _hub_location(tag_cfg)
    if not repo_id:
        return None
    for name in names:
        found = try_to_load_from_cache(repo_id, name, cache_dir=_optional_str(cache_dir))
        if isinstance(found, str):
            return found
    return None


def _optional_str(path: str | Path | None) -> str | None:
    return None if path is None else str(path)


def _local_file_hint(spec: BackboneSpec, tag_cfg: Mapping[str, Any] | None = None) -> str:
    repo_id = _hub_location(tag_cfg)[0] if tag_cfg else ""
    source = f" Download it once on a connected machine, e.g. from https://huggingface.co/{repo_id}." \
        if repo_id else ""
    return (f"Point ltlib at a local checkpoint instead: build_backbone({spec.name!r}, weights='/path/to/"
            f"open_clip_model.safetensors') in Python, or --weights PATH on the command line (a .safetensors, "
            f".bin or .pt state dict, or an open_clip training checkpoint, of arch {spec.arch!r}).{source} "
            "For tests and smoke runs, random_init=True builds the architecture with random weights.")
