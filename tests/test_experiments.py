"""ltlib.miniworld.experiments: the book's job grids, the run index at both scales, and a real
(tiny) grid on the pre-trained smoke world."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd

from ltlib.miniworld.experiments import (INDEX_COLUMNS, VPT_RECIPE, MiniJob, Study, copies, full_run_index, grid,
                                         imbalance_jobs, main_table_jobs, run_mini_grid)
from ltlib.runs import find_runs

MODELS = ("mini-clip", "mini-openclip", "mini-metaclip")


def test_grid_is_the_product_with_the_task_seed_following_the_seed_unless_given():
    jobs = grid("smoke", ("a", "b"), ("CE", "LA"), (0, 1))
    assert len(jobs) == 8 and len(set(jobs)) == 8
    assert all(j.task_seed == j.seed and j.world == "smoke" for j in jobs)
    fixed = grid("smoke", ("a",), ("LA",), (3, 4), task_seed=7, order="reverse")
    assert [(j.seed, j.task_seed, j.order) for j in fixed] == [(3, 7, "reverse"), (4, 7, "reverse")]


def test_imbalance_jobs_hold_every_method_the_reference_and_the_scratch_control():
    jobs = imbalance_jobs("smoke", MODELS, "mini-reference", seeds=(0, 1))
    per = Counter((j.backbone, j.method, j.model) for j in jobs if j.recipe != VPT_RECIPE)
    for backbone in MODELS:
        for method in ("zeroshot", "CE", "LA", "GLA-Train"):
            assert per[(backbone, method, "lift")] == 2
    assert per[("mini-reference", "zeroshot", "lift")] == per[("mini-reference", "LA", "lift")] == 2
    vpt = [j for j in jobs if j.recipe == VPT_RECIPE]
    assert sorted((j.backbone, j.method, j.seed) for j in vpt) == sorted((b, "LA", s) for b in MODELS for s in (0, 1))
    scratch = [j for j in jobs if j.model == "scratch"]
    assert [(j.backbone, j.recipe) for j in scratch] == [("mini-clip", "mini_scratch")] * 2
    assert len(jobs) == len(set(jobs))


def test_main_table_jobs_add_pretrained_copies_scenarios_and_both_joint_models():
    seeds = (0,)
    for world_seed in (0, 1, 2, 3):
        jobs = main_table_jobs("smoke", MODELS, "mini-reference", seeds, world_seed=world_seed)
        assert len(jobs) == len(set(jobs)) and {j.world_seed for j in jobs} == {world_seed}
        # the same-backbone control: two independently pre-trained copies of one model, rotating with the world
        base = MODELS[world_seed % 3]
        assert copies(MODELS, world_seed) == [f"{base}-copy1", f"{base}-copy2"]
        la = {j.backbone for j in jobs if j.method == "LA" and j.model == "lift" and j.order == "independent"}
        assert la == {*MODELS, f"{base}-copy1", f"{base}-copy2"}
    for order in ("consistent", "reverse", "balanced"):
        assert sum(j.order == order and j.relative_to == "consensus" for j in jobs) == len(MODELS) * len(seeds)
    joint = [j for j in jobs if j.model == "joint"]
    assert {j.backbone for j in joint} == {"+".join(MODELS)}
    # the matched-scale joint model divides the cosine scale by M: its summed logits have a single model's scale
    assert sorted((j.variant, dict(j.overrides).get("cosine_scale")) for j in joint) == [
        ("", None), ("matched scale", 25.0 / 3)]


def test_study_runs_filters_the_index():
    index = pd.DataFrame([{"backbone": b, "method": m, "model": "lift", "seed": 0, "task_seed": 0,
                           "order": "independent", "recipe": "mini_lift", "variant": "", "world_seed": 0,
                           "task": "t", "run_dir": Path(b + m)}
                          for b in ("x", "y") for m in ("CE", "LA")], columns=list(INDEX_COLUMNS))
    study = Study("mini", "smoke", ("x", "y"), index)
    assert list(study.runs(method="LA")["backbone"]) == ["x", "y"]
    assert len(study.runs(method="LA", backbone="y")) == 1 and study.runs(method="BS").empty


def test_a_grid_on_the_smoke_world_runs_once_and_the_full_scale_index_reads_it_back(pretrained_world, tmp_path):
    jobs = [MiniJob("smoke", "mini-clip", "zeroshot", seed=0), MiniJob("smoke", "mini-openclip", "zeroshot", seed=0)]
    cache = pretrained_world.cache_root
    index = run_mini_grid(jobs, tmp_path, workers=1, cache_root=cache)
    assert list(index.columns) == list(INDEX_COLUMNS)
    assert list(index["backbone"]) == ["mini-clip", "mini-openclip"]
    assert all((Path(d) / "run.json").is_file() for d in index["run_dir"])
    before = {d: (Path(d) / "run.json").stat().st_mtime_ns for d in index["run_dir"]}
    again = run_mini_grid(jobs, tmp_path, workers=1, cache_root=cache)  # complete runs are reused
    assert {d: (Path(d) / "run.json").stat().st_mtime_ns for d in again["run_dir"]} == before
    [task] = set(index["task"])
    read_back = full_run_index(tmp_path, task)
    assert sorted(read_back["backbone"]) == ["mini-clip", "mini-openclip"]
    assert set(read_back["run_dir"]) == set(index["run_dir"]) == set(find_runs(tmp_path)["run_dir"])
