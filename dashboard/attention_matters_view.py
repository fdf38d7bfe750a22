"""When attention matters: the finetuning study's table and the live sentence pair, computed for the page.

The study's rows come from ``results/finetune.csv`` (``gmlp_core.finetune_study``); the live part runs every
checkpoint under the folder that was finetuned on a sentence-pair classification task (the zoo's ``match-*``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import torch

from dashboard import loaders, plots, widgets
from dashboard.context import Lens
from dashboard.style import arch_label, escape_markdown
from gmlp_core.analysis.pairs import (
    PairReading,
    alignment_table,
    effective_mixing,
    pair_maps,
    pair_predictions,
    read_pair,
    same_word_share,
)
from gmlp_core.data.finetune import FINETUNE_TASKS, Example, load_task_splits
from gmlp_core.finetune_study import TASKS, chosen_runs, summary_table
from gmlp_core.reference import paper_finetuning
from gmlp_core.train.finetune import finetune_record
from gmlp_core.zoo import PAIR_MODELS, RESULTS_DIR

STUDY_CSV = RESULTS_DIR / "finetune.csv"
CONTROLS_CSV = RESULTS_DIR / "finetune_controls.csv"
MAX_MODELS = 4  # pair models shown side by side (a projector fits three)
ALIGNMENT_PAIRS = 200  # test pairs the same-word share is averaged over
EXAMPLES_PER_KIND = 6


def task_labels() -> dict[str, str]:
    """The study's tasks in order, each with the paper's task it stands for as the axis label (two lines, so a
    1024 px projector fits them side by side)."""
    return {t: f"{t}\n({FINETUNE_TASKS[t].analogue.split(' (')[0]})" for t in TASKS}


@st.cache_data(max_entries=8, show_spinner=False)
def _read_csv(path: str, mtime: int) -> pd.DataFrame:
    return pd.read_csv(path)


def _csv(path: Path) -> pd.DataFrame:
    return _read_csv(str(path), path.stat().st_mtime_ns) if path.is_file() else pd.DataFrame()


def study() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The reported runs (every seed at the chosen rate, and from scratch) and their mean +- sd per cell."""
    rows = _csv(STUDY_CSV)
    if rows.empty:
        return rows, rows
    rows = rows[rows["task"].isin(TASKS)]
    return chosen_runs(rows), summary_table(rows)


def controls() -> pd.DataFrame:
    """Every control of the study: the model trained on one segment of the pair task (``--stage control``) and
    those that needed no training (bag of words, attention averaged over inputs), test scores in %."""
    rows = []
    study_rows = _csv(STUDY_CSV)
    if not study_rows.empty:
        for r in study_rows[
            study_rows["task"].map(lambda t: FINETUNE_TASKS.get(t) is not None and FINETUNE_TASKS[t].control)
        ].itertuples():
            rows.append(
                {
                    "task": r.task,
                    "control": f"{r.source} finetuned on {FINETUNE_TASKS[r.task].description.removeprefix('control: ')}",
                    "seed": r.seed,
                    "test %": 100 * r.test_metric,
                }
            )
    table = _csv(CONTROLS_CSV)
    for r in table.itertuples() if not table.empty else ():
        if r.control == "bag of words":
            what = f"bag of words over {r.segments} ({r.features}), logistic regression"
            rows.append({"task": r.task, "control": what, "test %": 100 * r.test_accuracy})
        else:
            what = (
                f"{r.checkpoint}: attention averaged over validation inputs (as finetuned: {100 * r.test_metric:.1f})"
            )
            rows.append({"task": r.task, "control": what, "seed": r.seed, "test %": 100 * r.test_metric_static})
    out = pd.DataFrame(rows, columns=["task", "control", "seed", "test %"])
    return out.astype({"seed": "Int64"}).round({"test %": 1})


def model_labels(points: pd.DataFrame) -> dict[str, str]:
    """Each pretrained source as "arch, N k non-embedding parameters", in the study's order."""
    labels = {}
    for source, group in points.groupby("source", sort=False):
        row = group.iloc[0]
        labels[source] = f"{arch_label(row['arch'])}, {row['non_embedding_params'] / 1e3:.0f}k"
    order = ("mlm-gmlp", "mlm-amlp", "mlm-transformer", "mlm-gmlp-large")
    return dict(sorted(labels.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 99))


