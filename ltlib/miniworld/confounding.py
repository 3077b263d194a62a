"""The synthetic confounder study (the paper's Fig. 12; book: Mini world, item 7): from-scratch CNNs,
adjustments, verdicts.

Every CNN of the study is a :class:`Fit`: trained from random weights on one training design of
``ltlib.miniworld.confounder`` (or fine-tuned from another fit), then evaluated on every test set. The
estimators compared on the page (:data:`METHODS`) are computed from the fits' logits:

- the paper's 2×2: the CNNs trained on ``A`` and on ``B``;
- ``confounded``: the CNN trained on the confounded design (the naive estimate of P(Y|X));
- ``backdoor``: Σ_c P̂(Y|x,c) P(c) with the true C, P̂ a CNN that takes C as a constant extra input plane
  and is evaluated with each value of c (``ltlib.adjust.backdoor_adjust``, rule ``prob_mean``);
- ``posthoc``: the confounded CNN's logits minus log P(c|y) at the image's true c. In this world images
  are drawn as Y → C → X ← Y, so P_do(y|x) ∝ P(y|x) / P(c(x)|y): the propensity is divided out;
- ``proxy``: the paper's multi-model adjustment without C: two CNNs that rely on different parts (one
  pre-trained on the head-biased design ``B``, one on the body-biased ``B_body``, as the mini foundation
  models are pre-trained with opposite part biases), each fine-tuned on the confounded set, their
  probabilities averaged with equal weights (Σ_m P(Y|x, c_m) / M). Its members are reported too.
"""

from __future__ import annotations

import functools
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from torch import nn

from ..adjust import backdoor_adjust
from ..engine import evaluate, train
from ..errors import ConfigError
from .cnn import ResNet32
from .config import WorldConfig
from .confounder import TEST_SETS, TRAIN_SETS, part_partners, propensities, render_study_split
from .generator import build_layout
from .tasks import WorldImages
from ..parallel import torch_threads
from ..parallel import run_parallel
from ..recipes import TrainConfig, load_recipe
from ..results import ResultsTable, format_mean_sd, interval_side, mean_ci

FIT_KINDS = ("plain", "c_input")
C_GROUPS = {0: "head-dominant", 1: "body-dominant"}
# Display names of the estimators, in the page's order.
METHODS = {"A": "trained on A", "B": "trained on B", "B_body": "trained on B_body",
           "confounded": "confounded (naive)", "c_input": "C as input, at the true c",
           "backdoor": "backdoor, true C", "posthoc": "propensity-corrected, true C",
           "member_head": "proxy member: heads",
           "member_body": "proxy member: bodies", "proxy": "multi-model proxy"}


@dataclass(frozen=True)
class Fit:
    """One CNN of the study.

    Attributes:
        name: its key; design: the training set (``TRAIN_SETS``); kind: ``plain`` or ``c_input`` (C as a
        fourth input plane);
        init: the fit whose trained weights it starts from (fine-tuning), or None (random weights);
        test_sets: where it is evaluated (the paper's 2×2 needs ``A`` and ``B``; the rest of the page
        compares estimators on ``confounded`` and ``interventional`` only, which halves evaluation).
    """

    name: str
    design: str
    kind: str = "plain"
    init: str | None = None
    test_sets: tuple[str, ...] = ("confounded", "interventional")

    def __post_init__(self) -> None:
        if self.design not in TRAIN_SETS or self.kind not in FIT_KINDS or not set(self.test_sets) <= set(TEST_SETS):
            raise ConfigError(f"Fit {self.name!r}: design must be one of {TRAIN_SETS}, kind one of {FIT_KINDS} "
                              f"and test_sets within {TEST_SETS}, got {self.design!r}, {self.kind!r}, {self.test_sets}")


# Chains of fits; a chain runs in one worker, each fit starting from the previous one's weights if it names it.
CHAINS: tuple[tuple[Fit, ...], ...] = (
    (Fit("B", "B", test_sets=TEST_SETS), Fit("member_head", "confounded", init="B")),
    (Fit("B_body", "B_body"), Fit("member_body", "confounded", init="B_body")),
    (Fit("A", "A", test_sets=TEST_SETS),), (Fit("confounded", "confounded"),),
    (Fit("c_input", "confounded", "c_input"),),
)


