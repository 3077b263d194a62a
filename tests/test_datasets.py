"""Dataset registry, the shipped split files (book: Method, 'Data lists'), image datasets and the fixture."""

from __future__ import annotations

import filecmp
import json
import os
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from ltlib.config import config_path, from_dict
from ltlib.data import (MANIFEST_ROOT, DatasetConfig, ManifestDataset, build_split, class_counts, group_sizes,
                        inat_lift_labels, list_datasets, load_classnames, load_dataset_config, load_label_map,
                        load_split, make_fixture_dataset, read_class_counts, read_classnames, read_manifest,
                        test_transform, validate_user_manifest, verify_sha256sums)
from ltlib.data.manifest import build_public_manifests, git_blob_id, read_bytes, read_lines
from ltlib.errors import ConfigError, ManifestError
from ltlib.provenance import config_hash

# LIFT's split files as gzipped copies; present on the machines that built data_manifests/.
MANIFESTS_SRC = Path(os.environ.get("LTLIB_MANIFESTS_SRC", "/work/shared/manifests_src"))


# --------------------------------------------------------------------------- registry
def test_registry_lists_the_three_datasets_with_their_recipes():
    assert list_datasets() == ["imagenet_lt", "inat2018", "places_lt"]
    recipes = {name: load_dataset_config(name).recipe for name in list_datasets()}
    assert recipes == {"imagenet_lt": "lift", "places_lt": "lift", "inat2018": "lift_inat"}
    for recipe in set(recipes.values()):
        assert config_path("methods", recipe).is_file()


@pytest.mark.parametrize("name, classes, user_splits, shipped", [
    ("imagenet_lt", 1000, {"train"}, {"val", "test"}),
    ("places_lt", 365, set(), {"train", "val", "test"}),
    ("inat2018", 8142, {"train"}, {"test"}),
])
def test_which_splits_ship(name, classes, user_splits, shipped):
    config = load_dataset_config(name)
    assert config.num_classes == classes
    assert {s.name for s in config.splits if not s.shipped} == user_splits
    assert {s.name for s in config.splits if s.shipped} == shipped
    for spec in config.splits:
        assert spec.obtain and (not spec.shipped or config.path(spec.file).is_file())


def test_configs_are_frozen_hashable_and_validated():
    config = load_dataset_config("places_lt")
    assert hash(config) == hash(load_dataset_config("places_lt"))
    assert config_hash(config) == config_hash(load_dataset_config("places_lt"))
    with pytest.raises(AttributeError):
        config.num_classes = 10
    with pytest.raises(ConfigError, match="no split 'val'"):
        load_dataset_config("inat2018").split("val")
    spec = {"name": "train", "standard_name": "t.txt", "num_lines": 3, "count_min": 1, "count_max": 2}
    base = {"name": "d", "title": "D", "num_classes": 2, "manifest_dir": "/x", "classnames": "c.txt",
            "recipe": "lift", "image_layout": "-"}
    with pytest.raises(ConfigError, match="distinct"):
        from_dict(DatasetConfig, {**base, "splits": [spec, spec]})
    with pytest.raises(ConfigError, match="group_sizes must sum to 2"):
        from_dict(DatasetConfig, {**base, "splits": [{**spec, "group_sizes": [1, 0, 0]}]})
    with pytest.raises(ConfigError, match="unknown key"):
        from_dict(DatasetConfig, {**base, "splits": [{**spec, "lines": 3}]})


# --------------------------------------------------------------------------- the shipped files
@pytest.mark.parametrize("folder", ["ImageNet_LT", "Places_LT", "iNaturalist18"])
def test_sha256sums_cover_and_match_every_file(folder):
    verify_sha256sums(MANIFEST_ROOT / folder)


