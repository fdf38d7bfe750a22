"""Lecture mode on screen: the sidebar switch, a step bar above every page, larger text.

``?lecture=1&step=N`` (or the sidebar's **Lecture mode** switch) turns it on. A step change (Next, Back,
the sidebar's list of steps, the URL of a new session) is applied once: ``begin()`` picks the step's models
before the sidebar's model picker is drawn, ``bar()`` sets the page's widgets and switches to the step's
page. Between step changes the lecturer may use every control as usual. The steps are in ``lecture.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import streamlit as st

from dashboard import registry
from dashboard.lecture import STEPS, parse_step, url_flag
from dashboard.style import escape_markdown

if TYPE_CHECKING:
    from dashboard.context import Lens

ON = "lecture"  # the sidebar switch
AT = "lecture-at"  # the current step, 0-based (kept while lecture mode is off, to resume there)
GO = "lecture-go"  # a step was chosen: apply its models, inputs and page on this run
PICK = "lecture-pick"  # the sidebar's list of steps

# Larger text for a projector; plotly figures get a larger template (style.template(large=True)).
_CSS = """
<style>
  [data-testid="stMain"] [data-testid="stMarkdownContainer"] :is(p, li) {font-size: 1.25rem; line-height: 1.5;}
  [data-testid="stMain"] [data-testid="stCaptionContainer"] p {font-size: 1.1rem;}
  [data-testid="stMain"] [data-testid="stWidgetLabel"] p {font-size: 1.15rem;}
  [data-testid="stMain"] button [data-testid="stMarkdownContainer"] p {font-size: 1.05rem;}
  [data-testid="stMain"] :is(input, textarea, [data-baseweb="select"] div) {font-size: 1.15rem;}
  [data-testid="stMain"] h1 {font-size: 2.9rem;}
  [data-testid="stMain"] h2 {font-size: 2.2rem;}
  [data-testid="stMain"] h3 {font-size: 1.7rem;}
  .st-key-lecture-bar [data-testid="stMarkdownContainer"] p {font-size: 1.35rem;}
</style>
"""


def is_on() -> bool:
    """Whether this session is in lecture mode."""
    return bool(st.session_state.get(ON, False))


def sidebar_state() -> str:
    """``st.set_page_config``'s sidebar state: collapsed when the URL opens a lecture (the room sees the page)."""
    return "collapsed" if url_flag(st.query_params.get("lecture")) else "auto"


def _go(step: int) -> None:
    st.session_state[AT] = step
    st.session_state[GO] = True


def _picked() -> None:
    _go(st.session_state[PICK])


def _toggled() -> None:
    st.session_state[GO] = bool(st.session_state[ON])  # turning it on resumes at the remembered step


def begin() -> bool:
    """Draw the switch (and, when on, the list of steps); on a step change pick its models.

    Runs before ``context.setup`` draws the model picker, whose key this sets. Returns whether lecture mode is on.
    """
    if ON not in st.session_state:  # a new session: the URL decides
        on = url_flag(st.query_params.get("lecture"))
        st.session_state[ON] = on
        st.session_state[AT] = parse_step(st.query_params.get("step"))
        st.session_state[GO] = on
    st.session_state.setdefault(AT, 0)
    sb = st.sidebar
    sb.toggle(
        "Lecture mode",
        key=ON,
        on_change=_toggled,
        help="Walk through the Guide's story with Next and Back: each step opens its page with its models and "
        "inputs. Larger text, fewer controls. Link: `?lecture=1&step=N`.",
    )
    if not is_on():
        return False
    st.markdown(_CSS, unsafe_allow_html=True)
    st.session_state[PICK] = st.session_state[AT]
    sb.radio(
        "Lecture steps",
        range(len(STEPS)),
        index=None,
        key=PICK,
        format_func=lambda i: f"{i + 1}. {STEPS[i].title}",
        on_change=_picked,
    )
    step = STEPS[st.session_state[AT]]
    if st.session_state.get(GO) and step.models:
        st.session_state["models"] = list(step.models)  # context.setup keeps only the loadable ones
    return True


def bar(lens: Lens, pages: Mapping[str, st.Page], current: st.Page) -> None:
    """The step bar above the page; on a step change set the page's inputs and open the step's page."""
    if not is_on():
        for key in ("lecture", "step"):
            if key in st.query_params:
                del st.query_params[key]
        return
    at = st.session_state[AT]
    step = STEPS[at]
    available = lens.names(selected_only=False)
    st.query_params["lecture"] = "1"
    st.query_params["step"] = str(at + 1)
    if st.session_state.get(GO):
        st.session_state[GO] = False
        # Before the page draws its widgets, so they open with these values.
        st.session_state.update(step.resolved_inputs(available, lambda name: lens.checkpoint(name).config.n_layers))
        if pages[step.page].url_path != current.url_path:
            st.switch_page(pages[step.page], query_params=st.query_params.to_dict())

    with st.container(border=True, key="lecture-bar"):
        # One row that wraps on a narrow screen: the step's title, then Back and Next together at their natural width.
        row = st.container(horizontal=True, vertical_alignment="center")
        row.markdown(f"**Step {at + 1} of {len(STEPS)}: {step.title}**", width="stretch")
        buttons = row.container(horizontal=True, width="content")
        buttons.button(
            "Back",
            key="lecture-back",
            on_click=_go,
            args=(at - 1,),
            disabled=at == 0,
            icon=":material/arrow_back:",
        )
        buttons.button(
            "Next",
            key="lecture-next",
            on_click=_go,
            args=(at + 1,),
            disabled=at == len(STEPS) - 1,
            type="primary",
            icon=":material/arrow_forward:",
            icon_position="right",
        )
        st.markdown(step.talk)
        if pages[step.page].url_path != current.url_path:
            st.button(
                f"Open this step's page ({registry.page(step.page).title})",
                key="lecture-return",
                on_click=_go,
                args=(at,),
                type="tertiary",
                icon=":material/undo:",
            )
        missing = step.missing(available)
        if missing:
            st.warning(
                f"This step shows {escape_markdown(', '.join(missing))}, which "
                f"{'is' if len(missing) == 1 else 'are'} not under {escape_markdown(lens.folder)}. Build the demo "
                "zoo with `python -m gmlp_core zoo` (minutes on a CPU); until then the page shows what it can."
            )
