"""Stage 2 on synthetic cached runs: adjustment rules, D-/P-groups and D×P in closed form, run discovery,
compatibility checks, cache formats, and atomic JSON/CSV output (the paper's Fig. 2, Eq. 7; book: Method, 'Groups')."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
from tolerances import U32, f64_sum, gamma, log_prob

from ltlib.cache import SplitOutputs, save_split, split_path
from ltlib.errors import ConfigError
from ltlib.runs import RunSpec, find_runs, select_run, write_cached_run
from ltlib.stage2 import (ALL, CSV_NAME, JSON_NAME, RESULT_COLUMNS, Stage2Options, combinations,
                          combined_predictions, read_logits, run_stage2, summary_table, write_stage2)
from ltlib.storage import atomic_path, read_table

# Six classes with known D-groups (book: Method, 'Groups': many n > 100, medium 20..100, few < 20) and
# ten test images each.
COUNTS = np.array([500, 200, 50, 30, 10, 5])
PER_CLASS = 10
# Accuracies here are percentages of counts of at most 60 predictions, averaged over at most 6 classes in
# float64: a few roundings of values ≤ 100 (γ relative), while one wrong prediction moves a value by ≥ 100/60.
PERCENT = f64_sum(60)
CORRECT = np.array([10, 8, 6, 4, 2, 0])  # class j is right on its first CORRECT[j] test images
# A pre-training prior ranking the classes in reverse: P-many = {4, 5}, P-medium = {2, 3}, P-few = {0, 1}.
PRIOR = np.array([0.02, 0.04, 0.1, 0.14, 0.3, 0.4])


def designed_logits(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Test logits whose argmax is right exactly on the first CORRECT[j] images of class j."""
    targets = np.repeat(np.arange(len(COUNTS)), PER_CLASS)
    rank_in_class = np.tile(np.arange(PER_CLASS), len(COUNTS))
    preds = np.where(rank_in_class < CORRECT[targets], targets, (targets + 1) % len(COUNTS))
    logits = np.random.default_rng(seed).uniform(0, 1, (len(targets), len(COUNTS))).astype(np.float32)
    logits[np.arange(len(targets)), preds] += 5.0
    return logits, targets


def zero_shot_val(per_class: int = 20, prior: np.ndarray = PRIOR) -> SplitOutputs:
    """Balanced val logits log π_P + 4·onehot(y): GLA's estimate recovers π_P's ranking."""
    targets = np.repeat(np.arange(len(COUNTS)), per_class)
    logits = np.log(prior)[None, :].repeat(len(targets), 0) + 4.0 * np.eye(len(COUNTS))[targets]
    return SplitOutputs(logits.astype(np.float32), targets)


def add_run(root, backbone, method="LA", logits=None, targets=None, task="toy", seed=0, counts=COUNTS, info=None,
            prior=PRIOR):
    if logits is None:
        logits, targets = designed_logits()
    outputs = {"test": SplitOutputs(logits, targets)}
    if method == "zeroshot":
        outputs["val"] = zero_shot_val(prior=prior)
    return write_cached_run(root, RunSpec(task, backbone, method, seed), outputs, counts, info=info)


def rows(table: pd.DataFrame, **keys) -> pd.DataFrame:
    for column, value in keys.items():
        table = table[table[column] == value]
    return table


def value(table: pd.DataFrame, **keys) -> float:
    match = rows(table, **keys)
    assert len(match) == 1, keys
    return float(match["value"].iloc[0])


# --------------------------------------------------------------------------- combination rules
@pytest.mark.parametrize("block_elements", [63, 1 << 20])  # blocks of 7 rows, and one block
def test_rules_equal_their_closed_forms(block_elements):
    g = np.random.default_rng(1)
    logits = [g.normal(0, s, (50, 9)).astype(np.float32) for s in (1.0, 3.0, 0.5)]
    total = sum(logits)
    probs = sum(np.exp(z) / np.exp(z).sum(1, keepdims=True) for z in logits)
    assert np.array_equal(combined_predictions(logits, "logit_sum", block_elements=block_elements), total.argmax(1))
    assert np.array_equal(combined_predictions(logits, "prob_mean", block_elements=block_elements), probs.argmax(1))
    # The two rules are different estimators: on these inputs they disagree somewhere.
    assert not np.array_equal(total.argmax(1), probs.argmax(1))