@pytest.mark.skipif(not MANIFESTS_SRC.is_dir(), reason="LIFT's source split files are not on this machine")
def test_committed_files_are_exactly_the_builders_output(tmp_path):
    build_public_manifests(MANIFESTS_SRC, tmp_path)
    for folder in ("ImageNet_LT", "Places_LT", "iNaturalist18"):
        names = sorted(p.name for p in (MANIFEST_ROOT / folder).iterdir())
        assert sorted(p.name for p in (tmp_path / folder).iterdir()) == names
        match, mismatch, errors = filecmp.cmpfiles(MANIFEST_ROOT / folder, tmp_path / folder, names, shallow=False)
        assert mismatch == [] and errors == []


@pytest.mark.parametrize("name", ["imagenet_lt", "places_lt", "inat2018"])
def test_every_shipped_split_passes_its_checks(name):
    config = load_dataset_config(name)
    for spec in config.splits:
        if spec.shipped:
            manifest = load_split(config, spec.name)
            assert len(manifest) == spec.num_lines and manifest.num_classes == config.num_classes


def test_imagenet_classnames_follow_lift_rule():
    names = load_classnames("imagenet_lt")
    assert names[:3] == ("tench", "goldfish", "great white shark")
    assert {n: c for n, c in Counter(names).items() if c > 1} == {"missile": 2, "sunglasses": 2}
    config = load_dataset_config("imagenet_lt")
    wnids = read_classnames(config.path(config.class_folders), 1000)
    assert wnids[0] == "n01440764" and len(set(wnids)) == 1000
    test = load_split(config, "test")
    assert test.paths[0].split("/")[1] == wnids[test.labels[0]]  # test images sit in val/<wnid>/


def test_places_counts_groups_and_log_prior_match_the_spec():
    config = load_dataset_config("places_lt")
    counts = class_counts(load_split(config, "train").labels, 365)
    assert counts.tolist() == read_class_counts(config.path(config.class_counts), 365).tolist()
    assert (counts.sum(), counts.max(), counts.min()) == (62_500, 4_980, 5)
    assert group_sizes(counts) == (131, 163, 71)  # computed from the shipped list
    log_prior = np.log(counts / counts.sum())
    assert log_prior.max() == pytest.approx(-2.530, abs=5e-4) and log_prior.min() == pytest.approx(-9.433, abs=5e-4)
    assert load_classnames(config)[:2] == ("airfield", "airplane_cabin")


def test_places_folders_differ_from_names_for_exactly_five_labels():
    config = load_dataset_config("places_lt")
    names, folders = load_classnames(config), read_classnames(config.path(config.class_folders), 365)
    swapped = {j: (names[j], folders[j]) for j in range(365) if names[j] != folders[j]}
    assert swapped == {116: ("desert-sand", "desert_road"), 117: ("desert-vegetation", "desert-sand"),
                       118: ("desert_road", "desert-vegetation"), 141: ("field-wild", "field_road"),
                       142: ("field_road", "field-wild")}


@pytest.fixture(scope="module")
def inat():
    config = load_dataset_config("inat2018")
    categories = json.loads(read_bytes(config.path("categories.json.gz")))
    raw = read_manifest(config.path(config.split("test").file), 8142)
    return config, categories, raw, load_split(config, "test")


def test_inat_every_class_has_three_test_images(inat):
    _, _, _, test = inat
    assert class_counts(test.labels, 8142).tolist() == [3] * 8142


def test_inat_labels_name_the_same_species_as_the_category_ids(inat):
    config, categories, raw, test = inat
    names = load_classnames(config)
    assert all(names[label] == categories[cid]["name"] for cid, label in zip(raw.labels.tolist(), test.labels.tolist()))
    assert load_label_map(config).tolist() == inat_lift_labels(categories)[1].tolist()
    assert names == inat_lift_labels(categories)[0]


