"""Interventions: edit W (or attention) and see what the model loses, to test whether the structure is used."""

import streamlit as st

from dashboard import context, plots, widgets
from dashboard.interventions_view import EXPLAIN, band_table, knockout_table, meaning, metric_label, run
from dashboard.style import escape_markdown
from gmlp_core.analysis.interventions import W_KINDS, kinds_for, no_kinds_reason
from gmlp_core.models.tasks import task_spec

IV_TEXT = "a [MASK] is a sequence of characters."
lens = context.current()
st.title("Interventions")
st.markdown(
    "The Spatial weights page shows *structure* in W: a narrow band, nearly shift-invariant. Here you **edit** it "
    "and measure what the model loses on held-out text, to see whether the model *uses* that structure. Every edit "
    "runs on a copy; the loaded model is never changed."
)

spans = lens.names(where=lambda config: task_spec(config.task).span)
if spans:  # a span model has no held-out score measured here
    st.caption(f"Left out: {escape_markdown(', '.join(spans))} (span models: no held-out score is measured here).")
names = lens.names(where=lambda config: not task_spec(config.task).span)
widgets.need_models(names, "model")
left, right = st.columns([2, 3])
name = left.selectbox("Model", names, format_func=lens.label, key="iv-model")
checkpoint = lens.checkpoint(name)
cfg = checkpoint.config
kinds = kinds_for(cfg)
if not kinds:
    st.info(f"Nothing to edit in {escape_markdown(name)}: {no_kinds_reason(cfg)}.")
    st.stop()
kind = right.selectbox("Intervention", kinds, format_func=lambda k: f"{k}: {EXPLAIN[k]}", key="iv-kind")
layer_pick, param_pick = st.columns([3, 2])
layers = layer_pick.multiselect("Layers", list(range(cfg.n_layers)), default=list(range(cfg.n_layers)), key="iv-layers")
k = heads = None
if kind in ("band", "smooth"):
    widest = cfg.seq_len - 1 if cfg.is_text else cfg.grid_size - 1
    label = "Band width k (positions)" if kind == "band" else "Rank k"
    k = param_pick.slider(label, 0 if kind == "band" else 1, widest if kind == "band" else cfg.seq_len, 4, key="iv-k")
elif kind == "heads-off":
    heads = tuple(param_pick.multiselect("Heads", list(range(cfg.n_heads)), default=[0], key="iv-heads")) or None
sentence = None
if cfg.spec.fill_mask:
    sentence = widgets.typed_text("Sentence (fill-mask before and after)", "iv-text", IV_TEXT)
if not layers:
    st.info("Pick at least one layer to edit.")
    st.stop()

with widgets.guard("Interventions"):
    edits_w = kind in W_KINDS
    show = layers[0] if len(layers) == 1 or not edits_w else st.select_slider("Show W of layer", layers, key="iv-show")
    result = run(checkpoint, kind, tuple(layers), k, heads, sentence or None, show)
    before, after = st.columns(2)
    label = metric_label(result.metric)
    fmt = "{:.2f}" if result.metric == "val_ppl" else "{:.1%}"
    before.metric(f"{label}, unedited", fmt.format(result.before))
    after.metric(
        f"{label}, edited",
        fmt.format(result.after),
        delta=f"{result.change:+.1%}" if result.metric == "val_ppl" else f"{result.change:+.1f} points",
        delta_color="inverse" if result.metric == "val_ppl" else "normal",
    )
    st.markdown(meaning(result))
    st.caption(f"Measured on {result.examples:,} held-out {'masked tokens' if cfg.task == 'mlm' else 'images'}.")
    if result.w_before is not None:
        st.subheader(f"Layer {show}: W before and after")
        figs = plots.matrices(
            [result.w_before, result.w_after],
            ["W, unedited", f"W after {kind}"],
            shared_scale=True,
            large=widgets.lecturing(),
        )
        widgets.chart_row(figs, key="iv-w")
    if result.fill_mask is not None:
        st.subheader("Fill-mask before and after")
        widgets.table(result.fill_mask, f"fill-mask-{name}-{kind}")

st.subheader("Which parts does the model need?")
st.caption(
    "Each bar: the held-out metric after knocking out one part alone (a layer's W set to 0, aMLP's tiny attention "
    "removed, or one attention head zeroed). The line is the unedited model."
)
if st.toggle("Compute the knock-out and band-width charts (a few seconds per model)", key="iv-summary"):
    with widgets.guard("Interventions summary"):
        knock = knockout_table(checkpoint)
        widgets.chart(plots.knockouts(knock), key="iv-knockouts")
        widgets.table(knock, f"knockouts-{name}")
        if cfg.has_spatial_weights:
            st.subheader("How local does W need to be?")
            st.caption(
                "The metric with one layer's W cut to a band of width k (all else unedited). Where a curve meets "
                "the unedited line, mixing farther than k is not needed in that layer."
            )
            band = band_table(checkpoint)
            widgets.chart(plots.band_sweep(band), key="iv-band")
            widgets.table(band, f"band-sweep-{name}")
