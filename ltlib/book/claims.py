"""The paper's claims as measurements over the book's result tables (see ``ltlib.book.report``).

Metric names are those the notebooks write: ``01_imbalance`` (trend_rho, excess_trend_rho, prior
agreement, dp_accuracy, accuracy, knn_accuracy), ``02_confounder`` (contrast: the per-seed paired
differences of ``ltlib.miniworld.confounding``) and ``03_main_tables`` (accuracy of subsets and controls,
scenario_accuracy, gflops_per_image). Rows are selected by columns only (``ltlib.results.COLUMNS``: the
number of models, the rule, the scenario, the control arm), never by display text.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .report import Claim, paired_difference, per_replicate, select

NB01, NB02, NB03 = "01_imbalance", "02_confounder", "03_main_tables"
RULE = "logit_sum"  # the official code's rule: the method's claims are about it
MAIN = {"control": "", "scenario": ""}  # the main experiment: no control arm, the independent class order


def _values(notebook: str, **keys):
    keys = {"control": "", **keys}
    def values(rows: pd.DataFrame) -> np.ndarray:
        return per_replicate(select(rows, notebook=notebook, **keys)).to_numpy()
    return values


def _difference(notebook: str, a: dict, b: dict, by=("backbones", "seed")):
    a, b = {"control": "", **a}, {"control": "", **b}

    def values(rows: pd.DataFrame) -> np.ndarray:
        return paired_difference(select(rows, notebook=notebook, **a), select(rows, notebook=notebook, **b), by)
    return values


def _all_models(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows of the combination of every model (M = 3 in the book), not the subsets of Tab. 8."""
    return rows[rows["n_models"] == rows["n_models"].max()] if len(rows) else rows


def _stage2(rows: pd.DataFrame, **keys) -> pd.DataFrame:
    """Notebook 03's stage-2 rows of the main experiment combined with :data:`RULE`."""
    return select(rows, notebook=NB03, metric="accuracy", method="LA", rule=RULE, **MAIN, **keys)


def _method_minus_lift(rows: pd.DataFrame) -> np.ndarray:
    acc = _stage2(rows, group="overall")
    return paired_difference(_all_models(acc[acc.n_models > 1]), select(acc, n_models=1), ("seed",))


def _parameter_vs_data(rows: pd.DataFrame) -> np.ndarray:
    single = _stage2(rows, n_models=1)

    def group(name: str) -> pd.Series:
        return per_replicate(select(single, group=name))

    return ((group("P-many") - group("P-few")) - (group("D-many") - group("D-few"))).dropna().to_numpy()


def _few_gain_over_many(rows: pd.DataFrame) -> np.ndarray:
    acc = _stage2(rows)

    def gain(group: str) -> pd.Series:
        method = per_replicate(_all_models(select(acc[acc.n_models > 1], group=group)), ("seed",))
        single = per_replicate(select(acc, n_models=1, group=group), ("seed",))
        return method - single
    return (gain("D-few") - gain("D-many")).dropna().to_numpy()


def _scenario(rows: pd.DataFrame, better: str, worse: tuple[str, ...]) -> np.ndarray:
    acc = select(rows, notebook=NB03, metric="scenario_accuracy", rule=RULE, control="", group="overall")
    acc = _all_models(acc[acc.n_models > 1])
    by = {order: per_replicate(select(acc, scenario=order), ("seed",)) for order in (better, *worse)}
    best_other = pd.concat([by[w] for w in worse], axis=1).max(axis=1)
    return (by[better] - best_other).dropna().to_numpy()


def _cost_ratio(rows: pd.DataFrame) -> np.ndarray:
    cost = select(rows, notebook=NB03, metric="gflops_per_image")
    one, three = select(cost, n_models=1)["value"], select(cost, n_models=3)["value"]
    return np.array([three.mean() / one.mean() - 3.0]) if len(one) and len(three) else np.array([])


