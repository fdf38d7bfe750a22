"""Small building blocks every page uses: tables with a CSV download, charts, pickers, empty states."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard.lecture_bar import is_on as lecturing
from dashboard.plots import finish
from dashboard.style import escape_markdown
from gmlp_core.checkpoints import TYPED_TEXT_CHARS, CheckpointError
from gmlp_core.data.images import BadImage
from gmlp_core.data.tokenizer import TokenizerFailure
from gmlp_core.inference import BadInput

log = logging.getLogger(__name__)

USER_ERRORS: tuple[type[Exception], ...] = (BadInput, BadImage, CheckpointError, TokenizerFailure)

# Every text box reads at most this many characters (the models read at most seq_len word pieces anyway): the
# length every tokenizer was timed on, worst case, when it was loaded (gmlp_core.checkpoints), so no text typed
# here holds the server longer than that allows. The library refuses far longer text (inference.MAX_TEXT_CHARS).
TEXT_WINDOW = TYPED_TEXT_CHARS

# The width of a chart drawn next to another: two fit a wide screen, and each stays readable when a
# 1024 px screen stacks them.
PANEL_WIDTH = 480

PLOTLY_CONFIG = {"displaylogo": False, "toImageButtonOptions": {"format": "png", "scale": 2}}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "table"


def text_window(text: str) -> str:
    """The first ``TEXT_WINDOW`` characters of a typed text, with a warning when that cuts it."""
    if len(text) > TEXT_WINDOW:
        st.warning(f"The text has {len(text):,} characters; only the first {TEXT_WINDOW:,} are read.")
        return text[:TEXT_WINDOW]
    return text


# A typed text travels in the page's URL (``typed_text``) up to this many characters: a reload or a shared link
# opens the page with it; longer text is kept in the session but not put in the link.
URL_TEXT_CHARS = 1_000
_URL_READ = "_typed_text_read_from_url"  # the text boxes whose URL value this session has taken


def typed_text(
    label: str, key: str, default: str = "", *, where: Any = None, area: bool = False, **options: Any
) -> str:
    """A text box whose text lives in the URL as ``?<key>=...``, so a reload or a shared link opens the page with
    the same sentence. A session takes the URL's text the first time it draws the box (over ``default`` and any
    value set before); afterwards the box's text is written to the URL whenever it differs from ``default``.
    Returns the text cut to ``TEXT_WINDOW``."""
    read = st.session_state.setdefault(_URL_READ, set())
    if key not in read:
        read.add(key)
        if key in st.query_params:
            st.session_state[key] = st.query_params[key][:TEXT_WINDOW]
    st.session_state.setdefault(key, default)
    where = st if where is None else where
    value = (where.text_area if area else where.text_input)(label, key=key, **options)
    if value and value != default and len(value) <= URL_TEXT_CHARS:
        st.query_params[key] = value
    elif key in st.query_params:
        del st.query_params[key]
    return text_window(value)


def table(df: pd.DataFrame, name: str, *, column_config: dict | None = None, height: int | str = "auto") -> None:
    """A table with a "Download CSV" button under it (``name`` becomes the file name)."""
    st.dataframe(df, hide_index=True, column_config=column_config, height=height)
    download_csv(df, name)


def chart(fig: go.Figure, key: str | None = None) -> None:
    """An interactive plotly figure in the house template (hover shows tokens, positions and values)."""
    st.plotly_chart(finish(fig, lecturing()), theme=None, key=key, config=PLOTLY_CONFIG)


def chart_row(figs: Sequence[go.Figure], key: str) -> None:
    """Fixed-size figures (``plots.panel``) side by side, wrapping onto the next line where the screen is
    narrow (a projector at 1024 px): panels keep a readable size instead of shrinking to thumbnails."""
    with st.container(horizontal=True, gap="medium", key=f"row-{key}"):
        for i, fig in enumerate(figs):
            finish(fig, lecturing())
            width = int(fig.layout.width) if fig.layout.width else "stretch"
            st.plotly_chart(fig, theme=None, key=f"{key}-{i}", config=PLOTLY_CONFIG, width=width)


def models_hint(what: str) -> str:
    """Why a page has nothing to show: no checkpoint under the folder at all (and how to get one), or
    none of the needed kind picked in the sidebar."""
    from dashboard import context  # context draws the sidebar with these widgets: import it late

    lens = context.current()
    if not lens.names(selected_only=False):
        return context.no_models_hint(lens.folder)
    return (
        f"Pick at least one {what} in the sidebar (**Models to compare**). "
        "The Overview page lists every checkpoint under the root."
    )


def need_models(names: Sequence[str], what: str) -> None:
    """Stop the page with a hint when no model of the needed kind is picked."""
    if not names:
        st.info(models_hint(what))
        st.stop()


def download_csv(df: pd.DataFrame, name: str) -> None:
    """A "Download CSV" button for ``df`` (``name`` becomes the file name)."""
    st.download_button(
        "Download CSV",
        df.to_csv(index=False).encode("utf-8"),
        file_name=f"{_slug(name)}.csv",
        mime="text/csv",
        key=f"csv-{_slug(name)}",
        icon=":material/download:",
    )


def columns_for(n: int) -> list:
    """Slots for ``n`` side-by-side panels of ``PANEL_WIDTH``: three to a row on a wide screen, one on a
    1024 px projector with the sidebar open. They wrap instead of shrinking (``st.columns`` would shrink)."""
    row = st.container(horizontal=True, gap="medium")
    return [row.container(width=PANEL_WIDTH) for _ in range(n)]


@contextmanager
def guard(label: str) -> Iterator[None]:
    """Show what went wrong in ``label`` as an error box (never a traceback) and keep the page serving.

    Errors the user caused (bad text, a bad image, an unreadable checkpoint) carry a message that says
    how to fix them; anything else is logged with its traceback for the maintainers.
    """
    try:
        yield
    except USER_ERRORS as err:
        st.error(f"{label}: {escape_markdown(err)}")
    except BaseException as err:  # a bug must not take the page down for everyone
        # Streamlit's own control flow (st.stop, reruns) and interpreter exits pass through; a Rust panic in
        # tokenizers (PanicException, a BaseException) is caught like any bug.
        if not isinstance(err, Exception) and type(err).__name__ != "PanicException":
            raise
        log.exception("unexpected error in %s", label)
        st.error(
            f"{label}: unexpected error ({type(err).__name__}: {escape_markdown(err)}). The server log has the details."
        )