@dataclass(frozen=True)
class StudyConfig:
    """How the study trains its CNNs; the data sizes are the world's ``confounder`` section.

    Attributes:
        recipe: training recipe key (``ltlib/configs/methods``) for the from-scratch fits.
        blocks_per_stage: n of the 6n + 2-layer CIFAR ResNet; 1 (ResNet-8). ResNet-32 (n = 5) costs five
            times as much per epoch and learned less within a short schedule (measured on the study's
            earlier class choice, 15 epochs on one core: 73% in ~100 s for ResNet-32, 99% in ~20 s for ResNet-8).
        finetune_epochs, finetune_lr: the proxy members' fine-tuning on the confounded set (a light
            fine-tune, as LIFT's: few epochs at a fifth of the from-scratch learning rate).
    """

    recipe: str = "mini_cnn"
    blocks_per_stage: int = 1
    finetune_epochs: int = 2
    finetune_lr: float = 0.01

    def __post_init__(self) -> None:
        if self.blocks_per_stage < 1 or self.finetune_epochs < 1 or not self.finetune_lr > 0:
            raise ConfigError(f"StudyConfig needs blocks_per_stage >= 1, finetune_epochs >= 1 and finetune_lr > 0, "
                              f"got {self.blocks_per_stage}, {self.finetune_epochs}, {self.finetune_lr}")


# --------------------------------------------------------------------------- C as an input
class VisibilityPlane:
    """A study split whose images carry C as a constant fourth plane (−1 head-, +1 body-dominant).

    Args:
        dataset: the split; forced: None to use each image's true C, or 0 / 1 to set C for every image
            (the counterfactual inputs of the backdoor sum).
    """

    def __init__(self, dataset: WorldImages, forced: int | None = None) -> None:
        self.dataset, self.forced = dataset, forced

    def __len__(self) -> int:
        return len(self.dataset)

    def get_batch(self, indices: np.ndarray, key: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Images [B, 4, S, S] (RGB, then C) and labels [B]."""
        images, labels = self.dataset.get_batch(indices, key)
        c = self.dataset.visibility[torch.as_tensor(np.asarray(indices), dtype=torch.long)].float()
        c = torch.full_like(c, float(self.forced)) if self.forced is not None else c
        plane = (2 * c - 1).view(-1, 1, 1, 1).expand(-1, 1, *images.shape[2:])
        return torch.cat([images, plane], dim=1), labels


# --------------------------------------------------------------------------- training in workers
@dataclass(frozen=True)
class FitOutput:
    """A trained fit's outputs on every test set.

    Attributes:
        logits: key → [N, K'] float32; keys are the test sets (the true C for a ``c_input`` fit) and, for
            ``c_input``, also ``"<test set>|c=0"`` and ``"<test set>|c=1"`` (C forced).
        targets, visibility: test set → [N] int64 (Y and the true C).
        train_seconds: wall time of the training loop; cpu_seconds: CPU time of the whole fit (rendering
            its splits the first time, training, evaluation), which a busy machine inflates far less.
        state: the trained weights (read by the next fit of the chain).
    """

    fit: str
    seed: int
    logits: Mapping[str, np.ndarray]
    targets: Mapping[str, np.ndarray]
    visibility: Mapping[str, np.ndarray]
    train_seconds: float
    cpu_seconds: float
    state: Mapping[str, torch.Tensor] | None = None


@dataclass(frozen=True)
class StudyJob:
    """One worker job: the fits of ``chain`` for one study seed of ``world``."""

    world: WorldConfig
    seed: int
    chain: tuple[Fit, ...]
    study: StudyConfig


@functools.lru_cache(maxsize=None)
def study_split(world: WorldConfig, seed: int, name: str, is_train: bool) -> WorldImages:
    """A split of the study (``ltlib.miniworld.confounder.render_study_split``), rendered once per process.

    Args:
        world: the world; seed: the study seed; name: a design or test set; is_train: training split.
    Returns:
        The split, normalised as the world's datasets are (CLIP's mean and std, as ``World`` does).
    """
    layout = build_layout(world.parts.num_part_types, world.parts.group_size)
    return render_study_split(layout, world.render, world.confounder, name, is_train, OPENAI_DATASET_MEAN,
                              OPENAI_DATASET_STD, world.seed, seed)


def fit_recipe(study: StudyConfig, fit: Fit, seed: int) -> TrainConfig:
    """The recipe of ``fit``: ``study.recipe`` with the study seed, shortened for a fine-tune."""
    recipe = load_recipe(study.recipe, seed=seed)
    return replace(recipe, epochs=study.finetune_epochs, lr=study.finetune_lr) if fit.init else recipe


def train_fit(job: StudyJob, fit: Fit, init: Mapping[str, torch.Tensor] | None) -> FitOutput:
    """Train one fit of ``job`` (from ``init`` weights if given) and evaluate it on its test sets.

    Runs on one torch thread whatever the caller's setting: faster for these tiny models (see
    ``ltlib.parallel.torch_threads``) and the same numbers in a worker process, a test or a notebook.
    """
    with torch_threads(1):
        return _train_fit(job, fit, init)


def _train_fit(job: StudyJob, fit: Fit, init: Mapping[str, torch.Tensor] | None) -> FitOutput:
    cpu_start = time.process_time()
    model = ResNet32(len(job.world.confounder.classes), job.study.blocks_per_stage, seed=job.seed,
                     in_channels=4 if fit.kind == "c_input" else 3)
    if init is not None:
        model.load_state_dict(init)
    data = study_split(job.world, job.seed, fit.design, True)
    data = VisibilityPlane(data) if fit.kind == "c_input" else data
    recipe = fit_recipe(job.study, fit, job.seed)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ltlib-confounder-") as run_dir:
        train(model, data, nn.CrossEntropyLoss(), recipe, run_dir, progress=False)
    seconds = time.perf_counter() - start
    logits, targets, visibility = _evaluate_fit(model, fit, job, recipe.eval_batch_size)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return FitOutput(fit.name, job.seed, logits, targets, visibility, seconds, time.process_time() - cpu_start, state)


def _evaluate_fit(model: nn.Module, fit: Fit, job: StudyJob, batch_size: int
                  ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Logits on every test set (and, for ``c_input``, with C forced to 0 and 1), targets and true C."""
    logits, targets, visibility = {}, {}, {}
    for name in fit.test_sets:
        test = study_split(job.world, job.seed, name, False)
        views = {name: test} if fit.kind != "c_input" else {name: VisibilityPlane(test), **{
            f"{name}|c={c}": VisibilityPlane(test, c) for c in (0, 1)}}
        for key, view in views.items():
            out = evaluate(model, view, batch_size=batch_size, progress=False)
            logits[key], targets[name] = out.logits, out.targets
        visibility[name] = test.visibility.numpy().copy()
    return logits, targets, visibility


