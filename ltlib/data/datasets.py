"""Dataset registry and image datasets read through LIFT manifests (book: Method, 'Data lists', 'Evaluation')."""

from __future__ import annotations

import datetime
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from ..config import from_dict, list_configs, load_config
from ..errors import ConfigError, ManifestError
from ..storage import read_json, write_json
from ..paths import cache_root, manifests_dir
from .manifest import (Manifest, check_all_classes_present, check_class_folders, check_images_exist,
                       class_counts, git_blob_id, group_sizes, read_class_counts, read_classnames,
                       read_bytes, read_label_map, read_manifest)

MANIFEST_ROOT = manifests_dir()
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class SplitSpec:
    """What one split's manifest must hold (book: Method, 'Data lists'); the file is shipped or supplied by the user."""

    name: str                      # train | val | test
    standard_name: str             # the upstream file, e.g. ImageNet_LT_train.txt
    num_lines: int                 # one image per line
    count_min: int                 # fewest images of any class
    count_max: int                 # most images of any class
    file: str | None = None        # shipped manifest (relative to manifest_dir); None: the user supplies it
    group_sizes: tuple[int, int, int] | None = None  # many / medium / few classes of a train list
    lift_blob: str | None = None   # git blob id (or its prefix) of LIFT's copy, to recognise that exact file
    obtain: str = ""               # where the standard file comes from; every error about the file says it

    def __post_init__(self) -> None:
        if self.name not in SPLITS:
            raise ConfigError(f"split name {self.name!r} must be one of {SPLITS}")
        if not 0 < self.count_min <= self.count_max or self.num_lines <= 0:
            raise ConfigError(f"split {self.name}: need num_lines > 0 and 0 < count_min <= count_max")

    @property
    def shipped(self) -> bool:
        """True when ``data_manifests/`` holds this split; False when the user must supply it."""
        return self.file is not None


@dataclass(frozen=True)
class DatasetConfig:
    """One long-tailed dataset as LIFT loads it: its manifests, class names, labels and image layout."""

    name: str                      # registry key: imagenet_lt | places_lt | inat2018
    title: str                     # display name, e.g. "ImageNet-LT"
    num_classes: int               # C
    manifest_dir: str              # folder of the files below: under data_manifests/, or absolute
    classnames: str                # canonical class names, one per line in label order (book: Method, 'Data lists')
    splits: tuple[SplitSpec, ...]  # train / val / test
    recipe: str                    # training recipe key in configs/methods (lift | lift_inat)
    image_layout: str              # what the data root must contain (book: Method, 'Data lists')
    class_folders: str | None = None   # per raw label, its image folder; None: the folder is the raw label
    class_folder_component: int = 1    # index of that folder in the '/'-separated image path
    class_counts: str | None = None    # shipped training counts per class (Places-LT)
    label_map: str | None = None       # raw label -> LIFT label (iNat2018, book: Method, 'Data lists'); None: identity
    notes: str = ""                    # caveats a user must know before training or comparing results

    def __post_init__(self) -> None:
        splits = tuple(s if isinstance(s, SplitSpec) else from_dict(SplitSpec, s, f"dataset {self.name}")
                       for s in self.splits)
        object.__setattr__(self, "splits", splits)  # YAML gives mappings; keep the config frozen
        names = [s.name for s in splits]
        if len(set(names)) != len(names) or "train" not in names:
            raise ConfigError(f"dataset {self.name}: splits {names} must be distinct and include 'train'")
        for spec in splits:
            if spec.group_sizes is not None and sum(spec.group_sizes) != self.num_classes:
                raise ConfigError(f"dataset {self.name}, split {spec.name}: group_sizes must sum to {self.num_classes}")

    def split(self, name: str) -> SplitSpec:
        """The spec of split ``name``; an unknown split raises ``ConfigError`` listing the known ones."""
        for spec in self.splits:
            if spec.name == name:
                return spec
        raise ConfigError(f"dataset {self.name} has no split {name!r}; it has {[s.name for s in self.splits]}")

    def path(self, relative: str) -> Path:
        """Resolve a file named in this config (relative to ``manifest_dir``)."""
        root = Path(self.manifest_dir)
        return (root if root.is_absolute() else MANIFEST_ROOT / root) / relative


def list_datasets() -> list[str]:
    """Registry keys of the datasets (``ltlib/configs/datasets/*.yaml``)."""
    return list_configs("datasets")


def load_dataset_config(name: str | os.PathLike, **overrides: Any) -> DatasetConfig:
    """Load registry entry ``name`` (or a dataset YAML path), e.g. ``load_dataset_config("places_lt")``."""
    return load_config(DatasetConfig, "datasets", name, **overrides)


def _config(dataset: str | os.PathLike | DatasetConfig) -> DatasetConfig:
    return dataset if isinstance(dataset, DatasetConfig) else load_dataset_config(dataset)


def load_classnames(dataset: str | os.PathLike | DatasetConfig) -> tuple[str, ...]:
    """The C class names in label order (book: Method, 'Data lists'),
    e.g. ``load_classnames("imagenet_lt")[0] == "tench"``."""
    config = _config(dataset)
    return read_classnames(config.path(config.classnames), config.num_classes)


