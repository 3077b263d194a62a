"""The pre-registered claims registry, the regime card and the verdict rule over independent worlds."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from ltlib.book.registry import (INCONCLUSIVE, NO_VERDICT, NOT_MEASURED, NOT_REPRODUCED, REPRODUCED, SINGLE_RUN,
                                 ClaimSpec, check_regime, decide, load_registry, load_regime,
                                 margin_reasons, registry_table)
from ltlib.errors import ConfigError


def spec(direction: str = "positive", margin: float | None = None, role: str = "claim") -> ClaimSpec:
    why = "test margin" if margin else None
    return ClaimSpec(key="k", artefact="a", statement="s", paper="p", role=role, direction=direction,
                     unit="points", measure="m", margin=margin, margin_why=why)


# ------------------------------------------------------------------ directional claims
def test_interval_is_the_t_interval_over_worlds():
    result = decide([1.0, 2.0, 3.0], spec())
    half = stats.t.ppf(0.975, 2) * 1.0 / math.sqrt(3)  # sd of (1, 2, 3) is exactly 1
    # float64 arithmetic on three small integers: agreement to a few ulps of 2.0
    assert (result.mean, result.low, result.high) == pytest.approx((2.0, 2.0 - half, 2.0 + half), abs=1e-12)
    assert result.worlds == 3 and result.per_world == (1.0, 2.0, 3.0)


def test_directional_verdicts_follow_the_side_of_the_interval():
    assert decide([1.0, 2.0, 3.0], spec()).verdict == INCONCLUSIVE   # [-0.48, 4.48] straddles zero
    assert decide([2.0, 3.0, 4.0], spec()).verdict == REPRODUCED     # [0.52, 5.48]
    assert decide([-2.0, -3.0, -4.0], spec()).verdict == NOT_REPRODUCED
    assert decide([-2.0, -3.0, -4.0], spec("negative")).verdict == REPRODUCED
    assert decide([2.0, 3.0, 4.0], spec("negative")).verdict == NOT_REPRODUCED
    # a straddling interval is inconclusive whichever side is claimed (the sign flip swaps the interval's ends)
    assert decide([1.0, 2.0, 3.0], spec("negative")).verdict == INCONCLUSIVE
    assert decide([-1.0, -2.0, -3.0], spec("negative")).verdict == INCONCLUSIVE


def test_firm_needs_every_world_on_the_verdicts_side():
    all_positive = decide([2.0, 3.0, 4.0], spec())
    assert all_positive.verdict == REPRODUCED and all_positive.firm
    one_world_against = decide([1.0] * 19 + [-0.1], spec())
    assert one_world_against.verdict == REPRODUCED and not one_world_against.firm
    assert not decide([1.0, 2.0, 3.0], spec()).firm  # an inconclusive verdict is never firm


# ------------------------------------------------------------------ claims of no effect
def test_a_wide_interval_around_zero_is_never_reproduced():
    result = decide([-0.3, 0.3, 0.0], spec("equivalent", margin=0.15))
    assert result.low < 0 < result.high and result.verdict == INCONCLUSIVE


def test_equivalence_uses_the_90_percent_interval_inside_the_margin():
    values = np.array([-1.0, -0.787, 0.0, 0.787, 1.0])  # mean 0, sd 0.8998
    half90 = stats.t.ppf(0.95, 4) * values.std(ddof=1) / math.sqrt(5)
    half95 = stats.t.ppf(0.975, 4) * values.std(ddof=1) / math.sqrt(5)
    assert half90 < 1.0 < half95  # the case separates TOST (90 %) from a 95 % interval
    result = decide(values, spec("equivalent", margin=1.0))
    assert result.verdict == REPRODUCED and not result.firm  # two worlds sit exactly on the margin


def test_equivalence_reproduced_firm_and_not_reproduced():
    small = decide([0.01, -0.02, 0.03, 0.0, -0.01], spec("equivalent", margin=0.15))
    assert small.verdict == REPRODUCED and small.firm
    large = decide([0.5, 0.6, 0.55], spec("equivalent", margin=0.15))
    assert large.verdict == NOT_REPRODUCED and large.firm
    beyond_but_wide = decide([0.1, 0.5, 0.9], spec("equivalent", margin=0.15))
    assert beyond_but_wide.verdict == INCONCLUSIVE


# ------------------------------------------------------------------ one world, nothing, descriptive
def test_a_single_world_gets_no_verdict_by_sign():
    for value in (5.0, -5.0):
        result = decide([value], spec())
        assert result.verdict == SINGLE_RUN and math.isnan(result.low) and not result.firm


def test_nan_worlds_are_dropped_and_none_left_is_not_measured():
    assert decide([float("nan"), 2.0, 3.0, 4.0], spec()).worlds == 3
    assert decide([float("nan")], spec()).verdict == NOT_MEASURED
    assert decide([], spec()).verdict == NOT_MEASURED


def test_descriptive_entries_get_no_verdict():
    assert decide([1.0, 2.0], spec("none", role="descriptive")).verdict == NO_VERDICT


# ------------------------------------------------------------------ the registry file
def test_registry_loads_with_unique_keys_and_margins_for_every_null_claim():
    claims = load_registry()
    assert len({c.key for c in claims}) == len(claims) >= 35
    for claim in claims:
        if claim.direction == "equivalent":
            assert claim.margin and claim.margin > 0 and claim.margin_why


def test_registry_has_a_row_for_every_artefact_the_paper_reports():
    keys = {c.key for c in load_registry()}
    required = {
        "zeroshot_dfew_not_worse",                                  # Tab. 1/2
        "la_flattens_ps", "la_no_ps_trend", "la_trend_prior",       # Fig. 3
        "zeroshot_ce_trend_prior", "vpt_la_trend_prior",            # Fig. 3 right, §4.1 (VPT)
        "parameter_over_data", "dp_worst_cell", "la_hurts_pfew_in_dmany",  # Fig. 2
        "glatrain_over_la", "glaposthoc_over_glatrain", "glatrain_trend",  # Tab. 3
        "knn_by_dgroup", "scratch_no_trend", "reliance_follows_part_bias",  # Tab. 4, Fig. 9, Fig. 4/10
        "method_beats_lift_mean", "method_beats_best_single", "method_beats_gla_posthoc",  # Tab. 5–7
        "method_gains_all_cells", "method_gain_most_pfew",          # Fig. 6 / Tab. 11
        "tab8_monotone", "gain_largest_on_few", "rule_equivalence",  # Tab. 8, Eq. 7
        "reverse_over_consistent", "balance_best", "posthoc_beats_joint", "cost_linear",  # Tab. 13, rebuttal
        "fig12_b_gap", "fig12_a_no_gap", "fig12_gap_is_pc_shift",   # Fig. 12
    }
    assert required <= keys, sorted(required - keys)


def test_controls_and_sanity_checks_are_labelled_as_such():
    roles = {c.key: c.role for c in load_registry()}
    assert roles["ce_follows_ps"] == "control"
    assert roles["cost_linear"] == roles["balance_best"] == "sanity"


def test_glatrain_is_never_judged_against_the_prior_it_trained_with():
    glatrain = next(c for c in load_registry() if c.key == "glatrain_trend")
    assert "estimate" not in glatrain.prior and "truth" in glatrain.prior


@pytest.mark.parametrize("changes, message", [
    (dict(direction="equivalent"), "needs margin"),
    (dict(direction="positive", margin=1.0, margin_why="x"), "only meaningful"),
    (dict(direction="sideways"), "direction must be one of"),
    (dict(role="finding"), "role must be one of"),
    (dict(role="descriptive"), "descriptive"),
    (dict(prior=("guess",)), "prior must be one of"),
])
def test_invalid_entries_are_refused_with_the_claim_named(changes, message):
    fields = dict(key="bad", artefact="a", statement="s", paper="p", role="claim", direction="positive",
                  unit="u", measure="m")
    with pytest.raises(ConfigError, match=message) as info:
        ClaimSpec(**{**fields, **changes})
    assert "'bad'" in str(info.value)


def test_duplicate_keys_are_refused(tmp_path):
    entry = ("  - {key: a, artefact: x, statement: s, paper: p, role: claim, direction: positive, "
             "unit: u, measure: m}\n")
    path = tmp_path / "registry.yaml"
    path.write_text("claims:\n" + entry + entry)
    with pytest.raises(ConfigError, match="duplicate claim key"):
        load_registry(path)


# ------------------------------------------------------------------ the regime card
def test_regime_card_shows_target_against_measured():
    card = load_regime("paper")
    table = check_regime({"zeroshot_top1": 45.0, "dfew_share": 25.0, "finetune_gain": float("nan")}, card)
    met = dict(zip(table["property"], table["met"]))
    assert met["zeroshot_top1"] and not met["dfew_share"]      # 25 % is above the 10–20 % band
    assert not met["finetune_gain"] and not met["scratch_over_chance"]  # NaN and missing are never met
    target = dict(zip(table["property"], table["target"]))
    assert target["zeroshot_top1"] == "≥ 40" and target["dfew_share"] == "10 – 20"
    assert target["book_minutes"] == "≤ 20"


def test_regime_card_refuses_unknown_properties():
    with pytest.raises(ConfigError, match="unknown regime"):
        check_regime({"accuracy_of_everything": 1.0}, load_regime("paper"))
    with pytest.raises(ConfigError, match="unknown regime card"):
        load_regime("nonexistent")


def test_the_books_registry_tables_show_every_claim_rule_and_margin():
    claims = load_registry()
    table = registry_table(claims)
    assert list(table["claim"]) == [c.statement for c in claims]
    rules = dict(zip(table["claim"], table["rule"]))
    for c in claims:
        expected = f"|x| < {c.margin:g}" if c.direction == "equivalent" else {"positive": "> 0", "negative": "< 0",
                                                                                "none": "no verdict"}[c.direction]
        assert rules[c.statement] == expected
    reasons = margin_reasons(claims)
    assert list(reasons["claim"]) == [c.statement for c in claims if c.direction == "equivalent"]
    assert all(reasons["why this size"].str.len() > 20)
