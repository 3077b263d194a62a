"""The confounder study's designs and interventional test set, and the from-scratch ResNet-32."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ltlib.errors import ConfigError
from ltlib.miniworld import load_world, load_world_config
from ltlib.miniworld.cnn import ResNet32
from ltlib.miniworld.config import ConfounderConfig
from ltlib.miniworld.confounder import TEST_SETS, TRAIN_SETS, check_part_cycle, part_partners, propensities
from ltlib.miniworld.generator import build_layout
from ltlib.parallel import torch_threads


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return load_world("smoke", cache_root=tmp_path_factory.mktemp("cache")).confounder_study(seed=0)


def _head_share(dataset) -> np.ndarray:
    labels, visibility = dataset.labels.numpy(), dataset.visibility.numpy()
    return np.array([np.mean(visibility[labels == k] == 0) for k in range(labels.max() + 1)])


def test_propensities_of_the_designs():
    props = propensities(ConfounderConfig(classes=(0, 1, 2, 3, 4, 5), majority=0.9))
    assert np.allclose(props["A"], 0.5) and np.allclose(props["B"], 0.9) and np.allclose(props["B_body"], 0.1)
    assert np.allclose(props["confounded"], [0.9, 0.1, 0.9, 0.1, 0.9, 0.1])  # alternates along the cycle
    assert np.allclose(props["interventional"], 0.5)  # do(C): C ~ P(C), independent of Y
    with pytest.raises(ConfigError, match="majority"):
        propensities(ConfounderConfig(majority=0.3))


def test_every_split_realises_its_propensity(study):
    for name in TRAIN_SETS:
        assert np.allclose(_head_share(study.train[name]), study.propensity[name], atol=0.06)
    for name in TEST_SETS:
        assert np.allclose(_head_share(study.test[name]), study.propensity[name], atol=0.06)
    # confounded training data: C carries information about Y; interventional test data: none
    assert np.ptp(_head_share(study.train["confounded"])) > 0.7
    assert np.ptp(_head_share(study.test["interventional"])) < 0.1


@pytest.mark.parametrize("world", ["default", "smoke"])
def test_the_study_classes_share_parts_in_pairs(world):
    """The class choice: each head and each body type of the study is shared by exactly two classes, those
    two have opposite propensities in the confounded design, and head + body still identify the class."""
    config = load_world_config(world)
    layout, classes = build_layout(config.parts.num_part_types, config.parts.group_size), config.confounder.classes
    check_part_cycle(layout, classes)
    pairs = {(layout.head_type[k], layout.body_type[k]) for k in classes}
    assert len(pairs) == len(classes)  # both parts together are unambiguous
    confounded = propensities(config.confounder)["confounded"]
    for part, partner in part_partners(layout, classes).items():
        types = np.asarray(layout.head_type if part == "head" else layout.body_type)[list(classes)]
        assert np.array_equal(types[partner], types) and not np.any(partner == np.arange(len(classes)))
        assert np.allclose(confounded[partner], 1 - confounded)  # the shortcut through C exists for every pair


def test_part_cycle_rejects_other_class_lists():
    layout = build_layout(10, 4)
    with pytest.raises(ConfigError, match="exactly two"):
        check_part_cycle(layout, [0, 1, 2, 3, 4, 5])  # distinct heads and bodies: one part identifies the class
    with pytest.raises(ConfigError, match="share no part"):
        check_part_cycle(layout, [2, 20, 21, 30, 31, 22])  # the right classes in a wrong order
    with pytest.raises(ConfigError, match="distinct"):
        check_part_cycle(layout, [2, 2, 30, 21, 31, 22])


def test_study_labels_are_local_and_images_are_fresh(study):
    world_classes = np.asarray(study.classes)
    for dataset in (*study.train.values(), *study.test.values()):
        labels = dataset.labels.numpy()
        assert set(labels.tolist()) == set(range(study.num_classes))
        assert np.bincount(labels).min() == np.bincount(labels).max()  # balanced over Y
    assert not torch.equal(study.test["A"].renders.images, study.test["interventional"].renders.images)
    assert study.train["A"].augment and not study.test["A"].augment
    assert len(study.class_names) == len(world_classes)


def test_resnet32_architecture():
    model = ResNet32(num_classes=6, seed=0)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) + 1 == 32  # 31 convolutions and the linear head
    assert [c.out_channels for c in convs[::10]] == [16, 16, 32, 64]
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(464_000, rel=0.01)  # He et al.: 0.46 M
    model.eval()
    logits, features = model.logits_and_features(torch.randn(4, 3, 32, 32))
    assert logits.shape == (4, 6) and features.shape == (4, 64)
    assert torch.equal(ResNet32(6, seed=0).fc.weight, model.fc.weight)
    assert not torch.equal(ResNet32(6, seed=1).fc.weight, model.fc.weight)
    assert model.depth == 32 and ResNet32(6, blocks_per_stage=1).depth == 8
    with_c = ResNet32(6, blocks_per_stage=1, in_channels=4).eval()
    assert with_c.stem[0].in_channels == 4 and with_c(torch.randn(2, 4, 32, 32)).shape == (2, 6)


def test_resnet32_trains_on_the_study(study):
    torch.manual_seed(0)
    model = ResNet32(study.num_classes, blocks_per_stage=1, seed=0)
    images, labels = study.train["A"].tensors()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    with torch_threads(1):  # one thread: several times faster for this tiny model on a busy 2-core machine
        for _ in range(15):
            loss = torch.nn.functional.cross_entropy(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]
