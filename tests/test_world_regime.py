"""The world page's measurements: the regime card per world (ltlib.book.regime) and part reliance per world
(ltlib.miniworld.reliance), on synthetic cached runs (exact values) and on the smoke world's real runs."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from tolerances import CLOSED_ABS, network  # CLOSED_ABS: float64 arithmetic on a handful of numbers

from ltlib.book.regime import (MEAN_COLUMN, finetune_steps, measure_regime, profiled_book_minutes, regime_jobs,
                               regime_rows, regime_table)
from ltlib.book.registry import RegimeProperty
from ltlib.cache import SplitOutputs, load_split
from ltlib.engine import total_steps
from ltlib.metrics import d_groups
from ltlib.miniworld import diagnostics, reliance
from ltlib.miniworld.experiments import MAIN_RECIPE, Study, imbalance_jobs, open_studies
from ltlib.recipes import load_recipe
from ltlib.results import ResultsTable
from ltlib.runs import RunSpec, write_cached_run

K = 10
COUNTS = np.array([150, 120, 101, 100, 50, 20, 19, 5, 3, 2])  # thresholds 100 / 20: 3 many, 3 medium, 4 few
INFO = {"many_threshold": 100, "few_threshold": 20}


def _outputs(correct: int) -> SplitOutputs:
    """Test outputs of K·10 images with exactly ``correct`` of them right (accuracy = correct %)."""
    targets = np.repeat(np.arange(K), 10)
    predicted = np.where(np.arange(len(targets)) < correct, targets, (targets + 1) % K)
    return SplitOutputs(np.eye(K, dtype=np.float32)[predicted], targets)


def _study(tmp_path, accuracies: dict[tuple[str, str, str], int]) -> Study:
    rows = []
    for (backbone, method, model), correct in accuracies.items():
        recipe = load_recipe("mini_scratch" if model == "scratch" else MAIN_RECIPE)
        spec = RunSpec("toy", backbone, method, 0, recipe, model)
        run_dir = write_cached_run(tmp_path, spec, {"test": _outputs(correct)}, COUNTS, info=INFO)
        rows.append({"backbone": backbone, "method": method, "model": model, "seed": 0, "task_seed": 0,
                     "order": "independent", "recipe": recipe_key(model), "variant": "", "world_seed": 3,
                     "task": "toy", "run_dir": run_dir})
    return Study("mini", "toy", ("a", "b"), pd.DataFrame(rows), world=SimpleNamespace(num_classes=K), world_seed=3)


def recipe_key(model: str) -> str:
    return "mini_scratch" if model == "scratch" else MAIN_RECIPE


def test_measure_regime_from_cached_runs(tmp_path):
    study = _study(tmp_path, {("a", "zeroshot", "lift"): 40, ("a", "LA", "lift"): 52, ("b", "zeroshot", "lift"): 30,
                              ("b", "LA", "lift"): 36, ("a", "LA", "scratch"): 25})
    measured = measure_regime(study)
    assert measured["zeroshot_top1"] == pytest.approx(35.0, abs=CLOSED_ABS)  # (40 + 30) / 2
    assert measured["finetune_gain"] == pytest.approx(9.0, abs=CLOSED_ABS)  # ((52 − 40) + (36 − 30)) / 2
    assert measured["scratch_over_chance"] == pytest.approx(2.5, abs=CLOSED_ABS)  # 25 % / (100 % / 10)
    assert (measured["dmany_share"], measured["dfew_share"]) == (30.0, 40.0)
    # no training log: epochs · ⌈N / batch⌉ from the recorded recipe
    recipe = load_recipe(MAIN_RECIPE)
    assert measured["finetune_steps"] == recipe.epochs * math.ceil(COUNTS.sum() / recipe.batch_size)


def test_measure_regime_is_nan_without_the_runs(tmp_path):
    study = _study(tmp_path, {("a", "zeroshot", "lift"): 40})
    measured = measure_regime(study)
    assert measured["zeroshot_top1"] == pytest.approx(40.0, abs=CLOSED_ABS)
    assert all(np.isnan(measured[k]) for k in ("finetune_gain", "scratch_over_chance", "dfew_share", "finetune_steps"))


def test_regime_jobs_are_notebook_01s_runs():
    """The world page trains these runs; notebook 01 must find them (the same job ⇒ the same run directory)."""
    backbones = ("m1", "m2", "m3")
    jobs = regime_jobs("default", backbones, "ref", [0, 1], world_seed=2)
    assert set(jobs) <= set(imbalance_jobs("default", backbones, "ref", [0, 1], world_seed=2))
    assert {(j.method, j.model) for j in jobs} == {("zeroshot", "lift"), ("LA", "lift"), ("LA", "scratch")}
    assert len(jobs) == 2 * (3 * 2 + 1)


def test_regime_table_has_every_world_and_their_mean():
    card = [RegimeProperty("zeroshot_top1", "zero-shot", (40.0, None), "68"),
            RegimeProperty("book_minutes", "minutes", (None, 20.0), "—")]
    table = regime_table({0: {"zeroshot_top1": 38.0}, 1: {"zeroshot_top1": 44.0}}, card, {"book_minutes": 7.5})
    row = table.set_index("property")
    assert list(table.columns[3:6]) == ["world 0", "world 1", MEAN_COLUMN]
    assert row.loc["zeroshot_top1", MEAN_COLUMN] == pytest.approx(41.0, abs=CLOSED_ABS)
    assert bool(row.loc["zeroshot_top1", "met"]) and row.loc["zeroshot_top1", "target"] == "≥ 40"
    assert row.loc["book_minutes", "world 1"] == 7.5 and bool(row.loc["book_minutes", "met"])
    rows = regime_rows({0: {"zeroshot_top1": 38.0}, 1: {"zeroshot_top1": 44.0}})
    assert rows["world_seed"].tolist() == [0, 1] and set(rows["method"]) == {"regime"}


def test_profiled_book_minutes_sums_the_phases(tmp_path):
    assert np.isnan(profiled_book_minutes(tmp_path))
    pd.DataFrame({"phase": ["a", "b"], "wall_s": [90.0, 30.0]}).to_csv(tmp_path / "profile.csv", index=False)
    assert profiled_book_minutes(tmp_path) == pytest.approx(2.0, abs=CLOSED_ABS)


def test_reliance_contrasts_per_world():
    results = [reliance.Reliance(ws, b, 1, "zeroshot", -1, h) for ws, hs in ((0, (0.7, 0.3, 0.5)), (1, (0.6, 0.5, 0.4)))
               for b, h in zip(("head", "body", "mixed"), hs)]
    results += [reliance.Reliance(0, "body", 1, "LA", 0, 0.2), reliance.Reliance(0, "head", 1, "LA", 0, 0.9),
                reliance.Reliance(0, "body+head", 2, "LA", 0, 0.45)]
    contrasts = reliance.reliance_contrasts(results, {"head": 0.8, "body": 0.2, "mixed": 0.5})
    follows = contrasts[contrasts["group"] == reliance.FOLLOWS].set_index("world_seed")["value"]
    assert follows.to_dict() == pytest.approx({0: 0.4, 1: 0.1}, abs=CLOSED_ABS)
    [covers] = contrasts[contrasts["group"] == reliance.COVERS].itertuples()
    # balance: combination min(0.45, 0.55) = 0.45; members min(0.2, 0.8) = 0.2 and min(0.9, 0.1) = 0.1
    assert covers.value == pytest.approx(0.45 - 0.15, abs=CLOSED_ABS)
    assert (covers.world_seed, covers.n_models, covers.backbones) == (0, 2, "body+head")


# --------------------------------------------------------------------------- the smoke world's real runs
@pytest.fixture(scope="module")
def smoke_study(pretrained_world, working_root):
    """The regime card's runs of the smoke world (seed 0, its models from the session's pre-trained cache)."""
    [study] = open_studies("mini", "smoke", "", [0], working_root / "runs", jobs_for=regime_jobs, workers=1,
                           world_seeds=[pretrained_world.config.seed])
    return study


def test_measure_regime_on_the_smoke_world(smoke_study):
    measured = measure_regime(smoke_study)
    assert all(np.isfinite(v) for v in measured.values()), measured
    task = smoke_study.world.task("independent", seed=0)
    groups = d_groups(task.class_counts, task.info["many_threshold"], task.info["few_threshold"])
    assert measured["dfew_share"] == 100 * len(groups.indices[2]) / smoke_study.world.num_classes
    # the training log's steps are the schedule's: epochs · ⌈N / batch⌉ of the LIFT recipe
    tuned = smoke_study.runs(method="LA", model="lift")["run_dir"].iloc[0]
    assert finetune_steps(tuned) == total_steps(int(task.class_counts.sum()), load_recipe(MAIN_RECIPE))
    assert measured["finetune_steps"] == finetune_steps(tuned)


def test_a_probe_with_no_world_change_reproduces_the_worlds_zero_shot(smoke_study, working_root):
    """A probe's world (the smoke world, unchanged) reuses its pre-trained models, so zero-shot is the study's to
    the last digit; the probe's recipe override reaches its fine-tuning runs (ltlib.book.regime_probes)."""
    from ltlib.book.regime_probes import Probe, run_probe
    from ltlib.runs import find_runs, load_run

    probe = Probe("narrow", "bottleneck 1", 1.0, finetune={"bottleneck": 1})
    row = run_probe(probe, working_root / "probes", world_seed=smoke_study.world_seed, workers=1, base="smoke")
    assert row["zeroshot_top1"] == measure_regime(smoke_study)["zeroshot_top1"]
    assert 0.0 <= row["reference_zeroshot_top1"] <= 100.0
    assert row["finetuned_top1"] == row["zeroshot_top1"] + row["finetune_gain"]
    runs = find_runs(working_root / "probes" / "runs")
    tuned = runs[(runs.method == "LA") & (runs.model == "lift")]["run_dir"]
    assert len(tuned) == len(smoke_study.backbones)
    assert {load_run(d)["config"]["recipe"]["bottleneck"] for d in tuned} == {1}