def test_inat_known_lines_get_the_expected_lift_label(inat):
    config, categories, raw, test = inat
    names = load_classnames(config)
    by_name = {c["name"]: c["id"] for c in categories}
    for name, label in [("Abaeis nicippe", 0), ("Zygogramma signatipennis", 8141)]:
        lines = np.flatnonzero(raw.labels == by_name[name])
        assert len(lines) == 3 and set(test.labels[lines].tolist()) == {label}
    assert test.paths[0] == "train_val2018/Plantae/7291/9f8ecb39e5f767e39e9b28e34488f179.jpg"
    assert names[test.labels[0]] == categories[7291]["name"]
    salix = [j for j, n in enumerate(names) if n.startswith("Salix ")]
    assert names[salix[-1]] == "Salix ×fragilis" and salix == list(range(salix[0], salix[-1] + 1))


def test_inat_label_is_a_permutation_with_four_fixed_points():
    label_map = load_label_map("inat2018")
    assert sorted(label_map.tolist()) == list(range(8142))
    assert int((label_map == np.arange(8142)).sum()) == 4  # book: Method, 'Data lists'


def test_identity_label_map_elsewhere():
    assert load_label_map("imagenet_lt") is None and load_label_map("places_lt") is None


# --------------------------------------------------------------------------- user-supplied lists
def test_user_split_without_a_file_says_where_to_get_it(tmp_path):
    with pytest.raises(ManifestError, match="not shipped.*manifest_path.*iNaturalist18_train.txt.*train2018.json"):
        build_split("inat2018", "train", tmp_path)


def test_exact_class_counts_are_checked_where_shipped(tmp_path, monkeypatch):
    monkeypatch.setenv("LTLIB_CACHE", str(tmp_path / "cache"))
    config = load_dataset_config("places_lt")
    folders = read_classnames(config.path(config.class_folders), 365)
    lines = read_bytes(config.path(config.split("train").file)).decode().splitlines()
    counts = class_counts(read_manifest(config.path(config.split("train").file)).labels, 365)
    a, b = [j for j in range(365) if 30 <= counts[j] <= 90][:2]  # medium classes away from the boundaries
    index = next(i for i, line in enumerate(lines) if line.endswith(f" {a}"))
    lines[index] = f"train/{folders[b]}/moved.jpg {b}"  # consistent folder, same summary, other counts
    (tmp_path / "Places_LT_train.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(ManifestError, match=f"class {a} has {counts[a] - 1} lines, expected {counts[a]}"):
        validate_user_manifest(tmp_path / "Places_LT_train.txt", "places_lt")
    accepted = validate_user_manifest(config.path(config.split("train").file), "places_lt")
    assert accepted.first_use and accepted.matches_lift is None


# --------------------------------------------------------------------------- images and the fixture
@pytest.fixture(scope="module")
def fixture(tmp_path_factory):
    return make_fixture_dataset(tmp_path_factory.mktemp("fixture"))


def test_fixture_layout_and_manifests(fixture):
    assert fixture.num_classes == 4 and fixture.class_counts == (6, 4, 2, 1)
    train = read_manifest(fixture.manifests["train"], 4)
    assert class_counts(train.labels, 4).tolist() == [6, 4, 2, 1]
    assert train.paths[0] == f"train/{fixture.classnames[0]}/img_0000.jpg"
    assert read_manifest(fixture.manifests["test"]).paths[0].startswith(f"val/{fixture.classnames[0]}/")
    assert read_classnames(fixture.classnames_file, 4) == fixture.classnames
    assert len(set(fixture.classnames)) == 4


def test_fixture_builds_through_the_registry_path(fixture):
    train = build_split(fixture.config, "train", fixture.root)
    image, label = train[0]
    assert isinstance(image, Image.Image) and image.mode == "RGB" and image.size == (64, 48) and label == 0
    assert train.class_counts.tolist() == [6, 4, 2, 1] and train.classnames == fixture.classnames
    assert [len(build_split(fixture.config, s, fixture.root)) for s in ("val", "test")] == [8, 16]


def test_fixture_is_deterministic(tmp_path, fixture):
    again = make_fixture_dataset(tmp_path / "again")
    files = sorted(str(p.relative_to(fixture.root)) for p in fixture.root.rglob("*") if p.is_file())
    files.remove("dataset.yaml")  # names its own absolute root
    assert files == sorted(str(p.relative_to(again.root)) for p in again.root.rglob("*")
                           if p.is_file() and p.name != "dataset.yaml")
    assert filecmp.cmpfiles(fixture.root, again.root, files, shallow=False)[0] == files
    other = make_fixture_dataset(tmp_path / "other", seed=1)
    assert not filecmp.cmp(fixture.root / files[-1], other.root / files[-1], shallow=False)


def test_fixture_classes_are_learnable(tmp_path):
    fixture = make_fixture_dataset(tmp_path, num_classes=8, train_counts=(5, 4, 3, 3, 2, 2, 1, 1), test_per_class=5)
    def mean_colours(split):
        dataset = build_split(fixture.config, split, fixture.root)
        return np.stack([np.asarray(image, dtype=float).mean((0, 1)) for image, _ in dataset]), dataset.targets
    x, y = mean_colours("train")
    centroids = np.stack([x[y == c].mean(0) for c in range(8)])
    x_test, y_test = mean_colours("test")
    predictions = np.argmin(((x_test[:, None] - centroids[None]) ** 2).sum(-1), axis=1)
    assert (predictions == y_test).all()


def test_fixture_arguments_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="train_counts has 2 entries; it needs num_classes=3"):
        make_fixture_dataset(tmp_path, num_classes=3, train_counts=(2, 1))
    with pytest.raises(ConfigError, match="at least one training image"):
        make_fixture_dataset(tmp_path, num_classes=2, train_counts=(2, 0))


