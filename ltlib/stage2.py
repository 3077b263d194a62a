"""Stage 2 (the paper's Eq. 7): the backdoor adjustment over M cached stage-1 runs, scored by D- and P-group.

Every combination is scored overall, by D-group, by P-group and by D×P cell (book: Method, 'Groups';
Fig. 2) and written as JSON and a tidy CSV. Only cached logits are read: no backbone runs here.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import struct
import time
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from .adjust import RULES, backdoor_adjust
from .cache import split_path
from .errors import ConfigError, NonFiniteError
from .metrics import D_THRESHOLDS, P_FRACTIONS, Groups, d_groups, dp_matrix, group_accuracy, p_groups
from .phases import phase
from .priors import PriorFit, fit_prior
from .provenance import config_hash, git_sha, library_versions, run_record
from .results import backbone_key
from .runs import RUN_FILE, find_runs, load_run
from .storage import write_json, write_text

RESULT_COLUMNS = ("task", "split", "combination", "method", "seed", "num_models", "rule", "prior_source", "metric",
                  "d_group", "p_group", "value", "num_classes", "git_sha", "config_hash", "versions")
# The one policy for the prior that defines P-groups (the paper's §3, Fig. 2): one prior for every row of a stage-2
# call, the renormalised geometric mean of the P̂_P of every backbone given (a single model: its own P̂_P).
# Rows record it in ``prior_source``: the backbone's name, or ``geomean(<backbones joined by +>)``.
PRIOR_POLICY = "geomean"
JSON_NAME, CSV_NAME = "stage2.json", "stage2.csv"
ALL = "all"
# Logits per model per block when combining (4 MiB of float32): blocks stay in cache, memory stays bounded
# at iNat size (24,426 × 8,142 × M).
_BLOCK_ELEMENTS = 1 << 20
_ZIP_LOCAL_HEADER = 30  # fixed part of a zip local file header; name and extra field follow it


@dataclass(frozen=True)
class Stage2Options:
    """How stage 2 combines and scores runs.

    Attributes:
        rules: combination rules (``ltlib.adjust.RULES``); the official code's ``logit_sum`` comes first,
            the paper's ``prob_mean`` second (the paper's Eq. 7 vs its code: both are reported).
        weights: one weight per run (P(c) of the backdoor adjustment); None: equal weights.
        split: the cached split that is scored (``test``).
        prior_split: the zero-shot run's split P̂_P is estimated on (class-balanced ``val``).
        subsets: score every non-empty subset of the runs (Tab. 8: M = 1, 2, 3); otherwise each run alone
            and all runs together.
        p_fractions: shares of P-Many and P-Medium (book: Method, 'Groups': top 30 %, next 30 %).
        d_thresholds: (many, few) training counts of the D-groups (many n > many, few n < few); None: the
            thresholds each run's task records (OLTR's 100 / 20 when it records none; book: Method, 'Groups').
    """

    rules: tuple[str, ...] = RULES
    weights: tuple[float, ...] | None = None
    split: str = "test"
    prior_split: str = "val"
    subsets: bool = False
    p_fractions: tuple[float, float] = P_FRACTIONS
    d_thresholds: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        unknown = [r for r in self.rules if r not in RULES]
        if unknown or not self.rules:
            raise ConfigError(f"invalid rules={self.rules!r}: expected one or more of {RULES}")
        if self.d_thresholds is not None:
            d_groups([1], *self.d_thresholds)  # one-line ConfigError for thresholds that cannot form groups


@dataclass(frozen=True, eq=False)
class CachedRun:
    """One stage-1 run's cached outputs on one split.

    Attributes:
        run_dir: the run directory.
        task, backbone, method, seed: from its ``run.json``.
        class_counts: [C] downstream training counts n_y (D-groups).
        thresholds: the D-group thresholds (many, few) its task records (OLTR 100 / 20 when it records none).
        logits: [N, C] float32 raw logits (five-crop mean under TTE); read-only, possibly memory-mapped.
        targets: [N] int64.
    """

    run_dir: Path
    task: str
    backbone: str
    method: str
    seed: int
    class_counts: np.ndarray
    logits: np.ndarray
    targets: np.ndarray
    thresholds: tuple[int, int] = D_THRESHOLDS


@dataclass(frozen=True, eq=False)
class StagePrior:
    """The prior that defines the P-groups of a stage-2 call (:data:`PRIOR_POLICY`).

    Attributes:
        prior: [C] the consensus P̂_P; source: the ``prior_source`` of every row;
        fits: backbone → the fit behind it, where stage 2 estimated it (None when the priors were given).
    """

    prior: np.ndarray
    source: str
    fits: dict[str, PriorFit] | None = None


@dataclass(frozen=True, eq=False)
class Stage2Result:
    """Stage 2's numbers: ``table`` (tidy, columns :data:`RESULT_COLUMNS`) and ``record`` (the JSON)."""

    table: pd.DataFrame
    record: dict[str, Any]