def test_reliance_rows_carry_the_world_seed(smoke_study, tmp_path):
    results = reliance.world_reliance(smoke_study, per_class=4)
    table = ResultsTable(notebook="00_miniworld", scale="mini", world="smoke", out_dir=tmp_path, world_seed=-1)
    table.add_frame(reliance.reliance_rows(results))
    table.add_frame(reliance.reliance_contrasts(results, {b: smoke_study.world.part_bias(b)
                                                          for b in smoke_study.backbones}))
    rows = table.frame()
    assert set(rows["world_seed"]) == {smoke_study.world_seed}
    members = "+".join(sorted(smoke_study.backbones))
    combined = rows[(rows["backbones"] == members) & (rows["metric"] == "head_reliance")]
    assert len(combined) == 1 and combined["n_models"].item() == 3 and combined["rule"].item() == reliance.RULE
    zero_shot = rows[(rows["method"] == "zeroshot") & (rows["metric"] == "head_reliance")]
    assert sorted(zero_shot["backbones"]) == sorted(smoke_study.backbones)
    shares = rows.loc[rows["metric"] == "head_reliance", "value"]
    assert shares.between(0, 1).all() and rows.loc[rows["metric"] == "reliance_balance", "value"].le(0.5).all()
    assert set(rows.loc[rows["metric"] == "contrast", "group"]) == {reliance.FOLLOWS, reliance.COVERS}


