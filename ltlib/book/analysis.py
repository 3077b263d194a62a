"""The paper's analyses over cached stage-1 runs (any scale): per-class accuracy against the
downstream prior P_S, the estimated pre-training prior P̂_P and (in the mini world) the true π (Fig. 3,
Fig. 9), D×P group scores (Fig. 2, Tab. 3, Tab. 11), ensembles of runs (the backdoor adjustment, Tab. 8),
and the kNN feature probe (Tab. 4). Inputs are run directories (``ltlib.runs``) and a run index
(``ltlib.miniworld.experiments``); outputs are tidy DataFrames.
"""

from __future__ import annotations

import functools
import math
import warnings
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from scipy import stats

from ..adjust import RULES, gla_posthoc
from ..cache import SplitOutputs, load_split
from ..errors import ConvergenceError
from ..metrics import Groups, d_groups, knn_predict, per_class_accuracy
from ..miniworld.config import split_copy_name
from ..priors import calibrate_temperature, fit_prior, prior_agreement
from ..results import backbone_key, with_labels
from ..runs import load_run
from ..stage2 import (ALL, Stage2Options, combined_predictions, run_stage2, score_rows, stage_prior,
                      task_thresholds)

SORT_KEYS = {"p_s": "downstream prior P_S", "p_hat": "estimated pre-training prior P̂_P",
             "pi": "true pre-training prior π", "p_ref": "the reference model's P̂_P (noise floor)"}
PRIOR_KEYS = {"estimate": "p_hat", "truth": "pi", "reference": "p_ref"}  # registry prior source → column


# ----------------------------------------------------------------------------- run facts
@functools.lru_cache(maxsize=512)
def _run_json(run_dir: str) -> dict:
    return load_run(run_dir)


@functools.lru_cache(maxsize=256)
def outputs(run_dir: str | Path, split: str = "test") -> SplitOutputs:
    """Cached outputs of a run (memoised: analyses read the same runs many times)."""
    return load_split(str(run_dir), split)


def class_counts(run_dir: str | Path) -> np.ndarray:
    """n_y of the run's downstream training set."""
    return np.asarray(_run_json(str(run_dir))["class_counts"], dtype=np.int64)


def run_d_groups(run_dir: str | Path) -> Groups:
    """D-groups of the run's task, with the thresholds the task records (``ltlib.stage2.task_thresholds``)."""
    return d_groups(class_counts(run_dir), *task_thresholds(_run_json(str(run_dir))))


# ----------------------------------------------------------------------------- priors
@functools.lru_cache(maxsize=256)
def zero_shot_prior(run_dir: str | Path, solver: str = "exact", split: str = "val"):
    """GLA's fit of P̂_P on a zero-shot run's class-balanced split (``ltlib.priors.PriorFit``)."""
    out = outputs(run_dir, split)
    return fit_prior(out.logits, out.targets, solver=solver)


# ----------------------------------------------------------------------------- per-class trends (Fig. 3, Fig. 9)
def per_class_table(index: pd.DataFrame, p_hat: Mapping[str, np.ndarray],
                    pi: Mapping[str, np.ndarray] | None = None, split: str = "test",
                    p_ref: np.ndarray | None = None) -> pd.DataFrame:
    """One row per (run, class): accuracy with the class's P_S, P̂_P and (when known) true π.

    Args:
        index: run index (columns backbone, method, model, seed, run_dir, …).
        p_hat: backbone → P̂_P [C] (for an ensemble or a from-scratch model, pass the prior to sort by
            under the run's backbone name).
        pi: backbone → true π [C], or None at full scale.
        p_ref: the uniform-prior reference model's P̂_P (column ``p_ref``: the estimator's noise floor), or None.
    """
    frames = []
    for row in index.itertuples(index=False):
        out, counts = outputs(row.run_dir, split), class_counts(row.run_dir)
        frame = pd.DataFrame({"class": np.arange(len(counts)), "n_train": counts, "p_s": counts / counts.sum(),
                              "p_hat": p_hat[row.backbone],
                              "accuracy": per_class_accuracy(out.logits.argmax(1), out.targets, len(counts))})
        if pi is not None:
            frame["pi"] = pi[row.backbone]
        if p_ref is not None:
            frame["p_ref"] = p_ref
        frames.append(frame.assign(**{k: getattr(row, k) for k in ("backbone", "method", "model", "seed")},
                                   run_dir=str(row.run_dir)))
    return pd.concat(frames, ignore_index=True)


def mean_class_accuracy(table: pd.DataFrame) -> tuple[float, float]:
    """(mean, sd) over the runs of a :func:`per_class_table` of each run's class-mean accuracy (%)."""
    per_run = table.groupby("run_dir")["accuracy"].mean()
    return float(per_run.mean()), float(per_run.std(ddof=1)) if len(per_run) > 1 else float("nan")