def test_weights_move_the_combination_towards_a_member():
    g = np.random.default_rng(2)
    a, b = g.normal(0, 1, (200, 5)).astype(np.float32), g.normal(0, 1, (200, 5)).astype(np.float32)
    assert np.array_equal(combined_predictions([a, b], "logit_sum", weights=[1.0, 1e-6]), a.argmax(1))
    assert np.array_equal(combined_predictions([a, b], "prob_mean", weights=[1e-9, 1.0]), b.argmax(1))


def test_one_model_is_its_own_argmax_under_both_rules():
    z = np.random.default_rng(3).normal(0, 2, (30, 4)).astype(np.float32)
    for rule in ("logit_sum", "prob_mean"):
        assert np.array_equal(combined_predictions([z], rule), z.argmax(1))


# --------------------------------------------------------------------------- groups in closed form
def test_single_run_scores_match_the_designed_accuracies(tmp_path):
    run = add_run(tmp_path, "clip")
    zeroshot = add_run(tmp_path, "clip", "zeroshot")
    table = run_stage2([run], zeroshot, Stage2Options(rules=("logit_sum",))).table
    assert list(table.columns) == list(RESULT_COLUMNS)
    per_class = 100 * CORRECT / PER_CLASS  # [100, 80, 60, 40, 20, 0]
    assert value(table, metric="accuracy", d_group=ALL, p_group=ALL) == pytest.approx(per_class.mean(), rel=PERCENT)
    expected_d = {"many": per_class[[0, 1]].mean(), "medium": per_class[[2, 3]].mean(), "few": per_class[[4, 5]].mean()}
    expected_p = {"many": per_class[[4, 5]].mean(), "medium": per_class[[2, 3]].mean(), "few": per_class[[0, 1]].mean()}
    for group, expected in expected_d.items():
        assert value(table, metric="mean_class_accuracy", d_group=group, p_group=ALL) == pytest.approx(
            expected, rel=PERCENT
        )
    for group, expected in expected_p.items():
        assert value(table, metric="mean_class_accuracy", d_group=ALL, p_group=group) == pytest.approx(
            expected, rel=PERCENT
        )
    # D×P: D-many = P-few = {0, 1}; every other cell of that row is empty (NaN, 0 classes).
    cell = rows(table, d_group="many", p_group="few")
    assert float(cell["value"].iloc[0]) == pytest.approx(90.0, rel=PERCENT) and int(cell["num_classes"].iloc[0]) == 2
    empty = rows(table, d_group="many", p_group="many")
    assert np.isnan(empty["value"].iloc[0]) and int(empty["num_classes"].iloc[0]) == 0


def test_ensemble_accuracy_is_that_of_the_summed_logits(tmp_path):
    g = np.random.default_rng(4)
    targets = np.repeat(np.arange(6), PER_CLASS)
    members = [
        g.normal(0, 1, (60, 6)).astype(np.float32) + 1.2 * np.eye(6, dtype=np.float32)[targets] for _ in range(3)
    ]
    runs = [
        add_run(tmp_path, name, logits=z, targets=targets) for name, z in zip(("clip", "openclip", "metaclip"), members)
    ]
    table = run_stage2(runs, None).table
    magnitude = max(float(np.abs(z).max()) for z in members)
    # The library and this test compute each rule's scores in float32 in their own order, each score within
    # a rounding bound per side (a sum of 3: γ₄·Σ|z|; a log-mixture: tolerances.log_prob for the softmax and
    # for the mean). The argmax agrees unless a top-2 gap is below twice both; the data have no such near tie.
    bounds = {
        "logit_sum": 2 * (2 * gamma(4, U32) * 3 * magnitude),
        "prob_mean": 2 * (2 * log_prob(6, magnitude) + 2 * log_prob(3, 2 * magnitude + 4)),
    }
    for rule, scores in (
        ("logit_sum", sum(members)),
        ("prob_mean", np.log(sum(np.exp(z) / np.exp(z).sum(1, keepdims=True) for z in members))),
    ):
        top2 = np.sort(scores, axis=1)[:, -2:]
        assert (top2[:, 1] - top2[:, 0]).min() > bounds[rule]
        expected = 100 * np.mean(scores.argmax(1) == targets)
        got = value(table, combination="clip+metaclip+openclip", rule=rule, metric="accuracy", d_group=ALL)
        assert got == pytest.approx(expected, rel=PERCENT)
    single = value(table, combination="openclip", rule="logit_sum", metric="accuracy", d_group=ALL)
    assert single == pytest.approx(100 * np.mean(members[1].argmax(1) == targets), rel=PERCENT)
    assert rows(table, p_group="many").empty  # no prior run: no P-groups


