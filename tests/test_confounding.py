"""The confounder study's experiment functions: adjustments in closed form, verdicts, and a tiny end-to-end run."""

from __future__ import annotations

import dataclasses
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from tolerances import CLOSED_ABS, U32  # float64 closed forms; float32 unit round-off

from ltlib.miniworld import confounding as cf
from ltlib.book import plots
from ltlib.config import config_path
from ltlib.errors import ConfigError
from ltlib.miniworld import load_world_config
from ltlib.miniworld.confounder import TEST_SETS, part_partners, propensities
from ltlib.miniworld.generator import build_layout
from ltlib.results import ResultsTable


@pytest.fixture(scope="module")
def smoke_world():
    return load_world_config("smoke")


@pytest.fixture(scope="module")
def one_epoch(tmp_path_factory):
    """A recipe file: mini_cnn shortened to one epoch (the test's "one short training")."""
    recipe = yaml.safe_load(config_path("methods", "mini_cnn").read_text())
    path = tmp_path_factory.mktemp("recipe") / "one_epoch.yaml"
    path.write_text(yaml.safe_dump({**recipe, "epochs": 1}))
    return cf.StudyConfig(recipe=str(path), finetune_epochs=1)


@pytest.fixture(scope="module")
def smoke_outputs(one_epoch):
    """The whole study on two smoke worlds (world seeds 0 and 1), one seed each, one epoch per fit, in this
    process."""
    return cf.run_study(cf.world_configs("smoke", [0, 1]), [0], one_epoch, workers=1)


# ----------------------------------------------------------------------------- adjustment math
def test_posthoc_propensity_recovers_the_interventional_posterior():
    """A discrete world Y → C → X ← Y with C readable from X: dividing P(c(x)|y) out of the observational
    posterior gives exactly the posterior under do(C) (C ~ P(C), independent of Y)."""
    rng = np.random.default_rng(0)
    k, xs_per_c = 4, 5
    propensity = np.array([0.9, 0.1, 0.8, 0.2])  # P(C = 0 | y)
    p_x = rng.dirichlet(np.ones(xs_per_c), size=(k, 2))  # P(x | y, c), x in the block of its c
    p_c_y = np.stack([propensity, 1 - propensity], axis=1)  # [K, 2]
    joint_obs = p_c_y[:, :, None] * p_x / k  # P(y, c, x), Y uniform
    joint_do = 0.5 * p_x / k  # P(C) = mean propensity = 0.5
    for c in (0, 1):
        obs = joint_obs[:, c, :] / joint_obs[:, c, :].sum(axis=0)  # P_obs(y | x) for the x with c(x) = c; [K, X]
        do = joint_do[:, c, :] / joint_do[:, c, :].sum(axis=0)
        scores = cf.posthoc_propensity(np.log(obs.T), np.full(xs_per_c, c), propensity)  # [X, K]
        corrected = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
        assert np.allclose(corrected, do.T, rtol=0, atol=CLOSED_ABS)
        assert not np.allclose(obs, do, rtol=0, atol=CLOSED_ABS)  # the correction is not a no-op


def _fake_outputs(probs: dict[str, np.ndarray], visibility: np.ndarray, targets: np.ndarray,
                  propensity: np.ndarray, held_out: tuple[np.ndarray, np.ndarray, np.ndarray]) -> cf.StudyOutputs:
    """StudyOutputs of one world and seed whose fits output log(hand-made probabilities) on the
    interventional set; the naive fit also on a held-out confounded set (probabilities, targets, C)."""
    fits = {}
    for fit in [f for chain in cf.CHAINS for f in chain]:
        keys = {"interventional": probs.get(fit.name, probs["confounded"])}
        truth, c = {"interventional": targets}, {"interventional": visibility}
        if fit.kind == "c_input":
            keys |= {"interventional|c=0": probs["c0"], "interventional|c=1": probs["c1"]}
        if fit.name == "confounded":
            keys["confounded"], truth["confounded"], c["confounded"] = held_out
        fits[(0, 0, fit.name)] = cf.FitOutput(fit.name, 0, 0, {key: np.log(p) for key, p in keys.items()}, truth, c,
                                              0.0, 0.0)
    return cf.StudyOutputs(fits, {"confounded": propensity}, 0.0)


