"""One plotting function per paper figure, named after the artefact (``fig3_sorted_accuracy`` …).

Each function takes tidy data (DataFrames / arrays computed by ltlib) and returns a matplotlib Figure;
notebooks only call them. Styling is shared through :func:`style`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import matplotlib.container
import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from ..phases import phase
from .display import order_groups

if TYPE_CHECKING:
    import pandas as pd

    from ..miniworld.diagnostics import ImbalanceResult, PriorRecovery

PALETTE = "colorblind"
PAGE_WIDTH = 9.0  # inches: the widest figure; a page shows it scaled to its text column (~800 px)
MAX_COLUMNS = 3  # panels per row; more wrap onto further rows, so each stays readable at page width


def style() -> None:
    """The book's figure style (seaborn whitegrid, colour-blind palette, compact fonts)."""
    sns.set_theme(style="whitegrid", palette=PALETTE, font_scale=0.9)
    plt.rcParams.update({"figure.dpi": 110, "savefig.bbox": "tight", "axes.titleweight": "bold"})


def panel_grid(n: int, panel_width: float, height: float, **subplots) -> tuple[plt.Figure, list[plt.Axes]]:
    """``n`` panels in rows of at most :data:`MAX_COLUMNS` (four as 2 × 2), the figure at most
    :data:`PAGE_WIDTH` wide: a multi-panel figure keeps readable text when the page scales it to its width.

    Args:
        n: number of panels; panel_width, height: inches of one panel; subplots: passed to ``plt.subplots``.
    Returns:
        The figure and its ``n`` axes in reading order (unused grid cells removed).
    """
    columns = 2 if n == 4 else min(max(n, 1), MAX_COLUMNS)
    rows = -(-max(n, 1) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(min(PAGE_WIDTH, panel_width * columns), height * rows),
                             squeeze=False, **subplots)
    flat = list(axes.flat)
    for ax in flat[n:]:
        fig.delaxes(ax)
    return fig, flat[:n]


def _first_column(axes: Sequence[plt.Axes]) -> list[plt.Axes]:
    """The panels at the start of a row of a :func:`panel_grid` (where a shared y label goes)."""
    return [ax for ax in axes if ax.get_subplotspec().is_first_col()]


def _label_bars(ax: plt.Axes, fmt: str = "{:.1f}") -> None:
    """Write each bar's value on it, so a bar of height zero reads "0.0" rather than looking missing
    (and a bar with no value reads "n/a")."""
    for container in ax.containers:
        if isinstance(container, matplotlib.container.BarContainer):
            values = [bar.get_height() for bar in container]
            ax.bar_label(container, labels=[fmt.format(v) if np.isfinite(v) else "n/a" for v in values],
                         fontsize=6.5, padding=1)


def _finish(fig: plt.Figure) -> plt.Figure:
    """Tight layout, then close: a notebook shows the returned figure once (the inline backend would also
    draw every figure still open, i.e. twice); ``savefig`` still works on a closed figure."""
    fig.tight_layout()
    plt.close(fig)
    return fig


@phase("plotting")
def fig3_sorted_accuracy(binned: "pd.DataFrame", keys: tuple[str, ...] = ("p_s", "p_hat", "pi"),
                         labels: dict[str, str] | None = None, value: str = "accuracy") -> plt.Figure:
    """Fig. 3: per-class accuracy with classes sorted (head → tail) by each prior in ``keys``, in equal
    bins, one line per method (mean over runs, band = ±1 sd over runs).

    Args:
        binned: rows of ``ltlib.book.analysis.binned_accuracy`` concatenated over keys (column ``key``).
    """
    style()
    keys = tuple(k for k in keys if k in set(binned["key"]))
    fig, axes = panel_grid(len(keys), 3.6, 3.4, sharey=True)
    for ax, key in zip(axes, keys):
        sns.lineplot(data=binned[binned["key"] == key], x="bin", y=value, hue="method", marker="o",
                     errorbar="sd", ax=ax)
        ax.set_title(f"sorted by {(labels or {}).get(key, key)}", fontsize=9)
        ax.set_xlabel("class bin (1 = most frequent)")
        ax.set_ylabel("per-class accuracy (%)" if value == "accuracy" else value)
        ax.legend(fontsize=7, title=None)
    return _finish(fig)