def test_which_combinations_are_scored():
    assert combinations(3, subsets=False) == [(0,), (1,), (2,), (0, 1, 2)]
    assert combinations(3, subsets=True) == [(0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2)]
    assert combinations(1, subsets=False) == [(0,)]


def test_summary_table_is_one_row_per_combination_and_rule(tmp_path):
    runs = [add_run(tmp_path, name) for name in ("clip", "openclip")]
    table = run_stage2(runs, add_run(tmp_path, "clip", "zeroshot")).table
    wide = summary_table(table)
    assert wide.shape == (6, 8)  # 3 combinations × 2 rules; overall, mean, 3 D-groups, 3 P-groups
    assert wide.loc[("clip", "logit_sum"), "D-many"] == pytest.approx(90.0, rel=PERCENT)


# --------------------------------------------------------------------------- refusals
def test_incompatible_runs_are_refused_naming_the_run(tmp_path):
    base = add_run(tmp_path, "clip")
    logits, targets = designed_logits()
    other_task = add_run(tmp_path, "openclip", task="other")
    with pytest.raises(ConfigError, match=r"other.*task 'other' vs 'toy'"):
        run_stage2([base, other_task])
    order = np.roll(np.arange(len(targets)), 1)
    shuffled = add_run(tmp_path, "metaclip", logits=logits[order], targets=targets[order])
    with pytest.raises(ConfigError, match="targets"):
        run_stage2([base, shuffled])
    recount = add_run(tmp_path, "metaclip", seed=1, counts=COUNTS + 1)
    with pytest.raises(ConfigError, match="training class counts"):
        run_stage2([base, recount])


def test_bad_inputs_are_named(tmp_path):
    run = add_run(tmp_path, "clip")
    with pytest.raises(ConfigError, match="not a complete stage-1 run"):
        run_stage2([tmp_path])
    with pytest.raises(ConfigError, match="split 'val'"):
        run_stage2([run], options=Stage2Options(split="val"))
    with pytest.raises(ConfigError, match="method 'LA'"):
        run_stage2([run], prior_run=run)
    with pytest.raises(ConfigError, match="2 values for 1 runs"):
        run_stage2([run], options=Stage2Options(weights=(1.0, 2.0)))
    with pytest.raises(ConfigError, match="must be positive"):
        run_stage2([run, add_run(tmp_path, "openclip")], options=Stage2Options(weights=(1.0, 0.0)))
    with pytest.raises(ConfigError, match="rules"):
        Stage2Options(rules=("vote",))


# --------------------------------------------------------------------------- reading and writing
def test_deflated_and_stored_caches_read_alike(tmp_path):
    logits, targets = designed_logits()
    # "a": deflated, as caches written by earlier versions; "b": what save_split writes today (stored).
    buffer = io.BytesIO()
    np.savez_compressed(buffer, logits=logits, targets=targets)
    split_path(tmp_path / "a", "test").parent.mkdir(parents=True)
    split_path(tmp_path / "a", "test").write_bytes(buffer.getvalue())
    save_split(tmp_path / "b", "test", SplitOutputs(logits, targets, np.ones((len(targets), 3), np.float32)))
    (za, ya), (zb, yb) = read_logits(tmp_path / "a", "test"), read_logits(tmp_path / "b", "test")
    assert np.array_equal(za, logits) and np.array_equal(zb, logits) and np.array_equal(ya, yb)
    assert isinstance(zb, np.memmap) and not isinstance(za, np.memmap)
    assert not za.flags.writeable and not zb.flags.writeable