def load_label_map(dataset: str | os.PathLike | DatasetConfig) -> np.ndarray | None:
    """[C] int64 map from raw manifest label to LIFT label (iNat2018; book: Method, 'Data lists'),
    or None for identity."""
    config = _config(dataset)
    return None if config.label_map is None else read_label_map(config.path(config.label_map))


# --------------------------------------------------------------------------- split checks
def check_split(config: DatasetConfig, split: str, path: str | os.PathLike) -> Manifest:
    """Read ``path`` as split ``split`` of ``config`` and check it fully; return it with LIFT labels.

    Checks: line format and label range, the line count, every class present, each image's folder
    against its label, per-class count summary (and the exact counts where shipped); then remaps.

    Returns:
        The :class:`Manifest` with LIFT labels in ``[0, num_classes)``.
    Raises:
        ManifestError: naming the file (and line, where there is one).
    """
    spec = config.split(split)
    raw = read_manifest(path, num_classes=config.num_classes)
    if len(raw) != spec.num_lines:
        raise ManifestError(f"{path}: line count {len(raw)}, expected {spec.num_lines} "
                            f"(truncated, or not {spec.standard_name}?)")
    check_all_classes_present(raw)
    folders = None if config.class_folders is None else read_classnames(config.path(config.class_folders),
                                                                       config.num_classes)
    check_class_folders(raw, folders, config.class_folder_component)
    label_map = load_label_map(config)
    manifest = raw if label_map is None else raw.remapped(label_map)
    _check_counts(config, spec, manifest)
    return manifest


def _check_counts(config: DatasetConfig, spec: SplitSpec, manifest: Manifest) -> None:
    counts = class_counts(manifest.labels, manifest.num_classes)
    found = {"count_min": int(counts.min()), "count_max": int(counts.max())}
    expected = {"count_min": spec.count_min, "count_max": spec.count_max}
    if spec.group_sizes is not None:
        found["group_sizes"], expected["group_sizes"] = group_sizes(counts), tuple(spec.group_sizes)
    if found != expected:
        raise ManifestError(f"{manifest.source}: per-class counts {found} differ from {spec.standard_name}'s "
                            f"{expected}; labels were changed or lines added/removed")
    if spec.name == "train" and config.class_counts is not None:
        _check_exact_counts(counts, read_class_counts(config.path(config.class_counts), config.num_classes),
                            manifest.source)


def _check_exact_counts(counts: np.ndarray, reference: np.ndarray, source: Path) -> None:
    differ = np.flatnonzero(counts != reference)
    if differ.size:
        j = differ[0]
        raise ManifestError(f"{source}: class {j} has {counts[j]} lines, expected {reference[j]} "
                            f"({differ.size} classes differ from the shipped class_counts.txt)")


@dataclass(frozen=True, eq=False)
class UserManifest:
    """A validated user-supplied manifest and the SHA-256 record that pins it.

    Attributes:
        manifest: with LIFT labels.
        sha256: of the file's text (decompressed when gzip).
        record: the JSON file holding the SHA-256 recorded on first use.
        first_use: True when this call created ``record``.
        matches_lift: whether the content is byte-identical to LIFT's copy (None: no reference known).
    """

    manifest: Manifest
    sha256: str
    record: Path
    first_use: bool
    matches_lift: bool | None


def validate_user_manifest(path: str | os.PathLike, dataset: str | os.PathLike | DatasetConfig,
                           split: str = "train", cache_dir: str | os.PathLike | None = None) -> UserManifest:
    """Check a manifest the user supplies (e.g. ``ImageNet_LT_train.txt``) and pin its SHA-256.

    Besides :func:`check_split`, the SHA-256 of its text is recorded on first use in
    ``<cache_dir>/manifests/<dataset>-<split>.json`` (``cache_dir`` defaults to :func:`cache_root`); a
    later call with different content fails, so every run of a cache uses the same list.

    Args:
        path: the manifest, plain text or gzip.
        dataset: registry key, YAML path or config.
        split: which split it stands for.
        cache_dir: where the record lives.
    Returns:
        :class:`UserManifest`.
    Raises:
        ManifestError: the check fails or the content changed since first use; the message says where
            the standard file comes from.
    """
    config, path = _config(dataset), Path(path)
    spec = config.split(split)
    try:
        manifest = check_split(config, split, path)
    except ManifestError as exc:
        lift_copy = " It is byte-identical to LIFT's copy, so the dataset config's expected figures are " \
                    "wrong; please report it." if _matches_lift(path, spec) else ""
        raise ManifestError(f"{exc}. {_where_from(spec)}.{lift_copy}") from exc
    digest = hashlib.sha256(read_bytes(path)).hexdigest()  # of the text: plain and gzip pin alike
    record, first_use = _pin_sha256(path, digest, spec, config.name, cache_dir)
    return UserManifest(manifest, digest, record, first_use, _matches_lift(path, spec))


def _where_from(spec: SplitSpec) -> str:
    return f"The standard file is {spec.standard_name}: {spec.obtain}"