def run_chain(job: StudyJob) -> list[FitOutput]:
    """Worker entry point: train the fits of ``job.chain`` in order; returns their outputs (weights dropped)."""
    outputs: dict[str, FitOutput] = {}
    for fit in job.chain:
        init = outputs[fit.init].state if fit.init else None
        outputs[fit.name] = train_fit(job, fit, init)
    return [replace(o, state=None) for o in outputs.values()]


# --------------------------------------------------------------------------- the study
@dataclass(frozen=True)
class StudyOutputs:
    """Logits of every fit for every seed, with the test sets' ground truth.

    Attributes:
        fits: (seed, fit name) → :class:`FitOutput`.
        propensity: design or test set → P(C = 0 | Y) [K'].
        seconds: wall time of the whole study.
    """

    fits: Mapping[tuple[int, str], FitOutput]
    propensity: Mapping[str, np.ndarray]
    seconds: float

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(sorted({s for s, _ in self.fits}))

    @property
    def cpu_seconds(self) -> float:
        """CPU time of all fits together (on W idle cores the study needs about this / W of wall time)."""
        return float(sum(o.cpu_seconds for o in self.fits.values()))


def run_study(world: WorldConfig, seeds: Sequence[int], study: StudyConfig = StudyConfig(),
              workers: int | None = None) -> StudyOutputs:
    """Train and evaluate every fit of :data:`CHAINS` for every seed, one chain per worker job.

    Args:
        world: the world (its ``confounder`` section sets the classes and sizes).
        seeds: study seeds; each draws fresh training and test images and the CNNs' initialisation.
        study: the training choices.
        workers: single-threaded worker processes (``ltlib.parallel.run_parallel``; default: one per core).
    Returns:
        :class:`StudyOutputs`.
    """
    if not seeds:
        raise ConfigError("seeds must name at least one study seed")
    start = time.perf_counter()
    jobs = [StudyJob(world, int(seed), chain, study) for chain in CHAINS for seed in seeds]  # longest chains first
    outputs = [o for chain in run_parallel(run_chain, jobs, workers) for o in chain]
    return StudyOutputs({(o.seed, o.fit): o for o in outputs}, propensities(world.confounder),
                        time.perf_counter() - start)


