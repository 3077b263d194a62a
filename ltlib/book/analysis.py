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
from ..priors import calibrate_temperature, fit_prior, prior_agreement
from ..results import backbone_key, with_labels
from ..runs import load_run
from ..stage2 import (ALL, Stage2Options, combined_predictions, run_stage2, score_rows, stage_prior,
                      task_thresholds)

SORT_KEYS = {"p_s": "downstream prior P_S", "p_hat": "estimated pre-training prior P̂_P",
             "pi": "true pre-training prior π"}


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
def zero_shot_prior(run_dir: str | Path, solver: str = "exact", split: str = "val"):
    """GLA's fit of P̂_P on a zero-shot run's class-balanced split (``ltlib.priors.PriorFit``)."""
    out = outputs(run_dir, split)
    return fit_prior(out.logits, out.targets, solver=solver)


# ----------------------------------------------------------------------------- per-class trends (Fig. 3, Fig. 9)
def per_class_table(index: pd.DataFrame, p_hat: Mapping[str, np.ndarray],
                    pi: Mapping[str, np.ndarray] | None = None, split: str = "test") -> pd.DataFrame:
    """One row per (run, class): accuracy with the class's P_S, P̂_P and (when known) true π.

    Args:
        index: run index (columns backbone, method, model, seed, run_dir, …).
        p_hat: backbone → P̂_P [C] (for an ensemble or a from-scratch model, pass the prior to sort by
            under the run's backbone name).
        pi: backbone → true π [C], or None at full scale.
    """
    frames = []
    for row in index.itertuples(index=False):
        out, counts = outputs(row.run_dir, split), class_counts(row.run_dir)
        frame = pd.DataFrame({"class": np.arange(len(counts)), "n_train": counts, "p_s": counts / counts.sum(),
                              "p_hat": p_hat[row.backbone],
                              "accuracy": per_class_accuracy(out.logits.argmax(1), out.targets, len(counts))})
        if pi is not None:
            frame["pi"] = pi[row.backbone]
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
def prior_fits(study, solvers: Sequence[str] = ("exact", "reference")) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    """GLA's P̂_P of every foundation model (from its zero-shot run) with each solver.

    Returns:
        (backbone → exact P̂_P, a tidy frame: backbone, method = ``gla-<solver>``, group ``prior``,
        metric, value) with the temperature, objective and, in the mini world, the agreement with π.
    """
    rows, exact = [], {}
    for b in study.backbones:
        run = study.runs(backbone=b, method="zeroshot").iloc[0].run_dir
        for solver in solvers:
            fit = zero_shot_prior(run, solver)
            exact.setdefault(b, fit.prior)
            values = {"temperature": fit.temperature, "objective": fit.objective}
            if study.true_priors is not None:
                values |= prior_agreement(fit.prior, study.true_priors[b])
            rows += [{"backbone": b, "method": f"gla-{solver}", "group": "prior", "metric": k, "value": v}
                     for k, v in values.items()]
    return exact, pd.DataFrame(rows)


def lift_runs(study, methods: Sequence[str], main_only: bool = True) -> pd.DataFrame:
    """The study's LIFT runs of the foundation models for ``methods``; with ``main_only``, only the main
    setting (independent class order, training seed = task seed), not the controls' extra runs."""
    index = study.index
    runs = index[(index.model == "lift") & index.backbone.isin(study.backbones) & index.method.isin(methods)]
    if main_only:
        runs = runs[(runs.order == "independent") & (runs.seed == runs.task_seed)]
    return runs


def dp_matrices(study, p_hat: Mapping[str, np.ndarray], methods: Sequence[str] = ("CE", "LA")
                ) -> dict[str, tuple[dict, pd.DataFrame]]:
    """Fig. 2: mean D×P matrix of each single-model method (each run's P-groups from its own model's P̂_P) and
    of the backdoor adjustment of the LA runs (M = all backbones, per seed; P-groups from the geometric mean
    of the members' P̂_P, ``ltlib.stage2.PRIOR_POLICY``), all scored by ``ltlib.stage2.run_stage2``.

    Returns:
        display label → (the result-table columns of its rows, the mean matrix).
    """
    out, everyone = {}, backbone_key(study.backbones)
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


