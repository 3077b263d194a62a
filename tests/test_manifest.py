"""Manifests: the LIFT format (book: Method, 'Data lists'), errors naming file and line, counts, checksums, user
train lists."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from ltlib.data import (Manifest, check_all_classes_present, check_class_folders, check_images_exist, class_counts,
                        group_sizes, inat_lift_labels, load_dataset_config, missing_images, read_class_counts,
                        read_classnames, read_label_map, read_manifest, validate_user_manifest, verify_sha256sums,
                        write_inat_manifest)
from ltlib.data.manifest import git_blob_id, write_sha256sums
from ltlib.config import replace
from ltlib.errors import ManifestError

LIFT_REPO = "github.com/shijxcs/LIFT"


def _write(path: Path, text: str) -> Path:
    path.write_bytes(gzip.compress(text.encode(), mtime=0) if path.suffix == ".gz" else text.encode())
    return path


# --------------------------------------------------------------------------- the format
@pytest.mark.parametrize("name", ["list.txt", "list.txt.gz"])
def test_read_manifest_plain_and_gzip(tmp_path, name):
    manifest = read_manifest(_write(tmp_path / name, "train/a/1.jpg 0\ntrain/b/2.jpg 2\ntrain/a/3.jpg 0\n"))
    assert manifest.paths == ("train/a/1.jpg", "train/b/2.jpg", "train/a/3.jpg")
    assert manifest.labels.dtype == np.int64 and manifest.labels.tolist() == [0, 2, 0]
    assert manifest.num_classes == 3 and len(manifest) == 3 and manifest.source == tmp_path / name
    with pytest.raises(ValueError):
        manifest.labels[0] = 1  # read-only: a dataset cannot corrupt its own labels


def test_gzip_is_detected_by_content_not_name(tmp_path):
    path = tmp_path / "list.txt"
    path.write_bytes(gzip.compress(b"x/1.jpg 0\r\nx/2.jpg 1\r\n"))
    assert read_manifest(path).labels.tolist() == [0, 1]


@pytest.mark.parametrize("line, message", [
    ("train/a/2.jpg", "expected '<relative/path> <label>'"),
    ("train/a/2.jpg 1 extra", "expected '<relative/path> <label>'"),
    ("", "expected '<relative/path> <label>'"),
    ("train/a/2.jpg one", "'one' is not an integer"),
    ("train/a/2.jpg 1.0", "'1.0' is not an integer"),
    ("train/a/2.jpg 1_0", "'1_0' is not an integer"),
])
def test_malformed_line_names_file_and_line(tmp_path, line, message):
    path = _write(tmp_path / "bad.txt", f"train/a/1.jpg 0\n{line}\ntrain/a/3.jpg 0\n")
    with pytest.raises(ManifestError, match=f"bad.txt, line 2: .*{message}"):
        read_manifest(path)


def test_label_out_of_range_names_first_line_and_count(tmp_path):
    path = _write(tmp_path / "range.txt", "a/1.jpg 0\na/2.jpg 3\na/3.jpg -1\na/4.jpg 5\n")
    with pytest.raises(ManifestError, match=r"range.txt, line 2: label 3 outside \[0, 3\) \(3 such line"):
        read_manifest(path, num_classes=3)


def test_empty_and_missing_files(tmp_path):
    with pytest.raises(ManifestError, match="empty.txt: empty file"):
        read_manifest(_write(tmp_path / "empty.txt", ""))
    with pytest.raises(ManifestError, match="empty.txt.gz: empty file"):
        read_manifest(_write(tmp_path / "empty.txt.gz", ""))
    with pytest.raises(ManifestError, match="absent.txt: file not found"):
        read_manifest(tmp_path / "absent.txt")


def test_read_classnames_checks_count_and_blank_lines(tmp_path):
    path = _write(tmp_path / "names.txt", "tench\ngreat white shark\n")
    assert read_classnames(path, num_classes=2) == ("tench", "great white shark")
    with pytest.raises(ManifestError, match="2 class names, expected num_classes=3"):
        read_classnames(path, num_classes=3)
    with pytest.raises(ManifestError, match="blank.txt, line 2: empty class name"):
        read_classnames(_write(tmp_path / "blank.txt", "tench\n \ngoldfish\n"))


def test_read_class_counts(tmp_path):
    assert read_class_counts(_write(tmp_path / "c.txt", "5\n0\n12\n")).tolist() == [5, 0, 12]
    with pytest.raises(ManifestError, match="c2.txt, line 2: expected a non-negative integer"):
        read_class_counts(_write(tmp_path / "c2.txt", "5\n-1\n"))


# --------------------------------------------------------------------------- counts and groups
def test_class_counts_is_a_histogram_with_absent_classes():
    assert class_counts(np.array([2, 0, 2, 2]), 4).tolist() == [1, 0, 3, 0]
    with pytest.raises(ManifestError, match="num_classes=2"):
        class_counts(np.array([0, 2]), 2)


def test_group_sizes_thresholds_are_spec_a11():
    # many n > 100, medium 20 <= n <= 100, few n < 20: the boundaries 100 and 20 are medium.
    assert group_sizes(np.array([101, 100, 20, 19, 4980, 5])) == (2, 2, 2)


def test_missing_class_is_reported(tmp_path):
    manifest = read_manifest(_write(tmp_path / "m.txt", "a/1.jpg 0\nc/2.jpg 2\n"), num_classes=4)
    with pytest.raises(ManifestError, match=r"m.txt: 2 of 4 classes have no line \(first: label 1\)"):
        check_all_classes_present(manifest)


def test_class_folder_mismatch_names_line(tmp_path):
    manifest = read_manifest(_write(tmp_path / "f.txt", "train/n01/1.jpg 0\ntrain/n02/2.jpg 1\ntrain/n01/3.jpg 1\n"))
    check_class_folders(Manifest(manifest.source, manifest.paths[:2], manifest.labels[:2], 2), ("n01", "n02"), 1)
    with pytest.raises(ManifestError, match=r"f.txt, line 3: .*folder 'n02' \(1 such line"):
        check_class_folders(manifest, ("n01", "n02"), 1)


def test_class_folder_defaults_to_raw_label_for_inat(tmp_path):
    text = "train_val2018/Plantae/1/a.jpg 1\ntrain_val2018/Insecta/0/b.jpg 0\ntrain_val2018/Insecta/0/c.jpg 1\n"
    with pytest.raises(ManifestError, match="line 3"):
        check_class_folders(read_manifest(_write(tmp_path / "i.txt", text)), None, 2)


def test_missing_images_name_first_line_and_count(tmp_path):
    lines = [f"train/c{j % 2}/{j}.jpg {j % 2}" for j in range(6)]
    manifest = read_manifest(_write(tmp_path / "list.txt", "\n".join(lines) + "\n"))
    for j in (0, 1, 3, 5):
        (tmp_path / "root" / f"train/c{j % 2}").mkdir(parents=True, exist_ok=True)
        (tmp_path / "root" / f"train/c{j % 2}/{j}.jpg").write_bytes(b"")
    assert missing_images(manifest, tmp_path / "root") == [2, 4]
    with pytest.raises(ManifestError, match=r"list.txt, line 3: image .*train/c0/2.jpg not found \(2 of 6"):
        check_images_exist(manifest, tmp_path / "root")
    with pytest.raises(ManifestError, match=r"line 1: .*\(6 of 6"):
        check_images_exist(manifest, tmp_path / "nowhere")


# --------------------------------------------------------------------------- iNat labels (book: Method, 'Data lists')
def test_inat_labels_are_code_point_ranks():
    categories = [{"id": 0, "name": "Salix ×fragilis"}, {"id": 1, "name": "Salix alba"},
                  {"id": 2, "name": "Abies alba"}, {"id": 3, "name": "abies lowercase"}]
    classnames, label_map = inat_lift_labels(categories)
    # Code-point order: upper case < lower case < '×' (U+00D7); a locale-aware sort would differ.
    assert classnames == ("Abies alba", "Salix alba", "Salix ×fragilis", "abies lowercase")
    assert label_map.tolist() == [2, 1, 0, 3]
    with pytest.raises(ManifestError, match="index == id"):
        inat_lift_labels([{"id": 1, "name": "x"}])


def test_read_label_map_requires_a_permutation(tmp_path):
    assert read_label_map(_write(tmp_path / "ok.txt", "0 2\n1 0\n2 1\n")).tolist() == [2, 0, 1]
    with pytest.raises(ManifestError, match="not a permutation"):
        read_label_map(_write(tmp_path / "dup.txt", "0 1\n1 1\n"))
    with pytest.raises(ManifestError, match="count 0, 1, 2"):
        read_label_map(_write(tmp_path / "gap.txt", "0 0\n2 1\n"))


def test_remapped_applies_label_map(tmp_path):
    manifest = read_manifest(_write(tmp_path / "m.txt", "a 0\nb 2\nc 1\n"))
    assert manifest.remapped(np.array([2, 0, 1])).labels.tolist() == [2, 1, 0]
    with pytest.raises(ManifestError, match="2 entries for 3 classes"):
        manifest.remapped(np.array([1, 0]))


@pytest.mark.parametrize("name", ["train.txt", "train.txt.gz"])
def test_write_inat_manifest_from_official_json(tmp_path, name):
    annotations = {"images": [{"id": 7, "file_name": "train_val2018/Aves/2/x.jpg"},
                              {"id": 3, "file_name": "train_val2018/Plantae/0/y.jpg"}],
                   "annotations": [{"image_id": 3, "category_id": 0}, {"image_id": 7, "category_id": 2}]}
    (tmp_path / "train2018.json").write_text(json.dumps(annotations))
    manifest = read_manifest(write_inat_manifest(tmp_path / "train2018.json", tmp_path / name))
    assert manifest.paths == ("train_val2018/Aves/2/x.jpg", "train_val2018/Plantae/0/y.jpg")
    assert manifest.labels.tolist() == [2, 0]


# --------------------------------------------------------------------------- checksums
def test_sha256sums_detect_tampering_and_uncovered_files(tmp_path):
    for name in ("a.txt", "b.txt.gz"):
        _write(tmp_path / name, "x/1.jpg 0\n")
    write_sha256sums(tmp_path)
    verify_sha256sums(tmp_path)
    _write(tmp_path / "b.txt.gz", "x/1.jpg 1\n")
    with pytest.raises(ManifestError, match="SHA256SUMS, line 2: b.txt.gz"):
        verify_sha256sums(tmp_path)
    write_sha256sums(tmp_path)
    _write(tmp_path / "extra.txt", "")
    with pytest.raises(ManifestError, match=r"\['extra.txt'\] are not covered"):
        verify_sha256sums(tmp_path)


def test_git_blob_id_matches_git_for_plain_and_gzip(tmp_path):
    # `printf 'hello\n' | git hash-object --stdin` gives ce013625030ba8dba906f756967f9e9ca394464a.
    assert git_blob_id(_write(tmp_path / "h.txt", "hello\n")) == "ce013625030ba8dba906f756967f9e9ca394464a"
    assert git_blob_id(_write(tmp_path / "h.txt.gz", "hello\n")) == "ce013625030ba8dba906f756967f9e9ca394464a"


# --------------------------------------------------------------------------- user-supplied train lists
def _imagenet_like_counts() -> np.ndarray:
    """1,000 class counts with ImageNet-LT's summary: 115,846 lines, 5..1,280, groups 385/479/136."""
    counts = [1280] + [233] * 173 + [232] * 211 + [50] * 479 + [5] + [10] * 135
    return np.array(counts)


