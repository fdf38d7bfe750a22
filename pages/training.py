"""Training: loss and validation curves of any checkpoints, from their metrics.jsonl."""

import streamlit as st

from dashboard import context, widgets
from dashboard.style import escape_markdown
from dashboard.training_view import METRIC_HELP, METRIC_LABELS, X_LABELS, log_notes, metric_chart, training_logs

lens = context.current()
st.title("Training")
st.caption("Every checkpoint's `metrics.jsonl`: one row per evaluation during training.")

all_names = lens.names(selected_only=False)
names = st.multiselect(
    "Checkpoints",
    all_names,
    default=[n for n in lens.selected if n in all_names],
    format_func=lens.label,
    key="train-names",
)
widgets.need_models(names, "checkpoint")
logs = training_logs(lens, names)
if logs.empty:
    st.warning("None of these checkpoints has a `metrics.jsonl` (it is written by `python -m gmlp_core train`).")
    st.stop()

missing = sorted(set(names) - set(logs["name"]))
if missing:
    st.info(f"No training log for: {escape_markdown(', '.join(missing))}")
for name, notes in log_notes(lens, names).items():
    st.caption(escape_markdown(f"{name}: {'; '.join(notes)}."))
axes = [x for x in X_LABELS if x in logs.columns and logs[x].notna().any()]
x = st.radio("Horizontal axis", axes, format_func=X_LABELS.get, horizontal=True, key="train-x")
metrics = [m for m in METRIC_HELP if m in logs.columns and logs[m].notna().any()]

for slot, metric in zip(widgets.columns_for(2), ("loss", "val_loss"), strict=True):
    with slot:  # side by side on a wide screen, stacked on a projector
        metric_chart(logs, x, metric, key=f"train-{metric}")

others = [m for m in metrics if m not in ("loss", "val_loss")]
metric = st.selectbox("Another metric", others, format_func=METRIC_LABELS.get, key="train-metric")
if metric:
    metric_chart(logs, x, metric, key="train-other")

with st.expander("All logged rows"):
    widgets.table(logs.rename(columns=METRIC_LABELS | X_LABELS), "training-logs")