def test_dataset_converts_to_rgb_and_applies_the_transform(tmp_path):
    fixture = make_fixture_dataset(tmp_path, num_classes=2, train_counts=(1, 1), val_per_class=0, test_per_class=1)
    grey = fixture.root / "train" / fixture.classnames[1] / "img_0000.jpg"
    Image.new("L", (40, 30), 128).save(grey)
    manifest = read_manifest(fixture.manifests["train"], 2)
    image, label = ManifestDataset(manifest, fixture.root)[1]
    assert image.mode == "RGB" and label == 1 and np.asarray(image)[0, 0].tolist() == [128, 128, 128]
    crops, _ = ManifestDataset(manifest, fixture.root, test_transform(resolution=16, tte=True))[1]
    assert crops.shape == (5, 3, 16, 16)


def test_missing_images_are_reported_at_construction(tmp_path):
    fixture = make_fixture_dataset(tmp_path)
    for k in (0, 3):
        (fixture.root / "train" / fixture.classnames[0] / f"img_{k:04d}.jpg").unlink()
    with pytest.raises(ManifestError, match=r"train.txt, line 1: image .*img_0000.jpg not found \(2 of 13.*layout"):
        build_split(fixture.config, "train", fixture.root)


def test_data_loader_batches_five_crops(fixture):
    dataset = build_split(fixture.config, "test", fixture.root, test_transform(resolution=32, tte=True))
    images, labels = next(iter(DataLoader(dataset, batch_size=6, shuffle=False)))
    assert images.shape == (6, 5, 3, 32, 32) and labels.dtype == torch.int64
    assert labels.tolist() == [0, 0, 0, 0, 1, 1]


def test_readme_blob_ids_and_line_counts_match_the_files():
    readme = (MANIFEST_ROOT / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([^`]+)` \| verbatim \(blob `([0-9a-f]{8})`\) \| ([0-9,–]+) \|", readme, re.M)
    files = {p.name: p for p in MANIFEST_ROOT.glob("*/*.gz")}
    assert sorted(name for name, _, _ in rows) == sorted(files)
    for name, blob, lines in rows:
        assert git_blob_id(files[name]).startswith(blob)
        assert lines == "–" or len(read_lines(files[name])) == int(lines.replace(",", ""))
