"""End to end through the library (issue 2): full-size ViT-B/16 with random weights under two backbone names, a
JPEG fixture in LIFT's manifest format → 2 AdaptFormer + LA steps → five-crop TTE → cached logits → GLA prior
→ backdoor adjustment; plus the real-dataset task builder and the engine's compile option."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from ltlib.backbones import build_backbone
from ltlib.cache import load_split
from ltlib.checkpoint import CHECKPOINT_NAME, load_trainable_state
from ltlib.data import load_dataset_config, make_fixture_dataset, read_manifest
from ltlib.engine import train
from ltlib.errors import ConfigError, ManifestError
from ltlib.metrics import p_groups
from ltlib.model import build_lift_model
from ltlib.recipes import TrainConfig, load_recipe
from ltlib.runs import RunSpec, estimate_run_prior, load_run, run_stage1
from ltlib.stage2 import ALL, Stage2Options, run_stage2, write_stage2
from ltlib.tasks import balanced_subset, build_task, task_key

pytestmark = pytest.mark.slow
BACKBONES = {"clip": 11, "openclip": 22}  # name -> random-init seed (two different random ViT-B/16s)
SMALL = dict(epochs=1, batch_size=2, micro_batch_size=1, max_steps=2, num_workers=0, eval_batch_size=8,
             checkpoint_every=0, log_every=1)


@pytest.fixture(scope="module")
def fixture(tmp_path_factory):
    return make_fixture_dataset(tmp_path_factory.mktemp("data"), num_classes=3, train_counts=(3, 2, 1),
                                val_per_class=1, test_per_class=1, image_size=(40, 32))


@pytest.fixture(scope="module")
def backbones():
    return {name: build_backbone(name, random_init=True, seed=seed) for name, seed in BACKBONES.items()}


@pytest.fixture(scope="module")
def chain(fixture, backbones, tmp_path_factory):
    """Stage 1 through ``run_stage1``: LA for both backbones, zero-shot for the one whose prior gives P-groups."""
    recipe = load_recipe("lift", **SMALL)
    task = build_task(fixture.config, fixture.root, recipe=recipe)
    root = tmp_path_factory.mktemp("runs")
    runs = {(name, method): run_stage1(RunSpec(task.key, name, method, 0, recipe), task, backbones.__getitem__,
                                       root, progress=False)
            for name, method in (("clip", "zeroshot"), ("clip", "LA"), ("openclip", "LA"))}
    return {"task": task, "recipe": recipe, "root": root, "runs": runs}


# --------------------------------------------------------------------------- stage 1
def test_stage1_runs_are_complete_with_cached_logits_and_features(chain):
    for (name, method), run_dir in chain["runs"].items():
        record = load_run(run_dir)
        assert (record["status"], record["backbone"], record["method"]) == ("complete", name, method)
        assert record["class_counts"] == [3, 2, 1] and record["task_info"]["test_tte"] is True
        for split in ("val", "test"):
            out = load_split(run_dir, split)
            assert out.logits.shape == (3, 3) and out.features.shape == (3, 768)
            assert out.targets.tolist() == [0, 1, 2]
    log = [json.loads(line) for line in (chain["runs"]["clip", "LA"] / "log.jsonl").read_text().splitlines()]
    assert [r["global_step"] for r in log if r["kind"] == "step"] == [1, 2]
    assert log[0]["config"]["micro_batch_size"] == 1 and log[-1]["status"] == "completed"


def test_cached_test_logits_are_the_five_crop_mean_of_the_fine_tuned_model(chain, backbones):
    run_dir, task, recipe = chain["runs"]["clip", "LA"], chain["task"], chain["recipe"]
    model = build_lift_model(backbones["clip"], task.classnames, head_init="random", scale=recipe.cosine_scale)
    state = torch.load(run_dir / CHECKPOINT_NAME, map_location="cpu", weights_only=False)["model"]
    load_trainable_state(model, state)
    assert any(float(a.up_proj.weight.detach().abs().max()) > 0 for a in model.adapters)  # trained: up_proj starts at 0
    crops, label = task.eval_sets["test"][2]
    assert crops.shape == (5, 3, 224, 224) and label == 2  # five-crop TTE (book: Method, 'Test-time crops')
    with torch.no_grad():
        per_crop = model(crops)  # [5, C]: each crop is an image of its own
    cached = load_split(run_dir, "test").logits[2]
    assert np.allclose(per_crop.mean(0).numpy(), cached, atol=1e-4)
    assert not np.allclose(per_crop[0].numpy(), cached, atol=1e-4)  # the crops do differ
    zeroshot = load_split(chain["runs"]["clip", "zeroshot"], "test").logits
    assert not np.allclose(zeroshot, load_split(run_dir, "test").logits)


def test_a_complete_run_is_reused_not_recomputed(chain, backbones):
    run_dir = chain["runs"]["openclip", "LA"]
    before = (run_dir / "run.json").stat().st_mtime_ns

    def must_not_build(name):
        raise AssertionError("a complete run was recomputed")

    again = run_stage1(RunSpec(chain["task"].key, "openclip", "LA", 0, chain["recipe"]), chain["task"],
                       must_not_build, chain["root"], progress=False)
    assert again == run_dir and (run_dir / "run.json").stat().st_mtime_ns == before


# --------------------------------------------------------------------------- prior and stage 2
def test_prior_from_the_zero_shot_run(chain):
    prior = estimate_run_prior(chain["runs"]["clip", "zeroshot"])
    assert prior.shape == (3,) and np.all(prior > 0) and prior.sum() == pytest.approx(1.0)
    assert p_groups(prior).sizes == {"many": 1, "medium": 1, "few": 1}


def test_backdoor_adjustment_over_the_two_backbones(chain, tmp_path):
    la = [chain["runs"][name, "LA"] for name in BACKBONES]
    result = run_stage2(la, chain["runs"]["clip", "zeroshot"], Stage2Options(subsets=True))
    table = result.table
    z = [load_split(d, "test") for d in la]
    targets = z[0].targets
    sums = z[0].logits + z[1].logits
    probs = sum(np.exp(o.logits) / np.exp(o.logits).sum(1, keepdims=True) for o in z)
    for rule, scores in (("logit_sum", sums), ("prob_mean", probs)):
        overall = table[(table["combination"] == "clip+openclip") & (table["rule"] == rule)
                        & (table["metric"] == "accuracy")]["value"]
        assert float(overall.iloc[0]) == pytest.approx(100 * np.mean(scores.argmax(1) == targets))
    # Training counts 3 / 2 / 1 are all below 20: every class is D-few, D-many and D-medium are empty.
    d_rows = table[(table["metric"] == "mean_class_accuracy") & (table["p_group"] == ALL)]
    by_group = d_rows.groupby("d_group")["value"].apply(list)
    assert all(np.isnan(by_group["many"])) and all(np.isnan(by_group["medium"]))
    assert by_group["few"] == by_group[ALL]
    cells = table[(table["d_group"] == "few") & (table["p_group"] != ALL)]
    assert set(cells["num_classes"]) == {1}
    paths = write_stage2(result, tmp_path)
    assert json.loads(paths["json"].read_text())["prior"]["runs"] == [str(chain["runs"]["clip", "zeroshot"])]


# --------------------------------------------------------------------------- the task builder
def test_task_builder_applies_lift_transforms_and_val_sources(fixture):
    task = build_task(fixture.config, fixture.root, recipe=load_recipe("lift", resolution=64, tte_expand=8))
    assert task.key == "fixture" and task.classnames == fixture.classnames
    assert task.class_counts.tolist() == [3, 2, 1]
    assert task.train[0][0].shape == (3, 64, 64)  # RandomResizedCrop
    assert task.eval_sets["val"][0][0].shape == (1, 3, 64, 64)  # single centre crop for GLA and kNN
    assert task.eval_sets["test"][0][0].shape == (5, 3, 64, 64)  # five-crop TTE
    no_tte = build_task(fixture.config, fixture.root, recipe=load_recipe("lift", resolution=64, tte=False))
    assert no_tte.eval_sets["test"][0][0].shape == (1, 3, 64, 64)
    subset = build_task(fixture.config, fixture.root, val_source="train_subset")
    assert subset.key == "fixture-val_train_subset" and subset.info["val_source"] == "train_subset"
    assert sorted(subset.eval_sets["val"].targets.tolist()) == [0, 1, 2]  # rarest class has 1 image
    on_test = build_task(fixture.config, fixture.root, val_source="test")
    assert on_test.eval_sets["val"].manifest.paths == on_test.eval_sets["test"].manifest.paths


def test_task_keys_and_refusals(fixture):
    assert task_key("places_lt") == "places_lt" and task_key("inat2018") == "inat2018"
    assert task_key("inat2018", "test") == "inat2018-val_test"
    with pytest.raises(ConfigError, match="ships no val list"):
        task_key("inat2018", "val")
    with pytest.raises(ConfigError, match="val_source='nope'"):
        build_task(fixture.config, fixture.root, val_source="nope")
    with pytest.raises(ManifestError, match="ImageNet_LT_train.txt"):
        build_task("imagenet_lt", fixture.root)
    assert load_dataset_config("inat2018").recipe == "lift_inat"


def test_balanced_subset_keeps_per_class_lines_in_file_order(fixture):
    manifest = read_manifest(fixture.manifests["train"])
    picks = [balanced_subset(manifest, 1, seed) for seed in range(6)]
    for subset in picks:
        assert subset.labels.tolist() == [0, 1, 2] and set(subset.paths) <= set(manifest.paths)
    assert len({p.paths for p in picks}) > 1  # the seed decides which lines
    assert balanced_subset(manifest, 1, 3).paths == picks[3].paths
    with pytest.raises(ConfigError, match="rarest has 1"):
        balanced_subset(manifest, 2)


# --------------------------------------------------------------------------- engine speed option
class _Blobs(torch.utils.data.Dataset):
    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.x, self.y = torch.randn(24, 6, generator=g), torch.arange(24) % 3

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        return self.x[i] + 0.1 * torch.randn(6), self.y[i]


@pytest.mark.parametrize("backend", ["aot_eager"])  # dynamo tracing + AOT autograd, no C++ toolchain needed
def test_compiled_training_equals_eager_training(tmp_path, backend):
    def model() -> nn.Module:
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))

    cfg = TrainConfig(epochs=2, batch_size=8, micro_batch_size=4, lr=0.1, num_workers=0, checkpoint_every=0)
    eager, compiled = model(), model()
    train(eager, _Blobs(), nn.CrossEntropyLoss(), cfg, tmp_path / "eager", progress=False)
    result = train(compiled, _Blobs(), nn.CrossEntropyLoss(), cfg, tmp_path / "compiled", progress=False,
                   compile_backend=backend)
    assert result.status == "completed" and result.global_step == 6
    for a, b in zip(eager.parameters(), compiled.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
    assert not torch.allclose(next(model().parameters()), next(compiled.parameters()))  # it did train
    assert "_orig_mod" not in "".join(torch.load(Path(tmp_path / "compiled" / CHECKPOINT_NAME),
                                                 weights_only=False)["model"])  # plain keys in the checkpoint
