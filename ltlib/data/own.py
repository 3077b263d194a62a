"""Your own images as a task, from the command line: ``imagefolder:ROOT`` and ``csv:FILE`` dataset specs.

No YAML, no line counts: the class counts are derived from the images found. The splits are the same
objects the shipped datasets give (:class:`~ltlib.data.Manifest` over an image root), so training,
caching, stage 2 and prediction treat your data exactly like Places-LT. Paths may contain spaces.

- ``imagefolder:ROOT``: one folder per class, ``ROOT/<class>/**/<image>``; or split folders
  ``ROOT/train/<class>/…`` with optional ``ROOT/val/<class>/…`` and ``ROOT/test/<class>/…``.
- ``csv:FILE``: a header row with columns ``path,label`` and optionally ``split`` (train | val | test);
  paths are relative to the CSV's folder (or absolute); a label is a class name, or an integer index
  into ``classnames`` (a file, one name per line) or, without it, named by its images' folder.

Without a test split, a seeded ``test_fraction`` of every class with at least two images is held out
(stratified, so the test set keeps the training set's imbalance: report class-averaged accuracy).
"""

from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import ConfigError, ManifestError
from .manifest import Manifest, read_classnames

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
PREFIXES = ("imagefolder:", "csv:")
SPLIT_NAMES = ("train", "val", "test")


@dataclass(frozen=True)
class OwnDataOptions:
    """How an own-data spec becomes splits.

    Attributes:
        test_fraction: share of each class held out as ``test`` when the data name no test split.
        seed: seeds that hold-out.
        classnames: a file of class names, one per line in label order (``csv:`` with integer labels).
    """

    test_fraction: float = 0.2
    seed: int = 0
    classnames: str | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.test_fraction < 1.0:
            raise ConfigError(f"test_fraction={self.test_fraction}: expected a share strictly between 0 and 1")


@dataclass(frozen=True, eq=False)
class OwnDataset:
    """Images found for an own-data spec.

    Attributes:
        key: the task key runs are filed under: kind, folder or file name and a hash of the content
            (new images, new key: a changed dataset never reuses old runs).
        title: for messages.
        root: image paths are relative to it.
        classnames: C names in label order.
        splits: ``train`` and ``test`` (and ``val`` when given) manifests with labels in ``[0, C)``.
        info: what was read, recorded with every run.
    """

    key: str
    title: str
    root: Path
    classnames: tuple[str, ...]
    splits: dict[str, Manifest]
    info: dict

    @property
    def class_counts(self) -> np.ndarray:
        """[C] training images per class (n_y: P_S, the LA loss, the D-groups)."""
        return np.bincount(self.splits["train"].labels, minlength=len(self.classnames)).astype(np.int64)


def is_own_spec(dataset: object) -> bool:
    """True for a string ``imagefolder:…`` or ``csv:…``."""
    return isinstance(dataset, str) and dataset.startswith(PREFIXES)


def load_own_dataset(spec: str, options: OwnDataOptions = OwnDataOptions()) -> OwnDataset:
    """Read an ``imagefolder:ROOT`` or ``csv:FILE`` spec into splits with derived class counts.

    Args:
        spec: the dataset spec.
        options: hold-out share and seed, class-names file.
    Returns:
        :class:`OwnDataset`.
    Raises:
        ConfigError / ManifestError: an unknown prefix, a missing folder or file, a class without
            training images, a malformed CSV row (naming the file and line).
    """
    kind, _, location = spec.partition(":")
    path = Path(location).expanduser()
    if kind == "imagefolder":
        root, classnames, splits = _from_folders(path, options)
    elif kind == "csv":
        root, classnames, splits = _from_csv(path, options)
    else:
        raise ConfigError(f"dataset {spec!r}: expected imagefolder:ROOT or csv:FILE")
    splits = _complete_splits(splits, len(classnames), options)
    _require_training_images(splits["train"], classnames, spec)
    key = f"{kind}-{_slug(path.stem if kind == 'csv' else path.name)}-{_content_hash(classnames, splits)}"
    info = {"dataset": spec, "source": str(path.resolve()), "test_fraction": options.test_fraction,
            "split_seed": options.seed, "split_sizes": {k: len(v) for k, v in splits.items()}}
    return OwnDataset(key, f"{kind} {path}", root, classnames, splits, info)


# --------------------------------------------------------------------------- image folders
def _from_folders(root: Path, options: OwnDataOptions) -> tuple[Path, tuple[str, ...], dict[str, list]]:
    if not root.is_dir():
        raise ConfigError(f"imagefolder: {root} is not a folder")
    folders = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if "train" in folders and set(folders) <= set(SPLIT_NAMES):
        classnames = _class_folders(root / "train")
        return root, classnames, {s: _images_by_class(root, s, classnames) for s in folders}
    classnames = _class_folders(root)
    return root, classnames, {"train": _images_by_class(root, "", classnames)}