def test_results_are_written_atomically_with_provenance(tmp_path, monkeypatch):
    runs = [add_run(tmp_path / "runs", name) for name in ("clip", "openclip")]
    result = run_stage2(runs, add_run(tmp_path / "runs", "clip", "zeroshot"))
    paths = write_stage2(result, tmp_path / "out")
    record = json.loads(paths["json"].read_text())  # strict JSON: empty cells are null, not NaN
    assert {"git_sha", "config_hash", "versions", "prior", "runs", "results"} <= set(record)
    assert record["prior"]["fits"]["clip"]["solver"] == "exact" and len(record["prior"]["prior"]) == 6
    assert record["prior"]["source"] == "clip" and record["d_thresholds"] == [100, 20]
    assert any(r["value"] is None for r in record["results"])
    back = read_table(paths["csv"])
    assert len(back) == len(result.table) and list(back.columns) == list(RESULT_COLUMNS)
    # Written with Python's shortest round-trip repr; pandas' default parser reads it back within 1 ulp.
    assert np.allclose(back["value"], result.table["value"], rtol=2 * f64_sum(0), atol=0, equal_nan=True)
    assert back["config_hash"].nunique() == 1 and back["config_hash"].iloc[0] == record["config_hash"]
    before = paths["csv"].read_bytes()

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr("ltlib.storage.os.replace", crash)
    with pytest.raises(OSError, match="disk full"):
        write_stage2(run_stage2(runs[:1]), tmp_path / "out")
    assert paths["csv"].read_bytes() == before  # the previous result survives
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [CSV_NAME, JSON_NAME]  # no temporaries


def test_find_runs_lists_complete_runs_and_selects_one(tmp_path):
    add_run(tmp_path, "clip")
    add_run(tmp_path, "clip", seed=1)
    add_run(tmp_path, "clip", "zeroshot")
    unfinished = RunSpec("toy", "openclip", "LA").directory(tmp_path)
    with atomic_path(unfinished / "checkpoint.pt") as tmp:
        tmp.write_bytes(b"")
    runs = find_runs(tmp_path, "toy")
    assert list(runs.columns) == ["task", "backbone", "method", "model", "seed", "recipe_hash", "status", "run_dir"]
    assert runs[["backbone", "method", "seed"]].values.tolist() == [
        ["clip", "LA", 0],
        ["clip", "LA", 1],
        ["clip", "zeroshot", 0],
    ]
    everything = find_runs(tmp_path, include_incomplete=True)
    assert everything.loc[everything["backbone"] == "openclip", "status"].tolist() == ["incomplete"]
    assert find_runs(tmp_path, "toy", method="zeroshot")["run_dir"].iloc[0].is_dir()
    assert select_run(runs, method="LA", seed=1).name.startswith("seed1-")
    with pytest.raises(ConfigError, match="found 2"):
        select_run(runs, method="LA")
    assert find_runs(tmp_path, "nothing").empty


