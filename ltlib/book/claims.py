"""How each claim of the registry (``configs/claims/registry.yaml``) is measured from the book's result rows:
one function per claim key, returning one value per independent world (``world_seed``), with models and
fine-tuning seeds averaged inside a world first.

A measurement takes the rows (``ltlib.results.load_tables``), the prior source (``""``, ``estimate``,
``truth``, ``reference``) and the calibration (``""`` or ``val``, ``ltlib.book.measures``) and returns a
``pd.Series`` indexed by world seed (empty when the rows it needs do not exist). Metric names are those the
notebooks write: ``00_miniworld`` (contrast rows of the reliance claims), ``01_imbalance`` (trend_rho,
excess_trend_rho, spearman, group_accuracy, accuracy, knn_accuracy), ``02_confounder`` (contrast rows keyed
by claim), ``03_main_tables`` (accuracy, scenario_accuracy, gflops_per_image) and ``08_factorial`` (accuracy of
each triple and its members, ``control`` = the factor).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from .analysis import JOINT_MATCHED, POSTHOC, SAME_BACKBONE, DIFFERENT_BACKBONES, VPT, factorial_gains
from ..miniworld.experiments import FACTORS
from ..results import select

NB00, NB01, NB02, NB03, NB08 = "00_miniworld", "01_imbalance", "02_confounder", "03_main_tables", "08_factorial"
RULE = "logit_sum"  # the official code's rule: the method's claims are about it
PRIOR_COLUMN = {"": "p_hat", "estimate": "p_hat", "truth": "pi", "reference": "p_ref"}
Measure = Callable[[pd.DataFrame, str, str], pd.Series]
EMPTY = pd.Series(dtype=float)


def per_world(rows: pd.DataFrame) -> pd.Series:
    """Mean ``value`` per world (models and fine-tuning seeds averaged inside the world)."""
    return rows.groupby("world_seed")["value"].mean() if len(rows) else EMPTY


def _paired(a: pd.DataFrame, b: pd.DataFrame, by: tuple[str, ...] = ("world_seed", "backbones", "seed")) -> pd.Series:
    """Per world, the mean over pairs (matched on ``by``) of a − b."""
    left, right = a.groupby(list(by))["value"].mean(), b.groupby(list(by))["value"].mean()
    diff = (left - right).dropna()
    return diff.groupby(level="world_seed").mean() if len(diff) else EMPTY


# ----------------------------------------------------------------------------- notebook 01: trends and priors
def _trend(metric: str, method: str, key: str | None = None, control: str = "") -> Measure:
    def measure(rows: pd.DataFrame, prior: str, calibration: str) -> pd.Series:
        group = key or PRIOR_COLUMN[prior]
        return per_world(select(rows, notebook=NB01, metric=metric, method=method, group=group, control=control))
    return measure


def _trend_difference(rows: pd.DataFrame, prior: str, calibration: str) -> pd.Series:
    trend = select(rows, notebook=NB01, metric="trend_rho", group="p_s", control="")
    return _paired(select(trend, method="CE"), select(trend, method="LA"))


def _prior_estimate(rows: pd.DataFrame, prior: str, calibration: str) -> pd.Series:
    rho = select(rows, notebook=NB01, metric="spearman", method="gla-exact")
    return _paired(select(rho, group="prior"), select(rho, group="reference floor"))


# ----------------------------------------------------------------------------- group-wise (ltlib.book.measures)
def _groups(rows: pd.DataFrame, method: str, prior: str, calibration: str, n_models: int | None = 1) -> pd.DataFrame:
    keys = {"notebook": NB01, "metric": "group_accuracy", "method": method, "prior_source": prior or "estimate",
            "calibration": calibration}
    picked = select(rows, **keys)
    return picked if n_models is None else picked[picked.n_models == n_models]


def _cells(frame: pd.DataFrame) -> pd.DataFrame:
    """world × group table of means (models and seeds averaged inside each world)."""
    return frame.pivot_table(index="world_seed", columns="group", values="value", aggfunc="mean")


def _parameter_vs_data(rows: pd.DataFrame, prior: str, calibration: str) -> pd.Series:
    g = _cells(_groups(rows, "LA", prior, calibration))
    needed = {"P-many", "P-few", "D-many", "D-few"}
    return ((g["P-many"] - g["P-few"]) - (g["D-many"] - g["D-few"])).dropna() if needed <= set(g) else EMPTY


def _dp_worst(rows: pd.DataFrame, prior: str, calibration: str) -> pd.Series:
    g = _cells(_groups(rows, "LA", prior, calibration))
    cells = [c for c in g.columns if "×" in c]
    if "D-few×P-few" not in cells:
        return EMPTY
    others = g[[c for c in cells if c != "D-few×P-few"]].min(axis=1, skipna=True)
    return (others - g["D-few×P-few"]).dropna()


def _la_hurts_pfew(rows: pd.DataFrame, prior: str, calibration: str) -> pd.Series:
    cell = "D-many×P-few"
    la, ce = _cells(_groups(rows, "LA", prior, calibration)), _cells(_groups(rows, "CE", prior, calibration))
    return (la[cell] - ce[cell]).dropna() if cell in la and cell in ce else EMPTY


def _zeroshot_gap(rows: pd.DataFrame, prior: str, calibration: str) -> pd.Series:
    g = _cells(_groups(rows, "zeroshot", "estimate", ""))
    return (g["D-few"] - g["D-many"]).dropna() if {"D-few", "D-many"} <= set(g) else EMPTY


def _gains(rows: pd.DataFrame, prior: str, calibration: str) -> pd.DataFrame:
    """world × group: the combination's accuracy minus the mean single LA model's, both grouped by the
    combination's prior (source ``<prior>:joint``; D-groups do not depend on it)."""
    source = f"{prior or 'estimate'}:joint"
    la = _groups(rows, "LA", source, calibration, n_models=None)
    combo, single = la[la.n_models == la.n_models.max()], la[la.n_models == 1]
    if combo.empty or combo.n_models.iloc[0] < 2:
        return pd.DataFrame()
    return _cells(combo) - _cells(single)


