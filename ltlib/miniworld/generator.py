"""Vectorised, seeded renderer of two-part objects with a part-visibility variable C (book: Mini world, items 1–3, 8).

Every class is an object with a *head* and a *body*. Head and body types are assigned to classes in a
Latin-square pattern (``build_layout``), so either part alone narrows the class to a group of
``group_size`` candidates and both parts identify it. Each image records C (0 = head-dominant: the body
is mostly occluded; 1 = body-dominant) and the visible pixels of each part. Nuisances: position, scale,
rotation, colours, background gradient, clutter, global brightness and pixel noise.

Same ``(labels, visibility, config, seed)`` → bit-identical arrays: per-image parameters come from one
``numpy.random.Generator``, pixel noise from ``torch.Generator`` seeded per fixed-size chunk.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ConfigError
from .config import RenderConfig
from .names import BODY_SHAPES, CLASS_NAMES, HEAD_SHAPES, MAX_PART_TYPES
from ..parallel import torch_threads

CHUNK = 256  # images rendered at once; fixed so that the noise stream does not depend on N
PARTS = ("both", "head", "body")


@dataclass(frozen=True)
class PartLayout:
    """Latin-square assignment of part types to classes (book: Mini world, item 1).

    Class ``k = g * T + h`` (group ``g < G``, ``h < T``) has head type ``h`` and body type ``(h + g) % T``,
    so each head type is shared by the G classes of one column and each body type by G classes whose
    heads all differ; no (head, body) pair repeats.
    """

    class_names: tuple[str, ...]
    head_type: tuple[int, ...]  # [K]
    body_type: tuple[int, ...]  # [K]
    num_part_types: int  # T

    @property
    def num_classes(self) -> int:
        """K = T · G."""
        return len(self.class_names)

    def classes_with(self, part: str, part_type: int) -> tuple[int, ...]:
        """Classes whose ``part`` (``"head"`` / ``"body"``) has type ``part_type``."""
        types = self.head_type if part == "head" else self.body_type
        return tuple(k for k, t in enumerate(types) if t == part_type)


def build_layout(num_part_types: int, group_size: int) -> PartLayout:
    """Build the Latin-square layout of K = ``num_part_types`` · ``group_size`` classes.

    Args:
        num_part_types: T, number of head types (= number of body types), at most ``MAX_PART_TYPES``.
        group_size: G, classes sharing one head type (and one body type), ``2 <= G <= T``.
    Returns:
        The layout, with the first K names of ``CLASS_NAMES``.
    """
    if not 2 <= num_part_types <= MAX_PART_TYPES:
        raise ConfigError(f"num_part_types must be in [2, {MAX_PART_TYPES}], got {num_part_types}")
    if not 2 <= group_size <= num_part_types:
        raise ConfigError(f"group_size must be in [2, num_part_types={num_part_types}], got {group_size}")
    num_classes = num_part_types * group_size
    if num_classes > len(CLASS_NAMES):
        raise ConfigError(f"num_part_types * group_size = {num_classes} exceeds the {len(CLASS_NAMES)} class names")
    heads = tuple(k % num_part_types for k in range(num_classes))
    bodies = tuple((k % num_part_types + k // num_part_types) % num_part_types for k in range(num_classes))
    return PartLayout(CLASS_NAMES[:num_classes], heads, bodies, num_part_types)


@dataclass(frozen=True)
class Renders:
    """A batch of rendered images with their ground truth."""

    images: torch.Tensor  # uint8 [N, 3, H, W]
    labels: torch.Tensor  # int64 [N], class Y
    visibility: torch.Tensor  # int64 [N], C (0 head-dominant, 1 body-dominant)
    masks: torch.Tensor  # bool [N, 2, H, W], visible pixels of (head, body)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, index: torch.Tensor | np.ndarray) -> Renders:
        """The images at ``index`` (int indices or a bool mask), in that order."""
        index = torch.as_tensor(index)
        return Renders(self.images[index], self.labels[index], self.visibility[index], self.masks[index])


def render(layout: PartLayout, labels: np.ndarray, visibility: np.ndarray, config: RenderConfig, seed: int,
           parts: str = "both") -> Renders:
    """Render one image per (label, visibility) pair.

    Args:
        layout: class → part types.
        labels: int [N], classes in ``[0, K)``.
        visibility: int [N], C in {0, 1}; ignored (no occluder) when ``parts`` is not ``"both"``.
        config: nuisance ranges.
        seed: the only source of randomness.
        parts: ``"both"`` (the world's images), or ``"head"`` / ``"body"`` to draw that part alone
            (diagnostics: the structure probe).
    Returns:
        ``Renders`` with uint8 images [N, 3, S, S] and part masks [N, 2, S, S].
    """
    labels, visibility = np.asarray(labels, dtype=np.int64), np.asarray(visibility, dtype=np.int64)
    _check_inputs(layout, labels, visibility, parts)
    params = _draw_params(layout, labels, visibility, config, np.random.default_rng(seed))
    size = config.image_size
    images = [torch.zeros(0, 3, size, size, dtype=torch.uint8)]
    masks = [torch.zeros(0, 2, size, size, dtype=torch.bool)]
    with torch_threads(1):  # small memory-bound ops: one thread is as fast and robust to a busy machine
        for i, start in enumerate(range(0, len(labels), CHUNK)):
            chunk = {k: v[start:start + CHUNK] for k, v in params.items()}
            chunk_images, chunk_masks = _render_chunk(chunk, config, parts, _noise_generator(seed, i))
            images.append(chunk_images)
            masks.append(chunk_masks)
    return Renders(torch.cat(images), torch.from_numpy(labels), torch.from_numpy(visibility), torch.cat(masks))


def _check_inputs(layout: PartLayout, labels: np.ndarray, visibility: np.ndarray, parts: str) -> None:
    if parts not in PARTS:
        raise ConfigError(f"parts must be one of {PARTS}, got {parts!r}")
    if labels.shape != visibility.shape or labels.ndim != 1:
        raise ConfigError(f"labels and visibility must be 1-D of equal length, "
                          f"got {labels.shape} and {visibility.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= layout.num_classes):
        raise ConfigError(f"labels must lie in [0, {layout.num_classes}), got [{labels.min()}, {labels.max()}]")
    if visibility.size and not np.isin(visibility, (0, 1)).all():
        raise ConfigError("visibility must hold 0 (head-dominant) or 1 (body-dominant)")


def _noise_generator(seed: int, chunk: int) -> torch.Generator:
    """The pixel-noise stream of one chunk, derived from (seed, chunk index)."""
    state = np.random.SeedSequence([seed, chunk]).generate_state(2, dtype=np.uint32).view(np.uint64)[0]
    return torch.Generator().manual_seed(int(state >> 1))


def _draw_params(layout: PartLayout, labels: np.ndarray, visibility: np.ndarray, config: RenderConfig,
                 rng: np.random.Generator) -> dict[str, torch.Tensor]:
    """Per-image scalars (float32 [N] unless noted), drawn in a fixed order from ``rng``."""
    n, size, max_clutter = len(labels), config.image_size, config.clutter

    def u(low: float, high: float, shape: tuple[int, ...] = (n,)) -> np.ndarray:
        return rng.uniform(low, high, shape)

    head_type = np.asarray(layout.head_type)[labels]
    body_type = np.asarray(layout.body_type)[labels]
    radius = u(*config.head_radius)
    p = {
        "head_shape": head_type % len(HEAD_SHAPES), "head_striped": head_type // len(HEAD_SHAPES),
        "body_shape": body_type % len(BODY_SHAPES), "body_checkered": body_type // len(BODY_SHAPES),
        "visibility": visibility,
        "cx": size / 2 + u(-config.translate, config.translate),
        "cy": size / 2 + u(-config.translate, config.translate),
        "angle": u(-config.rotate, config.rotate), "radius": radius,
        "body_w": radius * u(*config.body_aspect), "body_h": radius * u(0.85, 1.1),
        "head_rgb": _hsv_to_rgb(_hue(head_type, layout, config, u), u(0.55, 1), u(0.65, 1)),
        "body_rgb": _hsv_to_rgb(_hue(body_type, layout, config, u), u(0.55, 1), u(0.65, 1)),
        "bg_rgb": _hsv_to_rgb(u(0, 1), u(0, 0.6), u(0.1, 0.55)), "bg_ramp": u(-0.15, 0.15, (n, 2)),
        "occ_rgb": _hsv_to_rgb(u(0, 1), u(0, 0.4), u(0.25, 0.8)), "occ_frac": u(*config.occlusion),
        "period": radius * u(0.5, 0.7), "phase": u(0, 2 * math.pi),
        "clutter_on": (np.arange(max_clutter)[None] < rng.integers(0, max_clutter + 1, (n, 1))).astype(np.float32),
        "clutter_xy": u(0, size, (n, max_clutter, 2)), "clutter_wh": u(1, 3.5, (n, max_clutter, 2)),
        "clutter_rgb": _hsv_to_rgb(*(u(low, high, (n, max_clutter)) for low, high in ((0, 1), (0.2, 1), (0.2, 0.9)))),
        "brightness": u(1 - config.brightness, 1 + config.brightness), "noise": u(*config.noise),
    }
    return {k: torch.from_numpy(np.ascontiguousarray(v)).to(torch.float32 if v.dtype.kind == "f" else torch.int64)
            for k, v in p.items()}


def _hue(part_type: np.ndarray, layout: PartLayout, config: RenderConfig,
         u: Callable[[float, float], np.ndarray]) -> np.ndarray:
    """Hue of each part: the type's own hue plus jitter when colour-coded, else uniform (always one draw)."""
    jitter = u(-config.hue_jitter, config.hue_jitter) if config.colour_coded else u(0, 1)
    return (part_type / layout.num_part_types + jitter) % 1.0 if config.colour_coded else jitter


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorised HSV → RGB; inputs [...] in [0, 1], output [..., 3]."""
    k = (np.array([5.0, 3.0, 1.0]) + h[..., None] * 6) % 6
    return v[..., None] - v[..., None] * s[..., None] * np.clip(np.minimum(k, 4 - k), 0, 1)


def _render_chunk(p: dict[str, torch.Tensor], config: RenderConfig, parts: str,
                  gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Composite background, clutter, body, head and occluder; returns uint8 [n,3,S,S], bool [n,2,S,S]."""
    n, size = p["cx"].shape[0], config.image_size
    xs = torch.arange(size, dtype=torch.float32) + 0.5
    x, y = xs.view(1, 1, size), xs.view(1, size, 1)
    ox, oy = _object_frame(x, y, p)  # [n,S,S] coordinates in the object's (rotated) frame, origin at the neck
    zero = torch.zeros_like(ox)
    body = _body_alpha(ox, oy, p) if parts != "head" else zero
    head = _head_alpha(ox, oy, p) if parts != "body" else zero
    occluder = _occluder_alpha(ox, oy, p) if parts == "both" else zero
    body_dark = _checker(ox, oy, p) * p["body_checkered"].view(n, 1, 1)
    head_dark = _stripes(oy, p) * p["head_striped"].view(n, 1, 1)
    layers = [*_clutter_alpha(x, y, p).unbind(1), body * (1 - body_dark), body * body_dark,
              head * (1 - head_dark), head * head_dark, occluder]
    colours = torch.cat([p["clutter_rgb"], torch.stack(
        [p["body_rgb"], 0.35 * p["body_rgb"], p["head_rgb"], 0.35 * p["head_rgb"], p["occ_rgb"]], dim=1)], dim=1)
    image = _composite(layers, colours, p, x, y, size)
    # luminance noise (one draw per pixel, shared by the channels): a third of the cost of RGB noise
    noise = torch.randn((n, 1, size, size), generator=gen).mul_(p["noise"].view(n, 1, 1, 1))
    image = image.mul_(p["brightness"].view(n, 1, 1, 1)).add_(noise)
    visible = occluder < 0.5
    masks = torch.stack([(head > 0.5) & visible, (body > 0.5) & (head <= 0.5) & visible], dim=1)
    return image.mul_(255).add_(0.5).clamp_(0, 255).to(torch.uint8), masks


def _composite(layers: list[torch.Tensor], colours: torch.Tensor, p: dict[str, torch.Tensor], x: torch.Tensor,
               y: torch.Tensor, size: int) -> torch.Tensor:
    """Paint L flat-coloured layers (alphas L × [n,S,S], colours [n,L,3]; bottom first) over the background.

    Over-compositing in closed form: layer l contributes alpha_l · prod_{j>l}(1 - alpha_j) and the
    background what no layer covers, so the colours are applied in one batched matmul rather than
    L three-channel blends.
    """
    n = colours.shape[0]
    weights, through = [], torch.ones_like(layers[0])
    for alpha in reversed(layers):  # top to bottom, tracking the light that gets through
        weights.append(alpha * through)
        through = through * (1 - alpha)
    weights = torch.stack(weights[::-1], dim=1).view(n, len(layers), -1)
    image = torch.bmm(colours.transpose(1, 2), weights).view(n, 3, size, size)
    slope_x, slope_y = p["bg_ramp"][:, 0].view(-1, 1, 1), p["bg_ramp"][:, 1].view(-1, 1, 1)
    ramp = 2 * (slope_x * (x / size - 0.5) + slope_y * (y / size - 0.5))
    background = p["bg_rgb"].view(n, 3, 1, 1) + ramp.unsqueeze(1)
    return image.add_(background.mul_(through.unsqueeze(1)))


def _object_frame(x: torch.Tensor, y: torch.Tensor, p: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel centres in each object's frame: rotated by ``angle`` around the neck point (cx, cy)."""
    dx, dy = x - p["cx"].view(-1, 1, 1), y - p["cy"].view(-1, 1, 1)
    c, s = torch.cos(p["angle"]).view(-1, 1, 1), torch.sin(p["angle"]).view(-1, 1, 1)
    return c * dx + s * dy, -s * dx + c * dy


def _soft(sdf_px: torch.Tensor) -> torch.Tensor:
    """Anti-aliased coverage from a signed distance in pixels (inside < 0)."""
    return (0.5 - sdf_px).clamp(0, 1)


def _by_shape(shape: torch.Tensor, u: torch.Tensor, v: torch.Tensor, sdfs: tuple) -> torch.Tensor:
    """Evaluate, for each image, the SDF of its own shape (one vectorised call per shape type)."""
    out = torch.empty_like(u)
    for s, fn in enumerate(sdfs):
        idx = (shape == s).nonzero(as_tuple=True)[0]
        if idx.numel():
            out[idx] = fn(u[idx], v[idx])
    return out


_HEAD_SDFS = (  # unit-radius shapes centred at 0; order = names.HEAD_SHAPES
    lambda u, v: torch.sqrt(u * u + v * v) - 1.0,
    lambda u, v: torch.maximum(u.abs(), v.abs()) - 0.85,
    lambda u, v: torch.maximum(v - 0.75, (u.abs() - (v + 1.0) / 1.75) * 0.868),
    lambda u, v: (u.abs() + v.abs() - 1.15) * 0.707,
    lambda u, v: (torch.sqrt(u * u + v * v) - 0.72).abs() - 0.3,
)
_BODY_SDFS = (  # unit half-extent shapes; order = names.BODY_SHAPES
    lambda u, v: torch.sqrt(u * u + v * v) - 1.0,
    lambda u, v: torch.maximum(u.abs(), v.abs()) - 0.9,
    lambda u, v: torch.maximum(v.abs() - 0.9, u.abs() - (0.45 + 0.5 * (v + 0.9) / 1.8)),
    lambda u, v: torch.maximum(-v - 0.9, (u.abs() - (0.95 - v) / 1.85) * 0.88),
    lambda u, v: torch.minimum(torch.maximum(u.abs() - 0.38, v.abs() - 0.95),
                               torch.maximum(u.abs() - 0.95, v.abs() - 0.38)),
)


def _head_alpha(ox: torch.Tensor, oy: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
    """Head coverage [n,S,S]: radius R, centred 0.85 R above the neck."""
    r = p["radius"].view(-1, 1, 1)
    return _soft(_by_shape(p["head_shape"], ox / r, (oy + 0.85 * r) / r, _HEAD_SDFS) * r)


def _body_alpha(ox: torch.Tensor, oy: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
    """Body coverage [n,S,S]: half-extents (body_w, body_h), centred 0.85 body_h below the neck."""
    w, h = p["body_w"].view(-1, 1, 1), p["body_h"].view(-1, 1, 1)
    return _soft(_by_shape(p["body_shape"], ox / w, (oy - 0.85 * h) / h, _BODY_SDFS) * torch.minimum(w, h))


def _occluder_alpha(ox: torch.Tensor, oy: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
    """A band covering ``occ_frac`` of the non-dominant part, from its far end towards the neck."""
    r, w, h, f = (p[k].view(-1, 1, 1) for k in ("radius", "body_w", "body_h", "occ_frac"))
    head_dominant = (p["visibility"] == 0).view(-1, 1, 1)
    body_top, body_bottom = -0.05 * h, 1.75 * h  # body extent along the object's vertical axis
    head_top, head_bottom = -1.85 * r, 0.15 * r
    edge = torch.where(head_dominant, body_bottom - f * (body_bottom - body_top),
                       head_top + f * (head_bottom - head_top))
    along = torch.where(head_dominant, edge - oy, oy - edge)  # < 0 inside the band
    half_width = torch.where(head_dominant, 1.15 * w, 1.25 * r) + 1.0
    return _soft(torch.maximum(along, ox.abs() - half_width))


def _stripes(oy: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
    """1 on the dark stripes of a striped head, else 0 ([n,S,S])."""
    return (torch.sin(2 * math.pi * oy / p["period"].view(-1, 1, 1) + p["phase"].view(-1, 1, 1)) > 0).float()


def _checker(ox: torch.Tensor, oy: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
    """1 on the dark squares of a checkered body, else 0 ([n,S,S])."""
    period = p["period"].view(-1, 1, 1)
    return (torch.sin(math.pi * ox / period) * torch.sin(math.pi * oy / period + p["phase"].view(-1, 1, 1)) > 0).float()


def _clutter_alpha(x: torch.Tensor, y: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
    """Coverage of the distractor rectangles, [n, M, S, S] (M = max clutter)."""
    cx, cy = p["clutter_xy"][..., 0, None, None], p["clutter_xy"][..., 1, None, None]
    w, h = p["clutter_wh"][..., 0, None, None], p["clutter_wh"][..., 1, None, None]
    return _soft(torch.maximum((x - cx).abs() - w, (y - cy).abs() - h)) * p["clutter_on"][..., None, None]
