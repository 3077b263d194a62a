"""Verdict rules and the claims registry evaluated on hand-made result rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ltlib.book.claims import CLAIMS
from ltlib.book.report import (MISSING, NOT_REPRODUCED, PARTIAL, PENDING, REPRODUCED, Claim, evaluate_claims,
                          verdict)


@pytest.mark.parametrize("values, rule, expected", [
    ([0.5, 0.6, 0.55], "positive", REPRODUCED),
    ([0.5, -0.4, 0.2], "positive", PARTIAL),
    ([-0.5, -0.6, -0.55], "positive", NOT_REPRODUCED),
    ([0.05, -0.04, 0.01], "null", REPRODUCED),
    ([0.5, 0.6, 0.55], "null", NOT_REPRODUCED),
    ([0.01], "zero", REPRODUCED),
    ([0.5], "zero", NOT_REPRODUCED),
    ([0.3], "positive", PARTIAL),
    ([], "positive", MISSING),
])
def test_verdict_rules(values, rule, expected):
    assert verdict(np.array(values), rule)[0] == expected


def rows(**columns) -> pd.DataFrame:
    base = {"notebook": "01_imbalance", "metric": "trend_rho", "group": "p_s", "backbones": "a"}
    return pd.DataFrame([{**base, **columns, "seed": s, "value": v} for s, v in enumerate(columns.pop("values"))])


def test_claims_are_evaluated_from_rows_and_full_scale_claims_stay_pending_in_the_mini_world():
    ce = rows(method="CE", values=[0.9, 0.8, 0.85])
    la = rows(method="LA", values=[0.1, 0.0, 0.05])
    report = evaluate_claims(CLAIMS, pd.concat([ce, la], ignore_index=True), scale="mini").set_index("key")
    assert report.loc["ce_follows_ps", "verdict (mini world)"] == REPRODUCED
    assert report.loc["la_flattens_ps", "verdict (mini world)"] == REPRODUCED
    assert report.loc["la_flattens_ps", "stat_mean"] == pytest.approx(0.8)
    assert report.loc["method_beats_lift", "verdict (mini world)"] == MISSING
    assert report.loc["method_beats_lift", "full scale"] == PENDING
    assert report.loc["ce_follows_ps", "full scale"] == "—"
    assert len({c.key for c in CLAIMS}) == len(CLAIMS)


def test_a_claim_of_no_effect_uses_the_null_rule():
    claim = Claim("k", "Fig. 9", "no trend", "qualitative", "rho", lambda r: r["value"].to_numpy(), rule="null")
    flat = evaluate_claims([claim], pd.DataFrame({"value": [0.1, -0.1, 0.05]}), "mini")
    assert flat["verdict (mini world)"].item() == REPRODUCED
    full = evaluate_claims([claim], pd.DataFrame({"value": [0.5, 0.6, 0.7]}), "full")
    assert full["verdict"].item() == NOT_REPRODUCED


def test_confounder_claims_read_the_contrasts_the_confounder_notebook_writes():
    def contrast(key: str, values: list[float]) -> pd.DataFrame:
        return rows(notebook="02_confounder", metric="contrast", group=key, method="m", backbones="", values=values)

    table = pd.concat([contrast("paper_b", [4.0, 5.0, 6.0]), contrast("paper_a", [0.5, -0.5, 0.2]),
                       contrast("remix_b", [3.0, 4.0, 3.5]), contrast("proxy", [-2.0, -1.0, -3.0])],
                      ignore_index=True)
    report = evaluate_claims(CLAIMS, table, scale="mini").set_index("key")["verdict (mini world)"]
    assert report["fig12_b_gap"] == REPRODUCED
    assert report["fig12_a_no_gap"] == REPRODUCED
    assert report["fig12_gap_is_pc_shift"] == NOT_REPRODUCED  # a remix residual far from 0
    assert report["proxy_undoes_confounding"] == NOT_REPRODUCED


def test_provenance_table_counts_rows_runs_and_seeds_per_notebook_and_short_revision():
    table = pd.DataFrame({"notebook": ["a", "a", "a", "b"],
                          "git_sha": ["0123456789abcdef"] * 3 + ["fedcba9876543210-dirty"],
                          "run_id": ["r1", "r1", "r2", "r3"], "seed": [0, 1, -1, 2], "value": [1.0, 2.0, 3.0, 4.0]})
    from ltlib.book.report import provenance_table
    out = provenance_table(table).set_index("notebook")
    assert out.loc["a", "git_sha"] == "0123456789ab" and out.loc["b", "git_sha"] == "fedcba987654-dirty"
    assert out.loc["a", "rows"] == 3 and out.loc["a", "run_ids"] == 2 and out.loc["a", "seeds"] == [0, 1]


def test_method_claims_use_the_combination_of_every_model_not_the_subsets():
    def acc(backbones: str, n_models: int, values: list[float], **keys) -> pd.DataFrame:
        return rows(**{"notebook": "03_main_tables", "metric": "accuracy", "group": "overall", "method": "LA",
                       "rule": "logit_sum", "backbones": backbones, "n_models": n_models, "values": values, **keys})

    table = pd.concat([acc("a", 1, [30.0, 30.0, 30.0]),
                       acc("a+b", 2, [31.0, 31.0, 31.0]),      # a Tab. 8 subset: must be ignored
                       acc("a+b+c", 3, [37.0, 38.0, 39.0]),
                       acc("a+b+c", 3, [90.0, 90.0, 90.0], rule="prob_mean"),  # the other rule: ignored
                       acc("a+b+c", 3, [0.0, 0.0, 0.0], control="same backbone, different seeds"),  # a control
                       acc("a+b+c", 3, [0.0, 0.0, 0.0], scenario="reverse")],  # Tab. 13: ignored here
                      ignore_index=True)
    report = evaluate_claims(CLAIMS, table, scale="mini").set_index("key")
    assert report.loc["method_beats_lift", "stat_mean"] == pytest.approx(8.0)


def test_claims_select_scenarios_and_costs_by_column():
    def scenario(order: str, values: list[float]) -> pd.DataFrame:
        return rows(notebook="03_main_tables", metric="scenario_accuracy", group="overall", method="LA",
                    rule="logit_sum", backbones="a+b+c", n_models=3, scenario=order, values=values)

    singles = rows(notebook="03_main_tables", metric="scenario_accuracy", group="overall", method="LA",
                   rule="logit_sum", backbones="a", n_models=1, scenario="balanced", values=[99.0, 99.0, 99.0])
    cost = pd.DataFrame({"notebook": "03_main_tables", "metric": "gflops_per_image", "method": "backdoor adjustment",
                         "n_models": [1, 2, 3], "value": [2.0, 4.0, 6.0], "seed": -1, "group": "inference"})
    table = pd.concat([scenario("balanced", [50.0, 51.0, 52.0]), scenario("consistent", [40.0, 41.0, 42.0]),
                       scenario("reverse", [45.0, 45.0, 45.0]), singles, cost], ignore_index=True)
    report = evaluate_claims(CLAIMS, table, scale="mini").set_index("key")
    assert report.loc["balance_best", "stat_mean"] == pytest.approx(6.0)  # balanced − reverse, per seed
    assert report.loc["reverse_over_consistent", "stat_mean"] == pytest.approx(4.0)
    assert report.loc["cost_linear", "stat_mean"] == pytest.approx(0.0)
