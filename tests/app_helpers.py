"""Helpers for the AppTest tests: start the app, switch pages, read back plotly figures."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from streamlit.testing.v1 import AppTest

from dashboard import registry

APP = Path(__file__).resolve().parent.parent / "dashboard" / "app.py"
PAGES = {p.key: p.file for p in registry.PAGES}  # page key -> path relative to the entrypoint


def start(page: str = "overview", query: dict[str, str] | None = None) -> AppTest:
    """Run the app (root from ``GMLP_LENS_ROOT``) and switch to ``page``; fails on any exception."""
    at = AppTest.from_file(str(APP), default_timeout=90)
    for k, v in (query or {}).items():
        at.query_params[k] = v
    at.run()
    assert_ok(at)
    if not registry.page(page).default:
        at.switch_page(PAGES[page]).run()
        assert_ok(at)
    return at


def assert_ok(at: AppTest) -> None:
    """No exception box and no unexpected-error message on the page."""
    assert not at.exception, [e.value for e in at.exception]
    unexpected = [e.value for e in at.error if "unexpected error" in e.value]
    assert not unexpected, unexpected


def figures(at: AppTest) -> list[go.Figure]:
    """Every plotly chart on the page, decoded."""
    return [pio.from_json(el.proto.spec) for el in at.get("plotly_chart")]


def figure_titles(at: AppTest) -> list[str]:
    return [f.layout.title.text or "" for f in figures(at)]


def texts(at: AppTest) -> str:
    """All markdown, captions, titles, headers and alerts of the page, joined (for substring checks)."""
    parts = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "error", "warning", "info", "success"):
        parts.extend(str(el.value) for el in getattr(at, kind))
    return unescape("\n".join(parts))


def unescape(text: str) -> str:
    """Markdown source as a reader sees it: backslash escapes (``escape_markdown``) removed."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", text)


def array(value: object) -> np.ndarray:
    """A figure's data field as a float array (plotly 6+ ships arrays as base64 "bdata" dicts)."""
    if isinstance(value, dict) and "bdata" in value:
        flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        shape = value.get("shape")
        if isinstance(shape, str):
            shape = tuple(int(s) for s in shape.split(","))
        return flat.reshape(shape).astype(float) if shape else flat.astype(float)
    return np.asarray(value, dtype=float)