# --------------------------------------------------------------------------- estimators and accuracies
def posthoc_propensity(logits: np.ndarray, visibility: np.ndarray, propensity: np.ndarray) -> np.ndarray:
    """log P_do(y | x) up to a constant: logits − log P(c_i | y), c_i the image's true C.

    Args:
        logits: [N, K]; visibility: true C, int [N]; propensity: P(C = 0 | Y = y) [K] of the training design.
    Returns:
        float64 [N, K].
    """
    p0 = np.asarray(propensity, dtype=np.float64)
    log_p = np.log(np.stack([p0, 1 - p0]))  # [2, K]: log P(c | y)
    return np.asarray(logits, dtype=np.float64) - log_p[np.asarray(visibility)]


def method_scores(outputs: StudyOutputs, seed: int, test_set: str) -> dict[str, np.ndarray]:
    """Scores [N, K'] of the estimators of :data:`METHODS` on one test set of one seed (module docstring).

    Only estimators whose fits were evaluated on ``test_set`` appear (see :attr:`Fit.test_sets`).
    """
    fits = {name: out for (s, name), out in outputs.fits.items() if s == seed and test_set in out.targets}
    scores = {name: out.logits[test_set] for name, out in fits.items()}
    p0 = np.asarray(outputs.propensity["confounded"])
    if "c_input" in fits:
        p_c = [float(p0.mean()), float(1 - p0.mean())]  # P(C) of the confounded design (Y balanced)
        forced = [fits["c_input"].logits[f"{test_set}|c={c}"] for c in (0, 1)]
        scores["backdoor"] = backdoor_adjust(forced, "prob_mean", p_c).numpy()
    if "confounded" in fits:
        scores["posthoc"] = posthoc_propensity(scores["confounded"], fits["confounded"].visibility[test_set], p0)
    if {"member_head", "member_body"} <= set(fits):
        scores["proxy"] = backdoor_adjust([scores["member_head"], scores["member_body"]], "prob_mean").numpy()
    return {name: np.asarray(scores[name]) for name in METHODS if name in scores}


def accuracy_frame(outputs: StudyOutputs) -> pd.DataFrame:
    """Top-1 accuracy (%) of every estimator on every test set and seed, overall and per true C.

    Returns:
        Tidy rows: ``seed, method, test_set, group`` (``all`` / ``head-dominant`` / ``body-dominant``), ``value``.
    """
    rows = []
    for seed in outputs.seeds:
        for test_set in TEST_SETS:
            truth = outputs.fits[(seed, "A")]  # evaluated everywhere; every fit of a seed sees the same test images
            targets, visibility = truth.targets[test_set], truth.visibility[test_set]
            for method, scores in method_scores(outputs, seed, test_set).items():
                correct = scores.argmax(axis=1) == targets
                groups = {"all": np.ones_like(correct), **{g: visibility == c for c, g in C_GROUPS.items()}}
                rows += [{"seed": seed, "method": method, "test_set": test_set, "group": g,
                          "value": 100.0 * float(correct[m].mean())} for g, m in groups.items()]
    return pd.DataFrame(rows)


