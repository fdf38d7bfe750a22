"""Training: loss and validation curves of any checkpoints, from their metrics.jsonl."""

import streamlit as st

from dashboard import context, plots, widgets
from dashboard.style import escape_markdown
from dashboard.training_view import METRIC_HELP, training_logs

lens = context.current()
st.title("Training")
st.caption("Every checkpoint's `metrics.jsonl`: one row per evaluation during training.")

all_names = lens.names(selected_only=False)
names = st.multiselect(
    "Checkpoints", all_names, default=[n for n in lens.selected if n in all_names], key="train-names"
)
widgets.need_models(names, "checkpoint")
logs = training_logs(lens, names)
if logs.empty:
    st.warning("None of these checkpoints has a `metrics.jsonl` (it is written by `python -m gmlp_core train`).")
    st.stop()

missing = sorted(set(names) - set(logs["name"]))
if missing:
    st.info(f"No training log for: {escape_markdown(', '.join(missing))}")
x = st.radio("Horizontal axis", ["step", "elapsed_s"], horizontal=True, key="train-x")
metrics = [m for m in METRIC_HELP if m in logs.columns and logs[m].notna().any()]
left, right = st.columns(2)
with left:
    widgets.chart(plots.curves(logs, x, "loss", title="Training loss", log_y=True), key="train-loss")
    st.caption(METRIC_HELP["loss"])
with right:
    widgets.chart(plots.curves(logs, x, "val_loss", title="Validation loss", log_y=True), key="train-val")
    st.caption(METRIC_HELP["val_loss"])

metric = st.selectbox("Another metric", [m for m in metrics if m not in ("loss", "val_loss")], key="train-metric")
if metric:
    log_y = metric.endswith("ppl")  # perplexity falls from thousands to tens: only a log axis shows the end
    widgets.chart(plots.curves(logs, x, metric, title=metric.replace("_", " "), log_y=log_y), key="train-other")
    st.caption(METRIC_HELP[metric])

with st.expander("All logged rows"):
    widgets.table(logs, "training-logs")