# --------------------------------------------------------------------------- reading cached runs
def read_logits(run_dir: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Logits and targets of a cached split, without its features (``ltlib.cache`` layout).

    Members stored uncompressed are memory-mapped (no copy); compressed ones are inflated.

    Args:
        run_dir: a stage-1 run directory.
        split: e.g. ``"test"``.
    Returns:
        (logits [N, C] float32, targets [N] int64), read-only.
    Raises:
        ConfigError: the split is not cached in the run (naming both).
    """
    path = split_path(run_dir, split)
    if not path.is_file():
        raise ConfigError(f"run {run_dir}: no cached logits for split {split!r} (expected {path}); is the run "
                          "complete?")
    logits = _npz_member(path, "logits")
    _check_finite(logits, f"run {run_dir}, split {split!r}")
    return logits, _npz_member(path, "targets")


def _check_finite(logits: np.ndarray, where: str, block_elements: int = _BLOCK_ELEMENTS) -> None:
    """Raise :class:`NonFiniteError` naming ``where`` when ``logits`` hold NaN or infinity (read by blocks,
    so a memory map is streamed once and never copied whole). A NaN would otherwise argmax to class 0."""
    rows = max(1, block_elements // max(1, logits.shape[1] if logits.ndim == 2 else 1))
    for start in range(0, len(logits), rows):
        bad = ~np.isfinite(logits[start:start + rows])
        if bad.any():
            row = start + int(np.argwhere(bad)[0][0])
            raise NonFiniteError(f"{where}: logits hold non-finite values (NaN or infinity), first in row {row}; "
                                 "the run diverged or its cache is damaged: re-run it")


def _npz_member(path: Path, name: str) -> np.ndarray:
    """One member of a cached split, its dtype checked to be plain numbers before anything is mapped.

    Raises:
        ConfigError: the member is missing, has another dtype (object arrays would map pointers) or is
            damaged; the message names the file and member.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo(f"{name}.npy")
            if info.compress_type != zipfile.ZIP_STORED:
                with archive.open(info) as member:
                    array = np.lib.format.read_array(member, allow_pickle=False)  # object arrays: ValueError
                _member_dtype(path, name, array.dtype)
                array.setflags(write=False)
                return array
        return _memmap_stored(path, info, name)
    except (KeyError, ValueError, OSError, zipfile.BadZipFile, struct.error) as exc:
        raise ConfigError(f"{path}: cannot read member {name!r} of the cached split ({exc})") from exc


_MEMBER_KINDS = {"logits": "f", "targets": "iu", "features": "f"}


def _member_dtype(path: Path, name: str, dtype: np.dtype) -> np.dtype:
    """``dtype`` if it is a plain numeric dtype of the kind ``name`` needs (float logits, integer targets)."""
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None or \
            dtype.kind not in _MEMBER_KINDS.get(name, "fiu"):
        raise ConfigError(f"{path}: member {name!r} has dtype {dtype}, expected plain "
                          f"{'floats' if _MEMBER_KINDS.get(name) == 'f' else 'integers'}; refusing to read it")
    return dtype


def _memmap_stored(path: Path, info: zipfile.ZipInfo, name: str) -> np.ndarray:
    """Memory-map an uncompressed ``.npy`` member of a zip archive in place, after checking its dtype
    and that its data lies inside the member."""
    with open(path, "rb") as f:
        f.seek(info.header_offset + 26)
        name_length, extra_length = struct.unpack("<HH", f.read(4))
        start = info.header_offset + _ZIP_LOCAL_HEADER + name_length + extra_length
        f.seek(start)
        version = np.lib.format.read_magic(f)
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran_order, dtype = reader(f)
        offset = f.tell()
    dtype = _member_dtype(path, name, dtype)
    count = int(np.prod(shape, dtype=np.int64))
    if offset - start + count * dtype.itemsize != info.file_size:
        raise ConfigError(f"{path}: member {name!r} declares shape {shape} of {dtype} but holds "
                          f"{info.file_size - (offset - start)} data bytes; the file is damaged")
    if count == 0:
        return np.zeros(shape, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran_order else "C")


def load_cached_run(run_dir: str | Path, split: str = "test") -> CachedRun:
    """A complete stage-1 run's identity, class counts and cached ``split`` logits."""
    run_dir = Path(run_dir)
    if not (run_dir / RUN_FILE).is_file():
        raise ConfigError(f"{run_dir}: not a complete stage-1 run (no {RUN_FILE}); run `python -m ltlib train` "
                          "to finish it")
    record = load_run(run_dir)
    logits, targets = read_logits(run_dir, split)
    return CachedRun(run_dir, record["task"], record["backbone"], record["method"], int(record.get("seed", 0)),
                     np.asarray(record["class_counts"], dtype=np.int64), logits, targets, task_thresholds(record))


def task_thresholds(record: dict[str, Any]) -> tuple[int, int]:
    """The D-group thresholds (many, few) a run's task records in ``task_info`` (book: Method, 'Evaluation';
    OLTR 100 / 20 when it records none, as the real datasets do)."""
    info = record.get("task_info") or {}
    if info.get("d_thresholds"):  # recorded by `python -m ltlib train --d-thresholds` (own data)
        many, few = info["d_thresholds"]
        return int(many), int(few)
    return int(info.get("many_threshold", D_THRESHOLDS[0])), int(info.get("few_threshold", D_THRESHOLDS[1]))


def run_d_groups(run: CachedRun) -> Groups:
    """D-groups of a run's task with the thresholds its task records."""
    return d_groups(run.class_counts, *run.thresholds)


def check_compatible(runs: Sequence[CachedRun]) -> None:
    """Require the runs to share task, classes, training counts and the scored samples (same order).

    Raises:
        ConfigError: naming the first run that differs from ``runs[0]`` and how.
    """
    if not runs:
        raise ConfigError("runs: pass at least one stage-1 run directory")
    first = runs[0]
    for run in runs[1:]:
        problems = [what for what, same in (
            (f"task {run.task!r} vs {first.task!r}", run.task == first.task),
            (f"logits shape {run.logits.shape} vs {first.logits.shape}", run.logits.shape == first.logits.shape),
            ("training class counts", np.array_equal(run.class_counts, first.class_counts)),
            (f"D-group thresholds {run.thresholds} vs {first.thresholds}", run.thresholds == first.thresholds),
            ("targets (sample order)", np.array_equal(run.targets, first.targets))) if not same]
        if problems:
            raise ConfigError(f"run {run.run_dir} cannot be combined with {first.run_dir}: "
                              f"{problems[0]} differ")


# --------------------------------------------------------------------------- combining and scoring
def combined_predictions(logits_list: Sequence[np.ndarray], rule: str = "logit_sum",
                         weights: Sequence[float] | None = None, block_elements: int = _BLOCK_ELEMENTS) -> np.ndarray:
    """Predicted labels of the backdoor adjustment (``ltlib.adjust.backdoor_adjust``) of all M models.

    Args:
        logits_list: M arrays [N, C] (memory maps are read block by block).
        rule: ``"logit_sum"`` (official code) or ``"prob_mean"`` (the paper's Σ_c P(Y|X,c)P(c)).
        weights: M positive weights or None (equal).
        block_elements: rows per block × C, per model.
    Returns:
        [N] int64 argmax of the combined scores.
    """
    members = tuple(range(len(logits_list)))
    return predictions_for(logits_list, [(members, rule)], weights, block_elements)[0]


def predictions_for(logits_list: Sequence[np.ndarray], plan: Sequence[tuple[tuple[int, ...], str]],
                    weights: Sequence[float] | None = None, block_elements: int = _BLOCK_ELEMENTS) -> list[np.ndarray]:
    """Predicted labels of several combinations in one pass over the logits, a block of rows at a time.

    Reading each block once for every (members, rule) keeps it in cache and each file is streamed once.

    Args:
        logits_list: M arrays [N, C].
        plan: (indices into ``logits_list``, rule) per combination.
        weights: M positive weights or None (equal); a combination uses its members' weights.
        block_elements: rows per block × C, per model.
    Returns:
        One [N] int64 array of predictions per entry of ``plan``.
    """
    num_rows, num_classes = logits_list[0].shape
    rows = max(1, block_elements // num_classes)
    outs = [np.empty(num_rows, dtype=np.int64) for _ in plan]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")  # read-only maps
        for start in range(0, num_rows, rows):
            blocks = [torch.as_tensor(z[start:start + rows]) for z in logits_list]
            for out, (members, rule) in zip(outs, plan):
                chosen = None if weights is None else [weights[i] for i in members]
                out[start:start + rows] = _block_argmax([blocks[i] for i in members], rule, chosen)
    return outs


def _block_argmax(blocks: list[torch.Tensor], rule: str, weights: Sequence[float] | None) -> np.ndarray:
    # One model: both rules are increasing maps of its logits (w·z, log_softmax z), so the argmax is z's.
    scores = blocks[0] if len(blocks) == 1 else backdoor_adjust(blocks, rule, weights)
    return scores.argmax(dim=1).numpy()


def score_rows(preds: np.ndarray, targets: np.ndarray, d: Groups, p: Groups | None) -> list[dict[str, Any]]:
    """Accuracy overall, per D-group, per P-group and per D×P cell as tidy rows (book: Method, 'Evaluation'; Fig. 2).

    Args:
        preds, targets: [N] predicted and true labels.
        d: D-groups (training counts); p: P-groups (estimated prior), or None to skip them.
    Returns:
        Rows with ``metric`` (``accuracy``: sample-level; ``mean_class_accuracy``: mean of per-class
        accuracies over the cell's classes), ``d_group`` / ``p_group`` (``"all"`` when not split),
        ``value`` (%, NaN for an empty cell) and ``num_classes``.
    """
    by_d = group_accuracy(preds, targets, d)
    rows = [_row("accuracy", ALL, ALL, by_d.overall, d.num_classes),
            _row("mean_class_accuracy", ALL, ALL, by_d.mean, d.num_classes)]
    rows += [_row("mean_class_accuracy", g, ALL, by_d.groups[g], d.sizes[g]) for g in d.names]
    if p is None:
        return rows
    by_p = group_accuracy(preds, targets, p)
    rows += [_row("mean_class_accuracy", ALL, g, by_p.groups[g], p.sizes[g]) for g in p.names]
    cells = dp_matrix(preds, targets, d, p)
    rows += [_row("mean_class_accuracy", dg, pg, cells.accuracy.loc[dg, pg], cells.num_classes.loc[dg, pg])
             for dg in d.names for pg in p.names]
    return rows


def _row(metric: str, d_group: str, p_group: str, value: float, num_classes: int) -> dict[str, Any]:
    return {"metric": metric, "d_group": d_group, "p_group": p_group, "value": float(value),
            "num_classes": int(num_classes)}


def combinations(count: int, subsets: bool) -> list[tuple[int, ...]]:
    """Index tuples to score: every non-empty subset, or each run alone plus all runs together."""
    if subsets:
        return [c for m in range(1, count + 1) for c in itertools.combinations(range(count), m)]
    singles = [(i,) for i in range(count)]
    return singles + ([tuple(range(count))] if count > 1 else [])


def member_labels(runs: Sequence[CachedRun]) -> list[str]:
    """A readable label per run: the backbone, or backbone/method/seed when backbones repeat."""
    backbones = [r.backbone for r in runs]
    if len(set(backbones)) == len(backbones):
        return backbones
    return [f"{r.backbone}/{r.method}/seed{r.seed}" for r in runs]


# --------------------------------------------------------------------------- the prior that defines P-groups
def estimate_stage2_prior(prior_run: str | Path, split: str = "val") -> PriorFit:
    """P̂_P from a zero-shot run's cached ``split`` logits (GLA; calibrated, exact solver).

    Raises:
        ConfigError: the run is not a zero-shot run, or the split is not cached.
    """
    record = _load_prior_run(prior_run)
    if record.get("method") != "zeroshot":
        raise ConfigError(f"prior run {prior_run} has method {record.get('method')!r}; P̂_P is estimated from a "
                          "zero-shot run (python -m ltlib train --method zeroshot)")
    logits, targets = read_logits(prior_run, split)
    return fit_prior(np.array(logits), np.array(targets))  # a writable copy: val is small


def _load_prior_run(prior_run: str | Path) -> dict[str, Any]:
    """The ``run.json`` of a folder given as a prior run, or a one-line error when it is not a run."""
    if not (Path(prior_run) / RUN_FILE).is_file():
        raise ConfigError(f"prior run {prior_run}: not a complete stage-1 run (no {RUN_FILE}); pass the folder of "
                          "a zero-shot run (python -m ltlib train --method zeroshot)")
    return load_run(prior_run)


def find_prior_run(run_dir: str | Path) -> Path | None:
    """The zero-shot run of the same task and backbone beside ``run_dir`` in its runs root, if exactly one."""
    run_dir = Path(run_dir)
    if not (run_dir / RUN_FILE).is_file() or len(run_dir.parents) < 4:
        return None
    record = load_run(run_dir)
    found = find_runs(run_dir.parents[3], record["task"], backbone=record["backbone"], method="zeroshot")
    return Path(found["run_dir"].iloc[0]) if len(found) == 1 else None


def find_prior_runs(run_dirs: Sequence[str | Path]) -> list[Path] | None:
    """One zero-shot run per distinct backbone of ``run_dirs`` (:func:`find_prior_run`), or None when any
    backbone has no unique one (then the P-groups of :data:`PRIOR_POLICY` cannot be formed)."""
    found: dict[str, Path | None] = {}
    for run_dir in map(Path, run_dirs):
        if not (run_dir / RUN_FILE).is_file():
            return None
        found.setdefault(str(load_run(run_dir)["backbone"]), find_prior_run(run_dir))
    return None if any(p is None for p in found.values()) else [found[b] for b in sorted(found)]


def consensus_prior(priors: Sequence[np.ndarray]) -> np.ndarray:
    """The renormalised geometric mean of several priors (:data:`PRIOR_POLICY`); one prior is returned as is."""
    if len(priors) == 1:
        return np.asarray(priors[0], dtype=np.float64)
    log = np.mean([np.log(np.asarray(p, dtype=np.float64)) for p in priors], axis=0)
    return np.exp(log - np.logaddexp.reduce(log))


def stage_prior(priors: Mapping[str, np.ndarray], fits: dict[str, PriorFit] | None = None) -> StagePrior:
    """The P-group prior of :data:`PRIOR_POLICY` from backbone → P̂_P (P-groups: the paper's §3, Fig. 2).

    Returns:
        :class:`StagePrior` whose ``source`` is the backbone's name, or ``geomean(a+b+…)`` (sorted names).
    """
    names = sorted(priors)
    source = names[0] if len(names) == 1 else f"{PRIOR_POLICY}({backbone_key(names)})"
    return StagePrior(consensus_prior([priors[b] for b in names]), source, fits)


def estimate_stage_prior(prior_runs: Sequence[str | Path], split: str = "val") -> StagePrior:
    """:func:`stage_prior` of the P̂_P estimated from zero-shot runs, one per backbone.

    Raises:
        ConfigError: two prior runs of the same backbone, or a run that is not zero-shot.
    """
    fits = {}
    for run in prior_runs:
        backbone = str(_load_prior_run(run)["backbone"])
        if backbone in fits:
            raise ConfigError(f"prior runs: two zero-shot runs of backbone {backbone!r} (one per backbone), "
                              f"e.g. {run}")
        fits[backbone] = estimate_stage2_prior(run, split)
    return stage_prior({b: f.prior for b, f in fits.items()}, fits)


# --------------------------------------------------------------------------- the stage
@phase("stage 2")
def run_stage2(run_dirs: Sequence[str | Path], prior_run: str | Path | Sequence[str | Path] | None = None,
               options: Stage2Options = Stage2Options(), *, priors: Mapping[str, np.ndarray] | None = None
               ) -> Stage2Result:
    """Combine M stage-1 runs and score every combination (the backdoor adjustment, §4; Fig. 2; Tab. 5–8, 11).

    The one stage 2 of the project: ``python -m ltlib adjust``, ``make reproduce`` and the book's notebooks
    all score combinations here. Each run's logits are read once (memory-mapped, streamed by blocks) for
    every combination × rule; D-groups use the thresholds the task records; P-groups follow
    :data:`PRIOR_POLICY`, recorded in every row's ``prior_source``.

    Args:
        run_dirs: M complete stage-1 runs of one task (typically LA runs of the three backbones), in any order
            (they are scored sorted by backbone, method and seed).
        prior_run: the zero-shot run(s) P̂_P is estimated from, one per backbone; None skips P-groups
            (unless ``priors`` is given).
        options: rules, weights, splits, which combinations.
        priors: backbone → P̂_P computed before (the book estimates them once per study), instead of
            ``prior_run``.
    Returns:
        :class:`Stage2Result` with a tidy table and a JSON record (inputs, prior fit, provenance, timings).
    Raises:
        ConfigError: incompatible runs, bad weights or rules, a missing split or prior run.
    """
    clock = [time.perf_counter()]
    runs = [load_cached_run(d, options.split) for d in run_dirs]
    check_compatible(runs)
    _check_weights(options.weights, len(runs))
    runs, options = _canonical_order(runs, options)
    d = d_groups(runs[0].class_counts, *(options.d_thresholds or runs[0].thresholds))
    clock.append(time.perf_counter())
    prior_runs = [] if prior_run is None else [prior_run] if isinstance(prior_run, (str, Path)) else list(prior_run)
    prior = stage_prior(priors) if priors is not None else \
        estimate_stage_prior(prior_runs, options.prior_split) if prior_runs else None
    p = None if prior is None else p_groups(prior.prior, options.p_fractions)
    if p is not None and p.num_classes != d.num_classes:
        raise ConfigError(f"prior {prior.source} has {p.num_classes} classes, the runs have {d.num_classes}")
    clock.append(time.perf_counter())
    inputs = {"runs": [str(r.run_dir) for r in runs], "prior_source": "" if prior is None else prior.source,
              "prior": None if prior is None else prior.prior.tolist(), "options": options}
    table = _with_provenance(pd.DataFrame(_score_all(runs, d, p, inputs["prior_source"], options)), inputs)
    clock.append(time.perf_counter())
    seconds = dict(zip(("load", "prior", "adjust_and_score"), np.diff(clock).tolist()))
    return Stage2Result(table, _record(runs, inputs, [str(r) for r in prior_runs], prior, table, seconds))


def _score_all(runs: Sequence[CachedRun], d: Groups, p: Groups | None, prior_source: str,
               options: Stage2Options) -> list[dict]:
    labels, targets, rows = member_labels(runs), np.asarray(runs[0].targets), []
    plan = [(members, rule) for members in combinations(len(runs), options.subsets) for rule in options.rules]
    all_preds = predictions_for([r.logits for r in runs], plan, options.weights)
    for (members, rule), preds in zip(plan, all_preds):
        chosen = [runs[i] for i in members]
        seeds = {r.seed for r in chosen}
        keys = {"task": runs[0].task, "split": options.split, "num_models": len(members), "rule": rule,
                "combination": backbone_key([labels[i] for i in members]),
                "method": backbone_key(sorted({r.method for r in chosen})),
                "seed": seeds.pop() if len(seeds) == 1 else -1, "prior_source": prior_source}
        rows += [{**keys, **row} for row in score_rows(preds, targets, d, p)]
    return rows


def _canonical_order(runs: list[CachedRun], options: Stage2Options) -> tuple[list[CachedRun], Stage2Options]:
    """The runs sorted by (backbone, method, seed, directory), weights along: the same runs give the same
    rows in the same order, however they were listed."""
    order = sorted(range(len(runs)), key=lambda i: (runs[i].backbone, runs[i].method, runs[i].seed,
                                                    str(runs[i].run_dir)))
    weights = None if options.weights is None else tuple(options.weights[i] for i in order)
    return [runs[i] for i in order], dataclasses.replace(options, weights=weights)


def _check_weights(weights: Sequence[float] | None, count: int) -> None:
    if weights is not None and len(weights) != count:
        raise ConfigError(f"weights: {len(weights)} values for {count} runs")
    if weights is not None and not all(np.isfinite(w) and w > 0 for w in weights):
        raise ConfigError(f"weights={tuple(weights)}: each must be positive (to drop a model, leave its run out)")


def _with_provenance(table: pd.DataFrame, inputs: dict[str, Any]) -> pd.DataFrame:
    table = table.assign(git_sha=git_sha(), config_hash=config_hash(inputs),
                         versions=json.dumps(library_versions(), sort_keys=True))
    return table[list(RESULT_COLUMNS)]


def _record(runs: Sequence[CachedRun], inputs: dict[str, Any], prior_runs: list[str], prior: StagePrior | None,
            table: pd.DataFrame, seconds: dict[str, float]) -> dict[str, Any]:
    """The JSON record: provenance, the runs, the prior (and its fits), timings and every number of ``table``."""
    options: Stage2Options = inputs["options"]
    members = [{"run_dir": str(r.run_dir), "backbone": r.backbone, "method": r.method, "seed": r.seed}
               for r in runs]
    fits = {b: {"solver": f.solver, "temperature": f.temperature, "objective": f.objective,
                "moment_residual": f.moment_residual} for b, f in ((prior and prior.fits) or {}).items()}
    prior_info = None if prior is None else {
        "source": prior.source, "policy": PRIOR_POLICY, "runs": prior_runs, "split": options.prior_split,
        "prior": prior.prior, "fits": fits}
    results = table[["combination", "method", "seed", "num_models", "rule", "prior_source", "metric", "d_group",
                     "p_group", "value", "num_classes"]]
    results = results.astype(object).where(results.notna(), None)  # empty cells: JSON null, not NaN
    return {**run_record(inputs), "task": runs[0].task, "split": options.split, "runs": members,
            "d_thresholds": list(options.d_thresholds or runs[0].thresholds), "prior": prior_info, "seconds": seconds,
            "results": results.to_dict(orient="records")}


def write_stage2(result: Stage2Result, out_dir: str | Path) -> dict[str, Path]:
    """Write ``stage2.json`` and ``stage2.csv`` into ``out_dir`` atomically (``ltlib.storage``).

    Returns:
        ``{"json": path, "csv": path}``.
    """
    out_dir = Path(out_dir)
    return {"json": write_json(out_dir / JSON_NAME, result.record),
            "csv": write_text(out_dir / CSV_NAME, result.table.to_csv(index=False))}


def summary_table(table: pd.DataFrame) -> pd.DataFrame:
    """A readable wide view: one row per (combination, rule), columns overall and D-/P-group accuracies."""
    flat = table[(table["d_group"] == ALL) | (table["p_group"] == ALL)].copy()
    flat["column"] = np.where(flat["metric"] == "accuracy", "overall",
                              np.where(flat["d_group"] != ALL, "D-" + flat["d_group"],
                                       np.where(flat["p_group"] != ALL, "P-" + flat["p_group"], "mean")))
    wide = flat.pivot_table(index=["combination", "rule"], columns="column", values="value", sort=False,
                            dropna=False)
    order = [c for c in ("overall", "mean", "D-many", "D-medium", "D-few", "P-many", "P-medium", "P-few")
             if c in wide.columns]
    return wide[order].round(2)