def test_method_scores_apply_the_adjustments_to_hand_made_probabilities():
    c0 = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])  # P(y | x, c = 0) for two images
    c1 = np.array([[0.1, 0.6, 0.3], [0.2, 0.2, 0.6]])  # P(y | x, c = 1)
    head, body = np.array([[0.6, 0.3, 0.1], [0.3, 0.3, 0.4]]), np.array([[0.2, 0.7, 0.1], [0.1, 0.5, 0.4]])
    naive = np.array([[0.5, 0.4, 0.1], [0.45, 0.1, 0.45]])
    head_copy, naive_copy = np.array([[0.5, 0.3, 0.2], [0.2, 0.2, 0.6]]), np.array([[0.3, 0.3, 0.4], [0.6, 0.3, 0.1]])
    propensity = np.array([0.8, 0.2, 0.8])  # P(C = 0) = 0.6 under the confounded design
    held_out = (np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8], [0.5, 0.25, 0.25]]),
                np.array([0, 1, 2, 1]), np.array([0, 1, 0, 0]))
    outputs = _fake_outputs({"c0": c0, "c1": c1, "member_head": head, "member_body": body, "confounded": naive,
                             "member_head_copy": head_copy, "confounded_copy": naive_copy},
                            np.array([0, 1]), np.array([0, 1]), propensity, held_out)
    scores = cf.method_scores(outputs, (0, 0), "interventional")
    assert np.allclose(np.exp(scores["backdoor"]), 0.6 * c0 + 0.4 * c1, rtol=0, atol=CLOSED_ABS)  # Σ_c P(y|x,c) P(c)
    # equal weights, as the paper's method; the controls average their own members the same way
    assert np.allclose(np.exp(scores["proxy"]), (head + body) / 2, rtol=0, atol=CLOSED_ABS)
    assert np.allclose(np.exp(scores["proxy_same_bias"]), (head + head_copy) / 2, rtol=0, atol=CLOSED_ABS)
    assert np.allclose(np.exp(scores["proxy_same_data"]), (naive + naive_copy) / 2, rtol=0, atol=CLOSED_ABS)
    # the calibrated plug-in: temperature and propensity from the held-out set, then the same division
    temperature = cf.fit_temperature(np.log(held_out[0]), held_out[1])
    p_hat = np.array([2 / 3, 1 / 2, 2 / 3])  # held-out (y, C = 0) counts (1, 1, 1) of (1, 2, 1), add-one smoothed
    assert np.allclose(cf.estimate_propensity(held_out[1], held_out[2], 3), p_hat, rtol=0, atol=CLOSED_ABS)
    assert np.allclose(scores["plugin_calibrated"],
                       cf.posthoc_propensity(np.log(naive) / temperature, np.array([0, 1]), p_hat), rtol=0,
                       atol=CLOSED_ABS)
    # image 0 has c = 0: divide by P(c=0|y) = (.8,.2,.8); image 1 has c = 1: by (.2,.8,.2)
    assert np.allclose(
        np.exp(scores["posthoc"]), naive / np.array([[0.8, 0.2, 0.8], [0.2, 0.8, 0.2]]), rtol=0, atol=CLOSED_ABS
    )
    assert scores["posthoc"].argmax(axis=1).tolist() == [1, 0]  # the correction can flip decisions
    assert set(scores) == set(cf.METHODS)


# ----------------------------------------------------------------------------- contrasts and verdicts
def _frame(values: dict[tuple[str, str, str], list[float]], seeds_per_world: int = 1) -> pd.DataFrame:
    """Accuracy rows; the i-th value of a list belongs to world i // seeds_per_world, seed i % seeds_per_world."""
    return pd.DataFrame(
        [
            {"method": m, "test_set": t, "group": g, "world_seed": i // seeds_per_world, "seed": i % seeds_per_world,
             "value": v}
            for (m, t, g), vs in values.items()
            for i, v in enumerate(vs)
        ]
    )


