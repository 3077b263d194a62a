"""Fault cases (issue 14, item 3): finished results are never reused for other data or models, and runtime-only
settings never restart a run. Every test here is a ``fault`` case counted on the book's reliability page."""

from __future__ import annotations

import shutil

import pytest
import torch
from torch import nn

from faults_helpers import Blobs, flat, recipe, tiny_model
from ltlib.engine import train
from ltlib.errors import LtlibError

pytestmark = pytest.mark.fault


class Stop(Exception):
    """Raised by the backbone loader: the test only needs what run_stage1 does before building a model."""


def _no_backbone(name):
    raise Stop(name)


def _complete_run(fixture, root, data_root=None):
    """A stage-1 run of the fixture made by run_stage1 up to the model, then recorded complete."""
    import numpy as np
    from ltlib.cache import SplitOutputs
    from ltlib.runs import RunSpec, run_stage1, write_cached_run
    from ltlib.tasks import build_task
    task = build_task(fixture.config, data_root or fixture.root)
    spec = RunSpec(task.key, "clip", "LA", 0, recipe())
    with pytest.raises(Stop):
        run_stage1(spec, task, _no_backbone, root, progress=False)
    out = SplitOutputs(np.zeros((6, 3), np.float32), np.arange(6) % 3)
    write_cached_run(root, spec, {"val": out, "test": out}, task.class_counts, task.classnames)
    return spec


def _rerun(fixture, spec, root, data_root=None, config=None):
    from ltlib.runs import run_stage1
    from ltlib.tasks import build_task
    task = build_task(config or fixture.config, data_root or fixture.root)
    return run_stage1(spec, task, _no_backbone, root, progress=False)


@pytest.fixture
def fixture(tmp_path):
    from ltlib.data import make_fixture_dataset
    return make_fixture_dataset(tmp_path / "data", num_classes=3, train_counts=(3, 2, 1), val_per_class=2,
                                test_per_class=2, image_size=(16, 12))


def test_a_complete_run_is_reused_for_the_same_inputs(fixture, tmp_path):
    spec = _complete_run(fixture, tmp_path / "runs")
    assert _rerun(fixture, spec, tmp_path / "runs") == spec.directory(tmp_path / "runs")  # loader never called


def test_another_data_root_is_not_served_old_results(fixture, tmp_path):
    spec = _complete_run(fixture, tmp_path / "runs")
    moved = tmp_path / "other_root"
    shutil.copytree(fixture.root, moved)
    with pytest.raises(LtlibError, match=rf"data.splits.test.data_root = '{fixture.root}'.*'{moved}'"):
        _rerun(fixture, spec, tmp_path / "runs", data_root=moved)


def test_a_changed_train_list_is_not_served_old_results(fixture, tmp_path):
    spec = _complete_run(fixture, tmp_path / "runs")
    train_list = fixture.manifests["train"]
    lines = train_list.read_text().splitlines()
    train_list.write_text("\n".join(lines[::-1]) + "\n")  # same images and counts, another list
    with pytest.raises(LtlibError, match=r"data.splits.train.sha256 = '[0-9a-f]{64}', but this call has"):
        _rerun(fixture, spec, tmp_path / "runs")


def test_another_dataset_yaml_with_the_same_name_is_not_served_old_results(fixture, tmp_path):
    from ltlib.data import make_fixture_dataset
    spec = _complete_run(fixture, tmp_path / "runs")
    other = make_fixture_dataset(tmp_path / "data2", num_classes=3, train_counts=(4, 2, 1), val_per_class=2,
                                 test_per_class=2, image_size=(16, 12))
    with pytest.raises(LtlibError,
                       match=r"was made with data.class_counts = \[3, 2, 1\], but this call has \[4, 2, 1\]"):
        _rerun(other, spec, tmp_path / "runs")


def test_another_backbone_weights_file_is_not_served_old_results(fixture, tmp_path):
    from ltlib.runs import run_stage1
    from ltlib.tasks import build_task
    task = build_task(fixture.config, fixture.root)
    spec = _complete_run(fixture, tmp_path / "runs")
    with pytest.raises(LtlibError, match=r"backbone.file_sha256 = None, but this call has 'abab"):
        run_stage1(spec, task, _no_backbone, tmp_path / "runs", progress=False,
                   backbone_identity={"file_sha256": "ab" * 32})


def test_a_checkpoint_of_another_backbone_with_the_same_recipe_is_refused(tmp_path):
    def lift_like(frozen_seed: int) -> nn.Module:
        model = tiny_model()
        torch.manual_seed(frozen_seed)
        backbone = nn.Linear(6, 6)
        backbone.requires_grad_(False)
        return nn.Sequential(backbone, model)
    train(lift_like(1), Blobs(), nn.CrossEntropyLoss(), recipe(), tmp_path, stop_after_steps=2, progress=False)
    with pytest.raises(LtlibError, match="checkpoint was written for another model"):
        train(lift_like(2), Blobs(), nn.CrossEntropyLoss(), recipe(), tmp_path, progress=False)


def test_train_into_a_used_folder_with_another_model_is_refused(tmp_path):
    train(tiny_model(), Blobs(), nn.CrossEntropyLoss(), recipe(), tmp_path, progress=False)  # complete
    other = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 4))
    with pytest.raises(LtlibError, match="checkpoint was written for another model"):
        train(other, Blobs(), nn.CrossEntropyLoss(), recipe(), tmp_path, progress=False)


@pytest.mark.parametrize("changes", [{"num_workers": 1}, {"checkpoint_every": 3}, {"log_every": 5},
                                     {"micro_batch_size": 4}, {"eval_batch_size": 7}])
def test_runtime_settings_resume_the_run(tmp_path, changes):
    from ltlib.runs import RunSpec
    assert RunSpec("t", "clip", "LA", 0, recipe()).directory("r") == \
        RunSpec("t", "clip", "LA", 0, recipe(**changes)).directory("r")
    full = tiny_model()
    train(full, Blobs(), nn.CrossEntropyLoss(), recipe(), tmp_path / "full", progress=False)
    cut = tiny_model()
    train(cut, Blobs(), nn.CrossEntropyLoss(), recipe(), tmp_path / "cut", stop_after_steps=3, progress=False)
    resumed = tiny_model(seed=5)
    result = train(resumed, Blobs(), nn.CrossEntropyLoss(), recipe(**changes), tmp_path / "cut", progress=False)
    assert result.status == "completed"
    log = (tmp_path / "cut" / "log.jsonl").read_text()
    assert '"resumed_from": {"epoch": 0, "global_step": 3, "step_in_epoch": 3}' in log
    # Micro-batches sum the same gradient in another order: equal up to float32 rounding of a few
    # accumulated terms (|params| < 10, so 1e-5 is a few ulps times the number of steps); else bit-identical.
    tol = 1e-5 if "micro_batch_size" in changes else 0.0
    assert torch.allclose(flat(full), flat(resumed), rtol=0, atol=tol)
