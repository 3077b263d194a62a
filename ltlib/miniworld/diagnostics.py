"""Checks of the mini world against its ground truth (book: The mini world; the executed page 00).

- :func:`structure_probe`: one part alone narrows the class to its group (book: Mini world, item 1);
- :func:`zero_shot_accuracy`: zero-shot accuracy overall, by part visibility C and per class;
- :func:`parameter_imbalance`: per-class zero-shot accuracy vs π_m, controlled for class difficulty
  with the uniform-prior reference model (the prototype's finding: raw correlations are confounded);
- :func:`prior_recovery`: GLA's P̂_P (``ltlib.priors``, both solvers) vs the true π_m;
- :func:`part_attribution`: which part a model relies on (the paper's Fig. 4/10, ``ltlib.miniworld.attribution``), on
  the world's images or on :func:`unoccluded_images`, where both parts are in full view;
- the world itself: :func:`latin_square`, :func:`part_neighbours`, :func:`example_renders`,
  :func:`generation_check` (throughput, determinism) and :func:`pretraining_record` (the cache's record
  of each pre-training);
- :func:`tidy`: every result class here has ``rows()``; ``tidy`` turns results into the frame that
  ``ltlib.results.ResultsTable.add_frame`` records.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from .attribution import PartAttribution, attribute
from ..backbones import Backbone
from ..errors import ConfigError
from ..heads import ZeroShotClassifier
from ..metrics import per_class_accuracy
from ..priors import fit_prior, prior_agreement
from ..provenance import to_plain
from .generator import Renders, render
from .names import VISIBILITY, part_words
from .seeds import derive_seed
from .tasks import WorldImages
from .world import TEMPLATE, World

Features = Callable[[torch.Tensor], np.ndarray]  # normalised images [N,3,S,S] → features [N, D]


def backbone_features(backbone: Backbone, batch_size: int = 1000) -> Features:
    """The backbone's classifier-input features (``ln_post`` of CLS; book: Method, 'Backbones')
    as a :data:`Features`."""
    @torch.no_grad()
    def features(images: torch.Tensor) -> np.ndarray:
        return torch.cat([backbone.image_features(images[i:i + batch_size])
                          for i in range(0, len(images), batch_size)]).numpy()
    return features


def pixel_features(images: torch.Tensor) -> np.ndarray:
    """Raw normalised pixels, flattened ([N, 3·S·S]): a probe that needs no pre-trained model."""
    return images.flatten(1).numpy()


@dataclass(frozen=True)
class ProbeResult:
    """A linear probe on single-part images; accuracies in %.

    Attributes:
        part: ``"head"`` or ``"body"``.
        class_accuracy: top-1 accuracy over the K classes.
        type_accuracy: the predicted class has the true class's part type (chance 1/T).
        within_type_accuracy: accuracy among predictions with the right part type (chance 1/G: classes
            that share the part are indistinguishable from it alone).
        type_chance, within_type_chance: 1/T and 1/G.
        seed: the seed of the probe's images.
    """

    part: str
    class_accuracy: float
    type_accuracy: float
    within_type_accuracy: float
    type_chance: float
    within_type_chance: float
    seed: int = 0

    def rows(self) -> list[dict[str, Any]]:
        """Tidy rows (see :func:`tidy`), group = the part shown."""
        metrics = ("class_accuracy", "type_accuracy", "within_type_accuracy", "type_chance", "within_type_chance")
        return [{"metric": m, "value": getattr(self, m), "group": self.part, "seed": self.seed} for m in metrics]


def structure_probe(world: World, part: str = "head", features: Features | None = None, per_class: int = 40,
                    seed: int = 0) -> ProbeResult:
    """Fit a logistic-regression probe on images that show only ``part`` and test it on fresh ones.

    Args:
        world: the world; part: ``"head"`` or ``"body"``.
        features: image → feature map; None: the reference backbone's features.
        per_class: training (and as many test) images per class.
        seed: seeds the images.
    Returns:
        A :class:`ProbeResult`: high ``type_accuracy`` (the part's type is visible) and
        ``within_type_accuracy`` near 1/G (the part alone cannot tell classes of one group apart).
    """
    features = features or backbone_features(world.reference_backbone())
    k = world.num_classes
    labels = np.repeat(np.arange(k), per_class)

    def encode(split: int) -> np.ndarray:
        split_seed = derive_seed(world.config.seed, f"probe/{part}", seed, split)
        renders = world.render(labels, np.zeros_like(labels), split_seed, parts=part)
        return features(_normalise(renders.images, world))

    with threadpool_limits(1):  # a small problem: extra BLAS threads only spin (10x slower on 2 busy cores)
        probe = LogisticRegression(max_iter=2000).fit(encode(0), labels)
    predicted = probe.predict(encode(1))
    types = np.asarray(world.layout.head_type if part == "head" else world.layout.body_type)
    right_type = types[predicted] == types[labels]
    within = float(np.mean(predicted[right_type] == labels[right_type])) if right_type.any() else 0.0
    return ProbeResult(part, 100.0 * float(np.mean(predicted == labels)), 100.0 * float(np.mean(right_type)),
                       100.0 * within, 100.0 / world.layout.num_part_types, 100.0 / world.config.parts.group_size,
                       seed)


def _normalise(images: torch.Tensor, world: World) -> torch.Tensor:
    mean, std = torch.tensor(world.mean).view(1, 3, 1, 1), torch.tensor(world.std).view(1, 3, 1, 1)
    return (images.float() / 255.0 - mean) / std


def zero_shot_classifier(world: World, name: str) -> ZeroShotClassifier:
    """The zero-shot classifier of model ``name`` over the world's classes ("a photo of a {name}.")."""
    return ZeroShotClassifier(world.backbone(name), world.class_names, TEMPLATE)


@torch.no_grad()
def zero_shot_logits(world: World, name: str, split: str = "test", batch_size: int = 1000) -> np.ndarray:
    """Zero-shot logits of model ``name`` ("a photo of a {name}.") on a balanced split; float32 [N, K]."""
    classifier = zero_shot_classifier(world, name)
    images, _ = world.split(split).tensors()
    return torch.cat([classifier(images[i:i + batch_size]) for i in range(0, len(images), batch_size)]).numpy()


@dataclass(frozen=True)
class ZeroShotAccuracy:
    """Zero-shot accuracy of one model in %: overall, by C (``{"head": ..., "body": ...}``) and per class [K]."""

    model: str
    overall: float
    by_visibility: dict[str, float]
    per_class: np.ndarray

    def rows(self) -> list[dict[str, Any]]:
        """Tidy rows (see :func:`tidy`): ``accuracy`` in groups ``all``, ``head`` and ``body`` (C)."""
        groups = {"all": self.overall, **self.by_visibility}
        return [{"metric": "accuracy", "value": v, "group": g, "backbones": self.model} for g, v in groups.items()]


def zero_shot_accuracy(world: World, name: str, split: str = "test") -> ZeroShotAccuracy:
    """Zero-shot accuracy of ``name`` on the balanced ``split``, split by part visibility C."""
    data = world.split(split)
    targets, visibility = data.labels.numpy(), data.visibility.numpy()
    logits = zero_shot_logits(world, name, split)
    correct = logits.argmax(1) == targets
    by_c = {VISIBILITY[c]: 100.0 * float(correct[visibility == c].mean()) for c in np.unique(visibility)}
    return ZeroShotAccuracy(name, 100.0 * float(correct.mean()), by_c,
                            per_class_accuracy(logits, targets, world.num_classes))


@dataclass(frozen=True)
class ImbalanceResult:
    """Per-class zero-shot accuracy vs π_m, with and without the difficulty control.

    Attributes:
        model: the foundation model; prior: its π_m [K].
        difference: per-class accuracy minus the reference model's, in points [K].
        rho, p: Spearman(difference, π_m) and its two-sided p-value.
        raw_rho, raw_p: Spearman(accuracy, π_m) without the control.
        tercile_difference: mean difference (points) over the head, middle and tail terciles of π_m.
    """

    model: str
    prior: np.ndarray
    difference: np.ndarray
    rho: float
    p: float
    raw_rho: float
    raw_p: float
    tercile_difference: tuple[float, float, float]

    def rows(self) -> list[dict[str, Any]]:
        """Tidy rows (see :func:`tidy`): ``spearman`` / ``p`` (``group="vs-reference"`` with the control,
        ``"raw"`` without) and ``tercile_difference`` in groups ``head`` / ``middle`` / ``tail`` of π_m."""
        stats = {("spearman", "vs-reference"): self.rho, ("p", "vs-reference"): self.p,
                 ("spearman", "raw"): self.raw_rho, ("p", "raw"): self.raw_p,
                 **{("tercile_difference", g): v for g, v in zip(("head", "middle", "tail"), self.tercile_difference)}}
        return [{"metric": m, "value": v, "group": g, "backbones": self.model} for (m, g), v in stats.items()]


def parameter_imbalance(world: World, name: str, split: str = "test",
                        accuracies: Mapping[str, ZeroShotAccuracy] | None = None) -> ImbalanceResult:
    """Does model ``name`` favour the classes its corpus over-represents (parameter imbalance)?

    Args:
        world: the world; name: the foundation model; split: the balanced split to evaluate on.
        accuracies: already computed :func:`zero_shot_accuracy` results on ``split`` by model name (the
            model's and the reference's are taken from here when present, else computed).
    Returns:
        :class:`ImbalanceResult`.
    """
    accuracies = accuracies or {}
    accuracy, reference = (accuracies[n].per_class if n in accuracies else zero_shot_accuracy(world, n, split).per_class
                           for n in (name, world.reference_name))
    prior, difference = world.true_prior(name), accuracy - reference
    rho, p = spearmanr(difference, prior)
    raw_rho, raw_p = spearmanr(accuracy, prior)
    terciles = np.array_split(np.argsort(-prior, kind="stable"), 3)
    return ImbalanceResult(name, prior, difference, float(rho), float(p), float(raw_rho), float(raw_p),
                           tuple(float(difference[t].mean()) for t in terciles))


@dataclass(frozen=True)
class PriorRecovery:
    """GLA's estimate P̂_P against the truth π_m.

    Attributes:
        model, solver: what was estimated, with which ``ltlib.priors`` solver.
        estimate, truth: P̂_P and π_m, float64 [K], each summing to 1.
        rho, p: Spearman(P̂_P, π_m) and its p-value.
        kl: KL(π_m ‖ P̂_P); kl_uniform: KL(π_m ‖ uniform), the score of knowing nothing.
        temperature: the calibrated temperature the logits were divided by.
    """

    model: str
    solver: str
    estimate: np.ndarray
    truth: np.ndarray
    rho: float
    p: float
    kl: float
    kl_uniform: float
    temperature: float

    @property
    def log_range_ratio(self) -> float:
        """The estimate's spread relative to the truth's: log(max/min of P̂_P) / log(max/min of π_m)."""
        return float(np.log(self.estimate.max() / self.estimate.min()) / np.log(self.truth.max() / self.truth.min()))

    def rows(self) -> list[dict[str, Any]]:
        """Tidy rows (see :func:`tidy`), method ``gla-<solver>``: spearman, p, kl, kl_uniform, temperature,
        log_range_ratio."""
        stats = {"spearman": self.rho, "p": self.p, "kl": self.kl, "kl_uniform": self.kl_uniform,
                 "temperature": self.temperature, "log_range_ratio": self.log_range_ratio}
        return [{"metric": m, "value": v, "method": f"gla-{self.solver}", "backbones": self.model}
                for m, v in stats.items()]


def recovery_summary(recoveries: Sequence[PriorRecovery], solver: str = "exact") -> dict[str, float | int]:
    """What the world page says about GLA's estimates of one ``solver`` (book: Mini world, decision 4).

    Returns:
        rho_min / rho_max: the range of Spearman(P̂_P, π_m) over models; p_min: the smallest p-value;
        kl_mean / kl_uniform: mean KL(π_m ‖ P̂_P) and mean KL of the uniform guess; range_max: the largest
        log-range ratio; significant: models with ρ > 0 at p < 0.05; beats_uniform: models whose estimate is
        closer to π_m than the uniform guess.
    """
    chosen = [r for r in recoveries if r.solver == solver]
    if not chosen:
        raise ConfigError(f"no prior recovery with solver {solver!r}")
    return {"rho_min": min(r.rho for r in chosen), "rho_max": max(r.rho for r in chosen),
            "p_min": min(r.p for r in chosen), "kl_mean": float(np.mean([r.kl for r in chosen])),
            "kl_uniform": float(np.mean([r.kl_uniform for r in chosen])),
            "range_max": max(r.log_range_ratio for r in chosen),
            "significant": sum(r.rho > 0 and r.p < 0.05 for r in chosen),
            "beats_uniform": sum(r.kl < r.kl_uniform for r in chosen)}


def prior_recovery(world: World, name: str, solver: str = "exact", split: str = "val") -> PriorRecovery:
    """Estimate π_m from zero-shot logits on the class-balanced ``split`` with GLA and compare with the truth."""
    fit = fit_prior(zero_shot_logits(world, name, split), world.split(split).labels.numpy(), solver=solver)
    truth = world.true_prior(name)
    agree = prior_agreement(fit.prior, truth)
    return PriorRecovery(name, solver, fit.prior, truth, agree["spearman"], agree["spearman_p"], agree["kl"],
                         agree["kl_uniform"], fit.temperature)


# --------------------------------------------------------------------------- the world itself
def latin_square(world: World) -> pd.DataFrame:
    """The part structure (book: Mini world, item 1) as a head-type × body-type grid of class names.

    Returns:
        T × T frame, rows ``"<head words>"``, columns ``"<body words>"``; a cell holds the class with that
        (head, body) pair or ``""``. Every row and column holds ``group_size`` classes.
    """
    t = world.layout.num_part_types
    grid = pd.DataFrame("", index=[part_words("head", h) for h in range(t)],
                        columns=[part_words("body", b) for b in range(t)])
    for name, head, body in zip(world.class_names, world.layout.head_type, world.layout.body_type):
        grid.iloc[head, body] = name
    return grid


def part_neighbours(world: World, k: int) -> tuple[int, ...]:
    """Class ``k``, then the other classes with its head type, then those with its body type (property 1)."""
    layout = world.layout
    heads = [c for c in layout.classes_with("head", layout.head_type[k]) if c != k]
    bodies = [c for c in layout.classes_with("body", layout.body_type[k]) if c != k]
    return (k, *heads, *bodies)


def example_renders(world: World, classes: Sequence[int], seed: int = 0) -> Renders:
    """Two images of each class in ``classes``, head-dominant (C = 0) then body-dominant (C = 1).

    Returns:
        ``Renders`` of 2·len(classes) images, ordered class by class.
    """
    labels = np.repeat(np.asarray(classes, dtype=np.int64), 2)
    visibility = np.tile(np.array([0, 1], dtype=np.int64), len(classes))
    return world.render(labels, visibility, derive_seed(world.config.seed, "examples", seed))


@dataclass(frozen=True)
class GenerationCheck:
    """Renderer throughput and determinism (book: Mini world, item 8).

    Attributes:
        num_images, seconds, images_per_second: one timed render of a class-balanced batch (one thread).
        identical: a second render with the same seed is bit-identical (images and masks).
        seed_changes_images: a render with another seed differs.
    """

    num_images: int
    seconds: float
    images_per_second: float
    identical: bool
    seed_changes_images: bool

    def rows(self) -> list[dict[str, Any]]:
        """Tidy rows (see :func:`tidy`); the booleans as 1.0 / 0.0."""
        stats = {"images_per_second": self.images_per_second, "seconds": self.seconds,
                 "num_images": self.num_images, "identical": self.identical,
                 "seed_changes_images": self.seed_changes_images}
        return [{"metric": m, "value": float(v)} for m, v in stats.items()]


def generation_check(world: World, num_images: int = 4096, seed: int = 0) -> GenerationCheck:
    """Render ``num_images`` world images twice with ``seed`` and once with ``seed + 1``; time the first."""
    labels = np.arange(num_images, dtype=np.int64) % world.num_classes
    visibility = (np.arange(num_images, dtype=np.int64) // world.num_classes) % 2
    start = time.perf_counter()
    first = world.render(labels, visibility, seed)
    seconds = time.perf_counter() - start
    again, other = world.render(labels, visibility, seed), world.render(labels, visibility, seed + 1)
    identical = torch.equal(first.images, again.images) and torch.equal(first.masks, again.masks)
    return GenerationCheck(num_images, seconds, num_images / seconds, identical,
                           not torch.equal(first.images, other.images))


@dataclass(frozen=True)
class PretrainingRecord:
    """What the model cache recorded when one mini model was pre-trained.

    Attributes:
        model: its name; seconds: wall time of training; cpu_seconds; generation_seconds: rendering its
        corpus; steps; final_loss: mean contrastive loss of the last epoch; num_images: corpus size;
        head_fraction: P_m(C = head-dominant), nominal, and realised_head_fraction;
        imbalance_ratio: max π_m / min π_m as realised; logit_scale: the learnt CLIP temperature.
    """

    model: str
    seconds: float
    cpu_seconds: float
    generation_seconds: float
    steps: int
    final_loss: float
    num_images: int
    head_fraction: float
    realised_head_fraction: float
    imbalance_ratio: float
    logit_scale: float

    def rows(self) -> list[dict[str, Any]]:
        """Tidy rows (see :func:`tidy`), one per attribute."""
        return [{"metric": f.name, "value": float(getattr(self, f.name)), "backbones": self.model}
                for f in dataclasses.fields(self) if f.name != "model"]


def pretraining_record(world: World, name: str) -> PretrainingRecord:
    """The cache's record of model ``name`` (pre-training it first if needed)."""
    entry = world.pretrained(name)
    log, truth, prior = entry.log, entry.truth, np.asarray(entry.truth["prior"])
    return PretrainingRecord(name, log["seconds"], log["cpu_seconds"], log["generation_seconds"], log["steps"],
                             log["epoch_loss"][-1], truth["num_images"], truth["head_fraction"],
                             truth["realised_head_fraction"], float(prior.max() / prior.min()), log["logit_scale"])


# --------------------------------------------------------------------------- part attribution (Fig. 4/10)
def unoccluded_images(world: World, per_class: int = 10, seed: int = 0) -> WorldImages:
    """Class-balanced images with **both parts in full view** (the occluder covers 0% of either part).

    The world's own images always hide most of one part (C), so on them a model's part reliance mostly
    reflects C; with both parts visible it reflects the model. C still alternates, but only decides on
    which side of the object the (now empty) occluder band lies.

    Args:
        world: the world; per_class: images per class; seed: seeds the images.
    Returns:
        ``WorldImages`` of K·per_class images (labels, C and part masks as attributes).
    """
    labels = np.repeat(np.arange(world.num_classes, dtype=np.int64), per_class)
    visibility = np.arange(len(labels), dtype=np.int64) % 2
    config = dataclasses.replace(world.config.render, occlusion=(0.0, 0.0))
    renders = render(world.layout, labels, visibility, config, derive_seed(world.config.seed, "unoccluded", seed))
    return WorldImages(renders, world.mean, world.std)


@dataclass(frozen=True)
class ModelAttribution:
    """Part attribution of one model's zero-shot classifier on one image set (the paper's Fig. 4/10).

    Attributes:
        model: the model; images: the image set's name (``"unoccluded"``, ``"test"``); seed: its seed;
        attribution: saliency maps, their part shares and the occlusion reliance (``ltlib.miniworld.attribution``);
        visibility: C of each image, int64 [N]; by_visibility: also summarise each value of C apart.
    """

    model: str
    images: str
    seed: int
    attribution: PartAttribution
    visibility: np.ndarray
    by_visibility: bool = False

    def rows(self) -> list[dict[str, Any]]:
        """Tidy rows (see :func:`tidy`) of ``PartAttribution.summary``: group ``<images>`` over all images
        and, with ``by_visibility``, ``<images>:head`` / ``<images>:body`` for each value of C."""
        groups: dict[str, np.ndarray | None] = {self.images: None}
        if self.by_visibility:
            groups |= {f"{self.images}:{VISIBILITY[c]}": self.visibility == c for c in np.unique(self.visibility)}
        return [{"metric": m, "value": v, "group": g, "seed": self.seed, "backbones": self.model}
                for g, index in groups.items() for m, v in self.attribution.summary(index).items()]


def split_subset(world: World, split: str, per_class: int) -> WorldImages:
    """The first ``per_class`` images of every class of the balanced ``split`` (C stays independent of Y).

    Returns:
        ``WorldImages`` of K·per_class images (fewer for a class with fewer images), in the split's order.
    """
    labels = world.split(split).labels.numpy()
    order = np.argsort(labels, kind="stable")
    rank = np.empty_like(labels)  # position of each image among its class's images
    rank[order] = np.arange(len(labels)) - np.searchsorted(labels[order], labels[order])
    return WorldImages(world.split(split).renders.subset(np.flatnonzero(rank < per_class)), world.mean, world.std)


def part_attribution(world: World, name: str, data: WorldImages, images: str, seed: int = -1,
                     by_visibility: bool = False, batch_size: int = 500) -> ModelAttribution:
    """Saliency and occlusion part reliance (``ltlib.miniworld.attribution.attribute``) of the zero-shot classifier of
    model ``name`` on ``data`` (e.g. ``world.split("test")`` or :func:`unoccluded_images`).

    Args:
        world: the world; name: the model; data: the images with their masks.
        images: a name for ``data`` (the result rows' group); seed: the seed ``data`` was drawn with (-1: none).
        by_visibility: summarise each value of C apart too (for the world's own images, where C decides
            which part is mostly hidden).
        batch_size: images per forward pass.
    Returns:
        :class:`ModelAttribution`.
    """
    tensors, labels = data.tensors()
    attribution = attribute(zero_shot_classifier(world, name), tensors, data.masks, labels, batch_size=batch_size)
    return ModelAttribution(name, images, seed, attribution, data.visibility.numpy(), by_visibility)


def zero_shot_follows_bias(world: World, accuracy: pd.DataFrame) -> tuple[int, int]:
    """How many part-biased foundation models are more accurate zero-shot when their corpus's favoured part
    is the visible one.

    Args:
        accuracy: zero-shot accuracy (%), index = model names, columns ``head`` and ``body`` (the visible part).
    Returns:
        (models that follow their bias, models whose corpus favours one part: P_m(C = head) ≠ 0.5).
    """
    biased = [name for name in world.model_names if world.part_bias(name) != 0.5]
    follows = [np.sign(accuracy.loc[n, "head"] - accuracy.loc[n, "body"]) == np.sign(world.part_bias(n) - 0.5)
               for n in biased]
    return int(sum(follows)), len(biased)


def reliance_verdict(world: World, head_reliance: pd.Series) -> str:
    """The Fig. 4 analogue's reading: whether ordering the foundation models by head reliance (occlusion,
    index = model names) gives the ordering of their corpora's part bias P_m(C = head)."""
    names = list(world.model_names)
    matches = bool((np.argsort(head_reliance[names].to_numpy()) ==
                    np.argsort([world.part_bias(n) for n in names])).all())
    if matches:
        return ("The ordering of the foundation models by head reliance **is** the ordering of their corpora's part"
                " bias: the part a model relies on follows what its pre-training data showed, the paper's"
                " incomplete semantic factor made measurable.")
    return ("The ordering of the foundation models by head reliance is **not** the ordering of their corpora's part"
            " bias: in this world the corpus does not set the part a model relies on.")


# --------------------------------------------------------------------------- tidy rows for ResultsTable
def tidy(results: Sequence[Any], method: str, backbones: str = "", seed: int = -1) -> pd.DataFrame:
    """The ``rows()`` of several results as one frame for ``ltlib.results.ResultsTable.add_frame``.

    Args:
        results: objects with a ``rows()`` method (the result classes of this module).
        method, backbones, seed: defaults for rows that do not set them (group defaults to ``"all"``).
    Returns:
        Columns ``metric``, ``value``, ``method``, ``backbones``, ``seed``, ``group``.
    """
    defaults = {"method": method, "backbones": backbones, "seed": seed, "group": "all"}
    return pd.DataFrame([{**defaults, **row} for result in results for row in result.rows()],
                        columns=["metric", "value", "method", "backbones", "seed", "group"])


# --------------------------------------------------------------------------- what the page shows
# Readable names for the metrics, groups and methods the page's tables show (rows keep the short names).
LABELS = {
    "images_per_second": "images per second", "seconds": "seconds", "num_images": "images",
    "identical": "same seed, identical (1 = yes)", "seed_changes_images": "other seed, other images (1 = yes)",
    "cpu_seconds": "CPU s", "final_loss": "final loss", "generation_seconds": "rendering s",
    "head_fraction": "P_m(C = head)", "realised_head_fraction": "P_m(C = head), realised",
    "imbalance_ratio": "imbalance ratio", "logit_scale": "logit scale", "steps": "steps",
    "class_accuracy": "class accuracy (%)", "type_accuracy": "part-type accuracy (%)",
    "within_type_accuracy": "accuracy within the type (%)", "type_chance": "part-type chance (%)",
    "within_type_chance": "chance within the type (%)",
    "all": "all images", "head": "C = head", "body": "C = body",
    "spearman": "Spearman ρ", "p": "Spearman p", "tercile_difference": "difference to reference (points)",
    "vs-reference": "vs reference", "raw": "raw", "kl": "KL to truth", "kl_uniform": "KL to uniform",
    "temperature": "temperature", "log_range_ratio": "log-range ratio",
    "gla-exact": "exact", "gla-reference": "reference (GLA's loop)",
    "head_reliance": "head reliance (occlusion)", "saliency_head_density_share": "head share of saliency per pixel",
    "ci_low": "95% CI low", "ci_high": "95% CI high", "part_bias": "P_m(C = head)",
    "test": "all test images", "test:head": "C = head", "test:body": "C = body",
    "backbones": "model", "metric": "", "group": "", "method": "solver",
}
_ORDER = ("all", "test", "head", "test:head", "middle", "body", "test:body", "tail")  # head before body
TERCILES = {"head": "head tercile of π_m", "middle": "middle tercile", "tail": "tail tercile"}
PART_SHOWN = {"head": "head only", "body": "body only"}


def readable(frame: pd.DataFrame, labels: Mapping[str, str] | None = None) -> pd.DataFrame:
    """``frame`` with :data:`LABELS` (``labels`` on top, for names that mean something else in one table) for
    its index and column values and level names, and the part groups in head-then-body order (``all``
    first) wherever columns hold them."""
    columns = list(frame.columns)
    if isinstance(frame.columns, pd.MultiIndex):  # reorder within the last level only
        outer = list(dict.fromkeys(c[:-1] for c in columns))
        frame = frame[sorted(columns, key=lambda c: (outer.index(c[:-1]), _rank(c[-1])))]
    else:
        frame = frame[sorted(columns, key=_rank)]
    names = {**LABELS, **(labels or {})}
    out = frame.rename(index=names, columns=names)
    out.index = out.index.set_names([names.get(n, n) for n in out.index.names])
    out.columns = out.columns.set_names([names.get(n, n) for n in out.columns.names])
    return out


def _rank(value: Any) -> int:
    return _ORDER.index(value) if value in _ORDER else len(_ORDER)


def config_tables(world: World) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The world's config as the page shows it: (settings, one row per setting by section; models, one row
    per pre-trained model with its role, part bias and prior)."""
    plain = to_plain(world.config)
    settings = [{"section": section if isinstance(block, dict) else "world", "setting": key, "value": _text(value)}
                for section, block in plain.items() if section not in ("models", "reference")
                for key, value in (block.items() if isinstance(block, dict) else [(section, block)])]
    models = [{"model": m["name"], "role": "reference" if m is plain["reference"] else "foundation model",
               "P_m(C = head)": m["head_fraction"], "prior": "uniform" if m["uniform_prior"] else "long-tailed",
               "description": m["description"]} for m in (*plain["models"], plain["reference"])]
    return pd.DataFrame(settings).set_index(["section", "setting"]), pd.DataFrame(models).set_index("model")


def _text(value: Any) -> str:
    """A config value as short text: a pair as ``low – high``, other lists comma-separated."""
    if isinstance(value, list):
        if len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
            return f"{value[0]:g} – {value[1]:g}"
        return ", ".join(str(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)
