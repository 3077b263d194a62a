"""Accuracy by class group: D-groups and P-groups (book: Method, 'Groups', 'Evaluation'), the D×P matrix,
the kNN probe."""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from .errors import ConfigError

GROUP_NAMES = ("many", "medium", "few")


@dataclasses.dataclass(frozen=True, eq=False)
class Groups:
    """A partition of the classes 0..C−1 into named groups (e.g. many / medium / few).

    Attributes:
        names: group names, in display order.
        indices: one sorted int64 array of class indices per group (read-only).
        num_classes: C; every class belongs to exactly one group (checked).
    """

    names: tuple[str, ...]
    indices: tuple[np.ndarray, ...]
    num_classes: int

    def __post_init__(self) -> None:
        if len(self.names) != len(self.indices):
            raise ConfigError(f"Groups: {len(self.names)} names but {len(self.indices)} index arrays")
        arrays = tuple(_frozen_indices(ix) for ix in self.indices)
        object.__setattr__(self, "indices", arrays)
        covered = np.sort(np.concatenate(arrays)) if arrays else np.empty(0, dtype=np.int64)
        if not np.array_equal(covered, np.arange(self.num_classes)):
            raise ConfigError(f"Groups: the index arrays must partition the classes 0..{self.num_classes - 1}")

    @property
    def sizes(self) -> dict[str, int]:
        """Number of classes per group, keyed by name."""
        return {name: int(ix.size) for name, ix in zip(self.names, self.indices)}

    @property
    def codes(self) -> np.ndarray:
        """Per-class group position (0 = first name), int64 [C]."""
        codes = np.empty(self.num_classes, dtype=np.int64)
        for position, ix in enumerate(self.indices):
            codes[ix] = position
        return codes

    @property
    def labels(self) -> np.ndarray:
        """Per-class group name, str array [C] (handy as a plotting hue)."""
        return np.asarray(self.names)[self.codes]

    def __getitem__(self, name: str) -> np.ndarray:
        """Class indices of group ``name``."""
        if name not in self.names:
            raise ConfigError(f"unknown group {name!r}; groups are {', '.join(self.names)}")
        return self.indices[self.names.index(name)]


# The paper's group settings (book: Method, 'Groups'): D-groups by downstream training count (OLTR: many
# n > 100, few n < 20) and P-groups by the prior's ranking (top 30 %, next 30 %, the rest).
D_THRESHOLDS: tuple[int, int] = (100, 20)
P_FRACTIONS: tuple[float, float] = (0.3, 0.3)


def d_groups(class_counts: Any, many: int = D_THRESHOLDS[0], few: int = D_THRESHOLDS[1]) -> Groups:
    """D-groups from downstream training counts (OLTR convention, book: Method, 'Evaluation').

    many = {j : n_j > many}, medium = {j : few ≤ n_j ≤ many}, few = {j : n_j < few}.

    Args:
        class_counts: n, [C] training counts per class.
        many: threshold above which a class is "many" (default 100).
        few: threshold below which a class is "few" (default 20).

    Returns:
        :class:`Groups` named ("many", "medium", "few").
    """
    counts = _as_1d(class_counts, "class_counts")
    if few > many:
        raise ConfigError(f"d_groups: few={few} must not exceed many={many}")
    masks = (counts > many, (counts >= few) & (counts <= many), counts < few)
    return Groups(GROUP_NAMES, tuple(np.flatnonzero(m) for m in masks), counts.size)


def p_groups(prior: Any, fractions: tuple[float, float] = P_FRACTIONS) -> Groups:
    """P-groups from an estimated pre-training prior P̂_P (book: Method, 'Groups').

    Classes are ranked by prior, descending; ties keep class-index order (stable sort). The first
    round(f₁·C) ranks are "many", ranks up to round((f₁+f₂)·C) are "medium", the rest "few".
    Rounding is half-up on the exact decimal value of the fractions (0.3 is taken as 3/10), and is
    applied to the cumulative boundaries so the sizes always sum to C: C = 365 gives
    110 / 109 / 146, C = 1000 gives 300 / 300 / 400, C = 8142 gives 2443 / 2442 / 3257.

    Args:
        prior: P̂_P, [C] (any positive scale; only the ranking matters).
        fractions: (f₁, f₂), the shares of "many" and "medium"; f₁ + f₂ ≤ 1.

    Returns:
        :class:`Groups` named ("many", "medium", "few").
    """
    values = _as_1d(prior, "prior")
    if not np.isfinite(values).all():
        bad = int(np.flatnonzero(~np.isfinite(values))[0])
        raise ConfigError(f"p_groups: prior must be finite; class {bad} is not")
    shares = [Fraction(str(f)) for f in fractions]
    if len(shares) != 2 or min(shares) < 0 or sum(shares) > 1:
        raise ConfigError(f"p_groups: fractions must be two non-negative shares summing to at most 1, got {fractions}")
    order = np.argsort(-values, kind="stable")
    first = _round_half_up(shares[0] * values.size)
    second = _round_half_up((shares[0] + shares[1]) * values.size)
    parts = (order[:first], order[first:second], order[second:])
    return Groups(GROUP_NAMES, tuple(np.sort(p) for p in parts), values.size)