def _mean_frames(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    return sum(frames) / len(frames)


def method_scores(study, p_hat: Mapping[str, np.ndarray], methods: Sequence[str] = ("CE", "LA", "GLA-Train"),
                  posthoc: bool = True) -> pd.DataFrame:
    """Tab. 3: accuracy overall and per D-group of every run of ``methods`` and, with ``posthoc``, of
    GLA's post-hoc combination of each LA run with its zero-shot run. Tidy: method, backbone, seed, group, value."""
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
def subset_scores(study, p_hat: Mapping[str, np.ndarray], rules: Sequence[str] = RULES,
                  order: str = "independent") -> pd.DataFrame:
    """Tab. 5–8 and 11: every non-empty subset of the foundation models' LA runs (per seed), combined with
    each rule and scored by ``ltlib.stage2.run_stage2`` (the same stage 2 as ``python -m ltlib adjust``),
    P-groups from one prior for every row (``ltlib.stage2.PRIOR_POLICY`` over all the study's backbones).

    Returns:
        Stage 2's rows (``ltlib.stage2.RESULT_COLUMNS``) of every seed; :func:`stage2_rows` makes result rows.
    """
    runs = lift_runs(study, ["LA"], main_only=False)
    runs = runs[(runs.order == order) & (runs.seed == runs.task_seed)]
    priors = {b: p_hat[b] for b in study.backbones}
    options = Stage2Options(rules=tuple(rules), subsets=True)
    tables = [run_stage2(part.sort_values("backbone").run_dir.tolist(), options=options, priors=priors).table
              for _, part in runs.groupby("seed")]
    return pd.concat(tables, ignore_index=True)


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


def same_backbone_control(study) -> pd.DataFrame:
    """The control the paper lacks: per seed, an ensemble of LA runs of ONE backbone trained with
    different seeds on the same task (logit sum), beside the ensemble of the different backbones.
    Tidy result rows (:func:`stage2_rows`) of the ensembles, ``control`` = ``different backbones`` or
    ``same backbone, different seeds`` and ``seed`` = the task seed."""
    runs = lift_runs(study, ["LA"], main_only=False)
    runs = runs[runs.order == "independent"]
    frames = []
    for task_seed, part in runs.groupby("task_seed"):
        mixed = part[part.seed == task_seed]
        repeats = part.groupby("backbone").filter(lambda g: len(g) > 1)
        for name, members in (("different backbones", mixed), ("same backbone, different seeds", repeats)):
            if len(members) < 2:
                continue
            rows = combination_rows(members.run_dir.tolist(), control=name)
            frames.append(rows[rows.n_models == len(members)].assign(seed=task_seed))
    return pd.concat(frames, ignore_index=True)


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


def joint_vs_posthoc(study) -> pd.DataFrame:
    """The rebuttal's comparison: the ensemble trained jointly (one LA loss on the summed logits) vs the
    post-hoc sum of separately trained models, per seed. Tidy result rows, ``control`` = ``jointly trained``
    or ``post-hoc (separately trained)``."""
    joint = study.runs(model="joint", method="LA")
    runs = lift_runs(study, ["LA"])
    frames = []
    for r in joint.itertuples():
        separate = runs[(runs.seed == r.seed) & (runs.task_seed == r.task_seed)]
        rows = combination_rows(separate.run_dir.tolist(), control="post-hoc (separately trained)")
        frames.append(rows[rows.n_models == len(separate)])
        together = combination_rows([r.run_dir], control="jointly trained")
        frames.append(together.assign(n_models=len(separate), backbones=backbone_key(separate.backbone), rule=""))
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
