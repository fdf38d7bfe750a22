"""The figure memo (``dashboard.plots.memo``) is a fast path: a cached figure is the figure the builder draws.

- Same content, same figure; any change of content (one element of a large array, one cell of a table, one
  keyword) gives a new one: keys are digests of every byte, never a sample.
- A cached figure is exactly (JSON for JSON) what the uncached builder gives with the house template.
- Lists come back as new lists, so callers may extend them without touching the cache.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.io as pio
import pytest

from dashboard import plots
from dashboard.style import template


def _json(fig) -> str:  # noqa: ANN001 - plotly Figure
    return pio.to_json(fig, validate=False)


def test_same_content_gives_the_same_finished_figure() -> None:
    w = np.random.default_rng(0).normal(size=(12, 12))
    first = plots.matrix(w, [f"t{i}" for i in range(12)], title="W")
    again = plots.matrix(w.copy(), [f"t{i}" for i in range(12)], title="W")
    assert again is first
    plain = plots.matrix.uncached(w, [f"t{i}" for i in range(12)], title="W")
    plain.update_layout(template=template(large=False))
    assert _json(first) == _json(plain)


def test_one_changed_element_of_a_large_array_gives_a_new_figure() -> None:
    # over a million elements: a sampled hash (Streamlit's, for big arrays) could miss one changed entry
    steps = {0: np.zeros((4, 520, 520), dtype=np.float32)}
    changed = {0: steps[0].copy()}
    changed[0][3, 517, 2] = 1e-6
    assert plots.fingerprint(steps) != plots.fingerprint(changed)
    a = plots.matrix(np.eye(6), title="x")
    b = plots.matrix(np.eye(6) + np.eye(6, k=5) * 1e-12, title="x")
    assert a is not b


def test_tables_keywords_and_numbers_are_told_apart() -> None:
    df = pd.DataFrame({"step": [0, 1, 2], "val_ppl": [30.0, 20.0, 10.0]})
    other = df.assign(val_ppl=[30.0, 20.0, 10.5])
    assert plots.fingerprint(df) != plots.fingerprint(other)
    assert plots.fingerprint(df) == plots.fingerprint(df.copy())
    assert plots.fingerprint(df) != plots.fingerprint(df.set_axis([5, 6, 7]))
    assert plots.fingerprint(1) != plots.fingerprint(1.0) != plots.fingerprint(True)
    assert plots.fingerprint(float("nan")) == plots.fingerprint(float("nan"))
    z = np.arange(16.0).reshape(4, 4)
    assert plots.matrix(z, title="a") is not plots.matrix(z, title="b")
    assert plots.matrix(z, title="a", diverging=False) is not plots.matrix(z, title="a")


def test_lists_come_back_as_new_lists() -> None:
    panels = [np.eye(5), -np.eye(5)]
    figs = plots.matrices(panels, ["p", "q"])
    figs.append("extra")
    again = plots.matrices(panels, ["p", "q"])
    assert len(again) == 2 and again[0] is figs[0]


def test_an_unhashable_argument_is_drawn_without_the_cache() -> None:
    with pytest.raises(TypeError):
        plots.fingerprint(object())
    labels = (lambda: None,)  # a lambda: no stable name, so not cacheable
    with pytest.raises(TypeError):
        plots.fingerprint(labels)


def test_the_memo_is_bounded() -> None:
    before = plots.MEMO_SIZE
    try:
        plots.MEMO_SIZE = 3
        for k in range(6):
            plots.matrix(np.full((3, 3), float(k)), title="bounded")
        assert len(plots._MEMO) <= 3
    finally:
        plots.MEMO_SIZE = before