def test_contrast_values_pair_seeds_and_remix_strata():
    frame = _frame(
        {
            ("B", "B", "all"): [60, 62, 58],
            ("B", "A", "all"): [50, 51, 49],
            ("B", "A", "head-dominant"): [62, 60, 61],
            ("B", "A", "body-dominant"): [38, 42, 37],
        }
    )
    plain = cf.Contrast("gap", "gap", "B", "B", "B", "A", +1)
    assert cf.contrast_values(frame, plain).tolist() == [10, 11, 9]
    remix = dataclasses.replace(plain, baseline_head_share=0.9)
    assert np.allclose(cf.contrast_values(frame, remix), [60 - 59.6, 62 - 58.2, 58 - 58.6], rtol=0, atol=CLOSED_ABS)
    table = cf.contrast_table(frame, [plain, dataclasses.replace(remix, expected=0)])
    assert table["verdict"].tolist() == ["supported", "no difference detected"]
    assert table.loc[0, "mean"] == pytest.approx(10.0, abs=CLOSED_ABS) and table.loc[0, "sd"] == pytest.approx(
        1.0, abs=CLOSED_ABS
    )


def test_contrast_table_averages_seeds_within_a_world_before_the_interval_over_worlds():
    """Two worlds with two seeds each: the interval is over the two world means, not the four seeds."""
    frame = _frame({("B", "B", "all"): [60, 64, 70, 74], ("B", "A", "all"): [50, 50, 60, 60]}, seeds_per_world=2)
    gap = cf.Contrast("fig12_b_gap", "gap", "B", "B", "B", "A", +1)
    per_world = cf.world_values(cf.contrast_values(frame, gap))
    assert per_world.to_dict() == {0: 12.0, 1: 12.0}
    row = cf.contrast_table(frame, [gap]).iloc[0]
    assert row["n"] == 2 and row["mean"] == pytest.approx(12.0, abs=CLOSED_ABS) and row["sd"] == pytest.approx(
        0.0, abs=CLOSED_ABS)
    assert cf.contrasts_by_world(frame, [gap]).loc["fig12_b_gap"].tolist() == [12.0, 12.0]


def test_gap_closed_fraction_is_the_share_of_the_naive_models_drop():
    frame = _frame({("confounded", "confounded", "all"): [80, 70], ("confounded", "interventional", "all"): [40, 70],
                    ("proxy", "interventional", "all"): [50, 75]})
    fraction = cf.gap_closed_fraction(frame)
    assert fraction.loc[(0, 0)] == pytest.approx(10 / 40, abs=CLOSED_ABS)  # closes 10 of the 40 points lost
    assert np.isnan(fraction.loc[(1, 0)])  # no gap to close: undefined, not a number that could pass a test


def test_default_contrasts_use_the_claim_registry_keys():
    keys = [c.key for c in cf.default_contrasts(0.9)]
    registry = {"fig12_b_gap", "fig12_a_no_gap", "fig12_gap_is_pc_shift", "proxy_closes_confounding_gap",
                "proxy_beats_same_bias_proxy"}
    assert registry <= set(keys) and len(set(keys)) == len(keys)
    by_key = {c.key: c for c in cf.default_contrasts(0.9)}
    assert (by_key["proxy_beats_same_bias_proxy"].method, by_key["proxy_beats_same_bias_proxy"].baseline) == (
        "proxy", "proxy_same_bias")
    assert by_key["proxy_closes_confounding_gap"].baseline == "confounded"