@phase("plotting")
def fig2_dp_matrix(matrices: dict[str, "pd.DataFrame"], title: str = "") -> plt.Figure:
    """Fig. 2: the 3×3 D-group × P-group accuracy matrices side by side (one panel per method)."""
    style()
    fig, axes = panel_grid(len(matrices), 3.2, 3.2)
    for ax, (name, matrix) in zip(axes, matrices.items()):
        matrix = matrix.loc[order_groups(matrix.index), order_groups(matrix.columns)]  # many → few, not a–z
        sns.heatmap(matrix.astype(float), annot=True, fmt=".1f", cmap="viridis", vmin=0, vmax=100, cbar=False, ax=ax)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("P-group (by P̂_P)")
        ax.set_ylabel("D-group (by n_train)")
    if title:
        fig.suptitle(title, fontsize=10)
    return _finish(fig)


@phase("plotting")
def tab4_knn(scores: "pd.DataFrame") -> plt.Figure:
    """Tab. 4 as bars: kNN accuracy of each model's features per D-group (mean ± sd over runs)."""
    style()
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    sns.barplot(data=scores, x="group", y="value", hue="method", order=order_groups(scores["group"]),
                errorbar="sd", ax=ax)
    ax.set_xlabel("")
    ax.set_ylabel("kNN accuracy (%)")
    ax.legend(fontsize=7, title=None)
    return _finish(fig)


# --------------------------------------------------------------------------- the mini world (notebook 00)
_PART_COLOURS = {"head": "#d55e00", "body": "#0072b2"}  # colour-blind palette's vermillion and blue



