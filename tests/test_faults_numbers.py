"""Fault cases (issue 14, item 4 and the numeric part of item 7): NaN and infinity never pass silently.
Every test here is a ``fault`` case counted on the book's reliability page."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from faults_helpers import Blobs, recipe, tiny_model
from ltlib.checkpoint import CHECKPOINT_NAME
from ltlib.engine import train
from ltlib.errors import LtlibError

pytestmark = pytest.mark.fault


class PoisonedBlobs(Blobs):
    """Blobs whose sample ``bad`` is NaN: the step that draws it has a NaN loss."""

    def __init__(self, bad: int) -> None:
        super().__init__()
        self.x[bad] = float("nan")


def _first_step_with(dataset_index: int, config) -> int:
    from ltlib.engine import epoch_batches
    for epoch in range(config.epochs):
        for k, batch in enumerate(epoch_batches(40, config.batch_size, config.seed, epoch)):
            if dataset_index in batch.tolist():
                return epoch * 5 + k + 1
    raise AssertionError("unreachable")


def test_nan_loss_stops_training_naming_the_step_and_never_completes(tmp_path):
    config = recipe(checkpoint_every=1)
    bad = next(i for i in range(40) if _first_step_with(i, config) >= 3)  # a few finite steps first
    step = _first_step_with(bad, config)
    with pytest.raises(LtlibError, match=rf"non-finite \(nan\) at step {step};"):
        train(tiny_model(), PoisonedBlobs(bad), nn.CrossEntropyLoss(), config, tmp_path, progress=False)
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert not any(r["kind"] == "end" for r in records)  # never reported complete
    saved = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)
    assert saved["position"]["global_step"] == step - 1  # the last finite state
    assert all(torch.isfinite(t).all() for t in saved["model"].values())


@pytest.mark.parametrize("field, value", [("lr", math.inf), ("lr", math.nan), ("tau", math.nan), ("tau", math.inf),
                                          ("momentum", math.nan), ("weight_decay", math.inf)])
def test_non_finite_recipe_values_are_refused(field, value):
    with pytest.raises(LtlibError, match=rf"invalid training parameter {field}=.*finite"):
        recipe(**{field: value})


def _runs_with(tmp_path, logits_by_backbone):
    from ltlib.cache import SplitOutputs
    from ltlib.runs import RunSpec, write_cached_run
    targets = np.arange(8) % 4
    return [write_cached_run(tmp_path, RunSpec("toy", name, "LA"), {"test": SplitOutputs(z, targets)}, [5, 3, 2, 1])
            for name, z in logits_by_backbone.items()]


def _good_logits(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(8, 4)).astype(np.float32)
    z[np.arange(8), np.arange(8) % 4] += 3  # every member right on every sample
    return z


def test_ensemble_with_a_diverged_member_is_refused_naming_it(tmp_path):
    from ltlib.stage2 import Stage2Options, run_stage2
    diverged = _good_logits(2)
    diverged[3] = np.nan
    runs = _runs_with(tmp_path, {"clip": _good_logits(0), "openclip": _good_logits(1), "metaclip": diverged})
    with pytest.raises(LtlibError, match=rf"run {runs[2]}, split 'test': logits hold non-finite values.*row 3"):
        run_stage2(runs, None, Stage2Options())


@pytest.mark.parametrize("rule", ["logit_sum", "prob_mean"])
def test_huge_weights_do_not_overflow(tmp_path, rule):
    """``--weights 1e308 1e308`` overflowed to inf (logit_sum: inf·z, prob_mean: w/Σw = 0) and scored at chance."""
    from ltlib.stage2 import Stage2Options, run_stage2
    runs = _runs_with(tmp_path, {"clip": _good_logits(0), "openclip": _good_logits(1)})
    table = run_stage2(runs, None, Stage2Options(rules=(rule,), weights=(1e308, 1e308))).table
    overall = table[(table["metric"] == "accuracy") & (table["num_models"] == 2)]["value"]
    assert overall.tolist() == [100.0]  # both members are right on every sample


@pytest.mark.parametrize("what", ["fit_prior", "calibrate_temperature"])
def test_nan_zero_shot_logits_are_named_by_prior_estimation(what):
    from ltlib import priors
    z = _good_logits(0).astype(np.float64)
    z[5, 2] = np.nan
    with pytest.raises(LtlibError, match=r"non-finite value.*NaN.*row 5, class 2"):
        getattr(priors, what)(z, np.arange(8) % 4)


def test_nan_in_the_prior_run_names_the_run_and_split(tmp_path):
    from ltlib.cache import SplitOutputs
    from ltlib.runs import RunSpec, write_cached_run
    from ltlib.stage2 import estimate_stage2_prior
    z = _good_logits(0)
    z[1, 1] = np.inf
    run = write_cached_run(tmp_path, RunSpec("toy", "clip", "zeroshot"), {"val": SplitOutputs(z, np.arange(8) % 4)},
                           [5, 3, 2, 1])
    with pytest.raises(LtlibError, match=rf"run {run}, split 'val'.*non-finite"):
        estimate_stage2_prior(run, "val")