def _class_folders(folder: Path) -> tuple[str, ...]:
    names = tuple(sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")))
    if not names:
        raise ConfigError(f"imagefolder: {folder} holds no class folders (expected <class>/<image> files)")
    return names


def _images_by_class(root: Path, split: str, classnames: Sequence[str]) -> list[tuple[str, int]]:
    """(path relative to ``root``, label) of every image under ``root/split/<class>/``, sorted."""
    base = root / split if split else root
    unknown = sorted({p.name for p in base.iterdir() if p.is_dir()} - set(classnames))
    if unknown:
        raise ConfigError(f"imagefolder: {base} has class folder(s) {unknown[:5]} that train/ does not have")
    items = []
    for label, name in enumerate(classnames):
        for image in sorted((base / name).rglob("*")):
            if image.suffix.lower() in IMAGE_SUFFIXES and image.is_file():
                items.append((image.relative_to(root).as_posix(), label))
    return items


# --------------------------------------------------------------------------- CSV
def _from_csv(path: Path, options: OwnDataOptions) -> tuple[Path, tuple[str, ...], dict[str, list]]:
    rows = _read_csv(path)
    classnames, labels = _csv_labels(path, rows, options.classnames)
    splits: dict[str, list] = {}
    for (number, row), label in zip(rows, labels):
        split = (row.get("split") or "train").strip()
        if split not in SPLIT_NAMES:
            raise ConfigError(f"{path}, line {number}: split {split!r} is not one of {SPLIT_NAMES}")
        splits.setdefault(split, []).append((row["path"], label))
    return path.parent, classnames, splits


def _read_csv(path: Path) -> list[tuple[int, dict[str, str]]]:
    if not path.is_file():
        raise ConfigError(f"csv: {path} not found")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        fields = [name.strip() for name in reader.fieldnames or []]
        if not {"path", "label"} <= set(fields) or not set(fields) <= {"path", "label", "split"}:
            raise ConfigError(f"{path}, line 1: expected a header 'path,label[,split]', got {fields}")
        reader.fieldnames = fields
        rows = [(reader.line_num, row) for row in reader]
    for number, row in rows:
        if not (row.get("path") or "").strip() or not (row.get("label") or "").strip():
            raise ConfigError(f"{path}, line {number}: empty path or label")
    if not rows:
        raise ConfigError(f"{path}: no rows after the header")
    return rows


def _csv_labels(path: Path, rows: list, classnames_file: str | None) -> tuple[tuple[str, ...], list[int]]:
    """Class names and each row's label: from a names file, from name labels, or from image folders."""
    values = [row["label"].strip() for _, row in rows]
    if classnames_file is not None:
        names = read_classnames(classnames_file)
        index = {n: j for j, n in enumerate(names)}
        return names, [_named_or_indexed(path, number, v, index, len(names)) for (number, _), v in zip(rows, values)]
    if not all(re.fullmatch(r"[0-9]+", v) for v in values):
        names = tuple(sorted(set(values)))
        index = {n: j for j, n in enumerate(names)}
        return names, [index[v] for v in values]
    return _names_from_folders(path, rows, [int(v) for v in values])


def _named_or_indexed(path: Path, number: int, value: str, index: dict, num_classes: int) -> int:
    if value in index:
        return index[value]
    if re.fullmatch(r"[0-9]+", value) and int(value) < num_classes:
        return int(value)
    raise ConfigError(f"{path}, line {number}: label {value!r} is neither a class name of the class-names file "
                      f"nor an index below {num_classes}")


def _names_from_folders(path: Path, rows: list, labels: list[int]) -> tuple[tuple[str, ...], list[int]]:
    folders: dict[int, set[str]] = {}
    for (_, row), label in zip(rows, labels):
        folders.setdefault(label, set()).add(Path(row["path"]).parent.name)
    num_classes = max(labels) + 1
    absent = [j for j in range(num_classes) if j not in folders]
    ambiguous = [j for j, names in folders.items() if len(names) != 1]
    if absent or ambiguous:
        raise ConfigError(f"{path}: integer labels need a class-names file (--classnames FILE) unless every label "
                          f"0..{num_classes - 1} has its images in one folder (absent: {absent[:5]}, "
                          f"in several folders: {ambiguous[:5]})")
    return tuple(folders[j].pop() for j in range(num_classes)), labels


# --------------------------------------------------------------------------- splits
def _complete_splits(splits: dict[str, list], num_classes: int, options: OwnDataOptions) -> dict[str, Manifest]:
    """Hold out a test split when none is given; every split becomes a :class:`Manifest`."""
    if "train" not in splits:
        raise ConfigError("own data: no training images (a train split is required)")
    if "test" not in splits:
        splits = {**splits, **_hold_out(splits["train"], num_classes, options)}
    return {name: _manifest(name, items, num_classes) for name, items in splits.items() if items}


def _hold_out(items: list[tuple[str, int]], num_classes: int, options: OwnDataOptions) -> dict[str, list]:
    """Per class, a seeded ``round(test_fraction · n)`` images (at least one when n ≥ 2, never all) as test."""
    rng = np.random.default_rng(options.seed)
    labels = np.array([label for _, label in items], dtype=np.int64)
    test = np.zeros(len(items), dtype=bool)
    for label in range(num_classes):
        members = np.flatnonzero(labels == label)
        if members.size >= 2:
            count = min(max(1, round(options.test_fraction * members.size)), members.size - 1)
            test[rng.permutation(members)[:count]] = True
    return {"train": [it for it, t in zip(items, test) if not t], "test": [it for it, t in zip(items, test) if t]}


def _manifest(split: str, items: list[tuple[str, int]], num_classes: int) -> Manifest:
    labels = np.array([label for _, label in items], dtype=np.int64)
    labels.setflags(write=False)
    return Manifest(Path(f"<{split} split>"), tuple(p for p, _ in items), labels, num_classes)


def _require_training_images(train: Manifest, classnames: Sequence[str], spec: str) -> None:
    counts = np.bincount(train.labels, minlength=len(classnames))
    empty = [classnames[j] for j in np.flatnonzero(counts == 0)]
    if empty:
        raise ManifestError(f"dataset {spec}: class(es) {empty[:5]} have no training image")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "data"


def _content_hash(classnames: Sequence[str], splits: dict[str, Manifest]) -> str:
    digest = hashlib.sha256("\n".join(classnames).encode())
    for name in sorted(splits):
        for path, label in zip(splits[name].paths, splits[name].labels.tolist()):
            digest.update(f"{name}\t{path}\t{label}\n".encode())
    return digest.hexdigest()[:8]