def _show_image(ax: plt.Axes, image: np.ndarray) -> None:
    """Draw one uint8 image [3, H, W] without ticks."""
    ax.imshow(np.transpose(image, (1, 2, 0)), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def _mask_outlines(ax: plt.Axes, masks: np.ndarray) -> None:
    """Outline the visible head and body (bool [2, H, W]) in their part colours."""
    for part, mask in zip(("head", "body"), masks):
        if mask.any():
            ax.contour(mask.astype(float), levels=[0.5], colors=_PART_COLOURS[part], linewidths=1.0)


@phase("plotting")
def miniworld_examples(images: np.ndarray, masks: np.ndarray, labels: np.ndarray, visibility: np.ndarray,
                       class_names: Sequence[str]) -> plt.Figure:
    """The mini world's images: each class head-dominant (C = 0) and body-dominant (C = 1), with the
    visible head (vermillion) and body (blue) outlined.

    Args:
        images: uint8 [2n, 3, H, W], class by class, C = 0 then C = 1 (``diagnostics.example_renders``).
        masks: bool [2n, 2, H, W]; labels, visibility: [2n]; class_names: K names.
    """
    style()
    n = len(images) // 2
    width = min(PAGE_WIDTH, 1.35 * n)  # the images keep their aspect: height shrinks with the width
    fig, axes = plt.subplots(4, n, figsize=(width, 5.6 * width / (1.35 * n)), squeeze=False)
    for i in range(len(images)):
        column, row = i // 2, 2 * int(visibility[i])
        _show_image(axes[row, column], images[i])
        _show_image(axes[row + 1, column], images[i])
        _mask_outlines(axes[row + 1, column], masks[i])
        axes[0, column].set_title(class_names[int(labels[i])], fontsize=8)
    for row, text in enumerate(("C = head", "masks", "C = body", "masks")):
        axes[row, 0].set_ylabel(text, fontsize=8)
    return _finish(fig)


@phase("plotting")
def miniworld_priors(priors: Mapping[str, np.ndarray]) -> plt.Figure:
    """The true pre-training priors π_m: (a) by rank (log scale), (b) each model's π against the first
    model's, class by class (log–log): how far the models agree on which classes are common."""
    style()
    names = list(priors)
    fig, (rank_ax, pair_ax) = plt.subplots(1, 2, figsize=(8.4, 3.3))
    for name in names:
        rank_ax.plot(np.arange(1, len(priors[name]) + 1), np.sort(priors[name])[::-1], marker=".", label=name)
    rank_ax.set(yscale="log", xlabel="class rank under π_m", ylabel="π_m (corpus class frequency)")
    rank_ax.legend(fontsize=7)
    for name in names[1:]:
        pair_ax.scatter(priors[names[0]], priors[name], s=14, label=name)
    pair_ax.set(xscale="log", yscale="log", xlabel=f"π of {names[0]}", ylabel="π of the other model")
    pair_ax.legend(fontsize=7)
    return _finish(fig)


@phase("plotting")
def miniworld_zero_shot(accuracy: "pd.DataFrame", chance: float) -> plt.Figure:
    """Zero-shot accuracy per model on the balanced test split, overall and by part visibility C.

    Args:
        accuracy: columns ``backbones``, ``group`` (``all`` / ``head`` / ``body``) and ``value`` (%).
        chance: 100 / K.
    """
    style()
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    sns.barplot(data=accuracy, x="backbones", y="value", hue="group", ax=ax)
    ax.axhline(chance, color="0.3", linestyle="--", linewidth=1, label="chance")
    ax.set(xlabel="", ylabel="zero-shot accuracy (%)", ylim=(0, 1.3 * float(accuracy["value"].max())))
    ax.legend(fontsize=7, title="test images (C)", title_fontsize=7, ncol=4, loc="upper left")
    return _finish(fig)


@phase("plotting")
def miniworld_parameter_imbalance(results: Sequence["ImbalanceResult"]) -> plt.Figure:
    """Parameter imbalance controlled for class difficulty: per-class zero-shot accuracy minus the
    uniform-prior reference model's, against the model's true π_m, one panel per model (Spearman ρ, p)."""
    style()
    fig, axes = panel_grid(len(results), 3.3, 3.1, sharey=True)
    for ax, result in zip(axes, results):
        ax.scatter(result.prior, result.difference, s=14)
        ax.axhline(0, color="0.3", linewidth=0.8)
        ax.set(xscale="log", xlabel="π_m", title=result.model)
        ax.text(0.03, 0.95, f"ρ = {result.rho:.2f}, p = {result.p:.1g}", transform=ax.transAxes, va="top",
                fontsize=8)
    for ax in _first_column(axes):
        ax.set_ylabel("accuracy − reference's (points)")
    return _finish(fig)


@phase("plotting")
def miniworld_prior_recovery(recoveries: Sequence["PriorRecovery"]) -> plt.Figure:
    """GLA's estimate P̂_P against the true π_m (log–log), one panel per model, both solvers; the dashed
    line is P̂_P = π_m, the dotted one the uniform prior."""
    style()
    models = list(dict.fromkeys(r.model for r in recoveries))
    fig, axes = panel_grid(len(models), 3.3, 3.2, sharey=True)
    for ax, model in zip(axes, models):
        for r in (r for r in recoveries if r.model == model):
            ax.scatter(r.truth, r.estimate, s=14, label=f"{r.solver}: ρ = {r.rho:.2f}, KL = {r.kl:.2f}")
        truth = next(r.truth for r in recoveries if r.model == model)
        ax.plot([truth.min(), truth.max()], [truth.min(), truth.max()], "--", color="0.3", linewidth=0.8)
        ax.axhline(1 / len(truth), color="0.3", linestyle=":", linewidth=0.8)
        ax.set(xscale="log", yscale="log", xlabel="true π_m", title=model)
        ax.legend(fontsize=6.5, loc="lower right")
    for ax in _first_column(axes):
        ax.set_ylabel("GLA estimate P̂_P")
    return _finish(fig)


@phase("plotting")
def fig4_part_attention(images: np.ndarray, masks: np.ndarray, saliency: Mapping[str, np.ndarray],
                        titles: Sequence[str]) -> plt.Figure:
    """Fig. 4 analogue: gradient × input saliency of each model on the same images, with the visible
    head (vermillion) and body (blue) outlined; each map is scaled to its own maximum.

    Args:
        images: uint8 [n, 3, H, W]; masks: bool [n, 2, H, W]; saliency: model → [n, H, W]; titles: n row labels.
    """
    style()
    n, columns = len(images), 1 + len(saliency)
    fig, axes = plt.subplots(n, columns, figsize=(1.6 * columns, 1.6 * n), squeeze=False)
    for i in range(n):
        _show_image(axes[i, 0], images[i])
        axes[i, 0].set_ylabel(titles[i], fontsize=8)
        for j, (model, maps) in enumerate(saliency.items(), start=1):
            axes[i, j].imshow(maps[i] / max(float(maps[i].max()), 1e-12), cmap="magma", vmin=0, vmax=1,
                              interpolation="nearest")
            axes[i, j].set_xticks([])
            axes[i, j].set_yticks([])
            _mask_outlines(axes[i, j], masks[i])
            axes[0, j].set_title(model, fontsize=8)
    axes[0, 0].set_title("image", fontsize=8)
    return _finish(fig)


@phase("plotting")
def fig4_part_reliance(summary: "pd.DataFrame", part_bias: Mapping[str, float]) -> plt.Figure:
    """Fig. 4 as numbers: each model's head reliance against its corpus part bias P_m(C = head).

    Args:
        summary: ``ltlib.results.summarize`` rows (``backbones``, ``metric``, ``mean``, ``ci_low``,
            ``ci_high``) for the metrics ``head_reliance`` (occlusion) and ``saliency_head_density_share``.
        part_bias: model → P_m(C = head-dominant) of its pre-training corpus.
    """
    style()
    panels = {"head_reliance": "occlusion: head share of the evidence",
              "saliency_head_density_share": "saliency: head share per pixel"}
    fig, axes = plt.subplots(1, 2, figsize=(8.2, 3.4), sharey=True)
    for ax, (metric, label) in zip(axes, panels.items()):
        rows = summary[summary["metric"] == metric]
        for i, (colour, row) in enumerate(zip(sns.color_palette(PALETTE), rows.itertuples())):
            offset = 0.012 * (i - (len(rows) - 1) / 2)  # models with equal part bias side by side
            x, err = part_bias[row.backbones] + offset, [[row.mean - row.ci_low], [row.ci_high - row.mean]]
            ax.errorbar([x], [row.mean], yerr=np.nan_to_num(err), fmt="o", color=colour, capsize=3,
                        label=row.backbones)
        ax.axhline(0.5, color="0.3", linestyle=":", linewidth=0.8)
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="corpus part bias P_m(C = head)", title=label)
    axes[0].set_ylabel("head share")
    axes[0].legend(fontsize=7, loc="upper left")
    return _finish(fig)