def test_fine_tuned_classifier_reproduces_the_runs_logits(smoke_study):
    """The model the combination is built from is the trained one: on the test split it gives the logits
    the run cached when it was evaluated."""
    run_dir = smoke_study.runs(method="LA", model="lift")["run_dir"].iloc[0]
    cached = load_split(run_dir, "test")
    images, labels = smoke_study.world.split("test").tensors()
    with torch.no_grad():
        logits = reliance.fine_tuned_classifier(smoke_study.world, run_dir)(images)
    assert np.array_equal(labels.numpy(), cached.targets)
    # two float32 evaluations of one network: the patch embedding (3·8·8 = 192 terms) is the widest dot
    # product; 12 layers count the embedding, one block's attention (3), MLP (2) and adapter (2), the
    # projection, the cosine head and its norms
    assert np.abs(logits.numpy() - cached.logits).max() <= network(torch.from_numpy(cached.logits), 192, 12)


def test_readable_labels_and_orders_the_part_groups():
    frame = pd.DataFrame({"body": [1.0], "all": [2.0], "head": [3.0]}, index=pd.Index(["kl_uniform"], name="metric"))
    out = diagnostics.readable(frame)
    assert list(out.columns) == ["all images", "C = head", "C = body"] and list(out.index) == ["KL to uniform"]
    assert out.loc["KL to uniform", "C = body"] == 1.0  # values move with their columns
    terciles = [("tercile_difference", g) for g in ("tail", "head", "middle")]
    wide = pd.DataFrame([[1, 2, 3, 4]], columns=pd.MultiIndex.from_tuples([("p", "raw"), *terciles]))
    out = diagnostics.readable(wide, diagnostics.TERCILES)
    assert list(out.columns) == [("Spearman p", "raw"), ("difference to reference (points)", "head tercile of π_m"),
                                 ("difference to reference (points)", "middle tercile"),
                                 ("difference to reference (points)", "tail tercile")]
    assert out.iloc[0].tolist() == [1, 3, 4, 2]


def test_config_tables_show_every_model_and_setting(pretrained_world):
    settings, models = diagnostics.config_tables(pretrained_world)
    assert list(models.index) == [*pretrained_world.model_names, pretrained_world.reference_name]
    assert models.loc["mini-clip", "P_m(C = head)"] == pretrained_world.part_bias("mini-clip")
    assert settings.loc[("parts", "group_size"), "value"] == str(pretrained_world.config.parts.group_size)
    low, high = pretrained_world.config.render.occlusion
    assert settings.loc[("render", "occlusion"), "value"] == f"{low:g} – {high:g}"  # a (low, high) pair as a range
    assert not settings["value"].str.contains("Config\\(").any()  # no object reprs