def summary_view(summary: pd.DataFrame, labels: dict[str, str]) -> pd.DataFrame:
    """The mean +- sd table as the page shows it: one row per model and start, one column per task."""
    if summary.empty:
        return summary
    df = summary.copy()
    df["cell"] = [
        f"{100 * m:.1f} +- {100 * s:.1f} ({n})" if n > 1 else f"{100 * m:.1f} (1)"
        for m, s, n in zip(df["test_mean"], df["test_sd"].fillna(0), df["seeds"], strict=True)
    ]
    df["model"] = [labels.get(s, s) for s in df["source"]]
    table = df.pivot_table(index=["model", "init"], columns="task", values="cell", aggfunc="first")
    return table[[t for t in TASKS if t in table.columns]].reset_index()


def paper_table() -> pd.DataFrame:
    """The paper's finetuning figures, a row per model (base, then large) and a column per task and metric."""
    df = paper_finetuning()
    df["column"] = df["task"] + " " + df["metric"]
    table = df.pivot_table(index=["model", "params_m"], columns="column", values="value", aggfunc="first")
    order = ["BERT-base", "gMLP-base", "aMLP-base", "BERT-large", "gMLP-large", "aMLP-large"]
    table = table.reset_index()
    table["_order"] = [order.index(m) if m in order else len(order) for m in table["model"]]
    return table.sort_values("_order").drop(columns="_order").reset_index(drop=True)


# ---- the live pair ----------------------------------------------------------------------------------------
def pair_models(lens: Lens) -> list[str]:
    """Checkpoints under the folder finetuned on a sentence-pair classification task: those picked in the sidebar,
    or else all of them (the zoo's first), at most ``MAX_MODELS``."""
    names = []
    for checkpoint in lens.checkpoints("classify", selected_only=False):
        name = checkpoint.name
        record = finetune_record(checkpoint.config) or {}
        task = FINETUNE_TASKS.get(record.get("task", ""))
        if task is not None and task.pair and task.labels:
            names.append(name)
    picked = [n for n in lens.selected if n in names]
    ordered = picked or sorted(names, key=lambda n: (PAIR_MODELS.index(n) if n in PAIR_MODELS else 99, n))
    return ordered[:MAX_MODELS]


def pair_task_of(lens: Lens, name: str) -> str:
    return (finetune_record(lens.checkpoint(name).config) or {})["task"]


@st.cache_resource(max_entries=4, show_spinner="Building the task's examples...")
def test_examples(task: str) -> tuple[Example, ...]:
    """The task's test split (built once per process; read-only)."""
    return load_task_splits(task).test


@loaders.per_checkpoint(max_entries=16, show_spinner="Running the model on the test pairs...")
def predictions(checkpoint: loaders.Checkpoint, task: str) -> pd.DataFrame:
    loaded = loaders.load(checkpoint)
    return pair_predictions(loaded.model, loaded.tokenizer, test_examples(task))


@loaders.per_checkpoint(max_entries=16, show_spinner="Measuring how each model aligns the two sentences...")
def alignment(checkpoint: loaders.Checkpoint, task: str) -> pd.DataFrame:
    loaded = loaders.load(checkpoint)
    return alignment_table(loaded.model, loaded.tokenizer, test_examples(task)[:ALIGNMENT_PAIRS])


def example_kinds(lens: Lens, names: list[str], task: str) -> dict[str, list[int]]:
    """Test pairs grouped by which models answer them right: every model right, only the models with attention
    right, only the models without attention right, every model wrong (``EXAMPLES_PER_KIND`` each, in order)."""
    correct = pd.DataFrame({n: predictions(lens.checkpoint(n), task)["correct"] for n in names})
    attention = [n for n in names if lens.checkpoint(n).config.has_attention]
    static = [n for n in names if n not in attention]
    kinds = {"every model right": correct.all(axis=1), "every model wrong": ~correct.any(axis=1)}
    if attention and static:
        with_attention = correct[attention].all(axis=1)
        without = correct[static].all(axis=1)
        kinds = {
            "every model right": kinds["every model right"],
            "only the models with attention right": with_attention & ~correct[static].any(axis=1),
            "only gMLP right": without & ~correct[attention].any(axis=1),
            "every model wrong": kinds["every model wrong"],
        }
    return {kind: list(np.flatnonzero(mask.to_numpy())[:EXAMPLES_PER_KIND]) for kind, mask in kinds.items()}


