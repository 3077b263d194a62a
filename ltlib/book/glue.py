"""``glue`` for the book's notebooks: myst-nb's, with numpy scalars turned into Python numbers first.

myst-nb formats a glued number from its ``text/plain`` repr; under numpy 2 a ``np.float64`` prints as
``np.float64(0.5)``, which ``{glue:text}`name:.1f``` cannot format (a strict build then fails).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def plain(value: Any) -> Any:
    """``value`` with a numpy scalar (or 0-d array) replaced by the equivalent Python int/float/bool."""
    if isinstance(value, np.generic) or (isinstance(value, np.ndarray) and value.ndim == 0):
        return value.item()
    return value


def glue(name: str, variable: Any, display: bool = True) -> None:
    """``myst_nb.glue(name, plain(variable), display)``: a drop-in for the notebooks."""
    from myst_nb import glue as myst_glue

    myst_glue(name, plain(variable), display=display)
