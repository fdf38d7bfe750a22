"""What every page shares: the root, the zoo table and the models picked for comparison.

``setup()`` runs once per script run from ``app.py`` and draws the sidebar; pages call ``current()``.
The selection lives in session state (it survives page changes) and in the URL query string
(``?models=a,b&folder=sub``), so any view can be shared as a link.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard import loaders
from dashboard.catalog import zoo_frame
from dashboard.paths import PathRefused, configured_root, resolve_within
from dashboard.style import escape_markdown
from gmlp_core.models import ModelConfig
from gmlp_core.zoo import MAIN_COMPARISON

# The zoo's main comparison, selected when the URL names no models.
DEFAULT_MODELS = MAIN_COMPARISON
MAX_DEFAULT = 6
_KEY = "lens_context"


@dataclass
class Lens:
    """The shared state of one run: where checkpoints are read from, what is there (a typed catalog, built once
    per change of the folder's files), what is picked."""

    root: Path
    folder: Path
    catalog: loaders.Catalog
    selected: list[str] = field(default_factory=list)
    device: str = "cpu"

    @property
    def zoo(self) -> pd.DataFrame:
        """The zoo table (every checkpoint, loadable or not): read-only, shared by every session."""
        return self.catalog.table

    def checkpoints(
        self,
        task: str | None = None,
        selected_only: bool = True,
        where: Callable[[ModelConfig], bool] | None = None,
    ) -> list[loaders.Checkpoint]:
        """Loadable checkpoints: those picked in the sidebar in the order picked (all of the folder's, in the
        table's order, with ``selected_only=False``), of ``task`` when given, whose config passes ``where``
        (``lambda c: c.has_spatial_weights``): pages ask the typed config, never the table's strings."""
        every = self.catalog.checkpoints
        found = [every[n] for n in self.selected if n in every] if selected_only else list(every.values())
        return [
            c for c in found if (task is None or c.config.task == task) and (where is None or bool(where(c.config)))
        ]

    def names(
        self,
        task: str | None = None,
        selected_only: bool = True,
        where: Callable[[ModelConfig], bool] | None = None,
    ) -> list[str]:
        """The names of ``checkpoints(task, selected_only, where)``."""
        return [c.name for c in self.checkpoints(task, selected_only, where)]

    def checkpoint(self, name: str) -> loaders.Checkpoint:
        """The handle of checkpoint ``name`` (a loadable one of the folder; KeyError otherwise)."""
        try:
            return self.catalog.checkpoints[name]
        except KeyError:
            raise KeyError(f"no loadable checkpoint named {name!r} under {self.folder}") from None

    def label(self, name: str) -> str:
        """``name`` with its badges ("name · causal"), a ``format_func`` for pickers of checkpoint names."""
        return self.catalog.labels.get(name, name)

    def load(self, name: str) -> loaders.Loaded:
        """The shared model of checkpoint ``name`` (a loadable one of the folder)."""
        return loaders.load(self.checkpoint(name))


def _default_selection(ok: list[str]) -> list[str]:
    preferred = [n for n in DEFAULT_MODELS if n in ok]
    return preferred or ok[:MAX_DEFAULT]


def _url_list(key: str) -> list[str]:
    values = st.query_params.get_all(key)
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def setup(argv: Sequence[str], technical: bool = True) -> Lens:
    """Draw the sidebar (root, sub-folder, model picker, device) and remember the result for the pages.

    ``technical=False`` (lecture mode) leaves out the sub-folder box and the root and device line; the
    sub-folder chosen before stays in use.
    """
    root = configured_root(argv)
    sb = st.sidebar
    if "folder" not in st.session_state:
        st.session_state["folder"] = (_url_list("folder") or [""])[0]
    if technical:
        sb.text_input(
            "Checkpoint sub-folder",
            key="folder",
            help=f"A folder inside the checkpoint root {root}. Start the app with `-- --root DIR` to change the root.",
        )
    else:  # a widget's value is dropped after a run that does not draw it: keep it as a plain value
        st.session_state["folder"] = st.session_state["folder"]
    try:
        folder = resolve_within(root, st.session_state["folder"])
        if not folder.is_dir():
            raise PathRefused(f"{st.session_state['folder'][:200]!r} is not a folder under {root}")
    except (PathRefused, OSError) as err:
        sb.error(f"{escape_markdown(err)}. Showing the root instead.")
        folder = root
    catalog = loaders.catalog(folder) if folder.is_dir() else loaders.Catalog(zoo_frame([]), {}, {}, {})
    zoo = catalog.table
    ok = list(catalog.checkpoints)

    if "models" not in st.session_state:
        st.session_state["models"] = [n for n in _url_list("models") if n in ok] or _default_selection(ok)
    else:
        st.session_state["models"] = [n for n in st.session_state["models"] if n in ok]
    sb.multiselect(
        "Models to compare",
        ok,
        key="models",
        format_func=lambda name: catalog.labels.get(name, name),
        help="Kept across pages and in the page's link.",
    )
    if not ok:
        sb.info(no_models_hint(folder))
    selected = list(st.session_state["models"])

    st.query_params["models"] = ",".join(selected)
    if st.session_state["folder"].strip():
        st.query_params["folder"] = st.session_state["folder"].strip()
    elif "folder" in st.query_params:
        del st.query_params["folder"]

    device = loaders.device_name()
    broken = len(zoo) - len(ok)
    if technical:
        sb.caption(
            f"Root: {escape_markdown(folder)}  \n{len(ok)} checkpoints"
            + (f", {broken} unreadable (see Overview)" if broken else "")
            + f"  \nModels run on **{device}**"
        )
    lens = Lens(root=root, folder=folder, catalog=catalog, selected=selected, device=device)
    st.session_state[_KEY] = lens
    return lens


def no_models_hint(folder: Path) -> str:
    """What to do when ``folder`` holds no loadable checkpoint (markdown)."""
    return (
        f"No loadable checkpoints under {escape_markdown(folder)}. Build the demo zoo with "
        "`python -m gmlp_core zoo` (minutes on a CPU), train one with `python -m gmlp_core train`, clear the "
        "**Checkpoint sub-folder**, or start the app on another folder: `streamlit run dashboard/app.py -- --root DIR`."
    )


def set_selection(names: list[str]) -> None:
    """Callback for buttons that pick a set of models (runs before the sidebar widget is drawn)."""
    st.session_state["models"] = list(names)


def current() -> Lens:
    """The context built by ``setup()`` in this run (pages are only run through ``app.py``)."""
    lens = st.session_state.get(_KEY)
    if lens is None:
        st.error("Start the dashboard with `streamlit run dashboard/app.py`; pages do not run on their own.")
        st.stop()
    return lens