def accuracy_by_propensity(outputs: StudyOutputs, test_set: str = "interventional") -> pd.DataFrame:
    """Accuracy (%) on images whose (y, c) was common in the confounded training set (P(c | y) ≥ 0.5)
    and on those whose (y, c) was rare. A model that takes the shortcut through C is right on the
    common combinations and wrong on the rare ones; one that reads the class is equally good on both.

    Returns:
        Tidy rows ``seed, method, test_set, group`` (``common (y, c)`` / ``rare (y, c)``), ``value``.
    """
    p0 = np.asarray(outputs.propensity["confounded"])
    rows = []
    for seed in outputs.seeds:
        truth = outputs.fits[(seed, "A")]
        targets, visibility = truth.targets[test_set], truth.visibility[test_set]
        common = np.where(visibility == 0, p0[targets], 1 - p0[targets]) >= 0.5
        for method, scores in method_scores(outputs, seed, test_set).items():
            correct = scores.argmax(axis=1) == targets
            rows += [{"seed": seed, "method": method, "test_set": test_set, "group": group,
                      "value": 100.0 * float(correct[mask].mean())}
                     for group, mask in (("common (y, c)", common), ("rare (y, c)", ~common))]
    return pd.DataFrame(rows)


def partner_error_share(outputs: StudyOutputs, world: WorldConfig, test_set: str = "interventional") -> pd.DataFrame:
    """Where each estimator's errors go: the share (%) that name the *partner*, the other class with the
    image's visible part (head partner for head-dominant images, body partner otherwise): the confusion
    the occluded remnant has to resolve, so most errors of a model that reads the parts go there.

    Returns:
        Tidy rows ``seed, method, test_set, value``.
    """
    layout = build_layout(world.parts.num_part_types, world.parts.group_size)
    partners = part_partners(layout, world.confounder.classes)
    rows = []
    for seed in outputs.seeds:
        truth = outputs.fits[(seed, "A")]
        targets, visibility = truth.targets[test_set], truth.visibility[test_set]
        partner = np.where(visibility == 0, partners["head"][targets], partners["body"][targets])
        for method, scores in method_scores(outputs, seed, test_set).items():
            wrong = scores.argmax(axis=1) != targets
            share = 100.0 * float(np.mean(scores.argmax(axis=1)[wrong] == partner[wrong])) if wrong.any() else np.nan
            rows.append({"seed": seed, "method": method, "test_set": test_set, "value": share})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- claims and verdicts
@dataclass(frozen=True)
class Contrast:
    """acc(method, test_set) − baseline per seed, in accuracy points (paired: same seed, same images).

    The baseline is acc(baseline, baseline_test_set); with ``baseline_head_share`` = s it is instead that
    model's per-C accuracies on ``baseline_test_set`` mixed as s · acc(head-dominant) + (1 − s) ·
    acc(body-dominant): the accuracy a pure shift of P(C) to s predicts. ``expected`` is the claimed
    sign: +1 / −1, or 0 for "no difference"; ``key`` names it in result tables and glue keys.
    """

    key: str
    name: str
    method: str
    test_set: str
    baseline: str
    baseline_test_set: str
    expected: int
    baseline_head_share: float | None = None


def default_contrasts(majority: float) -> tuple[Contrast, ...]:
    """The claims the page tests; ``majority`` is the B design's P(C = head-dominant) (B_test's mix)."""
    naive, do = ("confounded", "interventional"), "interventional"
    return (
        Contrast("paper_b", "paper: B-model, B_test − A_test", "B", "B", "B", "A", +1),
        Contrast("paper_a", "paper: A-model, B_test − A_test", "A", "B", "A", "A", 0),
        Contrast("remix_b", "B-model, B_test − its A_test per-C accuracies remixed to B_test's P(C)", "B", "B", "B",
                 "A", 0, majority),
        Contrast("confounding", "naive, confounded test − interventional test", "confounded", "confounded",
                 *naive, +1),
        Contrast("backdoor", "backdoor (true C) − naive, interventional", "backdoor", do, *naive, +1),
        Contrast("posthoc", "propensity-corrected (true C) − naive, interventional", "posthoc", do, *naive, +1),
        Contrast("proxy", "proxy − naive, interventional", "proxy", do, *naive, +1),
        Contrast("proxy_head", "proxy − its head member, interventional", "proxy", do, "member_head", do, +1),
        Contrast("proxy_body", "proxy − its body member, interventional", "proxy", do, "member_body", do, +1),
    )


