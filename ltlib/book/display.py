"""How the book's pages show tables and group labels: human column names and the paper's group order
(many, medium, few; Fig. 2, Tab. 4–8), for display only; result tables keep their own column names."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from ..metrics import GROUP_NAMES

if TYPE_CHECKING:
    import pandas as pd

_LEADING = ("overall", "all", "mean")  # the whole test set before its groups
_KINDS = ("", "D", "P")  # plain group names, then D-groups (by training count), then P-groups (by prior)

# Column names of ltlib's tables as a reader of the book should see them. A name not listed here is shown
# with its underscores as spaces.
COLUMN_NAMES: dict[str, str] = {
    "wall_s": "wall time (s)", "cpu_s": "CPU time (s)", "share": "share", "share_percent": "share of the build (%)",
    "cores_busy": "cores busy", "seconds": "wall time (s)", "wall_seconds": "wall time (s)",
    "cpu_seconds": "CPU time (s)", "generation_seconds": "image generation (s)", "git_sha": "git revision",
    "spearman_rho": "Spearman ρ", "spearman_p": "Spearman p-value", "rho": "Spearman ρ", "p": "p-value",
    "kl_uniform": "KL to the uniform prior", "kl": "KL divergence", "n_models": "M (models combined)",
    "num_models": "M (models combined)", "num_classes": "classes", "n_classes": "classes",
    "d_group": "D-group", "p_group": "P-group", "run_dir": "run folder", "world_seed": "world seed",
    "prior_source": "prior used", "ci_low": "95 % CI low", "ci_high": "95 % CI high", "top_k": "top-k",
    "members_mean": "members' mean accuracy (%)", "members_best": "best member (%)", "triple": "triple (%)",
    "gain_over_mean": "gain over the members' mean (points)", "gain_over_best": "gain over the best member (points)",
    "part_bias": "part bias P(C = head)", "prior_rho_vs_first": "prior order: Spearman ρ with the first member",
}


def human_name(column: object) -> str:
    """The display name of one column (:data:`COLUMN_NAMES`, else underscores as spaces)."""
    text = str(column)
    return COLUMN_NAMES.get(text, text.replace("_", " "))


def human_columns(frame: "pd.DataFrame", names: Mapping[str, str] | None = None) -> "pd.DataFrame":
    """A copy of ``frame`` with human column names (and index names), for a page's table only.

    Args:
        frame: any table; its values are untouched.
        names: extra or overriding display names, column → name.
    Returns:
        The renamed copy.
    """
    extra = dict(names or {})
    rename = {c: extra.get(str(c), human_name(c)) for c in frame.columns}
    shown = frame.rename(columns=rename)
    shown.index = shown.index.set_names([None if n is None else extra.get(str(n), human_name(n))
                                         for n in shown.index.names])
    return shown


def _group_rank(label: object) -> tuple | None:
    """Sort key of a group label (``many``, ``D-few``, ``P-medium``, ``D-few×P-many``, ``overall``), or None
    for a label that is not a group."""
    text = str(label)
    if text in _LEADING:
        return (0, _LEADING.index(text))
    key = []
    for part in text.split("×"):
        kind, _, name = part.rpartition("-")
        if kind not in _KINDS or name not in GROUP_NAMES:
            return None
        key.append((_KINDS.index(kind), GROUP_NAMES.index(name)))
    return (1, len(key), tuple(key))


def order_groups(labels: Iterable[object]) -> list:
    """The distinct ``labels`` in the paper's order: the whole set first (overall / all / mean), then many,
    medium, few (D-groups before P-groups, single groups before D×P cells); labels that are not groups
    follow in the order they first appear.

    Args:
        labels: e.g. a column of group names, in any order, with repeats.
    Returns:
        Each label once, e.g. ``["overall", "D-many", "D-medium", "D-few"]`` (never alphabetical).
    """
    distinct = list(dict.fromkeys(labels))
    groups = sorted((label for label in distinct if _group_rank(label) is not None), key=_group_rank)
    return groups + [label for label in distinct if _group_rank(label) is None]
