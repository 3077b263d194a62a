"""The factorial page (notebook 08): hybrid models that take the part bias of one model and the prior order of
another, triples that differ in one factor only, and the two registry claims measured from result rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ltlib.book.analysis import factorial_gains, factorial_summary
from ltlib.book.claims import NB08, measure
from ltlib.errors import ConfigError
from ltlib.miniworld import load_world
from ltlib.miniworld.config import hybrid_name, split_hybrid_name
from ltlib.miniworld.experiments import FACTORS, factorial_jobs, factorial_triples

MODELS = ("mini-clip", "mini-openclip", "mini-metaclip")


def test_hybrid_names_round_trip_and_a_model_with_itself_is_the_model():
    name = hybrid_name("mini-clip", "mini-metaclip")
    assert split_hybrid_name(name) == ("mini-clip", "mini-metaclip")
    assert hybrid_name("mini-clip", "mini-clip") == "mini-clip" and split_hybrid_name("mini-clip") == ("mini-clip", "")


def test_a_hybrid_has_one_models_part_bias_and_the_others_prior_but_its_own_images_and_seed(tmp_path):
    world = load_world("smoke", cache_root=tmp_path)
    hybrid = hybrid_name("mini-clip", "mini-openclip")
    assert world.part_bias(hybrid) == world.part_bias("mini-clip") != world.part_bias("mini-openclip")
    np.testing.assert_array_equal(world.nominal_prior(hybrid), world.nominal_prior("mini-openclip"))
    assert not np.array_equal(world.nominal_prior(hybrid), world.nominal_prior("mini-clip"))
    assert world.pretrain_seed(hybrid) not in {world.pretrain_seed(m) for m in MODELS}
    assert world.model_key(hybrid) != world.model_key("mini-clip")
    assert world.model_key(hybrid)["order_row"] == world.model_names.index("mini-openclip")
    with pytest.raises(ConfigError, match="hybrid"):
        world.config.model(hybrid_name("mini-clip", "mini-reference"))  # the reference has no prior order to lend


@pytest.mark.parametrize("world_seed", [0, 1, 2])
def test_each_triple_varies_exactly_its_own_factor(tmp_path, world_seed):
    world = load_world("smoke", cache_root=tmp_path)
    triples = factorial_triples(MODELS, world_seed)
    assert list(triples) == list(FACTORS) and all(len(t) == len(set(t)) == 3 for t in triples.values())
    assert len({t[0] for t in triples.values()}) == 1  # every triple contains the control model
    for factor, members in triples.items():
        biases = {world.part_bias(m) for m in members}
        priors = {tuple(world.nominal_prior(m)) for m in members}
        seeds = {world.pretrain_seed(m) for m in members}
        assert len(seeds) == 3  # own initialisation and order everywhere
        assert (len(biases), len(priors)) == {"pre-training seed": (1, 1), "prior order": (1, 3),
                                              "part bias": (3, 1)}[factor]
    jobs = factorial_jobs("smoke", MODELS, "mini-reference", (0,), world_seed=world_seed)
    assert {j.backbone for j in jobs} == {m for t in triples.values() for m in t}
    expected = {("LA", "mini_lift", "independent", world_seed)}
    assert {(j.method, j.recipe, j.order, j.world_seed) for j in jobs} == expected


def _rows(gains: dict[str, list[float]], members: float = 50.0) -> pd.DataFrame:
    """Result rows of notebook 08: per world and factor three members at ``members`` ± 1 and the triple at
    ``members`` + gain."""
    rows = []
    for factor, per_world in gains.items():
        for world, gain in enumerate(per_world):
            for k, offset in enumerate((-1.0, 0.0, 1.0)):
                rows.append({"notebook": NB08, "metric": "accuracy", "group": "overall", "control": factor,
                             "world_seed": world, "seed": 0, "n_models": 1, "rule": "logit_sum",
                             "backbones": f"m{k}", "value": members + offset})
            for rule, value in (("logit_sum", members + gain), ("prob_mean", 0.0)):
                rows.append({"notebook": NB08, "metric": "accuracy", "group": "overall", "control": factor,
                             "world_seed": world, "seed": 0, "n_models": 3, "rule": rule,
                             "backbones": "m0+m1+m2", "value": value})
    return pd.DataFrame(rows)


def test_the_claims_difference_the_factors_gains_per_world_under_the_methods_rule():
    rows = _rows({"pre-training seed": [1.0, 2.0, 0.5], "prior order": [3.0, 2.0, 2.5], "part bias": [2.0, 5.0, 4.5]})
    np.testing.assert_allclose(measure("factorial_prior_over_seed", rows), [2.0, 0.0, 2.0])
    np.testing.assert_allclose(measure("factorial_part_over_prior", rows), [-1.0, 3.0, 2.0])
    # a factor without rows leaves the claim unmeasured rather than silently zero
    assert len(measure("factorial_part_over_prior", rows[rows.control != "part bias"])) == 0


def test_gains_and_their_summary_over_worlds():
    rows = _rows({"pre-training seed": [1.0, 3.0], "part bias": [2.0, 4.0]})
    gains = factorial_gains(rows[rows.rule == "logit_sum"])
    assert list(gains.factor) == ["pre-training seed", "part bias"] * 2  # the factors in their page order
    seed = gains[gains.factor == "pre-training seed"]
    np.testing.assert_allclose(seed.gain_over_mean, [1.0, 3.0])
    np.testing.assert_allclose(seed.gain_over_best, [0.0, 2.0])  # best member is 1 point above the mean
    summary = factorial_summary(gains)
    # mean 2, sd √2, t(0.975, 1) = 12.706: half-width 12.706 · √2 / √2
    assert summary.loc["pre-training seed", "gain_over_mean"] == "+2.0 [-10.7, +14.7]"
