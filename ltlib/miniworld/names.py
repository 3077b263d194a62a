"""Readable class names and part words of the mini world (book: Mini world, item 4).

The class names are invented words, so that no name carries a meaning a reader (or a pre-trained text
encoder) would bring along. They were chosen so that, under open_clip's BPE tokenizer, every name is at
most three tokens and **no two names share a token**: otherwise the from-scratch text tower would start
with a built-in similarity between classes whose names happen to share a sub-word.
"""

from __future__ import annotations

CLASS_NAMES: tuple[str, ...] = (
    "zorbat", "glimmet", "snarvel", "fennick", "drimble", "vorple", "tumbot", "zephyl", "hoskin", "kestle",
    "lumbo", "fambo", "dropple", "bornet", "kraffin", "krankle", "flindo", "gluttle", "quundo", "krisket",
    "predget", "bexel", "fomble", "zelwick", "pimpet", "bairrow", "saiggle", "goondo", "feendo", "thando",
    "skarrow", "nattle", "mizzard", "chabbit", "snazzle", "nasprit", "spaxel", "zhumble", "bapple", "rubbit",
    "desprit", "saffin", "barnet", "lindo", "zazzle", "wondo", "brando", "prankle", "quiffle", "yumbat",
    "grubbin", "fliddle", "norvik", "dreevil", "bluxom", "tarrup", "vesko", "jorrel", "hufflet", "oobix",
    "glorp", "yexil", "bramlin", "tizzet", "moggle", "frinzel", "plovet", "snorrik", "groven", "vantle",
    "rizzop", "pobble", "drask",
)

# Part vocabulary (index = part type's shape or pattern id), used by renderer and captions alike.
HEAD_SHAPES: tuple[str, ...] = ("round", "square", "pointed", "diamond", "ring")
BODY_SHAPES: tuple[str, ...] = ("oval", "boxy", "bell", "wedge", "cross")
HEAD_PATTERNS: tuple[str, ...] = ("plain", "striped")
BODY_PATTERNS: tuple[str, ...] = ("plain", "checkered")
MAX_PART_TYPES = len(HEAD_SHAPES) * len(HEAD_PATTERNS)

# Values of the part-visibility variable C (book: Mini world, item 2).
VISIBILITY: tuple[str, ...] = ("head", "body")
HEAD_DOMINANT, BODY_DOMINANT = 0, 1


def part_words(part: str, part_type: int) -> str:
    """Readable description of a part type, e.g. ``"striped round head"``.

    Args:
        part: ``"head"`` or ``"body"``.
        part_type: index in ``[0, MAX_PART_TYPES)``; shape = type % 5, pattern = type // 5.
    Returns:
        The phrase used in captions.
    """
    shapes, patterns = (HEAD_SHAPES, HEAD_PATTERNS) if part == "head" else (BODY_SHAPES, BODY_PATTERNS)
    shape, pattern = shapes[part_type % len(shapes)], patterns[part_type // len(shapes)]
    return f"{shape} {part}" if pattern == "plain" else f"{pattern} {shape} {part}"
