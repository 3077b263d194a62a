"""LIFT split manifests (book: Method, 'Data lists'): reading, class names and counts, checks and checksums."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ManifestError
from ..metrics import D_THRESHOLDS
from ..storage import atomic_path, write_text

SHA256SUMS = "SHA256SUMS"
_GZIP_MAGIC = b"\x1f\x8b"
_INTEGER = re.compile(r"-?[0-9]+")
# D-group thresholds of book: Method, 'Evaluation' (OLTR convention): many n > 100, medium 20 <= n <= 100, few n < 20.
MANY_ABOVE, FEW_BELOW = D_THRESHOLDS


@dataclass(frozen=True, eq=False)
class Manifest:
    """A parsed manifest: one image per line, ``"<relative/path> <label>"`` (book: Method, 'Data lists').

    Attributes:
        source: the file it was read from; every error names it.
        paths: [N] image paths relative to the data root, in file order (item ``i`` is line ``i + 1``).
        labels: [N] int64, read-only, each in ``[0, num_classes)``.
        num_classes: C, the size of the label range.
    """

    source: Path
    paths: tuple[str, ...]
    labels: np.ndarray
    num_classes: int

    def __len__(self) -> int:
        return len(self.paths)

    def remapped(self, label_map: np.ndarray) -> Manifest:
        """The same images with labels ``label_map[labels]`` (iNat's LIFT labels, book: Method, 'Data lists').

        Args:
            label_map: [num_classes] int64, a permutation of ``0..num_classes-1``.
        Returns:
            A new :class:`Manifest` with the mapped labels.
        """
        if len(label_map) != self.num_classes:
            raise ManifestError(f"{self.source}: label map has {len(label_map)} entries for "
                                f"{self.num_classes} classes")
        return Manifest(self.source, self.paths, _readonly(label_map[self.labels]), self.num_classes)


# --------------------------------------------------------------------------- reading
def read_lines(path: str | os.PathLike) -> list[str]:
    """The lines of a UTF-8 text file, plain or gzip (detected by its magic bytes), without newlines.

    Raises:
        ManifestError: the file is missing, not UTF-8, or empty.
    """
    try:
        text = read_bytes(path).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{path}: not a UTF-8 text file: {exc}") from exc
    if text.startswith("\ufeff"):
        raise ManifestError(f"{path}, line 1: starts with a byte-order mark (an invisible U+FEFF); save the file "
                            "as UTF-8 without BOM")
    # Split on newlines only (as Python's file iteration does), so line numbers match an editor's.
    lines = text.replace("\r\n", "\n").split("\n")
    if lines[-1] == "":
        lines.pop()
    if not lines:
        raise ManifestError(f"{path}: empty file")
    return lines


def read_bytes(path: str | os.PathLike) -> bytes:
    """A file's content, decompressed when it is gzip (detected by its magic bytes, not its name)."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: file not found")
    raw = path.read_bytes()
    try:
        return gzip.decompress(raw) if raw[:2] == _GZIP_MAGIC else raw
    except (OSError, EOFError) as exc:
        raise ManifestError(f"{path}: corrupt gzip file: {exc}") from exc


def read_manifest(path: str | os.PathLike, num_classes: int | None = None) -> Manifest:
    """Read a LIFT manifest: each line is exactly ``"<relative/path> <integer label>"`` (book: Method, 'Data lists').

    Args:
        path: the manifest, plain text or gzip.
        num_classes: the label range C; None takes the largest label + 1.
    Returns:
        The :class:`Manifest` (labels [N] int64).
    Raises:
        ManifestError: naming the file and 1-based line of a malformed line, a non-integer label or a
            label outside ``[0, num_classes)``; or an empty file.
    """
    path = Path(path)
    paths, labels = _parse(read_lines(path), path)
    num_classes = int(labels.max()) + 1 if num_classes is None else num_classes
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        raise ManifestError(f"{path}, line {bad[0] + 1}: label {labels[bad[0]]} outside [0, {num_classes}) "
                            f"({bad.size} such line(s))")
    return Manifest(path, paths, _readonly(labels), num_classes)


def _parse(lines: list[str], path: Path) -> tuple[tuple[str, ...], np.ndarray]:
    paths, labels = [], np.empty(len(lines), dtype=np.int64)
    for i, line in enumerate(lines):
        fields = line.split()
        if len(fields) != 2:
            raise ManifestError(f"{path}, line {i + 1}: expected '<relative/path> <label>', got {line!r}")
        if not _INTEGER.fullmatch(fields[1]):
            raise ManifestError(f"{path}, line {i + 1}: label {fields[1]!r} is not an integer")
        paths.append(_relative_path(fields[0], path, i))
        labels[i] = int(fields[1])
    _check_unique(paths, path)
    return tuple(paths), labels


def _relative_path(image: str, path: Path, index: int) -> str:
    """``image`` if it is a relative path that stays under the data root (no ``..``, not absolute)."""
    parts = image.replace("\\", "/").split("/")
    if image.startswith("/") or ".." in parts or "" in parts:
        raise ManifestError(f"{path}, line {index + 1}: image path {image!r} must be relative to the data root, "
                            "without '..', empty or absolute parts")
    return image


def _check_unique(paths: list[str], path: Path) -> None:
    """Reject an image listed twice (it would count twice in the class counts and weigh twice in training)."""
    first: dict[str, int] = {}
    for i, image in enumerate(paths):
        if image in first:
            raise ManifestError(f"{path}, line {i + 1}: image {image!r} is listed again (first on line "
                                f"{first[image] + 1}); each image must appear once")
        first[image] = i


def read_classnames(path: str | os.PathLike, num_classes: int | None = None) -> tuple[str, ...]:
    """Read a canonical class-names file: one name per line, line ``j + 1`` naming label ``j``.

    Args:
        path: plain text or gzip.
        num_classes: when given, the number of names it must hold.
    Returns:
        C names, in label order.
    Raises:
        ManifestError: an empty line (naming it), or a count other than ``num_classes``.
    """
    lines = read_lines(path)
    for i, line in enumerate(lines):
        if not line.strip():
            raise ManifestError(f"{path}, line {i + 1}: empty class name")
    if num_classes is not None and len(lines) != num_classes:
        raise ManifestError(f"{path}: {len(lines)} class names, expected num_classes={num_classes}")
    return tuple(line.strip() for line in lines)


def read_class_counts(path: str | os.PathLike, num_classes: int | None = None) -> np.ndarray:
    """Read a class-counts file: one non-negative integer per line, in label order.

    Returns:
        [C] int64 counts.
    """
    lines = read_lines(path)
    for i, line in enumerate(lines):
        if not line.strip().isdigit():
            raise ManifestError(f"{path}, line {i + 1}: expected a non-negative integer, got {line!r}")
    if num_classes is not None and len(lines) != num_classes:
        raise ManifestError(f"{path}: {len(lines)} counts, expected num_classes={num_classes}")
    return np.array([int(line) for line in lines], dtype=np.int64)


def class_counts(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Training counts n_j per class (LIFT's ``cls_num_list``, book: Method, 'Data lists').

    Args:
        labels: [N] integer labels in ``[0, num_classes)``.
        num_classes: C.
    Returns:
        [C] int64, ``counts[j]`` = number of labels equal to j (zero for an absent class).
    """
    labels = np.asarray(labels, dtype=np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ManifestError(f"labels span [{labels.min()}, {labels.max()}], outside [0, num_classes={num_classes})")
    return np.bincount(labels, minlength=num_classes).astype(np.int64)


def group_sizes(counts: np.ndarray, many_above: int = MANY_ABOVE, few_below: int = FEW_BELOW) -> tuple[int, int, int]:
    """Number of many / medium / few classes for training counts ``counts`` [C] (book: Method, 'Groups').

    Args:
        counts: [C] training counts.
        many_above, few_below: a class is many when n > ``many_above``, few when n < ``few_below``.
    """
    counts = np.asarray(counts)
    many, few = int((counts > many_above).sum()), int((counts < few_below).sum())
    return many, len(counts) - many - few, few


# --------------------------------------------------------------------------- checks
def check_all_classes_present(manifest: Manifest) -> np.ndarray:
    """Require every label ``0..C-1`` on at least one line (LIFT's class counts assume it; book: Method, 'Data lists').

    Returns:
        [C] int64 class counts.
    """
    counts = class_counts(manifest.labels, manifest.num_classes)
    absent = np.flatnonzero(counts == 0)
    if absent.size:
        raise ManifestError(f"{manifest.source}: {absent.size} of {manifest.num_classes} classes have no line "
                            f"(first: label {absent[0]}); every class must appear")
    return counts


def check_class_folders(manifest: Manifest, class_folders: Sequence[str] | None, component: int) -> None:
    """Require each image path's folder to name its label, which catches reordered or changed labels.

    Args:
        manifest: raw labels (before any remap).
        class_folders: per label, the expected text of path component ``component``; None means the
            label itself (iNat: ``train_val2018/<supercategory>/<category_id>/<file>``).
        component: 0-based index of the folder in the ``/``-separated relative path.
    """
    expected = class_folders if class_folders is not None else [str(j) for j in range(manifest.num_classes)]
    wrong = [i for i, (path, label) in enumerate(zip(manifest.paths, manifest.labels.tolist()))
             if _component(path, component) != expected[label]]
    if wrong:
        i = wrong[0]
        raise ManifestError(f"{manifest.source}, line {i + 1}: {manifest.paths[i]!r} has label "
                            f"{manifest.labels[i]}, whose images live in folder {expected[manifest.labels[i]]!r} "
                            f"({len(wrong)} such line(s)); were the labels reordered or changed?")


def _component(path: str, index: int) -> str | None:
    parts = path.split("/")
    return parts[index] if index < len(parts) else None


def missing_images(manifest: Manifest, data_root: str | os.PathLike) -> list[int]:
    """Indices of manifest items whose image file is absent under ``data_root``.

    Lists each image folder once instead of a ``stat`` per file, which is much faster on network file
    systems (iNat2018 has 437,513 images in 8,142 folders).
    """
    root, listings, missing = Path(data_root), {}, []
    for i, path in enumerate(manifest.paths):
        folder, _, name = path.rpartition("/")
        if folder not in listings:
            listings[folder] = _listdir(root / folder)
        if name not in listings[folder]:
            missing.append(i)
    return missing


def _listdir(folder: Path) -> frozenset[str]:
    try:
        return frozenset(os.listdir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return frozenset()


def check_images_exist(manifest: Manifest, data_root: str | os.PathLike) -> None:
    """Raise ``ManifestError`` naming the first missing image's manifest line and how many are missing."""
    missing = missing_images(manifest, data_root)
    if missing:
        i = missing[0]
        raise ManifestError(f"{manifest.source}, line {i + 1}: image {Path(data_root) / manifest.paths[i]} not "
                            f"found ({len(missing)} of {len(manifest)} listed images are missing under "
                            f"data root {data_root})")


# --------------------------------------------------------------------------- checksums
def sha256_file(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def git_blob_id(path: str | os.PathLike) -> str:
    """The git object id of a file's (decompressed) text, to recognise LIFT's exact copy."""
    data = read_bytes(path)
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def write_sha256sums(folder: str | os.PathLike) -> Path:
    """Write ``folder/SHA256SUMS`` (``sha256sum -c`` format) covering every other file in ``folder``."""
    folder = Path(folder)
    names = sorted(p.name for p in folder.iterdir() if p.is_file() and p.name != SHA256SUMS)
    return write_text(folder / SHA256SUMS, "".join(f"{sha256_file(folder / n)}  {n}\n" for n in names))


def verify_sha256sums(folder: str | os.PathLike) -> None:
    """Check ``folder/SHA256SUMS``: every listed file matches and no file in ``folder`` is unlisted."""
    folder = Path(folder)
    sums = folder / SHA256SUMS
    listed = set()
    for i, line in enumerate(read_lines(sums)):
        digest, _, name = line.partition("  ")
        listed.add(name)
        if not (folder / name).is_file() or sha256_file(folder / name) != digest:
            raise ManifestError(f"{sums}, line {i + 1}: {name} is missing or does not match its checksum")
    unlisted = sorted(p.name for p in folder.iterdir() if p.is_file() and p.name not in listed | {SHA256SUMS})
    if unlisted:
        raise ManifestError(f"{sums}: file(s) {unlisted} are not covered")


# --------------------------------------------------------------------------- LIFT class names and labels
def lift_classname(line: str) -> str:
    """LIFT's class name from a ``classnames.txt`` line: everything after the first space (book: Method, 'Data lists').

    ImageNet-LT lines are ``"<wnid> <name words>"``, Places-LT lines ``"<folder> <folder>"``.
    """
    return " ".join(line.strip().split(" ")[1:])


def inat_lift_labels(categories: Sequence[dict], key: str = "name") -> tuple[tuple[str, ...], np.ndarray]:
    """LIFT's iNat2018 labels (book: Method, 'Data lists'): the rank of ``categories[id][key]`` among the sorted names.

    Args:
        categories: iNat ``categories.json``, a list whose index equals each entry's ``id``.
        key: ``"name"`` (species) or a taxonomy level such as ``"genus"``.
    Returns:
        classnames: the distinct names in code-point order (label order);
        label_map: [len(categories)] int64, ``label_map[category_id]`` = LIFT label.
    """
    for index, entry in enumerate(categories):
        if entry["id"] != index:
            raise ManifestError(f"categories.json entry {index} has id {entry['id']}; LIFT assumes index == id")
    names = [entry[key] for entry in categories]
    classnames = tuple(sorted(set(names)))
    rank = {name: label for label, name in enumerate(classnames)}
    return classnames, np.array([rank[n] for n in names], dtype=np.int64)


def read_label_map(path: str | os.PathLike) -> np.ndarray:
    """Read a label map: line ``k + 1`` is ``"<raw label k> <LIFT label>"``.

    Returns:
        [K] int64, a permutation of ``0..K-1``.
    """
    manifest = read_manifest(path)
    if manifest.paths != tuple(str(k) for k in range(len(manifest))):
        raise ManifestError(f"{path}: the first column must count 0, 1, 2, ... line by line")
    if sorted(manifest.labels.tolist()) != list(range(len(manifest))):
        raise ManifestError(f"{path}: the second column is not a permutation of 0..{len(manifest) - 1}")
    return manifest.labels


def write_inat_manifest(annotations_json: str | os.PathLike, out_path: str | os.PathLike) -> Path:
    """Write a LIFT-format manifest from an official iNat2018 annotation file (book: Method, 'Data lists').

    One line per image, in the file's image order: ``"<file_name> <category_id>"``; ``file_name``
    already reads ``train_val2018/<supercategory>/<category_id>/<hash>.jpg``. Labels stay the official
    category ids; loading applies LIFT's remap (book: Method, 'Data lists').

    Args:
        annotations_json: ``train2018.json`` (or ``val2018.json``).
        out_path: the manifest to write (gzip when it ends in ``.gz``).
    """
    data = json.loads(Path(annotations_json).read_text(encoding="utf-8"))
    category = {a["image_id"]: a["category_id"] for a in data["annotations"]}
    text = "".join(f"{image['file_name']} {category[image['id']]}\n" for image in data["images"])
    with atomic_path(out_path) as tmp:
        tmp.write_bytes(_gzip(text) if str(out_path).endswith(".gz") else text.encode("utf-8"))
    return Path(out_path)


def _gzip(text: str) -> bytes:
    return gzip.compress(text.encode("utf-8"), mtime=0)  # mtime 0: identical bytes on every rebuild


# --------------------------------------------------------------------------- the shipped files
def build_public_manifests(source_root: str | os.PathLike, out_root: str | os.PathLike) -> list[Path]:
    """Rebuild ``data_manifests/`` from gzipped copies of LIFT's split files (book: Method, 'Data lists').

    Split lists and ``categories.json`` are copied byte for byte; the canonical class names, class
    folders, Places-LT class counts and the iNat label map are derived; each folder gets SHA256SUMS.

    Args:
        source_root: holds ``ImageNet_LT/``, ``Places_LT/``, ``iNaturalist18/`` as in LIFT's ``datasets/``.
        out_root: where to write the same three folders.
    Returns:
        The three dataset folders written.
    """
    builders: dict[str, Callable[[Path, Path], None]] = {
        "ImageNet_LT": _build_imagenet, "Places_LT": _build_places, "iNaturalist18": _build_inat}
    written = []
    for folder, build in builders.items():
        src, dst = Path(source_root) / folder, Path(out_root) / folder
        dst.mkdir(parents=True, exist_ok=True)
        build(src, dst)
        write_sha256sums(dst)
        written.append(dst)
    return written


def _copy(src: Path, dst: Path) -> None:
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


def _write_lines(path: Path, lines: Sequence[object]) -> None:
    write_text(path, "".join(f"{line}\n" for line in lines))


def _build_imagenet(src: Path, dst: Path) -> None:
    for split in ("val", "test"):
        _copy(src / f"ImageNet_LT_{split}.txt.gz", dst / f"ImageNet_LT_{split}.txt.gz")
    lines = read_lines(src / "classnames.txt.gz")
    _write_lines(dst / "classnames.txt", [lift_classname(line) for line in lines])
    _write_lines(dst / "class_folders.txt", [line.split(" ")[0] for line in lines])


def _build_places(src: Path, dst: Path) -> None:
    for split in ("train", "val", "test"):
        _copy(src / f"Places_LT_{split}.txt.gz", dst / f"Places_LT_{split}.txt.gz")
    classnames = [lift_classname(line) for line in read_lines(src / "classnames.txt.gz")]
    train = read_manifest(src / "Places_LT_train.txt.gz", num_classes=len(classnames))
    _write_lines(dst / "classnames.txt", classnames)
    _write_lines(dst / "class_folders.txt", _folders_by_label(train, component=1))
    _write_lines(dst / "class_counts.txt", check_all_classes_present(train).tolist())


def _folders_by_label(manifest: Manifest, component: int) -> list[str]:
    """The one folder that holds each label's images in ``manifest`` (an error if there are several)."""
    folders: dict[int, set[str]] = {}
    for path, label in zip(manifest.paths, manifest.labels.tolist()):
        folders.setdefault(label, set()).add(_component(path, component))
    ambiguous = [j for j, names in folders.items() if len(names) != 1]
    if ambiguous or len(folders) != manifest.num_classes:
        raise ManifestError(f"{manifest.source}: labels {ambiguous[:5]} span several folders, or a label is absent")
    return [folders[j].pop() for j in range(manifest.num_classes)]


def _build_inat(src: Path, dst: Path) -> None:
    for name in ("iNaturalist18_val.txt.gz", "categories.json.gz"):
        _copy(src / name, dst / name)
    categories = json.loads(read_bytes(src / "categories.json.gz"))
    classnames, label_map = inat_lift_labels(categories)
    _write_lines(dst / "classnames.txt", classnames)
    _write_lines(dst / "label_map.txt", [f"{k} {label}" for k, label in enumerate(label_map.tolist())])


def _readonly(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array
