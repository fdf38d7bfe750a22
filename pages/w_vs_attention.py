"""W versus attention: one input, three architectures, and the token-influence map they share."""

import streamlit as st

from dashboard import context, linked_hover, plots, widgets
from dashboard.image_input import image_options, pick_image
from dashboard.style import escape_markdown
from dashboard.w_vs_attention_view import (
    DEFAULT_TEXT,
    compute,
    exact_influence,
    influence_caption,
    influence_table,
    measure,
    pick_models,
    prepare_image,
    prepare_text,
    quick,
    show_model,
)

lens = context.current()
st.title("W versus attention")
st.markdown(
    "The Transformer recomputes its token mixing (attention) for every input. gMLP mixes with a **fixed** W and "
    "makes it input-dependent only through the gate; aMLP adds one tiny attention head. Same input, three models."
)

tasks = [t for t in ("mlm", "vision") if lens.names(t)]
widgets.need_models(tasks, "model")
labels = {"mlm": "Language", "vision": "Vision"}
task = st.segmented_control("Task", tasks, format_func=labels.get, default=tasks[0], key="wva-task") or tasks[0]
chosen = pick_models(lens, task)
widgets.need_models(list(chosen), f"{labels[task].lower()} model")

prepared = None
if task == "mlm":
    text = widgets.typed_text("Input sentence", "wva-text", DEFAULT_TEXT)
    with widgets.guard("The sentence"):  # a tokenizer can fail on a typed text: a message, and the page serves on
        prepared = prepare_text(lens, chosen, text)
    if prepared == []:
        st.warning("Type a sentence: there is nothing to mix in empty text.")
else:
    image = pick_image("wva", **image_options(lens, list(chosen.values())))
    if image is None:
        st.stop()
    with widgets.guard("The image"):
        prepared = prepare_image(lens, chosen, image)
if not prepared:
    st.stop()

request = tuple((p.name, p.ids, None if p.pixels is None else p.pixels.tobytes()) for p in prepared)
# the demo models answer in about a second: no button to press (big ones wait for it)
if quick(lens, prepared) or st.button("Compute the maps", type="primary", key="wva-compute"):
    st.session_state["wva-request"] = request
if st.session_state.get("wva-request") != request:
    st.info(
        "Press **Compute the maps** to run these models on this input: their token influence takes several "
        "seconds (large models)."
    )
    st.stop()

with widgets.guard("W versus attention"):
    results = compute(lens, prepared)
    linked_hover.link()
    st.caption("Hover any cell of any map: the same row and column are outlined on every map of the page.")
    n_layers = max(lens.checkpoint(p.name).config.n_layers for p in prepared)
    layer = st.slider("Layer", 0, n_layers - 1, 0, key="wva-layer") if n_layers > 1 else 0
    for p in prepared:
        show_model(lens, p, results[p.name], layer)

    st.subheader("Token influence: one measurement for every model")
    st.caption(
        "Entry (i, j): how strongly output position i responds to a change of input position j (the norm of the "
        "Jacobian of the final hidden state i with respect to the embedding j). Computed the same way for every model."
    )
    panels = list(prepared)
    estimated = [p for p in panels if results[p.name].influence_method != "exact"]
    redo = {p.name for p in estimated}
    exact = bool(estimated) and st.toggle(
        "Exact maps",
        key="wva-exact",
        help="Compute every row of every Jacobian block instead of the random-probe estimate (seconds per model), "
        "and measure the estimate's error on this input.",
    )
    maps = {p.name: results[p.name].influence[: p.n_show, : p.n_show] for p in panels}
    if exact:
        for p in estimated:
            measure(lens, p, results[p.name], "this input")
            maps[p.name] = exact_influence(lens.checkpoint(p.name), p.n_show, p.ids, p.pixels)
    figs = [
        plots.matrix(
            maps[p.name],
            p.labels if task == "mlm" else None,
            title=p.name + (" (exact)" if exact and p.name in redo else ""),
            value="influence",
            diverging=False,
            large=widgets.lecturing(),
        )
        for p in panels
    ]
    widgets.chart_row(figs, key="wva-influence")
    for p in panels:
        how = "exact (computed on request)" if exact and p.name in redo else influence_caption(lens, p, results[p.name])
        note = f"; {results[p.name].influence_note}" if results[p.name].influence_note else ""
        st.caption(f"{escape_markdown(p.name)}: {how}{note}.")
    with st.expander("Token influence as a table"):
        widgets.table(influence_table(prepared, results), "token-influence")
