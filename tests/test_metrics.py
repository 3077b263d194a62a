"""Tests of ltlib.metrics: D/P-groups, evaluator values on the Places-LT test labels, D×P matrix, kNN probe."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ltlib.errors import ConfigError
from ltlib.metrics import (GROUP_NAMES, Groups, d_groups, dp_matrix, group_accuracy, knn_predict, p_groups,
                           per_class_accuracy, predictions)

PLACES = Path(__file__).resolve().parent.parent / "data_manifests" / "Places_LT"


def _manifest_labels(path: Path) -> np.ndarray:
    """Labels (second column) of a gzip ``path label`` manifest, parsed directly for the test."""
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return np.array([int(line.split()[1]) for line in handle if line.strip()])


@pytest.fixture(scope="module")
def places_train_counts() -> np.ndarray:
    return np.bincount(_manifest_labels(PLACES / "Places_LT_train.txt.gz"), minlength=365)


@pytest.fixture(scope="module")
def places_test_labels() -> np.ndarray:
    return _manifest_labels(PLACES / "Places_LT_test.txt.gz")


# ---------------------------------------------------------------- groups


def test_d8_places_lt_d_group_sizes(places_train_counts):
    assert places_train_counts.sum() == 62_500
    assert (places_train_counts.max(), places_train_counts.min()) == (4980, 5)
    groups = d_groups(places_train_counts)
    assert groups.sizes == {"many": 131, "medium": 163, "few": 71}


def test_d_groups_thresholds_are_inclusive_for_medium():
    groups = d_groups([101, 100, 20, 19, 500, 1])
    assert groups["many"].tolist() == [0, 4]
    assert groups["medium"].tolist() == [1, 2]
    assert groups["few"].tolist() == [3, 5]
    custom = d_groups([101, 100, 20, 19, 9], many=50, few=10)
    assert [ix.tolist() for ix in custom.indices] == [[0, 1], [2, 3], [4]]


def test_d_groups_rejects_inverted_thresholds():
    with pytest.raises(ConfigError, match="few=20 must not exceed many=10"):
        d_groups([5, 50], many=10, few=20)


def test_groups_labels_codes_and_partition():
    groups = d_groups([500, 50, 5, 200])
    assert groups.codes.tolist() == [0, 1, 2, 0]
    assert groups.labels.tolist() == ["many", "medium", "few", "many"]
    assert groups.names == GROUP_NAMES and groups.num_classes == 4
    with pytest.raises(ValueError):
        groups.indices[0][0] = 3  # read-only arrays
    with pytest.raises(ConfigError, match="partition"):
        Groups(("a", "b"), (np.array([0, 1]), np.array([1])), 3)


@pytest.mark.parametrize("num_classes, sizes", [(365, (110, 109, 146)), (1000, (300, 300, 400)),
                                                (8142, (2443, 2442, 3257)), (10, (3, 3, 4)), (5, (2, 1, 2))])
def test_p_groups_rounding(num_classes, sizes):
    prior = np.random.default_rng(num_classes).random(num_classes)
    groups = p_groups(prior)
    assert tuple(groups.sizes.values()) == sizes


def test_p_groups_ranks_by_prior_descending_with_stable_ties():
    prior = np.array([0.1, 0.4, 0.1, 0.1, 0.3, 0.0, 0.0, 0.0, 0.0, 0.0])
    groups = p_groups(prior)
    # Ranking: 1 (0.4), 4 (0.3), then the ties 0, 2, 3 in index order, then 5..9.
    assert groups["many"].tolist() == [0, 1, 4]
    assert groups["medium"].tolist() == [2, 3, 5]
    assert groups["few"].tolist() == [6, 7, 8, 9]
    assert np.array_equal(p_groups(7 * prior).codes, groups.codes)  # scale does not matter


def test_p_groups_custom_fractions_and_validation():
    assert tuple(p_groups(np.arange(10.0), fractions=(0.5, 0.5)).sizes.values()) == (5, 5, 0)
    with pytest.raises(ConfigError, match="fractions"):
        p_groups(np.arange(10.0), fractions=(0.7, 0.5))


# ---------------------------------------------------------------- accuracies


def test_d9_evaluator_first_pattern(places_train_counts, places_test_labels):
    y = places_test_labels
    assert y.size == 36_500
    preds = np.where(np.arange(y.size) % 3 != 0, y, (y + 1) % 365)
    result = group_accuracy(preds, y, d_groups(places_train_counts))
    assert round(result.overall, 8) == 66.66575342
    assert round(result.mean, 8) == 66.66575342
    assert {k: round(v, 8) for k, v in result.groups.items()} == {
        "many": 66.67175573, "medium": 66.69938650, "few": 66.57746479}


def test_d9_evaluator_second_pattern(places_train_counts, places_test_labels):
    y = places_test_labels
    preds = np.where(y % 2 == 0, y, (y + 1) % 365)
    result = group_accuracy(preds, y, d_groups(places_train_counts))
    assert round(result.overall, 8) == 50.13698630
    assert {k: round(v, 8) for k, v in result.groups.items()} == {
        "many": 53.43511450, "medium": 46.62576687, "few": 52.11267606}


def test_group_accuracy_is_unweighted_over_classes():
    # Class 0 has 3 samples (all right), class 1 has 1 sample (wrong): overall 75%, mean 50%.
    targets = np.array([0, 0, 0, 1])
    groups = Groups(("a",), (np.array([0, 1]),), 2)
    result = group_accuracy(np.array([0, 0, 0, 0]), targets, groups)
    assert result.overall == 75.0 and result.mean == 50.0 and result.groups == {"a": 50.0}
    assert result.as_dict(prefix="d_") == {"d_overall": 75.0, "d_mean": 50.0, "d_a": 50.0}


def test_group_accuracy_accepts_logits_and_tensors():
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [5.0, 0.0, 1.0]])
    targets = torch.tensor([0, 1, 2])
    groups = d_groups([200, 50, 5])
    result = group_accuracy(logits, targets, groups)
    assert result.per_class.tolist() == [100.0, 100.0, 0.0]
    assert result.groups == {"many": 100.0, "medium": 100.0, "few": 0.0}
    assert predictions(logits).tolist() == [0, 1, 0]


def test_empty_group_gives_nan():
    result = group_accuracy(np.array([0, 1]), np.array([0, 1]), d_groups([500, 300]))
    assert result.groups["many"] == 100.0
    assert np.isnan(result.groups["few"]) and np.isnan(result.groups["medium"])


def test_per_class_accuracy_names_the_absent_class():
    with pytest.raises(ConfigError, match="class 2 has no test sample"):
        per_class_accuracy(np.array([0, 1, 3]), np.array([0, 1, 3]), 4)


def test_logits_width_must_match_groups():
    with pytest.raises(ConfigError, match="logits have 3 classes but groups cover 2"):
        group_accuracy(np.zeros((4, 3)), np.array([0, 1, 0, 1]), d_groups([5, 5]))


def test_length_mismatch_is_rejected():
    with pytest.raises(ConfigError, match=r"shape \[3\]"):
        group_accuracy(np.array([0, 1, 1]), np.array([0, 1]), d_groups([5, 5]))


# ---------------------------------------------------------------- D×P matrix


def test_dp_matrix_cells_counts_and_empty_cell():
    # 4 classes: D = many, many, few, few; P = many, few, many, few (via fractions 0.5 / 0).
    d = d_groups([500, 500, 5, 5])
    p = p_groups(np.array([0.4, 0.1, 0.3, 0.2]), fractions=(0.5, 0.0))
    targets = np.repeat(np.arange(4), 2)
    preds = np.array([0, 0, 1, 0, 2, 2, 0, 0])  # per class: 100, 50, 100, 0
    matrix = dp_matrix(preds, targets, d, p)
    assert isinstance(matrix.accuracy, pd.DataFrame)
    assert matrix.accuracy.index.name == "d_group" and matrix.accuracy.columns.name == "p_group"
    assert matrix.accuracy.loc["many", "many"] == 100.0
    assert matrix.accuracy.loc["many", "few"] == 50.0
    assert matrix.accuracy.loc["few", "many"] == 100.0
    assert matrix.accuracy.loc["few", "few"] == 0.0
    assert np.isnan(matrix.accuracy.loc["medium", "medium"])
    assert matrix.num_classes.loc["medium", "medium"] == 0
    assert int(matrix.num_classes.to_numpy().sum()) == 4


def test_dp_matrix_cell_means_recombine_to_group_means(places_train_counts):
    rng = np.random.default_rng(5)
    targets = np.repeat(np.arange(365), 4)
    preds = np.where(rng.random(targets.size) < 0.6, targets, rng.integers(0, 365, targets.size))
    d, p = d_groups(places_train_counts), p_groups(rng.random(365))
    matrix = dp_matrix(preds, targets, d, p)
    row = (matrix.accuracy.fillna(0) * matrix.num_classes).sum(axis=1) / matrix.num_classes.sum(axis=1)
    expected = group_accuracy(preds, targets, d).groups
    assert row.to_dict() == pytest.approx(expected)


# ---------------------------------------------------------------- kNN probe


def _knn_bruteforce(bank, bank_y, query, num_classes, k, temperature):
    bank = bank / np.linalg.norm(bank, axis=1, keepdims=True)
    query = query / np.linalg.norm(query, axis=1, keepdims=True)
    out = []
    for q in query:
        cos = bank @ q
        top = np.argsort(-cos, kind="stable")[:k]
        votes = np.zeros(num_classes)
        np.add.at(votes, bank_y[top], np.exp(cos[top] / temperature))
        out.append(int(np.argmax(votes)))
    return np.array(out)


def test_knn_matches_bruteforce_and_is_batch_invariant():
    rng = np.random.default_rng(7)
    bank, bank_y = rng.normal(size=(300, 16)), rng.integers(0, 5, 300)
    query = rng.normal(size=(40, 16))
    expected = _knn_bruteforce(bank, bank_y, query, 5, k=25, temperature=0.1)
    for batch_size in (1, 7, 1024):
        got = knn_predict(bank, bank_y, query, 5, k=25, temperature=0.1, batch_size=batch_size)
        assert got.dtype == torch.long and got.tolist() == expected.tolist()


def test_knn_recovers_clusters_and_ignores_feature_norm():
    rng = np.random.default_rng(8)
    centres = rng.normal(size=(4, 32)) * 5
    bank_y = np.repeat(np.arange(4), 30)
    bank = centres[bank_y] + rng.normal(size=(120, 32))
    query_y = np.arange(4).repeat(5)
    query = centres[query_y] + rng.normal(size=(20, 32))
    scale = rng.uniform(0.1, 10, (20, 1))
    assert knn_predict(bank, bank_y, query * scale, 4, k=10).tolist() == query_y.tolist()


def test_knn_clamps_k_to_the_bank_size():
    bank = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    bank_y = np.array([0, 0, 1])
    # At 49° the nearest entry is class 1, but the two class-0 entries outvote it when all vote.
    query = np.array([[np.cos(np.radians(49)), np.sin(np.radians(49))]])
    assert knn_predict(bank, bank_y, query, 2, k=1).tolist() == [1]
    assert knn_predict(bank, bank_y, query, 2, k=200).tolist() == [0]
    assert _knn_bruteforce(bank, bank_y, query, 2, k=3, temperature=0.1).tolist() == [0]


def test_knn_validation():
    with pytest.raises(ConfigError, match="share D"):
        knn_predict(np.ones((3, 2)), np.zeros(3), np.ones((1, 4)), 2)
    with pytest.raises(ConfigError, match="bank_targets"):
        knn_predict(np.ones((3, 2)), np.array([0, 1, 5]), np.ones((1, 2)), 2)