@pytest.mark.parametrize(
    "values, expected, result",
    [
        ([3.0, 4.0, 5.0], +1, "supported"),
        ([3.0, 4.0, 5.0], -1, "contradicted"),
        ([-1.0, 2.0, 0.5], +1, "inconclusive"),
        ([-1.0, 1.0, 0.2], 0, "no difference detected"),
        ([3.0, 4.0, 5.0], 0, "contradicted"),
        ([9.0], +1, "inconclusive"),
    ],
)
def test_verdict_rules(values, expected, result):
    assert cf.verdict(values, expected) == result


# ----------------------------------------------------------------------------- datasets and configs
def test_visibility_plane_carries_the_true_or_forced_c(smoke_world):
    split = cf.study_split(smoke_world, 0, "confounded", True)
    indices = np.arange(12)
    images, labels = cf.VisibilityPlane(split).get_batch(indices, key=None)
    c = split.visibility[:12]
    assert images.shape[1] == 4 and torch.equal(images[:, 3], (2 * c - 1).float().view(-1, 1, 1).expand(-1, 32, 32))
    assert torch.equal(images[:, :3], split.get_batch(indices, None)[0]) and torch.equal(labels, split.labels[:12])
    assert torch.all(cf.VisibilityPlane(split, forced=1).get_batch(indices, None)[0][:, 3] == 1)
    assert torch.all(cf.VisibilityPlane(split, forced=0).get_batch(indices, None)[0][:, 3] == -1)


def test_propensity_offset_loss_is_stationary_at_the_interventional_posterior():
    """Expected loss Σ_y P_obs(y|x) CE(f + log P(c|y), y) for an x showing c: its gradient in f vanishes at
    f = log P_do(y|x) (softmax(f + log P(c|y)) = P_obs(y|x)) and not at the naive f = log P_obs(y|x)."""
    propensity = np.array([0.9, 0.1, 0.8, 0.3])  # P(C = 0 | y)
    p_x = np.array([0.4, 0.1, 0.3, 0.2])  # P(x | y, c) for one x
    loss_fn = cf.PropensityOffsetLoss(propensity)
    for c in (0, 1):
        p_c = propensity if c == 0 else 1 - propensity
        obs, do = p_c * p_x / (p_c * p_x).sum(), p_x / p_x.sum()
        grads = []
        for f0 in (np.log(do), np.log(obs)):
            f = torch.tensor(f0, dtype=torch.float32, requires_grad=True)
            targets = torch.arange(4) + 4 * c  # y + K'·c
            losses = torch.stack([loss_fn(f[None], targets[y:y + 1]) for y in range(4)])
            (losses * torch.as_tensor(obs, dtype=torch.float32)).sum().backward()
            grads.append(f.grad.abs().max().item())
        assert grads[0] < 64 * U32  # float32 log/softmax of 4 terms: a few dozen round-offs at most
        assert grads[1] > 0.01  # the naive logits are not the minimiser


def test_offset_fit_trains_on_targets_carrying_c(smoke_world):
    job = cf.StudyJob(smoke_world, 0, (cf.Fit("c_offset", "confounded", "c_offset"),), cf.StudyConfig())
    data, loss = cf.fit_training(job, job.chain[0])
    split = cf.study_split(smoke_world, 0, "confounded", True)
    _, targets = data.get_batch(np.arange(len(split)), None)
    assert torch.equal(targets, split.labels + 8 * split.visibility.long())
    p0 = propensities(smoke_world.confounder)["confounded"]
    assert np.allclose(loss.log_p.numpy(), np.log(np.stack([p0, 1 - p0])), rtol=0, atol=4 * U32)


def _pretraining_design(name: str) -> str:
    """The design of the from-scratch fit a chain's fit descends from."""
    fits = {f.name: f for chain in cf.CHAINS for f in chain}
    while fits[name].init:
        name = fits[name].init
    return fits[name].design


