"""Captions of pre-training images: class names, visible-part words, templates (book: Mini world, item 5)."""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from .config import CaptionConfig
from .generator import PartLayout
from .names import VISIBILITY, part_words

GENERIC_SUBJECT = "thing"  # the subject of a caption that names neither the class nor a part


def caption_subject(layout: PartLayout, label: int, visibility: int, named: bool, with_part: bool) -> str:
    """The words a caption is about, e.g. ``"zorbat with a striped round head"``.

    Args:
        layout: class → part types and names.
        label: class k; visibility: C (0 head-dominant, 1 body-dominant): the described part is the
            visible one.
        named: include the class name; with_part: include the visible part's words.
    Returns:
        The subject that fills a template's ``{}``.
    """
    part = VISIBILITY[visibility]
    part_type = layout.head_type[label] if part == "head" else layout.body_type[label]
    words = part_words(part, part_type)
    if named:
        return f"{layout.class_names[label]} with a {words}" if with_part else layout.class_names[label]
    return words if with_part else GENERIC_SUBJECT


def sample_captions(layout: PartLayout, labels: np.ndarray, visibility: np.ndarray, config: CaptionConfig,
                    seed: int) -> tuple[tuple[str, ...], np.ndarray]:
    """Draw one caption per image.

    Args:
        layout: the world's classes.
        labels, visibility: int [N] class and C of each image.
        config: name / part rates and templates.
        seed: the only source of randomness.
    Returns:
        (the distinct captions, sorted; int64 [N] index of each image's caption in that tuple). Few
        captions are distinct, so the text tower can encode them once per batch.
    """
    _check(config)
    rng = np.random.default_rng(seed)
    named = rng.random(len(labels)) < config.name_rate
    with_part = rng.random(len(labels)) < config.part_rate
    template = rng.integers(0, len(config.templates), len(labels))
    texts = [config.templates[t].format(caption_subject(layout, int(y), int(c), bool(n), bool(p)))
             for y, c, n, p, t in zip(labels, visibility, named, with_part, template)]
    unique, index = np.unique(np.asarray(texts, dtype=object), return_inverse=True)
    return tuple(str(u) for u in unique), index.astype(np.int64)


def _check(config: CaptionConfig) -> None:
    for name in ("name_rate", "part_rate"):
        value = getattr(config, name)
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"captions.{name} must lie in [0, 1], got {value}")
    if not config.templates or any(t.count("{}") != 1 for t in config.templates):
        raise ConfigError(f"captions.templates: need templates with exactly one '{{}}', got {config.templates}")
