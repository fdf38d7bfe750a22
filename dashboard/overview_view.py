"""The Overview page's table and one-click selections."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard.context import DEFAULT_MODELS, Lens
from gmlp_core.zoo import ABLATION_ENTRIES

ZOO_COLUMN_CONFIG = {
    "picked": st.column_config.CheckboxColumn("picked", help="Picked for comparison in the sidebar"),
    "params": st.column_config.NumberColumn("params", format="localized"),
    "non_embedding_params": st.column_config.NumberColumn("non-emb. params", format="localized"),
    "n": st.column_config.NumberColumn("n (tokens)", help="Sequence length: W is n x n"),
    "val_ppl": st.column_config.NumberColumn("val ppl", format="%.2f", help="MLM validation perplexity"),
    "val_accuracy": st.column_config.NumberColumn("val acc", format="percent", help="Validation accuracy"),
    "error": st.column_config.TextColumn("error", width="large"),
}


def display_zoo(lens: Lens) -> pd.DataFrame:
    """The zoo table as shown: what was picked and the scores first, the file path left out (and the
    error column when nothing is broken)."""
    df = lens.zoo.drop(columns=["path"], errors="ignore").copy()
    df.insert(0, "picked", df["name"].isin(lens.selected))
    if (df["error"].fillna("") == "").all():
        df = df.drop(columns="error")
    first = ["picked", "name", "status", "arch", "task", "val_ppl", "val_accuracy", "params", "non_embedding_params"]
    return df[first + [c for c in df.columns if c not in first]]


def preset_selections(lens: Lens) -> dict[str, list[str]]:
    """Named one-click selections, only those with at least one loadable checkpoint."""
    ok = lens.rows(selected_only=False)
    if ok.empty:
        return {}
    names = ok["name"].tolist()
    mlm = ok.loc[ok["task"] == "mlm", "name"].tolist()
    vision = ok.loc[ok["task"] == "vision", "name"].tolist()
    ablation = [n for n in names if n in ABLATION_ENTRIES]
    out = {
        "Main comparison": [n for n in DEFAULT_MODELS if n in names],
        "All MLM": mlm,
        "All vision": vision,
        "Gating ablation": ablation if len(ablation) > 2 else [],
        "Everything": names,
    }
    return {label: sel for label, sel in out.items() if sel}
