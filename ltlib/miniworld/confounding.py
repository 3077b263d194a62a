"""The synthetic confounder study (the paper's Fig. 12; book: Mini world, item 7): from-scratch CNNs,
adjustments, controls and verdicts, replicated over independent worlds.

**The graph.** The study's generator draws Y, then C (which part is visible) from the design's propensity
P(C | Y), then the image X from (Y, C): Y → C → X ← Y. C is a child of Y, not the common cause
C → X, C → Y of the paper's §4 causal graph. The interventional test set samples X under do(C) (C drawn
independently of Y), which cuts Y → C; there P_do(y | x) ∝ P(y | x) / P(c(x) | y).

**Replicates.** A replicate is a world (``WorldConfig.seed``): it draws the study's images and the CNNs'
initialisation and batch order. Study seeds are nested inside a world; every summary first averages the
seeds of a world, then takes the mean and t-interval over worlds.

Every CNN of the study is a :class:`Fit`: trained from random weights on one training design of
``ltlib.miniworld.confounder`` (or fine-tuned from another fit), then evaluated on its test sets. The
estimators compared on the page (:data:`METHODS`) are computed from the fits' logits:

- the paper's 2×2: the CNNs trained on ``A`` and on ``B``;
- ``confounded``: the CNN trained on the confounded design (the naive estimate of P(Y|X));
- ``backdoor``: Σ_c P̂(Y|x,c) P(c) with the true C, P̂ a CNN that takes C as a constant extra input plane
  and is evaluated with each value of c (``ltlib.adjust.backdoor_adjust``, rule ``prob_mean``);
- ``posthoc``: the confounded CNN's logits minus log P(c|y) at the image's true c (the known propensity);
- ``plugin_calibrated``: the same plug-in with the propensity estimated from a held-out observational
  sample and the CNN's logits temperature-scaled on that sample (:func:`calibrated_plugin`);
- ``c_offset``: a CNN trained on the confounded set with log P(c_i|y) added to its logits inside the loss
  (logit adjustment with a per-image offset, :class:`PropensityOffsetLoss`), evaluated on its raw logits;
- ``proxy``: the paper's multi-model adjustment without C: two CNNs that rely on different parts (one
  pre-trained on the head-biased design ``B``, one on the body-biased ``B_body``, as the mini foundation
  models are pre-trained with opposite part biases), each fine-tuned on the confounded set, their
  probabilities averaged with equal weights (Σ_m P(Y|x, c_m) / M). Its members are reported too;
- controls of the proxy: ``proxy_same_bias`` (two members with the same part bias: both pre-trained on
  ``B``, on independent draws and seeds, both fine-tuned on the confounded set) and ``proxy_same_data``
  (two CNNs trained from scratch on the naive model's own training set, different seeds).
"""

from __future__ import annotations

import functools
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from torch import nn

from ..adjust import backdoor_adjust
from ..engine import evaluate, train
from ..errors import ConfigError
from .cnn import ResNet32
from .config import WorldConfig, load_world_config
from .confounder import TEST_SETS, TRAIN_SETS, part_partners, propensities, render_study_split
from .generator import build_layout
from .seeds import derive_seed
from .tasks import WorldImages
from ..parallel import torch_threads
from ..parallel import run_parallel
from ..paths import cache_root
from ..provenance import config_hash, to_plain
from ..recipes import TrainConfig, load_recipe
from ..results import ResultsTable, format_mean_sd, interval_side, mean_ci
from ..storage import atomic_path, read_json, write_json

FIT_KINDS = ("plain", "c_input", "c_offset")
C_GROUPS = {0: "head-dominant", 1: "body-dominant"}
# Display names of the estimators, in the page's order.
METHODS = {"A": "trained on A", "B": "trained on B", "B_body": "trained on B_body",
           "confounded": "confounded (naive)", "c_input": "C as input, at the true c",
           "backdoor": "backdoor, true C", "posthoc": "propensity-corrected, true C",
           "plugin_calibrated": "propensity plug-in, estimated + calibrated",
           "c_offset": "trained with log P(c|y) offset",
           "member_head": "proxy member: heads", "member_body": "proxy member: bodies",
           "proxy": "multi-model proxy", "proxy_same_bias": "control: same-bias proxy",
           "proxy_same_data": "control: same-data proxy"}


