"""World configs: the registry entries load into frozen nested dataclasses; errors name the file and key."""

from __future__ import annotations

import dataclasses

import pytest
from tolerances import CLOSED_ABS  # float64 closed forms

from ltlib.config import list_configs
from ltlib.errors import ConfigError
from ltlib.miniworld import load_world, load_world_config
from ltlib.miniworld.config import CaptionConfig, FoundationModelConfig, PretrainConfig


def test_registry_holds_smoke_and_default():
    assert {"smoke", "default"} <= set(list_configs("worlds"))


@pytest.mark.parametrize("key", ["smoke", "default"])
def test_world_configs_load_and_are_frozen(key):
    config = load_world_config(key)
    assert config.name == key
    assert [m.name for m in config.models] == ["mini-clip", "mini-openclip", "mini-metaclip"]
    assert config.reference.uniform_prior and not any(m.uniform_prior for m in config.models)
    assert isinstance(config.captions, CaptionConfig) and isinstance(config.captions.templates, tuple)
    assert sorted(m.head_fraction for m in config.models) == [0.2, 0.5, 0.8]  # heads, bodies, mixed
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.seed = 1  # type: ignore[misc]
    hash(config)  # hashable: usable as a cache key


def test_overrides_accept_sections_as_dicts_or_dataclasses():
    config = load_world_config("smoke", pretrain={"epochs": 5}, seed=3)
    assert config.pretrain == PretrainConfig(epochs=5) and config.seed == 3
    assert load_world_config("smoke", pretrain=PretrainConfig(lr=1.0)).pretrain.lr == 1.0


def test_errors_name_the_file_and_the_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("models:\n  - {name: a, head_fraction: 0.5, colour: red}\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: models\[1\].*colour"):
        load_world_config(path)
    path.write_text("pretrain: {epochz: 3}\nmodels: [{name: a, head_fraction: 0.5}]\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: pretrain.*epochz"):
        load_world_config(path)
    path.write_text("corpus: 5\nmodels: [{name: a, head_fraction: 0.5}]\n")  # a value where a section belongs
    with pytest.raises(ConfigError, match=r"bad\.yaml: corpus = 5 has the wrong type for WorldConfig: expected "
                                          r"CorpusConfig"):
        load_world_config(path)
    with pytest.raises(ConfigError, match="unknown world 'nowhere'"):
        load_world_config("nowhere")


def test_world_validates_model_names():
    with pytest.raises(ConfigError, match="distinct"):
        load_world_config("smoke", models=[{"name": "mini-reference", "head_fraction": 0.5}])
    with pytest.raises(ConfigError, match="at least one"):
        load_world_config("smoke", models=[])
    with pytest.raises(ConfigError, match="no model 'mini-x'"):
        load_world("smoke").true_prior("mini-x")


def test_world_ground_truth_accessors():
    world = load_world("default")
    for name in world.model_names:
        prior = world.true_prior(name)
        assert prior.sum() == pytest.approx(1.0, abs=CLOSED_ABS) and prior.max() / prior.min() > 100
        assert world.popularity(name)[0] == prior.argmax()
    assert world.true_prior(world.reference_name).max() == pytest.approx(1.0 / world.num_classes, abs=CLOSED_ABS)
    assert world.part_bias("mini-clip") == 0.8 and world.part_bias("mini-openclip") == 0.2
    assert isinstance(world.config.model("mini-metaclip"), FoundationModelConfig)
