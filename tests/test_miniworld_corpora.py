"""Pre-training corpora: prior profiles, class orders with controllable overlap, exact counts, captions."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr
from tolerances import CLOSED_ABS  # float64 closed forms

from ltlib.errors import ConfigError
from ltlib.miniworld import build_layout
from ltlib.miniworld.captions import GENERIC_SUBJECT, sample_captions
from ltlib.miniworld.config import CaptionConfig, RenderConfig
from ltlib.miniworld.corpora import (build_corpus, integer_counts, labels_and_visibility, popularity_orders,
                                     prior_for_order, prior_profile, split_by_fraction)

LAYOUT = build_layout(10, 4)


@pytest.mark.parametrize("profile", ["exponential", "zipf"])
def test_prior_profile_has_the_requested_imbalance(profile):
    prior = prior_profile(40, profile, 1000.0)
    assert prior.sum() == pytest.approx(1.0, abs=CLOSED_ABS) and np.all(np.diff(prior) < 0)
    assert prior[0] / prior[-1] == pytest.approx(1000.0, abs=CLOSED_ABS)


def test_exponential_profile_is_log_linear_and_zipf_is_a_power_law():
    exp, zipf = prior_profile(40, "exponential", 100.0), prior_profile(40, "zipf", 100.0)
    assert np.allclose(np.diff(np.log(exp)), -np.log(100.0) / 39, rtol=0, atol=CLOSED_ABS)
    ranks = np.log(np.arange(1, 41))
    slope = np.polyfit(ranks, np.log(zipf), 1)[0]
    assert slope == pytest.approx(-np.log(100.0) / np.log(40), abs=CLOSED_ABS)


def test_prior_profile_rejects_bad_parameters():
    with pytest.raises(ConfigError, match="profile"):
        prior_profile(10, "pareto", 10.0)
    with pytest.raises(ConfigError, match="imbalance_ratio"):
        prior_profile(10, "zipf", 0.5)


def test_popularity_orders_overlap_is_controlled():
    same = popularity_orders(40, 3, 1.0, seed=0)
    assert (same == same[0]).all()
    rho = {c: np.mean([spearmanr(*np.argsort(popularity_orders(40, 2, c, seed=s), axis=1))[0] for s in range(30)])
           for c in (0.0, 0.5)}
    assert abs(rho[0.0]) < 0.1  # independent orders
    assert 0.3 < rho[0.5] < 0.7  # Spearman of a Gaussian copula with r = 0.5 is (6/π)·asin(1/4) ≈ 0.48


def test_prior_for_order_puts_the_profile_on_the_ordered_classes():
    order = np.array([2, 0, 1])
    prior = prior_for_order(np.array([0.5, 0.3, 0.2]), order)
    assert prior.tolist() == [0.3, 0.2, 0.5]


def test_integer_counts_are_exact_and_floored():
    counts = integer_counts(prior_profile(40, "exponential", 1000.0), 24000, min_count=2)
    assert counts.sum() == 24000 and counts.min() >= 2
    assert np.all(np.diff(counts) <= 0)  # rounding keeps the order
    with pytest.raises(ConfigError, match="cannot give"):
        integer_counts(np.full(10, 0.1), 5, min_count=1)


def test_labels_and_visibility_match_counts_exactly():
    counts = np.array([5, 3, 0, 8])
    heads = split_by_fraction(counts, 0.8)
    labels, visibility = labels_and_visibility(counts, heads, seed=0)
    assert np.bincount(labels, minlength=4).tolist() == counts.tolist()
    assert [int(np.sum((labels == k) & (visibility == 0))) for k in range(4)] == heads.tolist() == [4, 2, 0, 6]


def test_captions_follow_the_rates_and_are_deterministic():
    labels, visibility = np.arange(400) % 40, (np.arange(400) // 40) % 2
    never = CaptionConfig(name_rate=0.0, part_rate=0.0)
    captions, index = sample_captions(LAYOUT, labels, visibility, never, seed=0)
    assert captions == (f"a photo of a {GENERIC_SUBJECT}.",) and (index == 0).all()
    always = CaptionConfig(name_rate=1.0, part_rate=1.0, templates=("{}",))
    captions, index = sample_captions(LAYOUT, labels, visibility, always, seed=0)
    texts = [captions[i] for i in index]
    assert texts[0] == "zorbat with a round head" and texts[40 + 1] == "glimmet with a boxy body"
    mixed = CaptionConfig(name_rate=0.5, part_rate=0.5, templates=("a {}.", "my {}."))
    first = sample_captions(LAYOUT, labels, visibility, mixed, seed=3)
    assert first[0] == sample_captions(LAYOUT, labels, visibility, mixed, seed=3)[0]
    named = np.mean([LAYOUT.class_names[y] in first[0][i] for y, i in zip(labels, first[1])])
    assert 0.4 < named < 0.6


def test_caption_config_is_validated():
    with pytest.raises(ConfigError, match="name_rate"):
        sample_captions(LAYOUT, np.array([0]), np.array([0]), CaptionConfig(name_rate=1.5), seed=0)
    with pytest.raises(ConfigError, match="templates"):
        sample_captions(LAYOUT, np.array([0]), np.array([0]), CaptionConfig(templates=("no slot",)), seed=0)


def test_build_corpus_realises_the_prior_and_part_bias():
    counts = integer_counts(prior_profile(8, "exponential", 20.0), 400, min_count=2)
    layout = build_layout(4, 2)
    corpus = build_corpus(layout, RenderConfig(), CaptionConfig(), counts, head_fraction=0.75, seed=1)
    assert len(corpus) == 400 and corpus.class_counts(8).tolist() == counts.tolist()
    assert corpus.images.shape == (400, 3, 32, 32)
    # Statistical: 400 seeded draws with P(head) = 0.75 have sd √(0.75·0.25/400) ≈ 0.022; the corpus
    # realises the fraction by design more tightly than that (numpy's generator: the same on every CPU).
    assert abs(np.mean(corpus.visibility == 0) - 0.75) < 0.02
    assert all(layout.class_names[y] in corpus.captions[i] for y, i in zip(corpus.labels, corpus.caption_index))