def test_same_bias_proxy_members_share_the_part_bias_and_the_proxy_members_do_not(smoke_world):
    props = propensities(smoke_world.confounder)
    same = [props[_pretraining_design(m)] for m in cf.PROXIES["proxy_same_bias"]]
    paper = [props[_pretraining_design(m)] for m in cf.PROXIES["proxy"]]
    assert np.array_equal(same[0], same[1]) and not np.array_equal(paper[0], paper[1])
    # ... on independent draws of that design: the same share of head-dominant images per class, other images
    fits = {f.name: f for chain in cf.CHAINS for f in chain}
    pretrain = [fits[fits[m].init] for m in cf.PROXIES["proxy_same_bias"]]
    splits = [cf.study_split(smoke_world, 0, f.design, True, f.data_copy) for f in pretrain]
    for split in splits:
        heads = [int((split.visibility[split.labels == k] == 0).sum()) for k in range(8)]
        assert heads == [9] * 8  # 9 of the 10 images of every class head-dominant, as design B
    assert not torch.equal(splits[0].get_batch(np.arange(10), None)[0], splits[1].get_batch(np.arange(10), None)[0])
    assert len({cf.fit_seed(smoke_world, 0, f) for f in pretrain}) == 2


def test_same_data_proxy_members_train_on_the_naive_models_data(smoke_world):
    fits = {f.name: f for chain in cf.CHAINS for f in chain}
    members = [fits[m] for m in cf.PROXIES["proxy_same_data"]]
    job = cf.StudyJob(smoke_world, 0, tuple(members), cf.StudyConfig())
    data = [cf.fit_training(job, f)[0] for f in members]
    batches = [d.get_batch(np.arange(len(d)), None) for d in data]
    assert torch.equal(batches[0][0], batches[1][0]) and torch.equal(batches[0][1], batches[1][1])
    assert members[0].name == "confounded" and cf.fit_seed(smoke_world, 0, members[0]) != cf.fit_seed(
        smoke_world, 0, members[1])


def test_fit_temperature_recovers_a_known_temperature():
    """Two classes, logits (2 ln 3, 0): at T = 2 the model says 0.75 for class 0, and 3 of 4 rows are class 0,
    so the NLL is minimal at exactly T = 2."""
    logits, targets = np.tile([2 * np.log(3), 0.0], (4, 1)), np.array([0, 0, 0, 1])
    assert cf.fit_temperature(logits, targets) == pytest.approx(2.0, rel=5e-3)  # search tolerance 1e-3 in log T


def test_worlds_and_seeds_are_independent(smoke_world):
    worlds = cf.world_configs("smoke", [0, 3])
    assert [w.seed for w in worlds] == [0, 3] and worlds[0].confounder == worlds[1].confounder
    fit = cf.Fit("A", "A")
    assert len({cf.fit_seed(w, s, fit) for w in worlds for s in (0, 1)}) == 4
    images = [cf.study_split(w, 0, "interventional", False).get_batch(np.arange(8), None)[0] for w in worlds]
    assert not torch.equal(images[0], images[1])
    with pytest.raises(ConfigError, match="world seed"):
        cf.world_configs("smoke", [1, 1])
    with pytest.raises(ConfigError, match="world"):
        cf.run_study([], [0])


def test_configs_reject_bad_values():
    with pytest.raises(ConfigError, match="design"):
        cf.Fit("x", "D")
    with pytest.raises(ConfigError, match="test_sets"):
        cf.Fit("x", "A", test_sets=("val",))
    with pytest.raises(ConfigError, match="blocks_per_stage"):
        cf.StudyConfig(blocks_per_stage=0)
    finetune = cf.fit_recipe(cf.StudyConfig(), cf.Fit("m", "confounded", init="B"), 3)
    defaults = cf.StudyConfig()
    assert (finetune.epochs, finetune.lr, finetune.seed) == (defaults.finetune_epochs, defaults.finetune_lr, 3)


def test_design_table_lists_the_cycle(smoke_world):
    table = cf.design_table(smoke_world)
    assert len(table) == 8 and np.allclose(table["P(head | Y), confounded"], [0.9, 0.1] * 4, rtol=0, atol=CLOSED_ABS)
    assert (table["head type"].value_counts() == 2).all() and (table["body type"].value_counts() == 2).all()


