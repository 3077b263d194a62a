"""One plotting function per paper figure, named after the artefact (``fig3_sorted_accuracy`` …).

Each function takes tidy data (DataFrames / arrays computed by ltlib) and returns a matplotlib Figure;
notebooks only call them. Styling is shared through :func:`style`.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import seaborn as sns

PALETTE = "colorblind"


def style() -> None:
    """The book's figure style (seaborn whitegrid, colour-blind palette, compact fonts)."""
    sns.set_theme(style="whitegrid", palette=PALETTE, font_scale=0.9)
    plt.rcParams.update({"figure.dpi": 110, "savefig.bbox": "tight", "axes.titleweight": "bold"})
