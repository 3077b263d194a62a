"""Fault cases (issue 14, items 1, 2, 8): nothing executable is loaded from disk; damaged files are refused
with one error naming the file. Every test here is a ``fault`` case counted on the book's reliability page."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from faults_helpers import error_lines, Blobs, Hostile, logits_npz, recipe, tiny_model
from ltlib.checkpoint import CHECKPOINT_NAME
from ltlib.engine import train
from ltlib.errors import LtlibError

pytestmark = pytest.mark.fault


def _interrupted_run(run_dir, **kw):
    return train(tiny_model(), Blobs(), nn.CrossEntropyLoss(), recipe(**kw), run_dir, stop_after_steps=2,
                 progress=False)


# --------------------------------------------------------------------------- item 1: checkpoints
def test_hostile_checkpoint_does_not_execute_code(tmp_path):
    marker = tmp_path / "MARKER"
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    torch.save({"config_hash": "x", "payload": Hostile(marker)}, run_dir / CHECKPOINT_NAME)
    with pytest.raises(LtlibError, match=rf"{CHECKPOINT_NAME}.*refused.*never executes code"):
        train(tiny_model(), Blobs(), nn.CrossEntropyLoss(), recipe(), run_dir, progress=False)
    assert not marker.exists()


def test_old_format_checkpoint_gets_a_migration_error(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    model = tiny_model()
    old = {"model": model.state_dict(), "optimizer": torch.optim.SGD(model.parameters(), lr=0.1).state_dict(),
           "scaler": None, "position": {"epoch": 0, "step_in_epoch": 1, "global_step": 1}, "config_hash": "x"}
    torch.save(old, run_dir / CHECKPOINT_NAME)
    with pytest.raises(LtlibError, match=rf"{CHECKPOINT_NAME}: checkpoint format 1 .* older version.*delete it"):
        train(tiny_model(), Blobs(), nn.CrossEntropyLoss(), recipe(), run_dir, progress=False)


@pytest.mark.parametrize("damage", ["truncated", "zero_bytes", "garbage"])
def test_corrupt_checkpoint_is_named(tmp_path, damage):
    _interrupted_run(tmp_path)
    path = tmp_path / CHECKPOINT_NAME
    data = path.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 2], "zero_bytes": b"", "garbage": b"\x00junk" * 50}[damage])
    with pytest.raises(LtlibError, match=rf"{path}: cannot read the checkpoint \(truncated or corrupt"):
        train(tiny_model(), Blobs(), nn.CrossEntropyLoss(), recipe(), tmp_path, progress=False)


def test_checkpoint_of_another_number_of_classes_is_refused(tmp_path):
    _interrupted_run(tmp_path)
    with pytest.raises(LtlibError, match="checkpoint was written for another model"):
        train(tiny_model(num_classes=3), Blobs(num_classes=3), nn.CrossEntropyLoss(), recipe(), tmp_path,
              progress=False)


# --------------------------------------------------------------------------- item 2: crafted logits files
def _cached_run(root, logits, targets, compressed=False):
    """A complete stage-1 run whose test split is the given arrays, written as a crafted file would be."""
    from ltlib.cache import SplitOutputs, split_path
    from ltlib.runs import RunSpec, write_cached_run
    good = SplitOutputs(np.zeros((4, 2), np.float32), np.arange(4) % 2)
    run_dir = write_cached_run(root, RunSpec("toy", "clip", "LA"), {"test": good, "val": good}, [3, 1])
    path = split_path(run_dir, "test")
    path.unlink()
    logits_npz(path, {"logits": logits, "targets": targets}, compressed)
    return run_dir


def _object_run(tmp_path, member, compressed):
    arrays = {"logits": np.zeros((4, 2), np.float32), "targets": np.arange(4, dtype=np.int64) % 2}
    hostile = np.empty(arrays[member].shape, dtype=object)
    hostile[...] = 7
    arrays[member] = hostile
    return _cached_run(tmp_path / "runs", **arrays, compressed=compressed)


def test_object_dtype_targets_file_does_not_crash_adjust(tmp_path):
    """Object targets in a stored member were memory-mapped as raw pointers: a segmentation fault (exit 139),
    hence a separate process."""
    from faults_helpers import run_python
    run_dir = _object_run(tmp_path, "targets", compressed=False)
    done = run_python(f"import sys; from ltlib.cli import main; sys.exit(main(['adjust', '--runs', '{run_dir}', "
                      f"'--no-prior', '--out', '{tmp_path / 'out'}']))", cwd=tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"{run_dir}" in done.stderr and "targets" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("member, compressed", [("logits", False), ("logits", True), ("targets", True)])
def test_object_dtype_logits_file_is_refused_by_adjust(tmp_path, capsys, member, compressed):
    from ltlib.cli import main
    run_dir = _object_run(tmp_path, member, compressed)
    assert main(["adjust", "--runs", str(run_dir), "--no-prior", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert str(run_dir) in err and member in err and len(error_lines(err)) == 1


def test_pickled_logits_do_not_execute_code(tmp_path):
    from ltlib.stage2 import read_logits
    marker = tmp_path / "MARKER"
    hostile = np.empty((4, 2), dtype=object)
    hostile[0, 0] = Hostile(marker)
    run_dir = _cached_run(tmp_path / "runs", hostile, np.arange(4) % 2, compressed=True)
    with pytest.raises(LtlibError, match="logits"):
        read_logits(run_dir, "test")
    assert not marker.exists()


@pytest.mark.parametrize("bad", ["structured", "wrong_kind", "short_data"])
def test_logits_member_of_wrong_layout_is_refused(tmp_path, bad):
    from ltlib.stage2 import read_logits
    logits = {"structured": np.zeros(4, dtype=[("a", "<f4"), ("b", "<f4")]),
              "wrong_kind": np.zeros((4, 2), dtype=np.int32),
              "short_data": np.zeros((4, 2), np.float32)}[bad]
    run_dir = _cached_run(tmp_path / "runs", logits, np.arange(4) % 2)
    if bad == "short_data":  # declare 40 rows in the header but keep the data of 4
        from ltlib.cache import split_path
        path = split_path(run_dir, "test")
        raw = path.read_bytes().replace(b"(4, 2)", b"(40, 2)", 1)
        path.write_bytes(raw)
    with pytest.raises(LtlibError, match=rf"{run_dir}.*logits"):
        read_logits(run_dir, "test")
