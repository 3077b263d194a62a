"""The disk cache of pre-trained mini models: keyed by the full config, reused, rebuilt when missing."""

from __future__ import annotations

import shutil

import pytest
import torch
from tolerances import CLOSED_ABS  # float64 closed forms

from ltlib.miniworld import load_world
from ltlib.miniworld import model_cache
from ltlib.miniworld.config import PretrainConfig, TaskConfig
from ltlib.miniworld.model_cache import cache_root, entry_dir, get_or_build, is_complete


def _state(entry) -> dict:
    return torch.load(entry.weights, weights_only=True)


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _must_not_build():
    raise AssertionError("the cache should have been hit")


def test_key_changes_with_anything_that_shapes_the_model(tmp_path):
    world = load_world("smoke", cache_root=tmp_path)
    base = entry_dir("mini-clip", world.model_key("mini-clip"), tmp_path)
    assert base == entry_dir("mini-clip", load_world("smoke", cache_root=tmp_path).model_key("mini-clip"), tmp_path)
    changed = [load_world("smoke", pretrain=PretrainConfig(epochs=2, batch_size=64)),
               load_world("smoke", seed=1),
               load_world("smoke", corpus={"num_images": 2048})]
    keys = {entry_dir("mini-clip", w.model_key("mini-clip"), tmp_path) for w in changed}
    assert base not in keys and len(keys) == 3
    # downstream-task settings do not change the pre-trained models
    other_tasks = load_world("smoke", tasks=TaskConfig(max_count=30))
    assert entry_dir("mini-clip", other_tasks.model_key("mini-clip"), tmp_path) == base
    # each model of a world has its own entry
    assert base != entry_dir("mini-openclip", world.model_key("mini-openclip"), tmp_path)


def test_cache_version_is_part_of_the_key(tmp_path, monkeypatch):
    key = load_world("smoke").model_key("mini-clip")
    before = entry_dir("mini-clip", key, tmp_path)
    monkeypatch.setattr(model_cache, "CACHE_VERSION", model_cache.CACHE_VERSION + 1)
    assert entry_dir("mini-clip", key, tmp_path) != before


def test_cache_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LTLIB_CACHE", str(tmp_path))
    assert cache_root() == tmp_path
    monkeypatch.delenv("LTLIB_CACHE")
    assert cache_root().parts[-2:] == (".cache", "ltlib")


def test_same_config_hits_the_cache_and_a_clean_cache_rebuilds(tmp_path):
    world = load_world("smoke", cache_root=tmp_path)
    entry = world.pretrained("mini-clip")
    weights = _state(entry)
    assert is_complete(entry.directory)
    assert entry.truth["prior"] == pytest.approx(world.true_prior("mini-clip").tolist(), abs=CLOSED_ABS)
    again, built = get_or_build(entry.directory, _must_not_build)  # a second notebook: no re-training
    assert not built and again.arch == entry.arch
    assert _same_weights(_state(load_world("smoke", cache_root=tmp_path).pretrained("mini-clip")), weights)
    shutil.rmtree(tmp_path / "miniworld")  # a clean cache rebuilds the same model (training is deterministic)
    rebuilt = load_world("smoke", cache_root=tmp_path).pretrained("mini-clip")
    assert rebuilt.directory == entry.directory and _same_weights(_state(rebuilt), weights)


def test_an_incomplete_entry_is_rebuilt(tmp_path):
    world = load_world("smoke", cache_root=tmp_path)
    entry = world.pretrained("mini-reference")
    (entry.directory / model_cache.LOG).unlink()  # as if the process died before the log was written
    calls = []
    original = world._pretrain

    def counting(name):
        calls.append(name)
        return original(name)

    world._pretrain = counting
    world.pretrained("mini-reference")
    assert calls == ["mini-reference"] and is_complete(entry.directory)


@pytest.mark.slow  # two spawned processes each import torch and open_clip (~10 s)
def test_parallel_prepare_trains_the_same_models(tmp_path):
    serial = load_world("smoke", cache_root=tmp_path / "serial").prepare(["mini-metaclip"], workers=1)
    parallel = load_world("smoke", cache_root=tmp_path / "parallel").prepare(["mini-metaclip", "mini-reference"],
                                                                              workers=2)
    assert set(parallel) == {"mini-metaclip", "mini-reference"}
    assert serial["mini-metaclip"].directory.name == parallel["mini-metaclip"].directory.name
    assert _same_weights(_state(serial["mini-metaclip"]), _state(parallel["mini-metaclip"]))
