"""Scaling: every sweep CSV under the root and results/, power-law fits, the ablation and the paper's models."""

from __future__ import annotations

import functools
import importlib
import logging
import math
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard import loaders
from dashboard.context import Lens
from dashboard.plots import tick_label
from gmlp_core.scaling import fit_power_law, paper_points
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


def unigram_baseline(lens: Lens, checkpoints: list[str]) -> float | None:
    """The unigram perplexity that training logged for these checkpoints (``metrics.json``: a model that
    ignores context, scored on the same validation targets), or None when they do not all share one."""
    from gmlp_core.checkpoints import load_metrics

    ok = set(lens.names(selected_only=False))
    values = set()
    for name in checkpoints:
        if name not in ok:
            return None
        value = load_metrics(lens.checkpoint(name).path).get("unigram_ppl")
        if value is None:
            return None
        values.add(round(float(value), 6))
    return values.pop() if len(values) == 1 else None


@st.cache_data(max_entries=1, show_spinner=False)
def paper_models() -> pd.DataFrame:
    """The paper's MLM models on our axes (``gmlp_core.scaling.paper_points``; sizes counted once)."""
    return paper_points()


def warm_jobs() -> list[tuple[str, Callable[[], object]]]:
    """The Scaling page's slow first steps, for the warm-up: the paper's models (each preset's parameters counted
    on the meta device, ~1 s for them all) and the fitting code (SciPy's optimiser, imported on first use)."""
    return [
        ("Scaling: the paper's models", paper_models),
        ("Scaling: the fitting code", functools.partial(importlib.import_module, "scipy.optimize")),
    ]


def paper_slopes(points: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """Per architecture, the pure power law through the paper's full-setup models that have a perplexity
    (base and large: two points, so no error bar), labelled for ``plots.slopes``."""
    from gmlp_core.scaling import PAPER_SERIES

    known = points[(points["series"] == PAPER_SERIES["full"])].dropna(subset=[y])
    fits = fit_power_law(known, x=x, y=y, offset=False)
    return fits.assign(label=f"paper, {PAPER_SERIES['full']}, vs {x.replace('_', ' ')}: 2 points (unverified)")


def what_our_runs_show(df: pd.DataFrame, points: pd.DataFrame) -> str:
    """What this sweep can and cannot show, with its own numbers (markdown)."""
    ours = df["non_embedding_params"]
    paper = points["non_embedding_params"]
    gap = math.log10(paper.min() / ours.max()) if len(ours) and ours.max() > 0 else float("nan")
    budgets = df["tokens_seen"].nunique() if "tokens_seen" in df else 0
    return (
        f"**What these runs can show.** Whether loss falls with size for each architecture, and whether the "
        f"fitted slopes alpha differ by more than their error bars, between {_si(ours.min())} and {_si(ours.max())} "
        f"non-embedding parameters, at {'one fixed token budget' if budgets == 1 else f'{budgets} token budgets'}.\n\n"
        f"**What they cannot show.** The paper's claim itself: its smallest model ({_si(paper.min())}) is "
        f"{gap:.1f} decades above our largest, trained on C4 for 125k-1M steps, so our fits are not an extrapolation "
        "to it and our perplexities are not comparable with its (other data, tokenizer and vocabulary). A fixed "
        "token budget favours small models (large ones are further from convergence), and each point is one "
        "training run: alpha's error bar comes from the scatter around the fit, not from repeated seeds. Nothing "
        "here is finetuned, so the paper's finetuning results (MNLI, SQuAD) are out of reach."
    )


def _si(value: float) -> str:
    return tick_label(float(value))
