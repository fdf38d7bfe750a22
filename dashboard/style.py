"""Look and feel: one plotly template for every figure, sized for a lecture projector."""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
import streamlit as st

from gmlp_core.models import ModelConfig
from gmlp_core.models.archs import ARCH_SPECS
from gmlp_core.models.archs import arch_label as arch_label

# One colour per architecture (``ArchSpec.color``), used on every page so a model is recognisable at a glance.
ARCH_COLORS = {name: spec.color for name, spec in ARCH_SPECS.items()}
DIVERGING = "RdBu_r"  # W and gates: blue negative, white zero, red positive
SEQUENTIAL = "Viridis"  # attention, influence, probabilities

_LAYOUT = go.Layout(
    font=dict(size=15),
    title=dict(font=dict(size=18)),
    margin=dict(l=60, r=20, t=60, b=50),
    hoverlabel=dict(font_size=15),
    colorway=list(dict.fromkeys([*ARCH_COLORS.values(), "#8e44ad", "#b8860b", "#555555", "#e377c2"])),
)

_CSS = """
<style>
  .block-container {padding-top: 2.2rem; max-width: 1700px;}
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


# The house template is plotly's default in the app's process, so a figure is born with it (no second template to
# validate and replace: that replacement cost ~30 ms a figure, a third of drawing a new matrix); lecture mode's
# larger one is applied over it by ``plots.finish``.
HOUSE_TEMPLATE = "gmlp_lens"
pio.templates[HOUSE_TEMPLATE] = template(large=False)
pio.templates.default = HOUSE_TEMPLATE


def apply() -> None:
    """Tighten the page layout (called once per run)."""
    st.markdown(_CSS, unsafe_allow_html=True)


# What sets a model apart from the paper's plain gMLP (bidirectional, split gating, dense W): a short word for each
# difference, its badge colour and what it means (the badge's tooltip). Every page names models with these words.
BADGES: dict[str, tuple[str, str]] = {
    "causal": ("orange", "Causal: each position sees only itself and the positions to its left."),
    "Toeplitz W": (
        "violet",
        "W is one weight per offset j - i: shift-invariant by construction (its shift invariance is 1 because of "
        "the architecture, not learned).",
    ),
    "multiplicative gating": ("blue", "Gating without the split: s(Z) = Z * (W LN(Z) + b) (an ablation)."),
    "additive gating": ("blue", "W's mixing added instead of gating: s(Z) = Z + (W LN(Z) + b) (an ablation)."),
    "no gating": ("blue", "Mixing with no gating at all: s(Z) = W LN(Z) + b (an ablation)."),
    "no token mixing": ("gray", "Identity gating: no W, so tokens never mix (an ablation)."),
}
_GATING_BADGE = {
    "multiplicative": "multiplicative gating",
    "additive": "additive gating",
    "linear": "no gating",
    "identity": "no token mixing",
}


def model_badges(model: ModelConfig | Mapping[str, Any]) -> list[str]:
    """The words (keys of ``BADGES``) that set ``model`` apart from a plain bidirectional split-gating model.

    ``model`` is a config or a row of ``config_summary`` (the zoo table has its ``causal``, ``spatial`` and
    ``gating`` columns), so a page can label a list of names without loading a config per name.
    """
    if isinstance(model, ModelConfig):
        causal, spatial, mixing = model.causal, model.spatial if model.has_spatial_weights else "", model.token_mixing
    else:
        causal = model.get("causal")
        causal = bool(causal) if pd.notna(causal) else False  # a broken row has None
        spatial, mixing = model.get("spatial"), model.get("gating")
    words = ["causal"] if causal else []
    if spatial == "toeplitz":
        words.append("Toeplitz W")
    if mixing in _GATING_BADGE:
        words.append(_GATING_BADGE[mixing])
    return words


def model_label(name: str, badges: list[str]) -> str:
    """ "name · causal · Toeplitz W": a model's name with its badges, as a picker shows it."""
    return " · ".join([name, *badges])


def model_labels(zoo: pd.DataFrame) -> Callable[[str], str]:
    """A ``format_func`` for pickers of checkpoint names: each name with its badges, read from the zoo table."""
    rows = zoo.to_dict("records") if not zoo.empty else []
    labels = {row["name"]: model_label(row["name"], model_badges(row)) for row in rows}
    return lambda name: labels.get(name, name)


def show_badges(config: ModelConfig) -> None:
    """The model's badges in a row (nothing for a plain model), each with what it means as its tooltip."""
    words = model_badges(config)
    if not words:
        return
    with st.container(horizontal=True, gap="small"):
        for word in words:
            color, meaning = BADGES[word]
            st.badge(word, color=color, help=meaning)


# Every ASCII punctuation mark CommonMark lets a backslash escape, plus Streamlit's own ($ for LaTeX,
# : for :color[...] directives): text from a URL, a file name or a config is shown as text, never as markup
# (no image fetched, no link drawn).
_MARKDOWN_SPECIAL = re.compile(r"([!-/:-@\\[-`{-~])")


def escape_markdown(text: object) -> str:
    """``text`` with every markdown-active character backslash-escaped, for ``st.markdown``/``st.error``."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", str(text))


def escape_label(text: object) -> str:
    """``text`` for a plotly label (title, tick label, legend entry, hover text, annotation), shown as written.

    plotly draws labels as its own HTML: ``<a href=...>`` becomes a link, ``<b>`` bold text, and a hover template
    fills in any ``%{...}``. So ``&``, ``<`` and ``>`` become entities and ``%{`` becomes ``&#37;{`` (plotly
    decodes them back for the reader); a newline becomes a line break, which plotly would otherwise drop.
    Every figure builder in ``dashboard.plots`` passes the text it is given through this, once.
    """
    escaped = html.escape(str(text), quote=False).replace("%{", "&#37;{")
    return escaped.replace("\r\n", "\n").replace("\n", "<br>")
