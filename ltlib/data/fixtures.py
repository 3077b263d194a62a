"""A tiny long-tailed image dataset on disk, in LIFT's layout and manifest format (book: Method, 'Data lists').

Each class has its own hue and stripe orientation, so a model can learn it from a few images; used by
end-to-end tests and benchmarks of the real loaders.
"""

from __future__ import annotations

import colorsys
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from ..errors import ConfigError
from ..storage import atomic_path, write_text

_HUE_NAMES = ("red", "orange", "yellow", "lime", "green", "teal", "cyan", "azure", "blue", "violet",
              "magenta", "pink")  # one per 30° of hue
# split -> (image folder, file prefix); as in ImageNet-LT / Places-LT, val images are held-out training
# images under train/ and test images live under val/.
_LAYOUT = {"train": ("train", "img"), "val": ("train", "val"), "test": ("val", "test")}


@dataclass(frozen=True, eq=False)
class FixtureDataset:
    """Paths and facts of a fixture written by :func:`make_fixture_dataset`.

    Attributes:
        root: the data root (image folders ``train/``, ``val/``) that also holds the files below.
        config: dataset YAML for ``load_dataset_config`` / ``build_split``.
        manifests: split name -> manifest path (``train``, and ``val`` / ``test`` when non-empty).
        classnames_file: canonical class names, one per line.
        classnames: C names in label order (also the image folder names).
        class_counts: training images per class.
    """

    root: Path
    config: Path
    manifests: dict[str, Path]
    classnames_file: Path
    classnames: tuple[str, ...]
    class_counts: tuple[int, ...]

    @property
    def num_classes(self) -> int:
        return len(self.classnames)


def make_fixture_dataset(root: str | os.PathLike, num_classes: int = 4, train_counts: Sequence[int] = (6, 4, 2, 1),
                         val_per_class: int = 2, test_per_class: int = 4, image_size: tuple[int, int] = (64, 48),
                         seed: int = 0) -> FixtureDataset:
    """Write a small long-tailed dataset of real JPEG files with LIFT manifests under ``root``.

    Layout: ``train/<class>/img_<k>.jpg`` (train list), ``train/<class>/val_<k>.jpg`` (val list),
    ``val/<class>/test_<k>.jpg`` (test list); manifests ``train.txt`` / ``val.txt`` / ``test.txt`` in
    the real format; ``classnames.txt``, ``class_counts.txt`` and ``dataset.yaml``. The same arguments
    give byte-identical files.

    Args:
        root: output folder (created).
        num_classes: C.
        train_counts: [C] training images per class, each >= 1.
        val_per_class, test_per_class: balanced split sizes (0 leaves the split out).
        image_size: (width, height) in pixels.
        seed: seeds every image.
    Returns:
        :class:`FixtureDataset`.
    """
    _check_arguments(num_classes, train_counts, val_per_class, test_per_class, image_size)
    root = Path(root)
    names = fixture_classnames(num_classes)
    sizes = {"train": list(train_counts), "val": [val_per_class] * num_classes,
             "test": [test_per_class] * num_classes}
    manifests = {split: _write_split(root, split, names, counts, image_size, seed)
                 for split, counts in sizes.items() if sum(counts) > 0}
    write_text(root / "classnames.txt", "".join(f"{n}\n" for n in names))
    write_text(root / "class_counts.txt", "".join(f"{n}\n" for n in train_counts))
    config = _write_config(root, names, sizes)
    return FixtureDataset(root, config, manifests, root / "classnames.txt", names, tuple(train_counts))


def fixture_classnames(num_classes: int) -> tuple[str, ...]:
    """Names such as ``"cyan_stripes_2"``: the nearest hue name and the label (which keeps them distinct)."""
    return tuple(f"{_HUE_NAMES[round(12 * c / num_classes) % 12]}_stripes_{c}" for c in range(num_classes))


def _angle(c: int, num_classes: int) -> int:
    return 180 * c // num_classes


def render_image(label: int, num_classes: int, image_size: tuple[int, int], seed: Sequence[int]) -> np.ndarray:
    """One fixture image: class hue and stripe angle, random stripe phase, brightness and pixel noise.

    Args:
        label: class c; its hue is c/C of the colour wheel and its stripes run at 180·c/C degrees.
        num_classes: C.
        image_size: (width, height).
        seed: entropy for ``numpy.random.default_rng`` (e.g. ``(seed, split, c, k)``).
    Returns:
        [height, width, 3] uint8 RGB.
    """
    rng = np.random.default_rng(list(seed))
    width, height = image_size
    y, x = np.mgrid[0:height, 0:width] / max(width, height)
    theta = np.deg2rad(_angle(label, num_classes))
    stripes = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * (x * np.cos(theta) + y * np.sin(theta)) + rng.uniform(0, 2 * np.pi))
    base = np.array(colorsys.hsv_to_rgb(label / num_classes, 0.8, 0.9)) * 255 * rng.uniform(0.85, 1.0)
    pixels = base * (0.55 + 0.45 * stripes[..., None]) + rng.normal(0, 6, (height, width, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def _write_split(root: Path, split: str, names: tuple[str, ...], counts: list[int],
                 image_size: tuple[int, int], seed: int) -> Path:
    folder, prefix = _LAYOUT[split]
    lines = []
    for c, (name, count) in enumerate(zip(names, counts)):
        for k in range(count):
            relative = f"{folder}/{name}/{prefix}_{k:04d}.jpg"
            pixels = render_image(c, len(names), image_size, (seed, list(_LAYOUT).index(split), c, k))
            _save_jpeg(root / relative, pixels)
            lines.append(f"{relative} {c}\n")
    return write_text(root / f"{split}.txt", "".join(lines))


def _save_jpeg(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Image.fromarray(pixels).save(tmp, format="JPEG", quality=90)


def _write_config(root: Path, names: tuple[str, ...], sizes: dict[str, list[int]]) -> Path:
    splits = [{"name": split, "file": f"{split}.txt", "standard_name": f"{split}.txt", "num_lines": sum(counts),
               "count_min": min(counts), "count_max": max(counts),
               "obtain": "written by ltlib.data.make_fixture_dataset"}
              for split, counts in sizes.items() if sum(counts) > 0]
    config = {"name": "fixture", "title": "Fixture", "num_classes": len(names), "manifest_dir": str(root.resolve()),
              "classnames": "classnames.txt", "class_folders": "classnames.txt", "class_folder_component": 1,
              "class_counts": "class_counts.txt", "recipe": "lift", "splits": splits,
              "image_layout": "train/<class>/ (train and val lists) and val/<class>/ (test list)"}
    return write_text(root / "dataset.yaml", yaml.safe_dump(config, sort_keys=False))


def _check_arguments(num_classes: int, train_counts: Sequence[int], val_per_class: int, test_per_class: int,
                     image_size: tuple[int, int]) -> None:
    if num_classes < 1 or len(train_counts) != num_classes:
        raise ConfigError(f"train_counts has {len(train_counts)} entries; it needs num_classes={num_classes}")
    if min(train_counts) < 1:
        raise ConfigError(f"train_counts={tuple(train_counts)}: every class needs at least one training image")
    if val_per_class < 0 or test_per_class < 0:
        raise ConfigError(f"val_per_class={val_per_class} and test_per_class={test_per_class} must be >= 0")
    if len(image_size) != 2 or min(image_size) < 8:
        raise ConfigError(f"image_size={image_size} must be (width, height), each >= 8 pixels")