def with_reference(table: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """Add ``ref_accuracy`` (the uniform-prior reference model's per-class accuracy on the same task and
    seed) and ``excess`` = accuracy − ref_accuracy: per-class difficulty cancels, the prior's effect stays
    (book: Mini world, 'Decisions and their reasons', item 7)."""
    ref = reference[["seed", "class", "accuracy"]].rename(columns={"accuracy": "ref_accuracy"})
    out = table.merge(ref, on=["seed", "class"], how="left", validate="many_to_one")
    return out.assign(excess=out["accuracy"] - out["ref_accuracy"])


def trend_statistics(table: pd.DataFrame, keys: Sequence[str] = ("p_s", "p_hat", "pi"),
                     value: str = "accuracy") -> pd.DataFrame:
    """Per run, Spearman ρ of per-class ``value`` against each prior in ``keys`` (a monotone trend: ρ > 0
    means frequent classes do better). Columns: backbone, method, model, seed, key, rho, p."""
    rows = []
    for (run, *ids), part in table.groupby(["run_dir", "backbone", "method", "model", "seed"], sort=False):
        for key in (k for k in keys if k in part):
            rho, p = stats.spearmanr(part[key], part[value])
            rows.append({"backbone": ids[0], "method": ids[1], "model": ids[2], "seed": ids[3], "key": key,
                         "rho": float(rho), "p": float(p)})
    return pd.DataFrame(rows)


def binned_accuracy(table: pd.DataFrame, key: str, bins: int = 5, value: str = "accuracy") -> pd.DataFrame:
    """Fig. 3's curves: within every run, classes sorted by ``key`` (most frequent first) and cut into
    ``bins`` equal bins; mean ``value`` per bin. Columns: backbone, method, model, seed, bin (1 = head), value."""
    def per_run(part: pd.DataFrame) -> pd.DataFrame:
        order = part.sort_values(key, ascending=False, kind="stable")
        labels = np.arange(len(order)) * bins // len(order) + 1
        return order.assign(bin=labels).groupby("bin", as_index=False)[value].mean()

    pieces = [per_run(part).assign(backbone=b, method=m, model=mo, seed=s)
              for (_, b, m, mo, s), part in table.groupby(["run_dir", "backbone", "method", "model", "seed"],
                                                          sort=False)]
    return pd.concat(pieces, ignore_index=True).assign(key=key)


# ----------------------------------------------------------------------------- ensembles and groups
def ensemble_predictions(run_dirs: Sequence[str | Path], rule: str = "logit_sum",
                         split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """Predictions of the backdoor adjustment over runs (M = len(run_dirs)) and the shared targets."""
    outs = [outputs(d, split) for d in run_dirs]
    targets = outs[0].targets
    if any(not np.array_equal(o.targets, targets) for o in outs[1:]):
        raise ValueError(f"runs {list(map(str, run_dirs))} were evaluated on different {split} sets")
    return combined_predictions([o.logits for o in outs], rule), targets


def group_name(metric: str, d_group: str, p_group: str) -> str | None:
    """The book's name of a stage-2 score (``ltlib.stage2.score_rows``): ``overall`` (sample-level accuracy),
    ``D-<g>``, ``P-<g>`` or ``D-<d>×P-<p>`` (mean class accuracy); None for the class mean over all classes."""
    if metric == "accuracy":
        return "overall"
    if d_group != ALL and p_group != ALL:
        return f"D-{d_group}×P-{p_group}"
    if d_group != ALL:
        return f"D-{d_group}"
    return f"P-{p_group}" if p_group != ALL else None


def group_scores(preds: np.ndarray, targets: np.ndarray, d: Groups, p: Groups | None) -> dict[str, float]:
    """Overall, D-group, P-group and D×P accuracies (``ltlib.stage2.score_rows``) as a flat dict keyed by
    :func:`group_name` (``overall``, ``D-many``, ``P-few``, ``D-few×P-few``, …)."""
    rows = score_rows(preds, targets, d, p)
    named = ((group_name(r["metric"], r["d_group"], r["p_group"]), r["value"]) for r in rows)
    return {name: value for name, value in named if name is not None}


def posthoc_gla_predictions(ft_run: str | Path, zs_run: str | Path, prior: np.ndarray, split: str = "test",
                            calibration_split: str = "val") -> np.ndarray:
    """GLA's post-hoc combination (book: Method, 'The GLA prior estimator', post-hoc use) of a fine-tuned and
    a zero-shot run: ft/T_ft + zs/T_zs − log P̂_P, temperatures calibrated on the balanced ``calibration_split``."""
    ft_cal, zs_cal = outputs(ft_run, calibration_split), outputs(zs_run, calibration_split)
    t_ft = _temperature(ft_cal, tol=1.0)  # GLA calibrates the fine-tuned model with thres 1.0
    t_zs = _temperature(zs_cal, tol=0.1)
    ft, zs = outputs(ft_run, split), outputs(zs_run, split)
    return gla_posthoc(ft.logits, zs.logits, prior, t_ft, t_zs).argmax(1).numpy()


def _temperature(out: SplitOutputs, tol: float) -> float:
    """GLA's calibrated temperature; a model at or below chance accuracy cannot be calibrated (confidence
    never falls below 100/C), and its calibrated limit is T → ∞: its logits then drop out of the sum."""
    try:
        return calibrate_temperature(out.logits, out.targets, tol=tol)
    except ConvergenceError:
        warnings.warn(f"accuracy at or below chance: temperature → ∞ for this model ({out.logits.shape})")
        return math.inf


def knn_group_accuracy(run_dir: str | Path, k: int = 200, temperature: float = 0.1,
                       bank: str = "val", query: str = "test") -> dict[str, float]:
    """Tab. 4's probe: weighted kNN on the run's features (bank = the balanced val split), accuracy
    overall and per D-group."""
    b, q = outputs(run_dir, bank), outputs(run_dir, query)
    preds = knn_predict(torch.from_numpy(b.features), torch.from_numpy(b.targets), torch.from_numpy(q.features),
                        b.num_classes, k=k, temperature=temperature).numpy()
    return group_scores(preds, q.targets, run_d_groups(run_dir), None)


# ----------------------------------------------------------------------------- study-level tables
def estimated_priors(study) -> dict[str, np.ndarray]:
    """GLA's exact P̂_P of the foundation models and the reference model (from their zero-shot runs), by
    backbone (fits are memoised per run)."""
    names = [*study.backbones, *([study.reference] if study.reference else [])]
    runs = study.index[(study.index.method == "zeroshot") & (study.index.model == "lift")
                       & study.index.backbone.isin(names)]
    return {r.backbone: zero_shot_prior(r.run_dir).prior for r in runs.drop_duplicates("backbone").itertuples()}


def prior_rows(study) -> pd.DataFrame:
    """The tidy rows of :func:`prior_fits` (for :func:`over_worlds`)."""
    return prior_fits(study)[1]


def prior_fits(study, solvers: Sequence[str] = ("exact", "reference")) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    """GLA's P̂_P of every foundation model (from its zero-shot run) with each solver.

    Returns:
        (backbone → exact P̂_P, a tidy frame: backbone, method = ``gla-<solver>``, group ``prior``,
        metric, value) with the temperature, objective and, in the mini world, the agreement with π.
    """
    rows, exact = [], {}
    for b in study.backbones:
        run = study.runs(backbone=b, method="zeroshot", model="lift").iloc[0].run_dir
        for solver in solvers:
            fit = zero_shot_prior(run, solver)
            exact.setdefault(b, fit.prior)
            values = {"temperature": fit.temperature, "objective": fit.objective}
            if study.true_priors is not None:
                values |= prior_agreement(fit.prior, study.true_priors[b])
            rows += [{"backbone": b, "method": f"gla-{solver}", "group": "prior", "metric": k, "value": v}
                     for k, v in values.items()]
    return exact, pd.DataFrame(rows + _reference_floor(study))


def _reference_floor(study) -> list[dict]:
    """The estimator's noise floor: agreement of the uniform-prior reference model's P̂_P (exact solver) with
    each foundation model's true π (group ``reference floor``, backbones = the model whose π it is)."""
    if study.true_priors is None or study.reference is None:
        return []
    runs = study.runs(backbone=study.reference, method="zeroshot", model="lift")
    if runs.empty:
        return []
    fit = zero_shot_prior(runs.iloc[0].run_dir, "exact")
    return [{"backbone": b, "method": "gla-exact", "group": "reference floor", "metric": k, "value": v}
            for b in study.backbones for k, v in prior_agreement(fit.prior, study.true_priors[b]).items()]


def lift_runs(study, methods: Sequence[str], main_only: bool = True, recipe: str | None = None) -> pd.DataFrame:
    """The study's LIFT runs of the foundation models for ``methods``; with ``main_only``, only the main
    setting (independent class order, training seed = task seed), not the controls' extra runs. ``recipe``:
    only runs of that recipe (default: the book's main recipe, no variant); at full scale every run."""
    from ..miniworld.experiments import MAIN_RECIPE

    index = study.index
    runs = index[(index.model == "lift") & index.backbone.isin(study.backbones) & index.method.isin(methods)]
    if study.scale == "mini":
        runs = runs[(runs.recipe == (recipe or MAIN_RECIPE)) & (runs.variant == "")]
    if main_only:
        runs = runs[(runs.order == "independent") & (runs.seed == runs.task_seed)]
    return runs


def dp_matrices(study, p_hat: Mapping[str, np.ndarray] | None = None, methods: Sequence[str] = ("CE", "LA")
                ) -> dict[str, tuple[dict, pd.DataFrame]]:
    """Fig. 2: mean D×P matrix of each single-model method (each run's P-groups from its own model's P̂_P) and
    of the backdoor adjustment of the LA runs (M = all backbones, per seed; P-groups from the geometric mean
    of the members' P̂_P, ``ltlib.stage2.PRIOR_POLICY``), all scored by ``ltlib.stage2.run_stage2``.

    Returns:
        display label → (the result-table columns of its rows, the mean matrix).
    """
    out, everyone = {}, backbone_key(study.backbones)
    p_hat = estimated_priors(study) if p_hat is None else p_hat
    for method in methods:
        runs = lift_runs(study, [method])
        matrices = [_dp_matrix([r.run_dir], {r.backbone: p_hat[r.backbone]}) for r in runs.itertuples()]
        keys = {"method": method, "backbones": everyone, "n_models": 1, "rule": "", "prior_source": "each model's own"}
        out[method] = (keys, _mean_frames(matrices))
    la, priors = lift_runs(study, ["LA"]), {b: p_hat[b] for b in study.backbones}
    matrices = [_dp_matrix(part.sort_values("backbone").run_dir.tolist(), priors) for _, part in la.groupby("seed")]
    keys = {"method": "LA", "backbones": everyone, "n_models": len(study.backbones), "rule": RULES[0],
            "prior_source": stage_prior(priors).source}
    out[f"backdoor adjustment (M={len(study.backbones)})"] = (keys, _mean_frames(matrices))
    return out


def _dp_matrix(run_dirs: Sequence[str], priors: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """The D×P accuracy matrix of the combination of all ``run_dirs`` (logit sum), from stage 2's rows."""
    table = run_stage2(run_dirs, options=Stage2Options(rules=(RULES[0],)), priors=priors).table
    cells = table[(table.num_models == len(run_dirs)) & (table.d_group != ALL) & (table.p_group != ALL)]
    matrix = cells.pivot(index="d_group", columns="p_group", values="value")
    order = ["many", "medium", "few"]
    return matrix.reindex(index=order, columns=order).rename_axis(index=None, columns=None)


def dp_rows(matrices: Mapping[str, tuple[dict, pd.DataFrame]]) -> pd.DataFrame:
    """The cells of :func:`dp_matrices` as tidy result rows (group ``D-<d>×P-<p>``)."""
    return pd.DataFrame([{**keys, "group": f"D-{d}×P-{p}", "value": m.loc[d, p]}
                         for keys, m in matrices.values() for d in m.index for p in m.columns])


def dp_figure(matrices: Mapping[str, tuple[dict, pd.DataFrame]]) -> dict[str, pd.DataFrame]:
    """label → matrix, for ``ltlib.book.plots.fig2_dp_matrix``."""
    return {label: m for label, (_, m) in matrices.items()}


def dp_table(study, p_hat: Mapping[str, np.ndarray] | None = None) -> pd.DataFrame:
    """:func:`dp_rows` of :func:`dp_matrices` with a display ``label`` column (for :func:`over_worlds`)."""
    matrices = dp_matrices(study, p_hat)
    labels = [label for label, (_, m) in matrices.items() for _ in range(m.size)]
    return dp_rows(matrices).assign(label=labels)


def dp_figure_from_rows(rows: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """label → the 3×3 matrix of the mean of :func:`dp_table` rows over worlds (D rows, P columns)."""
    order = ["many", "medium", "few"]
    cells = rows.assign(d=rows.group.str.extract(r"D-(\w+)×")[0], p=rows.group.str.extract(r"P-(\w+)$")[0])
    return {label: part.pivot_table(index="d", columns="p", values="value", aggfunc="mean")
            .reindex(index=order, columns=order).rename_axis(index=None, columns=None)
            for label, part in cells.groupby("label", sort=False)}


def _mean_frames(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    return sum(frames) / len(frames)


def method_scores(study, p_hat: Mapping[str, np.ndarray] | None = None,
                  methods: Sequence[str] = ("CE", "LA", "GLA-Train"), posthoc: bool = True) -> pd.DataFrame:
    """Tab. 3: accuracy overall and per D-group of every run of ``methods`` and, with ``posthoc``, of
    GLA's post-hoc combination of each LA run with its zero-shot run. Tidy: method, backbone, seed, group, value."""
    p_hat = estimated_priors(study) if p_hat is None else p_hat
    rows = []
    for r in lift_runs(study, methods).itertuples():
        d = run_d_groups(r.run_dir)
        preds, targets = ensemble_predictions([r.run_dir])
        rows += _score_rows(r.method, r.backbone, r.seed, group_scores(preds, targets, d, None))
        if posthoc and r.method == "LA":
            zs = study.runs(backbone=r.backbone, method="zeroshot", seed=r.seed).iloc[0].run_dir
            preds = posthoc_gla_predictions(r.run_dir, zs, p_hat[r.backbone])
            rows += _score_rows("GLA post-hoc", r.backbone, r.seed, group_scores(preds, targets, d, None))
    return pd.DataFrame(rows)


def _score_rows(method: str, backbone: str, seed: int, scores: Mapping[str, float]) -> list[dict]:
    return [{"method": method, "backbone": backbone, "seed": seed, "group": g, "value": v} for g, v in scores.items()]


def knn_scores(study, methods: Sequence[str] = ("zeroshot", "CE", "LA")) -> pd.DataFrame:
    """Tab. 4: kNN accuracy per D-group of each run's features (zero-shot runs = pre-trained features)."""
    rows = []
    for r in lift_runs(study, methods).itertuples():
        name = "pre-trained" if r.method == "zeroshot" else r.method
        rows += _score_rows(name, r.backbone, r.seed, knn_group_accuracy(r.run_dir))
    return pd.DataFrame(rows)


VPT = "LA (VPT)"  # the method name of LA runs with VPT instead of AdaptFormer (§4.1's second PEFT method)


def per_class_runs(study, p_hat: Mapping[str, np.ndarray] | None = None,
                   methods: Sequence[str] = ("zeroshot", "CE", "LA", "GLA-Train"), vpt: bool = True) -> pd.DataFrame:
    """:func:`per_class_table` of the main runs of ``methods`` (and of the VPT LA runs as method :data:`VPT`),
    with the true π and the reference model's P̂_P where the study has them."""
    from ..miniworld.experiments import VPT_RECIPE

    p_hat = estimated_priors(study) if p_hat is None else p_hat
    p_ref = p_hat.get(study.reference) if study.reference else None
    table = per_class_table(lift_runs(study, methods), p_hat, study.true_priors, p_ref=p_ref)
    vpt_runs = lift_runs(study, ["LA"], recipe=VPT_RECIPE) if (vpt and study.scale == "mini") else []
    if len(vpt_runs):
        extra = per_class_table(vpt_runs, p_hat, study.true_priors, p_ref=p_ref).assign(method=VPT)
        table = pd.concat([table, extra], ignore_index=True)
    return table


def reference_table(study, p_hat: Mapping[str, np.ndarray]) -> pd.DataFrame | None:
    """Per-class accuracy of the uniform-prior reference model: its zero-shot run (method ``zeroshot``) and its
    LA run (method ``LA``), on the same task and seeds; None where the study has no reference."""
    if study.reference is None:
        return None
    runs = study.index[(study.index.backbone == study.reference) & (study.index.model == "lift")]
    return per_class_table(runs, {study.reference: p_hat[study.reference]}, study.true_priors)


def excess_table(per_class: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """:func:`with_reference` per method: zero-shot against the reference's zero-shot, every fine-tuned method
    against the reference's LA run (the reference is fine-tuned with LA only)."""
    frames = []
    for method, part in per_class.groupby("method", sort=False):
        ref = reference[reference.method == ("zeroshot" if method == "zeroshot" else "LA")]
        frames.append(with_reference(part, ref))
    return pd.concat(frames, ignore_index=True)


def world_trends(study, p_hat: Mapping[str, np.ndarray] | None = None) -> pd.DataFrame:
    """Every trend row of notebook 01 for one world: ``trend_rho`` (per-class accuracy against P_S, P̂_P, π and
    the reference's P̂_P) and, with a reference model, ``excess_trend_rho`` (accuracy minus the reference's
    against the three pre-training priors); one row per run and prior, with ``metric``."""
    p_hat = estimated_priors(study) if p_hat is None else p_hat
    keys = [k for k in ("p_s", "p_hat", "pi", "p_ref") if k != "pi" or study.true_priors is not None]
    table = per_class_runs(study, p_hat)
    rows = [trend_rows(trend_statistics(table, keys)).assign(metric="trend_rho")]
    reference = reference_table(study, p_hat)
    if reference is not None:
        excess = excess_table(table, reference)
        rows.append(trend_rows(trend_statistics(excess, [k for k in keys if k != "p_s"], value="excess"))
                    .assign(metric="excess_trend_rho"))
    return pd.concat(rows, ignore_index=True)


def scratch_rows(study, p_hat: Mapping[str, np.ndarray] | None = None) -> pd.DataFrame:
    """The Fig. 9 control in one world: trend rows (``trend_rho``, control ``from scratch``) of the from-scratch
    runs against the first model's P̂_P and π, and their class-mean accuracy (metric ``accuracy``, group
    ``overall``) with chance (metric ``chance``); empty without from-scratch runs."""
    scratch = study.runs(model="scratch")
    if scratch.empty:
        return pd.DataFrame()
    p_hat = estimated_priors(study) if p_hat is None else p_hat
    table = per_class_table(scratch, p_hat, study.true_priors)
    keys = [k for k in ("p_hat", "pi") if k in table]
    trends = trend_rows(trend_statistics(table, keys), control="from scratch").assign(metric="trend_rho")
    acc = table.groupby(["backbone", "method", "seed"], as_index=False)["accuracy"].mean()
    acc = acc.rename(columns={"accuracy": "value"}).assign(group="overall",
                                                           metric="accuracy", control="from scratch")
    chance = acc.assign(value=100 / table["class"].nunique(), metric="chance")
    return pd.concat([trends, acc, chance], ignore_index=True)


def trend_rows(trends: pd.DataFrame, control: str = "") -> pd.DataFrame:
    """:func:`trend_statistics` as tidy result rows (group = the prior sorted by; ``control``: the control arm,
    e.g. ``from scratch``)."""
    return trends.rename(columns={"rho": "value", "key": "group"}).assign(control=control)


def summary_cells(frame: pd.DataFrame, index: str = "method", columns: str = "group", digits: int = 2) -> pd.DataFrame:
    """A display table of ``mean ± sd`` over seeds (and backbones) per (index, columns) cell; ``label`` (as
    index or columns) is the derived display label (``ltlib.results.display_label``)."""
    from ..results import format_mean_sd, summarize

    if "label" in (index, columns) and "label" not in frame:
        frame = with_labels(frame)
    s = summarize(frame.assign(world=""), by=(index, columns))
    s["cell"] = [format_mean_sd(m, sd, digits) for m, sd in zip(s["mean"], s["sd"])]
    return s.pivot(index=index, columns=columns, values="cell")


# ----------------------------------------------------------------------------- main tables (notebook 03)
def subset_scores(study, p_hat: Mapping[str, np.ndarray] | None = None, rules: Sequence[str] = RULES,
                  order: str = "independent") -> pd.DataFrame:
    """Tab. 5–8 and 11: every non-empty subset of the foundation models' LA runs (per seed), combined with
    each rule and scored by ``ltlib.stage2.run_stage2`` (the same stage 2 as ``python -m ltlib adjust``),
    P-groups from one prior for every row (``ltlib.stage2.PRIOR_POLICY`` over all the study's backbones).

    Returns:
        Stage 2's rows (``ltlib.stage2.RESULT_COLUMNS``) of every seed; :func:`stage2_rows` makes result rows.
    """
    runs = lift_runs(study, ["LA"], main_only=False)
    runs = runs[(runs.order == order) & (runs.seed == runs.task_seed)]
    p_hat = estimated_priors(study) if p_hat is None else p_hat
    priors = {b: p_hat[b] for b in study.backbones}
    options = Stage2Options(rules=tuple(rules), subsets=True)
    tables = [run_stage2(part.sort_values("backbone").run_dir.tolist(), options=options, priors=priors).table
              for _, part in runs.groupby("seed")]
    return pd.concat(tables, ignore_index=True)


def subset_table(study, p_hat: Mapping[str, np.ndarray] | None = None) -> pd.DataFrame:
    """:func:`stage2_rows` of :func:`subset_scores` (for :func:`over_worlds`)."""
    return stage2_rows(subset_scores(study, p_hat))


def gla_posthoc_scores(study, p_hat: Mapping[str, np.ndarray] | None = None) -> pd.DataFrame:
    """GLA post-hoc rows of :func:`method_scores` of the LA runs alone."""
    scores = method_scores(study, p_hat, methods=("LA",))
    return scores[scores.method == "GLA post-hoc"].reset_index(drop=True)


def world_cost(study) -> pd.DataFrame:
    """:func:`cost_rows` of :func:`inference_cost` measured on the study's own mini backbones (empty at full
    scale, where the performance page measures ViT-B/16)."""
    if study.world is None:
        return pd.DataFrame()
    backbones = [study.world.backbone(b) for b in study.backbones]
    return cost_rows(inference_cost(backbones, backbones[0].image_size), study.backbones)


def cost_table(rows: pd.DataFrame) -> pd.DataFrame:
    """:func:`world_cost` rows back as :func:`inference_cost`'s table (mean over worlds), for
    ``ltlib.book.plots.cost_vs_m``."""
    from ..flops import PAPER_GFLOPS

    table = rows.pivot_table(index="n_models", columns="metric", values="value", aggfunc="mean").reset_index()
    return table.assign(paper_gflops=table.n_models.map(lambda m: PAPER_GFLOPS.get(m, float("nan"))))


def stage2_rows(table: pd.DataFrame, cells: bool = False, **keys: str) -> pd.DataFrame:
    """Stage 2's rows as the book's result rows: method, backbones, n_models, rule, prior_source, seed, group
    (:func:`group_name`), value, and ``keys`` (e.g. ``scenario``, ``control``) on every row.

    A single model's rows are kept under the table's first rule only: every rule leaves one model's argmax
    unchanged. D×P cells are kept only with ``cells``.
    """
    first = table["rule"].iloc[0] if len(table) else ""
    table = table[(table.num_models > 1) | (table.rule == first)]
    groups = [group_name(m, d, p) for m, d, p in zip(table.metric, table.d_group, table.p_group)]
    out = table.assign(group=groups, backbones=table.combination, n_models=table.num_models, **keys)
    out = out[out.group.notna() & (cells or ~out.group.str.contains("×", na=False))]
    columns = ["method", "backbones", "n_models", "rule", "prior_source", "seed", "group", "value", *keys]
    return out[columns].reset_index(drop=True)


def headline_gain(rows: pd.DataFrame, rule: str = RULES[0]) -> dict[str, float]:
    """The page's headline from :func:`stage2_rows`: overall accuracy of the combination of every model with
    ``rule`` (``acc_method``, mean over seeds), of the single models (``acc_lift``, mean over backbones × seeds)
    and their difference (``gain_overall``); the report gives its interval."""
    overall = rows[(rows.group == "overall") & (rows.rule == rule)]
    method = overall.loc[overall.n_models == overall.n_models.max(), "value"].mean()
    single = overall.loc[overall.n_models == 1, "value"].mean()
    return {"acc_method": float(method), "acc_lift": float(single), "gain_overall": float(method - single)}


def combination_rows(run_dirs: Sequence[str], rule: str = RULES[0], **keys: str) -> pd.DataFrame:
    """:func:`stage2_rows` of each run alone and of all ``run_dirs`` combined with ``rule`` (no P-groups)."""
    return stage2_rows(run_stage2(sorted(map(str, run_dirs)), options=Stage2Options(rules=(rule,))).table, **keys)


SAME_BACKBONE, DIFFERENT_BACKBONES = "same backbone, independently pre-trained copies", "different backbones"


def same_backbone_control(study) -> pd.DataFrame:
    """The control the paper lacks: per seed, the backdoor adjustment (logit sum) over three copies of ONE
    foundation model pre-trained independently (same corpus recipe: prior and part bias; other images and
    initialisation; ``ltlib.miniworld.config.copy_name``), beside the one over the different models. Tidy
    result rows (:func:`stage2_rows`), ``control`` = :data:`SAME_BACKBONE` or :data:`DIFFERENT_BACKBONES`."""
    index = study.index
    la = index[(index.model == "lift") & (index.method == "LA") & (index.order == "independent")
               & (index.variant == "") & (index.seed == index.task_seed)]
    if study.scale == "mini":
        from ..miniworld.experiments import MAIN_RECIPE
        la = la[la.recipe == MAIN_RECIPE]
    copies = set(la.backbone[la.backbone.map(lambda b: split_copy_name(b)[1] > 0)])
    same_family = copies | {split_copy_name(b)[0] for b in copies}
    frames = []
    for seed, part in la.groupby("seed"):
        mixed = part[part.backbone.isin(study.backbones)]
        same = part[part.backbone.isin(same_family)]
        for name, members in ((DIFFERENT_BACKBONES, mixed), (SAME_BACKBONE, same)):
            if len(members) == len(study.backbones) > 1:
                rows = combination_rows(members.run_dir.tolist(), control=name)
                frames.append(rows[rows.n_models == len(members)].assign(seed=seed))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def factorial_rows(study) -> pd.DataFrame:
    """The factorial page: per factor (``ltlib.miniworld.experiments.FACTORS``) and fine-tuning seed, the backdoor
    adjustment (logit sum) of the triple of LA models that differ only in that factor, beside each member alone.
    Tidy result rows (:func:`stage2_rows`), ``control`` = the factor; mini scale only."""
    from ..miniworld.experiments import MAIN_RECIPE, factorial_triples

    index = study.index
    la = index[(index.model == "lift") & (index.method == "LA") & (index.order == "independent")
               & (index.variant == "") & (index.seed == index.task_seed) & (index.recipe == MAIN_RECIPE)]
    frames = []
    for factor, members in factorial_triples(study.backbones, study.world_seed).items():
        for seed, part in la[la.backbone.isin(members)].groupby("seed"):
            if set(part.backbone) == set(members):
                frames.append(combination_rows(part.run_dir.tolist(), control=factor).assign(seed=seed))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def factorial_gains(rows: pd.DataFrame) -> pd.DataFrame:
    """From :func:`factorial_rows` (over worlds): per world and factor, the members' mean and best overall accuracy,
    the triple's (logit sum), and its gain over the mean and over the best member (accuracy points)."""
    from ..miniworld.experiments import FACTORS

    overall = rows[rows.group == "overall"]
    keys = ["world_seed", "control", "seed"]
    single = overall[overall.n_models == 1].groupby(keys)["value"]
    triple = overall[overall.n_models == 3].groupby(keys)["value"].mean()
    table = pd.DataFrame({"members_mean": single.mean(), "members_best": single.max(), "triple": triple})
    table = table.assign(gain_over_mean=table.triple - table.members_mean,
                         gain_over_best=table.triple - table.members_best)
    table = table.groupby(["world_seed", "control"]).mean().reset_index().rename(columns={"control": "factor"})
    rank = table.factor.map({f: i for i, f in enumerate(FACTORS)})
    return table.assign(rank=rank).sort_values(["world_seed", "rank"]).drop(columns="rank").reset_index(drop=True)


def factorial_summary(gains: pd.DataFrame) -> pd.DataFrame:
    """Per factor, from :func:`factorial_gains`: mean [95 % CI] over worlds (Student t, worlds as replicates) of
    the members' mean accuracy and of the triple's gain over the mean and over the best member."""
    from ..results import mean_ci

    rows = []
    for factor, part in gains.groupby("factor", sort=False):
        row = {"factor": factor, "worlds": len(part)}
        for column in ("members_mean", "gain_over_mean", "gain_over_best"):
            mean, _, low, high, _ = mean_ci(part[column].to_numpy(dtype=float))
            row[column] = f"{mean:+.1f} [{low:+.1f}, {high:+.1f}]" if column != "members_mean" else \
                f"{mean:.1f} [{low:.1f}, {high:.1f}]"
        rows.append(row)
    return pd.DataFrame(rows).set_index("factor")


def factorial_members(study) -> pd.DataFrame:
    """The factorial's triples in one world: per factor and member, the member's part bias P_m(C = head) and the
    Spearman correlation of its prior π_m with the control model's (1: the same order)."""
    from ..miniworld.experiments import factorial_triples

    world, rows = study.world, []
    for factor, members in factorial_triples(study.backbones, study.world_seed).items():
        base = np.log(world.true_prior(members[0]))
        for member in members:
            rho = stats.spearmanr(np.log(world.true_prior(member)), base).statistic
            rows.append({"factor": factor, "member": member, "part_bias": world.part_bias(member),
                         "prior_rho_vs_first": round(float(rho), 2)})
    return pd.DataFrame(rows)


def scenario_scores(study, orders: Sequence[str] = ("consistent", "reverse", "balanced", "independent")
                    ) -> pd.DataFrame:
    """Tab. 13: the backdoor adjustment (all models, logit sum) and each single model on downstream data
    whose head classes are the pre-training head (consistent), tail (reverse), or balanced.
    Tidy result rows (:func:`stage2_rows`) with ``scenario`` = the order."""
    runs = lift_runs(study, ["LA"], main_only=False)
    runs = runs[runs.order.isin(orders) & (runs.seed == runs.task_seed)]
    frames = [combination_rows(part.run_dir.tolist(), scenario=order) for (order, _), part in
              runs.groupby(["order", "seed"])]
    return pd.concat(frames, ignore_index=True)


JOINT, JOINT_MATCHED, POSTHOC = ("jointly trained", "jointly trained, matched scale",
                                 "post-hoc (separately trained)")


def joint_vs_posthoc(study) -> pd.DataFrame:
    """The rebuttal's comparison: the ensemble trained jointly (one LA loss on the summed logits) vs the
    post-hoc sum of separately trained models, per seed. The joint run at the recipe's cosine scale trains
    on M times a single model's logit scale; the ``matched scale`` variant divides each member's scale by M.
    Tidy result rows, ``control`` = :data:`JOINT`, :data:`JOINT_MATCHED` or :data:`POSTHOC`."""
    joint = study.runs(model="joint", method="LA")
    runs = lift_runs(study, ["LA"])
    frames = []
    for seed, part in joint.groupby("seed"):
        separate = runs[(runs.seed == seed) & (runs.task_seed == part.task_seed.iloc[0])]
        rows = combination_rows(separate.run_dir.tolist(), control=POSTHOC)
        frames.append(rows[rows.n_models == len(separate)])
        for r in part.itertuples():
            name = JOINT_MATCHED if r.variant else JOINT
            together = combination_rows([r.run_dir], control=name)
            frames.append(together.assign(n_models=len(separate), backbones=backbone_key(separate.backbone), rule=""))
    return pd.concat(frames, ignore_index=True)


def over_worlds(studies: Sequence, fn, *args, **kwargs) -> pd.DataFrame:
    """``fn(study, *args, **kwargs)`` of every world's study, concatenated, each row with its ``world_seed``
    (the replicate of the report's intervals)."""
    frames = [fn(study, *args, **kwargs).assign(world_seed=study.world_seed) for study in studies]
    return pd.concat(frames, ignore_index=True)


def inference_cost(backbones: Sequence, image_size: int, batch: int = 256, repeats: int = 3) -> pd.DataFrame:
    """Measured cost of the backdoor adjustment with M = 1 … len(backbones) models (``ltlib.flops``): GFLOPs
    per image and images/s (best of ``repeats``, this process's threads), beside the paper's ViT-B/16 GFLOPs.
    ``backbones`` are ``ltlib.backbones.Backbone`` objects. Columns: n_models, gflops_per_image,
    images_per_second, paper_gflops."""
    from ..flops import PAPER_GFLOPS, ensemble_cost

    images = torch.randn(batch, 3, image_size, image_size)
    rows = [{"n_models": m, **ensemble_cost([b.image_features for b in backbones[:m]], images, repeats),
             "paper_gflops": PAPER_GFLOPS.get(m, float("nan"))} for m in range(1, len(backbones) + 1)]
    return pd.DataFrame(rows)


def cost_rows(cost: pd.DataFrame, backbones: Sequence[str]) -> pd.DataFrame:
    """:func:`inference_cost`'s measurements as tidy result rows (method ``backdoor adjustment``, group
    ``inference``, the first ``n_models`` backbones)."""
    rows = cost.melt(id_vars="n_models", value_vars=["gflops_per_image", "images_per_second"], var_name="metric")
    return rows.assign(method="backdoor adjustment", group="inference", rule=RULES[0],
                       backbones=[backbone_key(list(backbones[:m])) for m in rows.n_models])
