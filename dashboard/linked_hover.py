"""Linked hover across matrices: hovering cell (i, j) of one map outlines row i and column j on every map of
the same group (attention heads, tiny attention, W, the gate, token influence). It runs in the browser
(``linked_hover.js``, a Streamlit v2 component), so hovering costs the server nothing."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboard.plots import LINK_GROUP

_component = st.components.v2.component(
    "gmlp_lens_linked_hover", js=(Path(__file__).parent / "linked_hover.js").read_text()
)


def link(group: str = LINK_GROUP, key: str = "linked-hover") -> None:
    """Mount the linker once on a page: it follows every chart of ``group`` drawn on it, now or later."""
    _component(data={"group": group}, key=key)
