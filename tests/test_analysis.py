"""Analyses over cached runs: per-class tables, trends, binned curves, ensembles, groups, kNN; results tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ltlib.book import analysis
from ltlib.cache import SplitOutputs
from ltlib.priors import prior_agreement
from ltlib.recipes import TrainConfig
from ltlib.results import ResultsTable, load_tables, mean_ci, normalized, summarize, with_labels
from ltlib.runs import RunSpec, write_cached_run
from ltlib.stage2 import consensus_prior, stage_prior

C, PER_CLASS = 6, 20
COUNTS = np.array([300, 150, 60, 30, 10, 4])


def _outputs(correct_rate: np.ndarray, seed: int, features: bool = True) -> SplitOutputs:
    """Logits whose per-class accuracy is exactly ``correct_rate`` (PER_CLASS samples per class)."""
    rng = np.random.default_rng(seed)
    targets = np.repeat(np.arange(C), PER_CLASS)
    logits = rng.normal(0, 0.1, (len(targets), C)).astype(np.float32)
    for k in range(C):
        rows = np.where(targets == k)[0]
        hits = rows[: int(round(correct_rate[k] * PER_CLASS))]
        logits[hits, k] += 5
        misses = rows[len(hits):]
        logits[misses, (k + 1) % C] += 5
    feats = np.eye(C, dtype=np.float32)[targets] + rng.normal(0, 0.05, (len(targets), C)).astype(np.float32)
    return SplitOutputs(logits, targets, feats if features else None)


def _run(root, backbone, method, seed, rate):
    spec = RunSpec("task", backbone, method, seed, TrainConfig())
    out = _outputs(rate, seed)
    return write_cached_run(root, spec, {"test": out, "val": out}, COUNTS)


def _index(rows):
    return pd.DataFrame(rows, columns=["backbone", "method", "model", "seed", "run_dir"])


def test_per_class_table_trends_and_bins(tmp_path):
    decreasing = np.linspace(1.0, 0.0, C)  # head classes right, tail classes wrong
    dirs = [_run(tmp_path, "a", "CE", s, decreasing) for s in (0, 1)]
    index = _index([("a", "CE", "lift", s, d) for s, d in zip((0, 1), dirs)])
    p_hat = {"a": np.linspace(0.3, 0.05, C)}
    table = analysis.per_class_table(index, p_hat, {"a": np.linspace(0.05, 0.3, C)})
    assert len(table) == 2 * C and np.allclose(table["accuracy"].iloc[:C], decreasing * 100)
    assert np.allclose(table["p_s"].iloc[:C], COUNTS / COUNTS.sum())
    trends = analysis.trend_statistics(table, ("p_s", "p_hat", "pi")).set_index(["seed", "key"])["rho"]
    assert trends[0, "p_s"] == pytest.approx(1.0) and trends[0, "p_hat"] == pytest.approx(1.0)
    assert trends[0, "pi"] == pytest.approx(-1.0)
    binned = analysis.binned_accuracy(table, "p_s", bins=3)
    assert list(binned[binned.seed == 0]["accuracy"].round(6)) == pytest.approx([90.0, 50.0, 10.0])


def test_reference_control_removes_shared_difficulty(tmp_path):
    difficulty = np.array([0.9, 0.2, 0.8, 0.1, 0.7, 0.3])
    model = _run(tmp_path, "m", "LA", 0, np.clip(difficulty + 0.1, 0, 1))
    ref = _run(tmp_path, "ref", "LA", 0, difficulty)
    p = {"m": np.full(C, 1 / C), "ref": np.full(C, 1 / C)}
    table = analysis.per_class_table(_index([("m", "LA", "lift", 0, model)]), p)
    reference = analysis.per_class_table(_index([("ref", "LA", "lift", 0, ref)]), p)
    out = analysis.with_reference(table, reference)
    assert np.allclose(out["excess"], 10.0)  # +0.1 on every class, whatever its own difficulty


def test_ensemble_predictions_sum_logits_and_check_targets(tmp_path):
    a = _run(tmp_path, "a", "LA", 0, np.ones(C))
    b = _run(tmp_path, "b", "LA", 0, np.zeros(C))
    preds, targets = analysis.ensemble_predictions([a, b])
    assert preds.shape == targets.shape == (C * PER_CLASS,)
    d = analysis.run_d_groups(a)
    assert d.sizes == {"many": 2, "medium": 2, "few": 2}
    scores = analysis.group_scores(*analysis.ensemble_predictions([a]), d, None)
    assert scores["overall"] == pytest.approx(100.0) and scores["D-few"] == pytest.approx(100.0)
    knn = analysis.knn_group_accuracy(a, k=5)
    assert knn["overall"] == pytest.approx(100.0)


def test_priors_consensus_and_agreement():
    p, q = np.array([0.5, 0.3, 0.2]), np.array([0.2, 0.3, 0.5])
    mid = consensus_prior([p, q])
    assert mid.sum() == pytest.approx(1.0) and mid[0] == pytest.approx(mid[2])
    assert stage_prior({"b": q, "a": p}).source == "geomean(a+b)" and stage_prior({"a": p}).source == "a"
    assert np.array_equal(stage_prior({"a": p}).prior, p)  # one model: its own P̂_P, unchanged
    agree = prior_agreement(p, p)
    assert agree["spearman"] == pytest.approx(1.0) and agree["kl"] == pytest.approx(0.0)
    assert agree["kl_uniform"] > 0


def test_results_table_round_trip_and_summaries(tmp_path):
    table = ResultsTable("nb", "mini", "w", tmp_path)
    table.add_frame(pd.DataFrame({"method": ["LA", "LA", "CE"], "backbone": ["a", "b", "a"], "seed": [0, 1, 0],
                                  "group": ["overall"] * 3, "value": [1.0, 3.0, 5.0]}), metric="accuracy")
    table.add("gflops", np.float32(2.5), method="M=1", backbones=("b", "a"))
    table.save()
    rows = load_tables(tmp_path)
    assert list(rows["backbones"]) == ["a", "b", "a", "a+b"] and rows["value"].dtype == float
    assert (rows["git_sha"] != "").all() and rows["seed"].tolist() == [0, 1, 0, -1]
    s = summarize(rows[rows.metric == "accuracy"], by=("method",)).set_index("method")
    assert s.loc["LA", "mean"] == 2.0 and s.loc["LA", "n"] == 2 and np.isnan(s.loc["CE", "sd"])
    mean, sd, low, high, n = mean_ci([1.0, 2.0, 3.0])
    assert (mean, n) == (2.0, 3) and low < 2 < high and high - 2 == pytest.approx(2 - low)


def test_results_rows_carry_their_keys_in_columns_and_labels_are_derived(tmp_path):
    table = ResultsTable("nb", "mini", "w", tmp_path, world_seed=7)
    table.add("accuracy", 50.0, method="LA", backbones=("b", "a"), rule="logit_sum", prior_source="geomean(a+b)")
    table.add("accuracy", 40.0, method="LA", backbones="a", rule="logit_sum")
    table.add("accuracy", 45.0, method="LA", backbones="a+b", n_models=2, rule="logit_sum", scenario="reverse")
    table.add("trend_rho", 0.1, method="LA", backbones="a", control="from scratch")
    table.add("images", 3.0, method="generator")
    with pytest.raises(TypeError, match="unknown columns"):
        table.add("accuracy", 1.0, method="LA", order="reverse")
    table.save()
    rows = load_tables(tmp_path)
    assert rows["n_models"].tolist() == [2, 1, 2, 1, 0] and set(rows["world_seed"]) == {7}
    assert rows["scenario"].tolist() == ["", "", "reverse", "", ""]
    assert rows["prior_source"].tolist()[0] == "geomean(a+b)" and rows["backbones"].tolist()[0] == "a+b"
    labels = with_labels(rows)["label"].tolist()
    assert labels == ["backdoor adjustment (logit_sum)", "LIFT (single model)", "backdoor adjustment (logit_sum)",
                      "from scratch", "generator"]
    old = rows.drop(columns=["control", "scenario"])  # rows written before these columns existed
    assert (normalized(old)[["control", "scenario"]] == "").all().all()