def read(lens: Lens, name: str, text_a: str, text_b: str) -> PairReading:
    loaded = lens.load(name)
    return read_pair(loaded.model, loaded.tokenizer, text_a, text_b)


def maps(lens: Lens, name: str, reading: PairReading) -> dict[str, list[torch.Tensor]]:
    return pair_maps(lens.load(name).model, reading)


@loaders.per_checkpoint(max_entries=64, show_spinner="Computing each block's token mixing...")
def _mixing(checkpoint: loaders.Checkpoint, text_a: str, text_b: str, layer: int) -> np.ndarray:
    loaded = loaders.load(checkpoint)
    reading = read_pair(loaded.model, loaded.tokenizer, text_a, text_b)
    return effective_mixing(loaded.model, reading, layer).numpy()


def mixing(lens: Lens, name: str, text_a: str, text_b: str, layer: int) -> np.ndarray:
    """Block ``layer``'s effective token mixing on this pair (cached per checkpoint, pair and layer)."""
    return _mixing(lens.checkpoint(name), text_a, text_b, layer)


def block(matrix: np.ndarray | torch.Tensor, reading: PairReading) -> np.ndarray:
    """Rows: A's word pieces; columns: B's: how each word of A takes in each word of B."""
    z = np.asarray(matrix, dtype=float)
    return z[np.ix_(reading.a_positions, reading.b_positions)]


def share_text(matrix: np.ndarray | torch.Tensor, reading: PairReading) -> str:
    """The same-word share of one map on this pair, as a sentence."""
    share, chance, rows = same_word_share(torch.as_tensor(np.asarray(matrix)), reading.tokens, reading.segment)
    if not rows:
        return "no word of A recurs in B"
    return f"same word in B: {share:.0%} of A's weight on B (no preference: {chance:.0%})"


def _panel(z: np.ndarray, reading: PairReading, title: str, value: str, diverging: bool) -> go.Figure:
    return plots.panel(
        block(z, reading),
        [reading.tokens[i] for i in reading.a_positions],
        [reading.tokens[i] for i in reading.b_positions],
        title=title,
        value=value,
        diverging=diverging,
        x_title="B",
        y_title="A",
        large=widgets.lecturing(),
    )


def show_pair_maps(lens: Lens, name: str, reading: PairReading, text_a: str, text_b: str, layer: int) -> None:
    """One model's mixing of B into A at ``layer``: its attention (mean of heads), its W, and the block's effective
    mixing on this pair, side by side, each with its same-word share."""
    config = lens.checkpoint(name).config
    st.subheader(f"{escape_markdown(name)} ({arch_label(config.arch)})")
    if layer >= config.n_layers:
        st.caption(f"{escape_markdown(name)} has {config.n_layers} layers: pick layer 0 to {config.n_layers - 1}.")
        return
    found = maps(lens, name, reading)
    figs, notes = [], []
    if "attention" in found and layer < len(found["attention"]):
        heads = found["attention"][layer]
        what = "attention, mean of heads" if heads.shape[0] > 1 else "tiny attention"
        mean = heads.mean(0)
        figs.append(_panel(mean.numpy(), reading, f"{what}, layer {layer}", "attention", False))
        notes.append(f"{what}: {share_text(mean, reading)}")
        if heads.shape[0] > 1:  # the head that puts most of A's weight on B
            best = max(range(heads.shape[0]), key=lambda h: float(block(heads[h], reading).sum()))
            notes.append(f"head {best} (most weight on B): {share_text(heads[best], reading)}")
    if "W" in found and layer < len(found["W"]):
        w = found["W"][layer]
        figs.append(_panel(w.numpy(), reading, f"W, layer {layer} (the same for every pair)", "W", True))
        notes.append(f"|W|: {share_text(w, reading)}")
    effective = mixing(lens, name, text_a, text_b, layer)
    figs.append(_panel(effective, reading, f"effective mixing of block {layer} on this pair", "influence", False))
    notes.append(f"effective mixing: {share_text(effective, reading)}")
    widgets.chart_row(figs, key=f"am-maps-{name}")
    st.caption("; ".join(notes) + ".")