def _dp_worst(rows: pd.DataFrame) -> np.ndarray:
    cells = select(rows, notebook=NB01, metric="dp_accuracy", method="LA", n_models=1).dropna(subset=["value"])
    if cells.empty or "D-few×P-few" not in set(cells["group"]):
        return np.array([])
    worst = cells.loc[cells["group"] == "D-few×P-few", "value"].mean()
    return np.array([cells.loc[cells["group"] != "D-few×P-few", "value"].min() - worst])


CLAIMS: list[Claim] = [
    Claim("prior_estimate", "GLA, §C (premise of Fig. 2/3)", "GLA's P̂_P tracks the pre-training label prior",
          "not reported (assumed)", "Spearman ρ(P̂_P, true π_m) per model, exact solver",
          _values(NB01, metric="spearman", method="gla-exact", group="prior"), unit="Spearman ρ"),
    Claim("zeroshot_imbalance", "Fig. 3 (zero-shot)", "Zero-shot accuracy follows the pre-training prior",
          "qualitative (Fig. 3)", "ρ(zero-shot accuracy − uniform-prior reference's, π_m) per model × seed",
          _values(NB01, metric="excess_trend_rho", method="zeroshot", group="pi"), unit="Spearman ρ"),
    Claim("ce_follows_ps", "Fig. 3 left", "With CE fine-tuning, accuracy follows the downstream prior P_S",
          "qualitative (Fig. 3)", "ρ(per-class accuracy, P_S) per model × seed, CE",
          _values(NB01, metric="trend_rho", method="CE", group="p_s"), unit="Spearman ρ"),
    Claim("la_flattens_ps", "Fig. 3 left", "Logit adjustment removes the trend against P_S",
          "qualitative (Fig. 3)", "ρ(acc, P_S) of CE minus that of LA, paired per model × seed",
          _difference(NB01, dict(metric="trend_rho", method="CE", group="p_s"),
                      dict(metric="trend_rho", method="LA", group="p_s")), unit="Spearman ρ"),
    Claim("la_trend_phat", "Fig. 3 right", "After LA a trend against the estimated P̂_P remains",
          "qualitative (Fig. 3)", "ρ(per-class accuracy, P̂_P) per model × seed, LA",
          _values(NB01, metric="trend_rho", method="LA", group="p_hat"), unit="Spearman ρ"),
    Claim("la_trend_pi", "Fig. 3 right (with the truth)",
          "After LA a trend against the true pre-training prior remains",
          "not measurable in the paper", "ρ(LA accuracy − reference's, π_m) per model × seed",
          _values(NB01, metric="excess_trend_rho", method="LA", group="pi"), unit="Spearman ρ"),
    Claim("glatrain_trend", "Tab. 3", "Adding log P̂_P to the training loss (GLA-Train) does not remove the trend",
          "qualitative (Tab. 3)", "ρ(per-class accuracy, P̂_P) per model × seed, GLA-Train",
          _values(NB01, metric="trend_rho", method="GLA-Train", group="p_hat"), unit="Spearman ρ"),
    Claim("scratch_no_trend", "Fig. 9", "A model trained from scratch shows no trend against P̂_P",
          "qualitative (Fig. 9)", "ρ(per-class accuracy, P̂_P) per seed, LA from scratch",
          _values(NB01, metric="trend_rho", method="LA", control="from scratch", group="p_hat"), rule="null",
          unit="Spearman ρ"),
    Claim("fig12_b_gap", "Fig. 12", "A CNN trained on B (C 90:10) scores differently on B_test than on A_test",
          "B-model accuracy differs between the test sets (Fig. 12)", "B-model: B_test − A_test accuracy, per seed",
          _values(NB02, metric="contrast", group="paper_b")),
    Claim("fig12_a_no_gap", "Fig. 12", "A CNN trained on A (C 50:50) scores the same on both test sets",
          "A-model accuracy about equal (Fig. 12)", "A-model: B_test − A_test accuracy, per seed",
          _values(NB02, metric="contrast", group="paper_a"), rule="null"),
    Claim("fig12_gap_is_pc_shift", "our control (reviewer's objection)",
          "The B-model's gap is explained by the shift of P(C) alone (B is not confounded)", "not tested",
          "B_test accuracy − the B-model's per-C A_test accuracies remixed to B_test's P(C), per seed",
          _values(NB02, metric="contrast", group="remix_b"), rule="null"),
    Claim("proxy_undoes_confounding", "§4 (method), with a real confounder",
          "The multi-model proxy (models relying on different factors, averaged) beats the naive model under do(C)",
          "claimed (the method's premise)", "multi-model proxy − naive CNN, interventional test set, per seed",
          _values(NB02, metric="contrast", group="proxy")),
    Claim("parameter_over_data", "§3 claim (a), Fig. 2", "Parameter imbalance matters more than data imbalance",
          "qualitative (Fig. 2)", "(P-Many − P-Few) − (D-Many − D-Few) accuracy gap of single LA models",
          _parameter_vs_data),
    Claim("dp_worst_cell", "Fig. 2", "D-Few × P-Few is the worst cell of the 3×3 matrix",
          "qualitative (Fig. 2)", "lowest other cell minus the D-Few×P-Few cell (LA, mean over runs)", _dp_worst),
    Claim("method_beats_lift", "Tab. 5–7", "The backdoor adjustment (M = 3) beats the single fine-tuned model (LIFT)",
          "ImageNet-LT 79.57 vs LIFT ≈ 77–78; Places-LT 53.01 vs ≈ 51–52",
          "overall accuracy, M = 3 logit sum minus the mean single model, paired per seed",
          _method_minus_lift, full_scale=True),
    Claim("gain_largest_on_few", "Tab. 8", "The gain from M = 1 to M = 3 is largest on D-Few",
          "ImageNet-LT +2.27 D-Many, +2.58 D-Medium, +3.29 D-Few",
          "(gain on D-Few) − (gain on D-Many), paired per seed", _few_gain_over_many, full_scale=True),
    Claim("backbones_beat_seeds", "our control (not in the paper)",
          "Different foundation models beat an ensemble of one model fine-tuned with different seeds",
          "not tested", "overall accuracy, different backbones minus same backbone, paired per seed",
          _difference(NB03, dict(metric="accuracy", control="different backbones", group="overall"),
                      dict(metric="accuracy", control="same backbone, different seeds", group="overall"),
                      by=("seed",))),
    Claim("balance_best", "Tab. 13", "Balanced downstream data is best for the method",
          "Balance best (mean of 3 datasets)", "balanced minus the better of consistent / reverse, per seed",
          lambda rows: _scenario(rows, "balanced", ("consistent", "reverse"))),
    Claim("reverse_over_consistent", "Tab. 13", "Reverse beats Consistency",
          "Reverse > Consistency", "reverse minus consistent, per seed",
          lambda rows: _scenario(rows, "reverse", ("consistent",))),
    Claim("posthoc_beats_joint", "rebuttal", "The post-hoc adjustment beats a jointly trained ensemble",
          "ImageNet-LT 79.57 vs 78.15; Places-LT 53.01 vs 52.30",
          "overall accuracy, post-hoc minus jointly trained, paired per seed",
          _difference(NB03, dict(metric="accuracy", control="post-hoc (separately trained)", group="overall"),
                      dict(metric="accuracy", control="jointly trained", group="overall"), by=("seed",)),
          full_scale=True),
    Claim("cost_linear", "rebuttal", "Inference cost grows linearly with M",
          "239.06 / 478.13 / 717.19 GFLOPs for M = 1 / 2 / 3", "measured GFLOPs(M=3) / GFLOPs(M=1) − 3",
          _cost_ratio, rule="zero", unit="GFLOPs ratio − 3"),
]