@pytest.fixture(scope="module")
def imagenet_train_lines() -> list[str]:
    """A synthetic list that passes every check of the ImageNet-LT training list (not the real file)."""
    config = load_dataset_config("imagenet_lt")
    wnids = read_classnames(config.path(config.class_folders), 1000)
    return [f"train/{wnids[j]}/{wnids[j]}_{k}.JPEG {j}"
            for j, n in enumerate(_imagenet_like_counts()) for k in range(n)]


def _list(tmp_path: Path, lines: list[str], name: str = "ImageNet_LT_train.txt") -> Path:
    return _write(tmp_path / name, "\n".join(lines) + "\n")


def _rejected(path: Path, cache: Path, match: str) -> str:
    with pytest.raises(ManifestError, match=match) as info:
        validate_user_manifest(path, "imagenet_lt", cache_dir=cache)
    message = str(info.value)
    assert LIFT_REPO in message and "ImageNet_LT_train.txt" in message  # says where the file comes from
    return message


def test_valid_list_is_accepted_and_pinned_plain_or_gzip(tmp_path, imagenet_train_lines):
    cache = tmp_path / "cache"
    first = validate_user_manifest(_list(tmp_path, imagenet_train_lines), "imagenet_lt", cache_dir=cache)
    assert first.first_use and first.matches_lift is False and len(first.manifest) == 115_846
    assert class_counts(first.manifest.labels, 1000).tolist() == _imagenet_like_counts().tolist()
    record = json.loads(first.record.read_text())
    assert record["sha256"] == first.sha256 and first.record == cache / "manifests" / "imagenet_lt-train.json"
    again = validate_user_manifest(_list(tmp_path, imagenet_train_lines, "copy.txt.gz"), "imagenet_lt",
                                   cache_dir=cache)
    assert not again.first_use and again.sha256 == first.sha256  # the text is pinned, not its encoding


