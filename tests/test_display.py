"""The pages' display helpers (issue 13): groups in the paper's order (many, medium, few; never
alphabetical), human column names, figures that wrap their panels to stay readable at page width."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ltlib.book import plots
from ltlib.book.display import human_columns, order_groups


def test_groups_come_many_medium_few_never_alphabetically():
    alphabetical = sorted(["D-many", "D-medium", "D-few", "overall"])
    assert alphabetical == ["D-few", "D-many", "D-medium", "overall"]  # what a plain sort gives
    assert order_groups(alphabetical * 2) == ["overall", "D-many", "D-medium", "D-few"]
    assert order_groups(["few", "all", "medium", "many"]) == ["all", "many", "medium", "few"]
    mixed = ["P-few", "D-few×P-many", "D-many", "P-many", "D-many×P-few", "D-many×P-many", "mean"]
    assert order_groups(mixed) == ["mean", "D-many", "P-many", "P-few", "D-many×P-many", "D-many×P-few",
                                   "D-few×P-many"]


def test_labels_that_are_not_groups_keep_their_first_order_after_the_groups():
    assert order_groups(["seed1", "few", "seed0", "seed1", "many", "X-many"]) == ["many", "few", "seed1", "seed0",
                                                                                   "X-many"]


def test_human_columns_rename_for_display_and_leave_the_values():
    frame = pd.DataFrame({"wall_s": [1.0], "spearman_p": [0.01], "kl_uniform": [0.2], "odd_name": ["a_b"]})
    shown = human_columns(frame.set_index("odd_name"), {"kl_uniform": "KL(P̂ ‖ uniform)"})
    assert list(shown.columns) == ["wall time (s)", "Spearman p-value", "KL(P̂ ‖ uniform)"]
    assert shown.index.name == "odd name" and list(shown.index) == ["a_b"]
    assert list(frame.columns) == ["wall_s", "spearman_p", "kl_uniform", "odd_name"]  # the input is untouched
    assert not [c for c in shown.columns if "_" in c]


def _bars(figure):
    ax = figure.axes[0]
    return [t.get_text() for t in ax.get_xticklabels()], [t.get_text() for t in ax.texts]


def test_grouped_bars_draw_groups_in_order_and_label_a_zero_bar():
    frame = pd.DataFrame({"d_group": ["few", "many", "medium", "all"] * 2, "combination": ["a"] * 4 + ["b"] * 4,
                          "value": [0.0, 100.0, 50.0, 60.0, 0.0, 90.0, 40.0, np.nan]})
    ticks, labels = _bars(plots.grouped_bars(frame, x="d_group", hue="combination"))
    assert ticks == ["all", "many", "medium", "few"]
    assert labels.count("0.0") == 2 and "100.0" in labels  # a bar of height zero still reads 0.0
    assert len(labels) == 7 and "nan" not in labels  # seaborn draws no bar for the missing value


@pytest.mark.parametrize("n, grid", [(1, (1, 1)), (2, (1, 2)), (3, (1, 3)), (4, (2, 2)), (5, (2, 3))])
def test_panels_wrap_so_the_figure_fits_the_page(n, grid):
    fig, axes = plots.panel_grid(n, 4.0, 3.0)
    assert len(axes) == len(fig.axes) == n
    assert axes[0].get_subplotspec().get_gridspec().get_geometry() == grid
    assert fig.get_figwidth() <= plots.PAGE_WIDTH
    assert fig.get_figheight() == 3.0 * grid[0]


def test_tab8_panels_follow_the_group_order_and_wrap():
    rows = [{"group": g, "rule": "logit_sum", "n_models": m, "value": 10.0 * m}
            for g in ("D-few", "overall", "D-many", "D-medium") for m in (1, 2)]
    figure = plots.tab8_subsets(pd.DataFrame(rows), groups=("D-few", "D-many", "overall", "D-medium"))
    assert [ax.get_title() for ax in figure.axes] == ["overall", "D-many", "D-medium", "D-few"]
    assert figure.get_figwidth() <= plots.PAGE_WIDTH


def test_the_widest_figures_fit_the_page_width():
    images = np.zeros((14, 3, 16, 16), dtype=np.uint8)
    masks = np.zeros((14, 2, 16, 16), dtype=bool)
    figure = plots.miniworld_examples(images, masks, np.repeat(np.arange(7), 2), np.tile([0, 1], 7),
                                      [f"class {k}" for k in range(7)])
    assert figure.get_figwidth() <= plots.PAGE_WIDTH
    rows = [{"method": m, "test_set": t, "group": "all", "seed": s, "value": 50.0 + s}
            for m in ("A", "B", "proxy") for t in ("A", "B", "confounded", "interventional") for s in (0, 1)]
    assert plots.fig12_confounder(pd.DataFrame(rows), ["A", "proxy"]).get_figwidth() <= plots.PAGE_WIDTH