def _round_half_up(value: Fraction) -> int:
    return int(value + Fraction(1, 2)) if value >= 0 else 0


# --------------------------------------------------------------------------------------------
# Accuracies (book: Method, 'Evaluation')
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class GroupAccuracy:
    """LIFT's evaluator numbers (book: Method, 'Evaluation'), all in %.

    Attributes:
        overall: sample-level accuracy 100·#correct/#total.
        mean: unweighted mean of the per-class accuracies.
        groups: group name → unweighted mean per-class accuracy of the group's classes (NaN if empty).
        per_class: per-class accuracy, float64 [C].
    """

    overall: float
    mean: float
    groups: dict[str, float]
    per_class: np.ndarray

    def as_dict(self, prefix: str = "") -> dict[str, float]:
        """Flat scalars for a results table: ``{prefix}overall``, ``{prefix}mean``, ``{prefix}<group>``."""
        flat = {"overall": self.overall, "mean": self.mean, **self.groups}
        return {f"{prefix}{key}": float(value) for key, value in flat.items()}


def predictions(logits_or_preds: Any) -> np.ndarray:
    """Predicted labels, int64 [N]: argmax over classes of logits [N, C], or preds [N] as they are."""
    values = _to_numpy(logits_or_preds)
    if values.ndim == 2:
        return values.argmax(axis=1).astype(np.int64)
    if values.ndim == 1:
        return values.astype(np.int64)
    raise ConfigError(f"logits_or_preds must be logits [N, C] or predictions [N], got shape {values.shape}")


def per_class_accuracy(preds: Any, targets: Any, num_classes: int) -> np.ndarray:
    """Per-class top-1 accuracy in %, 100·correct_c/total_c (book: Method, 'Evaluation').

    Args:
        preds: predicted labels [N] (or logits [N, C]).
        targets: true labels [N].
        num_classes: C.

    Returns:
        float64 [C].

    Raises:
        ConfigError: a class has no sample in ``targets`` (its accuracy is undefined), naming it.
    """
    predicted, true = _paired(preds, targets)
    if true.size and (true.min() < 0 or true.max() >= num_classes):
        raise ConfigError(f"targets must lie in [0, {num_classes}), got range [{true.min()}, {true.max()}]")
    totals = np.bincount(true, minlength=num_classes)
    absent = np.flatnonzero(totals == 0)
    if absent.size:
        raise ConfigError(f"targets: class {int(absent[0])} has no test sample, so its accuracy is undefined"
                          + (f" ({absent.size} such classes)" if absent.size > 1 else ""))
    correct = np.bincount(true[predicted == true], minlength=num_classes)
    return 100.0 * correct / totals


def group_accuracy(logits_or_preds: Any, targets: Any, groups: Groups) -> GroupAccuracy:
    """Overall, mean per-class and per-group accuracy, as LIFT's ``Evaluator`` (book: Method, 'Evaluation').

    Args:
        logits_or_preds: logits [N, C] (argmax is taken) or predicted labels [N].
        targets: true labels [N]; every class 0..C−1 must occur.
        groups: the class partition (e.g. :func:`d_groups` or :func:`p_groups`).

    Returns:
        :class:`GroupAccuracy` (percentages).
    """
    width = getattr(logits_or_preds, "shape", (0,))
    if len(width) == 2 and width[1] != groups.num_classes:
        raise ConfigError(f"logits have {width[1]} classes but groups cover {groups.num_classes}")
    predicted, true = _paired(logits_or_preds, targets)
    per_class = per_class_accuracy(predicted, true, groups.num_classes)
    by_group = {name: _mean_or_nan(per_class[ix]) for name, ix in zip(groups.names, groups.indices)}
    return GroupAccuracy(overall=100.0 * float(np.mean(predicted == true)), mean=float(per_class.mean()),
                         groups=by_group, per_class=per_class)


@dataclasses.dataclass(frozen=True, eq=False)
class DPMatrix:
    """The paper's Fig. 2: accuracy by D-group (rows) × P-group (columns).

    Attributes:
        accuracy: mean per-class accuracy (%) of the classes in each cell; NaN for an empty cell.
        num_classes: number of classes in each cell (0 for an empty cell).
    """

    accuracy: pd.DataFrame
    num_classes: pd.DataFrame


def dp_matrix(logits_or_preds: Any, targets: Any, d_groups: Groups, p_groups: Groups) -> DPMatrix:
    """The D×P accuracy matrix of Fig. 2 (book: Method, 'Groups').

    Args:
        logits_or_preds: logits [N, C] or predicted labels [N].
        targets: true labels [N]; every class must occur.
        d_groups: rows, from downstream training counts.
        p_groups: columns, from the estimated pre-training prior.

    Returns:
        :class:`DPMatrix`; both frames are indexed by ``d_group`` and have ``p_group`` columns.
    """
    if d_groups.num_classes != p_groups.num_classes:
        raise ConfigError(f"d_groups cover {d_groups.num_classes} classes but p_groups cover {p_groups.num_classes}")
    per_class = group_accuracy(logits_or_preds, targets, d_groups).per_class
    accuracy = pd.DataFrame(np.nan, index=pd.Index(d_groups.names, name="d_group"),
                            columns=pd.Index(p_groups.names, name="p_group"))
    counts = pd.DataFrame(0, index=accuracy.index, columns=accuracy.columns)
    for d_name, d_ix in zip(d_groups.names, d_groups.indices):
        for p_name, p_ix in zip(p_groups.names, p_groups.indices):
            cell = np.intersect1d(d_ix, p_ix)
            accuracy.loc[d_name, p_name] = _mean_or_nan(per_class[cell])
            counts.loc[d_name, p_name] = cell.size
    return DPMatrix(accuracy=accuracy, num_classes=counts)


