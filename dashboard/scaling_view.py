"""Scaling: every sweep CSV under the root and results/, power-law fits, the ablation and the paper's figures."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from dashboard import loaders
from dashboard.context import Lens
from gmlp_core.zoo import RESULTS_DIR

log = logging.getLogger(__name__)

ABLATION_COLUMNS = [
    "variant",
    "checkpoint",
    "arch",
    "gating",
    "params",
    "val_ppl",
    "our_rank",
    "paper_ppl",
    "paper_rank",
]


def sweep_table(lens: Lens) -> pd.DataFrame:
    """Rows of every sweep CSV under the checkpoint folder and ``results/`` (a user's own sweep included)."""
    folders = [lens.folder] + ([RESULTS_DIR] if RESULTS_DIR.resolve() != lens.folder.resolve() else [])
    df = loaders.sweep_results(folders)
    if df.empty:
        return df
    df = df.dropna(subset=["arch", "non_embedding_params", "val_loss"]).copy()
    if "val_ppl" not in df or df["val_ppl"].isna().any():
        import numpy as np

        df["val_ppl"] = df.get("val_ppl", pd.Series(index=df.index, dtype=float)).fillna(np.exp(df["val_loss"]))
    df["source"] = df["source"].map(lambda s: _short(Path(s), lens))
    return df.reset_index(drop=True)


def sweep_sources(df: pd.DataFrame) -> list[str]:
    """The sweep files, the demo sweep first, then by number of runs."""
    counts = df["source"].value_counts()
    return sorted(counts.index, key=lambda s: (s != "results/sweep_demo.csv", -counts[s], s))


def _short(path: Path, lens: Lens) -> str:
    for base, label in ((lens.folder, "root"), (RESULTS_DIR, "results")):
        try:
            return f"{label}/{path.resolve().relative_to(base.resolve())}"
        except ValueError:
            continue
    return path.name


def _ablation_columns(df: pd.DataFrame) -> pd.DataFrame:
    """The columns worth showing, without the ones that are empty for every variant (e.g. no paper number)."""
    return df[[c for c in ABLATION_COLUMNS if c in df.columns]].dropna(axis=1, how="all")


def ablation(lens: Lens) -> tuple[pd.DataFrame, str]:
    """The gating ablation: from the checkpoints under the folder when they are there, else results/ablation.csv."""
    from gmlp_core.zoo import ablation_table

    try:
        live = ablation_table(lens.folder)
    except Exception as err:  # a broken ablation checkpoint must not take the page down
        log.info("ablation from %s failed: %s", lens.folder, err)
        live = pd.DataFrame()
    if len(live) >= 2:
        return _ablation_columns(live), f"checkpoints under {lens.folder}"
    csv = RESULTS_DIR / "ablation.csv"
    if csv.is_file():
        try:
            return _ablation_columns(pd.read_csv(csv)), "results/ablation.csv"
        except (OSError, ValueError) as err:
            log.warning("cannot read %s: %s", csv, err)
    return pd.DataFrame(), ""


def paper_points(y: str) -> pd.DataFrame:
    """The paper's MLM perplexities (total parameters, BERT setup on C4) as x/y points for the overlay."""
    from gmlp_core.reference import BERT_FULL_SETUP, paper_results

    ref = paper_results()
    # Only the full BERT setup: the ablation rows (Table 1) come from shorter training and would mix two setups.
    ref = ref[(ref["task"] == "mlm") & (ref["metric"] == "ppl") & (ref["setup"] == BERT_FULL_SETUP)].copy()
    if ref.empty:
        return ref
    import numpy as np

    ref["x"] = ref["params_m"] * 1e6
    ref["y"] = ref["value"] if y == "val_ppl" else np.log(ref["value"])
    return ref
