"""The Overview page's table, whose "picked" ticks change the selection, and one-click selections."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import widgets
from dashboard.context import DEFAULT_MODELS, Lens, set_selection
from dashboard.style import model_badges
from gmlp_core.zoo import ABLATION_ENTRIES

ZOO_COLUMN_CONFIG = {
    "picked": st.column_config.CheckboxColumn(
        "picked", help="Tick to compare this model on the other pages (the same pick as the sidebar's)"
    ),
    "params": st.column_config.NumberColumn("params", format="localized"),
    "non_embedding_params": st.column_config.NumberColumn("non-emb. params", format="localized"),
    "n": st.column_config.NumberColumn("n (tokens)", help="Sequence length: W is n x n"),
    "val_ppl": st.column_config.NumberColumn("val ppl", format="%.2f", help="MLM validation perplexity"),
    "val_accuracy": st.column_config.NumberColumn("val acc", format="percent", help="Validation accuracy"),
    "cloze": st.column_config.TextColumn(
        "cloze top-5",
        help="Of the hand-written Python sentences of the cloze suite (python -m gmlp_core cloze), how many "
        "get an accepted word among the model's 5 first guesses: what to expect when you type a sentence",
    ),
    "kind": st.column_config.TextColumn(
        "kind",
        help="What sets the model apart from the paper's plain gMLP (bidirectional, split gating, dense W): "
        "causal, Toeplitz W, a gating ablation. Empty: a plain model",
    ),
    "causal": st.column_config.CheckboxColumn("causal", help="Causal: each position sees only the ones before it"),
    "spatial": st.column_config.TextColumn("W", help="dense n x n W, or Toeplitz (shift-invariant by construction)"),
    "error": st.column_config.TextColumn("error", width="large"),
}


def display_zoo(lens: Lens) -> pd.DataFrame:
    """The zoo table as shown: what was picked and the scores first, the file path left out (and the
    error column when nothing is broken)."""
    df = lens.zoo.drop(columns=["path"], errors="ignore").copy()
    df.insert(0, "picked", df["name"].isin(lens.selected))
    df["kind"] = [", ".join(model_badges(row)) for row in df.to_dict("records")]
    if (df["error"].fillna("") == "").all():
        df = df.drop(columns="error")
    first = ["picked", "name", "status", "arch", "task", "val_ppl", "val_accuracy", "kind", "cloze", "params"]
    first.append("non_embedding_params")
    return df[first + [c for c in df.columns if c not in first]]


def preset_selections(lens: Lens) -> dict[str, list[str]]:
    """Named one-click selections, only those with at least one loadable checkpoint."""
    names = lens.names(selected_only=False)
    if not names:
        return {}
    mlm, vision = lens.names("mlm", selected_only=False), lens.names("vision", selected_only=False)
    ablation = [n for n in names if n in ABLATION_ENTRIES]
    out = {
        "Main comparison": [n for n in DEFAULT_MODELS if n in names],
        "All MLM": mlm,
        "All vision": vision,
        "Gating ablation": ablation if len(ablation) > 2 else [],
        "Everything": names,
    }
    return {label: sel for label, sel in out.items() if sel}


def picks_after_edit(
    shown: list[str], selected: list[str], ok: list[str], edited_rows: Mapping[Any, Mapping[str, Any]]
) -> list[str]:
    """The selection after ticking or unticking "picked" cells of the zoo table.

    ``shown`` are the table's names in row order, ``edited_rows`` is ``st.data_editor``'s ``{row: {column:
    value}}``; only loadable checkpoints (``ok``) can be picked, and the order of the pick is kept.
    """
    picked = list(selected)
    for row, changes in edited_rows.items():
        if "picked" not in changes:
            continue
        name = shown[int(row)]
        if changes["picked"] and name in ok and name not in picked:
            picked.append(name)
        elif not changes["picked"] and name in picked:
            picked.remove(name)
    return picked


def zoo_picker(lens: Lens) -> None:
    """The zoo table with a working "picked" column (every other column read-only) and a CSV download."""
    df = display_zoo(lens)
    # A new key whenever the pick changes, so the editor never replays ticks the sidebar has since undone.
    key = "zoo-" + hashlib.sha1(",".join(lens.selected).encode()).hexdigest()[:12]
    ok = lens.names(selected_only=False)

    def apply() -> None:
        edits = st.session_state[key].get("edited_rows", {})
        set_selection(picks_after_edit(df["name"].tolist(), lens.selected, ok, edits))

    st.data_editor(
        df,
        hide_index=True,
        column_config=ZOO_COLUMN_CONFIG,
        disabled=[c for c in df.columns if c != "picked"],
        key=key,
        on_change=apply,
    )
    widgets.download_csv(df, "zoo")
