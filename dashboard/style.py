"""Look and feel: one plotly template for every figure, sized for a lecture projector."""

from __future__ import annotations

import functools
import re

import plotly.graph_objects as go
import plotly.io as pio
import streamlit as st

# One colour per architecture, used on every page so a model is recognisable at a glance.
ARCH_COLORS = {"gmlp": "#1f5fbf", "amlp": "#2a9d4b", "transformer": "#d9541e"}
ARCH_LABELS = {"gmlp": "gMLP", "amlp": "aMLP", "transformer": "Transformer"}
DIVERGING = "RdBu_r"  # W and gates: blue negative, white zero, red positive
SEQUENTIAL = "Viridis"  # attention, influence, probabilities

_LAYOUT = go.Layout(
    font=dict(size=15),
    title=dict(font=dict(size=18)),
    margin=dict(l=60, r=20, t=60, b=50),
    hoverlabel=dict(font_size=15),
    colorway=list(ARCH_COLORS.values()) + ["#8e44ad", "#b8860b", "#555555", "#e377c2"],
)

_CSS = """
<style>
  .block-container {padding-top: 2.2rem; max-width: 1500px;}
  [data-testid="stMetricValue"] {font-size: 1.7rem;}
  [data-testid="stCaptionContainer"] {font-size: 0.95rem;}
</style>
"""


@functools.lru_cache(maxsize=2)
def template(large: bool = False) -> go.layout.Template:
    """plotly_white with larger fonts and the architecture colours (larger still in lecture mode: ``large``).

    Built once each: constructing a Template validates every default of plotly_white (~25 ms), and every chart
    of every rerun uses it. Figures copy it on assignment, so the shared object is never mutated.
    """
    base = go.layout.Template(pio.templates["plotly_white"])
    base.layout.update(_LAYOUT)
    if large:
        base.layout.update(font_size=17, title_font_size=20, hoverlabel_font_size=17)
    return base


def apply() -> None:
    """Tighten the page layout (called once per run)."""
    st.markdown(_CSS, unsafe_allow_html=True)


def arch_label(arch: str) -> str:
    return ARCH_LABELS.get(arch, arch)


# Every ASCII punctuation mark CommonMark lets a backslash escape, plus Streamlit's own ($ for LaTeX,
# : for :color[...] directives): text from a URL, a file name or a config is shown as text, never as markup
# (no image fetched, no link drawn).
_MARKDOWN_SPECIAL = re.compile(r"([!-/:-@\\[-`{-~])")


def escape_markdown(text: object) -> str:
    """``text`` with every markdown-active character backslash-escaped, for ``st.markdown``/``st.error``."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", str(text))