def contrast_values(frame: pd.DataFrame, contrast: Contrast) -> pd.Series:
    """Per-seed values of ``contrast`` (accuracy points) from :func:`accuracy_frame` rows, indexed by seed."""
    acc = frame.set_index(["method", "test_set", "group", "seed"])["value"].sort_index()
    value = acc.loc[(contrast.method, contrast.test_set, "all")]
    if contrast.baseline_head_share is None:
        return value - acc.loc[(contrast.baseline, contrast.baseline_test_set, "all")]
    share = contrast.baseline_head_share
    per_c = [acc.loc[(contrast.baseline, contrast.baseline_test_set, C_GROUPS[c])] for c in (0, 1)]
    return value - (share * per_c[0] + (1 - share) * per_c[1])


def verdict(values: Sequence[float], expected: int, level: float = 0.95) -> str:
    """What per-seed differences say about a claim of sign ``expected``, from their t-interval
    (``ltlib.results.interval_side``, the rule the reproduction report applies too).

    Returns:
        For a signed claim: ``"supported"`` (the interval excludes 0 on the claimed side),
        ``"contradicted"`` (it excludes 0 on the other side) or ``"inconclusive"``. For a claim of no
        difference: ``"no difference detected"`` (the interval contains 0) or ``"contradicted"``.
        A single seed is always ``"inconclusive"``.
    """
    side, _ = interval_side(values, level)
    if side in ("single", "none"):
        return "inconclusive"
    if expected == 0:
        return "no difference detected" if side == "contains" else "contradicted"
    if side == "contains":
        return "inconclusive"
    return "supported" if (side == "above") == (expected > 0) else "contradicted"


def contrast_table(frame: pd.DataFrame, contrasts: Sequence[Contrast]) -> pd.DataFrame:
    """Mean, sd and 95% t-interval over seeds of every contrast, with the claimed sign and a :func:`verdict`."""
    rows = []
    for c in contrasts:
        values = contrast_values(frame, c).to_numpy()
        mean, sd, low, high, n = mean_ci(values)
        rows.append({"key": c.key, "contrast": c.name, "claimed": {1: "> 0", -1: "< 0", 0: "= 0"}[c.expected],
                     "mean": mean, "sd": sd, "ci_low": low, "ci_high": high, "n": n,
                     "verdict": verdict(values, c.expected)})
    return pd.DataFrame(rows)


def record(table: ResultsTable, frame: pd.DataFrame, contrasts: Sequence[Contrast], config: object = None,
           partner_shares: pd.DataFrame | None = None, by_propensity: pd.DataFrame | None = None) -> None:
    """Add every accuracy (metric ``accuracy``, group ``<test set>/<C group>``), every per-seed contrast
    (metric ``contrast``, group = its key), the :func:`partner_error_share` rows (metric
    ``partner_error_share``, group = the test set) and the :func:`accuracy_by_propensity` rows (metric
    ``accuracy``, group ``<test set>/common (y, c)`` or ``.../rare (y, c)``) to ``table``."""
    for row in frame.itertuples(index=False):
        table.add("accuracy", row.value, method=row.method, seed=row.seed, group=f"{row.test_set}/{row.group}",
                  config=config)
    for row in (partner_shares if partner_shares is not None else pd.DataFrame()).itertuples(index=False):
        table.add("partner_error_share", row.value, method=row.method, seed=row.seed, group=row.test_set,
                  config=config)
    for row in (by_propensity if by_propensity is not None else pd.DataFrame()).itertuples(index=False):
        table.add("accuracy", row.value, method=row.method, seed=row.seed, group=f"{row.test_set}/{row.group}",
                  config=config)
    for c in contrasts:
        for seed, value in contrast_values(frame, c).items():
            table.add("contrast", value, method=c.method, seed=int(seed), group=c.key, config=config)


# --------------------------------------------------------------------------- tables for the page
def design_table(world: WorldConfig) -> pd.DataFrame:
    """The study's classes: name, head and body type, and P(C = head-dominant | Y) of every design and test set."""
    layout, classes = build_layout(world.parts.num_part_types, world.parts.group_size), world.confounder.classes
    frame = pd.DataFrame({"class": [layout.class_names[k] for k in classes],
                          "head type": [layout.head_type[k] for k in classes],
                          "body type": [layout.body_type[k] for k in classes]})
    for name, p in propensities(world.confounder).items():
        frame[f"P(head | Y), {name}"] = p
    return frame