def _matches_lift(path: Path, spec: SplitSpec) -> bool | None:
    """Whether ``path`` holds LIFT's exact copy (its git blob id); None when unknown or unreadable."""
    if spec.lift_blob is None:
        return None
    try:
        return git_blob_id(path).startswith(spec.lift_blob)
    except ManifestError:
        return None


def _pin_sha256(path: Path, digest: str, spec: SplitSpec, dataset: str,
                cache_dir: str | os.PathLike | None) -> tuple[Path, bool]:
    """Record ``digest`` on first use; afterwards require it. Returns (record, first use)."""
    record = Path(cache_dir or cache_root()) / "manifests" / f"{dataset}-{spec.name}.json"
    if not record.is_file():
        write_json(record, {"dataset": dataset, "split": spec.name, "sha256": digest, "path": str(path.resolve()),
                            "recorded_at": datetime.datetime.now(datetime.timezone.utc).isoformat()})
        return record, True
    pinned = read_json(record)
    if pinned["sha256"] != digest:
        raise ManifestError(f"{path}: SHA-256 {digest[:12]}… differs from {pinned['sha256'][:12]}… recorded in "
                            f"{record} for {pinned['path']} on first use; results would not be comparable "
                            f"(delete {record} to adopt the new file). {_where_from(spec)}.")
    return record, False


def load_split(dataset: str | os.PathLike | DatasetConfig, split: str,
               manifest_path: str | os.PathLike | None = None) -> Manifest:
    """The checked manifest of one split, with LIFT labels: the shipped file or ``manifest_path``.

    Args:
        dataset: registry key, YAML path or config.
        split: train | val | test (iNat2018's test split is its official val set, as in LIFT).
        manifest_path: the user's file; required for splits that are not shipped, validated with
            :func:`validate_user_manifest` when given.
    """
    config = _config(dataset)
    spec = config.split(split)
    if manifest_path is not None:
        return validate_user_manifest(manifest_path, config, split).manifest
    if not spec.shipped:
        raise ManifestError(f"the {config.title} {split} list is not shipped with ltlib; pass it as "
                            f"manifest_path. {_where_from(spec)}")
    return check_split(config, split, config.path(spec.file))


# --------------------------------------------------------------------------- images
class ManifestDataset(Dataset):
    """Images listed in a manifest, returned as ``(transform(image), label)`` (book: Method, 'Data lists')."""

    def __init__(self, manifest: Manifest, data_root: str | os.PathLike,
                 transform: Callable[[Image.Image], Any] | None = None, *,
                 classnames: tuple[str, ...] | None = None) -> None:
        """Check that every listed image exists (one directory listing per folder), then index them.

        Args:
            manifest: paths relative to ``data_root`` and labels [N].
            data_root: the image root (e.g. holding ``train/`` and ``val/``).
            transform: applied to the RGB PIL image (``ltlib.data.transforms``); None returns the image.
            classnames: optional names in label order, kept for the caller.
        Raises:
            ManifestError: naming the first missing image's manifest line and how many are missing.
        """
        check_images_exist(manifest, data_root)
        self.manifest, self.data_root = manifest, Path(data_root)
        self.transform, self.classnames = transform, classnames

    def __len__(self) -> int:
        return len(self.manifest)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        with open(self.data_root / self.manifest.paths[index], "rb") as f:
            image = Image.open(f).convert("RGB")
        return (image if self.transform is None else self.transform(image)), int(self.manifest.labels[index])

    @property
    def targets(self) -> np.ndarray:
        """[N] int64 labels in manifest order."""
        return self.manifest.labels

    @property
    def num_classes(self) -> int:
        return self.manifest.num_classes

    @property
    def class_counts(self) -> np.ndarray:
        """[C] int64 images per class (for a train split: n_j of the LA loss and the D-groups)."""
        return class_counts(self.manifest.labels, self.manifest.num_classes)


def build_split(dataset: str | os.PathLike | DatasetConfig, split: str, data_root: str | os.PathLike,
                transform: Callable[[Image.Image], Any] | None = None,
                manifest_path: str | os.PathLike | None = None) -> ManifestDataset:
    """The image dataset of one split, checked end to end.

    Example: ``build_split("imagenet_lt", "train", "/data/imagenet", train_transform(),
    manifest_path="ImageNet_LT_train.txt")``.

    Args:
        dataset: registry key (``list_datasets()``), dataset YAML path or config.
        split: train | val | test.
        data_root: the image root, laid out as the config's ``image_layout`` says.
        transform: e.g. ``train_transform()`` or ``test_transform(tte=True)``.
        manifest_path: the user's list, required for ImageNet-LT and iNat2018 train.
    Returns:
        :class:`ManifestDataset` with LIFT labels and the dataset's class names.
    """
    config = _config(dataset)
    manifest = load_split(config, split, manifest_path)
    try:
        return ManifestDataset(manifest, data_root, transform, classnames=load_classnames(config))
    except ManifestError as exc:
        raise ManifestError(f"{exc}. Expected layout: {config.image_layout}") from exc
