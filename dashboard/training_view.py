"""Training curves: every checkpoint's metrics.jsonl in one tidy table."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import loaders, plots, widgets
from dashboard.context import Lens

METRIC_HELP = {
    "loss": "Training loss on the last batch before each evaluation (noisy: one batch).",
    "val_loss": "Validation loss on held-out data: the fair comparison between models.",
    "val_ppl": "Validation perplexity = exp(validation loss) for MLM: the effective number of equally likely guesses.",
    "val_accuracy": "Validation accuracy: masked tokens predicted exactly (MLM) or images classified correctly.",
    "tokens_per_s": "Training throughput in tokens (or patches) per second.",
    "lr": "Learning rate (warm-up, then cosine decay).",
    "val_short_ppl": "Perplexity on short, padded sequences: how well the model copes with padding.",
    "unigram_ppl": "Perplexity of a model that ignores context (word frequencies only): the bar to beat.",
}


# What the page calls each logged column (the logs keep their short names; the CSV download too).
METRIC_LABELS = {
    "loss": "training loss",
    "val_loss": "validation loss",
    "val_ppl": "validation perplexity",
    "val_accuracy": "validation accuracy",
    "tokens_per_s": "throughput (tokens per second)",
    "lr": "learning rate",
    "val_short_ppl": "perplexity on short, padded inputs",
    "unigram_ppl": "unigram baseline perplexity",
}
X_LABELS = {"step": "training step", "elapsed_s": "time since the start of training (s)"}


def training_logs(lens: Lens, names: list[str]) -> pd.DataFrame:
    """The logs of ``names`` (those that have one), concatenated, with name, arch and task columns."""
    frames = []
    for name in names:
        checkpoint = lens.checkpoint(name)
        df = loaders.metrics_log(checkpoint)
        if df.empty or "step" not in df:
            continue
        df = df.sort_values("step").copy()
        df.insert(0, "name", name)
        df.insert(1, "arch", checkpoint.config.arch)
        df.insert(2, "task", checkpoint.config.task)
        frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def log_notes(lens: Lens, names: list[str]) -> dict[str, list[str]]:
    """Per checkpoint, what its log reader left out (bad rows, values that are not numbers), when anything."""
    notes = {name: loaders.metrics_log_notes(lens.checkpoint(name)) for name in names}
    return {name: found for name, found in notes.items() if found}


def metric_chart(logs: pd.DataFrame, x: str, metric: str, key: str) -> None:
    """One metric's curves with readable axis titles, and what the metric means under the chart."""
    log_y = metric in ("loss", "val_loss") or metric.endswith("ppl")  # ppl falls from thousands to tens
    title, label = METRIC_LABELS[metric], METRIC_LABELS[metric]
    fig = plots.curves(
        logs, x, metric, title=title[0].upper() + title[1:], log_y=log_y, x_title=X_LABELS[x], y_title=label
    )
    widgets.chart(fig, key=key)
    st.caption(METRIC_HELP[metric])