def design_values(world: WorldConfig) -> dict[str, float]:
    """The world's study parameters the page's prose cites (percentages in points).

    Returns:
        ``n_classes``, ``train_per_class``, ``test_per_class``, ``majority_pct`` / ``minority_pct`` (P(C =
        head | Y) of the majority / minority in B and the confounded design), ``marginal_pct`` (the
        interventional P(C = head)), ``occlusion_low_pct`` / ``occlusion_high_pct`` (how much of the
        non-dominant part is covered).
    """
    c, occlusion = world.confounder, world.render.occlusion
    marginal = float(propensities(c)["interventional"][0])
    return {"n_classes": len(c.classes), "train_per_class": c.train_per_class, "test_per_class": c.test_per_class,
            "majority_pct": 100 * c.majority, "minority_pct": 100 * (1 - c.majority), "marginal_pct": 100 * marginal,
            "occlusion_low_pct": 100 * occlusion[0], "occlusion_high_pct": 100 * occlusion[1]}


def summary_table(frame: pd.DataFrame, group: str = "all", labels: Mapping[str, str] = METHODS) -> pd.DataFrame:
    """Accuracy "mean ± sd" over seeds: one row per estimator (page order), one column per test set."""
    rows = frame[frame["group"] == group].groupby(["method", "test_set"])["value"]
    cells = rows.agg(lambda v: format_mean_sd(*mean_ci(v.to_numpy())[:2], digits=1)).unstack("test_set")
    cells = cells.reindex(index=[m for m in labels if m in cells.index], columns=list(TEST_SETS)).fillna("—")
    return cells.rename(index=dict(labels)).rename_axis(index="estimator", columns="test set")


ADJUSTMENTS = ("backdoor", "posthoc", "proxy")  # the estimators that try to undo the confounding


def glue_values(contrasts: pd.DataFrame, frame: pd.DataFrame, outputs: StudyOutputs,
                partner_shares: pd.DataFrame | None = None, by_propensity: pd.DataFrame | None = None
                ) -> dict[str, float | str]:
    """The numbers the page's prose cites.

    Returns:
        ``<key>_mean/_sd/_lo/_hi/_verdict`` of every contrast row, ``acc_<method>_<test set>`` mean
        accuracies, ``best_adjustment`` (the display name of the adjustment with the highest mean
        interventional accuracy) with ``best_adjustment_acc``, ``study_seconds`` (wall),
        ``study_cpu_seconds``, ``partner_<method>`` mean partner-error shares and ``common_<method>`` /
        ``rare_<method>`` mean accuracies by propensity.
    """
    out: dict[str, float | str] = {"study_seconds": float(outputs.seconds), "study_cpu_seconds": outputs.cpu_seconds}
    for row in contrasts.itertuples(index=False):
        out |= {f"{row.key}_mean": row.mean, f"{row.key}_sd": row.sd, f"{row.key}_lo": row.ci_low,
                f"{row.key}_hi": row.ci_high, f"{row.key}_verdict": row.verdict}
    out |= _mean_values(frame[frame["group"] == "all"], ["method", "test_set"], "acc_{}_{}")
    best = max(ADJUSTMENTS, key=lambda m: out.get(f"acc_{m}_interventional", float("-inf")))
    out |= {"best_adjustment": METHODS[best], "best_adjustment_acc": out[f"acc_{best}_interventional"]}
    if partner_shares is not None:
        out |= _mean_values(partner_shares, ["method"], "partner_{}")
    if by_propensity is not None:
        kind = by_propensity["group"].str.split().str[0]  # "common" / "rare"
        out |= _mean_values(by_propensity.assign(kind=kind), ["kind", "method"], "{}_{}")
    return out


def _mean_values(frame: pd.DataFrame, by: list[str], key: str) -> dict[str, float]:
    """Mean ``value`` per group of ``by``, keyed by ``key.format(*group)``."""
    means = frame.groupby(by)["value"].mean()
    return {key.format(*(k if isinstance(k, tuple) else (k,))): float(v) for k, v in means.items()}
