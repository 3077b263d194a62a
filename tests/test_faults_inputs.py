"""Fault cases (issue 14, items 6 and 7): inputs are not taken on trust. Paths stay inside their roots, lists
are checked line by line, options are validated by type and range when parsed. Every test here is a
``fault`` case counted on the book's reliability page."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from ltlib.errors import LtlibError

pytestmark = pytest.mark.fault


@pytest.fixture(scope="module")
def fixture(tmp_path_factory):
    from ltlib.data import make_fixture_dataset
    return make_fixture_dataset(tmp_path_factory.mktemp("data"), num_classes=3, train_counts=(3, 2, 1),
                                val_per_class=1, test_per_class=1, image_size=(16, 12))


# --------------------------------------------------------------------------- item 6: paths and lists
@pytest.mark.parametrize("image", ["../outside.jpg", "train/../../outside.jpg", "/etc/passwd", "train//a.jpg"])
def test_manifest_paths_stay_under_the_data_root(tmp_path, image):
    from ltlib.data import read_manifest
    (tmp_path / "list.txt").write_text(f"train/a/ok.jpg 0\n{image} 1\n")
    with pytest.raises(LtlibError, match=r"list.txt, line 2: image path .* must be relative to the data root"):
        read_manifest(tmp_path / "list.txt")


@pytest.mark.parametrize("name", ["../../x", "a/b", "..", ".hidden"])
def test_backbone_names_cannot_leave_the_runs_root(name):
    from ltlib.runs import RunSpec
    with pytest.raises(LtlibError, match=r"backbone name .* cannot be a run folder name"):
        RunSpec("toy", name, "LA").directory("runs")


def test_a_backbone_yaml_named_outside_the_runs_root_is_refused_by_train(fixture, tmp_path, capsys):
    from ltlib.cli import main
    yaml_file = tmp_path / "evil.yaml"
    yaml_file.write_text("name: ../../escaped\narch: ViT-B-16\n")
    code = main(["train", "--dataset", str(fixture.config), "--data-root", str(fixture.root), "--backbone",
                 str(yaml_file), "--random-init", "--runs-root", str(tmp_path / "runs"), "--no-progress"])
    assert code == 2 and "cannot be a run folder name" in capsys.readouterr().err
    assert not any(p.name.startswith("escaped") for p in tmp_path.rglob("*"))


def test_validate_manifest_refuses_a_byte_order_mark(fixture, tmp_path, capsys):
    from ltlib.cli import main
    with_bom = tmp_path / "train.txt"
    with_bom.write_bytes(b"\xef\xbb\xbf" + fixture.manifests["train"].read_bytes())
    code = main(["validate-manifest", "--dataset", str(fixture.config), "--file", str(with_bom),
                 "--cache-dir", str(tmp_path / "cache")])
    assert code == 2 and "line 1: starts with a byte-order mark" in capsys.readouterr().err


def test_duplicate_manifest_lines_are_refused(tmp_path):
    from ltlib.data import read_manifest
    (tmp_path / "list.txt").write_text("train/a/1.jpg 0\ntrain/b/2.jpg 1\ntrain/a/1.jpg 0\n")
    with pytest.raises(LtlibError, match=r"list.txt, line 3: image 'train/a/1.jpg' is listed again \(first on line 1\)"):
        read_manifest(tmp_path / "list.txt")


def test_two_processes_pinning_a_list_at_once_cannot_both_be_first(fixture, tmp_path):
    """Eight threads pin eight different lists at the same moment: exactly one may record its SHA-256."""
    from ltlib.data.datasets import _pin_sha256
    spec = __import__("ltlib.data", fromlist=["load_dataset_config"]).load_dataset_config(fixture.config).split("train")
    for attempt in range(5):
        barrier, results = threading.Barrier(8), []

        def pin(k: int) -> None:
            barrier.wait()
            try:
                results.append(_pin_sha256(fixture.manifests["train"], f"{k:064x}", spec, "fixture",
                                           tmp_path / f"cache{attempt}")[1])
            except LtlibError:
                results.append("refused")
        threads = [threading.Thread(target=pin, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results.count(True) == 1 and results.count("refused") == 7
