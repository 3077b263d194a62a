"""Fault cases (issue 14, items 1, 2, 8): nothing executable is loaded from disk; damaged files are refused
with one error naming the file. Every test here is a ``fault`` case counted on the book's reliability page."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from faults_helpers import Blobs, Hostile, logits_npz, recipe, tiny_model
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