@dataclass(frozen=True)
class Fit:
    """One CNN of the study.

    Attributes:
        name: its key; design: the training set (``TRAIN_SETS``); kind: ``plain``, ``c_input`` (C as a
        fourth input plane) or ``c_offset`` (trained with the per-image offset log P(c_i|y),
        :class:`PropensityOffsetLoss`);
        init: the fit whose trained weights it starts from (fine-tuning), or None (random weights);
        test_sets: where it is evaluated (the paper's 2×2 needs ``A`` and ``B``; the rest of the page
        compares estimators on ``confounded`` and ``interventional`` only, which halves evaluation);
        copy: 0, or k > 0 for an independently trained copy (its own initialisation and batch order);
        data_copy: 0 to train on the study's split of ``design``, k > 0 for an independent draw of it.
    """

    name: str
    design: str
    kind: str = "plain"
    init: str | None = None
    test_sets: tuple[str, ...] = ("confounded", "interventional")
    copy: int = 0
    data_copy: int = 0

    def __post_init__(self) -> None:
        if self.design not in TRAIN_SETS or self.kind not in FIT_KINDS or not set(self.test_sets) <= set(TEST_SETS):
            raise ConfigError(f"Fit {self.name!r}: design must be one of {TRAIN_SETS}, kind one of {FIT_KINDS} "
                              f"and test_sets within {TEST_SETS}, got {self.design!r}, {self.kind!r}, {self.test_sets}")
        if self.copy < 0 or self.data_copy < 0:
            raise ConfigError(f"Fit {self.name!r}: copy and data_copy must be >= 0, got {self.copy}, {self.data_copy}")


# Chains of fits; a chain runs in one worker, each fit starting from the previous one's weights if it names it.
# Two-fit chains first (the longest jobs start first). Per world and seed: 8 from-scratch fits, 3 fine-tunes.
CHAINS: tuple[tuple[Fit, ...], ...] = (
    (Fit("B", "B", test_sets=TEST_SETS), Fit("member_head", "confounded", init="B")),
    (Fit("B_body", "B_body"), Fit("member_body", "confounded", init="B_body")),
    (Fit("B_copy", "B", test_sets=(), copy=1, data_copy=1),
     Fit("member_head_copy", "confounded", init="B_copy", copy=1)),
    (Fit("A", "A", test_sets=TEST_SETS),), (Fit("confounded", "confounded"),),
    (Fit("confounded_copy", "confounded", copy=1),),
    (Fit("c_input", "confounded", "c_input"),), (Fit("c_offset", "confounded", "c_offset"),),
)
# The proxies: estimator → its members (fits), combined with equal weights (the paper's Eq. of §4).
PROXIES = {"proxy": ("member_head", "member_body"), "proxy_same_bias": ("member_head", "member_head_copy"),
           "proxy_same_data": ("confounded", "confounded_copy")}


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