def _gain_contrast(a: str, b: str) -> Measure:
    def measure(rows: pd.DataFrame, prior: str, calibration: str) -> pd.Series:
        g = _gains(rows, prior, calibration)
        return (g[a] - g[b]).dropna() if a in g and b in g else EMPTY
    return measure


def _all_cells(rows: pd.DataFrame, prior: str, calibration: str) -> pd.Series:
    g = _gains(rows, prior, calibration)
    cells = [c for c in g.columns if "×" in c]
    return g[cells].min(axis=1, skipna=True).dropna() if cells else EMPTY


# ----------------------------------------------------------------------------- Tab. 3, Tab. 4, Fig. 9
def _method_gap(notebook: str, a: str, b: str, metric: str = "accuracy", group: str = "overall") -> Measure:
    def measure(rows: pd.DataFrame, prior: str, calibration: str) -> pd.Series:
        picked = select(rows, notebook=notebook, metric=metric, group=group, control="", n_models=1)
        return _paired(select(picked, method=a), select(picked, method=b))
    return measure


def scratch_learns(rows: pd.DataFrame) -> tuple[bool, str]:
    """The from-scratch control's precondition: class-mean accuracy ≥ 5 × chance in every world."""
    scratch = select(rows, notebook=NB01, control="from scratch")
    acc, chance = per_world(select(scratch, metric="accuracy")), per_world(select(scratch, metric="chance"))
    ratio = (acc / chance).dropna()
    if ratio.empty:
        return False, "no from-scratch runs"
    return bool((ratio >= 5).all()), f"accuracy / chance {ratio.min():.1f}–{ratio.max():.1f} over worlds"


# ----------------------------------------------------------------------------- notebook 03: the method
def _stage2(rows: pd.DataFrame, **keys) -> pd.DataFrame:
    return select(rows, notebook=NB03, metric="accuracy", method="LA", control="", scenario="", group="overall",
                  **keys)