# --------------------------------------------------------------------------- the full-scale pipeline
def test_reproduce_runs_missing_stage1_runs_then_stage2_then_the_notebooks(tmp_path, monkeypatch):
    """``ltlib.reproduce``'s orchestration with each stage-1 process replaced by a synthetic cached run."""
    from ltlib import reproduce as rp
    from ltlib.data import make_fixture_dataset

    # The dataset only names the task here; the synthetic runs carry their own six classes.
    fixture = make_fixture_dataset(
        tmp_path / "data", num_classes=2, train_counts=(1, 1), val_per_class=1, test_per_class=1, image_size=(8, 8)
    )
    weights = tmp_path / "weights"
    weights.mkdir()
    for name in ("clip", "openclip"):
        (weights / f"{name}.safetensors").write_bytes(b"")
    plan = rp.ReproducePlan(
        str(fixture.config),
        fixture.root,
        weights,
        backbones=("clip", "openclip"),
        runs_root=tmp_path / "runs",
        out_dir=tmp_path / "results",
        overrides=("epochs=1",),
    )
    built, executed = [], []
    monkeypatch.setattr(rp, "build_backbone", lambda name, weights=None: built.append((name, weights.name)))

    def fake_stage(command, stage, log=print):
        executed.append((stage, command))
        if stage == "stage 1":
            backbone, method = (command[command.index(flag) + 1] for flag in ("--backbone", "--method"))
            spec = RunSpec(plan.task, backbone, method, 0, plan.train_recipe())
            logits, targets = designed_logits(seed=len(executed))
            outputs = {"test": SplitOutputs(logits, targets), "val": zero_shot_val()}
            assert write_cached_run(plan.runs_root, spec, outputs, COUNTS) == plan.run_dir(backbone, method, 0)

    monkeypatch.setattr(rp, "run_command", fake_stage)
    fake_stage(list(rp.train_command(plan, "clip", "zeroshot", 0, None)), "stage 1")  # already complete
    executed.clear()
    written = rp.reproduce(plan, log=lambda message: None)
    assert built == [("clip", "clip.safetensors"), ("openclip", "openclip.safetensors")]  # checked up front
    assert [(c[c.index("--backbone") + 1], c[c.index("--method") + 1]) for s, c in executed if s == "stage 1"] == [
        ("clip", "LA"),
        ("openclip", "zeroshot"),
        ("openclip", "LA"),
    ]
    assert [stage for stage, _ in executed[-2:]] == ["notebooks", "book"] and "--setting" in executed[-2][1]
    site = tmp_path / "results" / "fixture" / "site"  # its own executed notebooks and HTML, not book/executed
    assert executed[-2][1][-2:] == ["--out", str(site / "book" / "executed")] and str(site) in executed[-1][1]
    assert (site / "_toc.yml").is_file() and (site / "book" / "method.md").is_file()
    assert written == [tmp_path / "results" / "fixture" / "stage2-LA-seed0"]
    table = read_table(written[0] / CSV_NAME)
    assert set(table["combination"]) == {"clip", "openclip", "clip+openclip"}
    assert not rows(table, p_group="few").empty  # P-groups from both zero-shot runs' P̂_P
    assert set(table["prior_source"]) == {"geomean(clip+openclip)"}


# --------------------------------------------------------------------------- one stage 2
def test_the_book_and_the_command_line_score_the_same_rows(tmp_path, capsys):
    """The book's path (``analysis.prior_fits`` + ``analysis.subset_scores`` over a study's run index) and
    ``python -m ltlib adjust --subsets`` on the same cached runs write identical rows, with the P-groups of
    the geometric mean of the three zero-shot priors and the D-thresholds the task records."""
    from ltlib.book import analysis
    from ltlib.cli import main
    from ltlib.miniworld.experiments import INDEX_COLUMNS, Study

    g = np.random.default_rng(5)
    targets = np.repeat(np.arange(len(COUNTS)), PER_CLASS)
    info = {"many_threshold": 40, "few_threshold": 8}  # D-many = {500, 200, 50}, D-few = {5}
    index, la = [], []
    for k, name in enumerate(("clip", "openclip", "metaclip")):
        logits = g.normal(0, 1, (len(targets), 6)).astype(np.float32) + 1.5 * np.eye(6, dtype=np.float32)[targets]
        la.append(add_run(tmp_path / "runs", name, logits=logits, targets=targets, info=info))
        zs = add_run(tmp_path / "runs", name, "zeroshot", info=info, prior=np.roll(PRIOR, k))
        index += [
            (name, "LA", "lift", 0, 0, "independent", "mini_lift", "", -1, "toy", la[-1]),
            (name, "zeroshot", "lift", 0, 0, "independent", "mini_lift", "", -1, "toy", zs),
        ]
    study = Study("full", "toy", ("clip", "metaclip", "openclip"), pd.DataFrame(index, columns=list(INDEX_COLUMNS)))
    p_hat, _ = analysis.prior_fits(study, solvers=("exact",))
    book = analysis.subset_scores(study, p_hat)
    assert main(["adjust", "--runs", *map(str, la), "--subsets", "--out", str(tmp_path / "cli")]) == 0
    cli = read_table(tmp_path / "cli" / CSV_NAME)
    assert len(book) == len(cli) == 7 * 2 * (2 + 3 + 3 + 9)  # subsets × rules × (overall, mean, D, P, D×P)
    pd.testing.assert_frame_equal(book.reset_index(drop=True), cli, check_dtype=False, check_exact=True)
    assert set(book["prior_source"]) == {"geomean(clip+metaclip+openclip)"}
    d_sizes = rows(book, combination="clip", rule="logit_sum", p_group=ALL, metric="mean_class_accuracy")
    assert dict(zip(d_sizes["d_group"], d_sizes["num_classes"])) == {ALL: 6, "many": 3, "medium": 2, "few": 1}