def show_alignment(lens: Lens, names: list[str], task: str) -> None:
    """Each model's best same-word share over the test pairs (its layer and head), and every row as a table."""
    tables = []
    for name in names:
        table = alignment(lens.checkpoint(name), task)
        table.insert(0, "model", name)
        tables.append(table)
    rows = pd.concat(tables, ignore_index=True)
    best = [rows[rows["model"] == n].sort_values("ratio").iloc[-1] for n in names if (rows["model"] == n).any()]
    for slot, r in zip(widgets.columns_for(len(best)), best, strict=True):
        slot.metric(
            escape_markdown(f"{r['model']}: best at layer {r['layer']}, {r['mixing']}"),
            f"{r['ratio']:.1f}x chance",
            f"{r['share']:.0%} on the same word (chance {r['chance']:.0%})",
            delta_color="off",
        )
    with st.expander("Every layer and head"):
        widgets.table(rows, "same-word-share")


def show_study() -> None:
    """The study's chart (every seed a point), its mean +- sd table, the paper's figures and the controls."""
    points, summary = study()
    if points.empty:
        st.info(
            "No study results yet: run `python -m gmlp_core finetune-study --stage rates`, then `--stage seeds` and "
            "`--stage scratch` (writes results/finetune.csv)."
        )
        return
    labels = model_labels(points)
    title = "Test score per task: every seed a point, mean +- 1 sd"
    widgets.chart(plots.finetune_study(points, task_labels(), labels, title=title), key="am-study")
    st.caption(
        "Each architecture at its learning rate chosen on validation (of 3e-4, 1e-3, 3e-3, seed 0); test read "
        "once per run. Hollow points: the same architecture trained from scratch on the task, one seed: what "
        "pretraining bought. Models are named by architecture and non-embedding parameters."
    )
    widgets.table(summary_view(summary, labels), "finetune-summary")
    with st.expander("The paper's figures (unverified, from secondary sources)"):
        st.caption(
            "The paper's pattern: gMLP about equal on SST-2, behind BERT on MNLI and SQuAD at base size, the gap "
            "narrower at large size, and aMLP level or ahead everywhere. Scores in %, dev sets."
        )
        widgets.table(paper_table(), "paper-finetuning")
    table = controls()
    if not table.empty:
        with st.expander("Controls that need no training"):
            st.markdown(
                "A **bag of words** over both segments cannot tell a pair apart (the two segments hold the same "
                "words up to one noun). **Static attention**: each finetuned attention head replaced by its "
                "average over the validation inputs, a fixed mixing matrix like W; where the score falls to "
                "chance, the model needed its attention to depend on the input."
            )
            widgets.table(table, "finetune-controls")


def show_answers(lens: Lens, readings: dict[str, PairReading]) -> None:
    """Each model's answer to the pair and how sure it is, side by side."""
    for slot, (name, reading) in zip(widgets.columns_for(len(readings)), readings.items(), strict=True):
        arch = lens.checkpoint(name).config.arch
        with slot:
            st.metric(
                f"{escape_markdown(name)} ({arch_label(arch)})",
                reading.label,
                f"{reading.probabilities.max():.0%} sure",
                delta_color="off",
            )
            p0 = float(reading.probabilities[0])
            st.progress(p0, text=f"P({reading.labels[0]}) = {p0:.1%}")


def warm_jobs(lens: Lens) -> list[tuple[str, Callable[[], object]]]:
    """The page's default view for the warm-up: each pair model's answers on the test pairs (the example picker),
    its same-word share over them, and its layer-0 mixing of the lecture's pair (``dashboard.lecture.PAIR``)."""
    from dashboard.lecture import PAIR

    out: list[tuple[str, Callable[[], object]]] = []
    for name in pair_models(lens):
        task = pair_task_of(lens, name)
        if not FINETUNE_TASKS[task].built_in:
            continue
        checkpoint = lens.checkpoint(name)
        out += [
            (f"test pairs: {name}", functools.partial(predictions, checkpoint, task)),
            (f"same-word share: {name}", functools.partial(alignment, checkpoint, task)),
            (f"pair mixing: {name}", functools.partial(_mixing, checkpoint, PAIR[0], PAIR[1], 0)),
        ]
    return out