def _by_m(rows: pd.DataFrame, rule: str = RULE) -> pd.DataFrame:
    """world × M: mean overall accuracy of every subset of M models (M = 1 under its only rule)."""
    acc = _stage2(rows)
    acc = acc[(acc.n_models == 1) | (acc.rule == rule)]
    return acc.pivot_table(index="world_seed", columns="n_models", values="value", aggfunc="mean")


def _combination(acc: pd.DataFrame) -> pd.Series:
    """Per world, the accuracy of the combination of every model (the largest M > 1) under :data:`RULE`."""
    return per_world(acc[(acc.n_models == acc.n_models.max()) & (acc.rule == RULE) & (acc.n_models > 1)])


def _method_minus(single: str) -> Measure:
    def measure(rows: pd.DataFrame, prior: str, calibration: str) -> pd.Series:
        acc = _stage2(rows)
        combo = _combination(acc)
        singles = acc[acc.n_models == 1].groupby(["world_seed", "backbones"])["value"].mean()
        if singles.empty:
            return EMPTY
        base = singles.groupby(level="world_seed").agg("mean" if single == "mean" else "max")
        return (combo - base).dropna()
    return measure


def _method_minus_gla(rows: pd.DataFrame, prior: str, calibration: str) -> pd.Series:
    combo = _combination(_stage2(rows))
    gla = select(rows, notebook=NB03, metric="accuracy", method="GLA post-hoc", group="overall")
    best = gla.groupby(["world_seed", "backbones"])["value"].mean().groupby(level="world_seed").max()
    return (combo - best).dropna() if len(best) else EMPTY


def _tab8_monotone(rows: pd.DataFrame, prior: str, calibration: str) -> pd.Series:
    by_m = _by_m(rows)
    if by_m.shape[1] < 2:
        return EMPTY
    steps = by_m.diff(axis=1).iloc[:, 1:]
    return steps.min(axis=1).dropna()


def _rule_equivalence(rows: pd.DataFrame, prior: str, calibration: str) -> pd.Series:
    acc = _stage2(rows)
    acc = acc[acc.n_models == acc.n_models.max()]
    return _paired(select(acc, rule="prob_mean"), select(acc, rule=RULE), ("world_seed", "seed"))


def _control_gap(a: str, b: str) -> Measure:
    def measure(rows: pd.DataFrame, prior: str, calibration: str) -> pd.Series:
        picked = select(rows, notebook=NB03, metric="accuracy", group="overall")
        return _paired(select(picked, control=a), select(picked, control=b), ("world_seed", "seed"))
    return measure


def _scenario(better: str, *worse: str) -> Measure:
    def measure(rows: pd.DataFrame, prior: str, calibration: str) -> pd.Series:
        acc = select(rows, notebook=NB03, metric="scenario_accuracy", rule=RULE, control="", group="overall")
        acc = acc[acc.n_models == acc.n_models.max()] if len(acc) else acc
        table = acc.pivot_table(index="world_seed", columns="scenario", values="value", aggfunc="mean")
        if better not in table or not set(worse) <= set(table):
            return EMPTY
        return (table[better] - table[list(worse)].max(axis=1)).dropna()
    return measure


def _cost_ratio(rows: pd.DataFrame, prior: str, calibration: str) -> pd.Series:
    cost = select(rows, notebook=NB03, metric="gflops_per_image")
    table = cost.pivot_table(index="world_seed", columns="n_models", values="value", aggfunc="mean")
    return (table[3] / table[1] - 3.0).dropna() if {1, 3} <= set(table) else EMPTY


def _factorial(a: str, b: str) -> Measure:
    """Per world: the ensemble gain (triple minus its members' mean, overall accuracy, logit sum) of the triple
    that differs only in factor ``a`` minus that of the triple that differs only in ``b`` (notebook 08)."""
    def measure(rows: pd.DataFrame, prior: str, calibration: str) -> pd.Series:
        acc = select(rows, notebook=NB08, metric="accuracy", group="overall")
        acc = acc[(acc.n_models == 1) | (acc.rule == RULE)]
        if acc.empty:
            return EMPTY
        table = factorial_gains(acc).pivot(index="world_seed", columns="factor", values="gain_over_mean")
        if a not in table or b not in table:
            return EMPTY
        return (table[a] - table[b]).dropna()
    return measure