class VisibilityTargets:
    """A study split whose targets also carry C: y + K'·c (decoded by :class:`PropensityOffsetLoss`).

    Args:
        dataset: the split; num_classes: K'.
    """

    def __init__(self, dataset: WorldImages, num_classes: int) -> None:
        self.dataset, self.num_classes = dataset, num_classes

    def __len__(self) -> int:
        return len(self.dataset)

    def get_batch(self, indices: np.ndarray, key: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Images [B, 3, S, S] and encoded targets [B] (y + K'·c)."""
        images, labels = self.dataset.get_batch(indices, key)
        c = self.dataset.visibility[torch.as_tensor(np.asarray(indices), dtype=torch.long)].long()
        return images, labels + self.num_classes * c


class PropensityOffsetLoss(nn.Module):
    """Cross-entropy of logits + log P(c_i | y) (a per-image logit adjustment; training-time analogue of
    :func:`posthoc_propensity`).

    Its population minimiser on observational data is f(x)_y = log P(y|x) − log P(c(x)|y) + const(x) =
    log P_do(y|x) + const(x) in this generator (Y → C → X ← Y), so the raw logits of a CNN trained with it
    estimate the interventional posterior and need no C at test time. As logit adjustment (Menon et al.,
    the LA loss of the paper's §3), but the offset depends on the image's C, not only on the class.

    Args:
        propensity: P(C = 0 | Y = y) [K'] of the training design.
    """

    def __init__(self, propensity: np.ndarray) -> None:
        super().__init__()
        p0 = torch.as_tensor(np.asarray(propensity, dtype=np.float64), dtype=torch.float32)
        self.register_buffer("log_p", torch.log(torch.stack([p0, 1 - p0])))  # [2, K']: log P(c | y)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean loss; ``targets`` = y + K'·c (:class:`VisibilityTargets`)."""
        k = logits.shape[1]
        y, c = targets % k, torch.div(targets, k, rounding_mode="floor")
        return nn.functional.cross_entropy(logits + self.log_p[c], y)


# --------------------------------------------------------------------------- training in workers
@dataclass(frozen=True)
class FitOutput:
    """A trained fit's outputs on every test set.

    Attributes:
        fit: its name; world_seed: the world (replicate); seed: the study seed nested in it.
        logits: key → [N, K'] float32; keys are the test sets (the true C for a ``c_input`` fit) and, for
            ``c_input``, also ``"<test set>|c=0"`` and ``"<test set>|c=1"`` (C forced).
        targets, visibility: test set → [N] int64 (Y and the true C).
        train_seconds: wall time of the training loop; cpu_seconds: CPU time of the whole fit (rendering
            its splits the first time, training, evaluation), which a busy machine inflates far less.
        state: the trained weights (read by the next fit of the chain).
    """

    fit: str
    world_seed: int
    seed: int
    logits: Mapping[str, np.ndarray]
    targets: Mapping[str, np.ndarray]
    visibility: Mapping[str, np.ndarray]
    train_seconds: float
    cpu_seconds: float
    state: Mapping[str, torch.Tensor] | None = None

    @property
    def key(self) -> tuple[int, int, str]:
        """(world seed, study seed, fit name): its key in :attr:`StudyOutputs.fits`."""
        return self.world_seed, self.seed, self.fit


@dataclass(frozen=True)
class StudyJob:
    """One worker job: the fits of ``chain`` for one study seed of ``world`` (its seed is the replicate)."""

    world: WorldConfig
    seed: int
    chain: tuple[Fit, ...]
    study: StudyConfig


@functools.lru_cache(maxsize=None)
def study_split(world: WorldConfig, seed: int, name: str, is_train: bool, copy: int = 0) -> WorldImages:
    """A split of the study (``ltlib.miniworld.confounder.render_study_split``), rendered once per process.

    Args:
        world: the world; seed: the study seed; name: a design or test set; is_train: training split;
        copy: 0, or k > 0 for an independent draw of the same design.
    Returns:
        The split, normalised as the world's datasets are (CLIP's mean and std, as ``World`` does).
    """
    layout = build_layout(world.parts.num_part_types, world.parts.group_size)
    return render_study_split(layout, world.render, world.confounder, name, is_train, OPENAI_DATASET_MEAN,
                              OPENAI_DATASET_STD, world.seed, seed, copy=copy)


def fit_seed(world: WorldConfig, seed: int, fit: Fit) -> int:
    """Initialisation and batch-order seed of ``fit``: drawn from the world's seed, the study seed and the
    fit's copy index, so worlds, seeds and copies are independent."""
    return derive_seed(world.seed, f"confounder/fit/copy{fit.copy}", seed) % 2**31


def fit_recipe(study: StudyConfig, fit: Fit, seed: int) -> TrainConfig:
    """The recipe of ``fit``: ``study.recipe`` with ``seed`` (:func:`fit_seed`), shortened for a fine-tune."""
    recipe = load_recipe(study.recipe, seed=seed)
    return replace(recipe, epochs=study.finetune_epochs, lr=study.finetune_lr) if fit.init else recipe


def train_fit(job: StudyJob, fit: Fit, init: Mapping[str, torch.Tensor] | None) -> FitOutput:
    """Train one fit of ``job`` (from ``init`` weights if given) and evaluate it on its test sets.

    Runs on one torch thread whatever the caller's setting: faster for these tiny models (see
    ``ltlib.parallel.torch_threads``) and the same numbers in a worker process, a test or a notebook.
    """
    with torch_threads(1):
        return _train_fit(job, fit, init)


def fit_training(job: StudyJob, fit: Fit) -> tuple[object, nn.Module]:
    """The training set and loss of ``fit``: its design's split (C as a plane for ``c_input``, C in the
    targets for ``c_offset``) and cross-entropy (with the design's log P(c|y) offset for ``c_offset``)."""
    data = study_split(job.world, job.seed, fit.design, True, fit.data_copy)
    if fit.kind == "c_input":
        return VisibilityPlane(data), nn.CrossEntropyLoss()
    if fit.kind == "c_offset":
        num_classes = len(job.world.confounder.classes)
        propensity = propensities(job.world.confounder)[fit.design]
        return VisibilityTargets(data, num_classes), PropensityOffsetLoss(propensity)
    return data, nn.CrossEntropyLoss()


def _train_fit(job: StudyJob, fit: Fit, init: Mapping[str, torch.Tensor] | None) -> FitOutput:
    cpu_start = time.process_time()
    seed = fit_seed(job.world, job.seed, fit)
    model = ResNet32(len(job.world.confounder.classes), job.study.blocks_per_stage, seed=seed,
                     in_channels=4 if fit.kind == "c_input" else 3)
    if init is not None:
        model.load_state_dict(init)
    data, loss = fit_training(job, fit)
    recipe = fit_recipe(job.study, fit, seed)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ltlib-confounder-") as run_dir:
        train(model, data, loss, recipe, run_dir, progress=False)
    seconds = time.perf_counter() - start
    logits, targets, visibility = _evaluate_fit(model, fit, job, recipe.eval_batch_size)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return FitOutput(fit.name, int(job.world.seed), job.seed, logits, targets, visibility, seconds,
                     time.process_time() - cpu_start, state)


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


# --------------------------------------------------------------------------- the chains' disk cache
# Bump when code changes what a chain produces for a given job (rendering, training, evaluation).
CHAIN_CACHE_VERSION = 1
_ARRAYS = ("logits", "targets", "visibility")


def chain_dir(job: StudyJob, root: str | Path | None = None) -> Path:
    """``<cache root>/confounder/<first fit>-<hash>/``: the outputs of ``job``'s chain. The hash covers the
    world's config, the study seed, the chain's fits, the study's settings and the recipe's resolved values
    (an edited recipe file is a new entry), with :data:`CHAIN_CACHE_VERSION`."""
    recipe = to_plain(load_recipe(job.study.recipe, seed=0))
    key = {"version": CHAIN_CACHE_VERSION, "world": to_plain(job.world), "seed": job.seed,
           "chain": to_plain(job.chain), "study": to_plain(job.study), "recipe": recipe}
    return Path(root or cache_root()) / "confounder" / f"{job.chain[0].name}-{config_hash(key)}"


def run_chain_cached(job: StudyJob) -> list[FitOutput]:
    """:func:`run_chain` through the disk cache: a complete entry is read (arrays only, no pickle), else
    the chain is trained and its outputs written (atomically, the index last, so that its presence marks a
    complete entry). The outputs are the same arrays either way."""
    directory = chain_dir(job)
    if (directory / "index.json").is_file():
        return read_chain(directory)
    outputs = run_chain(job)
    write_chain(directory, outputs)
    return outputs


def write_chain(directory: Path, outputs: Sequence[FitOutput]) -> None:
    """``arrays.npz`` (every array as ``<fit>/<logits|targets|visibility>/<key>``), then ``index.json``."""
    arrays = {f"{o.fit}/{kind}/{key}": value for o in outputs for kind in _ARRAYS
              for key, value in getattr(o, kind).items()}
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_path(directory / "arrays.npz") as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
    write_json(directory / "index.json", [{"fit": o.fit, "world_seed": o.world_seed, "seed": o.seed,
                                           "train_seconds": o.train_seconds, "cpu_seconds": o.cpu_seconds,
                                           **{kind: sorted(getattr(o, kind)) for kind in _ARRAYS}}
                                          for o in outputs])


def read_chain(directory: Path) -> list[FitOutput]:
    """The outputs :func:`write_chain` wrote, in their order (``allow_pickle=False``: only arrays are read).

    Raises:
        ConfigError: naming the entry, when its arrays do not match its index (a damaged cache entry:
            delete the folder to train it again).
    """
    try:
        with np.load(directory / "arrays.npz", allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
        return [FitOutput(e["fit"], int(e["world_seed"]), int(e["seed"]),
                          *({key: arrays[f"{e['fit']}/{kind}/{key}"] for key in e[kind]} for kind in _ARRAYS),
                          float(e["train_seconds"]), float(e["cpu_seconds"]))
                for e in read_json(directory / "index.json")]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{directory}: damaged confounder-study cache entry ({exc}); delete the folder to "
                          "train the chain again") from exc


# --------------------------------------------------------------------------- the study
@dataclass(frozen=True)
class StudyOutputs:
    """Logits of every fit for every world and seed, with the test sets' ground truth.

    Attributes:
        fits: (world seed, study seed, fit name) → :class:`FitOutput`.
        propensity: design or test set → P(C = 0 | Y) [K'] (the same in every world).
        seconds: wall time of the whole study (of this call: chains read from the cache take no training).
    """

    fits: Mapping[tuple[int, int, str], FitOutput]
    propensity: Mapping[str, np.ndarray]
    seconds: float

    @property
    def replicates(self) -> tuple[tuple[int, int], ...]:
        """Every (world seed, study seed), sorted."""
        return tuple(sorted({(w, s) for w, s, _ in self.fits}))

    @property
    def world_seeds(self) -> tuple[int, ...]:
        return tuple(sorted({w for w, _, _ in self.fits}))

    @property
    def cpu_seconds(self) -> float:
        """CPU time of all fits together (on W idle cores the study needs about this / W of wall time)."""
        return float(sum(o.cpu_seconds for o in self.fits.values()))

    def of(self, replicate: tuple[int, int]) -> dict[str, FitOutput]:
        """The fits of one (world seed, study seed), by name."""
        return {name: out for (w, s, name), out in self.fits.items() if (w, s) == tuple(replicate)}


def world_configs(key: str, world_seeds: Sequence[int]) -> list[WorldConfig]:
    """The study's worlds: world ``key`` with each of ``world_seeds`` as its seed (the replicates).

    Raises:
        ConfigError: no world seed, or a repeated one.
    """
    seeds = [int(s) for s in world_seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"worlds must name at least one world seed, each once, got {list(world_seeds)}")
    return [load_world_config(key, seed=s) for s in seeds]


def run_study(worlds: Sequence[WorldConfig], seeds: Sequence[int], study: StudyConfig = StudyConfig(),
              workers: int | None = None, cache: bool = True) -> StudyOutputs:
    """Train and evaluate every fit of :data:`CHAINS` for every world and study seed, one chain per job;
    with ``cache``, a chain trained before with the same inputs is read from disk (:func:`run_chain_cached`).

    Args:
        worlds: the independent worlds (:func:`world_configs`); they must share the ``confounder`` section.
        seeds: study seeds nested in each world; each draws fresh training and test images and the CNNs'
            initialisation.
        study: the training choices.
        workers: single-threaded worker processes (``ltlib.parallel.run_parallel``; default: one per core).
        cache: read and write the chains' outputs under the cache root (``ltlib.paths.cache_root``).
    Returns:
        :class:`StudyOutputs` (``seconds``: this call's wall time, reading cached chains included).
    """
    if not seeds or not worlds:
        raise ConfigError(f"the study needs at least one world and one seed, got {len(worlds)} worlds, seeds {seeds}")
    if len({w.confounder for w in worlds}) != 1 or len({w.seed for w in worlds}) != len(worlds):
        raise ConfigError("the study's worlds must share the confounder section and have distinct seeds")
    start = time.perf_counter()
    chains = sorted(CHAINS, key=len, reverse=True)  # longest chains first
    jobs = [StudyJob(w, int(seed), chain, study) for chain in chains for w in worlds for seed in seeds]
    outputs = [o for chain in run_parallel(run_chain_cached if cache else run_chain, jobs, workers) for o in chain]
    return StudyOutputs({o.key: o for o in outputs}, propensities(worlds[0].confounder),
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


def estimate_propensity(targets: np.ndarray, visibility: np.ndarray, num_classes: int) -> np.ndarray:
    """P̂(C = 0 | Y = y) from a labelled sample with C annotated, add-one smoothed: (n_y0 + 1) / (n_y + 2).

    Args:
        targets: [N] class ids; visibility: [N] true C; num_classes: K'.
    Returns:
        float64 [K'].
    """
    targets, visibility = np.asarray(targets), np.asarray(visibility)
    n_y = np.bincount(targets, minlength=num_classes)
    n_y0 = np.bincount(targets[visibility == 0], minlength=num_classes)
    return (n_y0 + 1.0) / (n_y + 2.0)


def fit_temperature(logits: np.ndarray, targets: np.ndarray) -> float:
    """Temperature T minimising the NLL of softmax(logits / T) on a held-out sample (temperature scaling).

    Returns:
        T in [0.05, 20] (a bounded scalar search over log T; xatol 1e-3 in log T is far below what moves
        an argmax here).
    """
    from scipy.optimize import minimize_scalar
    from scipy.special import log_softmax

    z, y = np.asarray(logits, dtype=np.float64), np.asarray(targets)

    def nll(log_t: float) -> float:
        return -float(log_softmax(z / np.exp(log_t), axis=1)[np.arange(len(y)), y].mean())

    result = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded", options={"xatol": 1e-3})
    return float(np.exp(result.x))


def calibrated_plugin(logits: np.ndarray, visibility: np.ndarray, held_out: FitOutput,
                      held_out_set: str = "confounded") -> np.ndarray:
    """The propensity plug-in P_do(y|x) ∝ P(y|x) / P(c(x)|y) with both factors estimated on held-out
    observational data: the CNN's logits temperature-scaled (:func:`fit_temperature`) and the propensity
    estimated from the held-out (y, c) counts (:func:`estimate_propensity`).

    Args:
        logits: [N, K'] of the naive CNN on the evaluated test set; visibility: its true C [N].
        held_out: the naive CNN's :class:`FitOutput`; held_out_set: its observational test set used to
            calibrate (drawn from the training design, disjoint from the interventional test set).
    Returns:
        float64 [N, K'] scores.
    """
    z, y, c = (held_out.logits[held_out_set], held_out.targets[held_out_set], held_out.visibility[held_out_set])
    temperature = fit_temperature(z, y)
    p0 = estimate_propensity(y, c, np.asarray(logits).shape[1])
    return posthoc_propensity(np.asarray(logits, dtype=np.float64) / temperature, visibility, p0)


def method_scores(outputs: StudyOutputs, replicate: tuple[int, int], test_set: str) -> dict[str, np.ndarray]:
    """Scores [N, K'] of the estimators of :data:`METHODS` on one test set of one (world seed, study seed)
    (module docstring).

    Only estimators whose fits were evaluated on ``test_set`` appear (see :attr:`Fit.test_sets`).
    """
    fits = {name: out for name, out in outputs.of(replicate).items() if test_set in out.targets}
    scores = {name: out.logits[test_set] for name, out in fits.items()}
    p0 = np.asarray(outputs.propensity["confounded"])
    if "c_input" in fits:
        p_c = [float(p0.mean()), float(1 - p0.mean())]  # P(C) of the confounded design (Y balanced)
        forced = [fits["c_input"].logits[f"{test_set}|c={c}"] for c in (0, 1)]
        scores["backdoor"] = backdoor_adjust(forced, "prob_mean", p_c).numpy()
    if "confounded" in fits:
        naive = fits["confounded"]
        scores["posthoc"] = posthoc_propensity(scores["confounded"], naive.visibility[test_set], p0)
        scores["plugin_calibrated"] = calibrated_plugin(scores["confounded"], naive.visibility[test_set], naive)
    for proxy, members in PROXIES.items():
        if set(members) <= set(fits):
            scores[proxy] = backdoor_adjust([fits[m].logits[test_set] for m in members], "prob_mean").numpy()
    return {name: np.asarray(scores[name]) for name in METHODS if name in scores}


def _truth(outputs: StudyOutputs, replicate: tuple[int, int], test_set: str) -> tuple[np.ndarray, np.ndarray]:
    """Targets and true C of a test set (every fit of a replicate sees the same test images; A is
    evaluated on every test set)."""
    truth = outputs.of(replicate)["A"]
    return truth.targets[test_set], truth.visibility[test_set]


def accuracy_frame(outputs: StudyOutputs) -> pd.DataFrame:
    """Top-1 accuracy (%) of every estimator on every test set, world and seed, overall and per true C.

    Returns:
        Tidy rows: ``world_seed, seed, method, test_set, group`` (``all`` / ``head-dominant`` /
        ``body-dominant``), ``value``.
    """
    rows = []
    for world_seed, seed in outputs.replicates:
        for test_set in TEST_SETS:
            targets, visibility = _truth(outputs, (world_seed, seed), test_set)
            for method, scores in method_scores(outputs, (world_seed, seed), test_set).items():
                correct = scores.argmax(axis=1) == targets
                groups = {"all": np.ones_like(correct), **{g: visibility == c for c, g in C_GROUPS.items()}}
                rows += [{"world_seed": world_seed, "seed": seed, "method": method, "test_set": test_set, "group": g,
                          "value": 100.0 * float(correct[m].mean())} for g, m in groups.items()]
    return pd.DataFrame(rows)


def accuracy_by_propensity(outputs: StudyOutputs, test_set: str = "interventional") -> pd.DataFrame:
    """Accuracy (%) on images whose (y, c) was common in the confounded training set (P(c | y) ≥ 0.5)
    and on those whose (y, c) was rare. A model that takes the shortcut through C is right on the
    common combinations and wrong on the rare ones; one that reads the class is equally good on both.

    Returns:
        Tidy rows ``world_seed, seed, method, test_set, group`` (``common (y, c)`` / ``rare (y, c)``), ``value``.
    """
    p0 = np.asarray(outputs.propensity["confounded"])
    rows = []
    for world_seed, seed in outputs.replicates:
        targets, visibility = _truth(outputs, (world_seed, seed), test_set)
        common = np.where(visibility == 0, p0[targets], 1 - p0[targets]) >= 0.5
        for method, scores in method_scores(outputs, (world_seed, seed), test_set).items():
            correct = scores.argmax(axis=1) == targets
            rows += [{"world_seed": world_seed, "seed": seed, "method": method, "test_set": test_set,
                      "group": group, "value": 100.0 * float(correct[mask].mean())}
                     for group, mask in (("common (y, c)", common), ("rare (y, c)", ~common))]
    return pd.DataFrame(rows)


def partner_error_share(outputs: StudyOutputs, world: WorldConfig, test_set: str = "interventional") -> pd.DataFrame:
    """Where each estimator's errors go: the share (%) that name the *partner*, the other class with the
    image's visible part (head partner for head-dominant images, body partner otherwise): the confusion
    the occluded remnant has to resolve, so most errors of a model that reads the parts go there.

    Args:
        world: any of the study's worlds (they share the classes).
    Returns:
        Tidy rows ``world_seed, seed, method, test_set, value``.
    """
    layout = build_layout(world.parts.num_part_types, world.parts.group_size)
    partners = part_partners(layout, world.confounder.classes)
    rows = []
    for world_seed, seed in outputs.replicates:
        targets, visibility = _truth(outputs, (world_seed, seed), test_set)
        partner = np.where(visibility == 0, partners["head"][targets], partners["body"][targets])
        for method, scores in method_scores(outputs, (world_seed, seed), test_set).items():
            wrong = scores.argmax(axis=1) != targets
            share = 100.0 * float(np.mean(scores.argmax(axis=1)[wrong] == partner[wrong])) if wrong.any() else np.nan
            rows.append({"world_seed": world_seed, "seed": seed, "method": method, "test_set": test_set,
                         "value": share})
    return pd.DataFrame(rows)


def world_means(frame: pd.DataFrame) -> pd.DataFrame:
    """The mean ``value`` over the study seeds of each world (every other column kept): the replicate-level
    rows every interval and figure of the page is computed from."""
    keys = [c for c in frame.columns if c not in ("seed", "value")]
    return frame.groupby(keys, sort=False, dropna=False)["value"].mean().reset_index()


# --------------------------------------------------------------------------- claims and verdicts
@dataclass(frozen=True)
class Contrast:
    """acc(method, test_set) − baseline per (world, seed), in accuracy points (paired: same world and seed,
    same test images).

    The baseline is acc(baseline, baseline_test_set); with ``baseline_head_share`` = s it is instead that
    model's per-C accuracies on ``baseline_test_set`` mixed as s · acc(head-dominant) + (1 − s) ·
    acc(body-dominant): the accuracy a pure shift of P(C) to s predicts. ``expected`` is the claimed
    sign: +1 / −1, or 0 for "no difference"; ``key`` names it in result tables (the claim registry's key
    where the claim has one) and glue keys.
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
    """The claims and controls the page tests (Fig. 12's 2×2, its P(C)-shift control, and the §4 method
    with a real confounder); ``majority`` is the B design's P(C = head-dominant) (B_test's mix). Keys
    ``fig12_*`` and ``proxy_closes_confounding_gap`` / ``proxy_beats_same_bias_proxy`` are the claim
    registry's; the others are the page's own controls."""
    naive, do = ("confounded", "interventional"), "interventional"
    return (
        Contrast("fig12_b_gap", "paper: B-model, B_test − A_test", "B", "B", "B", "A", +1),
        Contrast("fig12_a_no_gap", "paper: A-model, B_test − A_test", "A", "B", "A", "A", 0),
        Contrast("fig12_gap_is_pc_shift", "B-model, B_test − its A_test per-C accuracies remixed to B_test's P(C)",
                 "B", "B", "B", "A", 0, majority),
        Contrast("confounding_gap", "naive, confounded test − interventional test", "confounded", "confounded",
                 *naive, +1),
        Contrast("backdoor_true_c", "backdoor (true C) − naive, interventional", "backdoor", do, *naive, +1),
        Contrast("posthoc_true_c", "propensity-corrected (true C) − naive, interventional", "posthoc", do,
                 *naive, +1),
        Contrast("plugin_calibrated", "propensity plug-in (estimated, calibrated) − naive, interventional",
                 "plugin_calibrated", do, *naive, +1),
        Contrast("plugin_calibration_gain", "propensity plug-in: calibrated − uncalibrated, interventional",
                 "plugin_calibrated", do, "posthoc", do, +1),
        Contrast("c_offset", "trained with log P(c|y) offset − naive, interventional", "c_offset", do, *naive, +1),
        Contrast("proxy_closes_confounding_gap", "proxy − naive, interventional", "proxy", do, *naive, +1),
        Contrast("proxy_beats_same_bias_proxy", "proxy − same-bias proxy, interventional", "proxy", do,
                 "proxy_same_bias", do, +1),
        Contrast("proxy_beats_same_data_proxy", "proxy − same-data proxy, interventional", "proxy", do,
                 "proxy_same_data", do, +1),
        Contrast("proxy_vs_head_member", "proxy − its head member, interventional", "proxy", do,
                 "member_head", do, +1),
        Contrast("proxy_vs_body_member", "proxy − its body member, interventional", "proxy", do,
                 "member_body", do, +1),
    )


def _accuracy_index(frame: pd.DataFrame) -> pd.Series:
    """:func:`accuracy_frame` values indexed by (method, test_set, group, world_seed, seed)."""
    return frame.set_index(["method", "test_set", "group", "world_seed", "seed"])["value"].sort_index()


def contrast_values(frame: pd.DataFrame, contrast: Contrast) -> pd.Series:
    """Per-(world, seed) values of ``contrast`` (accuracy points) from :func:`accuracy_frame` rows, indexed
    by (world_seed, seed)."""
    acc = _accuracy_index(frame)
    value = acc.loc[(contrast.method, contrast.test_set, "all")]
    if contrast.baseline_head_share is None:
        return value - acc.loc[(contrast.baseline, contrast.baseline_test_set, "all")]
    share = contrast.baseline_head_share
    per_c = [acc.loc[(contrast.baseline, contrast.baseline_test_set, C_GROUPS[c])] for c in (0, 1)]
    return value - (share * per_c[0] + (1 - share) * per_c[1])


def gap_closed_fraction(frame: pd.DataFrame, method: str = "proxy") -> pd.Series:
    """The fraction of the confounding gap ``method`` closes, per (world, seed) (the registry claim
    ``proxy_closes_confounding_gap``'s companion number): (acc_do(method) − acc_do(naive)) /
    (acc_obs(naive) − acc_do(naive)), acc_do on the interventional and acc_obs on the confounded test set.
    1 means the method reaches, under do(C), the naive CNN's observational accuracy; NaN where the naive
    CNN has no gap (a zero denominator)."""
    acc = _accuracy_index(frame)
    naive_do = acc.loc[("confounded", "interventional", "all")]
    gap = acc.loc[("confounded", "confounded", "all")] - naive_do
    return (acc.loc[(method, "interventional", "all")] - naive_do) / gap.where(gap != 0)


def world_values(values: pd.Series) -> pd.Series:
    """Per-(world, seed) values averaged over the seeds of each world: one value per replicate, indexed by
    world_seed."""
    return values.groupby(level="world_seed").mean()


def verdict(values: Sequence[float], expected: int, level: float = 0.95) -> str:
    """What per-world differences say about a claim of sign ``expected``, from their t-interval
    (``ltlib.results.interval_side``, the rule the reproduction report applies too).

    Returns:
        For a signed claim: ``"supported"`` (the interval excludes 0 on the claimed side),
        ``"contradicted"`` (it excludes 0 on the other side) or ``"inconclusive"``. For a claim of no
        difference: ``"no difference detected"`` (the interval contains 0) or ``"contradicted"``.
        A single world is always ``"inconclusive"``.
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
    """Mean, sd and 95% t-interval over worlds (seeds averaged within a world first) of every contrast,
    with the claimed sign and a :func:`verdict`; ``n`` counts worlds."""
    rows = []
    for c in contrasts:
        values = world_values(contrast_values(frame, c)).to_numpy()
        mean, sd, low, high, n = mean_ci(values)
        rows.append({"key": c.key, "contrast": c.name, "claimed": {1: "> 0", -1: "< 0", 0: "= 0"}[c.expected],
                     "mean": mean, "sd": sd, "ci_low": low, "ci_high": high, "n": n,
                     "verdict": verdict(values, c.expected)})
    return pd.DataFrame(rows)


def contrasts_by_world(frame: pd.DataFrame, contrasts: Sequence[Contrast]) -> pd.DataFrame:
    """Every contrast's value in every world (seeds averaged): rows contrasts (by key), columns world seeds."""
    columns = {c.key: world_values(contrast_values(frame, c)) for c in contrasts}
    return pd.DataFrame(columns).T.rename_axis(index="contrast", columns="world seed")


def record(table: ResultsTable, frame: pd.DataFrame, contrasts: Sequence[Contrast], config: object = None,
           partner_shares: pd.DataFrame | None = None, by_propensity: pd.DataFrame | None = None) -> None:
    """Add to ``table``, every row with its world's seed: every accuracy (metric ``accuracy``, group
    ``<test set>/<C group>``), every per-(world, seed) contrast (metric ``contrast``, group = its key), the
    proxy's :func:`gap_closed_fraction` (metric ``gap_closed_fraction``, group
    ``proxy_closes_confounding_gap``; left out in a world and seed where the naive CNN has no gap), the
    :func:`partner_error_share` rows (metric
    ``partner_error_share``, group = the test set) and the :func:`accuracy_by_propensity` rows (metric
    ``accuracy``, group ``<test set>/common (y, c)`` or ``.../rare (y, c)``)."""
    for extra in (frame, by_propensity if by_propensity is not None else pd.DataFrame()):
        for row in extra.itertuples(index=False):
            table.add("accuracy", row.value, method=row.method, seed=row.seed, world_seed=row.world_seed,
                      group=f"{row.test_set}/{row.group}", config=config)
    for row in (partner_shares if partner_shares is not None else pd.DataFrame()).itertuples(index=False):
        table.add("partner_error_share", row.value, method=row.method, seed=row.seed, world_seed=row.world_seed,
                  group=row.test_set, config=config)
    for c in contrasts:
        for (world_seed, seed), value in contrast_values(frame, c).items():
            table.add("contrast", value, method=c.method, seed=int(seed), world_seed=int(world_seed), group=c.key,
                      config=config)
    for (world_seed, seed), value in gap_closed_fraction(frame).dropna().items():  # NaN: the naive CNN had no gap
        table.add("gap_closed_fraction", value, method="proxy", seed=int(seed), world_seed=int(world_seed),
                  group="proxy_closes_confounding_gap", config=config)


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
    """Accuracy "mean ± sd" over worlds (seeds averaged within a world first): one row per estimator (page
    order), one column per test set."""
    rows = world_means(frame[frame["group"] == group]).groupby(["method", "test_set"])["value"]
    cells = rows.agg(lambda v: format_mean_sd(*mean_ci(v.to_numpy())[:2], digits=1)).unstack("test_set")
    cells = cells.reindex(index=[m for m in labels if m in cells.index], columns=list(TEST_SETS)).fillna("—")
    return cells.rename(index=dict(labels)).rename_axis(index="estimator", columns="test set")


# The estimators that aim at the interventional posterior P_do(y|x) (the proxy is the paper's method).
ADJUSTMENTS = ("backdoor", "posthoc", "plugin_calibrated", "c_offset", "proxy")


def glue_values(contrasts: pd.DataFrame, frame: pd.DataFrame, outputs: StudyOutputs,
                partner_shares: pd.DataFrame | None = None, by_propensity: pd.DataFrame | None = None
                ) -> dict[str, float | str]:
    """The numbers the page's prose cites.

    Returns:
        ``<key>_mean/_sd/_lo/_hi/_verdict`` of every contrast row (over worlds), ``acc_<method>_<test set>``
        mean accuracies, ``gap_closed_mean`` (the proxy's :func:`gap_closed_fraction`, mean over worlds, in %),
        ``n_worlds``, ``best_adjustment`` (the display name of the adjustment with the highest mean
        interventional accuracy) with ``best_adjustment_acc``, ``study_seconds`` (wall),
        ``study_cpu_seconds``, ``partner_<method>`` mean partner-error shares and ``common_<method>`` /
        ``rare_<method>`` mean accuracies by propensity.
    """
    out: dict[str, float | str] = {"study_seconds": float(outputs.seconds), "study_cpu_seconds": outputs.cpu_seconds,
                                   "n_worlds": len(outputs.world_seeds),
                                   "gap_closed_mean": 100 * float(world_values(gap_closed_fraction(frame)).mean())}
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
    """Mean ``value`` per group of ``by`` (over worlds, seeds averaged within a world), keyed by
    ``key.format(*group)``."""
    means = world_means(frame).groupby(by)["value"].mean()
    return {key.format(*(k if isinstance(k, tuple) else (k,))): float(v) for k, v in means.items()}
