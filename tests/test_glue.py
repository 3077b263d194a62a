"""Glued numbers must be formattable by myst-nb's ``{glue:text}`name:.1f``` (numpy 2 reprs are not)."""

from __future__ import annotations

import numpy as np
import pytest

from ltlib.book.glue import plain


@pytest.mark.parametrize("value, expected", [(np.float64(0.25), 0.25), (np.int64(3), 3), (np.bool_(True), True),
                                             (np.array(1.5), 1.5), (2.0, 2.0), ("text", "text")])
def test_plain_turns_numpy_scalars_into_python_numbers(value, expected):
    out = plain(value)
    assert out == expected and type(out) is type(expected)
    assert "np." not in repr(out)  # what myst-nb parses back with float()