def _contrast(notebook: str, key: str) -> Measure:
    def measure(rows: pd.DataFrame, prior: str, calibration: str) -> pd.Series:
        return per_world(select(rows, notebook=notebook, metric="contrast", group=key))
    return measure


MEASURES: dict[str, Measure] = {
    "prior_estimate": _prior_estimate,
    "zeroshot_imbalance": _trend("excess_trend_rho", "zeroshot"),
    "zeroshot_dfew_not_worse": _zeroshot_gap,
    "ce_follows_ps": _trend("trend_rho", "CE", "p_s"),
    "la_flattens_ps": _trend_difference,
    "la_no_ps_trend": _trend("trend_rho", "LA", "p_s"),
    "la_trend_prior": _trend("excess_trend_rho", "LA"),
    "zeroshot_ce_trend_prior": _trend("excess_trend_rho", "CE"),
    "vpt_la_trend_prior": _trend("excess_trend_rho", VPT),
    "parameter_over_data": _parameter_vs_data,
    "dp_worst_cell": _dp_worst,
    "la_hurts_pfew_in_dmany": _la_hurts_pfew,
    "glatrain_over_la": _method_gap(NB01, "GLA-Train", "LA"),
    "glaposthoc_over_glatrain": _method_gap(NB01, "GLA post-hoc", "GLA-Train"),
    "glatrain_trend": _trend("excess_trend_rho", "GLA-Train"),
    "knn_by_dgroup": _method_gap(NB01, "LA", "pre-trained", metric="knn_accuracy", group="D-few"),
    "scratch_no_trend": _trend("trend_rho", "LA", control="from scratch"),
    "reliance_follows_part_bias": _contrast(NB00, "reliance_follows_part_bias"),
    "combination_covers_more": _contrast(NB00, "combination_covers_more"),
    "method_beats_lift_mean": _method_minus("mean"),
    "method_beats_best_single": _method_minus("best"),
    "method_beats_gla_posthoc": _method_minus_gla,
    "method_gains_all_cells": _all_cells,
    "method_gain_most_pfew": _gain_contrast("P-few", "P-many"),
    "tab8_monotone": _tab8_monotone,
    "gain_largest_on_few": _gain_contrast("D-few", "D-many"),
    "rule_equivalence": _rule_equivalence,
    "backbones_beat_seeds": _control_gap(DIFFERENT_BACKBONES, SAME_BACKBONE),
    "reverse_over_consistent": _scenario("reverse", "consistent"),
    "balance_best": _scenario("balanced", "consistent", "reverse"),
    "posthoc_beats_joint": _control_gap(POSTHOC, JOINT_MATCHED),
    "cost_linear": _cost_ratio,
    "factorial_part_over_prior": _factorial(FACTORS[2], FACTORS[1]),  # part bias − prior order
    "factorial_prior_over_seed": _factorial(FACTORS[1], FACTORS[0]),  # prior order − pre-training seed
    **{key: _contrast(NB02, key) for key in ("fig12_b_gap", "fig12_a_no_gap", "fig12_gap_is_pc_shift",
                                             "proxy_closes_confounding_gap", "proxy_beats_same_bias_proxy")},
}
# Preconditions (the registry's ``requires``): a claim whose precondition fails is uninformative.
REQUIREMENTS: dict[str, Callable[[pd.DataFrame], tuple[bool, str]]] = {"scratch_no_trend": scratch_learns}


def measure(key: str, rows: pd.DataFrame, prior: str = "", calibration: str = "") -> np.ndarray:
    """One value per world of claim ``key`` (NaN-free, ordered by world seed); empty when not measured."""
    values = MEASURES[key](rows, prior, calibration) if key in MEASURES else EMPTY
    return values.sort_index().to_numpy(dtype=float) if len(values) else np.array([])
