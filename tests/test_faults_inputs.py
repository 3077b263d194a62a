"""Fault cases (issue 14, items 6 and 7): inputs are not taken on trust. Paths stay inside their roots, lists
are checked line by line, options are validated by type and range when parsed. Every test here is a
``fault`` case counted on the book's reliability page."""

from __future__ import annotations

import numpy as np
import pytest

from faults_helpers import error_lines
from ltlib.errors import LtlibError

pytestmark = pytest.mark.fault
# Small runs, so that a command that is not refused (as before these checks existed) ends in seconds.
SMALL = ["epochs=1", "batch_size=2", "micro_batch_size=1", "max_steps=1", "num_workers=0", "eval_batch_size=8",
         "checkpoint_every=0", "log_every=1", "tte=false"]


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
                 str(yaml_file), "--random-init", "--runs-root", str(tmp_path / "runs"), "--no-progress",
                 "--set", *SMALL])
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
    with pytest.raises(LtlibError,
                       match=r"list.txt, line 3: image 'train/a/1.jpg' is listed again \(first on line 1\)"):
        read_manifest(tmp_path / "list.txt")


def _pin(args) -> object:
    from ltlib.data import load_dataset_config
    from ltlib.data.datasets import _pin_sha256
    barrier, config, manifest, digest, cache = args
    spec = load_dataset_config(config).split("train")
    barrier.wait()
    try:
        return _pin_sha256(manifest, digest, spec, "fixture", cache)[1]
    except LtlibError:
        return "refused"


def test_two_processes_pinning_a_list_at_once_cannot_both_be_first(fixture, tmp_path):
    """Eight processes, released together, pin eight different lists: exactly one may record its SHA-256,
    the seven others must be refused (five rounds, each in a fresh cache)."""
    import multiprocessing
    context = multiprocessing.get_context("fork")
    for attempt in range(5):
        barrier = context.Manager().Barrier(8)
        jobs = [(barrier, str(fixture.config), fixture.manifests["train"], f"{k:064x}", tmp_path / f"c{attempt}")
                for k in range(8)]
        with context.Pool(8) as pool:
            results = pool.map(_pin, jobs)
        assert results.count(True) == 1 and results.count("refused") == 7, results


# --------------------------------------------------------------------------- item 7: silently wrong values
def test_16_bit_png_is_scaled_not_saturated(tmp_path):
    from PIL import Image
    from ltlib.data import Manifest, ManifestDataset
    wide = (np.arange(12 * 16).reshape(12, 16) * 300).astype(np.uint16)  # 0 … 57,300 of 65,535
    (tmp_path / "train").mkdir()
    Image.fromarray(wide).save(tmp_path / "train" / "g.png")
    manifest = Manifest(tmp_path / "list.txt", ("train/g.png",), np.zeros(1, np.int64), 1)
    image, _ = ManifestDataset(manifest, tmp_path)[0]
    rgb = np.asarray(image)
    # 8-bit value = round(v / 257) (65,535 / 255 = 257 exactly), the same in the three channels.
    assert rgb.shape == (12, 16, 3) and np.array_equal(rgb[..., 0], np.rint(wide / 257).astype(np.uint8))
    assert np.array_equal(rgb[..., 0], rgb[..., 2])


@pytest.mark.parametrize("text, value", [("lr=1e-3", 0.001), ("lr=5E-4", 0.0005),
                                         ("template=a #{} photo", "a #{} photo")])
def test_set_values_are_read_as_written(text, value):
    from ltlib.cli import parse_overrides
    key = text.split("=")[0]
    assert parse_overrides([text]) == {key: value}


@pytest.mark.parametrize("override, field", [("epochs=2.5", "epochs"), ("tte=maybe", "tte"),
                                             ("checkpoint_every=-5", "checkpoint_every"), ("tau=-1", "tau"),
                                             ("lr=.inf", "lr"), ("tau=.nan", "tau"), ("batch_size=true", "batch_size"),
                                             ("num_workers=-1", "num_workers")])
def test_bad_set_values_are_refused_at_parse_time(fixture, tmp_path, capsys, override, field):
    from ltlib.cli import main
    code = main(["train", "--dataset", str(fixture.config), "--data-root", str(fixture.root), "--backbone", "clip",
                 "--random-init", "--runs-root", str(tmp_path / "runs"), "--no-progress", "--set", *SMALL, override])
    err = capsys.readouterr().err
    assert code == 2 and len(error_lines(err)) == 1
    assert f"override: {field} = " in err or f"invalid training parameter {field}=" in err  # type, or range
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("override, option", [("seed=5", "--seed"), ("loss=CE", "--method")])
def test_set_of_a_value_owned_by_an_option_is_refused(fixture, tmp_path, capsys, override, option):
    from ltlib.cli import main
    code = main(["train", "--dataset", str(fixture.config), "--data-root", str(fixture.root), "--backbone", "clip",
                 "--random-init", "--runs-root", str(tmp_path / "runs"), "--no-progress", "--set", *SMALL, override])
    assert code == 2 and f"is given by {option}, not --set" in capsys.readouterr().err


def test_an_unknown_device_is_refused(fixture, tmp_path, capsys):
    from ltlib.cli import main
    from ltlib.distributed import init_distributed
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--dataset", str(fixture.config), "--data-root", str(fixture.root), "--backbone", "clip",
              "--device", "tpu"])
    assert exit_info.value.code == 2 and "invalid choice: 'tpu'" in capsys.readouterr().err
    with pytest.raises(LtlibError, match="device 'tpu': expected 'cpu' or 'cuda'"):
        init_distributed("tpu")
