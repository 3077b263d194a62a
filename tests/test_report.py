"""The reproduction report: the registry's claims measured per world from hand-made result rows, judged by
``ltlib.book.registry.decide``, with variants, preconditions and per-world readings."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from tolerances import CLOSED_ABS  # float64 closed forms

from ltlib.book.claims import MEASURES
from ltlib.book.registry import INCONCLUSIVE, NOT_MEASURED, REPRODUCED, ClaimSpec, load_registry
from ltlib.book.report import (OTHER_SCALE, UNINFORMATIVE, evaluate, headline_table, per_world_counts,
                               provenance_table, summary_counts, variants, verdict_records)
from ltlib.results import COLUMNS, normalized
from ltlib.storage import read_table

REGISTRY = {spec.key: spec for spec in load_registry()}


def rows(values: dict[int, list[float]], **columns) -> pd.DataFrame:
    """Result rows: ``values`` maps a world seed to its values (one per backbone a, b, c, …), ``columns`` the rest."""
    base = {"notebook": "01_imbalance", "metric": "trend_rho", "group": "p_s", "method": "LA", "seed": 0}
    out = [{**base, **columns, "world_seed": w, "backbones": columns.get("backbones", "abc"[i]), "value": v}
           for w, vs in values.items() for i, v in enumerate(vs)]
    return normalized(pd.DataFrame(out))


def judge(table: pd.DataFrame, *keys: str, scale: str = "mini") -> pd.DataFrame:
    return evaluate([REGISTRY[k] for k in keys], table, scale).set_index(["key", "prior_source", "calibration"])


def test_every_registry_claim_has_a_measurement_or_is_honestly_not_measured():
    unmeasured = {key for key in REGISTRY if key not in MEASURES}
    assert unmeasured <= {"factorial_part_over_prior", "factorial_prior_over_seed"}
    report = evaluate(list(REGISTRY.values()), normalized(pd.DataFrame(columns=list(COLUMNS))))
    assert set(report.key) == set(REGISTRY) and (report.verdict == NOT_MEASURED).all()


def test_a_claim_is_judged_over_worlds_with_models_averaged_inside_each_world():
    # CE − LA trend against P_S: per world the mean over models a, b, c of the paired differences
    ce = rows({0: [0.6, 0.5, 0.7], 1: [0.6, 0.6, 0.6], 2: [0.5, 0.7, 0.6]}, method="CE")
    la = rows({0: [0.1, 0.0, 0.2], 1: [0.2, 0.0, 0.1], 2: [0.0, 0.1, 0.2]}, method="LA")
    line = judge(pd.concat([ce, la]), "la_flattens_ps").iloc[0]
    assert json.loads(line.per_world) == pytest.approx([0.5, 0.5, 0.5], abs=CLOSED_ABS)
    assert line.n_worlds == 3 and line.verdict == REPRODUCED and line.firm


def test_a_negative_claim_straddling_zero_is_inconclusive_not_reproduced():
    def cell(method: str, values: dict[int, list[float]]) -> pd.DataFrame:
        return rows(values, metric="group_accuracy", method=method, group="D-many×P-few", prior_source="estimate",
                    n_models=1)
    table = pd.concat([cell("LA", {0: [40.0], 1: [60.0], 2: [50.0]}), cell("CE", {0: [50.0], 1: [50.0], 2: [50.0]})])
    line = judge(table, "la_hurts_pfew_in_dmany").loc[("la_hurts_pfew_in_dmany", "estimate", "")]
    assert line.verdict == INCONCLUSIVE and not line.firm


def test_each_prior_source_is_a_variant_and_a_changing_verdict_is_noted():
    def trend(group: str, values: dict[int, list[float]]) -> pd.DataFrame:
        return rows(values, metric="excess_trend_rho", method="LA", group=group)
    table = pd.concat([trend("p_hat", {0: [0.3], 1: [0.4], 2: [0.35]}), trend("pi", {0: [0.2], 1: [-0.3], 2: [0.1]}),
                       trend("p_ref", {0: [0.3], 1: [0.3], 2: [0.31]})])
    report = judge(table, "la_trend_prior")
    assert [v for v in variants(REGISTRY["la_trend_prior"])] == [("estimate", ""), ("truth", ""), ("reference", "")]
    assert report.loc[("la_trend_prior", "estimate", ""), "verdict"] == REPRODUCED
    assert report.loc[("la_trend_prior", "truth", ""), "verdict"] == INCONCLUSIVE
    assert "truth: inconclusive" in report.loc[("la_trend_prior", "estimate", ""), "note"]


def test_a_null_claim_with_a_wide_interval_is_inconclusive_and_a_tight_one_reproduced():
    wide = rows({0: [-8.0], 1: [9.0], 2: [0.5]}, notebook="02_confounder", metric="contrast", group="fig12_a_no_gap")
    tight = rows({0: [0.4], 1: [-0.3], 2: [0.1]}, notebook="02_confounder", metric="contrast", group="fig12_a_no_gap")
    assert judge(wide, "fig12_a_no_gap").iloc[0].verdict == INCONCLUSIVE
    assert judge(tight, "fig12_a_no_gap").iloc[0].verdict == REPRODUCED


def test_the_scratch_claim_is_uninformative_when_the_scratch_model_does_not_learn():
    keys = dict(control="from scratch", backbones="a")
    trend = pd.concat([rows({0: [0.01], 1: [-0.02], 2: [0.0]}, group=g, **keys) for g in ("p_hat", "pi")])
    chance = rows({0: [2.5], 1: [2.5], 2: [2.5]}, metric="chance", group="overall", **keys)
    weak = rows({0: [5.0], 1: [6.0], 2: [4.0]}, metric="accuracy", group="overall", **keys)
    strong = rows({0: [20.0], 1: [18.0], 2: [25.0]}, metric="accuracy", group="overall", **keys)
    assert judge(pd.concat([trend, chance, weak]), "scratch_no_trend").iloc[0].verdict == UNINFORMATIVE
    assert judge(pd.concat([trend, chance, strong]), "scratch_no_trend").iloc[0].verdict == REPRODUCED


def test_method_claims_use_the_combination_of_every_model_against_the_mean_and_the_best_single():
    def acc(backbones: str, n: int, values: dict[int, list[float]], **keys) -> pd.DataFrame:
        return rows(values, **{"notebook": "03_main_tables", "metric": "accuracy", "group": "overall",
                               "rule": "logit_sum", "backbones": backbones, "n_models": n, **keys})
    table = pd.concat([acc("a", 1, {0: [30.0], 1: [31.0]}), acc("b", 1, {0: [34.0], 1: [35.0]}),
                       acc("a+b", 2, {0: [99.0], 1: [99.0]}, rule="prob_mean"),  # the other rule: ignored
                       acc("a+b", 2, {0: [0.0], 1: [0.0]}, scenario="reverse"),  # Tab. 13: ignored here
                       acc("a+b", 2, {0: [37.0], 1: [38.0]})])
    report = judge(table, "method_beats_lift_mean", "method_beats_best_single")
    assert json.loads(report.loc[("method_beats_lift_mean", "", ""), "per_world"]) == pytest.approx([5.0, 5.0])
    assert json.loads(report.loc[("method_beats_best_single", "", ""), "per_world"]) == pytest.approx([3.0, 3.0])


def test_scenarios_and_costs_are_selected_by_column():
    def scenario(order: str, values: dict[int, list[float]]) -> pd.DataFrame:
        return rows(values, notebook="03_main_tables", metric="scenario_accuracy", group="overall", rule="logit_sum",
                    backbones="a+b+c", n_models=3, scenario=order)
    cost = pd.concat([rows({0: [2.0 * m], 1: [2.0 * m]}, notebook="03_main_tables", metric="gflops_per_image",
                           method="backdoor adjustment", n_models=m, group="inference") for m in (1, 2, 3)])
    table = pd.concat([scenario("balanced", {0: [50.0], 1: [52.0]}), scenario("consistent", {0: [40.0], 1: [42.0]}),
                       scenario("reverse", {0: [45.0], 1: [45.0]}), cost])
    report = judge(table, "balance_best", "reverse_over_consistent", "cost_linear")
    assert report.loc[("balance_best", "", ""), "mean"] == pytest.approx(6.0, abs=CLOSED_ABS)
    assert report.loc[("reverse_over_consistent", "", ""), "mean"] == pytest.approx(4.0, abs=CLOSED_ABS)
    assert report.loc[("cost_linear", "", ""), "mean"] == pytest.approx(0.0, abs=CLOSED_ABS)


def test_counts_take_headline_claims_only_and_count_firm_verdicts_separately():
    ce = rows({0: [0.6], 1: [0.6], 2: [0.6]}, method="CE")  # ce_follows_ps is a control: not counted
    la = rows({0: [0.1], 1: [-0.1], 2: [0.3]}, method="LA")
    report = evaluate([REGISTRY[k] for k in ("ce_follows_ps", "la_flattens_ps", "method_beats_lift_mean")],
                      pd.concat([ce, la]))
    counts = summary_counts(report)
    assert counts["claims"] == 2 and counts[REPRODUCED] == 1 and counts[NOT_MEASURED] == 1
    assert counts["firm_reproduced"] == 1
    readings = per_world_counts(report)
    assert readings.loc["w1", "✓"] == 1 and "verdict" in headline_table(report).columns
    assert list(verdict_records(report).columns[:3]) == ["key", "statement", "artefact"]


def test_a_full_scale_claim_is_not_judged_on_the_mini_world():
    spec = ClaimSpec(key="ce_follows_ps", artefact="a", statement="s", paper="p", role="claim", direction="positive",
                     unit="ρ", measure="m", scale="full")
    table = rows({0: [0.6], 1: [0.7]}, method="CE")
    assert evaluate([spec], table, "mini").iloc[0].verdict == OTHER_SCALE
    assert evaluate([spec], table, "full").iloc[0].verdict != OTHER_SCALE


def test_provenance_table_counts_rows_runs_worlds_and_seeds_per_notebook_and_short_revision():
    table = pd.DataFrame({"notebook": ["a", "a", "a", "b"],
                          "git_sha": ["0123456789abcdef"] * 3 + ["fedcba9876543210-dirty"],
                          "run_id": ["r1", "r1", "r2", "r3"], "seed": [0, 1, -1, 2], "world_seed": [0, 1, 1, -1],
                          "value": [1.0, 2.0, 3.0, 4.0]})
    out = provenance_table(table).set_index("notebook")
    assert out.loc["a", "git_sha"] == "0123456789ab" and out.loc["b", "git_sha"] == "fedcba987654-dirty"
    assert out.loc["a", "rows"] == 3 and out.loc["a", "run_ids"] == 2 and out.loc["a", "seeds"] == [0, 1]
    assert out.loc["a", "worlds"] == [0, 1] and out.loc["b", "worlds"] == []


def _lines(verdicts, firm, prior=None) -> pd.DataFrame:
    """Report lines of claims a, a (variant truth), b, c with the given verdicts and firmness."""
    return pd.DataFrame({"key": ["a", "a", "b", "c"], "prior_source": prior or ["", "truth", "", ""],
                         "calibration": [""] * 4, "headline": [True, False, True, True], "verdict": verdicts,
                         "firm": firm, "mean": [0.64, 1.0, 2.0, 3.0], "low": [-0.33, 0.5, 1.0, 2.0],
                         "high": [1.6, 1.5, 3.0, 4.0], "note": ["", "", "x", ""]})


def test_firm_requires_the_same_verdict_in_the_committed_build_with_other_kernels(tmp_path):
    from ltlib.book.report import rounding_check

    report = _lines([REPRODUCED, INCONCLUSIVE, REPRODUCED, REPRODUCED], [True, False, True, True])
    # the other build: a's headline flips, a's variant flips the other way (it was not firm, stays so), b agrees
    # although that build calls it not firm (its firm column is never read), c is absent (a claim added since)
    other = _lines([INCONCLUSIVE, REPRODUCED, REPRODUCED, REPRODUCED], [False, True, False, True]).iloc[:3]
    other.to_csv(tmp_path / "alt.csv", index=False)
    checked = rounding_check(report, {"DEFAULT": tmp_path / "alt.csv", "AVX512": tmp_path / "missing.csv"}, "AVX512")
    assert checked.firm.tolist() == [False, False, True, False]
    assert checked.note.tolist() == [
        "with torch's non-vectorised kernels (another CPU's rounding): inconclusive: +0.64 [-0.33, +1.6]",
        "with torch's non-vectorised kernels (another CPU's rounding): reproduced: +1 [+0.5, +1.5]",
        "x", "not built with torch's non-vectorised kernels: firmness not checked there"]
    assert report.firm.tolist() == [True, False, True, True]  # the input is not changed


def test_a_build_is_not_checked_against_its_own_kernels_and_a_missing_file_is_skipped(tmp_path):
    from ltlib.book.report import rounding_check

    report = _lines([REPRODUCED, INCONCLUSIVE, REPRODUCED, REPRODUCED], [True, False, True, True])
    _lines([INCONCLUSIVE] * 4, [False] * 4).to_csv(tmp_path / "alt.csv", index=False)
    for builds, running in (({"DEFAULT": tmp_path / "alt.csv"}, "default"), ({"DEFAULT": tmp_path / "no.csv"}, "AVX2")):
        checked = rounding_check(report, builds, running)
        assert checked.firm.tolist() == report.firm.tolist() and checked.note.tolist() == report.note.tolist()
    # a third kernel set is checked against every committed build
    both = {"DEFAULT": tmp_path / "alt.csv", "AVX512": tmp_path / "alt.csv"}
    assert not rounding_check(report, both, "AVX2").firm.any()


def test_the_committed_builds_agree_on_every_verdict_either_marks_firm():
    """The acceptance of the reliability page, on the committed reports of the two float roundings: a verdict
    marked firm in one build (any claim, any variant) is the same verdict in the other."""
    from ltlib.paths import rounding_builds

    builds = {kernels: read_table(path, ("key", "prior_source", "calibration", "verdict")).set_index(
        ["key", "prior_source", "calibration"]) for kernels, path in rounding_builds().items()}
    (one, a), (other, b) = builds.items()
    assert a.index.equals(b.index) and len(a) > 30
    for (name, x), y in (((one, a), b), ((other, b), a)):
        firm = x[x.firm.astype(str) == "True"]
        assert len(firm) >= 5, name
        differ = firm.index[firm.verdict != y.loc[firm.index, "verdict"]]
        assert differ.empty, f"{name}: firm but another verdict in the other build: {list(differ)}"


def _spread_worlds() -> pd.DataFrame:
    """CE − LA trend per world: 0.5, 0.1, 0.05, then 0.3 and 0.4 (every world on the claimed side)."""
    ce = rows({w: [v + 0.1] * 3 for w, v in enumerate([0.5, 0.1, 0.05, 0.3, 0.4])}, method="CE")
    la = rows({w: [0.1] * 3 for w in range(5)}, method="LA")
    return pd.concat([ce, la])


def test_verdicts_over_the_first_worlds_judge_each_prefix_of_the_world_seeds():
    from ltlib.book.report import verdicts_over_first_worlds

    table = verdicts_over_first_worlds([REGISTRY["la_flattens_ps"]], _spread_worlds(), [3, 5, 7])
    assert list(table.worlds_used) == [3, 5]  # no line for more worlds than the tables hold
    three, five = table.iloc[0], table.iloc[1]
    assert json.loads(three.per_world) == pytest.approx([0.5, 0.1, 0.05], abs=CLOSED_ABS)
    assert three.n_worlds == 3 and three.verdict == INCONCLUSIVE  # t(0.975, 2) = 4.30 on sd 0.25
    assert five.n_worlds == 5 and five.verdict == REPRODUCED and five.firm  # t(0.975, 4) = 2.78 on sd 0.19


def test_the_judge_command_writes_each_labelled_builds_verdicts(tmp_path, capsys):
    from ltlib.cli import main

    tables = tmp_path / "tables"
    tables.mkdir()
    _spread_worlds().to_csv(tables / "01_imbalance.csv", index=False)
    out = tmp_path / "judged.csv"
    assert main(["judge", "--tables", f"here={tables}", "--claims", "la_flattens", "--first-worlds", "3", "5",
                 "--out", str(out)]) == 0
    judged = pd.read_csv(out)
    assert list(judged.label) == ["here", "here"] and list(judged.key) == ["la_flattens_ps"] * 2
    assert list(judged.verdict) == [INCONCLUSIVE, REPRODUCED]
    assert main(["judge", "--tables", str(tables), "--out", str(out)]) == 2
    assert "--tables" in capsys.readouterr().err
    assert main(["judge", "--tables", f"x={tables}", "--claims", "no_such", "--out", str(out)]) == 2
    assert main(["judge", "--tables", f"x={tables}", "--first-worlds", "6", "--out", str(out)]) == 2
    assert "--first-worlds [6]: the tables of x=" in capsys.readouterr().err
