"""Data as LIFT loads it (book: Method, 'Data lists', 'Test-time crops'): manifests, the dataset registry,
image datasets, transforms."""

from .datasets import (MANIFEST_ROOT, DatasetConfig, ManifestDataset, SplitSpec, UserManifest, build_split,
                       cache_root, check_split, list_datasets, load_classnames, load_dataset_config,
                       load_label_map, load_split, validate_user_manifest)
from .fixtures import FixtureDataset, make_fixture_dataset
from .manifest import (Manifest, check_all_classes_present, check_class_folders, check_images_exist,
                       class_counts, group_sizes, inat_lift_labels, missing_images, read_class_counts,
                       read_classnames, read_label_map, read_manifest, verify_sha256sums,
                       write_inat_manifest)
from .transforms import CLIP_MEAN, CLIP_STD, StackCrops, five_crop_boxes, test_transform, train_transform

__all__ = [
    "CLIP_MEAN", "CLIP_STD", "MANIFEST_ROOT", "DatasetConfig", "FixtureDataset", "Manifest", "ManifestDataset",
    "SplitSpec", "StackCrops", "UserManifest", "build_split", "cache_root", "check_all_classes_present",
    "check_class_folders", "check_images_exist", "check_split", "class_counts", "five_crop_boxes",
    "group_sizes", "inat_lift_labels", "list_datasets", "load_classnames", "load_dataset_config",
    "load_label_map", "load_split", "make_fixture_dataset", "missing_images", "read_class_counts",
    "read_classnames", "read_label_map", "read_manifest", "test_transform", "train_transform",
    "validate_user_manifest", "verify_sha256sums", "write_inat_manifest",
]
