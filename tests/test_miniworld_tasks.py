"""Downstream long-tailed tasks: counts and D-groups, Tab. 13 orders, shared balanced splits, datasets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from tolerances import CLOSED_ABS, U32

from ltlib.engine import SeededSamples
from ltlib.errors import ConfigError
from ltlib.miniworld import load_world
from ltlib.miniworld.config import TaskConfig, load_world_config
from ltlib.metrics import d_groups
from ltlib.miniworld.tasks import class_order, downstream_counts, random_crop_flip, train_counts
from ltlib.tasks import Task


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return load_world("smoke", cache_root=tmp_path_factory.mktemp("cache"))


def test_default_counts_give_all_three_oltr_groups():
    config = load_world_config("default")
    counts = downstream_counts(config.tasks, config.parts.num_part_types * config.parts.group_size)
    assert counts[0] == config.tasks.max_count and np.all(np.diff(counts) <= 0)
    # Each count is its profile value rounded to an integer (off by < 1), so the ratio is off by
    # < 1/counts[-1] + 1/counts[0] relative.
    assert counts[0] / counts[-1] == pytest.approx(config.tasks.imbalance_ratio, rel=1 / counts[-1] + 1 / counts[0])
    # the thresholds scaled to the counts give ImageNet-LT's group shares (38.5 % many, 13.6 % few) within the
    # regime card's bands (D-Few 10-20 %, D-Many 20-50 %)
    sizes = d_groups(counts, config.tasks.many_threshold, config.tasks.few_threshold).sizes
    k = len(counts)
    assert 0.10 <= sizes["few"] / k <= 0.20 and 0.20 <= sizes["many"] / k <= 0.50 and sizes["medium"] > 0


def test_orders_relative_to_the_pretraining_prior(world):
    prior = world.true_prior("mini-clip")
    consistent = world.task("consistent", relative_to="mini-clip").class_counts
    reverse = world.task("reverse", relative_to="mini-clip").class_counts
    assert spearmanr(consistent, prior)[0] > 0.95 and spearmanr(reverse, prior)[0] < -0.95
    balanced = world.task("balanced").class_counts
    assert balanced.max() - balanced.min() <= 1 and abs(balanced.sum() - consistent.sum()) <= 1
    independent = [world.task("independent", seed=s).class_counts for s in range(2)]
    assert sorted(independent[0]) == sorted(consistent) and not np.array_equal(*independent)


def test_task_is_an_ltlib_task_with_the_exact_counts(world):
    task = world.task("independent", seed=0)
    assert isinstance(task, Task) and task.classnames == world.class_names
    assert np.bincount(task.train.labels.numpy(), minlength=world.num_classes).tolist() == task.class_counts.tolist()
    t = world.config.tasks
    assert task.info["d_groups"] == d_groups(task.class_counts, t.many_threshold, t.few_threshold).labels.tolist()
    assert set(task.info["d_groups"]) == {"many", "medium", "few"}  # thresholds scaled to the smoke counts
    assert task.key.startswith(world.key) and task.key != world.task("independent", seed=1).key
    assert set(task.eval_sets) == {"val", "test"}


def test_val_and_test_are_balanced_shared_and_independent_of_c(world):
    a, b = world.task("consistent"), world.task("reverse", seed=3)
    for split, per_class in (("val", world.config.tasks.val_per_class), ("test", world.config.tasks.test_per_class)):
        data = a.eval_sets[split]
        assert data is b.eval_sets[split]  # every scenario is evaluated on the same images
        labels, visibility = data.labels.numpy(), data.visibility.numpy()
        assert np.bincount(labels).tolist() == [per_class] * world.num_classes
        per_class_heads = [np.mean(visibility[labels == k] == 0) for k in range(world.num_classes)]
        assert np.allclose(per_class_heads, per_class_heads[0], rtol=0, atol=CLOSED_ABS)  # C independent of Y


def test_dataset_items_are_normalised_and_augmentation_is_seeded(world):
    task = world.task()
    image, label = task.eval_sets["test"][0]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32 and isinstance(label, int)
    raw = task.eval_sets["test"].renders.images[0].float() / 255
    expected = (raw - torch.tensor(world.mean).view(3, 1, 1)) / torch.tensor(world.std).view(3, 1, 1)
    # (x/255 − mean)/std in float32 on both sides: ≤ 4 roundings at the size of the result.
    assert torch.allclose(image, expected, rtol=0, atol=4 * U32 * (1 + float(expected.abs().max())))
    seeded = SeededSamples(task.train, seed=0)
    assert torch.equal(seeded[5][0], seeded[5][0])  # the engine's per-sample seeding fixes the augmentation
    assert any(not torch.equal(seeded[5][0], SeededSamples(task.train, seed=s)[5][0]) for s in range(1, 6))


def test_random_crop_flip_keeps_shape_and_content():
    image = torch.arange(3 * 8 * 8, dtype=torch.float32).view(3, 8, 8)
    torch.manual_seed(0)
    outs = [random_crop_flip(image, pad=2) for _ in range(30)]
    assert all(o.shape == image.shape for o in outs)
    assert any(torch.equal(o, image) for o in outs) or any(torch.equal(o, image.flip(-1)) for o in outs)
    assert any((o == 0).any() for o in outs)  # some crops show the zero (= mean colour) padding


def test_explicit_and_invalid_orders():
    perm = np.array([2, 0, 1])
    assert class_order(perm, 3, None, seed=0).tolist() == [2, 0, 1]
    counts = train_counts(TaskConfig(max_count=100, imbalance_ratio=10), perm, 3, None, seed=0)
    assert counts[2] == 100 and counts[1] == 10
    with pytest.raises(ConfigError, match="permutation"):
        class_order([0, 0, 1], 3, None, seed=0)
    with pytest.raises(ConfigError, match="order must be"):
        class_order("sorted", 3, None, seed=0)
    with pytest.raises(ConfigError, match="relative_to"):
        class_order("consistent", 3, None, seed=0)


def test_custom_orders_get_their_own_task_keys(world):
    first, second = np.arange(world.num_classes), np.arange(world.num_classes)[::-1]
    a, b = world.task(first), world.task(second)
    assert a.key != b.key and a.key == world.task(first.tolist()).key
    assert a.class_counts[0] == world.config.tasks.max_count == b.class_counts[-1]


def test_batched_crop_flip_equals_the_per_image_augmentation():
    import numpy as np
    import torch
    from ltlib.miniworld.tasks import PAD, batch_crop_flip
    from ltlib.seeding import sample_uniforms
    images = torch.randn(64, 3, 32, 32)
    u = torch.from_numpy(sample_uniforms(3, np.arange(64), 3))
    u[:4, :2] = torch.tensor([[0.0, 0.0], [0.0, 0.9999], [0.9999, 0.0], [0.9999, 0.9999]])  # the corners
    u[:2, 2], u[2:4, 2] = 0.25, 0.75  # each corner with and without the flip
    out = batch_crop_flip(images, u)
    assert out.shape == images.shape and out.is_contiguous()
    for i in range(64):
        top, left = (int(v * (2 * PAD + 1)) for v in u[i, :2])
        crop = torch.nn.functional.pad(images[i], (PAD,) * 4)[:, top:top + 32, left:left + 32]
        expected = crop.flip(-1) if u[i, 2] < 0.5 else crop
        assert torch.equal(out[i], expected)
