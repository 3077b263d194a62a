"""Checks of the mini world against its ground truth (MINIWORLD.md, "What the mini world must let the book show").

- :func:`structure_probe`: one part alone narrows the class to its group (MINIWORLD.md property 1);
- :func:`zero_shot_accuracy`: zero-shot accuracy overall, by part visibility C and per class;
- :func:`parameter_imbalance`: per-class zero-shot accuracy vs π_m, controlled for class difficulty
  with the uniform-prior reference model (the prototype's finding: raw correlations are confounded);
- :func:`prior_recovery`: GLA's P̂_P (``ltlib.priors``, both solvers) vs the true π_m.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import spearmanr
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from ..backbones import Backbone
from ..heads import ZeroShotClassifier
from ..metrics import per_class_accuracy
from ..priors import fit_prior
from .names import VISIBILITY
from .seeds import derive_seed
from .world import TEMPLATE, World

Features = Callable[[torch.Tensor], np.ndarray]  # normalised images [N,3,S,S] → features [N, D]


def backbone_features(backbone: Backbone, batch_size: int = 1000) -> Features:
    """The backbone's classifier-input features (``ln_post`` of CLS, spec A.3) as a :data:`Features`."""
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
    """

    part: str
    class_accuracy: float
    type_accuracy: float
    within_type_accuracy: float
    type_chance: float
    within_type_chance: float


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
                       100.0 * within, 100.0 / world.layout.num_part_types, 100.0 / world.config.parts.group_size)


def _normalise(images: torch.Tensor, world: World) -> torch.Tensor:
    mean, std = torch.tensor(world.mean).view(1, 3, 1, 1), torch.tensor(world.std).view(1, 3, 1, 1)
    return (images.float() / 255.0 - mean) / std


@torch.no_grad()
def zero_shot_logits(world: World, name: str, split: str = "test", batch_size: int = 1000) -> np.ndarray:
    """Zero-shot logits of model ``name`` ("a photo of a {name}.") on a balanced split; float32 [N, K]."""
    classifier = ZeroShotClassifier(world.backbone(name), world.class_names, TEMPLATE)
    images, _ = world.split(split).tensors()
    return torch.cat([classifier(images[i:i + batch_size]) for i in range(0, len(images), batch_size)]).numpy()


@dataclass(frozen=True)
class ZeroShotAccuracy:
    """Zero-shot accuracy of one model in %: overall, by C (``{"head": ..., "body": ...}``) and per class [K]."""

    model: str
    overall: float
    by_visibility: dict[str, float]
    per_class: np.ndarray


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


def parameter_imbalance(world: World, name: str, split: str = "test") -> ImbalanceResult:
    """Does model ``name`` favour the classes its corpus over-represents (parameter imbalance)?"""
    accuracy = zero_shot_accuracy(world, name, split).per_class
    reference = zero_shot_accuracy(world, world.reference_name, split).per_class
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


def prior_recovery(world: World, name: str, solver: str = "exact", split: str = "val") -> PriorRecovery:
    """Estimate π_m from zero-shot logits on the class-balanced ``split`` with GLA and compare with the truth."""
    fit = fit_prior(zero_shot_logits(world, name, split), world.split(split).labels.numpy(), solver=solver)
    truth = world.true_prior(name)
    rho, p = spearmanr(fit.prior, truth)
    return PriorRecovery(name, solver, fit.prior, truth, float(rho), float(p), kl_divergence(truth, fit.prior),
                         kl_divergence(truth, np.full_like(truth, 1.0 / len(truth))), fit.temperature)


def kl_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """KL(p ‖ q) = Σ p log(p/q) in nats, for strictly positive q; terms with p = 0 count 0."""
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    mask = p > 0
    return float(np.sum(p[mask] * np.log(p[mask] / q[mask])))