# --------------------------------------------------------------------------------------------
# kNN probe (the paper's Tab. 4; book: Method, 'The kNN probe')
# --------------------------------------------------------------------------------------------


def knn_predict(bank_features: Any, bank_targets: Any, query_features: Any, num_classes: int, k: int = 200,
                temperature: float = 0.1, batch_size: int = 1024) -> torch.Tensor:
    """Weighted kNN classification on L2-normalised features (k = 200, T = 0.1 in the paper;
    book: Method, 'The kNN probe').

    Each query takes its k most cosine-similar bank entries; neighbour i votes for its label with
    weight exp(cos_i / T); the prediction is the class with the largest total vote (ties: lowest
    class index). If the bank holds fewer than k entries, all of them vote (k is clamped).

    Args:
        bank_features: memory bank, [M, D] (numpy or torch; normalised here).
        bank_targets: bank labels, [M] in [0, num_classes).
        query_features: [Q, D]; computation runs on this tensor's device.
        num_classes: C.
        k: neighbours per query.
        temperature: T of the vote weights.
        batch_size: queries per batch; memory is O(batch_size · M).

    Returns:
        Predicted labels, int64 tensor [Q] on the query features' device.
    """
    queries = F.normalize(torch.as_tensor(query_features).float(), dim=1)
    bank = F.normalize(torch.as_tensor(bank_features).float().to(queries.device), dim=1)
    labels = torch.as_tensor(bank_targets, device=queries.device).long()
    _check_knn_inputs(bank, labels, queries, num_classes, k, temperature)
    neighbours = min(int(k), bank.shape[0])
    out = [_knn_batch(batch, bank, labels, num_classes, neighbours, temperature)
           for batch in torch.split(queries, int(batch_size))]
    return torch.cat(out) if out else torch.empty(0, dtype=torch.long, device=queries.device)


def _knn_batch(queries: torch.Tensor, bank: torch.Tensor, labels: torch.Tensor, num_classes: int, k: int,
               temperature: float) -> torch.Tensor:
    """Votes for one batch of normalised queries [B, D] → predicted labels [B]."""
    similarity, index = (queries @ bank.T).topk(k, dim=1)
    votes = torch.zeros(queries.shape[0], num_classes, device=queries.device)
    votes.scatter_add_(1, labels[index], torch.exp(similarity / temperature))
    return votes.argmax(dim=1)


def _check_knn_inputs(bank: torch.Tensor, labels: torch.Tensor, queries: torch.Tensor, num_classes: int, k: int,
                      temperature: float) -> None:
    if bank.ndim != 2 or queries.ndim != 2 or bank.shape[1] != queries.shape[1] or bank.shape[0] == 0:
        raise ConfigError(f"knn_predict: bank_features [M, D] and query_features [Q, D] must share D and M ≥ 1, "
                          f"got {tuple(bank.shape)} and {tuple(queries.shape)}")
    if labels.shape != (bank.shape[0],) or int(labels.min()) < 0 or int(labels.max()) >= num_classes:
        raise ConfigError(f"knn_predict: bank_targets must be [{bank.shape[0]}] labels in [0, {num_classes})")
    if k < 1 or not temperature > 0:
        raise ConfigError(f"knn_predict: need k ≥ 1 and temperature > 0, got k={k}, temperature={temperature}")


# --------------------------------------------------------------------------------------------
# Input handling
# --------------------------------------------------------------------------------------------


def _to_numpy(values: Any) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().numpy()
    return np.asarray(values)


def _as_1d(values: Any, name: str) -> np.ndarray:
    array = _to_numpy(values).astype(np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ConfigError(f"{name} must be a non-empty 1-D array (one entry per class), got shape {array.shape}")
    return array


def _paired(logits_or_preds: Any, targets: Any) -> tuple[np.ndarray, np.ndarray]:
    """(predictions int64 [N], targets int64 [N]) after checking the lengths agree."""
    predicted = predictions(logits_or_preds)
    true = _to_numpy(targets)
    if true.ndim != 1 or true.shape[0] != predicted.shape[0]:
        raise ConfigError(f"targets must have shape [{predicted.shape[0]}] to match the predictions, "
                          f"got {true.shape}")
    return predicted, true.astype(np.int64)


def _frozen_indices(indices: Any) -> np.ndarray:
    array = np.sort(np.asarray(indices, dtype=np.int64).ravel())
    array.setflags(write=False)
    return array


def _mean_or_nan(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else float("nan")
