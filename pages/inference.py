"""Live inference: fill-mask side by side for the MLM models, digit classification for the vision models."""

import streamlit as st

from dashboard import context, plots, widgets
from dashboard.image_input import pick_image
from dashboard.inference_view import EXAMPLES, classify_panels, fill_mask_panels

lens = context.current()
st.title("Live inference")

text_tab, image_tab = st.tabs(["Fill the mask (language)", "Classify a digit (vision)"])

with text_tab:
    mlm = lens.names("mlm")
    if not mlm:
        st.info("Pick at least one MLM model in the sidebar (**Models to compare**).")
    else:
        if "fill-text" not in st.session_state:
            st.session_state["fill-text"] = EXAMPLES[0]
        left, right = st.columns([3, 1])
        right.selectbox(
            "Example sentences",
            EXAMPLES,
            index=None,
            placeholder="Pick an example...",
            key="fill-example",
            on_change=lambda: st.session_state.update({"fill-text": st.session_state["fill-example"] or ""}),
        )
        top_k = right.slider("Top k", 1, 10, 5, key="fill-topk")
        text = left.text_area("Text with one or more [MASK]", key="fill-text", height=110)
        predictions = fill_mask_panels(lens, mlm, text, top_k)
        if not predictions.empty:
            with st.expander("All predictions as a table"):
                widgets.table(predictions, "fill-mask-predictions")

with image_tab:
    vision = lens.names("vision")
    if not vision:
        st.info("Pick at least one vision model in the sidebar (**Models to compare**).")
    else:
        image = pick_image("infer")
        if image is not None:
            left, right = st.columns([1, 3])
            with left:
                widgets.chart(plots.digit(image.preview(), "What the models see (8 x 8)"), key="infer-preview")
                st.caption(image.caption)
            with right:
                probabilities = classify_panels(lens, vision, image)
            if not probabilities.empty:
                with st.expander("All class probabilities as a table"):
                    widgets.table(probabilities, "class-probabilities")