@phase("plotting")
def tab8_subsets(scores: "pd.DataFrame", groups: tuple[str, ...] = ("overall", "D-many", "D-medium", "D-few"),
                 rule: str = "logit_sum") -> plt.Figure:
    """Tab. 8 as a figure: accuracy against the number of foundation models M (each point a subset and
    seed, combined with ``rule``; the line is the mean), one panel per group. ``scores``: result rows with
    ``n_models``, ``rule``, ``group`` and ``value``."""
    style()
    groups = tuple(order_groups(groups))
    fig, axes = panel_grid(len(groups), 3.4, 3.0, sharex=True)
    for ax, group in zip(axes, groups):
        part = scores[(scores["group"] == group) & (scores["rule"] == rule)]
        sns.stripplot(data=part, x="n_models", y="value", color="0.6", size=3, ax=ax, jitter=0.15)
        sns.pointplot(data=part, x="n_models", y="value", errorbar=("ci", 95), color="C0", ax=ax)
        ax.set_title(group, fontsize=9)
        ax.set_xlabel("M")
        ax.set_ylabel("accuracy (%)" if ax in _first_column(axes) else "")
    return _finish(fig)


@phase("plotting")
def grouped_bars(frame: "pd.DataFrame", x: str, hue: str, title: str = "", ylabel: str = "accuracy (%)") -> plt.Figure:
    """Bars of ``value`` by ``x`` and ``hue`` (mean ± sd over seeds): Tab. 13, the ensemble controls."""
    style()
    fig, ax = plt.subplots(figsize=(7.2, 3.4))
    sns.barplot(data=frame, x=x, y="value", hue=hue, order=order_groups(frame[x]), hue_order=order_groups(frame[hue]),
                errorbar="sd", ax=ax)
    _label_bars(ax)
    ax.set_xlabel("")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    hues = len(order_groups(frame[hue]))  # the legend below the bars, where it hides none of them
    ax.legend(fontsize=7, title=None, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=min(hues, 3),
              frameon=False)
    return _finish(fig)