# ----------------------------------------------------------------------------- end to end on the smoke world
def test_train_fit_is_deterministic(smoke_world, one_epoch):
    job = cf.StudyJob(smoke_world, 0, (cf.Fit("A", "A"),), one_epoch)
    first, second = (cf.train_fit(job, job.chain[0], None) for _ in range(2))
    assert first.key == (0, 0, "A")
    assert np.array_equal(first.logits["interventional"], second.logits["interventional"])
    assert set(first.logits) == {"confounded", "interventional"}


def test_study_end_to_end_on_the_smoke_world(smoke_world, smoke_outputs, tmp_path):
    outputs = smoke_outputs
    assert len(outputs.fits) == 2 * sum(len(chain) for chain in cf.CHAINS) and outputs.cpu_seconds > 0
    assert outputs.replicates == ((0, 0), (1, 0))
    frame = cf.accuracy_frame(outputs)
    assert frame["value"].between(0, 100).all()
    methods = frame.groupby("test_set")["method"].unique()
    assert set(methods["A"]) == {"A", "B"} and set(methods["interventional"]) == set(cf.METHODS)
    per_c = frame.pivot_table(index=["method", "test_set"], columns="group", values="value")
    head_share = 0.5  # the interventional set: the overall accuracy is the mean of the two strata
    inter = per_c.xs("interventional", level="test_set")
    assert np.allclose(
        inter["all"],
        head_share * inter["head-dominant"] + (1 - head_share) * inter["body-dominant"],
        rtol=0,
        atol=CLOSED_ABS,
    )
    contrasts = cf.contrast_table(frame, cf.default_contrasts(smoke_world.confounder.majority))
    assert (contrasts["n"] == 2).all()  # the replicates are the two worlds
    shares = cf.partner_error_share(outputs, smoke_world)
    assert set(shares["method"]) == set(cf.METHODS) and shares["value"].dropna().between(0, 100).all()
    table = ResultsTable("02_confounder", "mini", "smoke", tmp_path, world_seed=0)
    cf.record(table, frame, cf.default_contrasts(0.9), partner_shares=shares)
    rows = table.frame()
    fractions = rows[rows["metric"] == "gap_closed_fraction"]
    assert len(rows) == len(frame) + 2 * len(contrasts) + len(shares) + len(fractions)
    body = rows[rows["metric"] != "gap_closed_fraction"]  # every other row: as many per world
    assert body.groupby("world_seed").size().to_dict() == {0: len(body) // 2, 1: len(body) // 2}
    per_world = rows[rows["metric"] == "contrast"].groupby("group")["world_seed"].agg(sorted)
    assert per_world.to_dict() == {c.key: [0, 1] for c in cf.default_contrasts(0.9)}  # one contrast per world
    assert set(fractions["group"]) <= {"proxy_closes_confounding_gap"} and fractions["world_seed"].is_unique
    summary = cf.summary_table(frame)
    assert list(summary.columns) == list(TEST_SETS) and summary.loc[cf.METHODS["A"], "A"] != "—"
    figure = plots.fig12_confounder(frame, ["A", "confounded", "backdoor", "proxy"], cf.METHODS)
    assert len(figure.axes) == 2 and [t.get_text() for t in figure.axes[1].get_yticklabels()][-1] == cf.METHODS["proxy"]
    assert len(plots.fig12_accuracy_by_visibility(frame, {"B": ["A", "B"], "proxy": ["interventional"]}).axes) == 2
    by_propensity = cf.accuracy_by_propensity(outputs)
    assert set(by_propensity["group"]) == {"common (y, c)", "rare (y, c)"}
    glued = cf.glue_values(contrasts, frame, outputs, shares, by_propensity)
    # the interventional set holds as many common as rare (y, c) pairs: overall = mean of the two
    assert glued["acc_proxy_interventional"] == pytest.approx(
        (glued["common_proxy"] + glued["rare_proxy"]) / 2, abs=CLOSED_ABS
    )
    assert (
        glued["acc_A_interventional"] == pytest.approx(inter.loc["A", "all"], abs=CLOSED_ABS)
        and "proxy_closes_confounding_gap_verdict" in glued
    )
    assert glued["best_adjustment_acc"] == pytest.approx(inter.loc[list(cf.ADJUSTMENTS), "all"].max(), abs=CLOSED_ABS)


def test_partner_error_share_finds_the_shortcut(smoke_world, smoke_outputs):
    """Predicting, for every image, the class that shares its visible part gives 100% partner errors."""
    outputs = smoke_outputs
    naive = outputs.fits[(0, 0, "confounded")]
    targets, visibility = naive.targets["interventional"], naive.visibility["interventional"]
    partners = part_partners(build_layout(4, 2), smoke_world.confounder.classes)
    partner = np.where(visibility == 0, partners["head"][targets], partners["body"][targets])
    shortcut = np.eye(8, dtype=np.float32)[partner]
    fits = dict(outputs.fits) | {
        (0, 0, "confounded"): dataclasses.replace(naive, logits={"interventional": shortcut, "confounded": shortcut})
    }
    shares = cf.partner_error_share(dataclasses.replace(outputs, fits=fits), smoke_world)
    shares = shares[shares["world_seed"] == 0].set_index("method")
    assert shares.loc["confounded", "value"] == 100.0


def test_a_cached_chain_is_read_back_equal_and_trains_nothing(one_epoch, smoke_outputs, monkeypatch):
    # smoke_outputs trained every chain into the session's cache; the same study again must only read them
    def refuse(*args, **kwargs):
        raise AssertionError("a cached chain was trained again")

    monkeypatch.setattr(cf, "train_fit", refuse)
    again = cf.run_study(cf.world_configs("smoke", [0, 1]), [0], one_epoch, workers=1)
    assert list(again.fits) == list(smoke_outputs.fits)
    for key, first in smoke_outputs.fits.items():
        second = again.fits[key]
        for kind in ("logits", "targets", "visibility"):
            a, b = getattr(first, kind), getattr(second, kind)
            assert list(a) == list(b) and all(np.array_equal(a[k], b[k]) and a[k].dtype == b[k].dtype for k in a)
        assert (second.train_seconds, second.cpu_seconds) == (first.train_seconds, first.cpu_seconds)
    with pytest.raises(AssertionError, match="trained again"):  # cache=False trains whatever is cached
        cf.run_study(cf.world_configs("smoke", [0]), [0], one_epoch, workers=1, cache=False)


def test_the_chain_cache_key_follows_the_recipe_file_and_a_damaged_entry_is_named(one_epoch, tmp_path):
    world = cf.world_configs("smoke", [0])[0]
    job = cf.StudyJob(world, 0, cf.CHAINS[0], one_epoch)
    recipe = yaml.safe_load(Path(one_epoch.recipe).read_text())
    edited = tmp_path / "edited.yaml"
    edited.write_text(yaml.safe_dump({**recipe, "lr": recipe["lr"] * 2}))
    keys = {cf.chain_dir(job, tmp_path), cf.chain_dir(replace(job, seed=1), tmp_path),
            cf.chain_dir(replace(job, study=replace(one_epoch, recipe=str(edited))), tmp_path),
            cf.chain_dir(replace(job, study=replace(one_epoch, finetune_epochs=2)), tmp_path)}
    assert len(keys) == 4  # the seed, the recipe's values and the study's settings each give a new entry
    entry = cf.chain_dir(job, tmp_path)
    entry.mkdir(parents=True)
    (entry / "index.json").write_text('[{"fit": "x", "world_seed": 0, "seed": 0, "train_seconds": 1, '
                                      '"cpu_seconds": 1, "logits": ["a"], "targets": [], "visibility": []}]')
    (entry / "arrays.npz").write_bytes(b"not a zip")
    with pytest.raises(ConfigError, match=str(entry)):
        cf.read_chain(entry)
