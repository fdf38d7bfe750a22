"""Attributions: Integrated Gradients and a second method for one masked prediction or image class."""

import pandas as pd
import streamlit as st

from dashboard import context, widgets
from dashboard.attributions_view import DEFAULT_TEXT, class_options, explain, image_targets, show, text_targets
from dashboard.image_input import image_options, pick_image
from gmlp_core.data.tokenizer import count_masks

lens = context.current()
st.title("Attributions")
st.markdown(
    "Which inputs made the model predict what it did? **Integrated Gradients** averages the gradient along a "
    "straight path from a baseline (all `[PAD]` tokens, or a black image) to the input and multiplies by the "
    "difference. Its attributions add up to the change in the model's score; the **convergence delta** is how far "
    "they miss, so it checks the computation. A second method is shown for comparison."
)

tasks = [t for t in ("mlm", "vision") if lens.names(t)]
widgets.need_models(tasks, "model")
task = (
    st.segmented_control(
        "Task", tasks, format_func={"mlm": "Language", "vision": "Vision"}.get, default=tasks[0], key="attr-task"
    )
    or tasks[0]
)
names = lens.names(task)
n_steps = st.slider("Integration steps", 8, 128, 32, step=8, key="attr-steps")

if task == "mlm":
    text = widgets.typed_text("Sentence with a [MASK]", "attr-text", DEFAULT_TEXT)
    masks = count_masks(text)
    if masks == 0:
        st.warning("Put a [MASK] in the sentence: attributions explain the prediction at a masked position.")
        st.stop()
    left, right = st.columns(2)
    which = left.selectbox("Which [MASK]", range(masks), format_func=lambda i: f"#{i + 1}", key="attr-mask")
    word = right.text_input("Explain this word instead of each model's top guess (optional)", key="attr-word")
    word = widgets.text_window(word).strip().lower() or None
    targets = None
    with widgets.guard("The prediction to explain"):  # a tokenizer can fail on a typed text: a message, not a hang
        targets = text_targets(lens, names, text, which, word)
else:
    image = pick_image("attr", **image_options(lens, names))
    if image is None:
        st.stop()
    classes, show_class = class_options(lens, names)
    choice = st.selectbox(
        "Class to explain", ["each model's prediction"] + classes, format_func=show_class, key="attr-class"
    )
    targets = None
    with widgets.guard("The class to explain"):
        targets = image_targets(lens, names, image, None if isinstance(choice, str) else int(choice))
if targets is None:
    st.stop()

request = (
    task,
    n_steps,
    tuple((t.name, t.index, t.ids, t.position, None if t.pixels is None else t.pixels.tobytes()) for t in targets),
)
if st.button("Explain", type="primary", key="attr-run"):
    st.session_state["attr-request"] = request
if not targets or st.session_state.get("attr-request") != request:
    st.info("Press **Explain** to compute the attributions (a few seconds per model).")
    st.stop()

tables = []
for col, target in zip(widgets.columns_for(len(targets)), targets, strict=False):
    with col, widgets.guard(target.name):
        tables.append(show(target, explain(lens, target, n_steps)))
if tables:
    with st.expander("Attributions as a table"):
        widgets.table(pd.concat(tables, ignore_index=True), "attributions")
