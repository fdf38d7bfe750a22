"""Live inference: fill-mask side by side for the MLM models, image classification for the vision models."""

import streamlit as st

from dashboard import context, widgets
from dashboard.image_input import image_options, pick_image
from dashboard.inference_view import EXAMPLES, classify_panels, fill_mask_panels, quality_note, show_preview
from gmlp_core.inference import MAX_TOP_K

lens = context.current()
st.title("Live inference")

TEXT_TAB, IMAGE_TAB = "Fill the mask (language)", "Classify an image (vision)"
mlm, vision = lens.names("mlm"), lens.names("vision")
# Open on the tab that has models to show (only vision models picked: the image tab).
text_tab, image_tab = st.tabs([TEXT_TAB, IMAGE_TAB], default=IMAGE_TAB if vision and not mlm else TEXT_TAB)

with text_tab:
    if not mlm:
        st.info(widgets.models_hint("MLM model"))
    else:
        left, right = st.columns([3, 1])
        right.selectbox(
            "Example sentences",
            EXAMPLES,
            index=None,
            placeholder="Pick an example...",
            key="fill-example",
            on_change=lambda: st.session_state.update({"fill-text": st.session_state["fill-example"] or ""}),
        )
        top_k = right.slider("Top k", 1, MAX_TOP_K, 5, key="fill-topk", help="Guesses shown per [MASK]")
        text = widgets.typed_text(
            "Text with one or more [MASK]", "fill-text", EXAMPLES[0], where=left, area=True, height=110
        )
        if note := quality_note(lens, mlm):
            st.caption(note)
        predictions = fill_mask_panels(lens, mlm, text, top_k)
        if not predictions.empty:
            with st.expander("All predictions as a table"):
                widgets.table(predictions, "fill-mask-predictions")

with image_tab:
    if not vision:
        st.info(widgets.models_hint("vision model"))
    else:
        image = pick_image("infer", **image_options(lens, vision))
        if image is not None:
            left, right = st.columns([1, 3])
            with left:
                show_preview(lens, vision, image)
            with right:
                probabilities = classify_panels(lens, vision, image)
            if not probabilities.empty:
                with st.expander("All class probabilities as a table"):
                    widgets.table(probabilities, "class-probabilities")