@phase("plotting")
def cost_vs_m(cost: "pd.DataFrame") -> plt.Figure:
    """Inference cost of the backdoor adjustment against M: GFLOPs per image (measured, and the paper's
    ViT-B/16 figures when ``cost`` has ``paper_gflops``; log scale) and images/s.
    ``cost``: ``ltlib.book.analysis.inference_cost`` (columns n_models, gflops_per_image, images_per_second)."""
    style()
    fig, (left, right) = plt.subplots(1, 2, figsize=(7.2, 3.0))
    left.plot(cost["n_models"], cost["gflops_per_image"], "o-", label="measured (mini models)")
    if "paper_gflops" in cost and cost["paper_gflops"].notna().any():
        left.plot(cost["n_models"], cost["paper_gflops"], "s--", label="paper (ViT-B/16)")
        left.set_yscale("log")
        left.legend(fontsize=7)
    left.set_xlabel("M")
    left.set_ylabel("GFLOPs per image")
    right.plot(cost["n_models"], cost["images_per_second"], "o-")
    right.set_xlabel("M")
    right.set_ylabel("images / s")
    return _finish(fig)


VERDICT_COLOURS = {"reproduced": "#1b9e77", "not reproduced": "#d95f02", "inconclusive": "#b08a00",
                   "uninformative": "#666666", "single run": "#7570b3", "not measured": "#999999",
                   "full scale only": "#7570b3", "no verdict": "#999999"}


