"""Overview: the zoo as a table, and which models to compare on the other pages."""

import streamlit as st

from dashboard import context
from dashboard.overview_view import preset_selections, zoo_picker
from dashboard.style import escape_markdown

lens = context.current()
st.title("gMLP Lens")
st.markdown(
    "What does gMLP learn **instead of attention**? Its only token mixing is one learned n x n matrix **W** per "
    "layer. This dashboard puts gMLP, aMLP (gMLP + a tiny attention head) and a Transformer side by side."
)

if lens.zoo.empty:
    st.warning(context.no_models_hint(lens.folder))
    st.stop()

ok, bad = lens.zoo[lens.zoo["status"] == "ok"], lens.zoo[lens.zoo["status"] != "ok"]
c1, c2, c3, c4 = st.columns(4)
c1.metric("Checkpoints", len(ok))
c2.metric("Unreadable", len(bad))
c3.metric("Picked", len(lens.selected))
c4.metric("Device", lens.device.split(" ")[0])

st.subheader("Pick the models to compare")
st.caption("The pick is kept across pages and in this page's link: copy the URL to share the view.")
# A row that wraps onto the next line on a narrow screen, so no label is cut to "Main co..." on a projector.
with st.container(horizontal=True):
    for label, names in preset_selections(lens).items():
        st.button(label, on_click=context.set_selection, args=(names,), key=f"pick-{label}")

st.subheader("The zoo")
st.caption("Tick **picked** to add a model to the comparison or untick it to drop it.")
zoo_picker(lens)

if not bad.empty:
    st.subheader("Unreadable checkpoints")
    st.caption("These are listed, never loaded: the rest of the app works without them.")
    for _, row in bad.iterrows():
        st.error(f"**{escape_markdown(row['name'])}** ({row['status']}): {escape_markdown(row['error'])}")
