"""The training-snapshot timeline of W (a fragment: moving its slider reruns only this part of the page)."""

from __future__ import annotations

import streamlit as st

from dashboard import loaders, plots, widgets


@st.fragment
def snapshot_timeline(checkpoint: loaders.Checkpoint, layer: int) -> None:
    """A slider over the saved training steps showing layer ``layer``'s W and its middle row at that step."""
    name = checkpoint.name
    snaps = loaders.snapshots(checkpoint)
    if not snaps:
        st.info("This checkpoint has no training snapshots (`spatial_snapshots.safetensors`, written during training).")
        return
    steps = list(snaps)
    step = (
        st.select_slider("Training step", steps, value=steps[-1], key=f"snap-step-{name}")
        if len(steps) > 1
        else steps[0]
    )
    weights = snaps[step]
    if layer >= weights.shape[0]:
        st.warning(f"The snapshots have {weights.shape[0]} layers; pick a lower layer.")
        return
    w = weights[layer]
    middle = w.shape[0] // 2
    left, right = st.columns([3, 2])
    with left:
        widgets.chart(plots.matrix(w, title=f"Layer {layer} at step {step}", height=470), key=f"snap-w-{name}")
    with right:
        profiles = [snaps[s][layer, middle] for s in steps]
        fig = plots.curves_over_steps(profiles, steps, step, middle)
        widgets.chart(fig, key=f"snap-profile-{name}")
    st.caption(f"{len(steps)} snapshots from step {steps[0]} to {steps[-1]}. The darker line is the selected step.")