def test_cache_location_defaults_to_ltlib_cache(tmp_path, monkeypatch, imagenet_train_lines):
    monkeypatch.setenv("LTLIB_CACHE", str(tmp_path / "env_cache"))
    checked = validate_user_manifest(_list(tmp_path, imagenet_train_lines), "imagenet_lt")
    assert checked.record == tmp_path / "env_cache" / "manifests" / "imagenet_lt-train.json"


def test_truncated_list_is_rejected(tmp_path, imagenet_train_lines):
    _rejected(_list(tmp_path, imagenet_train_lines[:-1]), tmp_path, "line count 115845, expected 115846")


def test_reordered_labels_are_caught_by_folders(tmp_path, imagenet_train_lines):
    lines = list(imagenet_train_lines)
    lines[0], lines[-1] = lines[0].rsplit(" ", 1)[0] + " 999", lines[-1].rsplit(" ", 1)[0] + " 0"
    _rejected(_list(tmp_path, lines), tmp_path, "line 1: 'train/n01440764/.*has label 999")


def test_changed_labels_with_matching_folders_are_caught_by_counts(tmp_path, imagenet_train_lines):
    # Move one image of the 5-image class (label 864) to class 0, folder included: only the counts tell.
    lines = list(imagenet_train_lines)
    index = next(i for i, line in enumerate(lines) if line.endswith(" 864"))
    lines[index] = lines[0].replace("_0.JPEG", "_extra.JPEG")
    _rejected(_list(tmp_path, lines), tmp_path, r"per-class counts .*'count_min': 4.*'count_min': 5")


