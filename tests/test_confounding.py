"""The confounder study's experiment functions: adjustments in closed form, verdicts, and a tiny end-to-end run."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from tolerances import CLOSED_ABS  # float64 closed forms

from ltlib.miniworld import confounding as cf
from ltlib.book import plots
from ltlib.config import config_path
from ltlib.errors import ConfigError
from ltlib.miniworld import load_world_config
from ltlib.miniworld.confounder import TEST_SETS, part_partners
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
def smoke_outputs(smoke_world, one_epoch):
    """The whole study on the smoke world, one seed, one epoch per fit, in this process."""
    return cf.run_study(smoke_world, [0], one_epoch, workers=1)


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
                  propensity: np.ndarray) -> cf.StudyOutputs:
    """StudyOutputs of one seed whose fits output log(hand-made probabilities) on the interventional set."""
    fits = {}
    for fit in [f for chain in cf.CHAINS for f in chain]:
        keys = {"interventional": probs.get(fit.name, probs["confounded"])}
        if fit.kind == "c_input":
            keys |= {"interventional|c=0": probs["c0"], "interventional|c=1": probs["c1"]}
        fits[(0, fit.name)] = cf.FitOutput(fit.name, 0, {key: np.log(p) for key, p in keys.items()},
                                           {"interventional": targets}, {"interventional": visibility}, 0.0, 0.0)
    return cf.StudyOutputs(fits, {"confounded": propensity}, 0.0)


def test_method_scores_apply_the_adjustments_to_hand_made_probabilities():
    c0 = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])  # P(y | x, c = 0) for two images
    c1 = np.array([[0.1, 0.6, 0.3], [0.2, 0.2, 0.6]])  # P(y | x, c = 1)
    head, body = np.array([[0.6, 0.3, 0.1], [0.3, 0.3, 0.4]]), np.array([[0.2, 0.7, 0.1], [0.1, 0.5, 0.4]])
    naive = np.array([[0.5, 0.4, 0.1], [0.45, 0.1, 0.45]])
    propensity = np.array([0.8, 0.2, 0.8])  # P(C = 0) = 0.6 under the confounded design
    outputs = _fake_outputs({"c0": c0, "c1": c1, "member_head": head, "member_body": body, "confounded": naive},
                            np.array([0, 1]), np.array([0, 1]), propensity)
    scores = cf.method_scores(outputs, 0, "interventional")
    assert np.allclose(np.exp(scores["backdoor"]), 0.6 * c0 + 0.4 * c1, rtol=0, atol=CLOSED_ABS)  # Σ_c P(y|x,c) P(c)
    # equal weights, as the paper's method
    assert np.allclose(np.exp(scores["proxy"]), (head + body) / 2, rtol=0, atol=CLOSED_ABS)
    # image 0 has c = 0: divide by P(c=0|y) = (.8,.2,.8); image 1 has c = 1: by (.2,.8,.2)
    assert np.allclose(
        np.exp(scores["posthoc"]), naive / np.array([[0.8, 0.2, 0.8], [0.2, 0.8, 0.2]]), rtol=0, atol=CLOSED_ABS
    )
    assert scores["posthoc"].argmax(axis=1).tolist() == [1, 0]  # the correction can flip decisions
    assert set(scores) == set(cf.METHODS)


# ----------------------------------------------------------------------------- contrasts and verdicts
def _frame(values: dict[tuple[str, str, str], list[float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"method": m, "test_set": t, "group": g, "seed": s, "value": v}
            for (m, t, g), vs in values.items()
            for s, v in enumerate(vs)
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
    assert np.array_equal(first.logits["interventional"], second.logits["interventional"])
    assert set(first.logits) == {"confounded", "interventional"}


def test_study_end_to_end_on_the_smoke_world(smoke_world, smoke_outputs, tmp_path):
    outputs = smoke_outputs
    assert len(outputs.fits) == sum(len(chain) for chain in cf.CHAINS) and outputs.cpu_seconds > 0
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
    assert (contrasts["verdict"] == "inconclusive").all()  # one seed never decides a claim
    shares = cf.partner_error_share(outputs, smoke_world)
    assert set(shares["method"]) == set(cf.METHODS) and shares["value"].dropna().between(0, 100).all()
    table = ResultsTable("02_confounder", "mini", "smoke", tmp_path)
    cf.record(table, frame, cf.default_contrasts(0.9), partner_shares=shares)
    assert len(table.rows) == len(frame) + len(contrasts) + len(shares)
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
        and "proxy_verdict" in glued
    )
    assert glued["best_adjustment_acc"] == pytest.approx(inter.loc[list(cf.ADJUSTMENTS), "all"].max(), abs=CLOSED_ABS)


def test_partner_error_share_finds_the_shortcut(smoke_world, smoke_outputs):
    """Predicting, for every image, the class that shares its visible part gives 100% partner errors."""
    outputs = smoke_outputs
    naive = outputs.fits[(0, "confounded")]
    targets, visibility = naive.targets["interventional"], naive.visibility["interventional"]
    partners = part_partners(build_layout(4, 2), smoke_world.confounder.classes)
    partner = np.where(visibility == 0, partners["head"][targets], partners["body"][targets])
    shortcut = np.eye(8, dtype=np.float32)[partner]
    fits = dict(outputs.fits) | {
        (0, "confounded"): dataclasses.replace(naive, logits={"interventional": shortcut, "confounded": shortcut})
    }
    shares = cf.partner_error_share(dataclasses.replace(outputs, fits=fits), smoke_world).set_index("method")
    assert shares.loc["confounded", "value"] == 100.0