@phase("plotting")
def registry_forest(report: "pd.DataFrame") -> plt.Figure:
    """Every measured claim's effect (mean and 95 % interval over worlds, small dots: the worlds) coloured by
    its verdict, one panel per unit; the dashed line is zero (no effect), the grey band ±margin for a claim
    of no effect. ``report``: lines of ``ltlib.book.report.evaluate``."""
    import json

    style()
    measured = report[report["n_worlds"] > 0]
    units = list(dict.fromkeys(measured["unit"]))
    heights = [max((measured["unit"] == u).sum(), 1) for u in units]
    fig, axes = plt.subplots(len(units), 1, figsize=(9.0, 0.42 * sum(heights) + 1.1 * len(units)),
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    for ax, unit in zip(axes[:, 0], units):
        part = measured[measured["unit"] == unit].iloc[::-1]
        for y, line in enumerate(part.itertuples()):
            colour = VERDICT_COLOURS.get(line.verdict, "k")
            worlds = json.loads(line.per_world)
            ax.plot(worlds, [y] * len(worlds), ".", color=colour, alpha=0.5, ms=5)
            if line.low == line.low:
                ax.plot([line.low, line.high], [y, y], color=colour, lw=2.2)
            ax.plot(line.mean, y, "o", color=colour)
        ax.axvline(0, ls="--", color="0.4", lw=1)
        ax.set_yticks(range(len(part)), part["key"], fontsize=8)
        ax.set_xlabel(f"{unit} (mean, 95 % CI over worlds)", fontsize=8)
    handles = [plt.Line2D([], [], color=c, marker="o", lw=2, label=v) for v, c in VERDICT_COLOURS.items()
               if v in set(measured["verdict"])]
    fig.legend(handles=handles, fontsize=7, loc="upper center", ncol=max(len(handles), 1), frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    plt.close(fig)
    return fig


@phase("plotting")
def notebook_times(timings: "pd.DataFrame") -> plt.Figure:
    """Horizontal bars: seconds per notebook of a build."""
    style()
    fig, ax = plt.subplots(figsize=(6.0, 0.45 * max(len(timings), 1) + 1.0))
    sns.barplot(data=timings, y="notebook", x="seconds", hue="status", dodge=False, ax=ax)
    ax.set_xlabel("wall time (s)")
    ax.set_ylabel("")
    return _finish(fig)


@phase("plotting")
def fig12_confounder(accuracy: "pd.DataFrame", methods: Sequence[str], labels: Mapping[str, str] | None = None
                     ) -> plt.Figure:
    """Fig. 12: the paper's 2×2 (CNNs trained on A and B, tested on A_test and B_test) beside the study done
    right (estimators on the confounded and the interventional test set); bars are means, whiskers ±1 sd
    over seeds.

    Args:
        accuracy: ``ltlib.miniworld.confounding.accuracy_frame`` rows (``method, test_set, group, seed, value``).
        methods: the estimators of the right panel, top to bottom; labels: display names of methods.
    """
    style()
    names = dict(labels or {})
    rows = accuracy[accuracy["group"] == "all"].assign(label=lambda d: d["method"].map(lambda m: names.get(m, m)))
    fig, (left, right) = plt.subplots(1, 2, figsize=(PAGE_WIDTH, 4.3), gridspec_kw={"width_ratios": [1, 1.7]})
    paper = rows[rows["method"].isin(["A", "B"]) & rows["test_set"].isin(["A", "B"])]
    sns.barplot(data=paper, x="label", y="value", hue="test_set", hue_order=["A", "B"], errorbar="sd", ax=left)
    left.set(title="the paper's 2×2", xlabel="", ylabel="top-1 accuracy (%)")
    left.legend(title="test set", fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2)
    right_rows = rows[rows["method"].isin(methods) & rows["test_set"].isin(["confounded", "interventional"])]
    sns.barplot(data=right_rows, y="label", x="value", hue="test_set", order=[names.get(m, m) for m in methods],
                hue_order=["confounded", "interventional"], errorbar="sd", orient="h", ax=right)
    right.set(title="done right: observational vs interventional", ylabel="", xlabel="top-1 accuracy (%)")
    right.legend(title="test set", fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    fig.tight_layout()
    return fig


@phase("plotting")
def fig12_accuracy_by_visibility(accuracy: "pd.DataFrame", panels: Mapping[str, Sequence[str]],
                                 labels: Mapping[str, str] | None = None) -> plt.Figure:
    """Accuracy per true C (head- vs body-dominant images) of some models across test sets: under a pure
    shift of P(C) each stratum keeps its accuracy; under confounding the strata themselves change.

    Args:
        accuracy: ``ltlib.miniworld.confounding.accuracy_frame`` rows.
        panels: method → the test sets to show for it (one panel per method).
        labels: display names of methods.
    """
    style()
    strata = accuracy[accuracy["group"] != "all"]
    fig, axes = panel_grid(len(panels), 3.4, 3.3, sharey=True)
    for ax, (method, test_sets) in zip(axes, panels.items()):
        part = strata[(strata["method"] == method) & strata["test_set"].isin(test_sets)]
        sns.barplot(data=part, x="test_set", y="value", hue="group", order=list(test_sets),
                    hue_order=["head-dominant", "body-dominant"], errorbar="sd", ax=ax)
        ax.set(title=(labels or {}).get(method, method), xlabel="test set", ylabel="top-1 accuracy (%)")
        handles, names = ax.get_legend_handles_labels()
        ax.get_legend().remove()
    fig.legend(handles, names, title="true C", fontsize=7, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2)
    fig.tight_layout()
    return fig


@phase("plotting")
def reliance_by_world(results: "pd.DataFrame", part_bias: Mapping[str, float]) -> plt.Figure:
    """Fig. 4/10 in every world: (a) each foundation model's zero-shot head reliance against its corpus part
    bias, one line per world; (b) the reliance balance min(h, 1 − h) of the fine-tuned models and of their
    combination (the backdoor adjustment), per world.

    Args:
        results: one row per classifier (``ltlib.miniworld.reliance.Reliance`` fields and ``balance``).
        part_bias: foundation model → P_m(C = head).
    """
    style()
    fig, (left, right) = plt.subplots(1, 2, figsize=(8.4, 3.3))
    zero_shot = results[results["method"] == "zeroshot"].assign(bias=lambda f: f["backbones"].map(part_bias))
    for ws, world in zero_shot.groupby("world_seed"):
        world = world.sort_values("bias")
        left.plot(world["bias"], world["head_reliance"], marker="o", label=f"world {ws}")
    left.axhline(0.5, color="0.3", linestyle=":", linewidth=0.8)
    left.set(xlim=(0, 1), ylim=(0, 1), xlabel="corpus part bias P_m(C = head)", ylabel="head reliance (occlusion)",
             title="zero-shot models")
    left.legend(fontsize=7, loc="upper left")
    tuned = results[results["method"] == "LA"].assign(
        classifier=lambda f: np.where(f["n_models"] > 1, "combination", f["backbones"]),
        world=lambda f: "world " + f["world_seed"].astype(str))
    sns.barplot(data=tuned, x="world", y="balance", hue="classifier", errorbar=None, ax=right)
    right.axhline(0.5, color="0.3", linestyle=":", linewidth=0.8)  # both parts alike
    right.set(ylim=(0, 0.7), xlabel="", ylabel="reliance balance min(h, 1 − h)",
              title="fine-tuned (LA) and combined")
    right.legend(fontsize=7, title=None, loc="upper center", ncol=4, columnspacing=0.8, handlelength=1.2)
    return _finish(fig)