def test_wrong_class_count_is_rejected(tmp_path, imagenet_train_lines):
    with_1001 = imagenet_train_lines[:-1] + ["train/n15075141/x.JPEG 1000"]
    _rejected(_list(tmp_path, with_1001), tmp_path, r"line 115846: label 1000 outside \[0, 1000\)")
    without_last_class = [line for line in imagenet_train_lines if not line.endswith(" 999")]
    without_last_class += imagenet_train_lines[:10]
    _rejected(_list(tmp_path, without_last_class), tmp_path, "1 of 1000 classes have no line")


def test_malformed_user_list_names_line(tmp_path, imagenet_train_lines):
    lines = list(imagenet_train_lines)
    lines[41] = "train/n01440764/n01440764_41.JPEG"
    _rejected(_list(tmp_path, lines), tmp_path, "line 42: expected '<relative/path> <label>'")


def test_changed_content_after_first_use_is_rejected(tmp_path, imagenet_train_lines):
    validate_user_manifest(_list(tmp_path, imagenet_train_lines), "imagenet_lt", cache_dir=tmp_path)
    shuffled = _list(tmp_path, imagenet_train_lines[::-1], "shuffled.txt")  # valid, but another file
    message = _rejected(shuffled, tmp_path, "differs from .* recorded in")
    Path(message.split("(delete ")[1].split(" to adopt")[0]).unlink()
    assert validate_user_manifest(shuffled, "imagenet_lt", cache_dir=tmp_path).first_use


def test_lift_copy_failing_a_check_blames_the_config(tmp_path, imagenet_train_lines):
    path = _list(tmp_path, imagenet_train_lines[:-1])
    config = load_dataset_config("imagenet_lt")
    train = replace(config.split("train"), lift_blob=git_blob_id(path)[:8])
    config = replace(config, splits=(train,) + tuple(s for s in config.splits if s.name != "train"))
    with pytest.raises(ManifestError, match="byte-identical to LIFT's copy, so the dataset config's"):
        validate_user_manifest(path, config, cache_dir=tmp_path)
    assert validate_user_manifest(_list(tmp_path, imagenet_train_lines), config, cache_dir=tmp_path).matches_lift \
        is False
